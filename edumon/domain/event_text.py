"""What an event is about and how it reads: its kind of device, its message in Chinese and English.

Rendered when an event is shown, not when it is stored, so events written before a wording
changed read like new ones; names come from the inventory in force (``Names``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edumon.domain.models import Event, EventKind

DeviceKind = Literal["switch", "terminal", "school", "classroom", "collector"]
"""What an event is about: a switch (ports, reboots, reachability), a classroom terminal, a
school (cut off from the district network), a classroom (its terminal offline in lessons) or
the collector itself (blind while its MQTT broker link is down)."""

DEVICE_KINDS: dict[DeviceKind, frozenset[EventKind]] = {
    "switch": frozenset(
        {
            EventKind.LINK_DOWN,
            EventKind.LINK_UP,
            EventKind.SPEED_DOWNGRADE,
            EventKind.SPEED_UPGRADE,
            EventKind.DEVICE_REBOOT,
            EventKind.DEVICE_UNREACHABLE,
            EventKind.DEVICE_REACHABLE,
        }
    ),
    "terminal": frozenset({EventKind.TERMINAL_ONLINE, EventKind.TERMINAL_OFFLINE}),
    "school": frozenset({EventKind.SCHOOL_OUTAGE, EventKind.SCHOOL_RESTORED}),
    "classroom": frozenset({EventKind.CLASSROOM_OUTAGE, EventKind.CLASSROOM_RESTORED}),
    "collector": frozenset({EventKind.COLLECTOR_BLIND, EventKind.COLLECTOR_SIGHTED}),
}
"""The event kinds of each kind of device."""

_KIND_OF = {k: dk for dk, kinds in DEVICE_KINDS.items() for k in kinds}


def device_kind(kind: EventKind) -> DeviceKind:
    """The kind of device events of this kind are about."""
    return _KIND_OF[kind]


def device_of(event: Event) -> str:
    """The id of what the event is about: a switch id, a terminal id, a school code or a
    classroom id (a school outage is stored under its uplink switch; it is about the school)."""
    if device_kind(event.kind) == "school" and event.school is not None:
        return event.school
    return event.device_id


@dataclass(frozen=True, slots=True)
class Names:
    """The display names an event's text uses (the id where the inventory has none)."""

    school: str | None = None
    classroom: str | None = None


_OFFLINE_ZH = {
    "will": "连接中断或代理被终止（遗嘱消息）",
    "shutdown": "正常关机",
    "timeout": "心跳停止（断电或断网）",
}
_OFFLINE_EN = {
    "will": "its connection was lost or its agent was killed (Last Will)",
    "shutdown": "it shut down cleanly",
    "timeout": "its heartbeats stopped (power loss or network cut)",
}


def _mbps(value: object) -> str:
    return f"{value:g} Mbit/s" if isinstance(value, int | float) else "?"


def _unreachable_reason(event: Event) -> str | None:
    reason = event.details.get("reason")
    if isinstance(reason, str):
        return reason
    # Stored before the reason was kept in details: "switch X unreachable: REASON".
    prefix = f"switch {event.device_id} unreachable: "
    return event.message[len(prefix) :] if event.message.startswith(prefix) else None


def _where(event: Event, names: Names) -> tuple[str, str]:
    """The school and classroom an event happened in, as a prefix: 第一小学 一年级(1)班（A-101）."""
    parts_zh: list[str] = []
    parts_en: list[str] = []
    if event.school is not None:
        parts_zh.append(names.school or event.school)
        parts_en.append(f"school {event.school}")
    if event.classroom is not None:
        room = names.classroom or event.classroom
        parts_zh.append(f"{room}（{event.classroom}）" if room != event.classroom else room)
        parts_en.append(f"classroom {event.classroom}")
    return " ".join(parts_zh), ", ".join(parts_en)


