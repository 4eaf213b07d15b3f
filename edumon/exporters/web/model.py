"""What each status page shows, built from the views the JSON API uses (no I/O, no HTML).

A school's state and its classrooms' states are read off ``SchoolNow`` (edumon.exporters.api.
per_school): the same topology, checks and terminals the API and /metrics answer with.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from edumon.domain.checks import CheckName, CheckResult, Verdict
from edumon.domain.event_text import Names, describe
from edumon.domain.models import Event, OperStatus
from edumon.domain.quality import QualityWarning
from edumon.domain.state import DeviceState, InterfaceState
from edumon.domain.topology import Condition, Connectivity
from edumon.exporters.api.mapping import known_port, local_time
from edumon.exporters.api.per_school import SchoolNow
from edumon.exporters.web import labels as L
from edumon.exporters.web.labels import State
from edumon.runtime import Runtime
from edumon.views import ClassroomNow


@dataclass(frozen=True, slots=True)
class Moment:
    """A time for people: local text and the ISO form with its offset (for ``<time>``)."""

    text: str
    iso: str


def moment(runtime: Runtime, seconds: float | None, *, with_date: bool = True) -> Moment | None:
    """Unix seconds in the district's zone (None stays None)."""
    local: datetime | None = local_time(runtime, seconds)
    if local is None:
        return None
    text = local.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
    return Moment(text, local.isoformat(timespec="seconds"))


# -- states ---------------------------------------------------------------------------------


def school_state(sc: SchoolNow) -> State:
    """A school's worst state: cut off, classrooms offline in a lesson, below target, unknown."""
    link = sc.link.connectivity
    if link.cut_off:
        return State.CUT_OFF
    if sc.terminals.offline_in_lesson:
        return State.OFFLINE_IN_LESSON
    verdict = sc.compliance.verdict
    if verdict is Verdict.FAIL:
        return State.BELOW_TARGET
    if verdict is Verdict.UNKNOWN or link is Connectivity.UNKNOWN:
        return State.UNKNOWN
    return State.OK


def classroom_state(c: ClassroomNow, check: CheckResult | None) -> State:
    """A classroom's state: its terminal against the timetable, then its port against the target.

    Behind a failure (its school cut off, its switch silent) it is unknown, never offline. A
    classroom whose terminal reports nothing is judged by its port alone (``ok`` when at target).
    """
    failing = check is not None and check.verdict is Verdict.FAIL
    if c.uplink_down:
        return State.UNKNOWN
    if c.terminal is None:
        if failing:
            return State.BELOW_TARGET
        return State.OK if check is not None and check.verdict is Verdict.PASS else State.UNKNOWN
    if c.offline_in_lesson:
        return State.OFFLINE_IN_LESSON
    if failing:
        return State.BELOW_TARGET
    if c.online and not c.stale:
        return State.ONLINE
    return State.OFF_SCHEDULE if c.status == "offline" else State.UNKNOWN


def _room_checks(sc: SchoolNow) -> dict[str | None, CheckResult]:
    return {r.classroom: r for r in sc.compliance.classrooms}


def classroom_states(sc: SchoolNow) -> list[tuple[ClassroomNow, CheckResult | None, State]]:
    """Each classroom of a school with its check and state, in the inventory's order."""
    checks = _room_checks(sc)
    out = []
    for c in sc.classrooms:
        check = checks.get(c.room.id)
        out.append((c, check, classroom_state(c, check)))
    return out


# -- the district grid ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Uplink:
    """A school's uplink: the port, its status, speed against the target, traffic."""

    switch: str
    port: str
    status: str
    """Chinese (连通, 断开, 未知)."""
    speed: str
    target: str
    verdict: State
    """``ok``, ``below-target`` or ``unknown``."""
    in_bps: str
    out_bps: str
    reason: str
    """The connectivity in Chinese with its reason (topology's words)."""


