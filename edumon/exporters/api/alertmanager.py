"""POST /api/v1/alertmanager/webhook: Alertmanager's webhook (version 4) into edumon's notifier.

A district that runs Alertmanager points a receiver at edumon and gets the same 企业微信/钉钉/
飞书 messages (per school digests, dedup, rate limit) as one without it::

    receivers:
      - name: edumon
        webhook_configs:
          - url: http://127.0.0.1:9310/api/v1/alertmanager/webhook
            send_resolved: true
            http_config:
              authorization: { credentials_file: /etc/alertmanager/edumon-token }

Alerts carry codes in their labels (``school``, ``classroom``, ``device``); the school's and
classroom's names and the lesson in progress come from edumon's own configuration.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Depends, Header, HTTPException
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from edumon.domain.alerts import Alert, AlertStatus
from edumon.domain.schedule import Place, lesson_at
from edumon.exporters.api.access import require_district
from edumon.ports import NotifierView
from edumon.runtime import Runtime

log = logging.getLogger(__name__)

MAX_ALERTS = 10_000
"""Alertmanager sends a group at a time; a body with more than this is refused."""


@dataclass(frozen=True, slots=True)
class Names:
    """What edumon knows of a school and classroom that Alertmanager's labels do not say."""

    school_name: str | None = None
    classroom_name: str | None = None
    lesson: str | None = None


Describe = Callable[[str, str | None, float], Names]
"""(school code, classroom id or None, Unix seconds) -> names and the lesson at that time."""


class AmAlert(BaseModel):
    """One alert of Alertmanager's webhook body (unknown fields allowed, as versions add some)."""

    model_config = ConfigDict(extra="allow")

    status: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str
    endsAt: str | None = None
    fingerprint: str = ""


class AmWebhook(BaseModel):
    """Alertmanager's webhook body, version 4."""

    model_config = ConfigDict(extra="allow")

    version: str = "4"
    status: str = "firing"
    receiver: str = ""
    alerts: list[AmAlert] = Field(max_length=MAX_ALERTS)


class ReceiverReply(BaseModel):
    """What edumon did with a webhook call."""

    received: int
    queued: int
    invalid: int
    problems: list[str] = Field(
        description="Why alerts were not used, Chinese first, at most 20 (labels to add)"
    )


_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_time(text: str | None) -> float | None:
    """Alertmanager's RFC 3339 time (nanosecond fractions allowed) to Unix seconds.

    Returns:
        None for no time, and for Go's zero time (``0001-01-01T00:00:00Z``), which Alertmanager
        sends as the end of an alert still firing.

    Raises:
        ValueError: not an RFC 3339 time.
    """
    if not text:
        return None
    match = _TIME.match(text.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text[:40]!r}")
    whole, fraction, zone = match.groups()
    iso = whole + (fraction or "")[:7] + ("+00:00" if zone == "Z" else zone)
    when = datetime.fromisoformat(iso)
    if when.year < 1971:
        return None
    return when.timestamp()


def _fingerprint(alert: AmAlert, starts_at: float) -> str:
    # Alertmanager's fingerprint is a hash of the labels: the same for every outage of one
    # classroom. With the start time it names one outage, as edumon's own alerts do.
    base = (
        alert.fingerprint
        or hashlib.sha256(repr(sorted(alert.labels.items())).encode()).hexdigest()[:16]
    )
    return f"am:{base}@{starts_at:.0f}"


