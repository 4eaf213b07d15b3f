"""Availability reports: 在线率, 开机率 and 使用率 per classroom and school over local dates.

The figures come from the pure functions in ``edumon.domain.availability``, over online
intervals and monitored time gathered here (docs/availability.md).

Where the intervals come from: the in-memory ``TerminalsState`` knows what happened since the
process started, but keeps only two days; stored TERMINAL_ONLINE/OFFLINE events know the rest.
Today (since the process started, if that was today) comes from memory, everything earlier from
the store. Memory is preferred for today because the collector writes events in batches: the last
few seconds of changes may not be stored yet.

Monitored time is the stored monitoring runs (``monitor_runs``), plus, in the daemon, the time
since this process started. Days already over are read from the daily roll-up when it has them
(``edumon.reports.rollup`` writes it); other days are computed from the events.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from edumon.config import Config, inventory_of, terminal_inventory_of
from edumon.domain.availability import (
    Availability,
    ClassroomDay,
    aggregate,
    classroom_day,
    days_of_month,
)
from edumon.domain.inventory import ClassroomRef, Inventory, SchoolRef
from edumon.domain.models import Event, EventKind
from edumon.domain.schedule import (
    DEFAULT_TIMEZONE,
    Place,
    Schedule,
    SchoolDay,
    WorkingCalendar,
    school_day,
)
from edumon.domain.targets import Targets
from edumon.domain.terminals import (
    Interval,
    TerminalInventory,
    TerminalRef,
    TerminalsState,
    clip_intervals,
    intervals_from_events,
)
from edumon.runtime import Runtime
from edumon.store.protocol import ClassroomAvailability, StoreReader
from edumon.views import MemoCalendar
from edumon.workcalendar import calendar_of

if TYPE_CHECKING:
    from edumon.store.repository import Store


@dataclass(frozen=True, slots=True)
class Sources:
    """What a report reads: inventory, schedule, calendar, store, and the live state if any.

    Attributes:
        inventory: schools and classrooms.
        terminals: which terminal serves which classroom.
        schedule: the lesson schedule (None: no figures can be made).
        calendar: the national working calendar (None: no figures can be made).
        store: the database (events, roll-ups, monitoring runs).
        live: the running daemon's terminal state; None in the ``edumon report`` command.
        live_since: this process has been monitoring since then (inf when it is not the daemon).
        targets: the speed targets (达标率 in the monthly report).
    """

    inventory: Inventory
    terminals: TerminalInventory
    schedule: Schedule | None
    calendar: WorkingCalendar | None
    store: Store
    live: TerminalsState | None = None
    live_since: float = math.inf
    targets: Targets | None = None

    @classmethod
    def of_runtime(cls, runtime: Runtime) -> Sources:
        """The running daemon's sources (the API's)."""
        terminals = (
            runtime.terminals.inventory
            if runtime.terminals is not None
            else terminal_inventory_of(runtime.config)
        )
        live_since = runtime.started_at if runtime.terminals is not None else math.inf
        return cls(
            runtime.state.inventory,
            terminals,
            runtime.schedule,
            runtime.calendar,
            runtime.store,
            runtime.terminals,
            live_since,
            runtime.config.targets,
        )

    @classmethod
    def of_config(cls, config: Config, store: Store) -> Sources:
        """Sources for a report made outside the daemon (``edumon report``): store only."""
        return cls(
            inventory_of(config),
            terminal_inventory_of(config),
            config.schedule.schedule(),
            calendar_of(config),
            store,
            targets=config.targets,
        )

    @property
    def zone(self) -> tzinfo:
        if self.schedule is not None:
            return self.schedule.timezone
        return ZoneInfo(DEFAULT_TIMEZONE)

    def local_date(self, when: float) -> date:
        """The local date at Unix time ``when``."""
        return datetime.fromtimestamp(when, self.zone).date()

    def midnight(self, day: date) -> float:
        """Unix time a local date begins."""
        return datetime.combine(day, time(0), tzinfo=self.zone).timestamp()


LOOKBACK_SECONDS = 7 * 86_400.0
"""Events are read from this long before a report's window in one query, so that the state at
the window's start is known without a query per terminal (a week covers weekends and most
holidays; terminals silent for longer are looked up one by one)."""
EVENT_PAGE_SIZE = 5_000


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


async def _last_before(
    store: StoreReader, refs: Sequence[TerminalRef], before: float
) -> dict[tuple[str, str], list[Event]]:
    """Each terminal's last online and last offline event before ``before``: a query a school."""
    by_school: dict[str, list[str]] = {}
    for ref in refs:
        by_school.setdefault(ref.school, []).append(ref.terminal)
    found: dict[tuple[str, str], list[Event]] = {}
    for school, devices in by_school.items():
        for event in await store.last_events_before(
            school=school,
            devices=devices,
            kinds=(EventKind.TERMINAL_ONLINE, EventKind.TERMINAL_OFFLINE),
            before=before,
        ):
            found.setdefault((school, event.device_id), []).append(event)
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
    silent = [
        ref
        for ref in refs
        if not any(e.at < since for e in by_terminal.get((ref.school, ref.terminal), ()))
    ]
    older = await _last_before(store, silent, lookback) if silent else {}
    out: dict[TerminalRef, tuple[Interval, ...]] = {}
    for ref in refs:
        key = (ref.school, ref.terminal)
        events = [*by_terminal.get(key, ()), *older.get(key, ())]
        out[ref] = clip_intervals(intervals_from_events(events, until), since, until)
    return out


