"""Availability reports (在线率, 开机率, 使用率) in JSON and CSV, from stored events and live state.

School A (primary: seven 40-minute lessons, 280 minutes a day) on Monday 2026-09-07, with the
real working calendar:

- A-101: on 08:30-12:00 (killed then): lessons 1-4 for 30+40+40+40 = 150 minutes, 4 used;
- A-102: on since Sunday 2026-08-30 20:00 (over a week before: its state at the day's start
  must be looked up), shut down at 09:00: 40 minutes of lesson 1, 1 used;
- A-103: on 14:00-14:30: 10 minutes of lesson 5 (14:20-15:00), less than half: not used;
- A-104: never on.

School A that day: 200 online minutes of 4 x 280 = 1120; 5 of 28 lessons used; 3 of 4
terminals switched on (开机率 0.75).

edumon was monitoring from just before Sunday 20:00 on (a process alive since then, or a
stored monitoring run when the API runs in a later process).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from edumon.exporters.api import create_app
from edumon.runtime import Runtime
from tests.fixtures.runtime import (
    ALL_SECRETS,
    Agent,
    Clock,
    build_terminals_runtime,
    feed,
    local,
)

API = "/api/v1"
LEVEL, STATUS = "级别 level", "数据状态 status"
ONLINE, USAGE, POWER_ON = "在线率 online %", "使用率 usage %", "开机率 power-on %"
MONDAY = date(2026, 9, 7)
LEFT_ON = local(date(2026, 8, 30), "20:00")
LESSON_MINUTES = 7 * 40
# School days of September 2026 (the term starts on the 1st): weekdays, plus Sunday the 20th
# (调休), less Friday the 25th (中秋节).
SEPTEMBER_SCHOOL_DAYS = 22


@dataclass
class Reports:
    runtime: Runtime
    clock: Clock
    client: httpx.AsyncClient

    async def json(self, url: str, status: int = 200) -> Any:
        response = await self.client.get(url)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        return response.json()

    async def csv(self, url: str, **headers: str) -> tuple[httpx.Response, list[dict[str, str]]]:
        response = await self.client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs
        text = response.content.decode("utf-8-sig")
        return response, list(csv.DictReader(io.StringIO(text, newline="")))


async def the_day(runtime: Runtime) -> None:
    """Monday's messages through the collector, so that their events are stored."""
    a101, a102 = Agent("jy", "A", "A-101"), Agent("jy", "A", "A-102")
    a103 = Agent("jy", "A", "ops-a103")
    await feed(runtime, [(a102.birth(), LEFT_ON)])
    await feed(
        runtime,
        [
            (a101.birth(), local(MONDAY, "08:30")),
            (a102.shutdown(), local(MONDAY, "09:00")),
            (a101.will(), local(MONDAY, "12:00")),
            (a103.birth(), local(MONDAY, "14:00")),
            (a103.shutdown(), local(MONDAY, "14:30")),
        ],
    )


@pytest.fixture
async def open_reports(tmp_path: Path) -> AsyncIterator[Any]:
    """Opens the API on a runtime (closing them all at the end)."""
    runtimes: list[Runtime] = []
    clients: list[httpx.AsyncClient] = []

    async def make(clock: Clock, *, started_at: float, db: str = "a.db") -> Reports:
        runtime = await build_terminals_runtime(tmp_path / db, clock, started_at=started_at)
        runtimes.append(runtime)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(runtime, clock=clock)),
            base_url="http://edumon.test",
        )
        clients.append(client)
        return Reports(runtime, clock, client)

    try:
        yield make
    finally:
        for client in clients:
            await client.aclose()
        for runtime in runtimes:
            await runtime.store.aclose()


def by(items: list[dict[str, Any]], key: str, value: object) -> dict[str, Any]:
    found = [item for item in items if item[key] == value]
    assert len(found) == 1, f"{key}={value!r} in {items}"
    return found[0]


