"""Is a lesson scheduled: 校历 terms, China's working calendar (调休), timetables, overrides."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from edumon.domain.schedule import (
    CalendarSource,
    DayReason,
    Period,
    Place,
    Schedule,
    Term,
    Timetable,
    is_lesson_scheduled,
    is_school_day,
    lesson_at,
    scheduled_lesson_minutes,
    school_day,
    term_of,
    timetable_for,
)
from edumon.domain.schedule import Workday as WorkdayAnswer
from edumon.schedule_config import ScheduleConfig
from edumon.workcalendar import ChineseWorkingCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")

SCHEDULE_TOML = """
[schedule]
timezone = "Asia/Shanghai"

[schedule.timetables.senior]   # 高中: 45-minute lessons from 07:40, and 晚自习
periods = [
  { start = "07:40", end = "08:25" }, { start = "08:35", end = "09:20" },
  { start = "09:50", end = "10:35" }, { start = "10:45", end = "11:30" },
  { start = "14:00", end = "14:45" }, { start = "14:55", end = "15:40" },
  { start = "15:50", end = "16:35" }, { start = "19:00", end = "20:30" },
]

[schedule.defaults]
high = "senior"

[[schedule.terms]]
name = "2025秋季学期"
start = 2025-09-01
end = 2026-01-23

[[schedule.terms]]
name = "2026春季学期"
start = 2026-03-02
end = 2026-07-10

[[schedule.terms]]
name = "2026秋季学期"
start = 2026-09-01
end = 2027-01-22

[[schedule.overrides]]   # 九年一贯制: the grade-7 room keeps the middle-school bells
school = "JY01"
classrooms = ["JY01-701"]
timetable = "middle"

[[schedule.overrides]]
school = "YZ02"
timetable = "senior"

[[schedule.no_lesson_days]]
start = 2026-11-12
end = 2026-11-13
reason = "秋季运动会"
schools = ["YZ01"]

[[schedule.no_lesson_days]]
start = 2026-12-07
reason = "暴雪停课"

