"""One configured channel: a bot format, its secret URL, and the HTTP POST that delivers a message.

Requests go straight to an httpx transport rather than through ``httpx.AsyncClient``: the client
logs every request's full URL, and a group bot's URL carries its key. Nothing here logs or
raises the URL or the signing secret; errors name the channel and the URL's host only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import SecretStr

from edumon.exporters.notify.model import DeliveryError, Message
from edumon.exporters.notify.vendor import Vendor

MAX_REPLY_BYTES = 64 * 1024
"""A bot's reply is a few dozen bytes; read no more than this of anything else."""


def _secret_parts(url: str, secret: str | None) -> list[str]:
    """Every piece of the URL that may be a key (query values, long path segments), and secret."""
    parts = urlsplit(url)
    found = [url, parts.query] if parts.query else [url]
    found += [v for _, v in parse_qsl(parts.query) if len(v) >= 6]
    found += [seg for seg in parts.path.split("/") if len(seg) >= 16]
    if secret:
        found.append(secret)
    # Longest first, so that a key inside the URL is replaced after the URL itself.
    return sorted({p for p in found if p}, key=len, reverse=True)


class HttpChannel:
    """Delivers messages to one bot or webhook.

    Args:
        name: the channel's id from the configuration (shown in logs and metrics).
        vendor: the bot's format.
        url: the webhook URL (secret: it holds the bot's key or token).
        secret: the signing secret, if the bot has 加签/签名校验 on.
        transport: where requests go (shared by all channels; tests may pass their own).
        timeout_seconds: for the whole exchange.
        wall_clock: Unix seconds, for the signatures' timestamps.
    """

    def __init__(
        self,
        name: str,
        vendor: Vendor,
        url: SecretStr,
        secret: SecretStr | None,
        *,
        transport: httpx.AsyncBaseTransport,
        timeout_seconds: float = 10.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.vendor = vendor
        self._url = url
        self._secret = secret
        self._transport = transport
        self._timeout = timeout_seconds
        self._wall_clock = wall_clock
        self.host = urlsplit(url.get_secret_value()).hostname or "?"
        self._hidden = _secret_parts(
            url.get_secret_value(), None if secret is None else secret.get_secret_value()
        )

    @property
    def kind(self) -> str:
        return self.vendor.kind

    def __repr__(self) -> str:
        return f"HttpChannel(name={self.name!r}, kind={self.kind!r}, host={self.host!r})"

    def redact(self, text: str) -> str:
        """``text`` with the URL, its key and the secret replaced by ``***``."""
        for part in self._hidden:
            text = text.replace(part, "***")
        return text

    def _error(
        self, detail: str, *, reason: str, retryable: bool, retry_after: float | None = None
    ) -> DeliveryError:
        text = self.redact(f"通知渠道 {self.name}（{self.kind}，{self.host}）发送失败：{detail}")
        return DeliveryError(text, reason=reason, retryable=retryable, retry_after=retry_after)

    async def send(self, message: Message) -> None:
        """POST the message once.

        Raises:
            DeliveryError: not delivered; ``retryable`` says whether a later try may succeed.
        """
        secret = None if self._secret is None else self._secret.get_secret_value()
        out = self.vendor.request(message, self._url.get_secret_value(), secret, self._wall_clock())
        request = httpx.Request(
            "POST",
            out.url,
            headers={**out.headers, "User-Agent": "edumon-notify"},
            content=out.body,
            extensions={"timeout": httpx.Timeout(self._timeout).as_dict()},
        )
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._transport.handle_async_request(request)
                try:
                    body = await _read_capped(response)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            raise self._error(
                f"{self._timeout:g} 秒内无应答 (timeout)", reason="timeout", retryable=True
            ) from None
        except httpx.TransportError as exc:
            # The exception's text may quote the URL: name its type only.
            raise self._error(
                f"连接失败 (cannot connect: {type(exc).__name__})", reason="connect", retryable=True
            ) from None
        self._check(response.status_code, response.headers, body)

    def _check(self, status: int, headers: httpx.Headers, body: bytes) -> None:
        if 200 <= status < 300:
            try:
                self.vendor.check_reply(body)
            except DeliveryError as exc:
                raise self._error(str(exc), reason=exc.reason, retryable=exc.retryable) from None
            return
        if status == 429:
            raise self._error(
                "HTTP 429 请求过多 (too many requests)",
                reason="http_429",
                retryable=True,
                retry_after=_retry_after(headers),
            )
        if status >= 500:
            raise self._error(f"HTTP {status} 服务端错误", reason="http_5xx", retryable=True)
        # Some bots answer 4xx with their own code inside; a rate-limit code is still one.
        try:
            self.vendor.check_reply(body)
        except DeliveryError as exc:
            if exc.reason == "rate_limited":
                raise self._error(str(exc), reason="rate_limited", retryable=True) from None
        raise self._error(
            f"HTTP {status} 被拒绝 (check the channel's url and secret)",
            reason="http_4xx",
            retryable=status == 408,
        )


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_REPLY_BYTES:
            break
    return b"".join(chunks)[:MAX_REPLY_BYTES]


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None
