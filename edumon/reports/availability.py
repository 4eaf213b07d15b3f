"""Availability reports: 在线率, 开机率 and 使用率 per classroom and school over local dates.

The figures come from the pure functions in ``edumon.domain.availability``, over online
intervals gathered here.

Where the intervals come from: the in-memory ``TerminalsState`` knows what happened since the
process started, but keeps only two days; stored TERMINAL_ONLINE/OFFLINE events know the rest.
Today (since the process started, if that was today) comes from memory, everything earlier from
the store. Memory is preferred for today because the collector writes events in batches: the last
few seconds of changes may not be stored yet.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from edumon.config import terminal_inventory_of
from edumon.domain.availability import (
    Availability,
    ClassroomDay,
    aggregate,
    classroom_day,
    days_of_month,
)
from edumon.domain.inventory import ClassroomRef, SchoolRef
from edumon.domain.models import Event, EventKind
from edumon.domain.schedule import Place, Schedule, SchoolDay, WorkingCalendar, school_day
from edumon.domain.terminals import (
    Interval,
    TerminalInventory,
    TerminalRef,
    clip_intervals,
    intervals_from_events,
)
from edumon.runtime import Runtime
from edumon.store.protocol import StoreReader
from edumon.views import MemoCalendar, local_date, midnight

LOOKBACK_SECONDS = 7 * 86_400.0
"""Events are read from this long before a report's window in one query, so that the state at
the window's start is known without a query per terminal (a week covers weekends and most
holidays; terminals silent for longer are looked up one by one)."""
EVENT_PAGE_SIZE = 5_000


# -- online intervals -------------------------------------------------------------------------


def terminal_inventory(runtime: Runtime) -> TerminalInventory:
    """The terminals the runtime knows: its state's, or else built from the configuration."""
    if runtime.terminals is not None:
        return runtime.terminals.inventory
    return terminal_inventory_of(runtime.config)


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
        day_start = midnight(runtime, local_date(runtime, now))
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
        midnight(runtime, first_day),
        midnight(runtime, last_day + timedelta(days=1)),
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
