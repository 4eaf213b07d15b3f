"""企业微信 (WeCom) group bot: markdown messages to .../webhook/send?key=, errcode in the reply."""

from __future__ import annotations

from dataclasses import dataclass

from edumon.exporters.notify.model import Message
from edumon.exporters.notify.render import MarkdownStyle, render_markdown
from edumon.exporters.notify.vendor import JSON_HEADERS, Outgoing, check_code, json_body

# errcode 45009: API frequency out of limit (20 messages a minute per bot); -1: system busy.
# 93000 (invalid webhook URL) and 40058 (content too long) need a fix, not a retry.
RATE_LIMITED = frozenset({45009})
TRANSIENT = frozenset({-1})

STYLE = MarkdownStyle(
    title=lambda title: f"### {title}",
    # WeCom markdown colours: warning is orange-red, info green.
    firing=lambda n: f'<font color="warning">**告警 {n} 条**</font>',
    resolved=lambda n: f'<font color="info">**已恢复 {n} 条**</font>',
    school=lambda school: f"#### {school}",
    # markdown.content may not exceed 4096 bytes (errcode 40058).
    budget_bytes=4_000,
)


@dataclass(frozen=True, slots=True)
class WeCom:
    """``{"msgtype": "markdown", "markdown": {"content": ...}}``; the bot key is in the URL."""

    kind: str = "wecom"

    def request(self, message: Message, url: str, secret: str | None, now: float) -> Outgoing:
        payload = {"msgtype": "markdown", "markdown": {"content": render_markdown(message, STYLE)}}
        return Outgoing(url, dict(JSON_HEADERS), json_body(payload))

    def check_reply(self, body: bytes) -> None:
        check_code(
            body,
            field="errcode",
            message_field="errmsg",
            rate_limited=RATE_LIMITED,
            transient=TRANSIENT,
        )