@dataclass(frozen=True, slots=True)
class SchoolTile:
    """One school in the district grid."""

    code: str
    name: str
    kind: str
    state: State
    classrooms: int
    counts: dict[State, int]
    """Its classrooms by state."""
    uplink: Uplink


def uplink(runtime: Runtime, sc: SchoolNow) -> Uplink:
    """A school's uplink now, from its checks and the port's last poll."""
    ref = sc.ref
    link = sc.link
    speed_check = next((r for r in sc.compliance.uplink if r.check is CheckName.UPLINK_SPEED), None)
    iface = known_port(runtime, ref.uplink_switch, ref.uplink_port)
    up = iface is not None and iface.oper_status is OperStatus.UP
    status = "unknown" if iface is None else ("up" if up else "down")
    speed = iface.speed_mbps if up and iface is not None else None
    verdict = State.UNKNOWN
    if speed_check is not None and speed_check.verdict is Verdict.PASS:
        verdict = State.OK
    elif speed_check is not None and speed_check.verdict is Verdict.FAIL:
        verdict = State.BELOW_TARGET
    target = runtime.config.targets.uplink_mbps
    return Uplink(
        switch=ref.uplink_switch,
        port=ref.uplink_port,
        status=L.PORT_STATUS[status],
        speed=L.mbps(speed),
        target=L.mbps(target),
        verdict=verdict,
        in_bps=L.bits_per_second(iface.in_bps if iface is not None else None),
        out_bps=L.bits_per_second(iface.out_bps if iface is not None else None),
        # Said only when something is wrong: "正常 / uplink ... is up" adds nothing.
        reason=f"{link.connectivity.label}：{link.reason}"
        if link.reason and link.connectivity is not Connectivity.OK
        else "",
    )


def school_tile(runtime: Runtime, sc: SchoolNow) -> SchoolTile:
    """One school's tile: its worst state and its classrooms counted by state."""
    counts = Counter(state for _, _, state in classroom_states(sc))
    return SchoolTile(
        code=sc.ref.code,
        name=sc.ref.name,
        kind=L.school_kind(sc.ref.kind),
        state=school_state(sc),
        classrooms=len(sc.ref.classrooms),
        counts={s: counts.get(s, 0) for s in L.CLASSROOM_STATES},
        uplink=uplink(runtime, sc),
    )


@dataclass(frozen=True, slots=True)
class District:
    """The district page: every visible school's tile and the counts above the grid."""

    name: str
    tiles: list[SchoolTile]
    schools_by_state: dict[State, int]
    classrooms_by_state: dict[State, int]
    classrooms: int


def district(name: str, tiles: list[SchoolTile]) -> District:
    """The district page from its schools' tiles."""
    schools = Counter(t.state for t in tiles)
    rooms: Counter[State] = Counter()
    for t in tiles:
        rooms.update(t.counts)
    return District(
        name=name,
        tiles=tiles,
        schools_by_state={s: schools.get(s, 0) for s in L.SCHOOL_STATES},
        classrooms_by_state={s: rooms.get(s, 0) for s in L.CLASSROOM_STATES},
        classrooms=sum(t.classrooms for t in tiles),
    )


# -- a school's page ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassroomRow:
    id: str
    name: str
    state: State
    switch: str | None
    port: str | None
    speed: str
    """The port's speed now (``—`` when down or unknown)."""
    terminal: str | None
    detail: str
    """Why, in Chinese: the lesson it misses, the cause and since when, the speed shortfall."""


@dataclass(frozen=True, slots=True)
class SwitchRow:
    id: str
    name: str
    sys_name: str
    condition: str
    state: State
    reason: str
    ports: int
    ports_up: int
    visible: bool
    """Whether this request may open the switch's page."""


@dataclass(frozen=True, slots=True)
class EventRow:
    at: Moment | None
    text: str
    state: State


@dataclass(frozen=True, slots=True)
class SchoolPage:
    tile: SchoolTile
    connectivity: str
    classrooms: list[ClassroomRow]
    switches: list[SwitchRow]
    events: list[EventRow] | None
    """None when the database could not be read."""
    warnings: list[QualityWarning] = field(default_factory=list)


