"""Terminal availability for reports: 在线率, 开机率 and 使用率 over the lesson schedule.

The figures districts report (docs/architecture.md, "Usage figures"):

- 在线率 (online rate) = online time within scheduled lesson time ÷ scheduled lesson time;
- 开机率 (power-on rate) = terminals switched on at least once on a school day ÷ terminals;
- 使用率 (usage rate) = lessons with the terminal on ÷ scheduled lessons, where a lesson counts
  when the terminal was online for at least ``min_online_fraction`` of it.

A day that is not a school day (weekend, holiday, 寒暑假) has no denominator: its rates are None,
never 0 or 100%. Results keep the raw numerators and denominators, and aggregate by summing
them (``Availability``), so a month's rate is total online time ÷ total lesson time, not a mean
of daily ratios. Times are seconds (base units); the ratios are the same in minutes.

Online intervals come from ``TerminalsState.online_intervals`` (today, live) or
``terminals.intervals_from_events`` (stored history).
"""

from __future__ import annotations

import calendar as _gregorian
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from edumon.domain.schedule import (
    Place,
    Schedule,
    SchoolDay,
    WorkingCalendar,
    school_day,
    timetable_for,
)
from edumon.domain.terminals import Interval, clip_intervals

DEFAULT_MIN_ONLINE_FRACTION = 0.5
"""A lesson counts as used when its terminal was online for at least half of it."""


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


@dataclass(frozen=True, slots=True)
class Availability:
    """Summable numerators and denominators of the three figures.

    Attributes:
        online_seconds: 在线率 numerator: online time within scheduled lessons.
        lesson_seconds: 在线率 denominator: scheduled lesson time.
        lessons_used: 使用率 numerator.
        lessons: 使用率 denominator: scheduled lessons.
        terminals_on: 开机率 numerator: terminal-days switched on, school days only.
        terminal_days: 开机率 denominator: terminal-days on school days.
    """

    online_seconds: float = 0.0
    lesson_seconds: float = 0.0
    lessons_used: int = 0
    lessons: int = 0
    terminals_on: int = 0
    terminal_days: int = 0

    @property
    def online_rate(self) -> float | None:
        """在线率, or None without scheduled lesson time."""
        return _ratio(self.online_seconds, self.lesson_seconds)

    @property
    def usage_rate(self) -> float | None:
        """使用率, or None without scheduled lessons."""
        return _ratio(self.lessons_used, self.lessons)

    @property
    def power_on_rate(self) -> float | None:
        """开机率, or None without a school day."""
        return _ratio(self.terminals_on, self.terminal_days)

    def __add__(self, other: Availability) -> Availability:
        return Availability(
            self.online_seconds + other.online_seconds,
            self.lesson_seconds + other.lesson_seconds,
            self.lessons_used + other.lessons_used,
            self.lessons + other.lessons,
            self.terminals_on + other.terminals_on,
            self.terminal_days + other.terminal_days,
        )


@dataclass(frozen=True, slots=True)
class ClassroomDay:
    """One classroom's terminal on one local date.

    Attributes:
        place: the classroom (school, school kind, classroom id).
        school_day: whether the date is a school day, and why (with any calendar fallback).
        switched_on: the terminal was online at some moment of the local date, school day or
            not (reports may show weekend use); it counts for 开机率 on school days only.
        totals: this day's contribution to every figure (all zero on other days).
    """

    place: Place
    school_day: SchoolDay
    switched_on: bool
    totals: Availability

    @property
    def day(self) -> date:
        return self.school_day.day

    @property
    def online_rate(self) -> float | None:
        return self.totals.online_rate

    @property
    def usage_rate(self) -> float | None:
        return self.totals.usage_rate


@dataclass(frozen=True, slots=True)
class SchoolDayAvailability:
    """One school on one local date: its classrooms and their sum (开机率 is per school-day)."""

    school: str
    school_day: SchoolDay
    classrooms: tuple[ClassroomDay, ...]

    @property
    def day(self) -> date:
        return self.school_day.day

    @property
    def totals(self) -> Availability:
        return aggregate(self.classrooms)

    @property
    def power_on_rate(self) -> float | None:
        """开机率: terminals switched on ÷ terminals; None on a day without lessons."""
        return self.totals.power_on_rate


def _local(schedule: Schedule, day: date, t: time) -> float:
    return datetime.combine(day, t, tzinfo=schedule.timezone).timestamp()


def _online_seconds(merged: tuple[Interval, ...], start: float, end: float) -> float:
    return sum(e - s for s, e in clip_intervals(merged, start, end))