[[schedule.lesson_days]]
start = 2026-12-12
reason = "暴雪停课补课"
"""

MIDDLE = Place("YZ01", "middle", "YZ01-701")
PRIMARY = Place("CG01", "primary", "CG01-101")
HIGH = Place("GZ01", "high", "GZ01-101")
SENIOR_SCHOOL = Place("YZ02", "middle", "YZ02-301")
NINE_YEAR_UPPER = Place("JY01", "nine_year", "JY01-701")
NINE_YEAR_LOWER = Place("JY01", "nine_year", "JY01-101")
KINDERGARTEN = Place("YE01", "kindergarten", "YE01-1")


@pytest.fixture(scope="module")
def schedule() -> Schedule:
    return ScheduleConfig.model_validate(tomllib.loads(SCHEDULE_TOML)["schedule"]).schedule()


@pytest.fixture(scope="module")
def calendar() -> ChineseWorkingCalendar:
    return ChineseWorkingCalendar()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


class FakeCalendar:
    """A working calendar from a table (None: no arrangement, Monday to Friday work); records
    the dates it is asked about."""

    def __init__(self, table: Mapping[date, bool | None], default: bool | None = None) -> None:
        self.table = dict(table)
        self.default = default
        self.asked: list[date] = []

    def workday(self, day: date) -> WorkdayAnswer:
        self.asked.append(day)
        answer = self.table.get(day, self.default)
        if answer is None:
            return WorkdayAnswer(day, day.weekday() < 5, CalendarSource.WEEKDAYS)
        return WorkdayAnswer(day, answer, CalendarSource.CONFIGURED)


W = DayReason.WORKDAY
MAKEUP = DayReason.MAKEUP_WORKDAY

CASES = [
    # id, place, local time, lesson number or None, why the day is (not) a school day
    ("first minute of the first lesson", MIDDLE, "2026-09-07 08:00", 1, W),
    ("minute before the first lesson", MIDDLE, "2026-09-07 07:59", None, W),
    ("last microsecond before it", MIDDLE, "2026-09-07 07:59:59.999999", None, W),
    ("last minute of a lesson", MIDDLE, "2026-09-07 08:44", 1, W),
    ("end time is the break", MIDDLE, "2026-09-07 08:45", None, W),
    ("second lesson", MIDDLE, "2026-09-07 08:55", 2, W),
    ("大课间", MIDDLE, "2026-09-07 09:50", None, W),
    ("lunch break, middle", MIDDLE, "2026-09-07 12:30", None, W),
    ("lunch break, primary", PRIMARY, "2026-09-07 13:30", None, W),
    ("first afternoon lesson", MIDDLE, "2026-09-07 14:00", 5, W),
    ("primary: minute before 08:20", PRIMARY, "2026-09-07 08:19", None, W),
    ("primary: first lesson at 08:20", PRIMARY, "2026-09-07 08:20", 1, W),
    ("primary: last lesson", PRIMARY, "2026-09-07 16:39", 7, W),
    ("primary: after school", PRIMARY, "2026-09-07 16:40", None, W),
    ("weekday evening", MIDDLE, "2026-09-07 19:30", None, W),
    ("weekday night", MIDDLE, "2026-09-07 23:59", None, W),
    ("调休 Saturday, autumn", MIDDLE, "2026-10-10 08:00", 1, MAKEUP),
    ("调休 Saturday, spring", PRIMARY, "2026-05-09 08:20", 1, MAKEUP),
    ("调休 Sunday", MIDDLE, "2026-09-20 14:00", 5, MAKEUP),
    ("调休 Saturday in 寒假", MIDDLE, "2026-02-28 08:00", None, DayReason.VACATION),
    ("调休 Saturday in 春节 week", MIDDLE, "2026-02-14 08:00", None, DayReason.VACATION),
    ("中秋节 Friday", MIDDLE, "2026-09-25 10:20", None, DayReason.HOLIDAY),
    ("plain Saturday", MIDDLE, "2026-09-12 08:00", None, DayReason.WEEKEND),
    ("plain Sunday", PRIMARY, "2026-09-13 08:20", None, DayReason.WEEKEND),
    ("寒假 Monday", MIDDLE, "2026-02-02 08:00", None, DayReason.VACATION),
    ("暑假 Monday", MIDDLE, "2026-08-03 08:00", None, DayReason.VACATION),
    ("last day of spring term", MIDDLE, "2026-07-10 08:00", 1, W),
    ("first Monday of 暑假", MIDDLE, "2026-07-13 08:00", None, DayReason.VACATION),
    ("first day of autumn term", MIDDLE, "2026-09-01 08:00", 1, W),
    ("high school follows senior", HIGH, "2026-09-07 07:40", 1, W),
    ("senior 晚自习", HIGH, "2026-09-07 19:30", 8, W),
    ("school override to senior", SENIOR_SCHOOL, "2026-09-07 19:30", 8, W),
    ("classroom override to middle", NINE_YEAR_UPPER, "2026-09-07 08:00", 1, W),
    ("rest of the school: primary", NINE_YEAR_LOWER, "2026-09-07 08:00", None, W),
    ("rest of the school at 08:20", NINE_YEAR_LOWER, "2026-09-07 08:20", 1, W),
    ("kindergarten: no lessons", KINDERGARTEN, "2026-09-07 10:00", None, W),
    ("school sports day", MIDDLE, "2026-11-13 08:00", None, DayReason.NO_LESSON_DAY),
    ("another school that day", PRIMARY, "2026-11-13 08:20", 1, W),
    ("district closure", PRIMARY, "2026-12-07 08:20", None, DayReason.NO_LESSON_DAY),
    ("make-up lessons on Saturday", MIDDLE, "2026-12-12 08:00", 1, DayReason.LESSON_DAY),
]


@pytest.mark.parametrize(
    ("place", "when", "number", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_lesson_at(
    schedule: Schedule,
    calendar: ChineseWorkingCalendar,
    place: Place,
    when: str,
    number: int | None,
    reason: DayReason,
) -> None:
    answer = lesson_at(schedule, calendar, place, at(when))
    assert (answer.period.number if answer.period else None) == number
    assert answer.day.reason is reason
    assert answer.scheduled is (number is not None)
    assert is_lesson_scheduled(schedule, calendar, place, at(when)) is (number is not None)
    assert not answer.day.calendar_fallback
    assert not answer.day.term_fallback


@pytest.mark.parametrize(
    "day", ["2026-10-01", "2026-10-02", "2026-10-05", "2026-10-06", "2026-10-07"]
)
def test_national_day_weekdays_have_no_lessons(
    schedule: Schedule, calendar: ChineseWorkingCalendar, day: str
) -> None:
    assert date.fromisoformat(day).weekday() < 5
    for hhmm in ("08:00", "10:10", "14:00"):
        answer = lesson_at(schedule, calendar, MIDDLE, at(f"{day} {hhmm}"))
        assert answer.period is None
        assert answer.day.reason is DayReason.HOLIDAY
        assert answer.day.term == "2026秋季学期"


def test_the_same_timetable_minute_on_a_school_day_has_a_lesson(
    schedule: Schedule, calendar: ChineseWorkingCalendar
) -> None:
    # The holiday cases above are silent because of the day, not the clock.
    assert is_lesson_scheduled(schedule, calendar, MIDDLE, at("2026-10-09 08:00"))


def test_aware_datetimes_in_any_zone_are_converted(
    schedule: Schedule, calendar: ChineseWorkingCalendar
) -> None:
    utc = datetime(2026, 9, 7, 0, 0, tzinfo=UTC)  # 08:00 in Beijing
    answer = lesson_at(schedule, calendar, MIDDLE, utc)
    assert answer.period is not None
    assert answer.period.number == 1
    assert answer.when.tzinfo is schedule.timezone
    # 23:45 UTC on Sunday is 07:45 on Monday in Beijing: the Monday's date is what counts.
    sunday_utc = datetime(2026, 9, 6, 23, 45, tzinfo=UTC)
    assert lesson_at(schedule, calendar, HIGH, sunday_utc).period == Period(
        1, time(7, 40), time(8, 25)
    )


def test_naive_datetime_is_refused(schedule: Schedule, calendar: ChineseWorkingCalendar) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        is_lesson_scheduled(schedule, calendar, MIDDLE, datetime(2026, 9, 7, 8, 0))


def test_year_without_calendar_data_falls_back_to_weekdays(
    schedule: Schedule, calendar: ChineseWorkingCalendar
) -> None:
    assert calendar.workday(date(2099, 9, 7)).source is CalendarSource.STATUTORY
    monday = lesson_at(schedule, calendar, MIDDLE, at("2099-09-07 08:00"))
    assert monday.scheduled
    assert monday.day.calendar_fallback
    assert monday.day.term_fallback  # and no configured term reaches 2099
    assert monday.day.term == "2099秋季学期"
    saturday = lesson_at(schedule, calendar, MIDDLE, at("2099-09-12 08:00"))
    assert not saturday.scheduled
    assert saturday.day.reason is DayReason.WEEKEND
    assert saturday.day.calendar_fallback
    # The statutory holidays are known without an arrangement; 调休 make-up days are not.
    national_day = school_day(schedule, calendar, date(2099, 10, 1))
    assert (national_day.reason, national_day.calendar_fallback) == (DayReason.HOLIDAY, True)
    assert (national_day.calendar_source, national_day.holiday) == ("statutory", "国庆节")


FALLBACK_CASES = [
    # id, fake calendar answer, date, reason, fallback used
    ("calendar: workday", True, "2026-09-07", W, False),
    ("calendar: holiday weekday", False, "2026-09-07", DayReason.HOLIDAY, False),
    ("calendar: 调休 Saturday", True, "2026-09-12", MAKEUP, False),
    ("calendar: Saturday off", False, "2026-09-12", DayReason.WEEKEND, False),
    ("no data: Monday", None, "2026-09-07", W, True),
    ("no data: Saturday", None, "2026-09-12", DayReason.WEEKEND, True),
    ("no data: Sunday", None, "2026-09-13", DayReason.WEEKEND, True),
    ("no data: Friday", None, "2026-09-11", W, True),
]


@pytest.mark.parametrize(
    ("answer", "day", "reason", "fallback"),
    [case[1:] for case in FALLBACK_CASES],
    ids=[case[0] for case in FALLBACK_CASES],
)
def test_calendar_answers_and_fallback(
    schedule: Schedule, answer: bool | None, day: str, reason: DayReason, fallback: bool
) -> None:
    the_day = date.fromisoformat(day)
    fake = FakeCalendar({the_day: answer})
    result = school_day(schedule, fake, the_day, "YZ01")
    assert (result.reason, result.calendar_fallback) == (reason, fallback)
    assert not result.term_fallback  # 2026 autumn is configured
    assert fake.asked == [the_day]


def test_calendar_is_not_consulted_outside_term_or_on_configured_days(schedule: Schedule) -> None:
    fake = FakeCalendar({}, default=None)
    for day, reason in [
        (date(2026, 8, 3), DayReason.VACATION),
        (date(2026, 11, 12), DayReason.NO_LESSON_DAY),
        (date(2026, 12, 12), DayReason.LESSON_DAY),
    ]:
        result = school_day(schedule, fake, day, "YZ01")
        assert (result.reason, result.calendar_fallback) == (reason, False)
    assert fake.asked == []


def test_configured_days_carry_their_reason(
    schedule: Schedule, calendar: ChineseWorkingCalendar
) -> None:
    sports = school_day(schedule, calendar, date(2026, 11, 12), "YZ01")
    assert (sports.note, sports.term) == ("秋季运动会", "2026秋季学期")
    # Without a school, only district-wide days apply.
    assert is_school_day(schedule, calendar, date(2026, 11, 12))
    assert not is_school_day(schedule, calendar, date(2026, 12, 7))
    assert school_day(schedule, calendar, date(2026, 12, 12)).note == "暴雪停课补课"


@pytest.mark.parametrize(
    ("place", "day", "minutes"),
    [
        (MIDDLE, "2026-09-07", 8 * 45),
        (PRIMARY, "2026-09-07", 7 * 40),
        (HIGH, "2026-09-07", 7 * 45 + 90),
        (KINDERGARTEN, "2026-09-07", 0),
        (MIDDLE, "2026-10-10", 8 * 45),  # 调休 Saturday
        (MIDDLE, "2026-10-01", 0),  # 国庆
        (MIDDLE, "2026-09-12", 0),  # weekend
        (MIDDLE, "2026-02-02", 0),  # 寒假
        (MIDDLE, "2026-11-12", 0),  # sports day
        (PRIMARY, "2026-11-12", 7 * 40),
    ],
)
def test_scheduled_lesson_minutes(
    schedule: Schedule, calendar: ChineseWorkingCalendar, place: Place, day: str, minutes: int
) -> None:
    got = scheduled_lesson_minutes(schedule, calendar, place, date.fromisoformat(day))
    assert got == minutes


def test_timetable_for_resolves_classroom_then_school_then_kind(schedule: Schedule) -> None:
    assert timetable_for(schedule, NINE_YEAR_UPPER).name == "middle"
    assert timetable_for(schedule, NINE_YEAR_LOWER).name == "primary"
    assert timetable_for(schedule, Place("JY01", "nine_year")).name == "primary"
    assert timetable_for(schedule, SENIOR_SCHOOL).name == "senior"
    assert timetable_for(schedule, Place("YZ02", "middle")).name == "senior"
    assert timetable_for(schedule, HIGH).name == "senior"
    with pytest.raises(KeyError, match="university"):
        timetable_for(schedule, Place("X1", "university"))


@pytest.mark.parametrize(
    ("day", "term"),
    [
        ("2026-01-20", "2025秋季学期"),
        ("2026-01-21", None),
        ("2026-02-28", None),
        ("2026-03-01", "2026春季学期"),
        ("2026-07-10", "2026春季学期"),
        ("2026-07-11", None),
        ("2026-08-31", None),
        ("2026-09-01", "2026秋季学期"),
        ("2026-12-31", "2026秋季学期"),
    ],
)
def test_usual_terms_stand_in_when_no_term_dates_are_configured(day: str, term: str | None) -> None:
    found, fallback = term_of(ScheduleConfig().schedule(), date.fromisoformat(day))
    assert (found.name if found else None, fallback) == (term, True)


def test_configured_terms_beyond_their_span_use_the_usual_dates(schedule: Schedule) -> None:
    # Configured up to 2027-01-22; the spring of 2027 is not written yet.
    found, fallback = term_of(schedule, date(2027, 3, 15))
    assert (found.name if found else None, fallback) == ("2027春季学期", True)
    found, fallback = term_of(schedule, date(2027, 1, 21))  # configured term, past the usual end
    assert (found.name if found else None, fallback) == ("2026秋季学期", False)
    found, fallback = term_of(schedule, date(2026, 2, 27))  # between terms: 寒假
    assert (found, fallback) == (None, False)


def test_reference_county_defaults() -> None:
    schedule = ScheduleConfig().schedule()
    middle = schedule.timetables["middle"]
    primary = schedule.timetables["primary"]
    # 中学 from 08:00, 小学 from 08:20 (the Ministry's 2021 notice on pupils' sleep).
    assert middle.periods[0] == Period(1, time(8, 0), time(8, 45))
    assert primary.periods[0] == Period(1, time(8, 20), time(9, 0))
    assert {p.minutes for p in middle.periods} == {45}
    assert {p.minutes for p in primary.periods} == {40}
    for timetable in (middle, primary):
        morning = [p for p in timetable.periods if p.end <= time(12, 0)]
        afternoon = [p for p in timetable.periods if p.start >= time(13, 0)]
        assert len(morning) == 4
        assert afternoon
        assert len(morning) + len(afternoon) == len(timetable.periods)
        assert afternoon[0].start >= time(14, 0)  # a lunch break of two hours or more
    assert schedule.timezone == SHANGHAI
    assert schedule.terms == ()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Period(1, time(8, 40), time(8, 0)), "must be after start"),
        (lambda: Period(1, time(8, 0), time(8, 0)), "must be after start"),
        (lambda: Period(1, time(8, 0, 30), time(8, 40)), "whole minutes"),
        (lambda: Period(1, time(8, 0, tzinfo=UTC), time(8, 40)), "without a time zone"),
        (
            lambda: Timetable.from_spans("t", [(time(8), time(8, 40)), (time(8, 30), time(9))]),
            "period 2 .* starts before period 1",
        ),
        (
            lambda: Timetable.from_spans("t", [(time(9), time(9, 40)), (time(8), time(8, 40))]),
            "in time order",
        ),
        (lambda: Timetable("t", (Period(2, time(8), time(9)),)), "period numbers"),
        (lambda: Term("t", date(2026, 9, 1), date(2026, 8, 1)), "before start"),
        (lambda: Schedule({}, {"primary": "primary"}), "not defined"),
        (
            lambda: Schedule(
                {},
                {},
                terms=(
                    Term("b", date(2026, 9, 1), date(2027, 1, 22)),
                    Term("a", date(2026, 3, 1), date(2026, 7, 10)),
                ),
            ),
            "date order",
        ),
    ],
)
def test_domain_objects_refuse_nonsense(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_schedule_is_read_only(schedule: Schedule) -> None:
    with pytest.raises(TypeError):
        schedule.timetables["x"] = schedule.timetables["middle"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        schedule.terms = ()  # type: ignore[misc]
