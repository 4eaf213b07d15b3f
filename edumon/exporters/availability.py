"""Schedule-aware views of classroom terminals for the exporters: right now, and over days.

Two things the API and /metrics share:

- ``classrooms_now``: each classroom's terminal with the lesson scheduled there now, and whether
  its school's uplink is down (then the classroom is unknown, not offline: "The state model" in
  docs/architecture.md).
- ``daily_availability`` / ``monthly_availability``: 在线率, 开机率 and 使用率 from the pure
  functions in ``edumon.domain.availability``, over online intervals gathered here.

Where the intervals come from: the in-memory ``TerminalsState`` knows what happened since the
process started, but keeps only two days; stored TERMINAL_ONLINE/OFFLINE events know the rest.
Today (since the process started, if that was today) comes from memory, everything earlier from
the store. Memory is preferred for today because the collector writes events in batches: the last
few seconds of changes may not be stored yet.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo

from edumon.config import Config, inventory_of
from edumon.domain.availability import (
    Availability,
    ClassroomDay,
    aggregate,
    classroom_day,
    days_of_month,
)
from edumon.domain.inventory import ClassroomRef, SchoolRef
from edumon.domain.models import Event, EventKind
from edumon.domain.schedule import (
    DEFAULT_TIMEZONE,
    LessonAt,
    Place,
    Schedule,
    SchoolDay,
    WorkingCalendar,
    lesson_at,
    school_day,
    timetable_for,
)
from edumon.domain.terminals import (
    Interval,
    TerminalInventory,
    TerminalRef,
    TerminalState,
    clip_intervals,
    intervals_from_events,
)
from edumon.domain.topology import Topology, assess
from edumon.runtime import Runtime
from edumon.store.protocol import StoreReader

log = logging.getLogger(__name__)

TerminalStatus = Literal["online", "offline", "unknown"]
"""``unknown``: offline as far as the collector can tell, but its school's uplink is down."""
OfflineCause = Literal["will", "shutdown", "timeout", "never_seen"]
"""Why a terminal is offline; ``never_seen``: not heard from since the collector started."""

LOOKBACK_SECONDS = 7 * 86_400.0
"""Events are read from this long before a report's window in one query, so that the state at
the window's start is known without a query per terminal (a week covers weekends and most
holidays; terminals silent for longer are looked up one by one)."""
EVENT_PAGE_SIZE = 5_000


# -- the national calendar, once per date -----------------------------------------------------


class MemoCalendar:
    """A working calendar that asks the wrapped one at most once per date.

    A scrape asks about today once per classroom and a monthly report once per classroom-day;
    the answers cannot change within one request. Make one per request: it never forgets.
    """

    def __init__(self, calendar: WorkingCalendar) -> None:
        self._calendar = calendar
        self._days: dict[date, bool | None] = {}

    def is_workday(self, day: date) -> bool | None:
        """See ``WorkingCalendar.is_workday``."""
        if day not in self._days:
            self._days[day] = self._calendar.is_workday(day)
        return self._days[day]


class CalendarFallbackLog:
    """Says, once per date, that the working calendar has no data and weekdays stand in.

    The ``chinese_calendar`` package learns each year's holidays and 调休 days from the State
    Council notice published late in the year before; a collector left running past its data
    treats Monday to Friday as working days until the package is upgraded. Hold one per app
    (the /metrics collector has its own) and call ``check`` as often as convenient.
    """

    def __init__(self) -> None:
        self._logged: date | None = None

    def check(self, calendar: WorkingCalendar, day: date) -> bool:
        """Whether ``day``'s working-day answer is the weekday fallback; logs it once per date."""
        fallback = calendar.is_workday(day) is None
        if fallback and self._logged != day:
            self._logged = day
            log.warning(
                "the working calendar has no data for %s: Monday to Friday are taken as working "
                "days, so holidays and 调休 make-up days are not known; upgrade the "
                "chinese-calendar package",
                day.isoformat(),
            )
        return fallback


def schedule_timezone(runtime: Runtime) -> tzinfo:
    """The zone school days are counted in (the schedule's, or Beijing time without one)."""
    return runtime.schedule.timezone if runtime.schedule is not None else ZoneInfo(DEFAULT_TIMEZONE)


def local_date(runtime: Runtime, when: float) -> date:
    """The local date at Unix time ``when`` in the schedule's time zone."""
    return datetime.fromtimestamp(when, schedule_timezone(runtime)).date()


