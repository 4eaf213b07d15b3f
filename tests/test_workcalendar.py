"""The working calendar's sources in priority order: files, chinese-calendar, the law, weekdays."""

from __future__ import annotations

import logging
import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from edumon.domain.schedule import (
    CalendarSource,
    DayReason,
    NationalCalendar,
    Schedule,
    Term,
    Timetable,
    school_day,
)
from edumon.workcalendar import SHIPPED_DIR, ChineseWorkingCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
CONFIGURED = CalendarSource.CONFIGURED
SHIPPED = CalendarSource.SHIPPED
PACKAGE = CalendarSource.CHINESE_CALENDAR
STATUTORY = CalendarSource.STATUTORY
WEEKDAYS = CalendarSource.WEEKDAYS

# A 2027 arrangement as a district would write it the day the notice appears. The dates are
# made up for the tests (the real notice is not published yet): a 春节 block with a make-up
# Saturday, and a 元旦 block reaching back into 2026.
FILE_2027 = """\
year = 2027
title = "国务院办公厅关于2027年部分节假日安排的通知"
published = 2026-12-10

[[holidays]]
name = "元旦"
start = 2026-12-31
end = 2027-01-02
makeup_workdays = [2026-12-26]

[[holidays]]
name = "春节"
start = 2027-02-05
end = 2027-02-13
makeup_workdays = [2027-02-20]
"""


def at(day: date, hhmm: str = "10:00") -> float:
    hour, minute = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def plain() -> ChineseWorkingCalendar:
    """The calendar as installed: shipped files and chinese-calendar, no calendar_dir."""
    return ChineseWorkingCalendar(clock=Clock(at(date(2026, 11, 30))))


@pytest.fixture
def with_2027(tmp_path: Path) -> ChineseWorkingCalendar:
    write(tmp_path / "calendar", "2027.toml", FILE_2027)
    return ChineseWorkingCalendar(tmp_path / "calendar", clock=Clock(at(date(2026, 12, 10))))


def d(text: str) -> date:
    return date.fromisoformat(text)


NO_FILE_CASES = [
    # date, working day, source, holiday name
    ("2026-09-07", True, SHIPPED, ""),  # a Monday
    ("2026-09-12", False, SHIPPED, ""),  # a Saturday
    ("2026-10-01", False, SHIPPED, "国庆节"),
    ("2026-10-10", True, SHIPPED, "国庆节"),  # 调休: a Saturday worked
    ("2026-02-16", False, SHIPPED, "春节"),
    ("2025-01-26", True, SHIPPED, "春节"),  # 调休: a Sunday worked
    ("2024-10-01", False, PACKAGE, "国庆节"),
    ("2024-09-29", True, PACKAGE, "国庆节"),  # 调休 in chinese-calendar's data
    ("2024-10-08", True, PACKAGE, ""),
    # 2027 without its notice: the law's holidays, lunar ones computed, and their 补假.
    ("2027-01-01", False, STATUTORY, "元旦"),  # a Friday
    ("2027-02-05", False, STATUTORY, "农历除夕"),  # Friday
    ("2027-02-06", False, STATUTORY, "春节"),  # Saturday, 正月初一
    ("2027-02-08", False, STATUTORY, "春节"),  # Monday, 正月初三
    ("2027-02-09", False, STATUTORY, "春节（补假）"),  # for the Saturday
    ("2027-02-10", False, STATUTORY, "春节（补假）"),  # for the Sunday
    ("2027-02-11", True, STATUTORY, ""),
    ("2027-04-05", False, STATUTORY, "清明节"),
    ("2027-05-03", False, STATUTORY, "劳动节（补假）"),
    ("2027-06-09", False, STATUTORY, "端午节"),
    ("2027-09-15", False, STATUTORY, "中秋节"),
    ("2027-10-04", False, STATUTORY, "国庆节（补假）"),
    ("2027-10-06", True, STATUTORY, ""),
    ("2027-02-20", False, STATUTORY, ""),  # a Saturday: 调休 unknown without the notice
    ("2101-01-03", True, WEEKDAYS, ""),  # a Monday past every table
]


@pytest.mark.parametrize(
    ("day", "workday", "source", "holiday"), NO_FILE_CASES, ids=[c[0] for c in NO_FILE_CASES]
)
def test_without_a_calendar_dir(
    plain: ChineseWorkingCalendar, day: str, workday: bool, source: CalendarSource, holiday: str
) -> None:
    answer = plain.workday(d(day))
    assert (answer.workday, answer.source, answer.holiday) == (workday, source, holiday)
    assert answer.arranged is (source in (CONFIGURED, SHIPPED, PACKAGE))


