"""The daily roll-up and the monthly report on real stored data (SQLite and PostgreSQL), and
``edumon report`` printing the API's numbers.

The stored data is School A's Monday 2026-09-07 of tests/exporters/test_availability_api.py,
written through the real collector, with edumon monitoring from Sunday 20:00 to Wednesday
09:00; plus port roll-ups, a school outage and a classroom outage written through the store.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from edumon.app import terminals_of
from edumon.collector import Collector
from edumon.config import inventory_of, parse_config
from edumon.domain.models import Event, EventKind, OperStatus
from edumon.domain.rollups import InterfaceRollup
from edumon.domain.state import NetworkState
from edumon.exporters.api import create_app
from edumon.reports import render
from edumon.reports.availability import Sources, monthly_availability
from edumon.reports.monthly import monthly_report
from edumon.reports.rollup import backfill, keep_availability
from edumon.runtime import Runtime
from edumon.store import open_store
from edumon.workcalendar import ChineseWorkingCalendar
from tests.exporters.test_availability_api import LEFT_ON, MONDAY, the_day
from tests.fixtures.runtime import TERMINALS_TOML, Clock, local

RUN_END = local(date(2026, 9, 9), "09:00")
OCTOBER = local(date(2026, 10, 8), "09:00")


async def runtime_on(url: str, clock: Clock) -> Runtime:
    config = parse_config(TERMINALS_TOML)
    store = await open_store(url)
    await store.sync_inventory(config)
    state = NetworkState(inventory_of(config), list(config.switches))
    terminals = terminals_of(config)
    return Runtime(
        config,
        state,
        store,
        Collector(state, store, terminals=terminals, clock=clock),
        started_at=clock.now,
        terminals=terminals,
        schedule=config.schedule.schedule(),
        calendar=ChineseWorkingCalendar(),
    )


def rollup(port: tuple[str, str], at: float, speed: float | None, up: bool) -> InterfaceRollup:
    return InterfaceRollup(
        device_id=port[0],
        interface=port[1],
        bucket_start=at,
        bucket_seconds=300,
        polls=5,
        up_polls=5 if up else 0,
        in_bps=1e6,
        out_bps=1e6,
        in_bps_max=2e6,
        out_bps_max=2e6,
        max_utilisation=0.01,
        speed_mbps=speed,
        oper_status=OperStatus.UP if up else OperStatus.DOWN,
        last_at=at + 290,
    )


async def store_september(runtime: Runtime) -> None:
    """Monday's terminals, its monitoring run, port roll-ups and two outages."""
    await the_day(runtime)
    store = runtime.store
    run = await store.start_run(LEFT_ON - 60)
    await store.keep_run(run, RUN_END)
    uplink, a101 = ("core", "ge-0/0/1"), ("sw-a", "Gi0/1")
    lesson1 = local(MONDAY, "08:20")  # 08:20-09:00: buckets 08:20 .. 08:55
    await store.write(
        interface_rollups=[
            rollup(uplink, lesson1, 1000.0, True),  # compliant
            rollup(uplink, lesson1 + 300, 100.0, True),  # below the 1000M target
            rollup(uplink, lesson1 + 600, None, False),  # down: fails
            rollup(a101, lesson1, 1000.0, True),  # compliant
            rollup(a101, lesson1 + 300, 100.0, True),  # slow
            rollup(a101, lesson1 + 600, None, False),  # down: terminal off, not judged
        ],
        device_samples=[],
        events=[
            Event(
                local(MONDAY, "10:05"),
                EventKind.SCHOOL_OUTAGE,
                "core",
                school="A",
                details={"started_at": local(MONDAY, "10:00"), "cause": "uplink_down"},
            ),
            Event(
                local(MONDAY, "10:30"),
                EventKind.SCHOOL_RESTORED,
                "core",
                school="A",
                details={"started_at": local(MONDAY, "10:00"), "duration_seconds": 1800},
            ),
            Event(
                local(MONDAY, "12:10"),
                EventKind.CLASSROOM_OUTAGE,
                "A-101",
                school="A",
                classroom="A-101",
                details={"started_at": local(MONDAY, "12:00"), "lesson": "第5节 14:20-15:00"},
            ),
        ],
    )


@pytest.fixture
async def september(database_url: str) -> AsyncIterator[Runtime]:
    clock = Clock(LEFT_ON - 60)
    runtime = await runtime_on(database_url, clock)
    try:
        await store_september(runtime)
        yield runtime
    finally:
        await runtime.store.aclose()


