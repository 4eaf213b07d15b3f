"""Lesson schedule math: school days (校历 and China's working calendar) and timetable periods."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from types import MappingProxyType
from typing import Protocol
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Asia/Shanghai"

# The usual shape of a Chinese school year, used for dates no configured 校历 covers: the autumn
# term runs from 1 September to about 20 January, the spring term (after the Spring Festival)
# from about 1 March to 10 July. Wrong by a week or two at the edges, but it keeps 寒暑假 quiet
# for a district that has not written its term dates yet.
USUAL_SPRING_TERM = ((3, 1), (7, 10))
USUAL_AUTUMN_TERM = ((9, 1), (1, 20))


class CalendarSource(enum.StrEnum):
    """Where a working-day answer came from, most trusted first."""

    CONFIGURED = "configured"
    """An arrangement file in the district's ``[schedule] calendar_dir``."""
    SHIPPED = "shipped"
    """An arrangement file shipped with edumon."""
    CHINESE_CALENDAR = "chinese_calendar"
    """The data of the installed chinese-calendar package."""
    STATUTORY = "statutory"
    """No arrangement: the statutory holidays of 《全国年节及纪念日放假办法》 (lunar ones computed),
    Saturdays and Sundays off; 调休 make-up working days unknown."""
    WEEKDAYS = "weekdays"
    """No arrangement and no statutory holidays known: Monday to Friday are working days."""


ARRANGED_SOURCES = frozenset(
    {CalendarSource.CONFIGURED, CalendarSource.SHIPPED, CalendarSource.CHINESE_CALENDAR}
)
"""Sources that know the State Council's arrangement for the year, 调休 included."""


@dataclass(frozen=True, slots=True)
class Workday:
    """A working calendar's answer for one date.

    Attributes:
        day: the date.
        workday: True on a working day (a 调休 make-up Saturday or Sunday included).
        source: which source decided.
        holiday: the holiday's name on a day off for a holiday (春节, 国庆节（补假）), or the
            holiday a make-up working day belongs to; empty on ordinary days.
    """

    day: date
    workday: bool
    source: CalendarSource
    holiday: str = ""

    @property
    def arranged(self) -> bool:
        """Whether an official arrangement decided (so 调休 make-up days are known)."""
        return self.source in ARRANGED_SOURCES


class WorkingCalendar(Protocol):
    """A national working calendar: which dates are working days, and who says so."""

    def workday(self, day: date) -> Workday:
        """Whether ``day`` is a working day, and which source decided.

        Without an arrangement for the date there is still an answer (statutory holidays,
        weekends), from a source outside ``ARRANGED_SOURCES``.
        """
        ...


COVERAGE_WARNING_FROM = (12, 1)
"""(month, day) from which a missing arrangement for next year is warned about. The State
Council publishes the notice in November or December."""


