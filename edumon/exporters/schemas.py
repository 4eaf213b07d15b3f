"""Response models of the status API (/api/v1), as documented in its OpenAPI schema.

Built field by field from domain objects, never from configuration objects, so that SNMP and
MQTT credentials cannot reach a response by accident. Speeds are in Mbit/s, as switches and the
policy targets state them; times are ISO-8601 with the district's UTC offset (``+08:00``). Names
stand beside codes (``school_name``, ``classroom_name``, ``switch_name``); text a person reads is
in Chinese with an English twin field (``reason``/``reason_en``, ``message``/``message_en``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edumon.domain.checks import CheckName, Verdict
from edumon.domain.event_text import DeviceKind
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


class Page(_Out):
    """Where a page of a list is: ask again with ``offset=next_offset`` for the next one."""

    limit: int = Field(description="At most this many rows per page")
    offset: int = Field(description="Rows skipped before this page")
    total: int = Field(description="Rows matching the filters, on every page")
    next_offset: int | None = Field(description="offset of the next page; null on the last")


class EventPageInfo(Page):
    """Where a page of events is: ask again with ``cursor=next_cursor`` for the next one."""

    next_cursor: str | None = Field(
        description="Pass as cursor= for the next (older) page; null on the last"
    )


class Error(_Out):
    """An error: what is wrong, in Chinese then English ("中文 / English")."""

    detail: str


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


class OutageCounts(_Out):
    schools: int = Field(description="Schools in an open outage (cut off past the grace)")
    classrooms: int = Field(description="Classrooms in an open outage (offline in lessons)")


CalendarSourceName = Literal["configured", "shipped", "chinese_calendar", "statutory", "weekdays"]
"""configured: a file in [schedule] calendar_dir; shipped: a file shipped with edumon;
chinese_calendar: the chinese-calendar package; statutory: no arrangement, statutory holidays and
weekends (调休 unknown); weekdays: not even statutory holidays known."""


class CalendarYear(_Out):
    source: CalendarSourceName
    file: str | None = Field(description="The arrangement file, for configured and shipped")


class CalendarStatus(_Out):
    """How far the national working calendar's holiday arrangements (放假安排) reach."""

    today: date = Field(description="Local date in the schedule's time zone")
    today_source: CalendarSourceName = Field(description="The source that decided today")
    covered_until: date | None = Field(
        description="Last date an arrangement covers (调休 known up to here)"
    )
    sources: dict[str, CalendarYear] = Field(
        description="By year, from last year to the last arranged one (next year at least)"
    )
    warning: str | None = Field(
        description="What is missing and what to do (Chinese, then English); null if nothing"
    )
    file_problems: list[str] = Field(description="Arrangement files left out, and why")


class TerminalSummary(_Out):
    """Classroom terminals now; ``online + offline_in_lesson + off_schedule + unknown = total``."""

    total: int
    online: int
    offline_in_lesson: int = Field(description="Offline while a lesson is scheduled (alerting)")
    off_schedule: int = Field(description="Offline with no lesson now (or no schedule): no alert")
    unknown: int = Field(description="Behind a failure (the school's uplink or switch is down)")


class Summary(_Out):
    district: District
    targets: TargetProfile
    schools: VerdictCounts
    classrooms: VerdictCounts
    switches: SwitchCounts
    connectivity: dict[str, int] = Field(
        description="Schools by connectivity: ok, uplink_down, unreachable, unknown"
    )
    outages: OutageCounts
    terminals: TerminalSummary
    events: EventCounts
    calendar: CalendarStatus | None = Field(
        default=None, description="The working calendar's coverage; null without a schedule"
    )
    generated_at: datetime


class Outage(_Out):
    """An open outage: one alert, however many lessons and bells it spans."""

    kind: Literal["school", "classroom"]
    school: str
    school_name: str
    classroom: str | None = None
    classroom_name: str | None = None
    lesson: str | None = Field(None, description="The lesson it began in, e.g. 第3节 10:20-11:00")
    cause: str | None = Field(None, description="School outages: uplink_down or unreachable")
    started_at: datetime
    opened_at: datetime = Field(description="When the grace ran out and it became an alert")


class OutageList(_Out):
    outages: list[Outage]
    page: Page = Field(description="This page of the list")


class SchoolConnectivity(_Out):
    """A school's link to the district network (docs/topology.md)."""

    state: Literal["ok", "uplink_down", "unreachable", "unknown"]
    reason: str = Field(description="Why, in Chinese")
    reason_en: str = Field(description="Why, in English")
    outage_since: datetime | None = Field(description="Start of its open outage, if any")