async def until(read: Callable[[], Awaitable[Any]], wanted: object) -> None:
    """Wait (30 s at most) until ``read()`` gives ``wanted`` (None: anything but empty)."""
    async with asyncio.timeout(30):
        while True:
            got = await read()
            if got if wanted is None else got == wanted:
                return
            await asyncio.sleep(0.02)


def stored_only(runtime: Runtime) -> Sources:
    """What ``edumon report`` reads: the store, no live state."""
    return Sources.of_config(runtime.config, runtime.store)


async def test_backfill_writes_every_day_and_the_month_reads_the_rollup(
    september: Runtime,
) -> None:
    src = stored_only(september)
    computed = await monthly_availability(src, 2026, 9, OCTOBER)
    assert computed.rolled_up_days == 0
    # From the first run's day (Sunday 30 August) to the day before "now".
    assert await backfill(src, OCTOBER) == (date(2026, 10, 8) - date(2026, 8, 30)).days
    assert await backfill(src, OCTOBER) == 0  # nothing left to do
    rows = await src.store.availability(date(2026, 9, 7), date(2026, 9, 8), "A")
    assert {r.classroom: r.online_seconds / 60 for r in rows} == {
        "A-101": 150,
        "A-102": 40,
        "A-103": 10,
        "A-104": 0,
    }
    read = await monthly_availability(src, 2026, 9, OCTOBER)
    assert read.rolled_up_days == 30
    assert read.totals == computed.totals
    assert [s.totals for s in read.schools] == [s.totals for s in computed.schools]
    # The figures come from the rows: change one and the month follows.
    a101 = next(r for r in rows if r.classroom == "A-101")
    await src.store.upsert_availability([replace(a101, online_seconds=a101.online_seconds + 60)])
    changed = await monthly_availability(src, 2026, 9, OCTOBER)
    assert changed.totals.online_seconds == computed.totals.online_seconds + 60


async def test_days_without_monitoring_are_no_data(september: Runtime) -> None:
    src = stored_only(september)
    month = await monthly_availability(src, 2026, 9, OCTOBER)
    a = next(s for s in month.schools if s.school.code == "A").totals
    # Monitored: 1, 2, 3, 4, 7, 8 September and Wednesday 9 until 09:00 (lessons 1 and half
    # of 2 of 7); the other school days of September are not.
    assert 0 < (a.coverage or 0) < 0.4
    assert a.online_rate == pytest.approx(a.online_seconds / a.monitored_seconds)
    before = await monthly_availability(src, 2026, 8, OCTOBER)
    assert before.totals.online_rate is None
    assert before.totals.coverage in (0.0, None)
    long_before = await monthly_availability(src, 2020, 1, OCTOBER)
    assert long_before.totals.online_rate is None
    assert long_before.totals.power_on_rate is None


async def test_the_monthly_report_counts_compliance_outages_and_worst_rooms(
    september: Runtime,
) -> None:
    report = await monthly_report(stored_only(september), 2026, 9, OCTOBER)
    a = next(s for s in report.schools if s.school.code == "A")
    # Lesson 1 of Monday: 8 buckets of the uplink, 3 polled, all 3 judged, 1 compliant.
    assert (a.uplink.polled_buckets, a.uplink.judged_buckets, a.uplink.compliant_buckets) == (
        3,
        3,
        1,
    )
    assert a.uplink.rate == pytest.approx(1 / 3)
    # A-101's port: 3 polled, the down one not judged, 1 of 2 compliant.
    assert (a.classrooms.polled_buckets, a.classrooms.judged_buckets) == (3, 2)
    assert a.classrooms.rate == 0.5
    kinds = [(o.kind, o.school, o.classroom, o.end is None) for o in a.outages]
    assert kinds == [("school", "A", None, False), ("classroom", "A", "A-101", True)]
    assert a.outages[0].duration(OCTOBER) == 1800
    body = render.monthly_report(
        report,
        lambda t: (
            Sources.of_config(september.config, september.store).zone
            and __import__("datetime").datetime.fromtimestamp(t, tz=None).astimezone()
        ),
    )
    worst = [w.classroom for w in body.worst_classrooms]
    assert worst[:2] == ["A-104", "B-701"] or worst[0] in {"A-104", "B-701"}
    assert body.district.outages == 2


