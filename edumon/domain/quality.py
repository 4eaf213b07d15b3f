"""Data-quality warnings: what the network and the terminals say that contradicts the inventory.

Pure: the checks read state and inventory handed to them and return warnings; nothing here
does I/O. ``edumon.quality_view`` hands them the running daemon's state.

Four contradictions, each usually a wrong inventory row (docs/data-quality.md):

- ``terminal_online_port_down``: a classroom's terminal keeps sending heartbeats while the
  switch port the inventory gives the classroom is down. Flagged once the port has been seen
  down for at least one poll interval *and* the terminal's newest heartbeat arrived at least one
  poll interval after the first poll that saw the port down, both still fresh (the port polled
  within two poll intervals, the terminal online). A terminal that loses power with its port
  (a heartbeat in flight, the heartbeat timeout not yet run out) is therefore never flagged.
- ``speed_mismatch``: the terminal's NIC reports another speed than the port's negotiated one.
  Flagged when the port has been up for at least one poll interval, its speed was read by a
  fresh poll, and the terminal's newest heartbeat arrived after that poll (so both sides of the
  link were read after any renegotiation).
- ``two_classrooms_one_port``: one switch port given to two classrooms. The inventory check
  (two rows naming one port) and the switch's own word: a classroom port whose description
  (ifAlias) is the name of *another* classroom of the school.
- ``terminal_wrong_school``: a terminal whose id is a terminal of one school publishes under
  another school's topic (the MQTT topic's school segment, ``edumon/v1/{district}/{school}/...``)
  and is still sending (heard within the heartbeat timeout).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from edumon.domain.inventory import ClassroomRef, Inventory, SchoolRef
from edumon.domain.models import OperStatus
from edumon.domain.state import InterfaceState, NetworkState
from edumon.domain.terminals import TerminalState, UnknownTerminal

QualityKind = Literal[
    "terminal_online_port_down",
    "speed_mismatch",
    "two_classrooms_one_port",
    "terminal_wrong_school",
]
KINDS: Final[tuple[QualityKind, ...]] = (
    "terminal_online_port_down",
    "speed_mismatch",
    "two_classrooms_one_port",
    "terminal_wrong_school",
)
"""Every warning kind, in the order they are listed."""

DEFAULT_INVENTORY_FILE: Final = "classrooms.csv"


@dataclass(frozen=True, slots=True)
class QualityWarning:
    """One contradiction between what edumon sees and the inventory, with the row to fix.

    ``kind`` is a stable code (e.g. ``terminal_online_port_down``); ``message`` is Chinese,
    ``message_en`` English; ``fix`` names the inventory row to check, in Chinese (``fix_en``
    in English). ``since`` is when the contradiction was first visible (Unix seconds), where
    known; ``other_school`` / ``other_classroom`` name the other side of it (the school a
    terminal reports from, the classroom a port's description names).
    """

    kind: str
    school: str
    message: str
    message_en: str
    fix: str
    classroom: str | None = None
    switch: str | None = None
    port: str | None = None
    terminal: str | None = None
    fix_en: str = ""
    since: float | None = None
    other_school: str | None = None
    other_classroom: str | None = None
    port_speed_mbps: float | None = None
    terminal_speed_mbps: float | None = None


@dataclass(frozen=True, slots=True)
class Freshness:
    """How old a reading may be and how long a condition must hold before it is a warning.

    Attributes:
        poll_interval: the SNMP poll interval (seconds): a port state must have held this long.
        heartbeat_timeout: how long a terminal may be silent and still count as sending.
    """

    poll_interval: float
    heartbeat_timeout: float

    @property
    def port_max_age(self) -> float:
        """A port reading older than two poll intervals is stale (a poll was missed)."""
        return 2 * self.poll_interval


def _room_label(school: SchoolRef, room: ClassroomRef) -> str:
    return f"{school.name} {room.name} ({room.id})"


def _port_down(
    school: SchoolRef,
    room: ClassroomRef,
    iface: InterfaceState,
    st: TerminalState,
    fresh: Freshness,
    inventory_file: str,
) -> QualityWarning | None:
    if iface.oper_status is OperStatus.UP or st.online is not True or st.last_seen is None:
        return None
    held = iface.last_seen - iface.last_change >= fresh.poll_interval
    alive_after = st.last_seen - iface.last_change >= fresh.poll_interval
    if not (held and alive_after):
        return None
    status = iface.oper_status.name.lower()
    label = _room_label(school, room)
    return QualityWarning(
        kind="terminal_online_port_down",
        school=school.code,
        classroom=room.id,
        switch=room.switch,
        port=room.port,
        terminal=st.terminal,
        message=(
            f"{label} 的终端在线，但清单中它的端口 {room.switch} {room.port} 是 {status}："
            "终端接在别的端口上"
        ),
        message_en=(
            f"the terminal of {room.id} is online while its inventory port {room.switch} "
            f"{room.port} is {status}: the terminal is cabled to another port"
        ),
        fix=f"检查 {inventory_file} 中 {label} 的 switch/port",
        fix_en=f"check switch/port of classroom {room.id} in {inventory_file}",
        since=max(iface.last_change, st.online_since or iface.last_change),
    )


def _speed_mismatch(
    school: SchoolRef,
    room: ClassroomRef,
    iface: InterfaceState,
    st: TerminalState,
    fresh: Freshness,
    inventory_file: str,
) -> QualityWarning | None:
    port_speed, nic_speed = iface.speed_mbps, st.link_speed_mbps
    if iface.oper_status is not OperStatus.UP or port_speed is None or nic_speed is None:
        return None
    if st.online is not True or st.last_heartbeat_at is None:
        return None
    if float(nic_speed) == float(port_speed):
        return None
    held = iface.last_seen - iface.last_change >= fresh.poll_interval
    if not (held and st.last_heartbeat_at >= iface.last_seen):
        return None
    label = _room_label(school, room)
    return QualityWarning(
        kind="speed_mismatch",
        school=school.code,
        classroom=room.id,
        switch=room.switch,
        port=room.port,
        terminal=st.terminal,
        message=(
            f"{label} 的终端网卡为 {nic_speed:g}M，但清单中它的端口 {room.switch} {room.port} "
            f"协商为 {port_speed:g}M：终端接在别的端口上，或清单端口写错"
        ),
        message_en=(
            f"the terminal of {room.id} reports a {nic_speed:g} Mbit/s NIC while its inventory "
            f"port {room.switch} {room.port} negotiated {port_speed:g} Mbit/s"
        ),
        fix=f"检查 {inventory_file} 中 {label} 的 switch/port",
        fix_en=f"check switch/port of classroom {room.id} in {inventory_file}",
        since=max(iface.last_change, st.online_since or iface.last_change),
        port_speed_mbps=float(port_speed),
        terminal_speed_mbps=float(nic_speed),
    )


def _shared_ports(school: SchoolRef, inventory_file: str) -> Iterable[QualityWarning]:
    """Two rows of the inventory that name one port (edumon's config refuses them; an
    inventory built another way may not)."""
    rooms: dict[tuple[str, str], list[ClassroomRef]] = defaultdict(list)
    for room in school.classrooms:
        if room.switch is not None and room.port is not None:
            rooms[(room.switch, room.port)].append(room)
    for (switch, port), sharing in rooms.items():
        first = sharing[0]
        for room in sharing[1:]:
            yield QualityWarning(
                kind="two_classrooms_one_port",
                school=school.code,
                classroom=room.id,
                switch=switch,
                port=port,
                other_classroom=first.id,
                message=(
                    f"{_room_label(school, first)} 和 {room.name} ({room.id}) "
                    f"配置在同一端口 {switch} {port}"
                ),
                message_en=f"classrooms {first.id} and {room.id} share port {switch} {port}",
                fix=f"检查 {inventory_file} 中 {_room_label(school, room)} 的 switch/port",
                fix_en=f"check switch/port of classroom {room.id} in {inventory_file}",
            )


def _alias_names_other(
    school: SchoolRef,
    room: ClassroomRef,
    iface: InterfaceState,
    by_name: Mapping[str, ClassroomRef],
    inventory_file: str,
) -> QualityWarning | None:
    """The port's description (typed on the switch) names another classroom of the school."""
    alias = iface.alias.strip()
    other = by_name.get(alias)
    if not alias or other is None or other.id == room.id or alias == room.name:
        return None
    label = _room_label(school, room)
    return QualityWarning(
        kind="two_classrooms_one_port",
        school=school.code,
        classroom=room.id,
        switch=room.switch,
        port=room.port,
        other_classroom=other.id,
        message=(
            f"端口 {room.switch} {room.port} 在清单中属于 {label}，"
            f"但交换机上的端口描述是 {other.name} ({other.id})"
        ),
        message_en=(
            f"port {room.switch} {room.port} is classroom {room.id}'s in the inventory but its "
            f"description on the switch names {other.id}"
        ),
        fix=(
            f"检查 {inventory_file} 中 {label} 与 {other.name} ({other.id}) 的 switch/port"
            "，或改正交换机上的端口描述"
        ),
        fix_en=(
            f"check switch/port of classrooms {room.id} and {other.id} in {inventory_file}, "
            "or the port description on the switch"
        ),
    )


def _wrong_school(
    inventory: Inventory,
    terminals: Mapping[tuple[str, str], TerminalState],
    unknown: Iterable[UnknownTerminal],
    district: str | None,
    now: float,
    fresh: Freshness,
    inventory_file: str,
) -> Iterable[QualityWarning]:
    by_terminal: dict[str, list[TerminalState]] = defaultdict(list)
    for (_, terminal), st in terminals.items():
        by_terminal[terminal].append(st)
    for entry in unknown:
        if district is not None and entry.district != district:
            continue
        if now - entry.last_seen > fresh.heartbeat_timeout:
            continue
        for st in by_terminal.get(entry.terminal, ()):
            if st.school == entry.school:
                continue
            school = inventory.schools.get(st.school)
            room = (
                next((r for r in school.classrooms if r.id == st.classroom), None)
                if school is not None
                else None
            )
            if school is None or room is None:
                continue
            reported = inventory.schools.get(entry.school)
            there = f"{reported.name} ({entry.school})" if reported else entry.school
            label = _room_label(school, room)
            yield QualityWarning(
                kind="terminal_wrong_school",
                school=school.code,
                classroom=room.id,
                terminal=entry.terminal,
                other_school=entry.school,
                message=(
                    f"{label} 的终端 {entry.terminal} 以 {there} 的身份上报"
                    "（MQTT 主题中的学校不是清单中的学校）"
                ),
                message_en=(
                    f"terminal {entry.terminal} of classroom {room.id} ({school.code}) reports "
                    f"as school {entry.school}"
                ),
                fix=(
                    f"检查 {inventory_file} 中 {label} 所属学校，"
                    f"或终端 agent 配置中的 school（现为 {entry.school}）"
                ),
                fix_en=(
                    f"check the school of classroom {room.id} in {inventory_file}, or the "
                    f"terminal agent's configured school (now {entry.school})"
                ),
                since=entry.first_seen,
            )


def check_quality(
    network: NetworkState,
    terminals: Mapping[tuple[str, str], TerminalState],
    unknown: Iterable[UnknownTerminal],
    now: float,
    fresh: Freshness,
    *,
    schools: Iterable[str] | None = None,
    district: str | None = None,
    inventory_file: str = DEFAULT_INVENTORY_FILE,
) -> list[QualityWarning]:
    """Every contradiction between the network, the terminals and the inventory.

    Args:
        network: the switches' state (and its inventory).
        terminals: known terminals' state by ``(school, terminal id)``.
        unknown: terminals heard from that are not in the inventory (``UnknownTerminals``).
        now: the current time (Unix seconds).
        fresh: the poll interval and heartbeat timeout the freshness rules use.
        schools: only these schools (codes); None: every school.
        district: the district's code; unknown terminals of another district are ignored.
        inventory_file: the file the fix text names.

    Returns:
        The warnings ordered by school, classroom, kind.
    """
    inventory = network.inventory
    wanted = None if schools is None else frozenset(schools)
    by_classroom = {st.classroom: st for st in terminals.values()}
    out: list[QualityWarning] = []
    devices = network.devices
    oldest = now - fresh.port_max_age
    up = OperStatus.UP
    for code, school in inventory.schools.items():
        if wanted is not None and code not in wanted:
            continue
        out.extend(_shared_ports(school, inventory_file))
        by_name: dict[str, ClassroomRef] | None = None
        # The common case (a fresh port whose terminal agrees, or is off) is decided inline:
        # a city walks 20,000 classrooms here.
        for room in school.classrooms:
            if room.switch is None or room.port is None:
                continue
            dev = devices.get(room.switch)
            iface = dev.interfaces.get(room.port) if dev is not None else None
            if iface is None or not iface.known or iface.last_seen < oldest:
                continue
            if iface.alias and iface.alias != room.name:
                if by_name is None:
                    by_name = {r.name: r for r in school.classrooms}
                alias = _alias_names_other(school, room, iface, by_name, inventory_file)
                if alias is not None:
                    out.append(alias)
            st = by_classroom.get(room.id)
            if st is None or st.online is not True:
                continue
            if iface.oper_status is up:
                nic = st.link_speed_mbps
                if nic is None or iface.speed_mbps is None or nic == iface.speed_mbps:
                    continue
                warning = _speed_mismatch(school, room, iface, st, fresh, inventory_file)
            else:
                warning = _port_down(school, room, iface, st, fresh, inventory_file)
            if warning is not None:
                out.append(warning)
    wrong = _wrong_school(inventory, terminals, unknown, district, now, fresh, inventory_file)
    out.extend(w for w in wrong if wanted is None or w.school in wanted)
    order: dict[str, int] = {kind: i for i, kind in enumerate(KINDS)}
    out.sort(key=lambda w: (w.school, w.classroom or "", order.get(w.kind, len(order))))
    return out
