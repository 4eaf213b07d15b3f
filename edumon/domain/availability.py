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

Only monitored time counts (docs/availability.md): lesson time while edumon was running is
*monitored*, and every rate is over monitored time alone, so a day or a month edumon never saw
has no figures ("no data", coverage 0) instead of 0 %. ``coverage`` is the monitored share of
the lesson time. A lesson counts once it has started: on the current day, a lesson in progress
counts up to ``now`` and lessons still to come not at all.
"""

from __future__ import annotations

import calendar as _gregorian
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from edumon.domain.rollups import InterfaceRollup
from edumon.domain.schedule import (
    Place,
    Schedule,
    SchoolDay,
    WorkingCalendar,
    school_day,
    timetable_for,
)
from edumon.domain.terminals import Interval, clip_intervals

ALWAYS: tuple[Interval, ...] = ((-math.inf, math.inf),)
"""Monitored all the time (pure computations and tests that do not model gaps)."""

DEFAULT_MIN_ONLINE_FRACTION = 0.5
"""A lesson counts as used when its terminal was online for at least half of it."""


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


@dataclass(frozen=True, slots=True)
class Availability:
    """Summable numerators and denominators of the three figures and of their coverage.

    Attributes:
        online_seconds: 在线率 numerator: online time within monitored lesson time.
        monitored_seconds: 在线率 denominator: lesson time while edumon was monitoring.
        lesson_seconds: lesson time (started lessons), monitored or not: coverage's denominator.
        lessons_used: 使用率 numerator.
        lessons_monitored: 使用率 denominator: started lessons monitored for at least
            ``min_online_fraction`` of their (elapsed) time.
        lessons: started lessons, monitored or not.
        terminals_on: 开机率 numerator: monitored terminal-days switched on.
        terminal_days_monitored: 开机率 denominator: terminal-days on school days with some
            monitored lesson time.
        terminal_days: terminal-days on school days with a started lesson.
    """

    online_seconds: float = 0.0
    monitored_seconds: float = 0.0
    lesson_seconds: float = 0.0
    lessons_used: int = 0
    lessons_monitored: int = 0
    lessons: int = 0
    terminals_on: int = 0
    terminal_days_monitored: int = 0
    terminal_days: int = 0

    @property
    def coverage(self) -> float | None:
        """The monitored share of the lesson time; None without lesson time."""
        return _ratio(self.monitored_seconds, self.lesson_seconds)

    @property
    def has_data(self) -> bool:
        """Whether any lesson time was monitored (else every rate is None: "no data")."""
        return self.monitored_seconds > 0

    @property
    def online_rate(self) -> float | None:
        """在线率 over monitored lesson time, or None without any."""
        return _ratio(self.online_seconds, self.monitored_seconds)

    @property
    def usage_rate(self) -> float | None:
        """使用率 over monitored lessons, or None without any."""
        return _ratio(self.lessons_used, self.lessons_monitored)

    @property
    def power_on_rate(self) -> float | None:
        """开机率 over monitored terminal-days, or None without any."""
        return _ratio(self.terminals_on, self.terminal_days_monitored)

    def __add__(self, other: Availability) -> Availability:
        return Availability(
            self.online_seconds + other.online_seconds,
            self.monitored_seconds + other.monitored_seconds,
            self.lesson_seconds + other.lesson_seconds,
            self.lessons_used + other.lessons_used,
            self.lessons_monitored + other.lessons_monitored,
            self.lessons + other.lessons,
            self.terminals_on + other.terminals_on,
            self.terminal_days_monitored + other.terminal_days_monitored,
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
    monitored: Iterable[Interval] = ALWAYS,
    now: float = math.inf,
    min_online_fraction: float = DEFAULT_MIN_ONLINE_FRACTION,
) -> ClassroomDay:
    """The figures of one classroom's terminal on one local date.

    Args:
        schedule: the district's schedule (timetables, terms, time zone).
        calendar: the national working calendar.
        place: the classroom; ``place.classroom`` picks classroom timetable overrides.
        day: the local date, in the schedule's time zone.
        intervals: the terminal's online intervals (Unix seconds), in any order; overlaps count
            once, parts outside the date or outside ``monitored`` are ignored.
        monitored: when edumon was monitoring (Unix seconds intervals); time outside them is
            neither online nor offline but unknown, and counts in no rate.
        now: lessons starting at or after ``now`` do not count yet; one in progress counts up
            to ``now``.
        min_online_fraction: the share of a lesson the terminal must be online for the lesson
            to count as used (使用率), and monitored for it to count at all.

    Raises:
        ValueError: ``min_online_fraction`` is not in (0, 1], or an interval ends before it
            starts.
        KeyError: the place's school kind has no timetable (the configuration prevents this).
    """
    if not 0.0 < min_online_fraction <= 1.0:
        raise ValueError(f"min_online_fraction must be in (0, 1], not {min_online_fraction}")
    spans = tuple(intervals)
    for start, end in (*spans, *monitored):
        if end < start:
            raise ValueError(f"interval ends ({end}) before it starts ({start})")
    day_start = _local(schedule, day, time(0))
    day_end = min(_local(schedule, day + timedelta(days=1), time(0)), now)
    watched = clip_intervals(tuple(monitored), day_start, day_end)
    merged = _intersect(clip_intervals(spans, day_start, day_end), watched)
    the_day = school_day(schedule, calendar, day, place.school)
    switched_on = bool(merged)
    if not the_day.is_school_day:
        return ClassroomDay(place, the_day, switched_on, Availability())
    online = watched_seconds = lesson = 0.0
    used = lessons_monitored = lessons = 0
    for period in timetable_for(schedule, place).periods:
        start = _local(schedule, day, period.start)
        end = min(_local(schedule, day, period.end), now)
        if end <= start:
            continue
        length = end - start
        seen = _online_seconds(watched, start, end)
        seconds = _online_seconds(merged, start, end)
        lesson += length
        lessons += 1
        watched_seconds += seen
        online += seconds
        if seen >= min_online_fraction * length:
            lessons_monitored += 1
            if seconds >= min_online_fraction * length:
                used += 1
    started = int(lessons > 0)
    day_watched = int(started and watched_seconds > 0)
    totals = Availability(
        online,
        watched_seconds,
        lesson,
        used,
        lessons_monitored,
        lessons,
        int(switched_on and day_watched > 0),
        day_watched,
        started,
    )
    return ClassroomDay(place, the_day, switched_on, totals)


def _intersect(a: tuple[Interval, ...], b: tuple[Interval, ...]) -> tuple[Interval, ...]:
    """Where two sets of merged, sorted intervals overlap."""
    out: list[Interval] = []
    for start, end in b:
        out.extend(clip_intervals(a, start, end))
    return clip_intervals(out, -math.inf, math.inf)


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


# -- 达标率 over lesson time ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compliance:
    """Summable counts of 5-minute buckets behind a 达标率 (compliance rate).

    Attributes:
        lesson_buckets: buckets of started lesson time (per port).
        polled_buckets: of those, buckets with at least one poll of the port.
        judged_buckets: of those, buckets the target can be judged in (a classroom port must be
            up: a port down is a terminal switched off, not a slow link).
        compliant_buckets: of those, buckets meeting the target.
    """

    lesson_buckets: int = 0
    polled_buckets: int = 0
    judged_buckets: int = 0
    compliant_buckets: int = 0

    @property
    def rate(self) -> float | None:
        """达标率, or None with nothing judged."""
        return _ratio(self.compliant_buckets, self.judged_buckets)

    @property
    def coverage(self) -> float | None:
        """Share of lesson buckets with port data, or None without lesson time."""
        return _ratio(self.polled_buckets, self.lesson_buckets)

    def __add__(self, other: Compliance) -> Compliance:
        return Compliance(
            self.lesson_buckets + other.lesson_buckets,
            self.polled_buckets + other.polled_buckets,
            self.judged_buckets + other.judged_buckets,
            self.compliant_buckets + other.compliant_buckets,
        )


def lesson_buckets(
    schedule: Schedule,
    calendar: WorkingCalendar,
    place: Place,
    day: date,
    *,
    now: float = math.inf,
    bucket_seconds: int = 300,
) -> tuple[float, ...]:
    """Starts of the buckets whose middle falls in a lesson that day, before ``now``."""
    if not school_day(schedule, calendar, day, place.school).is_school_day:
        return ()
    out: list[float] = []
    for period in timetable_for(schedule, place).periods:
        start = _local(schedule, day, period.start)
        end = min(_local(schedule, day, period.end), now)
        first = math.floor(start / bucket_seconds) * bucket_seconds
        for b in range(int(first), int(end), bucket_seconds):
            middle = b + bucket_seconds / 2
            if start <= middle < end:
                out.append(float(b))
    return tuple(sorted(set(out)))


def port_compliance(
    buckets: Iterable[float],
    rollups: Mapping[float, InterfaceRollup],
    target_mbps: float | None,
    *,
    must_be_up: bool,
) -> Compliance:
    """达标率 counts of one port over lesson buckets.

    Args:
        buckets: lesson bucket starts (``lesson_buckets``).
        rollups: the port's roll-ups by bucket start.
        target_mbps: the speed target; None: any speed meets it.
        must_be_up: an uplink must be up all bucket long to comply (down is a failure); a
            classroom port that is down is not judged (the terminal is off).
    """
    lesson = polled = judged = compliant = 0
    for b in buckets:
        lesson += 1
        r = rollups.get(b)
        if r is None or r.polls == 0:
            continue
        polled += 1
        fast = r.speed_mbps is not None and (target_mbps is None or r.speed_mbps >= target_mbps)
        if must_be_up:
            judged += 1
            compliant += int(r.up_polls == r.polls and fast)
        elif r.up_polls > 0 and r.speed_mbps is not None:
            judged += 1
            compliant += int(fast)
    return Compliance(lesson, polled, judged, compliant)