@dataclass(frozen=True, slots=True)
class CalendarCoverage:
    """Which years an official arrangement covers, as seen on the local date ``today``.

    Attributes:
        today: the local date the coverage is judged on.
        years: the source of each year an arrangement covers (``ARRANGED_SOURCES`` only).
        files: the arrangement file behind each year that has one.
        problems: what is wrong with the arrangement files left out, one line each.
        rejected: the arrangement files left out (or a directory that cannot be read).
        advice: what to do about the missing arrangement (Chinese, then English); empty when
            nothing is missing.
    """

    today: date
    years: Mapping[int, CalendarSource]
    files: Mapping[int, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    advice: str = ""

    @property
    def covered_until(self) -> date | None:
        """The last date of the run of arranged years through today's year (or, when today's
        year has none, the end of the last arranged year before it); None without any."""
        year = self.today.year
        if year not in self.years:
            earlier = [y for y in self.years if y < year]
            return date(max(earlier), 12, 31) if earlier else None
        while year + 1 in self.years:
            year += 1
        return date(year, 12, 31)

    @property
    def missing_year(self) -> int | None:
        """The year whose missing arrangement is warned about: today's year, or next year from
        1 December on; None when neither is missing."""
        year = self.today.year
        if year not in self.years:
            return year
        month, day = COVERAGE_WARNING_FROM
        if self.today >= date(year, month, day) and year + 1 not in self.years:
            return year + 1
        return None

    @property
    def warning(self) -> bool:
        """Whether to warn: today's year, or next year from 1 December, has no arrangement."""
        return self.missing_year is not None


class NationalCalendar(WorkingCalendar, Protocol):
    """A working calendar that can also say how far its arrangements reach."""

    def coverage(self, today: date) -> CalendarCoverage:
        """The years an arrangement covers, judged on the local date ``today``."""
        ...


def _minute_of_day(t: time) -> int:
    return t.hour * 60 + t.minute


@dataclass(frozen=True, slots=True)
class Period:
    """One lesson (第 ``number`` 节) from ``start`` (included) to ``end`` (excluded), local time."""

    number: int
    start: time
    end: time

    def __post_init__(self) -> None:
        for t in (self.start, self.end):
            if t.tzinfo is not None:
                raise ValueError("period times are local wall-clock times, without a time zone")
            if t.second or t.microsecond:
                raise ValueError(f"period times are whole minutes, not {t.isoformat()}")
        if self.end <= self.start:
            raise ValueError(
                f"period {self.number}: end {self.end:%H:%M} must be after start {self.start:%H:%M}"
            )

    @property
    def minutes(self) -> int:
        return _minute_of_day(self.end) - _minute_of_day(self.start)

    def contains(self, t: time) -> bool:
        """Whether the local wall-clock time ``t`` falls in this lesson."""
        return self.start <= t < self.end

    def __str__(self) -> str:
        return f"第{self.number}节 {self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True)
class Timetable:
    """A bell schedule: the day's lessons in time order. No periods means no lessons at all."""

    name: str
    periods: tuple[Period, ...]

    def __post_init__(self) -> None:
        for i, period in enumerate(self.periods, start=1):
            if period.number != i:
                raise ValueError(f"period numbers run 1, 2, 3, ...; got {period.number} at {i}")
        for before, after in zip(self.periods, self.periods[1:], strict=False):
            if after.start < before.end:
                raise ValueError(
                    f"period {after.number} ({after.start:%H:%M}-{after.end:%H:%M}) starts before "
                    f"period {before.number} ({before.start:%H:%M}-{before.end:%H:%M}) ends; "
                    "list periods in time order, without overlaps"
                )

    @classmethod
    def from_spans(cls, name: str, spans: Iterable[tuple[time, time]]) -> Timetable:
        """Number the (start, end) spans 1, 2, 3, ... in the order given.

        Raises:
            ValueError: a span ends before it starts, or spans overlap or are out of order.
        """
        return cls(name, tuple(Period(i, s, e) for i, (s, e) in enumerate(spans, start=1)))

    @property
    def lesson_minutes(self) -> int:
        return sum(p.minutes for p in self.periods)

    def period_at(self, t: time) -> Period | None:
        """The lesson in progress at local wall-clock time ``t``, or None (break, lunch, night)."""
        return next((p for p in self.periods if p.contains(t)), None)


@dataclass(frozen=True, slots=True)
class Term:
    """A school term (学期) from the 校历: lessons from ``start`` to ``end``, both included."""

    name: str
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"term {self.name}: end {self.end} is before start {self.start}")

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True, slots=True)
class DayRule:
    """Dates set by the district or by schools: days without lessons, or extra lesson days."""

    start: date
    end: date
    reason: str = ""
    schools: frozenset[str] = frozenset()
    """The schools it applies to; empty means every school in the district."""

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")

    def applies(self, day: date, school: str | None) -> bool:
        if not self.start <= day <= self.end:
            return False
        return not self.schools or school in self.schools


@dataclass(frozen=True, slots=True)
class Place:
    """Where a lesson would be: a school (code and kind, e.g. "primary") and maybe a classroom."""

    school: str
    kind: str
    classroom: str | None = None