# -- classrooms right now ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassroomNow:
    """One classroom's terminal at one moment, with the lesson scheduled there.

    Attributes:
        school: the school.
        room: the classroom.
        terminal: its terminal's state (None when the runtime keeps no terminal state).
        unknown_reason: why the classroom cannot be judged now (its school is cut off, or its
            access switch does not answer): its terminal cannot be heard, so an offline one is
            unknown rather than offline (one school or switch alert, not forty). None if it can.
        lesson: the schedule's answer for now; None without a schedule and calendar.
        day_end: Unix time today's last lesson ends in this classroom; None on a day without
            lessons or without a schedule.
    """

    school: SchoolRef
    room: ClassroomRef
    terminal: TerminalState | None
    unknown_reason: str | None
    lesson: LessonAt | None
    day_end: float | None = None

    @property
    def uplink_down(self) -> bool:
        """The classroom is behind a failure (its school cut off or its switch down)."""
        return self.unknown_reason is not None

    @property
    def online(self) -> bool:
        return self.terminal is not None and self.terminal.online is True

    @property
    def status(self) -> TerminalStatus:
        if self.online:
            return "online"
        return "unknown" if self.uplink_down else "offline"

    @property
    def offline_reason(self) -> OfflineCause | None:
        """Why the terminal is not online (also while the uplink is down); None when online."""
        if self.online:
            return None
        st = self.terminal
        if st is None or st.online is None or st.offline_reason is None:
            return "never_seen"
        return st.offline_reason

    @property
    def since(self) -> float | None:
        """When the terminal went online or offline; None if never heard from."""
        st = self.terminal
        if st is None:
            return None
        return st.online_since if st.online else st.offline_since

    @property
    def expected_online(self) -> bool | None:
        """A lesson is scheduled now; None without a schedule."""
        return None if self.lesson is None else self.lesson.scheduled

    @property
    def offline_in_lesson(self) -> bool | None:
        """Offline while a lesson is scheduled (what alerts); never while the uplink is down."""
        expected = self.expected_online
        return None if expected is None else expected and self.status == "offline"

    @property
    def period(self) -> str | None:
        """The lesson in progress, e.g. ``第3节 10:20-11:00``."""
        period = self.lesson.period if self.lesson is not None else None
        return None if period is None else str(period)

    @property
    def lesson_start(self) -> float | None:
        """Unix time the lesson in progress began; None outside lessons."""
        if self.lesson is None or self.lesson.period is None:
            return None
        local = self.lesson.when
        return datetime.combine(local.date(), self.lesson.period.start, local.tzinfo).timestamp()


def _day_end(lesson: LessonAt, schedule: Schedule, place: Place) -> float | None:
    if not lesson.day.is_school_day:
        return None
    periods = timetable_for(schedule, place).periods
    if not periods:
        return None
    local = lesson.when
    return datetime.combine(local.date(), periods[-1].end, local.tzinfo).timestamp()


def classrooms_now(
    runtime: Runtime,
    now: float,
    *,
    school: str | None = None,
    topology: Topology | None = None,
) -> list[ClassroomNow]:
    """Every classroom (of one school, or all) with its terminal and the lesson at ``now``.

    Args:
        runtime: the daemon's parts; read only.
        now: the moment (Unix seconds).
        school: only this school's classrooms.
        topology: the parent-failure view to use (computed from the state when not given).
    """
    schedule = runtime.schedule
    calendar = MemoCalendar(runtime.calendar) if runtime.calendar is not None else None
    when = datetime.fromtimestamp(now, UTC)
    topo = topology if topology is not None else assess(runtime.state)
    terminals = runtime.terminals
    out = []
    for code, ref in runtime.state.inventory.schools.items():
        if school is not None and code != school:
            continue
        for room in ref.classrooms:
            lesson = None
            day_end = None
            if schedule is not None and calendar is not None:
                place = Place(code, ref.kind, room.id)
                lesson = lesson_at(schedule, calendar, place, when)
                day_end = _day_end(lesson, schedule, place)
            st = terminals.of_classroom(room.id) if terminals is not None else None
            why = topo.classroom_unknown(code, room.switch)
            out.append(ClassroomNow(ref, room, st, why, lesson, day_end))
    return out


def terminal_speeds(runtime: Runtime) -> dict[str, float | None]:
    """Each classroom's terminal NIC speed (Mbit/s), for classrooms without a switch port."""
    terminals = runtime.terminals
    if terminals is None:
        return {}
    return {
        room.id: terminals.classroom_link_speed(room.id)
        for school in runtime.state.inventory.schools.values()
        for room in school.classrooms
    }


# -- online intervals -------------------------------------------------------------------------


def terminal_inventory(runtime: Runtime) -> TerminalInventory:
    """The terminals the runtime knows: its state's, or else built from the configuration."""
    if runtime.terminals is not None:
        return runtime.terminals.inventory
    return _terminal_inventory_of(runtime.config)


