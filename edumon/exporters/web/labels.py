"""The status page's words: states, conditions and events in Chinese (English beside), numbers.

Pure: no I/O, no web framework. What a state *is* is decided in ``edumon.exporters.web.model``;
this module only names it and formats figures for people.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from edumon.domain.models import EventKind


class State(enum.StrEnum):
    """A school's or a classroom's state on the page, worst first.

    A school takes its worst part's state; a classroom its own. The value is the CSS class.
    """

    CUT_OFF = "cut-off"
    OFFLINE_IN_LESSON = "offline-in-lesson"
    BELOW_TARGET = "below-target"
    UNKNOWN = "unknown"
    OFF_SCHEDULE = "off-schedule"
    OK = "ok"
    ONLINE = "online"

    @property
    def zh(self) -> str:
        return _STATE_ZH[self]

    @property
    def en(self) -> str:
        return _STATE_EN[self]

    @property
    def rank(self) -> int:
        """0 for the worst; sorts a district's schools worst first."""
        return list(State).index(self)


_STATE_ZH = {
    State.CUT_OFF: "断网",
    State.OFFLINE_IN_LESSON: "上课离线",
    State.BELOW_TARGET: "未达标",
    State.UNKNOWN: "未知",
    State.OFF_SCHEDULE: "课外离线",
    State.OK: "正常",
    State.ONLINE: "在线",
}
_STATE_EN = {
    State.CUT_OFF: "cut off",
    State.OFFLINE_IN_LESSON: "offline in lesson",
    State.BELOW_TARGET: "below target",
    State.UNKNOWN: "unknown",
    State.OFF_SCHEDULE: "off schedule",
    State.OK: "all good",
    State.ONLINE: "online",
}

SCHOOL_STATES = (
    State.CUT_OFF,
    State.OFFLINE_IN_LESSON,
    State.BELOW_TARGET,
    State.UNKNOWN,
    State.OK,
)
"""The states a school can be in, in the order the district's counts list them."""

CLASSROOM_STATES = (
    State.OFFLINE_IN_LESSON,
    State.BELOW_TARGET,
    State.UNKNOWN,
    State.OFF_SCHEDULE,
    State.ONLINE,
    State.OK,
)
"""The states a classroom can be in (``ok``: its port is fine, no terminal reports)."""

SCHOOL_KINDS: Mapping[str, str] = {
    "primary": "小学",
    "middle": "中学",
    "nine_year": "九年一贯制",
    "high": "高中",
    "vocational": "职业学校",
    "kindergarten": "幼儿园",
    "other": "其他",
}

PORT_STATUS: Mapping[str, str] = {
    "up": "连通",
    "down": "断开",
    "testing": "测试中",
    "unknown": "未知",
    "dormant": "休眠",
    "not_present": "不存在",
    "lower_layer_down": "下层断开",
}

SWITCH_CONDITION: Mapping[str, tuple[str, str]] = {
    # condition → (Chinese, CSS state class)
    "up": ("正常", State.OK.value),
    "unreachable": ("失联", State.CUT_OFF.value),
    "unknown": ("未知", State.UNKNOWN.value),
    "pending": ("待轮询", State.UNKNOWN.value),
}

OFFLINE_CAUSE: Mapping[str, str] = {
    "will": "连接丢失",
    "shutdown": "正常关机",
    "timeout": "心跳中断",
    "never_seen": "从未上报",
}

PORT_ROLE: Mapping[str, str] = {"uplink": "上联", "classroom": "教室", "link": "级联"}


def school_kind(kind: str) -> str:
    """A school's kind in Chinese (the code itself when not a known one)."""
    return SCHOOL_KINDS.get(kind, kind)


def mbps(value: float | None) -> str:
    """A link speed as network people write it: ``100M``, ``1000M``, ``10G``; ``—`` unknown."""
    if value is None:
        return "—"
    if value >= 10000 and value % 1000 == 0:
        return f"{value / 1000:g}G"
    return f"{value:g}M"


def bits_per_second(value: float | None) -> str:
    """A traffic rate in bits per second with an SI unit: ``12.3 Mbit/s``; ``—`` when unknown."""
    if value is None:
        return "—"
    for unit, size in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} bit/s"


def duration(seconds: float) -> str:
    """A duration for people: ``45秒``, ``12分``, ``3小时5分``, ``2天4小时``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}秒"
    if s < 3600:
        return f"{s // 60}分"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h}小时{m}分" if m else f"{h}小时"
    d, h = divmod(s // 3600, 24)
    return f"{d}天{h}小时" if h else f"{d}天"


def _num(details: Mapping[str, object], key: str) -> str:
    value = details.get(key)
    return mbps(float(value)) if isinstance(value, int | float) else "—"


EVENT_SEVERITY: Mapping[EventKind, State] = {
    EventKind.LINK_DOWN: State.BELOW_TARGET,
    EventKind.SPEED_DOWNGRADE: State.BELOW_TARGET,
    EventKind.DEVICE_REBOOT: State.BELOW_TARGET,
    EventKind.DEVICE_UNREACHABLE: State.CUT_OFF,
    EventKind.TERMINAL_OFFLINE: State.OFF_SCHEDULE,
    EventKind.SCHOOL_OUTAGE: State.CUT_OFF,
    EventKind.CLASSROOM_OUTAGE: State.OFFLINE_IN_LESSON,
}
"""The colour an event is listed in (the others: all good, e.g. a link or switch back)."""