class Check(_Out):
    """One compliance check with a reason a school network administrator can act on."""

    check: CheckName
    school: str
    school_name: str
    classroom: str | None
    classroom_name: str | None
    verdict: Verdict
    reason: str = Field(description="Why, in Chinese")
    reason_en: str = Field(description="Why, in English")
    switch: str | None
    switch_name: str | None
    port: str | None
    speed_mbps: float | None
    target_mbps: float | None


class Uplink(_Out):
    switch: str
    switch_name: str
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
    connectivity: SchoolConnectivity
    uplink: Uplink
    classrooms_total: int
    classrooms_failing: int


class SchoolList(_Out):
    schools: list[SchoolRow]
    page: Page = Field(description="This page of the list")


TerminalStatus = Literal["online", "offline", "unknown"]
"""``unknown``: not online, and its school's uplink is down (a parent failure, not an offline)."""
OfflineReason = Literal["will", "shutdown", "timeout", "never_seen"]
"""will: connection lost or agent killed (Last Will); shutdown: shut down cleanly; timeout:
heartbeats stopped; never_seen: not heard from since the collector started."""


class ClassroomTerminal(_Out):
    """A classroom's 班班通 terminal as the school summary shows it."""

    terminal: str = Field(description="The id the terminal's agent reports")
    status: TerminalStatus
    offline_reason: OfflineReason | None = Field(description="Null while online")
    since: datetime | None = Field(description="When it went online or offline")
    last_seen: datetime | None = Field(description="Last birth or heartbeat received")
    link_speed_mbps: int | None = Field(description="NIC speed in the last heartbeat")
    expected_online: bool | None = Field(
        description="A lesson is scheduled now (null: no schedule)"
    )
    offline_in_lesson: bool | None = Field(
        description="Offline while a lesson is scheduled (alerting); false while the uplink is down"
    )


class Classroom(_Out):
    id: str
    name: str
    switch: str | None
    switch_name: str | None
    port: str | None
    status: PortStatus
    speed_mbps: float | None = Field(description="Speed now; null unless the port is up")
    last_speed_mbps: float | None = Field(description="Speed when the port was last seen up")
    check: Check | None = Field(description="Null when the profile sets no classroom target")
    terminal: ClassroomTerminal | None = Field(
        None, description="The classroom's terminal; null when terminals are not monitored"
    )


class Switch(_Out):
    id: str
    name: str = Field(description="The configured name; the id where none is configured")
    school: str | None
    school_name: str | None
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
    condition: Literal["up", "unreachable", "unknown", "pending"] = Field(
        description="As alerts see it: unreachable only when this switch is the root cause; "
        "unknown when its school is cut off or the switch above it is down"
    )
    condition_reason: str = Field(description="Why, in Chinese")
    condition_reason_en: str = Field(description="Why, in English")


class SwitchList(_Out):
    switches: list[Switch]
    page: Page = Field(description="This page of the list")


class SchoolDetail(_Out):
    code: str
    name: str
    kind: str
    verdict: Verdict
    connectivity: SchoolConnectivity
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
    school_name: str | None
    classroom: str | None
    classroom_name: str | None


class SwitchInterfaces(_Out):
    switch: Switch
    interfaces: list[Interface]


class EventOut(_Out):
    at: datetime
    kind: EventKind
    device_kind: DeviceKind = Field(
        description="What the event is about: switch, terminal, school or classroom"
    )
    device: str = Field(
        description="Its id: a switch id, a terminal id, a school code or a classroom id"
    )
    device_name: str = Field(description="Its name (the id where it has none)")
    school: str | None
    school_name: str | None
    interface: str | None = Field(description="The switch port, for switch events")
    classroom: str | None
    classroom_name: str | None
    message: str = Field(description="What happened, in Chinese")
    message_en: str = Field(description="What happened, in English")
    details: dict[str, object]


class EventPage(_Out):
    events: list[EventOut]
    page: EventPageInfo = Field(description="This page: its size, the total and the next cursor")


class Compliance(_Out):
    targets: TargetProfile
    results: list[Check]
    page: Page = Field(description="This page of the list")


# -- classroom terminals ------------------------------------------------------------------------