def _terminal_inventory_of(config: Config) -> TerminalInventory:
    named = {
        (code, room.terminal): room.id
        for code, school in config.schools.items()
        for room in school.classrooms
        if room.terminal is not None
    }
    return TerminalInventory.from_inventory(inventory_of(config), named, config.district.code)


async def _events(
    store: StoreReader,
    *,
    school: str | None,
    since: float,
    until: float,
) -> list[Event]:
    """Every terminal online/offline event in [since, until), in pages."""
    found: list[Event] = []
    for kind in (EventKind.TERMINAL_ONLINE, EventKind.TERMINAL_OFFLINE):
        offset = 0
        while True:
            page = await store.events(
                school=school,
                kind=kind,
                since=since,
                until=until,
                limit=EVENT_PAGE_SIZE,
                offset=offset,
            )
            found.extend(page)
            if len(page) < EVENT_PAGE_SIZE:
                break
            # Newest first: an event stored meanwhile shifts the pages, which repeats an event
            # (harmless to intervals_from_events) but never skips one.
            offset += EVENT_PAGE_SIZE
    return found


async def _last_before(store: StoreReader, ref: TerminalRef, before: float) -> list[Event]:
    """The terminal's last online and last offline event before ``before``."""
    found: list[Event] = []
    for kind in (EventKind.TERMINAL_ONLINE, EventKind.TERMINAL_OFFLINE):
        found += await store.events(
            school=ref.school, device=ref.terminal, kind=kind, until=before, limit=1
        )
    return found


async def stored_intervals(
    store: StoreReader,
    refs: Sequence[TerminalRef],
    since: float,
    until: float,
    *,
    school: str | None = None,
) -> dict[TerminalRef, tuple[Interval, ...]]:
    """Each terminal's online intervals within [since, until), rebuilt from stored events.

    Events from ``LOOKBACK_SECONDS`` before ``since`` are read with the window, so that a
    terminal left on overnight counts from the window's start; a terminal without any event in
    that look-back is asked for its last events one by one.

    Args:
        store: where the events are.
        refs: the terminals wanted.
        since: the window's start (Unix seconds).
        until: its end; an interval still open at the last event runs to here.
        school: when every ref is of this school, narrows the query.

    Raises:
        StoreError: the database failed.
    """
    if until <= since:
        return {ref: () for ref in refs}
    lookback = since - LOOKBACK_SECONDS
    by_terminal: dict[tuple[str | None, str], list[Event]] = {}
    for event in await _events(store, school=school, since=lookback, until=until):
        by_terminal.setdefault((event.school, event.device_id), []).append(event)
    out: dict[TerminalRef, tuple[Interval, ...]] = {}
    for ref in refs:
        events = by_terminal.get((ref.school, ref.terminal), [])
        if not any(e.at < since for e in events):
            events = events + await _last_before(store, ref, lookback)
        out[ref] = clip_intervals(intervals_from_events(events, until), since, until)
    return out


async def online_intervals(
    runtime: Runtime,
    refs: Sequence[TerminalRef],
    since: float,
    until: float,
    now: float,
    *,
    school: str | None = None,
) -> dict[TerminalRef, tuple[Interval, ...]]:
    """Each terminal's online intervals within [since, min(until, now)).

    Memory covers today from the time the process started; the store covers the rest.

    Raises:
        StoreError: the database failed.
    """
    until = min(until, now)
    terminals = runtime.terminals
    memory_from = math.inf
    if terminals is not None:
        day_start = _midnight(runtime, local_date(runtime, now))
        memory_from = max(day_start, runtime.started_at)
    stored = await stored_intervals(
        runtime.store, refs, since, min(until, memory_from), school=school
    )
    if terminals is None or memory_from >= until:
        return stored
    out = {}
    for ref in refs:
        live = terminals.online_intervals(ref.school, ref.terminal, max(since, memory_from), until)
        out[ref] = clip_intervals((*stored[ref], *live), since, until)
    return out


def _midnight(runtime: Runtime, day: date) -> float:
    return datetime.combine(day, time(0), tzinfo=schedule_timezone(runtime)).timestamp()


# -- reports ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoomFigures:
    """One classroom's figures over a report's days.

    Attributes:
        room: the classroom.
        terminal: its terminal's id.
        days: one entry per day of the report (up to today).
    """

    room: ClassroomRef
    terminal: str
    days: tuple[ClassroomDay, ...]

    @property
    def totals(self) -> Availability:
        return aggregate(self.days)

    @property
    def days_switched_on(self) -> int:
        """School days with the terminal on at least once."""
        return sum(1 for d in self.days if d.switched_on and d.school_day.is_school_day)