def assert_monday(school: dict[str, Any]) -> None:
    """School A's figures on Monday, as worked out in the module docstring."""
    rooms = {r["classroom"]: r for r in school["classrooms"]}
    expected = {  # online minutes, lessons used, switched on
        "A-101": (150, 4, True),
        "A-102": (40, 1, True),
        "A-103": (10, 0, True),
        "A-104": (0, 0, False),
    }
    for room, (minutes, used, on) in expected.items():
        got = rooms[room]
        assert (got["online_minutes"], got["lessons_used"], got["switched_on"]) == (
            minutes,
            used,
            on,
        ), room
        assert (got["lesson_minutes"], got["lessons"]) == (LESSON_MINUTES, 7), room
        assert got["online_rate"] == pytest.approx(minutes / LESSON_MINUTES), room
        assert got["usage_rate"] == pytest.approx(used / 7), room
    assert rooms["A-103"]["terminal"] == "ops-a103"
    assert rooms["A-101"]["classroom_name"] == "一年级(1)班"
    assert (school["school"], school["school_name"]) == ("A", "城关第一小学")
    assert (school["is_school_day"], school["day_reason"]) == (True, "workday")
    assert school["term"] == "2026秋季学期"
    assert school["calendar_fallback"] is False
    assert (school["online_minutes"], school["lesson_minutes"]) == (200, 4 * LESSON_MINUTES)
    assert school["online_rate"] == pytest.approx(200 / 1120)
    assert (school["lessons_used"], school["lessons"]) == (5, 28)
    assert school["usage_rate"] == pytest.approx(5 / 28)
    assert (school["terminals_on"], school["terminal_days"]) == (3, 4)
    assert school["power_on_rate"] == 0.75


async def test_a_past_day_from_stored_events_after_a_restart(open_reports: Any) -> None:
    clock = Clock(LEFT_ON - 60)
    first = await open_reports(clock, started_at=clock.now)
    await the_day(first.runtime)
    # The first process ran until Wednesday 09:00 (its monitoring run is stored).
    run = await first.runtime.store.start_run(LEFT_ON - 60)
    await first.runtime.store.keep_run(run, local(date(2026, 9, 9), "09:00"))
    # A new process on the same database: nothing in memory, everything from the store.
    clock.now = local(date(2026, 9, 9), "10:00")
    reports = await open_reports(clock, started_at=clock.now - 3600)
    assert reports.runtime.terminals is not None
    a102 = reports.runtime.terminals.of_classroom("A-102")
    assert a102 is not None
    assert a102.online is None

    body = await reports.json(f"{API}/availability/daily?day=2026-09-07&school=A")
    assert (body["day"], body["complete"]) == ("2026-09-07", True)
    (school,) = body["schools"]
    assert_monday(school)
    assert body["district"]["online_minutes"] == 200

    # Every school: the middle school's silent room counts, the kindergarten has no lessons.
    everything = await reports.json(f"{API}/availability/daily?day=2026-09-07")
    schools = {s["school"]: s for s in everything["schools"]}
    assert set(schools) == {"A", "B", "K"}
    assert_monday(schools["A"])
    assert (schools["B"]["lesson_minutes"], schools["B"]["online_rate"]) == (8 * 45, 0)
    kindergarten = schools["K"]
    assert kindergarten["is_school_day"] is True
    assert (kindergarten["lessons"], kindergarten["online_rate"]) == (0, None)
    assert everything["district"]["lesson_minutes"] == 4 * LESSON_MINUTES + 8 * 45
    # 开机率 counts terminal-days with a lesson started: not the kindergarten's.
    assert everything["district"]["terminal_days"] == 5
    assert kindergarten["status"] == "no_lessons"


async def test_today_from_the_live_state(open_reports: Any) -> None:
    clock = Clock(LEFT_ON - 60)
    reports = await open_reports(clock, started_at=clock.now)
    await the_day(reports.runtime)
    terminals = reports.runtime.terminals
    assert terminals is not None
    # A-104 switched on at 14:50 and not stored yet (the collector writes in batches): the
    # live state knows, and its interval still open runs to now.
    terminals.apply(Agent("jy", "A", "A-104").birth(), local(MONDAY, "14:50"))
    clock.now = local(MONDAY, "15:00")

    body = await reports.json(f"{API}/availability/daily?school=A")
    assert (body["day"], body["complete"]) == ("2026-09-07", False)
    (school,) = body["schools"]
    rooms = {r["classroom"]: r for r in school["classrooms"]}
    assert (rooms["A-104"]["online_minutes"], rooms["A-104"]["switched_on"]) == (10, True)
    for room, minutes in (("A-101", 150), ("A-102", 40), ("A-103", 10)):
        assert rooms[room]["online_minutes"] == minutes, room
    assert (school["online_minutes"], school["terminals_on"]) == (210, 4)
    # Only lessons already started count: at 15:00 lessons 1-5 are over, 6 and 7 to come.
    assert (school["lesson_minutes"], school["lessons"]) == (4 * 5 * 40, 4 * 5)
    assert school["online_rate"] == pytest.approx(210 / 800)
    assert (school["coverage"], school["status"]) == (1.0, "ok")
    # In the middle of lesson 6 (15:10-15:50): its first 20 minutes count.
    clock.now = local(MONDAY, "15:30")
    body = await reports.json(f"{API}/availability/daily?school=A")
    assert body["schools"][0]["lesson_minutes"] == 4 * (5 * 40 + 20)

    future = await reports.json(f"{API}/availability/daily?day=2026-09-08", status=422)
    assert "has not begun" in str(future)