class Terminal(_Out):
    """One classroom terminal now: state, last heartbeat's details, and the lesson schedule."""

    school: str
    school_name: str
    classroom: str
    classroom_name: str
    terminal: str = Field(description="The id the terminal's agent reports")
    status: TerminalStatus
    since: datetime | None = Field(description="When it went online or offline")
    offline_reason: OfflineReason | None = Field(description="Null while online")
    school_uplink_down: bool = Field(
        description="The school's uplink is down: an offline terminal is then unknown"
    )
    last_seen: datetime | None = Field(description="Last birth or heartbeat received")
    last_heartbeat_at: datetime | None
    heartbeats: int = Field(description="Heartbeats accepted since the collector started")
    uptime_seconds: float | None = Field(description="The terminal's uptime in its last heartbeat")
    link_speed_mbps: int | None = Field(
        description="NIC speed in the last heartbeat while online; null if the NIC reports none"
    )
    last_link_speed_mbps: int | None = Field(description="Last speed any heartbeat reported")
    duplex: Literal["full", "half", "unknown"]
    nic: str | None
    ip: str | None
    mac: str | None
    agent_version: str | None
    cpu_percent: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    disk_used_bytes: int | None
    disk_total_bytes: int | None
    expected_online: bool | None = Field(
        description="A lesson is scheduled now (null: no schedule)"
    )
    lesson: str | None = Field(description="The lesson in progress, e.g. 第3节 10:20-11:00")
    offline_in_lesson: bool | None = Field(
        description="Offline while a lesson is scheduled (alerting); false while the uplink is down"
    )


class TerminalCounts(_Out):
    total: int
    online: int
    offline: int
    unknown: int
    offline_in_lesson: int


class TerminalList(_Out):
    generated_at: datetime
    counts: TerminalCounts = Field(description="Of the terminals listed")
    terminals: list[Terminal]
    page: Page = Field(description="This page of the list")


class UnknownTerminal(_Out):
    """A terminal that sends messages but is in no classroom of the inventory."""

    district: str
    school: str
    school_name: str = Field(description="The inventory's name; the code for an unknown school")
    school_known: bool = Field(description="The school is in the inventory (only the id is new)")
    terminal: str
    first_seen: datetime
    last_seen: datetime
    messages: int
    ip: str | None
    mac: str | None
    agent_version: str | None


class UnknownTerminalList(_Out):
    terminals: list[UnknownTerminal] = Field(description="Least recently heard from first")
    messages_total: int = Field(description="Messages from unknown terminals since start")
    evicted: int = Field(description="Entries dropped to keep the list bounded")
    limit: int = Field(description="At most this many unknown terminals are remembered")
    page: Page = Field(description="This page of the list")


class OfflineClassroom(_Out):
    school: str
    school_name: str
    classroom: str
    classroom_name: str
    terminal: str
    status: Literal["offline", "unknown"] = Field(
        description="unknown: the school's uplink is down (a parent failure, not alerting)"
    )
    reason: OfflineReason
    since: datetime | None = Field(description="When it went offline; null if never seen")
    last_seen: datetime | None
    school_uplink_down: bool
    alerting: bool = Field(description="A lesson is scheduled now and the uplink is not down")
    lesson: str | None = Field(description="The lesson in progress, e.g. 第3节 10:20-11:00")


class OfflineClassrooms(_Out):
    """Classrooms whose terminal is not online now, split by the lesson schedule."""

    generated_at: datetime
    schedule_known: bool = Field(description="False: no schedule, every classroom off_schedule")
    in_lesson: list[OfflineClassroom] = Field(description="A lesson is scheduled now")
    off_schedule: list[OfflineClassroom] = Field(description="No lesson now: expected, no alert")
    page: Page = Field(description="This page of the list")


# -- availability reports -----------------------------------------------------------------------

DataStatus = Literal["ok", "partial", "no_data", "no_lessons"]


