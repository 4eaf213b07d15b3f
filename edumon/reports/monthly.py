"""The monthly report: availability, 达标率, outages and worst classrooms per school and district.

One function (``monthly_report``) makes it for both ``edumon report`` and
``/api/v1/reports/monthly``, so both show the same numbers. How each figure is counted, and
what "no data" means, is in docs/availability.md.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from edumon.domain.availability import (
    Availability,
    Compliance,
    days_of_month,
    lesson_buckets,
    port_compliance,
)
from edumon.domain.inventory import ClassroomRef, SchoolRef
from edumon.domain.models import Event, EventKind
from edumon.domain.rollups import InterfaceRollup
from edumon.domain.schedule import Place
from edumon.reports.availability import (
    EVENT_PAGE_SIZE,
    Report,
    ReportError,
    RoomFigures,
    SchoolFigures,
    Sources,
    monthly_availability,
    schedule_and_calendar,
)

WORST_PER_SCHOOL = 3
WORST_IN_DISTRICT = 10


@dataclass(frozen=True, slots=True)
class Outage:
    """A school cut off, or a classroom's terminal offline in lessons, from stored events."""

    kind: str
    """"school" or "classroom"."""
    school: str
    classroom: str | None
    start: float
    end: float | None
    """None while it lasts."""
    lesson: str | None
    cause: str | None

    def duration(self, now: float) -> float:
        return (self.end if self.end is not None else now) - self.start


@dataclass(frozen=True, slots=True)
class SchoolMonth:
    """One school's month."""

    figures: SchoolFigures
    uplink: Compliance
    classrooms: Compliance
    outages: tuple[Outage, ...]

    @property
    def school(self) -> SchoolRef:
        return self.figures.school

    @property
    def totals(self) -> Availability:
        return self.figures.totals

    def worst(self, count: int = WORST_PER_SCHOOL) -> list[RoomFigures]:
        return worst_rooms(self.figures.rooms, count)


@dataclass(frozen=True, slots=True)
class MonthlyReport:
    """A month of some schools (all of the district by default)."""

    year: int
    month: int
    availability: Report
    schools: tuple[SchoolMonth, ...]
    now: float
    outages: tuple[Outage, ...] = field(default=())

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def totals(self) -> Availability:
        return self.availability.totals

    @property
    def uplink(self) -> Compliance:
        total = Compliance()
        for s in self.schools:
            total += s.uplink
        return total

    @property
    def classrooms(self) -> Compliance:
        total = Compliance()
        for s in self.schools:
            total += s.classrooms
        return total

    def worst(self, count: int = WORST_IN_DISTRICT) -> list[tuple[SchoolRef, RoomFigures]]:
        rooms = [(s.school, r) for s in self.schools for r in s.figures.rooms]
        ranked = worst_rooms([r for _, r in rooms], count)
        school_of = {id(r): s for s, r in rooms}
        return [(school_of[id(r)], r) for r in ranked]


def worst_rooms(rooms: Iterable[RoomFigures], count: int) -> list[RoomFigures]:
    """The classrooms with the lowest 在线率 (then 使用率); those without data are left out."""
    judged = [r for r in rooms if r.totals.online_rate is not None]
    judged.sort(key=lambda r: (r.totals.online_rate or 0.0, r.totals.usage_rate or 0.0, r.room.id))
    return judged[:count]


async def _events_of(
    src: Sources, kind: EventKind, school: str | None, since: float, until: float
) -> list[Event]:
    found: list[Event] = []
    offset = 0
    while True:
        page = await src.store.events(
            school=school, kind=kind, since=since, until=until, limit=EVENT_PAGE_SIZE, offset=offset
        )
        found.extend(page)
        if len(page) < EVENT_PAGE_SIZE:
            return found
        offset += EVENT_PAGE_SIZE


def _started(e: Event) -> float:
    value = e.details.get("started_at")
    return float(value) if isinstance(value, int | float) else e.at


def _text(e: Event, key: str) -> str | None:
    value = e.details.get(key)
    return str(value) if value is not None else None


