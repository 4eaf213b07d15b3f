"""钉钉 (DingTalk) custom robot: markdown messages, 加签 in the URL, errcode in the reply."""

from __future__ import annotations

from dataclasses import dataclass

from edumon.exporters.notify.model import Message
from edumon.exporters.notify.render import MarkdownStyle, render_markdown
from edumon.exporters.notify.signing import dingtalk_query
from edumon.exporters.notify.vendor import JSON_HEADERS, Outgoing, check_code, json_body

# errcode 130101: "send too fast, exceed 20 times per minute" (the robot is then muted for a
# while); -1: system busy. Anything else (300001 bad token, 310000 signature, keyword or IP
# whitelist) needs the configuration fixed, not a retry.
RATE_LIMITED = frozenset({130101})
TRANSIENT = frozenset({-1})

STYLE = MarkdownStyle(
    title=lambda title: f"#### {title}",
    firing=lambda n: f"**告警 {n} 条**",
    resolved=lambda n: f"**已恢复 {n} 条**",
    school=lambda school: f"##### {school}",
    # The documented limit is 20,000 bytes of message; keep room for the JSON around it.
    budget_bytes=18_000,
)


@dataclass(frozen=True, slots=True)
class DingTalk:
    """``{"msgtype": "markdown", "markdown": {"title", "text"}}`` to the robot's send URL."""

    kind: str = "dingtalk"

    def request(self, message: Message, url: str, secret: str | None, now: float) -> Outgoing:
        payload = {
            "msgtype": "markdown",
            # The title is what the chat list and the phone's notification show.
            "markdown": {"title": message.title, "text": render_markdown(message, STYLE)},
        }
        if secret:
            sep = "&" if "?" in url else "?"
            url = f"{url}{sep}{dingtalk_query(secret, int(now * 1000))}"
        return Outgoing(url, dict(JSON_HEADERS), json_body(payload))

    def check_reply(self, body: bytes) -> None:
        check_code(
            body,
            field="errcode",
            message_field="errmsg",
            rate_limited=RATE_LIMITED,
            transient=TRANSIENT,
        )