class Figures(_Out):
    """在线率, 使用率 and 开机率 with their raw numerators and denominators (summable).

    Rates are fractions (0.75 is 75%) over *monitored* lesson time (docs/availability.md):
    null where nothing was monitored ("no data": coverage 0) or there were no lessons.
    """

    status: DataStatus = Field(
        description="ok (all lesson time monitored), partial, no_data (none monitored: not 0 %), "
        "no_lessons (no lesson has started: weekend, holiday, before the first bell)"
    )
    status_text: str = Field(description="完整 / 部分监测 / 无数据 / 无课")
    status_text_en: str
    coverage: float | None = Field(
        description="Share of the lesson time edumon was monitoring (monitored_minutes / "
        "lesson_minutes); null without lessons"
    )
    online_rate: float | None = Field(
        description="在线率: online_minutes / monitored_minutes (online time within monitored "
        "lessons)"
    )
    usage_rate: float | None = Field(description="使用率: lessons_used / lessons_monitored")
    power_on_rate: float | None = Field(
        description="开机率: terminals_on / terminal_days_monitored (monitored school days)"
    )
    online_minutes: float
    monitored_minutes: float
    lesson_minutes: float = Field(description="Lesson time of the lessons already started")
    lessons_used: int = Field(description="Lessons with the terminal on for at least half")
    lessons_monitored: int
    lessons: int = Field(description="Lessons already started, monitored or not")
    terminals_on: int
    terminal_days_monitored: int
    terminal_days: int


class ClassroomDayFigures(Figures):
    classroom: str
    classroom_name: str
    terminal: str
    switched_on: bool = Field(description="Seen on at least once that day (school day or not)")


class SchoolDayFigures(Figures):
    school: str
    school_name: str
    kind: str
    is_school_day: bool
    day_reason: str = Field(
        description="workday, makeup_workday (调休), lesson_day, weekend, holiday, vacation "
        "or no_lesson_day"
    )
    term: str | None
    calendar_fallback: bool = Field(
        description="The working calendar had no data: Monday to Friday were assumed"
    )
    classrooms: list[ClassroomDayFigures]


class DailyAvailability(_Out):
    day: date
    complete: bool = Field(
        description="False for today: only lessons already started count (in progress: up to now)"
    )
    rolled_up: bool = Field(description="Read from the daily roll-up (the day is over)")
    as_of: datetime
    district: Figures
    schools: list[SchoolDayFigures]


class ClassroomMonthFigures(Figures):
    classroom: str
    classroom_name: str
    terminal: str
    days_switched_on: int = Field(description="School days with the terminal on at least once")


class SchoolMonthFigures(Figures):
    school: str
    school_name: str
    kind: str
    school_days: int
    calendar_fallback_days: int = Field(
        description="Days whose working-day answer assumed Monday to Friday (no calendar data)"
    )
    classrooms: list[ClassroomMonthFigures]


class MonthlyAvailability(_Out):
    month: str = Field(description="YYYY-MM")
    first_day: date
    last_day: date = Field(description="The month's last day, or today for the current month")
    complete: bool = Field(description="False while the month is not over")
    rolled_up_days: int = Field(description="Days read from the daily roll-up")
    as_of: datetime
    district: Figures
    schools: list[SchoolMonthFigures]


# -- monthly report -------------------------------------------------------------------------------


class ComplianceFigures(_Out):
    """达标率 over lesson time, from the 5-minute port roll-ups (docs/availability.md)."""

    rate: float | None = Field(
        description="达标率: compliant_buckets / judged_buckets; null without any judged"
    )
    coverage: float | None = Field(
        description="polled_buckets / lesson_buckets: share of lesson time with port data"
    )
    lesson_buckets: int
    polled_buckets: int
    judged_buckets: int
    compliant_buckets: int


class ReportFigures(Figures):
    uplink_compliance: ComplianceFigures = Field(description="上联达标率 (school uplinks)")
    classroom_compliance: ComplianceFigures = Field(description="班级达标率 (classroom links)")
    outages: int = Field(description="School and classroom outages in the month")


class OutageOut(_Out):
    kind: Literal["school", "classroom"]
    school: str
    school_name: str
    classroom: str | None
    classroom_name: str | None
    start: datetime
    end: datetime | None = Field(description="null while the outage lasts")
    duration_minutes: float = Field(description="Up to now for an outage still open")
    ongoing: bool
    lesson: str | None
    cause: str | None


class WorstClassroom(_Out):
    school: str
    school_name: str
    classroom: str
    classroom_name: str
    online_rate: float
    usage_rate: float | None
    coverage: float | None


class SchoolReport(ReportFigures):
    school: str
    school_name: str
    school_days: int
    worst_classrooms: list[WorstClassroom]


class MonthlyReportOut(_Out):
    """The monthly report: per school and for the district."""

    month: str = Field(description="YYYY-MM")
    first_day: date
    last_day: date
    complete: bool
    as_of: datetime
    title: str
    title_en: str
    district: ReportFigures
    schools: list[SchoolReport]
    outages: list[OutageOut]
    worst_classrooms: list[WorstClassroom]
