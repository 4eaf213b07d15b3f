"""Domain objects that cross the pipeline's boundaries (sources → collector → store/exporters)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class NoValue(enum.Enum):
    """SNMPv2 exception values a varbind may carry instead of a value."""

    NO_SUCH_OBJECT = "noSuchObject"
    NO_SUCH_INSTANCE = "noSuchInstance"
    END_OF_MIB_VIEW = "endOfMibView"


class Counter64(int):
    """An SNMP Counter64 value (kept distinct so 32-bit wrap rules are not applied to it)."""

    __slots__ = ()


# What a decoded varbind value can be: INTEGER/Counter32/Gauge32/TimeTicks as int,
# Counter64 as Counter64, OCTET STRING/IpAddress/Opaque as bytes, OID as a tuple of ints.
SnmpValue = int | bytes | tuple[int, ...] | NoValue | None


class OperStatus(enum.IntEnum):
    """IF-MIB ifOperStatus."""

    UP = 1
    DOWN = 2
    TESTING = 3
    UNKNOWN = 4
    DORMANT = 5
    NOT_PRESENT = 6
    LOWER_LAYER_DOWN = 7


class AdminStatus(enum.IntEnum):
    """IF-MIB ifAdminStatus."""

    UP = 1
    DOWN = 2
    TESTING = 3


@dataclass(frozen=True, slots=True)
class InterfaceReading:
    """One interface as read in one poll, already normalised.

    ``speed_mbps`` is None when the poll gave no usable speed (a down port reporting 0,
    a missing column): the speed of a port that is not up is not a measurement.
    """

    if_index: int
    name: str
    alias: str
    descr: str
    oper_status: OperStatus
    admin_status: AdminStatus
    speed_mbps: float | None
    in_octets: int | None = None
    out_octets: int | None = None
    counter_bits: int = 64
    in_errors: int | None = None
    out_errors: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceReading:
    """The result of one successful poll of one switch."""

    device_id: str
    at: float
    """Wall-clock time the system reply (sysUpTime) arrived, Unix seconds."""
    sys_uptime_ticks: int | None
    sys_name: str
    sys_descr: str
    interfaces: tuple[InterfaceReading, ...]
    poll_seconds: float = 0.0
    varbinds: int = 0
    hr_uptime_ticks: int | None = None
    """HOST-RESOURCES-MIB hrSystemUptime, where the agent has it (the host's, not the agent's)."""
    engine_boots: int | None = None
    """snmpEngineBoots (SNMPv3 USM, or read as a scalar), where known."""
    engine_time: int | None = None
    """snmpEngineTime in seconds since the engine's last boot, where known."""


@dataclass(frozen=True, slots=True)
class DeviceUnreachable:
    """A poll of a switch that failed: timeout, authentication or protocol error."""

    device_id: str
    at: float
    reason: str
    poll_seconds: float = 0.0


Observation = DeviceReading | DeviceUnreachable


class EventKind(enum.StrEnum):
    """Kinds of state change the collector records."""

    LINK_DOWN = "link_down"
    LINK_UP = "link_up"
    SPEED_DOWNGRADE = "speed_downgrade"
    SPEED_UPGRADE = "speed_upgrade"
    DEVICE_REBOOT = "device_reboot"
    DEVICE_UNREACHABLE = "device_unreachable"
    DEVICE_REACHABLE = "device_reachable"
    TERMINAL_ONLINE = "terminal_online"
    TERMINAL_OFFLINE = "terminal_offline"
    SCHOOL_OUTAGE = "school_outage"
    """A school cut off from the district network (one per outage, docs/alerting.md)."""
    SCHOOL_RESTORED = "school_restored"
    CLASSROOM_OUTAGE = "classroom_outage"
    """A classroom's terminal offline during lessons (one per outage, across breaks)."""
    CLASSROOM_RESTORED = "classroom_restored"
    COLLECTOR_BLIND = "collector_blind"
    """The collector lost its MQTT broker link: every terminal is unknown until it hears again
    (one event for the district, not one offline event per terminal; docs/wire-protocol.md)."""
    COLLECTOR_SIGHTED = "collector_sighted"
    """The broker link is back after a blind spell."""


@dataclass(frozen=True, slots=True)
class Event:
    """A state change worth keeping: stored, listed by the API."""

    at: float
    kind: EventKind
    device_id: str
    school: str | None = None
    interface: str | None = None
    classroom: str | None = None
    message: str = ""
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InterfaceSample:
    """A stored sample: one interface at one poll, with derived rates."""

    at: float
    device_id: str
    interface: str
    oper_status: OperStatus
    speed_mbps: float | None
    in_bps: float | None
    out_bps: float | None
    in_octets: int | None
    out_octets: int | None


@dataclass(frozen=True, slots=True)
class DeviceSample:
    """A stored sample: one device at one poll."""

    at: float
    device_id: str
    reachable: bool
    uptime_seconds: float | None
    poll_seconds: float


@dataclass(frozen=True, slots=True)
class TerminalSample:
    """A stored sample: one accepted terminal heartbeat (the basis of availability reports)."""

    at: float
    """When the collector received it (Unix seconds); the terminal's own clock may be wrong. A
    historical heartbeat (sent late from the agent's spool) is dated by its own ``ts`` instead
    (docs/wire-protocol.md, "Historical heartbeats")."""
    school: str
    terminal: str
    classroom: str
    boot_id: str
    seq: int
    uptime_seconds: float
    link_speed_mbps: float | None
    cpu_percent: float | None
    memory_used_bytes: int | None
    disk_used_bytes: int | None
