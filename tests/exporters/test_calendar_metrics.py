"""The working calendar's coverage on /metrics and in /api/v1/summary, with an injected clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest

from edumon.exporters.api import create_app
from edumon.exporters.metrics import create_registry
from edumon.runtime import Runtime
from edumon.workcalendar import ChineseWorkingCalendar
from tests.exporters.test_metrics import find, one
from tests.fixtures.runtime import SHANGHAI, Clock, build_terminals_runtime, local
from tests.test_workcalendar import FILE_2027


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    clock = Clock(local(date(2026, 11, 30), "10:00"))
    runtime = await build_terminals_runtime(tmp_path / "t.db", clock, started_at=clock.now)
    try:
        yield runtime
    finally:
        await runtime.store.aclose()


def use_calendar(runtime: Runtime, clock: Clock, calendar_dir: Path | None) -> None:
    runtime.calendar = ChineseWorkingCalendar(calendar_dir, clock=clock)


def metrics(runtime: Runtime, clock: Clock) -> str:
    return generate_latest(create_registry(runtime, clock=clock)).decode()


def midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI).timestamp()


CASES = [
    # id, local date and time, with the 2027 file?, warning, fallback, covered until (local date)
    ("30 November, last minute", date(2026, 11, 30), "23:59", False, 0, 0, date(2027, 1, 1)),
    ("1 December, first minute", date(2026, 12, 1), "00:00", False, 1, 0, date(2027, 1, 1)),
    ("1 December with the file", date(2026, 12, 1), "10:00", True, 0, 0, date(2028, 1, 1)),
    ("元旦 2027 without the file", date(2027, 1, 1), "10:00", False, 1, 1, date(2027, 1, 1)),
    ("元旦 2027 with the file", date(2027, 1, 1), "10:00", True, 0, 0, date(2028, 1, 1)),
]


@pytest.mark.parametrize(
    ("day", "hhmm", "with_file", "warning", "fallback", "until"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
async def test_calendar_metrics(
    runtime: Runtime,
    tmp_path: Path,
    day: date,
    hhmm: str,
    with_file: bool,
    warning: int,
    fallback: int,
    until: date,
) -> None:
    clock = Clock(local(day, hhmm))
    directory = tmp_path / "calendar"
    directory.mkdir()
    if with_file:
        (directory / "2027.toml").write_text(FILE_2027, encoding="utf-8")
    use_calendar(runtime, clock, directory)
    text = metrics(runtime, clock)
    assert one(text, "edumon_calendar_coverage_warning") == warning
    assert one(text, "edumon_calendar_fallback") == fallback
    assert one(text, "edumon_calendar_covered_until_timestamp_seconds") == midnight(until)
    assert one(text, "edumon_calendar_rejected_files") == 0


async def test_a_bad_file_is_counted_and_the_warning_stays(
    runtime: Runtime, tmp_path: Path
) -> None:
    clock = Clock(local(date(2026, 12, 10), "10:00"))
    directory = tmp_path / "calendar"
    directory.mkdir()
    (directory / "2027.toml").write_text(FILE_2027.replace("year = 2027", "year = 2028"), "utf-8")
    use_calendar(runtime, clock, directory)
    text = metrics(runtime, clock)
    assert one(text, "edumon_calendar_rejected_files") == 1
    assert one(text, "edumon_calendar_coverage_warning") == 1


async def test_no_calendar_no_series(runtime: Runtime) -> None:
    runtime.calendar = None
    clock = Clock(local(date(2026, 12, 1), "10:00"))
    assert find(metrics(runtime, clock), "edumon_calendar_coverage_warning") == []


async def summary(runtime: Runtime, clock: Clock) -> Any:
    app = create_app(runtime, clock=clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://edumon.test"
    ) as client:
        response = await client.get("/api/v1/summary")
    assert response.status_code == 200, response.text
    return response.json()["calendar"]


async def test_summary_says_what_is_missing_and_where_it_goes(
    runtime: Runtime, tmp_path: Path
) -> None:
    clock = Clock(local(date(2026, 12, 1), "10:00"))
    use_calendar(runtime, clock, tmp_path / "calendar")
    calendar = await summary(runtime, clock)
    assert calendar["today"] == "2026-12-01"
    assert calendar["today_source"] == "shipped"
    assert calendar["covered_until"] == "2026-12-31"
    assert calendar["sources"]["2026"]["source"] == "shipped"
    assert calendar["sources"]["2027"] == {"source": "statutory", "file": None}
    assert calendar["warning"].startswith("工作日历：2027年的放假安排")
    assert str(tmp_path / "calendar" / "2027.toml") in calendar["warning"]
    # The directory does not exist yet: that is a problem to fix, and it says so.
    assert "does not exist" in calendar["file_problems"][0]


async def test_summary_with_next_year_arranged(runtime: Runtime, tmp_path: Path) -> None:
    clock = Clock(local(date(2026, 12, 1), "10:00"))
    (tmp_path / "calendar").mkdir()
    (tmp_path / "calendar" / "2027.toml").write_text(FILE_2027, encoding="utf-8")
    use_calendar(runtime, clock, tmp_path / "calendar")
    calendar = await summary(runtime, clock)
    assert calendar["covered_until"] == "2027-12-31"
    assert calendar["warning"] is None
    assert calendar["file_problems"] == []
    assert calendar["sources"]["2027"] == {
        "source": "configured",
        "file": str(tmp_path / "calendar" / "2027.toml"),
    }
