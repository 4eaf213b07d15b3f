"""What every bot format provides: the request for a message, and the reading of the reply."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from edumon.exporters.notify.model import DeliveryError, Message


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One HTTP POST: URL (with any signature), headers and JSON body."""

    url: str
    headers: dict[str, str]
    body: bytes


class Vendor(Protocol):
    """A bot's message format and reply convention (one module per vendor)."""

    @property
    def kind(self) -> str:
        """The ``kind`` of the configuration: dingtalk, wecom, feishu or webhook."""
        ...

    def request(self, message: Message, url: str, secret: str | None, now: float) -> Outgoing:
        """The POST that delivers ``message`` to ``url``, signed with ``secret`` at ``now``."""
        ...

    def check_reply(self, body: bytes) -> None:
        """Raise DeliveryError if a 2xx reply's body says the message was not taken."""
        ...


def json_body(payload: dict[str, Any]) -> bytes:
    """UTF-8 JSON with the Chinese left as is (the bots count bytes of UTF-8)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def check_code(
    body: bytes,
    *,
    field: str,
    message_field: str,
    rate_limited: frozenset[int],
    transient: frozenset[int],
) -> None:
    """Read ``{"<field>": 0, ...}`` replies: the bots answer HTTP 200 with an error code inside.

    Raises:
        DeliveryError: the reply is not JSON, or carries a non-zero code; rate-limit and
            transient codes are retryable, others (bad token, bad signature, bad message) not.
    """
    try:
        reply = json.loads(body)
    except ValueError:
        raise DeliveryError(
            "回复不是 JSON (reply is not JSON)", reason="bad_reply", retryable=True
        ) from None
    if not isinstance(reply, dict):
        raise DeliveryError("回复格式不对 (unexpected reply)", reason="bad_reply", retryable=True)
    code = reply.get(field, reply.get("StatusCode"))
    if code is None:
        raise DeliveryError(
            f"回复缺少 {field} (reply has no {field})", reason="bad_reply", retryable=True
        )
    if code == 0:
        return
    text = str(reply.get(message_field, reply.get("StatusMessage", "")))[:200]
    if isinstance(code, int) and code in rate_limited:
        raise DeliveryError(
            f"机器人限流 {field}={code} {text} (the bot's rate limit)",
            reason="rate_limited",
            retryable=True,
        )
    raise DeliveryError(
        f"机器人拒收 {field}={code} {text}",
        reason="errcode",
        retryable=isinstance(code, int) and code in transient,
    )