async def test_a_holiday_has_no_rates(open_reports: Any) -> None:
    national_day = date(2026, 10, 1)
    clock = Clock(local(national_day, "09:00"))
    reports = await open_reports(clock, started_at=clock.now)
    a101 = Agent("jy", "A", "A-101")
    await feed(reports.runtime, [(a101.birth(), local(national_day, "10:00"))])
    await feed(reports.runtime, [(a101.shutdown(), local(national_day, "11:00"))])
    clock.now = local(date(2026, 10, 2), "09:00")

    body = await reports.json(f"{API}/availability/daily?day=2026-10-01&school=A")
    (school,) = body["schools"]
    assert (school["is_school_day"], school["day_reason"]) == (False, "holiday")
    for figures in (school, *school["classrooms"], body["district"]):
        assert figures["online_rate"] is None
        assert figures["usage_rate"] is None
        assert figures["power_on_rate"] is None
        assert (figures["lesson_minutes"], figures["lessons"], figures["terminal_days"]) == (
            0,
            0,
            0,
        )
    # Used on a holiday: shown, but no 开机率 numerator without a school day.
    a101_row = by(school["classrooms"], "classroom", "A-101")
    assert (a101_row["switched_on"], a101_row["terminals_on"]) == (True, 0)

    _, rows = await reports.csv(f"{API}/availability/daily?day=2026-10-01&school=A&format=csv")
    school_row = by(rows, LEVEL, "学校 school")
    assert (school_row[ONLINE], school_row[POWER_ON]) == ("", "")
    assert school_row["上课日 school day"] == "否 no"
    assert school_row[STATUS] == "无课 no lessons"


def pct(rate: float | None) -> str:
    return "" if rate is None else f"{rate * 100:.1f}"


async def test_csv_carries_the_same_numbers_and_chinese_names(open_reports: Any) -> None:
    clock = Clock(LEFT_ON - 60)
    reports = await open_reports(clock, started_at=clock.now)
    await the_day(reports.runtime)
    clock.now = local(date(2026, 9, 8), "07:00")
    url = f"{API}/availability/daily?day=2026-09-07&school=A"
    body = await reports.json(url)

    response, rows = await reports.csv(f"{url}&format=csv")
    assert response.headers["content-disposition"] == (
        'attachment; filename="edumon-availability-A-2026-09-07.csv"'
    )
    _, by_accept = await reports.csv(url, accept="text/csv")
    assert by_accept == rows

    assert [r[LEVEL] for r in rows] == ["全区 district", "学校 school", *["教室 classroom"] * 4]
    (school,) = body["schools"]
    school_row = rows[1]
    assert (school_row["学校代码 school"], school_row["学校 school name"]) == ("A", "城关第一小学")
    # Percentages with one decimal: 200 / 1120 = 17.857... % → 17.9.
    assert school_row[ONLINE] == "17.9"
    figures = ((ONLINE, "online_rate"), (USAGE, "usage_rate"), (POWER_ON, "power_on_rate"))
    for header, key in figures:
        assert school_row[header] == pct(school[key]), key
    assert school_row["监测覆盖率 coverage %"] == "100.0"
    assert school_row[STATUS] == "完整 fully monitored"
    assert float(school_row["在线分钟 online min"]) == school["online_minutes"]
    assert int(school_row["节数 lessons"]) == school["lessons"]
    for room in school["classrooms"]:
        row = by(rows, "教室代码 classroom", room["classroom"])
        assert row["教室 classroom name"] == room["classroom_name"]
        assert row["日期 day"] == "2026-09-07"
        assert row[ONLINE] == pct(room["online_rate"])
        assert row["开过机 switched on"] == ("是 yes" if room["switched_on"] else "否 no")
    assert by(rows, "教室代码 classroom", "A-101")["教室 classroom name"] == "一年级(1)班"
    assert float(rows[0]["在线分钟 online min"]) == body["district"]["online_minutes"]


