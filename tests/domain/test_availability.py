"""在线率, 开机率, 使用率 over the schedule, with China's real working calendar (调休, holidays)."""

from __future__ import annotations

import tomllib
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from edumon.config import Config, inventory_of
from edumon.domain.availability import (
    Availability,
    aggregate,
    classroom_day,
    classroom_month,
    days_of_month,
    school_day_availability,
)
from edumon.domain.models import Event
from edumon.domain.schedule import DayReason, Place, Schedule
from edumon.domain.terminals import (
    Interval,
    TerminalInventory,
    TerminalsState,
    heartbeat_timeout,
    intervals_from_events,
)
from edumon.schedule_config import ScheduleConfig
from edumon.wire import Heartbeat, Status
from edumon.workcalendar import ChineseWorkingCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
MINUTE = 60.0

# The built-in bells: 小学 seven 40-minute lessons from 08:20 with lunch 11:50-14:20;
# 中学 eight 45-minute lessons from 08:00.
PRIMARY_LESSONS, PRIMARY_MINUTES = 7, 40
MIDDLE_LESSONS, MIDDLE_MINUTES = 8, 45

SCHEDULE_TOML = """
[schedule]
[[schedule.terms]]
name = "2026秋季学期"
start = 2026-09-01
end = 2027-01-22
"""

ROOM = Place("S1", "primary", "S1-101")
MIDDLE_ROOM = Place("Z1", "middle", "Z1-701")

MONDAY = date(2026, 9, 7)
SATURDAY = date(2026, 9, 12)
NATIONAL_DAY = date(2026, 10, 1)  # 国庆节, a Thursday
MAKEUP_SATURDAY = date(2026, 10, 10)  # 调休: a Saturday with lessons
WINTER_BREAK = date(2027, 2, 1)  # 寒假, a Monday


@pytest.fixture(scope="module")
def schedule() -> Schedule:
    return ScheduleConfig.model_validate(tomllib.loads(SCHEDULE_TOML)["schedule"]).schedule()


@pytest.fixture(scope="module")
def calendar() -> ChineseWorkingCalendar:
    return ChineseWorkingCalendar()


def at(day: date, hhmm: str) -> float:
    hour, minute = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI).timestamp()


def span(day: date, start: str, end: str) -> Interval:
    return (at(day, start), at(day, end))


# name: (day, spans as (start, end) local times, online minutes, lessons used, switched on)
DAYS: dict[str, tuple[date, list[tuple[str, str]], float, int, bool]] = {
    "on all day": (MONDAY, [("07:50", "17:00")], 7 * 40, 7, True),
    "switched on at 08:30: misses 10 minutes of the first lesson": (
        MONDAY,
        [("08:30", "17:00")],
        7 * 40 - 10,
        7,  # 30 of 40 minutes is more than half
        True,
    ),
    "switched on at 08:45: the first lesson is not used": (
        MONDAY,
        [("08:45", "17:00")],
        7 * 40 - 25,
        6,
        True,
    ),
    "on over the lunch break only": (MONDAY, [("11:50", "14:20")], 0, 0, True),
    "on in the morning only": (MONDAY, [("07:55", "12:30")], 4 * 40, 4, True),
    "off all day": (MONDAY, [], 0, 0, False),
    "overlapping intervals count once": (
        MONDAY,
        [("08:20", "09:00"), ("08:40", "09:10"), ("09:05", "09:30")],
        40 + 20,
        2,  # 第2节 09:10-09:50: 20 of 40 minutes, exactly half
        True,
    ),
    "on the evening before, off at 08:40": (
        MONDAY,
        [],  # filled in below: from the previous day across midnight
        20,
        1,
        True,
    ),
    "调休 Saturday counts like a weekday": (
        MAKEUP_SATURDAY,
        [("08:30", "17:00")],
        7 * 40 - 10,
        7,
        True,
    ),
}


@pytest.mark.parametrize("name", list(DAYS))
def test_school_days(schedule: Schedule, calendar: ChineseWorkingCalendar, name: str) -> None:
    day, spans, online_minutes, used, switched_on = DAYS[name]
    intervals = [span(day, s, e) for s, e in spans]
    if name == "on the evening before, off at 08:40":
        intervals = [(at(day - timedelta(days=1), "18:00"), at(day, "08:40"))]
    result = classroom_day(schedule, calendar, ROOM, day, intervals)
    assert result.school_day.is_school_day
    assert result.day == day
    lesson_seconds = PRIMARY_LESSONS * PRIMARY_MINUTES * MINUTE
    assert result.totals == Availability(
        online_seconds=online_minutes * MINUTE,
        monitored_seconds=lesson_seconds,
        lesson_seconds=lesson_seconds,
        lessons_used=used,
        lessons_monitored=PRIMARY_LESSONS,
        lessons=PRIMARY_LESSONS,
        terminals_on=int(switched_on),
        terminal_days_monitored=1,
        terminal_days=1,
    )
    assert result.totals.coverage == 1.0
    assert result.online_rate == online_minutes * MINUTE / lesson_seconds
    assert result.usage_rate == used / PRIMARY_LESSONS
    assert result.switched_on is switched_on


