"""Statutory holidays (法定节假日) of 《全国年节及纪念日放假办法》, for years not yet arranged.

As revised with effect from 2025: 元旦 1 day, 春节 4 days from 除夕 (New Year's Eve), 清明节 1,
劳动节 2 (1–2 May), 端午节 1, 中秋节 1, 国庆节 3 (1–3 October); a holiday that falls on a Saturday
or Sunday is given back on the next working day (补假, article 6). The lunar dates and the
补假 rule come from the ``holidays`` package, which tabulates the Chinese calendar to 2100 and is
released monthly. What no law fixes in advance is 调休: which Saturdays and Sundays become working
days to bridge a holiday. That needs the year's notice.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import date
from types import MappingProxyType

from holidays import country_holidays


class StatutoryHolidays:
    """Statutory holidays by date, computed once per year and kept."""

    def __init__(self) -> None:
        self._years: dict[int, Mapping[date, str]] = {}
        self._lock = threading.Lock()

    def of_year(self, year: int) -> Mapping[date, str]:
        """The year's statutory holidays and 补假 days with their Chinese names.

        Empty for a year the package cannot compute (before 1950, after 2100). For a year
        whose notice the package already knows it also holds that notice's days off, but
        never its make-up working days: callers treat the year as unarranged all the same.
        """
        known = self._years.get(year)
        if known is not None:
            return known
        with self._lock:
            known = self._years.get(year)
            if known is None:
                # observed=True: article 6's 补假 (a holiday on a weekend is given back on the
                # next working day) is law, not arrangement; 2026's notice, for one, kept it.
                table = country_holidays("CN", years=year, language="zh_CN", observed=True)
                known = MappingProxyType({day: str(name) for day, name in table.items()})
                self._years[year] = known
        return known

    def name(self, day: date) -> str | None:
        """The holiday's name if ``day`` is a statutory holiday or 补假 day, else None."""
        return self.of_year(day.year).get(day)

    def computable(self, year: int) -> bool:
        """Whether the package knows the statutory holidays of ``year`` at all."""
        return bool(self.of_year(year))
