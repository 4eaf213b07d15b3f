"""The chinese_calendar adapter: working days, 调休, holidays, and years it has no data for."""

from __future__ import annotations

from datetime import date

import pytest

from edumon.domain.schedule import WorkingCalendar
from edumon.workcalendar import ChineseWorkingCalendar


@pytest.mark.parametrize(
    ("day", "workday"),
    [
        (date(2026, 9, 7), True),  # a Monday
        (date(2026, 9, 12), False),  # a Saturday
        (date(2026, 10, 1), False),  # 国庆节, a Thursday
        (date(2026, 10, 7), False),  # 国庆 holiday week, a Wednesday
        (date(2026, 10, 10), True),  # 调休: Saturday made a working day
        (date(2026, 9, 20), True),  # 调休: Sunday made a working day
        (date(2026, 2, 16), False),  # 春节 holiday, a Monday
        (date(2099, 9, 7), None),  # beyond the package's data
        (date(1990, 9, 7), None),  # before it
    ],
)
def test_is_workday(day: date, workday: bool | None) -> None:
    calendar: WorkingCalendar = ChineseWorkingCalendar()
    assert calendar.is_workday(day) is workday