async def test_monthly_sums_the_school_days(open_reports: Any) -> None:
    clock = Clock(LEFT_ON - 60)
    reports = await open_reports(clock, started_at=clock.now)
    await the_day(reports.runtime)
    clock.now = local(date(2026, 10, 8), "09:00")

    body = await reports.json(f"{API}/availability/monthly?month=2026-09&school=A")
    assert (body["month"], body["first_day"], body["last_day"]) == (
        "2026-09",
        "2026-09-01",
        "2026-09-30",
    )
    assert body["complete"] is True
    (school,) = body["schools"]
    assert school["school_days"] == SEPTEMBER_SCHOOL_DAYS
    rooms = {r["classroom"]: r for r in school["classrooms"]}
    month_minutes = SEPTEMBER_SCHOOL_DAYS * LESSON_MINUTES
    # A-102 was on all day from Tuesday 1 to Friday 4 September, then lesson 1 on Monday 7.
    expected = {  # online minutes, lessons used, school days switched on
        "A-101": (150, 4, 1),
        "A-102": (4 * LESSON_MINUTES + 40, 4 * 7 + 1, 5),
        "A-103": (10, 0, 1),
        "A-104": (0, 0, 0),
    }
    for room, (minutes, used, days_on) in expected.items():
        got = rooms[room]
        assert (got["online_minutes"], got["lessons_used"], got["days_switched_on"]) == (
            minutes,
            used,
            days_on,
        ), room
        assert got["lesson_minutes"] == month_minutes, room
        assert got["lessons"] == SEPTEMBER_SCHOOL_DAYS * 7, room
        assert got["online_rate"] == pytest.approx(minutes / month_minutes), room
        assert got["power_on_rate"] == pytest.approx(days_on / SEPTEMBER_SCHOOL_DAYS), room
    assert school["online_minutes"] == 150 + 4 * LESSON_MINUTES + 40 + 10
    assert school["lesson_minutes"] == 4 * month_minutes
    assert (school["terminals_on"], school["terminal_days"]) == (7, 4 * SEPTEMBER_SCHOOL_DAYS)
    assert school["usage_rate"] == pytest.approx(33 / (4 * 7 * SEPTEMBER_SCHOOL_DAYS))

    response, rows = await reports.csv(
        f"{API}/availability/monthly?month=2026-09&school=A", accept="text/csv"
    )
    assert response.headers["content-disposition"] == (
        'attachment; filename="edumon-availability-A-2026-09.csv"'
    )
    school_row = by(rows, LEVEL, "学校 school")
    assert int(school_row["上课天数 school days"]) == SEPTEMBER_SCHOOL_DAYS
    assert school_row[ONLINE] == pct(school["online_rate"])
    a102 = by(rows, "教室代码 classroom", "A-102")
    assert (a102["教室 classroom name"], int(a102["开机天数 days switched on"])) == (
        "一年级(2)班",
        5,
    )


async def test_the_current_month_runs_to_today(open_reports: Any) -> None:
    clock = Clock(LEFT_ON - 60)
    reports = await open_reports(clock, started_at=clock.now)
    await the_day(reports.runtime)
    clock.now = local(MONDAY, "18:00")
    body = await reports.json(f"{API}/availability/monthly?school=A")
    assert (body["month"], body["last_day"], body["complete"]) == ("2026-09", "2026-09-07", False)
    (school,) = body["schools"]
    assert school["school_days"] == 5  # 1-4 and 7 September
    assert by(school["classrooms"], "classroom", "A-102")["online_minutes"] == (
        4 * LESSON_MINUTES + 40
    )


async def test_bad_requests(open_reports: Any) -> None:
    clock = Clock(local(MONDAY, "10:00"))
    reports = await open_reports(clock, started_at=clock.now)
    for url in (
        "daily?day=2026-9-7",
        "daily?day=20260907",
        "daily?day=2026-02-30",
        "daily?format=xml",
        "monthly?month=2026-13",
        "monthly?month=2026-10",
        "daily?day=0001-01-01",
        "daily?day=1999-12-31",
        "daily?day=9999-12-31",
        "monthly?month=0001-01",
        "monthly?month=0000-00",
        "monthly?month=9999-12",
        "daily?day=2026-09-07%00",
        "monthly?school=A%00",
    ):
        body = await reports.json(f"{API}/availability/{url}", status=422)
        assert body["detail"][0]["msg"], url
    await reports.json(f"{API}/availability/daily?school=NOPE", status=404)
    await reports.json(f"{API}/availability/monthly?school=NOPE", status=404)


async def test_without_a_schedule_the_reports_are_unavailable(open_reports: Any) -> None:
    clock = Clock(local(MONDAY, "10:00"))
    reports = await open_reports(clock, started_at=clock.now)
    reports.runtime.schedule = None
    body = await reports.json(f"{API}/availability/daily", status=503)
    assert "schedule" in body["detail"]