@pytest.mark.parametrize(
    ("day", "reason"),
    [
        (NATIONAL_DAY, DayReason.HOLIDAY),
        (SATURDAY, DayReason.WEEKEND),
        (WINTER_BREAK, DayReason.VACATION),
    ],
)
def test_days_without_lessons_have_no_denominator(
    schedule: Schedule, calendar: ChineseWorkingCalendar, day: date, reason: DayReason
) -> None:
    result = classroom_day(schedule, calendar, ROOM, day, [span(day, "07:50", "17:00")])
    assert result.school_day.reason is reason
    assert result.totals == Availability()
    assert result.online_rate is None  # not 0 %, not 100 %
    assert result.usage_rate is None
    assert result.totals.power_on_rate is None
    assert result.switched_on is True  # still reported: somebody used the room


@pytest.mark.parametrize(("fraction", "used"), [(0.75, 7), (0.8, 6), (1.0, 6), (0.1, 7)])
def test_usage_threshold_is_a_parameter(
    schedule: Schedule, calendar: ChineseWorkingCalendar, fraction: float, used: int
) -> None:
    # On at 08:30: 30 of the first lesson's 40 minutes, i.e. 0.75 of it.
    result = classroom_day(
        schedule,
        calendar,
        ROOM,
        MONDAY,
        [span(MONDAY, "08:30", "17:00")],
        min_online_fraction=fraction,
    )
    assert result.totals.lessons_used == used


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_usage_threshold_must_be_a_fraction(
    schedule: Schedule, calendar: ChineseWorkingCalendar, fraction: float
) -> None:
    with pytest.raises(ValueError, match="min_online_fraction"):
        classroom_day(schedule, calendar, ROOM, MONDAY, [], min_online_fraction=fraction)


def test_an_interval_that_ends_before_it_starts_is_refused(
    schedule: Schedule, calendar: ChineseWorkingCalendar
) -> None:
    with pytest.raises(ValueError, match="before it starts"):
        classroom_day(
            schedule, calendar, ROOM, MONDAY, [(at(MONDAY, "10:00"), at(MONDAY, "09:00"))]
        )


def test_power_on_rate_per_school_day(schedule: Schedule, calendar: ChineseWorkingCalendar) -> None:
    def rooms(day: date) -> dict[str, list[Interval]]:
        return {
            "S1-101": [span(day, "08:00", "17:00")],
            "S1-102": [span(day, "12:00", "12:30")],  # on over lunch: switched on all the same
            "S1-103": [],  # never on
        }

    school = school_day_availability(schedule, calendar, "S1", "primary", MONDAY, rooms(MONDAY))
    assert [r.place.classroom for r in school.classrooms] == ["S1-101", "S1-102", "S1-103"]
    assert (school.totals.terminals_on, school.totals.terminal_days) == (2, 3)
    assert school.power_on_rate == 2 / 3
    assert school.totals.online_rate == 1 / 3  # one of three rooms online through all lessons
    holiday = school_day_availability(
        schedule, calendar, "S1", "primary", NATIONAL_DAY, rooms(NATIONAL_DAY)
    )
    assert holiday.school_day.reason is DayReason.HOLIDAY
    assert holiday.power_on_rate is None
    assert holiday.totals.online_rate is None


def test_days_of_month() -> None:
    assert len(days_of_month(2026, 10)) == 31
    assert len(days_of_month(2028, 2)) == 29
    assert days_of_month(2026, 10)[0] == date(2026, 10, 1)


# October 2026: 国庆 1-7 October off, Saturday 10 October a 调休 working day. School days:
# 8, 9, 10, 12-16, 19-23 and 26-30 October.
OCTOBER_SCHOOL_DAYS = 2 + 1 + 5 + 5 + 5