def _default_timezone() -> tzinfo:
    return ZoneInfo(DEFAULT_TIMEZONE)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When lessons are held: timetables, which place follows which, terms and special days.

    Attributes:
        timetables: timetables by name.
        kind_timetables: the timetable name each school kind follows by default.
        overrides: timetable names by (school, classroom); classroom None covers the school.
        terms: the 校历's terms in date order; dates outside the span they cover use the usual
            term dates (see ``USUAL_SPRING_TERM``), dates between two terms are vacation.
        no_lesson_days: days without lessons (a sports day, a closure); these win over all else.
        lesson_days: extra lesson days, whatever the calendar and terms say.
        timezone: the zone the timetables' wall-clock times are in.
    """

    timetables: Mapping[str, Timetable]
    kind_timetables: Mapping[str, str]
    overrides: Mapping[tuple[str, str | None], str] = field(default_factory=dict)
    terms: tuple[Term, ...] = ()
    no_lesson_days: tuple[DayRule, ...] = ()
    lesson_days: tuple[DayRule, ...] = ()
    timezone: tzinfo = field(default_factory=_default_timezone)

    def __post_init__(self) -> None:
        # Read-only views: a Schedule is shared by every caller and must not change under them.
        for name in ("timetables", "kind_timetables", "overrides"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        for name, timetable in self.timetables.items():
            if timetable.name != name:
                raise ValueError(f"timetable {timetable.name!r} is filed under {name!r}")
        for what, mapping in (("school kind", self.kind_timetables), ("override", self.overrides)):
            for key, name in mapping.items():
                if name not in self.timetables:
                    raise ValueError(
                        f"{what} {key!r} names timetable {name!r}, which is not defined"
                    )
        for before, after in zip(self.terms, self.terms[1:], strict=False):
            if after.start <= before.end:
                raise ValueError(
                    f"term {after.name} (from {after.start}) starts before term {before.name} "
                    f"ends ({before.end}); list terms in date order, without overlaps"
                )


class DayReason(enum.StrEnum):
    """Why a date is, or is not, a school day."""

    WORKDAY = "workday"
    """A working day in term."""
    MAKEUP_WORKDAY = "makeup_workday"
    """A Saturday or Sunday made a working day (调休), in term."""
    LESSON_DAY = "lesson_day"
    """An extra lesson day from the configuration."""
    WEEKEND = "weekend"
    HOLIDAY = "holiday"
    """A weekday off under the national calendar (法定节假日)."""
    VACATION = "vacation"
    """Outside every term (寒假, 暑假)."""
    NO_LESSON_DAY = "no_lesson_day"
    """A day without lessons from the configuration (运动会, 停课)."""


_SCHOOL_DAY_REASONS = frozenset({DayReason.WORKDAY, DayReason.MAKEUP_WORKDAY, DayReason.LESSON_DAY})


@dataclass(frozen=True, slots=True)
class SchoolDay:
    """The answer for one date, with how it was reached.

    Attributes:
        day: the local date.
        reason: why it is or is not a school day.
        term: the term the date falls in, if any.
        note: the configured reason of a lesson or no-lesson day.
        calendar_fallback: no arrangement (an arrangement file or the chinese-calendar data)
            covers the date, so statutory holidays and weekends decided and 调休 make-up working
            days are unknown. Callers log and count this.
        term_fallback: no configured term covers the date, so the usual term dates were used.
        calendar_source: the working calendar's source for the date; None when the calendar
            was not consulted (vacation, configured lesson or no-lesson days).
        holiday: the holiday the calendar named for the date (春节, 国庆节（补假）), if any.
    """

    day: date
    reason: DayReason
    term: str | None = None
    note: str = ""
    calendar_fallback: bool = False
    term_fallback: bool = False
    calendar_source: CalendarSource | None = None
    holiday: str = ""

    @property
    def is_school_day(self) -> bool:
        return self.reason in _SCHOOL_DAY_REASONS


@dataclass(frozen=True, slots=True)
class LessonAt:
    """The answer for one moment at one place.

    Attributes:
        when: the moment in the schedule's time zone.
        timetable: the name of the timetable the place follows.
        day: the school-day answer for the local date (with any fallback used).
        period: the lesson in progress, or None.
    """

    when: datetime
    timetable: str
    day: SchoolDay
    period: Period | None

    @property
    def scheduled(self) -> bool:
        return self.period is not None


def _usual_term(day: date) -> Term | None:
    (sm, sd), (em, ed) = USUAL_SPRING_TERM
    (am, ad), (wm, wd) = USUAL_AUTUMN_TERM
    year = day.year
    candidates = (
        Term(f"{year - 1}秋季学期", date(year - 1, am, ad), date(year, wm, wd)),
        Term(f"{year}春季学期", date(year, sm, sd), date(year, em, ed)),
        Term(f"{year}秋季学期", date(year, am, ad), date(year + 1, wm, wd)),
    )
    return next((t for t in candidates if t.contains(day)), None)


def term_of(schedule: Schedule, day: date) -> tuple[Term | None, bool]:
    """The term ``day`` falls in, and whether the usual term dates had to stand in for the 校历.

    Returns:
        (term or None in vacation, True when no configured term span covers the date).
    """
    terms = schedule.terms
    if terms and terms[0].start <= day <= terms[-1].end:
        return next((t for t in terms if t.contains(day)), None), False
    return _usual_term(day), True


def school_day(
    schedule: Schedule, calendar: WorkingCalendar, day: date, school: str | None = None
) -> SchoolDay:
    """Whether ``day`` is a school day: in term and a working day (调休 included).

    Configured no-lesson days win over everything; configured lesson days win over the calendar
    and the terms. The calendar is consulted only for in-term days, so 寒暑假 never need it.

    Args:
        schedule: the district's schedule.
        calendar: the national working calendar.
        day: the local date.
        school: the school code, for school-specific lesson and no-lesson days; None applies only
            the district-wide ones.
    """
    term, term_fallback = term_of(schedule, day)
    name = term.name if term is not None else None
    for rules, reason in (
        (schedule.no_lesson_days, DayReason.NO_LESSON_DAY),
        (schedule.lesson_days, DayReason.LESSON_DAY),
    ):
        rule = next((r for r in rules if r.applies(day, school)), None)
        if rule is not None:
            return SchoolDay(day, reason, name, rule.reason, term_fallback=term_fallback)
    if term is None:
        return SchoolDay(day, DayReason.VACATION, None, term_fallback=term_fallback)
    weekend = day.weekday() >= 5
    answer = calendar.workday(day)
    if answer.workday:
        reason = DayReason.MAKEUP_WORKDAY if weekend else DayReason.WORKDAY
    else:
        reason = DayReason.WEEKEND if weekend else DayReason.HOLIDAY
    return SchoolDay(
        day,
        reason,
        name,
        calendar_fallback=not answer.arranged,
        term_fallback=term_fallback,
        calendar_source=answer.source,
        holiday=answer.holiday,
    )


def is_school_day(
    schedule: Schedule, calendar: WorkingCalendar, day: date, school: str | None = None
) -> bool:
    """``school_day(...).is_school_day``, for callers that do not report fallbacks."""
    return school_day(schedule, calendar, day, school).is_school_day


def timetable_for(schedule: Schedule, place: Place) -> Timetable:
    """The timetable a place follows: classroom override, then school override, then its kind.

    Raises:
        KeyError: the school kind has no default timetable (the configuration prevents this).
    """
    overrides = schedule.overrides
    name = (
        (overrides.get((place.school, place.classroom)) if place.classroom is not None else None)
        or overrides.get((place.school, None))
        or schedule.kind_timetables.get(place.kind)
    )
    if name is None:
        raise KeyError(f"no timetable for school kind {place.kind!r} (school {place.school})")
    return schedule.timetables[name]


def local_time(schedule: Schedule, when: datetime) -> datetime:
    """``when`` in the schedule's time zone.

    Raises:
        ValueError: ``when`` is naive; its wall-clock time would mean different moments on a
            server in UTC and one in Beijing time, so it is refused rather than guessed.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"naive datetime {when.isoformat()}: pass an aware one, e.g. datetime.now(UTC)"
        )
    return when.astimezone(schedule.timezone)