WITH_FILE_CASES = [
    ("2026-12-26", True, CONFIGURED, "元旦"),  # a Saturday worked, listed in the 2027 file
    ("2026-12-31", False, CONFIGURED, "元旦"),  # the 2027 file reaches back into 2026
    ("2026-12-30", True, SHIPPED, ""),  # the rest of 2026 is still the shipped file's
    ("2027-01-01", False, CONFIGURED, "元旦"),
    ("2027-02-12", False, CONFIGURED, "春节"),
    ("2027-02-20", True, CONFIGURED, "春节"),  # the make-up Saturday
    ("2027-02-27", False, CONFIGURED, ""),  # an ordinary Saturday
    ("2027-04-05", True, CONFIGURED, ""),  # the file decides the whole year: 清明 not in it
]


@pytest.mark.parametrize(
    ("day", "workday", "source", "holiday"), WITH_FILE_CASES, ids=[c[0] for c in WITH_FILE_CASES]
)
def test_a_configured_file_decides_its_year(
    with_2027: ChineseWorkingCalendar, day: str, workday: bool, source: CalendarSource, holiday: str
) -> None:
    answer = with_2027.workday(d(day))
    assert (answer.workday, answer.source, answer.holiday) == (workday, source, holiday)


def test_shipped_files_agree_with_chinese_calendar(plain: ChineseWorkingCalendar) -> None:
    day = date(2025, 1, 1)
    while day.year <= 2026:
        answer = plain.workday(day)
        assert answer.source is SHIPPED, day
        assert answer.workday is chinese_calendar.is_workday(day), day
        day += timedelta(days=1)


def test_a_configured_file_wins_over_shipped_and_shipped_over_the_package(
    tmp_path: Path,
) -> None:
    # The district corrects 2026 (10月8日 off as well); a shipped 2024 file overrides the package.
    configured, shipped = tmp_path / "calendar", tmp_path / "shipped"
    text_2026 = (SHIPPED_DIR / "2026.toml").read_text(encoding="utf-8")
    write(configured, "2026.toml", text_2026.replace("end = 2026-10-07", "end = 2026-10-08"))
    write(
        shipped,
        "2024.toml",
        """\
        year = 2024
        title = "国务院办公厅关于2024年部分节假日安排的通知"
        published = 2023-10-25

        [[holidays]]
        name = "国庆节"
        start = 2024-10-01
        end = 2024-10-08
        """,
    )
    calendar = ChineseWorkingCalendar(configured, shipped_dir=shipped)
    corrected = calendar.workday(date(2026, 10, 8))
    assert (corrected.workday, corrected.source) == (False, CONFIGURED)
    assert calendar.workday(date(2024, 10, 8)).source is SHIPPED
    assert not calendar.workday(date(2024, 10, 8)).workday  # the package says a working day
    assert calendar.workday(date(2024, 9, 29)).source is SHIPPED  # the whole year
    assert calendar.workday(date(2023, 10, 8)).source is PACKAGE
    # Without the shipped 2025/2026 (another shipped_dir), 2025 falls to the package.
    assert calendar.workday(date(2025, 3, 3)).source is PACKAGE


# -- school days: what the classrooms see ------------------------------------------------------

SCHEDULE = Schedule(
    timetables={"t": Timetable.from_spans("t", [])},
    kind_timetables={"primary": "t"},
    terms=(
        Term("2026秋季学期", date(2026, 9, 1), date(2027, 1, 22)),
        Term("2027春季学期", date(2027, 2, 1), date(2027, 7, 9)),
    ),
)

SCHOOL_DAY_CASES = [
    # id, with the 2027 file?, date, school day?, reason, calendar_fallback
    ("元旦 2027 without a file", False, "2027-01-01", False, DayReason.HOLIDAY, True),
    ("元旦 2027 with the file", True, "2027-01-01", False, DayReason.HOLIDAY, False),
    ("除夕 2027 without a file", False, "2027-02-05", False, DayReason.HOLIDAY, True),
    ("初三 2027 without a file", False, "2027-02-08", False, DayReason.HOLIDAY, True),
    ("补假 2027 without a file", False, "2027-02-10", False, DayReason.HOLIDAY, True),
    ("after 春节 without a file", False, "2027-02-11", True, DayReason.WORKDAY, True),
    ("make-up Saturday unknown", False, "2027-02-20", False, DayReason.WEEKEND, True),
    ("make-up Saturday from the file", True, "2027-02-20", True, DayReason.MAKEUP_WORKDAY, False),
    ("春节 from the file", True, "2027-02-11", False, DayReason.HOLIDAY, False),
    ("2026 from the shipped file", False, "2026-10-10", True, DayReason.MAKEUP_WORKDAY, False),
]