async def test_the_daemon_task_records_its_run_and_rolls_up_finished_days(
    september: Runtime,
) -> None:
    clock = Clock(local(date(2026, 9, 10), "12:00"))
    src = Sources.of_runtime(september)
    task = asyncio.create_task(keep_availability(src, clock=clock, every_seconds=0.01))
    try:
        rolled = {date(2026, 9, 9)}
        await until(lambda: src.store.rolled_up_days(date(2026, 9, 9), date(2026, 9, 10)), rolled)
        clock.now += 120
        await until(lambda: src.store.monitor_runs(clock.now - 1, clock.now + 1), None)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    runs = await src.store.monitor_runs(local(date(2026, 9, 10), "00:00"), clock.now + 10)
    assert runs[-1][0] == local(date(2026, 9, 10), "12:00")
    assert runs[-1][1] >= clock.now  # written once more on the way out
    assert date(2026, 9, 10) not in await src.store.rolled_up_days(
        date(2026, 9, 1), date(2026, 9, 30)
    )  # today is not over


# -- edumon report == the API ---------------------------------------------------------------


def _edumon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edumon", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        check=False,
    )


async def test_the_command_prints_the_apis_numbers(tmp_path: Path) -> None:
    db = tmp_path / "edumon.db"
    config_file = tmp_path / "edumon.toml"
    config_file.write_text(TERMINALS_TOML, encoding="utf-8")
    clock = Clock(LEFT_ON - 60)
    runtime = await runtime_on(f"sqlite:///{db}", clock)
    try:
        await store_september(runtime)
        # The API of a later process (the real clock: September 2026 is over).
        api_clock = Clock(time.time())
        runtime.started_at = api_clock.now
        app = create_app(runtime, clock=api_clock)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://edumon.test"
        ) as client:
            api_json = (await client.get("/api/v1/reports/monthly?month=2026-09")).json()
            api_csv = (await client.get("/api/v1/reports/monthly?month=2026-09&format=csv")).content
            html = await client.get("/api/v1/reports/monthly?month=2026-09&format=html")
            only_a = (await client.get("/api/v1/reports/monthly?month=2026-09&school=A")).json()
            both = await client.get("/api/v1/reports/monthly?month=2026-09&school=A&school=B")
            unknown = await client.get("/api/v1/reports/monthly?month=2026-09&school=Z")
            bad = await client.get("/api/v1/reports/monthly?month=0001-01")
    finally:
        await runtime.store.aclose()
    assert unknown.status_code == 404
    assert bad.status_code == 422
    assert [s["school"] for s in only_a["schools"]] == ["A"]
    assert [s["school"] for s in both.json()["schools"]] == ["A", "B"]
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert "月度网络与终端运行报告" in html.text
    assert "@media print" in html.text
    assert "http://" not in html.text
    assert "https://" not in html.text
    assert api_json["as_of"].endswith("+08:00")

    done = await asyncio.to_thread(
        _edumon,
        "report", "--month", "2026-09", "--config", str(config_file), "--db", str(db),
        "--format", "csv",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The same bytes, but for the open outage's duration (it runs to each one's "now").
    assert steady(done.stdout) == steady(api_csv.decode("utf-8-sig"))
    assert sum("进行中 ongoing" in line for line in done.stdout.splitlines()) == 1
    rows = list(csv.reader(io.StringIO(done.stdout)))
    district = rows[2]
    assert district[0] == "全区 district"
    assert district[5] == render.percent(api_json["district"]["online_rate"])

    text = await asyncio.to_thread(
        _edumon, "report", "--month", "2026-09", "--config", str(config_file), "--db", str(db)
    )
    assert text.returncode == 0, text.stderr
    online = render.shown(api_json["district"]["online_rate"])
    assert f"在线率 online rate:      {online}" in text.stdout

    before = await asyncio.to_thread(
        _edumon, "report", "--month", "2026-08", "--config", str(config_file), "--db", str(db)
    )
    assert before.returncode == 0, before.stderr
    assert "无数据 no data" in before.stdout
    for line in before.stdout.splitlines():
        if "率" in line and "coverage" not in line:
            assert "0.0 %" not in line, line


def steady(text: str) -> list[str]:
    return [line for line in text.replace("\r\n", "\n").splitlines() if "ongoing" not in line]