def classroom_day(
    schedule: Schedule,
    calendar: WorkingCalendar,
    place: Place,
    day: date,
    intervals: Iterable[Interval],
    *,
    min_online_fraction: float = DEFAULT_MIN_ONLINE_FRACTION,
) -> ClassroomDay:
    """The figures of one classroom's terminal on one local date.

    Args:
        schedule: the district's schedule (timetables, terms, time zone).
        calendar: the national working calendar.
        place: the classroom; ``place.classroom`` picks classroom timetable overrides.
        day: the local date, in the schedule's time zone.
        intervals: the terminal's online intervals (Unix seconds), in any order; overlaps count
            once, parts outside the date are ignored.
        min_online_fraction: the share of a lesson the terminal must be online for the lesson
            to count as used (使用率).

    Raises:
        ValueError: ``min_online_fraction`` is not in (0, 1], or an interval ends before it
            starts.
        KeyError: the place's school kind has no timetable (the configuration prevents this).
    """
    if not 0.0 < min_online_fraction <= 1.0:
        raise ValueError(f"min_online_fraction must be in (0, 1], not {min_online_fraction}")
    spans = tuple(intervals)
    for start, end in spans:
        if end < start:
            raise ValueError(f"online interval ends ({end}) before it starts ({start})")
    day_start = _local(schedule, day, time(0))
    day_end = _local(schedule, day + timedelta(days=1), time(0))
    merged = clip_intervals(spans, day_start, day_end)
    the_day = school_day(schedule, calendar, day, place.school)
    switched_on = bool(merged)
    if not the_day.is_school_day:
        return ClassroomDay(place, the_day, switched_on, Availability())
    online = lesson = 0.0
    used = lessons = 0
    for period in timetable_for(schedule, place).periods:
        start = _local(schedule, day, period.start)
        end = _local(schedule, day, period.end)
        seconds = _online_seconds(merged, start, end)
        online += seconds
        lesson += end - start
        lessons += 1
        if seconds >= min_online_fraction * (end - start):
            used += 1
    totals = Availability(online, lesson, used, lessons, int(switched_on), 1)
    return ClassroomDay(place, the_day, switched_on, totals)


def school_day_availability(
    schedule: Schedule,
    calendar: WorkingCalendar,
    school: str,
    kind: str,
    day: date,
    intervals_by_classroom: Mapping[str, Iterable[Interval]],
    *,
    min_online_fraction: float = DEFAULT_MIN_ONLINE_FRACTION,
) -> SchoolDayAvailability:
    """The figures of every terminal of one school on one local date.

    Args:
        schedule: the district's schedule.
        calendar: the national working calendar.
        school: the school code.
        kind: the school kind (picks the default timetable).
        day: the local date.
        intervals_by_classroom: online intervals by classroom id, one entry for *every*
            classroom with a terminal (an empty one for a terminal never on): the keys are the
            开机率 denominator.
        min_online_fraction: see ``classroom_day``.
    """
    rooms = tuple(
        classroom_day(
            schedule,
            calendar,
            Place(school, kind, classroom),
            day,
            spans,
            min_online_fraction=min_online_fraction,
        )
        for classroom, spans in sorted(intervals_by_classroom.items())
    )
    return SchoolDayAvailability(school, school_day(schedule, calendar, day, school), rooms)


def aggregate(days: Iterable[ClassroomDay]) -> Availability:
    """Sum the numerators and denominators of any set of classroom-days (a month, a school)."""
    total = Availability()
    for d in days:
        total += d.totals
    return total


def days_of_month(year: int, month: int) -> tuple[date, ...]:
    """Every date of a month."""
    count = _gregorian.monthrange(year, month)[1]
    return tuple(date(year, month, d) for d in range(1, count + 1))


def classroom_month(
    schedule: Schedule,
    calendar: WorkingCalendar,
    place: Place,
    year: int,
    month: int,
    intervals: Iterable[Interval],
    *,
    min_online_fraction: float = DEFAULT_MIN_ONLINE_FRACTION,
) -> tuple[ClassroomDay, ...]:
    """One classroom's days of a month (``aggregate`` them for the monthly figures).

    Args:
        schedule: the district's schedule.
        calendar: the national working calendar.
        place: the classroom.
        year: the year.
        month: the month, 1 to 12.
        intervals: the terminal's online intervals over (at least) the month.
        min_online_fraction: see ``classroom_day``.
    """
    spans = tuple(intervals)
    return tuple(
        classroom_day(schedule, calendar, place, d, spans, min_online_fraction=min_online_fraction)
        for d in days_of_month(year, month)
    )