def _room_detail(runtime: Runtime, c: ClassroomNow, check: CheckResult | None, s: State) -> str:
    parts: list[str] = []
    if s is State.UNKNOWN and c.unknown_reason:
        parts.append(c.unknown_reason)
    elif s is State.UNKNOWN and c.stale:
        parts.append("采集服务与 MQTT 服务器的连接中断过，等待终端的新心跳")
    if s in (State.OFFLINE_IN_LESSON, State.OFF_SCHEDULE):
        cause = c.offline_reason
        if s is State.OFFLINE_IN_LESSON and c.period:
            parts.append(f"正在上课：{c.period}")
        if cause is not None:
            parts.append(L.OFFLINE_CAUSE.get(cause, cause))
        since = moment(runtime, c.since)
        if since is not None:
            parts.append(f"自 {since.text} 起")
    if check is not None and check.verdict is Verdict.FAIL:
        if check.speed_mbps is not None:
            parts.append(f"速率 {L.mbps(check.speed_mbps)}，目标 {L.mbps(check.target_mbps)}")
        else:
            parts.append(f"端口未连通，目标 {L.mbps(check.target_mbps)}")
    return "；".join(parts)


def classroom_rows(runtime: Runtime, sc: SchoolNow) -> list[ClassroomRow]:
    """A school's classrooms, worst first, then in the inventory's order."""
    rows = []
    for c, check, s in classroom_states(sc):
        iface = known_port(runtime, c.room.switch, c.room.port)
        up = iface is not None and iface.oper_status is OperStatus.UP
        rows.append(
            ClassroomRow(
                id=c.room.id,
                name=c.room.name,
                state=s,
                switch=c.room.switch,
                port=c.room.port,
                speed=L.mbps(iface.speed_mbps if up and iface is not None else None),
                terminal=c.terminal.terminal if c.terminal is not None else None,
                detail=_room_detail(runtime, c, check, s),
            )
        )
    return sorted(rows, key=lambda r: r.state.rank)


def switch_name(runtime: Runtime, switch_id: str) -> str:
    """A switch's configured name, or its id when it has none."""
    sw = runtime.config.switches.get(switch_id)
    name = getattr(sw, "name", None)
    return name if isinstance(name, str) and name else switch_id


def switch_row(
    runtime: Runtime, dev: DeviceState, condition: Condition, reason: str, visible: bool
) -> SwitchRow:
    """One switch in a school's list."""
    zh, css = L.SWITCH_CONDITION[condition.value]
    up = sum(1 for i in dev.interfaces.values() if i.oper_status is OperStatus.UP)
    return SwitchRow(
        id=dev.device_id,
        name=switch_name(runtime, dev.device_id),
        sys_name=dev.sys_name,
        condition=zh,
        state=State(css),
        reason=reason if condition is not Condition.UP else "",
        ports=len(dev.interfaces),
        ports_up=up if dev.reachable else 0,
        visible=visible,
    )


def event_row(runtime: Runtime, e: Event) -> EventRow:
    """One stored event, in Chinese with the school's and classroom's names."""
    inventory = runtime.state.inventory
    ref = inventory.schools.get(e.school) if e.school is not None else None
    room_name = None
    if ref is not None and e.classroom is not None:
        room_name = next((r.name for r in ref.classrooms if r.id == e.classroom), None)
    names = Names(school=ref.name if ref is not None else None, classroom=room_name)
    return EventRow(
        at=moment(runtime, e.at),
        text=describe(e, names)[0],  # the API's Chinese message, word for word
        state=L.EVENT_SEVERITY.get(e.kind, State.OK),
    )


# -- a switch's page ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortRow:
    name: str
    alias: str
    role: str
    """Chinese: 上联, 教室, 级联, or empty for a port the inventory does not name."""
    serves: str
    """The school or classroom it serves, by name with the code beside."""
    status: str
    state: State
    speed: str
    in_bps: str
    out_bps: str
    errors: str
    last_change: Moment | None


