"""飞书 (Feishu/Lark) custom bot: an interactive card, signed in the body, code in the reply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edumon.exporters.notify.model import Message
from edumon.exporters.notify.render import MarkdownStyle, render_markdown
from edumon.exporters.notify.signing import feishu_sign
from edumon.exporters.notify.vendor import JSON_HEADERS, Outgoing, check_code, json_body

# code 11232: the bot's frequency limit (100 a minute, 5 a second per bot; busier around the
# hour and half hour). 9499 (bad request), 19021 (signature or timestamp), 19022 (IP) and
# 19024 (keyword) need a fix, not a retry.
RATE_LIMITED = frozenset({11232})
TRANSIENT: frozenset[int] = frozenset()

STYLE = MarkdownStyle(
    title=lambda title: "",  # the card's header shows the title
    firing=lambda n: f"**告警 {n} 条**",
    resolved=lambda n: f"**已恢复 {n} 条**",
    school=lambda school: f"**{school}**",
    # A request body may not exceed 20 KB.
    budget_bytes=18_000,
)

_TEMPLATE = {"firing": "red", "resolved": "green", "mixed": "orange"}


@dataclass(frozen=True, slots=True)
class Feishu:
    """``{"timestamp", "sign", "msg_type": "interactive", "card": {...}}`` to .../bot/v2/hook/."""

    kind: str = "feishu"

    def request(self, message: Message, url: str, secret: str | None, now: float) -> Outgoing:
        payload: dict[str, Any] = {}
        if secret:
            timestamp = int(now)
            payload["timestamp"] = str(timestamp)
            payload["sign"] = feishu_sign(secret, timestamp)
        payload["msg_type"] = "interactive"
        payload["card"] = {
            "config": {"wide_screen_mode": True},
            "header": {
                "title": {"tag": "plain_text", "content": message.title},
                "template": _TEMPLATE[message.status],
            },
            "elements": [{"tag": "markdown", "content": render_markdown(message, STYLE)}],
        }
        return Outgoing(url, dict(JSON_HEADERS), json_body(payload))

    def check_reply(self, body: bytes) -> None:
        check_code(
            body,
            field="code",
            message_field="msg",
            rate_limited=RATE_LIMITED,
            transient=TRANSIENT,
        )