def test_monthly_figures_sum_numerators_and_denominators(
    schedule: Schedule, calendar: ChineseWorkingCalendar
) -> None:
    off_day, late_day = date(2026, 10, 12), date(2026, 10, 13)
    # On every day of the month, holidays and weekends too, except one day off and one late start.
    intervals = [
        span(d, "08:30" if d == late_day else "07:50", "17:00")
        for d in days_of_month(2026, 10)
        if d != off_day
    ]
    days = classroom_month(schedule, calendar, ROOM, 2026, 10, intervals)
    assert len(days) == 31
    school_days = [d.day for d in days if d.school_day.is_school_day]
    assert len(school_days) == OCTOBER_SCHOOL_DAYS
    assert MAKEUP_SATURDAY in school_days
    assert NATIONAL_DAY not in school_days
    month = aggregate(days)
    full = PRIMARY_LESSONS * PRIMARY_MINUTES
    assert month == Availability(
        online_seconds=((OCTOBER_SCHOOL_DAYS - 2) * full + 0 + (full - 10)) * MINUTE,
        monitored_seconds=OCTOBER_SCHOOL_DAYS * full * MINUTE,
        lesson_seconds=OCTOBER_SCHOOL_DAYS * full * MINUTE,
        lessons_used=(OCTOBER_SCHOOL_DAYS - 1) * PRIMARY_LESSONS,
        lessons_monitored=OCTOBER_SCHOOL_DAYS * PRIMARY_LESSONS,
        lessons=OCTOBER_SCHOOL_DAYS * PRIMARY_LESSONS,
        terminals_on=OCTOBER_SCHOOL_DAYS - 1,
        terminal_days_monitored=OCTOBER_SCHOOL_DAYS,
        terminal_days=OCTOBER_SCHOOL_DAYS,
    )
    assert month.power_on_rate == (OCTOBER_SCHOOL_DAYS - 1) / OCTOBER_SCHOOL_DAYS

    # A middle-school room with longer days, never on: the district's month is total online
    # time over total lesson time, not the mean of the two rooms' rates.
    middle = aggregate(classroom_month(schedule, calendar, MIDDLE_ROOM, 2026, 10, []))
    assert middle.lesson_seconds == OCTOBER_SCHOOL_DAYS * MIDDLE_LESSONS * MIDDLE_MINUTES * MINUTE
    assert middle.online_rate == 0.0
    both = month + middle
    assert both.online_rate == month.online_seconds / (month.lesson_seconds + middle.lesson_seconds)
    mean_of_rates = ((month.online_rate or 0.0) + 0.0) / 2
    assert both.online_rate != pytest.approx(mean_of_rates)
    assert both.terminal_days == 2 * OCTOBER_SCHOOL_DAYS


def test_a_month_of_holidays_has_no_figures(
    schedule: Schedule, calendar: ChineseWorkingCalendar
) -> None:
    # August is 暑假: no term, no denominator, whatever the terminal did.
    intervals = [span(d, "08:00", "17:00") for d in days_of_month(2026, 8)]
    month = aggregate(classroom_month(schedule, calendar, ROOM, 2026, 8, intervals))
    assert month == Availability()
    assert (month.online_rate, month.usage_rate, month.power_on_rate) == (None, None, None)


def _hb(seq: int, boot: str, bd_seq: int, now: float) -> Heartbeat:
    return Heartbeat(
        "t", "S1", "S1-101", boot, seq, bd_seq, now, 0.0, "1.0.0", None, 1000, "full",
        None, None, None, None, None, None, None,
    )  # fmt: skip


