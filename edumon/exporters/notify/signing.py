"""Request signatures of the group bots (DingTalk 加签, Feishu 签名校验) and of generic webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: HMAC-SHA256 keyed by the secret over ``"{timestamp}\\n{secret}"``, base64.

    Args:
        secret: the robot's signing secret (``SEC...``).
        timestamp_ms: the current time in milliseconds; DingTalk refuses one an hour off.

    Returns:
        The base64 signature, not yet URL-encoded (``dingtalk_query`` does that).
    """
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def dingtalk_query(secret: str, timestamp_ms: int) -> str:
    """The ``timestamp=..&sign=..`` query parameters to append to the webhook URL."""
    sign = quote(dingtalk_sign(secret, timestamp_ms), safe="")
    return f"timestamp={timestamp_ms}&sign={sign}"


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's 签名校验: HMAC-SHA256 keyed by ``"{timestamp}\\n{secret}"`` over an empty message.

    Unlike DingTalk, the string is the key and the timestamp is in seconds; both go in the
    JSON body (``timestamp`` as a string, ``sign``).
    """
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def webhook_signature(secret: str, timestamp_s: int, body: bytes) -> str:
    """A generic webhook's signature: hex HMAC-SHA256 keyed by the secret over ``"{ts}." + body``.

    The receiver recomputes it from the ``X-Edumon-Timestamp`` header and the raw body and
    compares it with ``X-Edumon-Signature: sha256=<hex>``.
    """
    message = f"{timestamp_s}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