async def online_intervals(
    src: Sources,
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
    terminals = src.live
    memory_from = math.inf
    if terminals is not None:
        memory_from = max(src.midnight(src.local_date(now)), src.live_since)
    stored = await stored_intervals(src.store, refs, since, min(until, memory_from), school=school)
    if terminals is None or memory_from >= until:
        return stored
    out = {}
    for ref in refs:
        live = terminals.online_intervals(ref.school, ref.terminal, max(since, memory_from), until)
        out[ref] = clip_intervals((*stored[ref], *live), since, until)
    return out


async def monitored_time(
    src: Sources, since: float, until: float, now: float
) -> tuple[Interval, ...]:
    """When edumon was monitoring within [since, min(until, now)): the stored runs, and this
    process's own run up to ``now``.

    Raises:
        StoreError: the database failed.
    """
    until = min(until, now)
    if until <= since:
        return ()
    runs = list(await src.store.monitor_runs(since, until))
    if src.live_since < until:
        runs.append((src.live_since, now))
    return clip_intervals(runs, since, until)


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
        """School days with the terminal seen on at least once."""
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
        complete: False while the report covers today (lessons still to come are not counted
            yet, so today's figures change until the day is over).
        as_of: when the figures were computed (Unix seconds).
        schools: by school, in inventory order.
        rolled_up_days: how many of the days were read from the daily roll-up.
    """

    first_day: date
    last_day: date
    complete: bool
    as_of: float
    schools: tuple[SchoolFigures, ...]
    rolled_up_days: int = 0

    @property
    def totals(self) -> Availability:
        total = Availability()
        for school in self.schools:
            total += school.totals
        return total


class ReportError(ValueError):
    """A report that cannot be made: what to change is in the message."""


def schedule_and_calendar(src: Sources) -> tuple[Schedule, WorkingCalendar]:
    if src.schedule is None or src.calendar is None:
        raise ReportError(
            "统计需要课表和工作日历 / availability needs a lesson schedule and a working calendar"
        )
    return src.schedule, MemoCalendar(src.calendar)


def selected_schools(src: Sources, schools: Collection[str] | None) -> list[SchoolRef]:
    """The inventory's schools among ``schools`` (all when None), in inventory order."""
    inventory = src.inventory.schools
    if schools is None:
        return [*inventory.values()]
    return [ref for code, ref in inventory.items() if code in schools]


def terminal_refs(src: Sources, schools: Iterable[SchoolRef]) -> dict[str, TerminalRef]:
    refs: dict[str, TerminalRef] = {}
    for ref in schools:
        for room in ref.classrooms:
            t = src.terminals.of_classroom(room.id)
            if t is not None:
                refs[room.id] = t
    return refs


async def compute_days(
    src: Sources,
    schools: Sequence[SchoolRef],
    days: Sequence[date],
    now: float,
) -> dict[str, list[ClassroomDay]]:
    """Each classroom's days computed from stored events, monitored time and the live state.

    Args:
        src: the sources.
        schools: the schools wanted.
        days: consecutive local dates, oldest first.
        now: the current time; lessons from then on do not count.

    Raises:
        ReportError: no schedule or calendar.
        StoreError: the database failed.
    """
    schedule, calendar = schedule_and_calendar(src)
    if not days:
        return {}
    refs = terminal_refs(src, schools)
    since = src.midnight(days[0])
    until = src.midnight(days[-1] + timedelta(days=1))
    only = schools[0].code if len(schools) == 1 else None
    spans = await online_intervals(src, list(refs.values()), since, until, now, school=only)
    watched = await monitored_time(src, since, until, now)
    out: dict[str, list[ClassroomDay]] = {}
    for ref in schools:
        for room in ref.classrooms:
            if room.id not in refs:
                continue
            place = Place(ref.code, ref.kind, room.id)
            out[room.id] = [
                classroom_day(
                    schedule, calendar, place, d, spans[refs[room.id]], monitored=watched, now=now
                )
                for d in days
            ]
    return out


def _from_row(
    schedule: Schedule, calendar: WorkingCalendar, place: Place, row: ClassroomAvailability
) -> ClassroomDay:
    totals = Availability(
        row.online_seconds,
        row.monitored_seconds,
        row.lesson_seconds,
        row.lessons_used,
        row.lessons_monitored,
        row.lessons,
        row.terminals_on,
        row.terminal_days_monitored,
        row.terminal_days,
    )
    the_day = school_day(schedule, calendar, row.day, place.school)
    return ClassroomDay(place, the_day, row.switched_on, totals)


def to_row(
    school: str, terminal: str, day: ClassroomDay, computed_at: float
) -> ClassroomAvailability:
    """A computed classroom-day as a roll-up row."""
    a = day.totals
    return ClassroomAvailability(
        day=day.day,
        school=school,
        classroom=day.place.classroom or "",
        terminal=terminal,
        lesson_seconds=a.lesson_seconds,
        monitored_seconds=a.monitored_seconds,
        online_seconds=a.online_seconds,
        lessons=a.lessons,
        lessons_monitored=a.lessons_monitored,
        lessons_used=a.lessons_used,
        terminal_days=a.terminal_days,
        terminal_days_monitored=a.terminal_days_monitored,
        terminals_on=a.terminals_on,
        switched_on=day.switched_on,
        computed_at=computed_at,
    )


def _consecutive(days: Iterable[date]) -> list[list[date]]:
    runs: list[list[date]] = []
    for d in sorted(days):
        if runs and d == runs[-1][-1] + timedelta(days=1):
            runs[-1].append(d)
        else:
            runs.append([d])
    return runs


async def availability_report(
    src: Sources,
    first_day: date,
    last_day: date,
    now: float,
    *,
    schools: Collection[str] | None = None,
) -> Report:
    """在线率, 开机率 and 使用率 per classroom and school over local dates.

    Days already over are read from the daily roll-up where it has them; the others (today, or
    days the roll-up has not reached) are computed from the stored events. Days after today are
    left out (they have no figures yet).

    Args:
        src: the sources (``Sources.of_runtime`` or ``Sources.of_config``).
        first_day: the first local date.
        last_day: the last local date, included.
        now: the current time (Unix seconds).
        schools: only these schools (codes not in the inventory are ignored); None: all.

    Raises:
        ReportError: no schedule or calendar, or ``first_day`` is after today.
        StoreError: the database failed.
    """
    schedule, calendar = schedule_and_calendar(src)
    today = src.local_date(now)
    if first_day > today:
        raise ReportError(
            f"{first_day.isoformat()} 尚未开始，还没有数据 / "
            f"{first_day.isoformat()} has not begun; there are no figures yet"
        )
    last_day = min(last_day, today)
    chosen = selected_schools(src, schools)
    refs = terminal_refs(src, chosen)
    days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    over = [d for d in days if d < today]
    stored_days = (
        await src.store.rolled_up_days(over[0], over[-1] + timedelta(days=1)) if over else set()
    )
    rows: dict[tuple[str, date], ClassroomAvailability] = {}
    if stored_days:
        only = chosen[0].code if len(chosen) == 1 else None
        found = await src.store.availability(
            min(stored_days), max(stored_days) + timedelta(days=1), only
        )
        rows = {(r.classroom, r.day): r for r in found}
    # A day counts as rolled up only when every classroom has its row (a classroom added to
    # the inventory later is computed from the events instead).
    rolled = {d for d in stored_days if all((room, d) in rows for room in refs)}
    computed: dict[str, dict[date, ClassroomDay]] = {}
    for run in _consecutive(d for d in days if d not in rolled):
        for room_id, some in (await compute_days(src, chosen, run, now)).items():
            computed.setdefault(room_id, {}).update({x.day: x for x in some})
    out = []
    for ref in chosen:
        figures = []
        for room in ref.classrooms:
            if room.id not in refs:
                continue
            place = Place(ref.code, ref.kind, room.id)
            kept = tuple(
                _from_row(schedule, calendar, place, rows[(room.id, d)])
                if d in rolled
                else computed[room.id][d]
                for d in days
            )
            figures.append(RoomFigures(room, refs[room.id].terminal, kept))
        school_days = tuple(school_day(schedule, calendar, d, ref.code) for d in days)
        out.append(SchoolFigures(ref, school_days, tuple(figures)))
    return Report(first_day, last_day, last_day < today, now, tuple(out), len(rolled))


async def daily_availability(
    src: Sources, day: date, now: float, *, schools: Collection[str] | None = None
) -> Report:
    """One local date's report (see ``availability_report``)."""
    return await availability_report(src, day, day, now, schools=schools)


async def monthly_availability(
    src: Sources, year: int, month: int, now: float, *, schools: Collection[str] | None = None
) -> Report:
    """One month's report, up to today for the current month (see ``availability_report``)."""
    days = days_of_month(year, month)
    return await availability_report(src, days[0], days[-1], now, schools=schools)