async def test_openapi_and_secrets(open_reports: Any) -> None:
    clock = Clock(LEFT_ON - 60)
    reports = await open_reports(clock, started_at=clock.now)
    await the_day(reports.runtime)
    clock.now = local(date(2026, 9, 8), "07:00")
    spec = await reports.json("/openapi.json")
    for path, schema in (("daily", "DailyAvailability"), ("monthly", "MonthlyAvailability")):
        content = spec["paths"][f"{API}/availability/{path}"]["get"]["responses"]["200"]["content"]
        assert content["application/json"]["schema"]["$ref"].endswith(f"/{schema}")
        assert "text/csv" in content
    for url in (
        f"{API}/availability/daily?day=2026-09-07",
        f"{API}/availability/daily?day=2026-09-07&format=csv",
        f"{API}/availability/monthly?month=2026-09&format=csv",
        f"{API}/availability/monthly",
    ):
        response = await reports.client.get(url)
        assert response.status_code == 200, url
        for secret in ALL_SECRETS:
            assert secret not in response.text, url


async def test_before_installation_is_no_data_not_0_percent(open_reports: Any) -> None:
    # edumon installed on Wednesday 9 September at 10:00: nothing stored before.
    installed = local(date(2026, 9, 9), "10:00")
    clock = Clock(installed)
    reports = await open_reports(clock, started_at=installed)
    clock.now = local(date(2026, 9, 9), "16:00")

    tuesday = await reports.json(f"{API}/availability/daily?day=2026-09-08&school=A")
    (school,) = tuesday["schools"]
    assert school["is_school_day"] is True
    for figures in (tuesday["district"], school, *school["classrooms"]):
        assert (figures["status"], figures["status_text"]) == ("no_data", "无数据")
        assert figures["status_text_en"] == "no data"
        assert figures["coverage"] == 0.0
        assert (figures["online_rate"], figures["usage_rate"], figures["power_on_rate"]) == (
            None,
            None,
            None,
        )
    _, rows = await reports.csv(f"{API}/availability/daily?day=2026-09-08&school=A&format=csv")
    assert {r[STATUS] for r in rows} == {"无数据 no data"}
    assert {r[ONLINE] for r in rows} == {""}

    # The day of installation: lessons 1-2 (08:20-09:50) unmonitored, lesson 3 from 10:00.
    wednesday = (await reports.json(f"{API}/availability/daily?day=2026-09-09&school=A"))[
        "schools"
    ][0]
    assert wednesday["status"] == "partial"
    assert 0 < wednesday["coverage"] < 1
    assert wednesday["online_rate"] == 0.0  # monitored, and every terminal was off

    for month in ("2020-01", "2026-08"):
        body = await reports.json(f"{API}/availability/monthly?month={month}")
        assert body["district"]["online_rate"] is None, month
        assert body["district"]["status"] in ("no_data", "no_lessons"), month


async def test_only_the_visible_schools(open_reports: Any) -> None:
    clock = Clock(local(MONDAY, "10:00"))
    reports = await open_reports(clock, started_at=clock.now)
    app = reports.client._transport.app  # type: ignore[attr-defined]

    @app.middleware("http")  # type: ignore[misc]
    async def school_a_only(request: Any, call_next: Any) -> Any:
        request.state.principal = SimpleNamespace(schools=frozenset({"A"}))
        return await call_next(request)

    for path in ("availability/daily", "availability/monthly", "reports/monthly"):
        body = await reports.json(f"{API}/{path}")
        assert [s["school"] for s in body["schools"]] == ["A"], path
        await reports.json(f"{API}/{path}?school=B", status=404)
        await reports.json(f"{API}/{path}?school=A&school=B", status=404)
        unknown = await reports.json(f"{API}/{path}?school=NOPE", status=404)
        hidden = await reports.json(f"{API}/{path}?school=B", status=404)
        assert unknown["detail"].replace("NOPE", "B") == hidden["detail"]


async def test_several_schools(open_reports: Any) -> None:
    clock = Clock(local(MONDAY, "10:00"))
    reports = await open_reports(clock, started_at=clock.now)
    body = await reports.json(f"{API}/availability/daily?school=K&school=A")
    assert [s["school"] for s in body["schools"]] == ["A", "K"]
    response, _ = await reports.csv(f"{API}/availability/daily?school=K&school=A&format=csv")
    assert response.headers["content-disposition"] == (
        'attachment; filename="edumon-availability-A-K-2026-09-07.csv"'
    )
