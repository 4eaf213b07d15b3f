"""State, reports and events mapped to the API's pydantic schemas (``edumon.exporters.schemas``).

Pure conversions: the route modules find what a request names and hand it here. Only the host
is ever taken from a switch's configuration, never its SNMP credentials.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import overload

from edumon.domain.checks import CheckResult, Verdict
from edumon.domain.event_text import Names, describe, device_kind, device_of
from edumon.domain.inventory import SchoolRef
from edumon.domain.models import Event, OperStatus
from edumon.domain.state import DeviceState, InterfaceState
from edumon.domain.topology import Topology, assess
from edumon.exporters import schemas as s
from edumon.runtime import Runtime
from edumon.views import ClassroomNow, local_date, schedule_timezone


@overload
def local_time(runtime: Runtime, seconds: float) -> datetime: ...
@overload
def local_time(runtime: Runtime, seconds: float | None) -> datetime | None: ...
def local_time(runtime: Runtime, seconds: float | None) -> datetime | None:
    """Unix seconds as an aware datetime in the district's zone (``+08:00`` for Beijing time).

    Every timestamp a person reads is in the zone the timetable is kept in, with its offset
    written out, so ``at`` and ``第1节 08:00-08:45`` read alike.
    """
    return None if seconds is None else datetime.fromtimestamp(seconds, schedule_timezone(runtime))


# -- names beside codes -------------------------------------------------------------------------


@overload
def school_name(runtime: Runtime, code: str) -> str: ...
@overload
def school_name(runtime: Runtime, code: str | None) -> str | None: ...
def school_name(runtime: Runtime, code: str | None) -> str | None:
    """A school's name (its code if the inventory does not know it); None for None."""
    if code is None:
        return None
    ref = runtime.state.inventory.schools.get(code)
    return ref.name if ref is not None else code


def room_name(runtime: Runtime, school: str | None, classroom: str | None) -> str | None:
    """A classroom's name (its id if the inventory does not know it); None for None."""
    if classroom is None:
        return None
    ref = runtime.state.inventory.schools.get(school) if school is not None else None
    for room in ref.classrooms if ref is not None else ():
        if room.id == classroom:
            return room.name
    return classroom


@overload
def switch_name(runtime: Runtime, switch_id: str) -> str: ...
@overload
def switch_name(runtime: Runtime, switch_id: str | None) -> str | None: ...
def switch_name(runtime: Runtime, switch_id: str | None) -> str | None:
    """A switch's configured name, or its id where none is configured; None for None."""
    if switch_id is None:
        return None
    sw = runtime.config.switches.get(switch_id)
    return sw.name if sw is not None and sw.name else switch_id


def calendar_status(runtime: Runtime, now: float) -> s.CalendarStatus | None:
    """The working calendar's coverage for /summary; None without a calendar."""
    calendar = runtime.calendar
    if calendar is None:
        return None
    today = local_date(runtime, now)
    coverage = calendar.coverage(today)
    last = max([today.year + 1, *(y for y in coverage.years if y > today.year)])
    sources = {}
    for year in range(today.year - 1, last + 1):
        source = coverage.years.get(year) or calendar.workday(date(year, 7, 1)).source
        sources[str(year)] = s.CalendarYear(source=source.value, file=coverage.files.get(year))
    return s.CalendarStatus(
        today=today,
        today_source=calendar.workday(today).source.value,
        covered_until=coverage.covered_until,
        sources=sources,
        warning=coverage.advice or None,
        file_problems=list(coverage.problems),
    )


def zh_en(text: str) -> tuple[str, str]:
    """A "中文 / English" text (as the topology writes its reasons) as (Chinese, English).

    The English is the ASCII tail after the last "/ "; a text without one is both.
    """
    zh, sep, en = text.rpartition("/ ")
    if not sep or not en.isascii() or not zh.strip():
        return text, text
    return zh.rstrip(), en.strip()


def targets(runtime: Runtime) -> s.TargetProfile:
    """The bandwidth targets in force."""
    t = runtime.config.targets
    return s.TargetProfile(
        profile=t.profile, uplink_mbps=t.uplink_mbps, classroom_mbps=t.classroom_mbps
    )


def verdict_counts(verdicts: list[Verdict]) -> s.VerdictCounts:
    """How many verdicts passed, failed or are unknown."""
    return s.VerdictCounts(
        total=len(verdicts),
        passing=verdicts.count(Verdict.PASS),
        fail=verdicts.count(Verdict.FAIL),
        unknown=verdicts.count(Verdict.UNKNOWN),
    )


