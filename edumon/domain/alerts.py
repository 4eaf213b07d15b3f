"""Alerts as notifications see them: one outage of a school, classroom or device, firing or over."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

AlertStatus = Literal["firing", "resolved"]

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
"""Known severities, least to most severe."""

SEVERITY_ZH: Mapping[str, str] = {"critical": "严重", "warning": "警告", "info": "提示"}


def severity_rank(severity: str) -> int:
    """Order of a severity: info 0, warning 1, critical 2; an unknown one ranks as warning.

    Alertmanager rules may carry severities edumon does not know (``page``, ``major``); treating
    them as warnings sends them to channels that take warnings rather than silently dropping them.
    """
    try:
        return SEVERITIES.index(severity.lower())
    except ValueError:
        return SEVERITIES.index("warning")


@dataclass(frozen=True, slots=True)
class Alert:
    """One outage, as a notification reports it (Chinese text first, codes beside).

    Attributes:
        name: what went wrong, e.g. ``EdumonSchoolUnreachable``.
        status: ``firing`` while the outage lasts, ``resolved`` once it ended.
        severity: ``critical``, ``warning`` or ``info``.
        school: the school's code; school_name its display name.
        starts_at: when the outage began, Unix seconds.
        ends_at: when it ended (resolved alerts), Unix seconds.
        summary: one line a school admin can act on, e.g. "城关第一小学 与教育城域网失联".
        classroom, classroom_name: the classroom affected, if one is.
        lesson: the lesson in progress when it began, e.g. "第3节 10:20-11:00".
        device: the switch or terminal id, if one is.
        fingerprint: stable for one outage (see ``alert_key``); empty: derived from the fields.
        labels: further labels (from Alertmanager), shown to generic webhooks.
    """

    name: str
    status: AlertStatus
    severity: str
    school: str
    school_name: str
    starts_at: float
    ends_at: float | None
    summary: str
    classroom: str | None = None
    classroom_name: str | None = None
    lesson: str | None = None
    device: str | None = None
    fingerprint: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


def alert_key(alert: Alert) -> str:
    """The identity of the outage an alert reports: its fingerprint, else one derived from it.

    The same outage firing and later resolved has the same key; a new outage of the same
    classroom starts later and so has another.
    """
    if alert.fingerprint:
        return alert.fingerprint
    parts = (
        alert.name,
        alert.school,
        alert.classroom or "",
        alert.device or "",
        f"{alert.starts_at:.0f}",
    )
    return "|".join(parts)


def duration_zh(seconds: float) -> str:
    """A duration in Chinese: ``45秒``, ``12分钟``, ``1小时5分钟``, ``2天3小时``."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}秒"
    minutes = total // 60
    if minutes < 60:
        return f"{minutes}分钟"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}小时{minutes}分钟" if minutes else f"{hours}小时"
    days, hours = divmod(hours, 24)
    return f"{days}天{hours}小时" if hours else f"{days}天"
