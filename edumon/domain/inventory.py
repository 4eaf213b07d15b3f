"""Which switch port is whose: the port map built from the configuration."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class PortRole(enum.StrEnum):
    UPLINK = "uplink"
    CLASSROOM = "classroom"
    TRUNK = "trunk"
    """A link between two switches (a switch's configured ``upstream`` port)."""


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
class Inventory:
    """Schools, classrooms and the ports that serve them; switches by id with their school."""

    schools: dict[str, SchoolRef]
    switch_school: dict[str, str | None]
    upstream: dict[str, tuple[str, str]] = field(default_factory=dict)
    """``(parent switch, port on it)`` by switch id, where the configuration names one."""

    ports: dict[tuple[str, str], PortOwner] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ports: dict[tuple[str, str], PortOwner] = {}
        for device, (parent, port) in self.upstream.items():
            ports[(parent, port)] = PortOwner(PortRole.TRUNK, self.switch_school.get(device) or "")
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

    def owner(self, device_id: str, interface: str) -> PortOwner | None:
        return self.ports.get((device_id, interface))

    def school_of_device(self, device_id: str) -> str | None:
        return self.switch_school.get(device_id)