def check(runtime: Runtime, r: CheckResult) -> s.Check:
    """One check result."""
    return s.Check(
        check=r.check,
        school=r.school,
        school_name=school_name(runtime, r.school),
        classroom=r.classroom,
        classroom_name=room_name(runtime, r.school, r.classroom),
        verdict=r.verdict,
        reason=r.reason,
        reason_en=r.reason_en,
        switch=r.device_id,
        switch_name=switch_name(runtime, r.device_id),
        port=r.interface,
        speed_mbps=r.speed_mbps,
        target_mbps=r.target_mbps,
    )


def port_state(runtime: Runtime, switch: str | None, port: str | None) -> InterfaceState | None:
    """The port's last known state, reachable or not; None for an unmapped port."""
    if switch is None or port is None:
        return None
    return runtime.state.interface(switch, port)


def known_port(runtime: Runtime, switch: str | None, port: str | None) -> InterfaceState | None:
    """The port's state if its switch answered the last poll, else None (unknown)."""
    iface = port_state(runtime, switch, port)
    if iface is None or not iface.known:
        return None
    dev = runtime.state.devices.get(iface.device_id)
    return iface if dev is not None and dev.reachable else None


def status_of(iface: InterfaceState | None) -> s.PortStatus:
    """The port's status, ``unknown`` for None."""
    if iface is None:
        return "unknown"
    status: s.PortStatus = _OPER_NAMES[iface.oper_status]
    return status


_OPER_NAMES: dict[OperStatus, s.PortStatus] = {
    OperStatus.UP: "up",
    OperStatus.DOWN: "down",
    OperStatus.TESTING: "testing",
    OperStatus.UNKNOWN: "unknown",
    OperStatus.DORMANT: "dormant",
    OperStatus.NOT_PRESENT: "not_present",
    OperStatus.LOWER_LAYER_DOWN: "lower_layer_down",
}


def port_status(runtime: Runtime, switch: str | None, port: str | None) -> s.PortStatus:
    """The port's status now (``unknown`` while its switch does not answer)."""
    return status_of(known_port(runtime, switch, port))


def speed_now(runtime: Runtime, switch: str | None, port: str | None) -> float | None:
    """The port's speed now, Mbit/s; None unless it is known to be up."""
    iface = known_port(runtime, switch, port)
    if iface is None or iface.oper_status is not OperStatus.UP:
        return None
    return iface.speed_mbps


def uplink(runtime: Runtime, school: SchoolRef) -> s.Uplink:
    """A school's uplink port now."""
    sw, port = school.uplink_switch, school.uplink_port
    return s.Uplink(
        switch=sw,
        switch_name=switch_name(runtime, sw),
        port=port,
        status=port_status(runtime, sw, port),
        speed_mbps=speed_now(runtime, sw, port),
    )


def connectivity(runtime: Runtime, topo: Topology, code: str) -> s.SchoolConnectivity:
    """Whether a school can be reached, and since when it has been cut off."""
    link = topo.schools[code]
    outage = runtime.outages.schools.get(code) if runtime.outages is not None else None
    reason, reason_en = zh_en(link.reason)
    return s.SchoolConnectivity(
        state=link.connectivity.value,
        reason=reason,
        reason_en=reason_en,
        outage_since=local_time(runtime, outage.started_at) if outage is not None else None,
    )


def switch(runtime: Runtime, dev: DeviceState, topo: Topology | None = None) -> s.Switch:
    """One switch: reachability, polls, and its condition in the topology."""
    # Only the host is taken from the switch's configuration; its SNMP credentials are
    # never read here.
    sw = runtime.config.switches.get(dev.device_id)
    view = (topo if topo is not None else assess(runtime.state)).switches[dev.device_id]
    status: s.SwitchStatus = (
        "never_polled" if dev.reachable is None else ("up" if dev.reachable else "down")
    )
    return s.Switch(
        id=dev.device_id,
        name=switch_name(runtime, dev.device_id),
        school=dev.school,
        school_name=school_name(runtime, dev.school),
        host=sw.host if sw is not None else "",
        status=status,
        reachable=dev.reachable,
        sys_name=dev.sys_name,
        sys_descr=dev.sys_descr,
        uptime_seconds=dev.uptime_seconds if dev.reachable else None,
        reboots=dev.reboots,
        last_poll_at=local_time(runtime, dev.last_poll_at),
        last_ok_at=local_time(runtime, dev.last_ok_at),
        last_error=dev.last_error,
        poll_seconds=dev.poll_seconds,
        polls_ok=dev.polls_ok,
        polls_failed=dev.polls_failed,
        interfaces=len(dev.interfaces),
        condition=view.condition.value,
        condition_reason=zh_en(view.reason)[0],
        condition_reason_en=zh_en(view.reason)[1],
    )