@dataclass(frozen=True, slots=True)
class SchoolFigures:
    """One school's classrooms over a report's days, and the school's own day answers."""

    school: SchoolRef
    days: tuple[SchoolDay, ...]
    rooms: tuple[RoomFigures, ...]

    @property
    def totals(self) -> Availability:
        total = Availability()
        for room in self.rooms:
            total += room.totals
        return total

    @property
    def school_days(self) -> int:
        return sum(1 for d in self.days if d.is_school_day)

    @property
    def calendar_fallback_days(self) -> int:
        """Days whose working-day answer was the weekday fallback (the calendar had no data)."""
        return sum(1 for d in self.days if d.calendar_fallback)


@dataclass(frozen=True, slots=True)
class Report:
    """Availability of some schools over some days.

    Attributes:
        first_day: the report's first local date.
        last_day: its last local date (for the current month, today).
        complete: False while the report covers today: lessons still to come today count in
            the denominators, so today's rates can only rise until the day is over.
        as_of: when the figures were computed (Unix seconds).
        schools: by school, in inventory order.
    """

    first_day: date
    last_day: date
    complete: bool
    as_of: float
    schools: tuple[SchoolFigures, ...]

    @property
    def totals(self) -> Availability:
        total = Availability()
        for school in self.schools:
            total += school.totals
        return total


class ReportError(ValueError):
    """A report that cannot be made: what to change is in the message."""


async def availability_report(
    runtime: Runtime,
    first_day: date,
    last_day: date,
    now: float,
    *,
    school: str | None = None,
) -> Report:
    """在线率, 开机率 and 使用率 per classroom and school over local dates, from state and store.

    Days after today are left out (they have no figures yet).

    Args:
        runtime: the daemon's parts (needs a schedule and a calendar).
        first_day: the first local date.
        last_day: the last local date, included.
        now: the current time (Unix seconds).
        school: only this school.

    Raises:
        ReportError: no schedule or calendar, or ``first_day`` is after today.
        KeyError: ``school`` is not in the inventory.
        StoreError: the database failed.
    """
    schedule, base_calendar = runtime.schedule, runtime.calendar
    if schedule is None or base_calendar is None:
        raise ReportError("availability needs a lesson schedule and a working calendar")
    today = local_date(runtime, now)
    if first_day > today:
        raise ReportError(f"{first_day.isoformat()} has not begun; there are no figures yet")
    last_day = min(last_day, today)
    calendar = MemoCalendar(base_calendar)
    inventory = runtime.state.inventory
    schools = [inventory.schools[school]] if school is not None else [*inventory.schools.values()]
    terminals = terminal_inventory(runtime)
    refs: dict[str, TerminalRef] = {}
    for ref in schools:
        for room in ref.classrooms:
            t = terminals.of_classroom(room.id)
            if t is not None:
                refs[room.id] = t
    spans = await online_intervals(
        runtime,
        list(refs.values()),
        _midnight(runtime, first_day),
        _midnight(runtime, last_day + timedelta(days=1)),
        now,
        school=school,
    )
    days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    out = []
    for ref in schools:
        rooms = tuple(
            RoomFigures(
                room,
                refs[room.id].terminal,
                _room_days(schedule, calendar, ref, room, days, spans[refs[room.id]]),
            )
            for room in ref.classrooms
            if room.id in refs
        )
        school_days = tuple(school_day(schedule, calendar, d, ref.code) for d in days)
        out.append(SchoolFigures(ref, school_days, rooms))
    return Report(first_day, last_day, last_day < today, now, tuple(out))


def _room_days(
    schedule: Schedule,
    calendar: WorkingCalendar,
    school: SchoolRef,
    room: ClassroomRef,
    days: Iterable[date],
    spans: tuple[Interval, ...],
) -> tuple[ClassroomDay, ...]:
    place = Place(school.code, school.kind, room.id)
    return tuple(classroom_day(schedule, calendar, place, d, spans) for d in days)


async def daily_availability(
    runtime: Runtime, day: date, now: float, *, school: str | None = None
) -> Report:
    """One local date's report (see ``availability_report``)."""
    return await availability_report(runtime, day, day, now, school=school)


async def monthly_availability(
    runtime: Runtime, year: int, month: int, now: float, *, school: str | None = None
) -> Report:
    """One month's report, up to today for the current month (see ``availability_report``)."""
    days = days_of_month(year, month)
    return await availability_report(runtime, days[0], days[-1], now, school=school)