@pytest.mark.parametrize(
    ("with_file", "day", "is_school_day", "reason", "fallback"),
    [c[1:] for c in SCHOOL_DAY_CASES],
    ids=[c[0] for c in SCHOOL_DAY_CASES],
)
def test_school_days(
    plain: ChineseWorkingCalendar,
    with_2027: ChineseWorkingCalendar,
    with_file: bool,
    day: str,
    is_school_day: bool,
    reason: DayReason,
    fallback: bool,
) -> None:
    calendar = with_2027 if with_file else plain
    answer = school_day(SCHEDULE, calendar, d(day))
    assert (answer.is_school_day, answer.reason, answer.calendar_fallback) == (
        is_school_day,
        reason,
        fallback,
    )


def test_the_spring_festival_week_2027_has_no_school_day(plain: ChineseWorkingCalendar) -> None:
    week = [date(2027, 2, 5) + timedelta(days=i) for i in range(6)]  # 除夕 to the second 补假
    assert [school_day(SCHEDULE, plain, day).is_school_day for day in week] == [False] * 6


# -- reading the directory while running ------------------------------------------------------


def test_a_file_dropped_in_is_read_within_the_reload_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(at(date(2026, 12, 10)))
    directory = tmp_path / "calendar"
    directory.mkdir()
    calendar = ChineseWorkingCalendar(directory, clock=clock, reload_seconds=600)
    assert calendar.workday(date(2027, 2, 20)).source is STATUTORY
    write(directory, "2027.toml", FILE_2027)
    clock.now += 599
    assert calendar.workday(date(2027, 2, 20)).source is STATUTORY
    with caplog.at_level(logging.INFO, logger="edumon.workcalendar"):
        clock.now += 1
        answer = calendar.workday(date(2027, 2, 20))
    assert (answer.workday, answer.source) == (True, CONFIGURED)
    assert any("2027.toml" in r.getMessage() for r in caplog.records)


def test_a_bad_file_is_logged_and_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "calendar"
    write(directory, "2027.toml", FILE_2027.replace("2027-02-20", "2027-02-22"))  # a Monday
    with caplog.at_level(logging.ERROR, logger="edumon.workcalendar"):
        calendar = ChineseWorkingCalendar(directory, clock=Clock(at(date(2026, 12, 10))))
        calendar.reload()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors  # once, not at every reload
    assert "2027.toml:15: holidays[1].makeup_workdays: 2027-02-22 是周一" in errors[0]
    assert calendar.workday(date(2027, 1, 1)).source is STATUTORY
    coverage = calendar.coverage(date(2026, 12, 10))
    assert coverage.warning
    assert len(coverage.problems) == 1


# -- coverage and the advice ----------------------------------------------------------------


def test_coverage_with_and_without_next_year(
    plain: ChineseWorkingCalendar, with_2027: ChineseWorkingCalendar
) -> None:
    calendar: NationalCalendar = plain
    before = calendar.coverage(date(2026, 11, 30))
    assert (before.covered_until, before.warning, before.advice) == (date(2026, 12, 31), False, "")
    assert before.years[2026] is SHIPPED
    assert before.years[2024] is PACKAGE
    december = calendar.coverage(date(2026, 12, 1))
    assert (december.warning, december.missing_year) == (True, 2027)
    covered = with_2027.coverage(date(2026, 12, 1))
    assert (covered.covered_until, covered.warning) == (date(2027, 12, 31), False)
    assert covered.years[2027] is CONFIGURED
    assert covered.files[2027].endswith("2027.toml")


def test_the_advice_says_where_the_file_goes(tmp_path: Path) -> None:
    config_file = tmp_path / "edumon.toml"
    calendar = ChineseWorkingCalendar(
        tmp_path / "calendar", config_file=config_file, clock=Clock(at(date(2026, 12, 1)))
    )
    advice = calendar.coverage(date(2026, 12, 1)).advice
    assert advice.startswith("工作日历：2027年的放假安排")
    assert str(tmp_path / "calendar" / "2027.toml") in advice
    assert f"edumon check-config {config_file}" in advice
    assert "无需重启" in advice
    assert "no restart needed" in advice
    without_dir = ChineseWorkingCalendar(clock=Clock(at(date(2026, 12, 1))))
    assert "calendar_dir" in without_dir.coverage(date(2026, 12, 1)).advice


def test_the_warning_is_logged_at_start_and_once_a_day(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edumon.workcalendar"):
        calendar = ChineseWorkingCalendar(clock=Clock(at(date(2026, 12, 1), "00:01")))
        for _ in range(3):
            calendar.coverage(date(2026, 12, 1))
        calendar.coverage(date(2026, 12, 2))
        calendar.coverage(date(2026, 12, 2))
    warnings = [r for r in caplog.records if "2027年的放假安排" in r.getMessage()]
    assert len(warnings) == 2
    assert all(r.levelno == logging.WARNING for r in warnings)


def test_no_warning_before_december(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edumon.workcalendar"):
        calendar = ChineseWorkingCalendar(clock=Clock(at(date(2026, 11, 30), "23:59")))
        calendar.coverage(date(2026, 11, 30))
    assert caplog.records == []
