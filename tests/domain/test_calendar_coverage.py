"""How far holiday arrangements reach, and when a missing year is warned about (pure date logic)."""

from __future__ import annotations

from datetime import date

import pytest

from edumon.domain.schedule import CalendarCoverage, CalendarSource, Workday

SHIPPED = CalendarSource.SHIPPED
UP_TO_2026 = {2024: CalendarSource.CHINESE_CALENDAR, 2025: SHIPPED, 2026: SHIPPED}
WITH_2027 = {**UP_TO_2026, 2027: CalendarSource.CONFIGURED}
GAP_2027 = {**UP_TO_2026, 2028: CalendarSource.CONFIGURED}

CASES = [
    # id, arranged years, today, covered until, missing year (None: no warning)
    ("30 Nov: not yet", UP_TO_2026, "2026-11-30", "2026-12-31", None),
    ("1 Dec: next year missing", UP_TO_2026, "2026-12-01", "2026-12-31", 2027),
    ("31 Dec: still missing", UP_TO_2026, "2026-12-31", "2026-12-31", 2027),
    ("1 Dec with next year's file", WITH_2027, "2026-12-01", "2027-12-31", None),
    ("1 Jan, the year missing", UP_TO_2026, "2027-01-01", "2026-12-31", 2027),
    ("midsummer, the year missing", UP_TO_2026, "2027-07-01", "2026-12-31", 2027),
    ("midsummer with the file", WITH_2027, "2027-07-01", "2027-12-31", None),
    ("the next December again", WITH_2027, "2027-12-01", "2027-12-31", 2028),
    ("a later year does not bridge a gap", GAP_2027, "2026-12-01", "2026-12-31", 2027),
    ("nothing arranged at all", {}, "2026-06-01", None, 2026),
    ("only years long past", {2010: SHIPPED}, "2026-06-01", "2010-12-31", 2026),
]


@pytest.mark.parametrize(
    ("years", "today", "until", "missing"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_coverage(
    years: dict[int, CalendarSource], today: str, until: str | None, missing: int | None
) -> None:
    coverage = CalendarCoverage(date.fromisoformat(today), years)
    expected_until = date.fromisoformat(until) if until is not None else None
    assert coverage.covered_until == expected_until
    assert coverage.missing_year == missing
    assert coverage.warning is (missing is not None)


@pytest.mark.parametrize(
    ("source", "arranged"),
    [
        (CalendarSource.CONFIGURED, True),
        (CalendarSource.SHIPPED, True),
        (CalendarSource.CHINESE_CALENDAR, True),
        (CalendarSource.STATUTORY, False),
        (CalendarSource.WEEKDAYS, False),
    ],
)
def test_which_sources_know_the_arrangement(source: CalendarSource, arranged: bool) -> None:
    assert Workday(date(2027, 1, 1), False, source).arranged is arranged