def lesson_at(
    schedule: Schedule, calendar: WorkingCalendar, place: Place, when: datetime
) -> LessonAt:
    """The lesson scheduled at ``place`` at ``when``, with the school-day answer behind it.

    Raises:
        ValueError: ``when`` is a naive datetime.
    """
    local = local_time(schedule, when)
    timetable = timetable_for(schedule, place)
    day = school_day(schedule, calendar, local.date(), place.school)
    period = timetable.period_at(local.time()) if day.is_school_day else None
    return LessonAt(local, timetable.name, day, period)


def is_lesson_scheduled(
    schedule: Schedule, calendar: WorkingCalendar, place: Place, when: datetime
) -> bool:
    """Whether a lesson is scheduled at ``place`` at ``when`` (a terminal is expected online).

    Raises:
        ValueError: ``when`` is a naive datetime.
    """
    return lesson_at(schedule, calendar, place, when).scheduled


def scheduled_lesson_minutes(
    schedule: Schedule, calendar: WorkingCalendar, place: Place, day: date
) -> int:
    """Minutes of lessons at ``place`` on the local date ``day`` (the 在线率 denominator)."""
    if not school_day(schedule, calendar, day, place.school).is_school_day:
        return 0
    return timetable_for(schedule, place).lesson_minutes