def interface(runtime: Runtime, dev: DeviceState, iface: InterfaceState) -> s.Interface:
    """One port of a switch, with whose it is (uplink, classroom, link)."""
    known = bool(dev.reachable) and iface.known
    owner = runtime.state.inventory.owner(dev.device_id, iface.name)
    school = owner.school if owner is not None else dev.school
    classroom = owner.classroom if owner is not None else None
    return s.Interface(
        name=iface.name,
        if_index=iface.if_index,
        alias=iface.alias,
        descr=iface.descr,
        status=status_of(iface if known else None),
        oper_status=_OPER_NAMES[iface.oper_status],
        admin_status=iface.admin_status.name.lower(),
        known=known,
        speed_mbps=iface.speed_mbps if known and iface.oper_status is OperStatus.UP else None,
        last_speed_mbps=iface.last_speed_mbps,
        in_bps=iface.in_bps if known else None,
        out_bps=iface.out_bps if known else None,
        in_octets=iface.in_octets,
        out_octets=iface.out_octets,
        in_errors=iface.in_errors,
        out_errors=iface.out_errors,
        last_change=local_time(runtime, iface.last_change),
        last_seen=local_time(runtime, iface.last_seen),
        role=owner.role.value if owner is not None else None,
        school=school,
        school_name=school_name(runtime, school),
        classroom=classroom,
        classroom_name=room_name(runtime, school, classroom),
    )


def classroom_terminal(runtime: Runtime, c: ClassroomNow) -> s.ClassroomTerminal | None:
    """A classroom's terminal now, for /schools/{code}; None without one."""
    st = c.terminal
    if st is None:
        return None
    return s.ClassroomTerminal(
        terminal=st.terminal,
        status=c.status,
        offline_reason=c.offline_reason,
        since=local_time(runtime, c.since),
        last_seen=local_time(runtime, st.last_seen),
        link_speed_mbps=st.link_speed_mbps if st.online else None,
        expected_online=c.expected_online,
        offline_in_lesson=c.offline_in_lesson,
    )


def terminal(runtime: Runtime, c: ClassroomNow) -> s.Terminal:
    """One classroom's terminal now, for /terminals."""
    st = c.terminal
    assert st is not None  # callers list classrooms with a terminal only
    return s.Terminal(
        school=c.school.code,
        school_name=c.school.name,
        classroom=c.room.id,
        classroom_name=c.room.name,
        terminal=st.terminal,
        status=c.status,
        since=local_time(runtime, c.since),
        offline_reason=c.offline_reason,
        school_uplink_down=c.uplink_down,
        last_seen=local_time(runtime, st.last_seen),
        last_heartbeat_at=local_time(runtime, st.last_heartbeat_at),
        heartbeats=st.heartbeats,
        uptime_seconds=st.uptime_seconds,
        link_speed_mbps=st.link_speed_mbps if st.online else None,
        last_link_speed_mbps=st.last_link_speed_mbps,
        duplex=st.duplex,
        nic=st.nic,
        ip=st.ip,
        mac=st.mac,
        agent_version=st.agent_version,
        cpu_percent=st.cpu_percent,
        memory_used_bytes=st.memory_used_bytes,
        memory_total_bytes=st.memory_total_bytes,
        disk_used_bytes=st.disk_used_bytes,
        disk_total_bytes=st.disk_total_bytes,
        expected_online=c.expected_online,
        lesson=c.period,
        offline_in_lesson=c.offline_in_lesson,
    )


def offline_classroom(runtime: Runtime, c: ClassroomNow) -> s.OfflineClassroom:
    """A classroom whose terminal is not online, for /classrooms/offline."""
    st = c.terminal
    reason = c.offline_reason
    # Callers list offline terminals only.
    assert st is not None
    assert reason is not None
    return s.OfflineClassroom(
        school=c.school.code,
        school_name=c.school.name,
        classroom=c.room.id,
        classroom_name=c.room.name,
        terminal=st.terminal,
        status="unknown" if c.uplink_down or c.stale else "offline",
        reason=reason,
        since=local_time(runtime, c.since),
        last_seen=local_time(runtime, st.last_seen),
        school_uplink_down=c.uplink_down,
        alerting=bool(c.offline_in_lesson),
        lesson=c.period,
    )


def event(runtime: Runtime, e: Event) -> s.EventOut:
    """One stored event, its message in Chinese and English with the inventory's names."""
    school = school_name(runtime, e.school)
    room = room_name(runtime, e.school, e.classroom)
    zh, en = describe(e, Names(school, room))
    kind = device_kind(e.kind)
    device = device_of(e)
    name = {
        "switch": switch_name(runtime, device),
        "school": school,
        "classroom": room,
    }.get(kind)
    return s.EventOut(
        at=local_time(runtime, e.at),
        kind=e.kind,
        device_kind=kind,
        device=device,
        device_name=name or device,
        school=e.school,
        school_name=school,
        interface=e.interface,
        classroom=e.classroom,
        classroom_name=room,
        message=zh,
        message_en=en,
        details=dict(e.details),
    )