def describe(event: Event, names: Names) -> tuple[str, str]:
    """The event's message in Chinese and in English.

    Args:
        event: the event as stored.
        names: the names of its school and classroom.

    Returns:
        (Chinese, English); kinds without a rendering of their own keep the stored message.
    """
    k = event.kind
    d = event.details
    sw = event.device_id
    port = event.interface or ""
    zh_where, en_where = _where(event, names)
    at_zh = f"{zh_where} " if zh_where else ""
    at_en = f" ({en_where})" if en_where else ""
    if k is EventKind.LINK_DOWN:
        status = str(d.get("oper_status", "down"))
        return (
            f"{at_zh}交换机 {sw} 端口 {port} 断开（{status}）",
            f"{port} on {sw} went {status}{at_en}",
        )
    if k is EventKind.LINK_UP:
        speed = d.get("speed_mbps")
        zh_speed = f"，速率 {_mbps(speed)}" if speed is not None else ""
        en_speed = f" at {_mbps(speed)}" if speed is not None else ""
        return (
            f"{at_zh}交换机 {sw} 端口 {port} 已连接{zh_speed}",
            f"{port} on {sw} came up{en_speed}{at_en}",
        )
    if k in (EventKind.SPEED_DOWNGRADE, EventKind.SPEED_UPGRADE):
        old, new = _mbps(d.get("previous_speed_mbps")), _mbps(d.get("speed_mbps"))
        verb = "降速" if k is EventKind.SPEED_DOWNGRADE else "提速"
        return (
            f"{at_zh}交换机 {sw} 端口 {port} {verb}：{old} → {new}",
            f"{port} on {sw} changed speed from {old} to {new}{at_en}",
        )
    if k is EventKind.DEVICE_REBOOT:
        uptime = d.get("uptime_seconds")
        up = f"{uptime:.0f} s" if isinstance(uptime, int | float) else "unknown"
        evidence = d.get("evidence", "")
        return (
            f"{at_zh}交换机 {sw} 已重启（当前运行时间 {up}，依据 {evidence}）",
            f"switch {sw} rebooted (uptime now {up}, from {evidence}){at_en}",
        )
    if k is EventKind.DEVICE_UNREACHABLE:
        reason = _unreachable_reason(event)
        return (
            f"{at_zh}交换机 {sw} 无法访问" + (f"：{reason}" if reason else ""),
            f"switch {sw} unreachable{at_en}" + (f": {reason}" if reason else ""),
        )
    if k is EventKind.DEVICE_REACHABLE:
        return (f"{at_zh}交换机 {sw} 已恢复访问", f"switch {sw} reachable again{at_en}")
    if k is EventKind.TERMINAL_ONLINE:
        return (f"{at_zh}终端 {sw} 上线", f"terminal {sw} is online{at_en}")
    if k is EventKind.TERMINAL_OFFLINE:
        why = str(d.get("reason", ""))
        zh_why = f"：{_OFFLINE_ZH[why]}" if why in _OFFLINE_ZH else ""
        en_why = f": {_OFFLINE_EN[why]}" if why in _OFFLINE_EN else ""
        if d.get("after_restart"):
            # An interval the last run left open, closed by what this run learnt (its start).
            zh_why += "（采集服务重启后得知）"
            en_why += " (learnt after the collector restarted)"
        return (f"{at_zh}终端 {sw} 离线{zh_why}", f"terminal {sw} is offline{en_why}{at_en}")
    if k is EventKind.COLLECTOR_BLIND:
        n = d.get("terminals_unknown")
        count_zh = f"，{n} 台终端状态未知" if isinstance(n, int) else ""
        count_en = f"; {n} terminals are unknown" if isinstance(n, int) else ""
        return (
            f"采集服务 {sw} 与 MQTT 服务器断开，暂时无法得知终端状态（不是终端离线）{count_zh}",
            f"collector {sw} lost its MQTT broker link and cannot hear terminals "
            f"(they are unknown, not offline){count_en}",
        )
    if k is EventKind.COLLECTOR_SIGHTED:
        secs = d.get("blind_seconds")
        took_zh = f"（中断 {secs:.0f} 秒）" if isinstance(secs, int | float) else ""
        took_en = f" after {secs:.0f} s" if isinstance(secs, int | float) else ""
        return (
            f"采集服务 {sw} 已恢复与 MQTT 服务器的连接{took_zh}，终端在收到新心跳后恢复状态",
            f"collector {sw} has its MQTT broker link back{took_en}; terminals are known again "
            "as they report",
        )
    # Outage events are written in both languages already: "中文 / English".
    zh, sep, en = event.message.partition(" / ")
    return (zh, en) if sep else (event.message, event.message)
