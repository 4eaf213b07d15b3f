"""Which switch port is whose: the port map built from the configuration."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class PortRole(enum.StrEnum):
    UPLINK = "uplink"
    CLASSROOM = "classroom"


@dataclass(frozen=True, slots=True)
class PortOwner:
    """What a monitored port serves."""

    role: PortRole
    school: str
    classroom: str | None = None


@dataclass(frozen=True, slots=True)
class ClassroomRef:
    id: str
    name: str
    switch: str | None
    port: str | None


@dataclass(frozen=True, slots=True)
class SchoolRef:
    code: str
    name: str
    kind: str
    uplink_switch: str
    uplink_port: str
    classrooms: tuple[ClassroomRef, ...]


@dataclass(frozen=True, slots=True)
class SwitchLink:
    """An inter-switch link: ``switch`` hangs off ``upstream_port`` of ``upstream_switch``."""

    switch: str
    upstream_switch: str
    upstream_port: str


@dataclass(frozen=True, slots=True)
class Inventory:
    """Schools, classrooms and the ports that serve them; switches by id with their school."""

    schools: dict[str, SchoolRef]
    switch_school: dict[str, str | None]
    upstream: dict[str, SwitchLink] = field(default_factory=dict)
    """Where each switch hangs off, for the switches whose upstream port is configured."""

    ports: dict[tuple[str, str], PortOwner] = field(init=False, repr=False, compare=False)
    link_ports: frozenset[tuple[str, str]] = field(init=False, repr=False, compare=False)
    """(switch, port) of every configured inter-switch link, on the upstream switch's side."""

    def __post_init__(self) -> None:
        ports: dict[tuple[str, str], PortOwner] = {}
        for school in self.schools.values():
            ports[(school.uplink_switch, school.uplink_port)] = PortOwner(
                PortRole.UPLINK, school.code
            )
            for room in school.classrooms:
                if room.switch is not None and room.port is not None:
                    ports[(room.switch, room.port)] = PortOwner(
                        PortRole.CLASSROOM, school.code, room.id
                    )
        object.__setattr__(self, "ports", ports)
        links = frozenset((u.upstream_switch, u.upstream_port) for u in self.upstream.values())
        object.__setattr__(self, "link_ports", links)

    def owner(self, device_id: str, interface: str) -> PortOwner | None:
        return self.ports.get((device_id, interface))

    def monitored(self, device_id: str, interface: str) -> bool:
        """Whether a port is one the inventory names: an uplink, a classroom's or a link's."""
        key = (device_id, interface)
        return key in self.ports or key in self.link_ports

    def school_of_device(self, device_id: str) -> str | None:
        return self.switch_school.get(device_id)
