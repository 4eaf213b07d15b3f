"""China's working calendar (法定节假日, 调休 make-up days) from the chinese_calendar package."""

from __future__ import annotations

from datetime import date

import chinese_calendar  # type: ignore[import-untyped]


class ChineseWorkingCalendar:
    """The national working calendar as the State Council publishes it, year by year.

    Implements ``edumon.domain.schedule.WorkingCalendar``.
    """

    def is_workday(self, day: date) -> bool | None:
        """True on a working day (调休 weekend days included), False on a rest day.

        Returns:
            None for a year the installed package has no data for; the schedule then falls back
            to weekday rules and says so.
        """
        try:
            workday: bool = chinese_calendar.is_workday(day)
        except NotImplementedError:
            # The package learns each year's holidays from the State Council notice published
            # late in the year before; past its last year it raises this rather than guess.
            return None
        return workday