def to_alert(alert: AmAlert, describe: Describe) -> Alert:
    """One Alertmanager alert as an edumon Alert.

    Raises:
        ValueError: the alert lacks what a notification needs (a ``school`` label, a valid
            status or start time); the message says what to add to the alert rule.
    """
    labels = alert.labels
    name = labels.get("alertname", "")
    if not name:
        raise ValueError("告警缺少 alertname 标签 (alert has no alertname label)")
    school = labels.get("school", "")
    if not school:
        raise ValueError(f"{name}: 告警缺少 school 标签 (add a school label to the alert rule)")
    if alert.status not in ("firing", "resolved"):
        raise ValueError(f"{name}: status 应为 firing 或 resolved, not {alert.status[:20]!r}")
    status: AlertStatus = "firing" if alert.status == "firing" else "resolved"
    starts_at = parse_time(alert.startsAt)
    if starts_at is None:
        raise ValueError(f"{name}: 缺少 startsAt (no start time)")
    ends_at = parse_time(alert.endsAt) if status == "resolved" else None
    classroom = labels.get("classroom") or None
    names = describe(school, classroom, starts_at)
    summary = (
        alert.annotations.get("summary")
        or alert.annotations.get("description")
        or alert.annotations.get("message")
        or name
    )
    return Alert(
        name=name,
        status=status,
        severity=labels.get("severity", "warning"),
        school=school,
        school_name=labels.get("school_name") or names.school_name or school,
        starts_at=starts_at,
        ends_at=ends_at,
        summary=summary,
        classroom=classroom,
        classroom_name=labels.get("classroom_name") or names.classroom_name,
        lesson=labels.get("lesson") or names.lesson,
        device=labels.get("device") or labels.get("terminal") or None,
        fingerprint=_fingerprint(alert, starts_at),
        labels=dict(labels),
    )


def _authorize(token: SecretStr | None, authorization: str | None) -> None:
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise HTTPException(
            401,
            "需要正确的 bearer token (the notify.receiver_token; in Alertmanager: "
            "http_config.authorization)",
            headers={"WWW-Authenticate": "Bearer"},
        )


def receiver_router(
    notifier: Callable[[], NotifierView | None],
    *,
    token: SecretStr | None,
    describe: Describe,
) -> APIRouter:
    """The receiver's route, with its parts injected (tests need no daemon).

    Args:
        notifier: returns the running Notifier (None: notifications are not configured).
        token: the bearer token required, or None for none.
        describe: names and lesson for a school/classroom code at a time.
    """
    router = APIRouter(tags=["alertmanager"])

    @router.post(
        "/alertmanager/webhook",
        response_model=ReceiverReply,
        responses={
            401: {"description": "The bearer token is missing or wrong"},
            403: {"description": "A school's API token: only the district may send alerts"},
            503: {"description": "No [notify] channels are configured"},
        },
        # Without a receiver token of its own, the API's tokens guard it: a district's only.
        dependencies=[Depends(require_district)],
    )
    async def alertmanager_webhook(
        body: AmWebhook, authorization: str | None = Header(default=None)
    ) -> ReceiverReply:
        """Alertmanager's webhook (version 4): alerts go to edumon's notification channels.

        Alerts need a ``school`` label (school code); ``classroom`` and ``device`` are
        optional; the summary annotation is the message text. Repeats of an alert already
        sent are dropped, resolved alerts send a 已恢复 message.
        """
        _authorize(token, authorization)
        target = notifier()
        if target is None:
            raise HTTPException(503, "通知未配置 (no [notify] channels in the configuration)")
        alerts: list[Alert] = []
        problems: list[str] = []
        for item in body.alerts:
            try:
                alerts.append(to_alert(item, describe))
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            target.reject("invalid", len(problems))
            log.warning(
                "Alertmanager 告警无法使用 (unusable alerts) receiver=%s invalid=%d first=%s",
                body.receiver,
                len(problems),
                problems[0],
            )
        queued = target.submit(alerts)
        return ReceiverReply(
            received=len(body.alerts),
            queued=queued,
            invalid=len(problems),
            problems=problems[:20],
        )

    return router


def describe_from(runtime: Runtime) -> Describe:
    """Names from the configuration, and the lesson from the schedule, for the receiver."""
    schools = runtime.config.schools

    def describe(school: str, classroom: str | None, at: float) -> Names:
        conf = schools.get(school)
        if conf is None:
            return Names()
        room = next((r for r in conf.classrooms if r.id == classroom), None)
        lesson = None
        if runtime.schedule is not None and runtime.calendar is not None:
            when = datetime.fromtimestamp(at, runtime.schedule.timezone)
            period = lesson_at(
                runtime.schedule, runtime.calendar, Place(school, conf.kind, classroom), when
            ).period
            lesson = None if period is None else str(period)
        return Names(conf.name, None if room is None else room.name, lesson)

    return describe


def alertmanager_router(runtime: Runtime) -> APIRouter:
    """The receiver for the daemon's app: its notifier, token and configuration."""
    return receiver_router(
        lambda: runtime.notifier,
        token=runtime.config.notify.receiver_token,
        describe=describe_from(runtime),
    )
