"""Parent failure: which school is cut off, which switch is the root cause, what is unknown.

The topology model (docs/topology.md): classroom → access switch → school switch → uplink port
→ district network. A school's *uplink* is one port, on the school's own core switch or on a
district aggregation switch. Every other switch hangs off a parent: the switch named by its
``upstream`` in the configuration, or else its school's uplink switch (when that is the school's
own) — a switch under a district aggregation switch hangs off its school's uplink port.

From the last poll of every switch this module derives, without I/O:

- each school's connectivity: ``ok``; ``uplink_down`` (the port is down on a switch that still
  answers); ``unreachable`` (the school's own uplink switch does not answer: a cut fibre, a
  dead core switch); or ``unknown`` (not polled yet, or its uplink sits on a district switch
  that is itself unreachable, whose own alert covers the school);
- each switch's condition: ``up``; ``unreachable`` only when it is the root cause (its school
  is connected and its parent answers); ``unknown`` when something above it failed; ``pending``
  before its first poll.

So one failure raises one alarm: a cut school is one school alert and its switches and
classrooms are unknown; a dead access switch is one switch alert and its classrooms unknown.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from edumon.domain.inventory import Inventory, SchoolRef
from edumon.domain.models import OperStatus
from edumon.domain.state import NetworkState


class Connectivity(enum.StrEnum):
    """A school's link to the district network."""

    OK = "ok"
    UPLINK_DOWN = "uplink_down"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"

    @property
    def cut_off(self) -> bool:
        """The school is known to be cut off (what a school outage is)."""
        return self in (Connectivity.UPLINK_DOWN, Connectivity.UNREACHABLE)

    @property
    def label(self) -> str:
        """Chinese name for people."""
        return _CONNECTIVITY_LABELS[self]


_CONNECTIVITY_LABELS = {
    Connectivity.OK: "正常",
    Connectivity.UPLINK_DOWN: "上联中断",
    Connectivity.UNREACHABLE: "失联",
    Connectivity.UNKNOWN: "未知",
}


class Condition(enum.StrEnum):
    """A switch as an alert sees it."""

    UP = "up"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class SchoolLink:
    """One school's connectivity and why, for people (Chinese first) and for alerts."""

    school: str
    connectivity: Connectivity
    reason: str
    device: str
    """The switch that holds the school's uplink port."""
    port: str


@dataclass(frozen=True, slots=True)
class SwitchView:
    """One switch's condition and why."""

    device: str
    school: str | None
    condition: Condition
    reason: str
    parent: str | None


@dataclass(frozen=True, slots=True)
class Topology:
    """The derived view of one moment: every school and every switch, never absent."""

    schools: Mapping[str, SchoolLink]
    switches: Mapping[str, SwitchView]

    def switch_up(self, device: str | None) -> bool:
        """Whether a switch answers (False for unknown ids)."""
        view = self.switches.get(device) if device is not None else None
        return view is not None and view.condition is Condition.UP

    def classroom_unknown(self, school: str, switch: str | None) -> str | None:
        """Why a classroom on ``switch`` of ``school`` cannot be judged now, or None if it can.

        Only a failure makes a classroom unknown: a switch not polled yet does not.
        """
        link = self.schools.get(school)
        if link is not None:
            if link.connectivity.cut_off:
                return link.reason
            if link.connectivity is Connectivity.UNKNOWN and self._failed(link.device):
                return link.reason
        return self.failure_reason(switch)

    def failure_reason(self, device: str | None) -> str | None:
        """Why a switch failed (unreachable, or behind a failure), or None when it has not."""
        view = self.switches.get(device) if device is not None else None
        return view.reason if view is not None and self._failed(device) else None

    def _failed(self, device: str | None) -> bool:
        view = self.switches.get(device) if device is not None else None
        return view is not None and view.condition in (Condition.UNREACHABLE, Condition.UNKNOWN)


def parent_of(inventory: Inventory, device: str) -> str | None:
    """The switch ``device`` hangs off, or None for a root.

    An explicit ``upstream`` wins. Otherwise a school's switch hangs off the school's uplink
    switch when that is the school's own, or, when the uplink is a port of a district switch,
    off the school's core: its one switch whose ``upstream`` is that uplink port. Roots are a
    school's own uplink switch, a district switch without ``upstream``, and a school's core.
    """
    explicit = inventory.upstream.get(device)
    if explicit is not None:
        return explicit.upstream_switch
    code = inventory.switch_school.get(device)
    school = inventory.schools.get(code) if code is not None else None
    if school is None or school.uplink_switch == device:
        return None
    if inventory.switch_school.get(school.uplink_switch) == school.code:
        return school.uplink_switch
    cores = [
        d
        for d, link in inventory.upstream.items()
        if (link.upstream_switch, link.upstream_port) == (school.uplink_switch, school.uplink_port)
        and inventory.switch_school.get(d) == school.code
    ]
    return cores[0] if len(cores) == 1 and cores[0] != device else None


