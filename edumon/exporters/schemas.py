"""Response models of the status API (/api/v1), as documented in its OpenAPI schema.

Built field by field from domain objects, never from configuration objects, so that SNMP
credentials cannot reach a response by accident. Speeds are in Mbit/s, as switches and the
policy targets state them; times are ISO-8601 in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edumon.domain.checks import CheckName, Verdict
from edumon.domain.models import EventKind

PortStatus = Literal[
    "up",
    "down",
    "testing",
    "dormant",
    "not_present",
    "lower_layer_down",
    "unknown",
]
"""IF-MIB ifOperStatus in lower case; "unknown" also when the port's switch cannot be reached."""

SwitchStatus = Literal["up", "down", "never_polled"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Health(_Out):
    status: Literal["ok", "ready", "unavailable"]
    detail: str | None = None


class District(_Out):
    code: str
    name: str


class TargetProfile(_Out):
    profile: str = Field(description="Target profile in force, e.g. district-1000m")
    uplink_mbps: float | None = Field(description="Minimum school uplink speed; null: no target")
    classroom_mbps: float | None = Field(description="Minimum classroom link speed; null: none")


class VerdictCounts(_Out):
    total: int
    passing: int = Field(serialization_alias="pass")
    fail: int
    unknown: int


class SwitchCounts(_Out):
    total: int
    up: int
    down: int
    never_polled: int


class EventCounts(_Out):
    total: int = Field(description="Events recorded since this process started")
    by_kind: dict[str, int]


class Summary(_Out):
    district: District
    targets: TargetProfile
    schools: VerdictCounts
    classrooms: VerdictCounts
    switches: SwitchCounts
    events: EventCounts
    generated_at: datetime


class Check(_Out):
    """One compliance check with a reason a school network administrator can act on."""

    check: CheckName
    school: str
    classroom: str | None
    verdict: Verdict
    reason: str
    switch: str | None
    port: str | None
    speed_mbps: float | None
    target_mbps: float | None


class Uplink(_Out):
    switch: str
    port: str
    status: PortStatus
    speed_mbps: float | None = Field(description="Speed now; null unless the port is up")


class UplinkDetail(Uplink):
    checks: list[Check]


class SchoolRow(_Out):
    code: str
    name: str
    kind: str
    verdict: Verdict
    uplink: Uplink
    classrooms_total: int
    classrooms_failing: int


class SchoolList(_Out):
    schools: list[SchoolRow]


class Classroom(_Out):
    id: str
    name: str
    switch: str | None
    port: str | None
    status: PortStatus
    speed_mbps: float | None = Field(description="Speed now; null unless the port is up")
    last_speed_mbps: float | None = Field(description="Speed when the port was last seen up")
    check: Check | None = Field(description="Null when the profile sets no classroom target")


class Switch(_Out):
    id: str
    school: str | None
    host: str
    status: SwitchStatus
    reachable: bool | None = Field(description="Null until the first poll has finished")
    sys_name: str
    sys_descr: str
    uptime_seconds: float | None
    reboots: int
    last_poll_at: datetime | None
    last_ok_at: datetime | None
    last_error: str | None
    poll_seconds: float
    polls_ok: int
    polls_failed: int
    interfaces: int


class SwitchList(_Out):
    switches: list[Switch]


class SchoolDetail(_Out):
    code: str
    name: str
    kind: str
    verdict: Verdict
    uplink: UplinkDetail
    classrooms: list[Classroom]
    switches: list[Switch]


class Interface(_Out):
    name: str = Field(description="ifName")
    if_index: int
    alias: str = Field(description="ifAlias")
    descr: str = Field(description="ifDescr")
    status: PortStatus
    oper_status: str = Field(description="ifOperStatus as last read")
    admin_status: str = Field(description="ifAdminStatus as last read")
    known: bool = Field(description="False while the switch cannot be reached")
    speed_mbps: float | None = Field(description="Speed now; null unless known and up")
    last_speed_mbps: float | None = Field(description="Speed when last seen up")
    in_bps: float | None = Field(description="Receive rate over the last poll interval")
    out_bps: float | None = Field(description="Send rate over the last poll interval")
    in_octets: int | None
    out_octets: int | None
    in_errors: int | None
    out_errors: int | None
    last_change: datetime
    last_seen: datetime
    role: Literal["uplink", "classroom"] | None
    school: str | None
    classroom: str | None


class SwitchInterfaces(_Out):
    switch: Switch
    interfaces: list[Interface]


class EventOut(_Out):
    at: datetime
    kind: EventKind
    switch: str
    school: str | None
    interface: str | None
    classroom: str | None
    message: str
    details: dict[str, object]


class EventPage(_Out):
    events: list[EventOut]
    limit: int
    offset: int


class Compliance(_Out):
    targets: TargetProfile
    results: list[Check]
