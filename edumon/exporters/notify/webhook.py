"""A generic JSON webhook: the message and its alerts as data, optionally signed (HMAC-SHA256)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edumon.domain.alerts import Alert
from edumon.exporters.notify.model import Message
from edumon.exporters.notify.render import MarkdownStyle, render_markdown
from edumon.exporters.notify.signing import webhook_signature
from edumon.exporters.notify.vendor import JSON_HEADERS, Outgoing, json_body

SCHEMA_VERSION = "1"

STYLE = MarkdownStyle(
    title=lambda title: f"### {title}",
    firing=lambda n: f"**告警 {n} 条**",
    resolved=lambda n: f"**已恢复 {n} 条**",
    school=lambda school: f"#### {school}",
    budget_bytes=64_000,
)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def alert_json(alert: Alert) -> dict[str, Any]:
    """One alert as the webhook's JSON object (times as ISO-8601 UTC)."""
    return {
        "name": alert.name,
        "status": alert.status,
        "severity": alert.severity,
        "school": alert.school,
        "school_name": alert.school_name,
        "classroom": alert.classroom,
        "classroom_name": alert.classroom_name,
        "lesson": alert.lesson,
        "device": alert.device,
        "summary": alert.summary,
        "starts_at": _iso(alert.starts_at),
        "ends_at": _iso(alert.ends_at),
        "fingerprint": alert.fingerprint,
        "labels": dict(alert.labels),
    }


@dataclass(frozen=True, slots=True)
class Webhook:
    """``{"version", "source", "status", "title", "text", "alerts": [...]}``; any 2xx is taken.

    With a secret, the headers carry ``X-Edumon-Timestamp`` (Unix seconds) and
    ``X-Edumon-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body>``.
    """

    kind: str = "webhook"

    def request(self, message: Message, url: str, secret: str | None, now: float) -> Outgoing:
        payload = {
            "version": SCHEMA_VERSION,
            "source": "edumon",
            "status": message.status,
            "title": message.title,
            "text": render_markdown(message, STYLE),
            "alerts": [alert_json(a) for a in message.alerts],
        }
        body = json_body(payload)
        headers = dict(JSON_HEADERS)
        if secret:
            timestamp = int(now)
            headers["X-Edumon-Timestamp"] = str(timestamp)
            headers["X-Edumon-Signature"] = "sha256=" + webhook_signature(secret, timestamp, body)
        return Outgoing(url, headers, body)

    def check_reply(self, body: bytes) -> None:
        return None