def test_a_day_driven_through_the_terminal_state(
    district: Config, schedule: Schedule, calendar: ChineseWorkingCalendar
) -> None:
    """Switched on at 08:30, power cut at 12:00 (no Will), on again at 14:00, shut down at 17:00."""
    state = TerminalsState(TerminalInventory.from_inventory(inventory_of(district)))
    events: list[Event] = []
    boot_morning, boot_afternoon = "morning", "afternoon"
    now = at(MONDAY, "08:30")
    seq = 1
    birth = Status("t", "S1", "S1-101", "online", "birth", boot_morning, seq, 1, now, "1.0.0")
    events += state.apply(birth, now)
    while now < at(MONDAY, "12:00"):
        now += 30.0
        seq += 1
        events += state.apply(_hb(seq, boot_morning, 1, now), now)
        events += state.expire(now, heartbeat_timeout())
    # Silence from 12:00: the collector keeps checking, the terminal goes offline by timeout.
    while now < at(MONDAY, "12:10"):
        now += 5.0
        events += state.expire(now, heartbeat_timeout())
    now = at(MONDAY, "14:00")
    # The agent restarts with the power: a new boot id, the next (persisted) birth sequence.
    seq = 1
    events += state.apply(_hb(seq, boot_afternoon, 2, now), now)
    while now < at(MONDAY, "17:00"):
        now += 30.0
        seq += 1
        events += state.apply(_hb(seq, boot_afternoon, 2, now), now)
        events += state.expire(now, heartbeat_timeout())
    seq += 1
    events += state.apply(
        Status("t", "S1", "S1-101", "offline", "shutdown", boot_afternoon, seq, 2, now, "1.0.0"),
        now,
    )
    assert [e.kind.value for e in events] == [
        "terminal_online",
        "terminal_offline",
        "terminal_online",
        "terminal_offline",
    ]
    assert events[1].details["reason"] == "timeout"
    day_start, day_end = at(MONDAY, "00:00"), at(MONDAY + timedelta(days=1), "00:00")
    live = state.online_intervals("S1", "S1-101", day_start, day_end)
    assert live == (span(MONDAY, "08:30", "12:00"), span(MONDAY, "14:00", "17:00"))
    assert intervals_from_events(events, until=day_end) == live
    result = classroom_day(schedule, calendar, ROOM, MONDAY, live)
    # Morning: 30 + 40 + 40 + 40 minutes; afternoon: 第5-7节 (14:20-16:40) in full.
    assert result.totals.online_seconds == (30 + 3 * 40 + 3 * 40) * MINUTE
    assert result.totals.lessons_used == 7


# -- monitored time and lessons still to come ------------------------------------------------


def test_a_day_edumon_never_monitored_has_no_data_not_0_percent(
    schedule: Schedule, calendar: ChineseWorkingCalendar
) -> None:
    # The day before installation: a school day, the terminal (as far as anyone knows) off,
    # but edumon was not running. That is "no data" with coverage 0, not 0 % 在线率.
    result = classroom_day(schedule, calendar, ROOM, MONDAY, [], monitored=())
    totals = result.totals
    assert totals.lesson_seconds == PRIMARY_LESSONS * PRIMARY_MINUTES * MINUTE
    assert totals.coverage == 0.0
    assert not totals.has_data
    assert (totals.online_rate, totals.usage_rate, totals.power_on_rate) == (None, None, None)


def test_rates_count_monitored_lesson_time_only(
    schedule: Schedule, calendar: ChineseWorkingCalendar
) -> None:
    # Installed at 10:00 on the Monday (lessons 08:20-09:00, 09:10-09:50 unmonitored); the
    # terminal was on all day. Online within monitored lesson time is 100 %, coverage 5/7.
    watched = [(at(MONDAY, "10:00"), at(MONDAY, "23:00"))]
    result = classroom_day(
        schedule, calendar, ROOM, MONDAY, [span(MONDAY, "07:00", "18:00")], monitored=watched
    )
    totals = result.totals
    assert totals.coverage == pytest.approx(5 / 7)
    assert totals.online_rate == 1.0
    assert (totals.lessons_monitored, totals.lessons_used, totals.lessons) == (5, 5, 7)
    assert totals.power_on_rate == 1.0


def test_online_events_outside_monitored_time_count_nothing(
    schedule: Schedule, calendar: ChineseWorkingCalendar
) -> None:
    # An interval rebuilt from events can span a stretch the daemon was down: that stretch is
    # unknown, not online.
    watched = [(at(MONDAY, "00:00"), at(MONDAY, "09:00"))]
    result = classroom_day(
        schedule, calendar, ROOM, MONDAY, [span(MONDAY, "07:00", "18:00")], monitored=watched
    )
    assert result.totals.online_seconds == result.totals.monitored_seconds == 40 * MINUTE
    assert result.totals.online_rate == 1.0


def test_today_counts_only_lessons_already_started(
    schedule: Schedule, calendar: ChineseWorkingCalendar
) -> None:
    # At 09:30 on a Monday: the first lesson (08:20-09:00) is over, the second (09:10-09:50)
    # runs; the five to come do not count. The terminal has been on since 08:00.
    now = at(MONDAY, "09:30")
    result = classroom_day(schedule, calendar, ROOM, MONDAY, [(at(MONDAY, "08:00"), now)], now=now)
    totals = result.totals
    assert totals.lessons == 2
    assert totals.lesson_seconds == (40 + 20) * MINUTE
    assert totals.online_rate == 1.0
    assert totals.usage_rate == 1.0
    before_lessons = classroom_day(
        schedule, calendar, ROOM, MONDAY, [], now=at(MONDAY, "07:00")
    ).totals
    assert before_lessons.lessons == 0
    assert (before_lessons.online_rate, before_lessons.coverage) == (None, None)
    assert before_lessons.terminal_days == 0