@dataclass(frozen=True, slots=True)
class SwitchPage:
    id: str
    name: str
    sys_name: str
    sys_descr: str
    host: str
    school: str | None
    school_name: str | None
    school_visible: bool
    condition: str
    state: State
    reason: str
    last_poll: Moment | None
    uptime: str
    reboots: int
    ports: list[PortRow]


def _port_row(
    runtime: Runtime, dev: DeviceState, iface: InterfaceState, classroom_target: float | None
) -> PortRow:
    inventory = runtime.state.inventory
    known = bool(dev.reachable) and iface.known
    owner = inventory.owner(dev.device_id, iface.name)
    role = ""
    serves = ""
    if owner is not None:
        role = L.PORT_ROLE[owner.role.value]
        ref = inventory.schools.get(owner.school)
        school_name = ref.name if ref is not None else owner.school
        if owner.classroom is not None and ref is not None:
            room = next((r for r in ref.classrooms if r.id == owner.classroom), None)
            serves = f"{room.name if room else owner.classroom}（{owner.classroom}）"
        else:
            serves = f"{school_name}（{owner.school}）"
    elif (dev.device_id, iface.name) in inventory.link_ports:
        role = L.PORT_ROLE["link"]
    up = known and iface.oper_status is OperStatus.UP
    if not known:
        status, state = "unknown", State.UNKNOWN
    elif up:
        status, state = "up", State.OK
        target = (
            runtime.config.targets.uplink_mbps
            if owner is not None and owner.role.value == "uplink"
            else classroom_target
            if owner is not None
            else None
        )
        if target is not None and iface.speed_mbps is not None and iface.speed_mbps < target:
            state = State.BELOW_TARGET
    else:
        status = iface.oper_status.name.lower()
        state = State.BELOW_TARGET if owner is not None else State.OFF_SCHEDULE
    errors = None
    if known and iface.in_errors is not None and iface.out_errors is not None:
        errors = iface.in_errors + iface.out_errors
    return PortRow(
        name=iface.name,
        alias=iface.alias,
        role=role,
        serves=serves,
        status=L.PORT_STATUS.get(status, status),
        state=state,
        speed=L.mbps(iface.speed_mbps if up else None),
        in_bps=L.bits_per_second(iface.in_bps if known else None),
        out_bps=L.bits_per_second(iface.out_bps if known else None),
        errors="—" if errors is None else str(errors),
        last_change=moment(runtime, iface.last_change) if iface.last_change else None,
    )


def switch_page(
    runtime: Runtime,
    dev: DeviceState,
    condition: Condition,
    reason: str,
    school_visible: bool,
) -> SwitchPage:
    """A switch and its ports, in ifIndex order."""
    inventory = runtime.state.inventory
    code = dev.school or inventory.switch_school.get(dev.device_id)
    ref = inventory.schools.get(code) if code is not None else None
    sw = runtime.config.switches.get(dev.device_id)
    zh, css = L.SWITCH_CONDITION[condition.value]
    target = runtime.config.targets.classroom_mbps
    ports = sorted(dev.interfaces.values(), key=lambda i: i.if_index)
    return SwitchPage(
        id=dev.device_id,
        name=switch_name(runtime, dev.device_id),
        sys_name=dev.sys_name,
        sys_descr=dev.sys_descr,
        host=sw.host if sw is not None else "",  # only the host: never its credentials
        school=code,
        school_name=ref.name if ref is not None else None,
        school_visible=school_visible,
        condition=zh,
        state=State(css),
        reason=reason if condition is not Condition.UP else "",
        last_poll=moment(runtime, dev.last_poll_at),
        uptime=L.duration(dev.uptime_seconds)
        if dev.reachable and dev.uptime_seconds is not None
        else "—",
        reboots=dev.reboots,
        ports=[_port_row(runtime, dev, i, target) for i in ports],
    )
