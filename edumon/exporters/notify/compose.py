"""Alerts to a message: one section per school, one line per alert, in Chinese with codes beside."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo

from edumon.domain.alerts import SEVERITY_ZH, Alert, alert_key, duration_zh
from edumon.exporters.notify.model import Line, Message, MessageStatus, Section


def _clock(ts: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ts, UTC).astimezone(tz).strftime("%m-%d %H:%M")


def _where(alert: Alert) -> str:
    if alert.classroom:
        name = alert.classroom_name or alert.classroom
        where = name if name == alert.classroom else f"{name}（{alert.classroom}）"
    else:
        where = "全校"
    if alert.device and alert.device != alert.classroom:
        where += f" 设备 {alert.device}"
    return where


def line_of(alert: Alert, tz: tzinfo) -> Line:
    """One alert as one line: where, what, the lesson and when.

    Firing: ``[严重] 三年级2班（cgxx-302）：终端离线｜第3节 10:20-11:00｜11-23 10:21 起``.
    Resolved: ``三年级2班（cgxx-302）：终端离线｜已恢复，持续 1小时5分钟（11-23 10:21 至 11:26）``.
    """
    parts = [f"{_where(alert)}：{alert.summary}"]
    if alert.lesson:
        parts.append(alert.lesson)
    if alert.status == "resolved":
        end = alert.ends_at if alert.ends_at is not None else alert.starts_at
        span = f"{_clock(alert.starts_at, tz)} 至 {_clock(end, tz)[-5:]}"
        parts.append(f"已恢复，持续 {duration_zh(end - alert.starts_at)}（{span}）")
        return Line(alert, "｜".join(parts))
    parts.append(f"{_clock(alert.starts_at, tz)} 起")
    severity = SEVERITY_ZH.get(alert.severity.lower(), alert.severity)
    return Line(alert, f"[{severity}] " + "｜".join(parts))


def _section(alerts: Sequence[Alert], tz: tzinfo) -> Section:
    # A classroom that went offline and came back within one digest window is reported once,
    # as recovered: the resolved alert supersedes the firing one of the same outage.
    resolved_keys = {alert_key(a) for a in alerts if a.status == "resolved"}
    firing = tuple(
        line_of(a, tz) for a in alerts if a.status == "firing" and alert_key(a) not in resolved_keys
    )
    resolved = tuple(line_of(a, tz) for a in alerts if a.status == "resolved")
    first = alerts[0]
    return Section(first.school, first.school_name or first.school, firing, resolved)


def _status(firing: int, resolved: int) -> MessageStatus:
    if firing and resolved:
        return "mixed"
    return "firing" if firing else "resolved"


def compose(batches: Sequence[Sequence[Alert]], tz: tzinfo) -> Message:
    """A message from one batch of alerts per school (one batch: that school's digest).

    Args:
        batches: each a non-empty list of one school's alerts, in arrival order.
        tz: the district's time zone, for the times shown.

    Returns:
        The vendor-neutral message.

    Raises:
        ValueError: no alerts at all.
    """
    sections = tuple(_section(b, tz) for b in batches if b)
    if not sections:
        raise ValueError("compose needs at least one alert")
    firing = sum(len(s.firing) for s in sections)
    resolved = sum(len(s.resolved) for s in sections)
    status = _status(firing, resolved)
    if len(sections) > 1:
        counts = "，".join(
            text
            for n, text in ((firing, f"告警 {firing} 条"), (resolved, f"已恢复 {resolved} 条"))
            if n
        )
        title = f"【告警汇总】{len(sections)} 所学校：{counts}"
        return Message(title, sections, status)
    section = sections[0]
    school = f"{section.school_name}（{section.school}）"
    if status == "mixed":
        title = f"【告警 {firing} 条 · 已恢复 {resolved} 条】{school}"
    elif firing + resolved == 1:
        only = (section.firing or section.resolved)[0].alert
        tag = "【告警】" if status == "firing" else "【已恢复】"
        title = f"{tag}{only.summary}"
        if section.school_name not in only.summary:
            title = f"{tag}{school} {only.summary}"
    elif status == "firing":
        title = f"【告警】{school} {firing} 条告警"
    else:
        title = f"【已恢复】{school} {resolved} 条告警已恢复"
    return Message(title, sections, status)