def _school_link(state: NetworkState, school: SchoolRef) -> SchoolLink:
    sw, port = school.uplink_switch, school.uplink_port
    own = state.inventory.switch_school.get(sw) == school.code
    dev = state.devices.get(sw)

    def link(c: Connectivity, why: str) -> SchoolLink:
        return SchoolLink(school.code, c, why, sw, port)

    if dev is None or dev.reachable is None:
        return link(Connectivity.UNKNOWN, f"交换机 {sw} 尚未轮询 / switch {sw} not polled yet")
    if dev.reachable is False:
        detail = dev.last_error or "no reply"
        if own:
            return link(
                Connectivity.UNREACHABLE,
                f"学校与城域网失联：上联交换机 {sw} 无响应（光纤中断或设备断电？）/ "
                f"school cut off: its uplink switch {sw} does not answer ({detail})",
            )
        return link(
            Connectivity.UNKNOWN,
            f"城域网汇聚交换机 {sw} 无响应，学校状态未知 / "
            f"district switch {sw} does not answer, the school is unknown",
        )
    iface = dev.interfaces.get(port)
    if iface is None:
        return link(
            Connectivity.UNKNOWN,
            f"交换机 {sw} 上没有端口 {port}，请检查配置中的端口名 (ifName) / "
            f"port {port} not found on switch {sw}",
        )
    if iface.oper_status is not OperStatus.UP:
        status = iface.oper_status.name.lower()
        return link(
            Connectivity.UPLINK_DOWN,
            f"学校上联端口 {sw} {port} 已断开（{status}）/ uplink {port} on {sw} is {status}",
        )
    return link(Connectivity.OK, f"上联 {sw} {port} 正常 / uplink {port} on {sw} is up")


def assess(
    state: NetworkState,
    *,
    schools: Iterable[str] | None = None,
    devices: Iterable[str] | None = None,
) -> Topology:
    """Every school's connectivity and every switch's condition, from the state as it is now.

    Args:
        state: the network state.
        schools: only these schools' links (and those of the schools their switches' parents
            belong to); all when None. A school's page reads its own part of the district.
        devices: only these switches' conditions (and their parents'); all when None.
    """
    inventory = state.inventory
    links: dict[str, SchoolLink] = {}

    def link_of(code: str) -> SchoolLink | None:
        done = links.get(code)
        if done is None:
            ref = inventory.schools.get(code)
            if ref is None:
                return None
            done = links[code] = _school_link(state, ref)
        return done

    for code in inventory.schools if schools is None else schools:
        link_of(code)
    views: dict[str, SwitchView] = {}

    def view(device: str, seen: frozenset[str] = frozenset()) -> SwitchView:
        done = views.get(device)
        if done is not None:
            return done
        dev = state.devices.get(device)
        school = inventory.switch_school.get(device)
        parent = parent_of(inventory, device)
        if dev is None or dev.reachable is None:
            out = SwitchView(device, school, Condition.PENDING, "尚未轮询 / not polled yet", parent)
        elif dev.reachable:
            out = SwitchView(device, school, Condition.UP, "正常 / answering", parent)
        else:
            out = SwitchView(device, school, *_unreachable(device, school, parent, seen), parent)
        views[device] = out
        return out

    def _unreachable(
        device: str, school: str | None, parent: str | None, seen: frozenset[str]
    ) -> tuple[Condition, str]:
        link = link_of(school) if school is not None else None
        if link is not None and link.connectivity is not Connectivity.OK:
            return Condition.UNKNOWN, f"所属学校{link.connectivity.label} / {link.reason}"
        if parent is not None and parent not in seen:
            above = view(parent, seen | {device})
            if above.condition in (Condition.UNREACHABLE, Condition.UNKNOWN):
                return (
                    Condition.UNKNOWN,
                    f"上级交换机 {parent} 无响应 / the switch above it ({parent}) does not answer",
                )
            cabled = inventory.upstream.get(device)
            port = cabled.upstream_port if cabled is not None else None
            if port is not None:
                pdev = state.devices.get(parent)
                iface = pdev.interfaces.get(port) if pdev is not None else None
                if iface is not None and iface.oper_status is not OperStatus.UP:
                    return (
                        Condition.UNREACHABLE,
                        f"连接端口 {parent} {port} 已断开 / its link {port} on {parent} is down",
                    )
        return (
            Condition.UNREACHABLE,
            f"交换机 {device} 无响应 / switch {device} does not answer",
        )

    for device in state.devices if devices is None else devices:
        if device in state.devices:
            view(device)
    return Topology(links, views)