async def outages(
    src: Sources, school: str | None, since: float, until: float, now: float
) -> list[Outage]:
    """School and classroom outages overlapping [since, until), oldest first.

    An outage is opened by a SCHOOL_OUTAGE/CLASSROOM_OUTAGE event and closed by the matching
    RESTORED event (both carry the outage's ``started_at``). Outages opened up to 31 days
    before the window are looked at, so one running into the month is not missed.

    Raises:
        StoreError: the database failed.
    """
    out: list[Outage] = []
    pairs = (
        ("school", EventKind.SCHOOL_OUTAGE, EventKind.SCHOOL_RESTORED),
        ("classroom", EventKind.CLASSROOM_OUTAGE, EventKind.CLASSROOM_RESTORED),
    )
    for kind, opened_kind, closed_kind in pairs:
        opened = await _events_of(src, opened_kind, school, since - 31 * 86_400, until)
        closed = await _events_of(src, closed_kind, school, since - 31 * 86_400, now + 1)
        ends = {(e.school, e.classroom, _started(e)): e.at for e in closed}
        for e in opened:
            start = _started(e)
            end = ends.get((e.school, e.classroom, start))
            if start >= until or (end is not None and end < since) or e.school is None:
                continue
            out.append(
                Outage(
                    kind,
                    e.school,
                    e.classroom if kind == "classroom" else None,
                    start,
                    end,
                    _text(e, "lesson"),
                    _text(e, "cause"),
                )
            )
    out.sort(key=lambda o: (o.start, o.school, o.classroom or ""))
    return out


def _ports(school: SchoolRef) -> tuple[tuple[str, str], list[tuple[ClassroomRef, str, str]]]:
    rooms: list[tuple[ClassroomRef, str, str]] = []
    for room in school.classrooms:
        if room.switch is not None and room.port is not None:
            rooms.append((room, room.switch, room.port))
    return (school.uplink_switch, school.uplink_port), rooms


async def _compliance(
    src: Sources, schools: Iterable[SchoolRef], days: list[date], now: float
) -> dict[str, tuple[Compliance, Compliance]]:
    schedule, calendar = schedule_and_calendar(src)
    chosen = list(schools)
    if not days or not chosen:
        return {}
    wanted: set[tuple[str, str]] = set()
    for ref in chosen:
        uplink, rooms = _ports(ref)
        wanted.add(uplink)
        wanted.update((sw, port) for _, sw, port in rooms)
    since = src.midnight(days[0])
    until = min(src.midnight(days[-1] + timedelta(days=1)), now)
    by_port: dict[tuple[str, str], dict[float, InterfaceRollup]] = {}
    if until > since:
        for r in await src.store.port_rollups(wanted, since, until):
            by_port.setdefault((r.device_id, r.interface), {})[r.bucket_start] = r
    targets = src.targets
    out: dict[str, tuple[Compliance, Compliance]] = {}
    for ref in chosen:
        uplink, rooms = _ports(ref)
        up = rooms_total = Compliance()
        for d in days:
            buckets = lesson_buckets(schedule, calendar, Place(ref.code, ref.kind), d, now=now)
            up += port_compliance(
                buckets,
                by_port.get(uplink, {}),
                targets.uplink_mbps if targets is not None else None,
                must_be_up=True,
            )
            for room, sw, port in rooms:
                room_buckets = lesson_buckets(
                    schedule, calendar, Place(ref.code, ref.kind, room.id), d, now=now
                )
                rooms_total += port_compliance(
                    room_buckets,
                    by_port.get((sw, port), {}),
                    targets.classroom_mbps if targets is not None else None,
                    must_be_up=False,
                )
        out[ref.code] = (up, rooms_total)
    return out


async def monthly_report(
    src: Sources,
    year: int,
    month: int,
    now: float,
    *,
    schools: Collection[str] | None = None,
) -> MonthlyReport:
    """The month's report, up to ``now`` for the current month.

    Args:
        src: the sources (``Sources.of_runtime`` in the API, ``Sources.of_config`` in the CLI).
        year: the year.
        month: the month, 1 to 12.
        now: the current time (Unix seconds).
        schools: only these schools; None: all.

    Raises:
        ReportError: no schedule or calendar, or the month has not begun.
        StoreError: the database failed.
    """
    availability = await monthly_availability(src, year, month, now, schools=schools)
    first, last = availability.first_day, availability.last_day
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    refs = [sf.school for sf in availability.schools]
    compliance = await _compliance(src, refs, days, now)
    since = src.midnight(days_of_month(year, month)[0])
    until = src.midnight(last + timedelta(days=1))
    only = refs[0].code if len(refs) == 1 else None
    found = [o for o in await outages(src, only, since, until, now) if o.school in compliance]
    months = tuple(
        SchoolMonth(
            sf,
            compliance[sf.school.code][0],
            compliance[sf.school.code][1],
            tuple(o for o in found if o.school == sf.school.code),
        )
        for sf in availability.schools
    )
    return MonthlyReport(year, month, availability, months, now, tuple(found))


__all__ = ["MonthlyReport", "Outage", "ReportError", "SchoolMonth", "monthly_report"]
