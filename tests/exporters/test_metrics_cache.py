"""The cached /metrics exposition: never stale, only changed entities re-rendered, always valid.

One ``Exposition`` is scraped again and again while the state changes under it, as the app's
does: every change of a switch, a terminal, a school's compliance, the lesson schedule (by the
clock alone) or an outage must show at the next scrape, and a state's old series must go.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from prometheus_client.openmetrics import parser as openmetrics_parser

from edumon.domain.models import DeviceReading, DeviceUnreachable
from edumon.domain.outages import Outage, OutageKind, OutageTracker
from edumon.exporters.api import create_app
from edumon.exporters.metrics import Exposition
from edumon.runtime import Runtime
from tests.exporters.test_metrics import find, one, promtool_check, samples
from tests.fixtures.runtime import (
    T0,
    Agent,
    Clock,
    build_terminals_runtime,
    feed,
    local,
    port,
)

MONDAY = date(2026, 9, 7)


def scrape(exposition: Exposition) -> str:
    """One scrape in the text format, checked to parse (duplicates fail ``samples``)."""
    text = exposition.render().decode()
    samples(text)
    return text


async def test_a_switch_change_shows_at_the_next_scrape(populated_runtime: Runtime) -> None:
    rt = populated_runtime
    exposition = Exposition(rt)
    before = scrape(exposition)
    assert one(before, "edumon_interface_speed_bytes", device="sw-a", interface="Gi0/2") == 12.5e6
    assert one(before, "edumon_interface_up", device="sw-a", interface="Gi0/3") == 0
    # Gi0/2 back at 1000M, Gi0/3 up, traffic on Gi0/1: one poll of sw-a.
    reading = DeviceReading(
        "sw-a",
        T0 + 120,
        7_000,
        "A-ACCESS-1",
        "H3C S5130",
        (
            port(1, "Gi0/1", octets=90_500),
            port(2, "Gi0/2", speed=1000.0, octets=600, errors=4),
            port(3, "Gi0/3"),
            port(24, "Gi0/24", alias="printer"),
        ),
    )
    await rt.collector.submit(reading)
    await rt.collector.drain()
    after = scrape(exposition)
    assert one(after, "edumon_interface_speed_bytes", device="sw-a", interface="Gi0/2") == 125e6
    assert one(after, "edumon_interface_up", device="sw-a", interface="Gi0/3") == 1
    assert one(after, "edumon_interface_in_bytes_total", device="sw-a", interface="Gi0/1") == 90_500
    assert one(after, "edumon_device_last_poll_timestamp_seconds", device="sw-a") == T0 + 120
    # And the same switch unreachable: its ports become unknown, not down.
    await rt.collector.submit(DeviceUnreachable("sw-a", T0 + 180, "timeout"))
    await rt.collector.drain()
    gone = scrape(exposition)
    assert one(gone, "edumon_device_up", device="sw-a") == 0
    assert find(gone, "edumon_interface_up", device="sw-a") == []
    assert one(gone, "edumon_interface_info", device="sw-a", interface="Gi0/1") == 1


async def test_only_what_changed_is_rendered_again(populated_runtime: Runtime) -> None:
    rt = populated_runtime
    exposition = Exposition(rt)
    first = scrape(exposition)
    switches, classrooms = exposition.switches.rendered, exposition.classrooms.rendered
    assert switches == len(rt.state.devices)
    assert scrape(exposition) == first  # nothing changed: the same text, nothing rendered
    assert (exposition.switches.rendered, exposition.classrooms.rendered) == (
        switches,
        classrooms,
    )
    await rt.collector.submit(DeviceUnreachable("sw-c", T0 + 120, "timeout"))
    await rt.collector.drain()
    scrape(exposition)
    assert exposition.switches.rendered == switches + 1  # sw-c alone


async def test_a_school_verdict_replaces_its_series(populated_runtime: Runtime) -> None:
    rt = populated_runtime
    exposition = Exposition(rt)
    before = scrape(exposition)
    assert one(before, "edumon_check_status", school="A", check="uplink_speed") == 1
    assert find(before, "edumon_check_status", school="A", check="uplink_speed", verdict="pass")
    assert one(before, "edumon_school_connectivity", school="A", state="ok") == 1
    # School A's uplink drops to 100M, then goes down.
    slow = DeviceReading(
        "core",
        T0 + 120,
        50_012_000,
        "CORE-S7706",
        "Huawei S7706",
        (port(1, "ge-0/0/1", speed=100.0), port(2, "ge-0/0/2", speed=100.0)),
    )
    await rt.collector.submit(slow)
    await rt.collector.drain()
    text = scrape(exposition)
    assert find(text, "edumon_check_status", school="A", check="uplink_speed", verdict="fail")
    assert find(text, "edumon_check_status", school="A", check="uplink_speed", verdict="pass") == []
    assert one(text, "edumon_school_compliance", school="A", verdict="fail") == 1
    assert find(text, "edumon_school_compliance", school="A", verdict="pass") == []
    down = DeviceReading(
        "core",
        T0 + 180,
        50_018_000,
        "CORE-S7706",
        "Huawei S7706",
        (port(1, "ge-0/0/1", up=False), port(2, "ge-0/0/2", speed=100.0)),
    )
    await rt.collector.submit(down)
    await rt.collector.drain()
    text = scrape(exposition)
    assert one(text, "edumon_school_connectivity", school="A", state="uplink_down") == 1
    assert find(text, "edumon_school_connectivity", school="A", state="ok") == []
    assert one(text, "edumon_check_status", school="A", check="uplink_up", verdict="fail") == 1


@pytest.fixture
async def school_day(tmp_path: Path) -> AsyncIterator[tuple[Runtime, Clock]]:
    clock = Clock(local(MONDAY, "10:30"))  # in the third lesson
    runtime = await build_terminals_runtime(tmp_path / "t.db", clock, started_at=clock.now)
    try:
        yield runtime, clock
    finally:
        await runtime.store.aclose()


async def test_a_terminal_reason_is_one_series_that_follows_it(
    school_day: tuple[Runtime, Clock],
) -> None:
    rt, clock = school_day
    exposition = Exposition(rt, clock=clock)
    agent = Agent("jy", "A", "A-101")
    text = scrape(exposition)
    assert one(text, "edumon_terminal_offline_reason", classroom="A-101") == 1
    assert find(text, "edumon_terminal_offline_reason", classroom="A-101", reason="never_seen")

    await feed(rt, [(agent.birth(), clock.now), (agent.heartbeat(uptime=100.0), clock.now + 1)])
    text = scrape(exposition)
    assert one(text, "edumon_terminal_up", classroom="A-101") == 1
    assert find(text, "edumon_terminal_offline_reason", classroom="A-101") == []
    assert one(text, "edumon_terminal_uptime_seconds", classroom="A-101") == 100
    assert one(text, "edumon_classroom_offline_in_lesson", classroom="A-101") == 0

    await feed(rt, [(agent.heartbeat(uptime=130.0), clock.now + 31)])
    text = scrape(exposition)
    assert one(text, "edumon_terminal_uptime_seconds", classroom="A-101") == 130
    assert one(text, "edumon_terminal_last_seen_timestamp_seconds", classroom="A-101") == (
        clock.now + 31
    )

    await feed(rt, [(agent.will(), clock.now + 40)])
    text = scrape(exposition)
    assert one(text, "edumon_terminal_up", classroom="A-101") == 0
    assert one(text, "edumon_terminal_offline_reason", classroom="A-101") == 1
    assert find(text, "edumon_terminal_offline_reason", classroom="A-101", reason="will")
    assert find(text, "edumon_terminal_uptime_seconds", classroom="A-101") == []
    assert one(text, "edumon_classroom_offline_in_lesson", classroom="A-101") == 1

    await feed(rt, [(agent.birth(), clock.now + 50), (agent.shutdown(), clock.now + 60)])
    text = scrape(exposition)
    assert one(text, "edumon_terminal_offline_reason", classroom="A-101") == 1
    assert find(text, "edumon_terminal_offline_reason", classroom="A-101", reason="shutdown")
    assert find(text, "edumon_terminal_offline_reason", classroom="A-101", reason="will") == []


async def test_the_lesson_now_follows_the_clock_alone(school_day: tuple[Runtime, Clock]) -> None:
    rt, clock = school_day
    exposition = Exposition(rt, clock=clock)
    text = scrape(exposition)
    assert one(text, "edumon_classroom_expected_online", classroom="A-102") == 1
    assert one(text, "edumon_classroom_offline_in_lesson", classroom="A-102") == 1
    clock.now = local(MONDAY, "21:00")  # nothing else changes
    text = scrape(exposition)
    assert one(text, "edumon_classroom_expected_online", classroom="A-102") == 0
    assert one(text, "edumon_classroom_offline_in_lesson", classroom="A-102") == 0
    clock.now = local(date(2026, 9, 8), "10:30")  # Tuesday, the same lesson
    text = scrape(exposition)
    assert one(text, "edumon_classroom_expected_online", classroom="A-102") == 1


async def test_outages_show_and_go(school_day: tuple[Runtime, Clock]) -> None:
    rt, clock = school_day
    exposition = Exposition(rt, clock=clock)
    assert find(scrape(exposition), "edumon_classroom_outage") == []  # no tracker: none
    # The tracker is a new part of the runtime: the exposition starts afresh with it.
    rt.outages = tracker = OutageTracker()
    text = scrape(exposition)
    assert one(text, "edumon_classroom_outage", classroom="A-101") == 0
    assert one(text, "edumon_school_outage", school="A") == 0
    tracker.classrooms["A-101"] = Outage(
        OutageKind.CLASSROOM, "A", clock.now - 300, clock.now, classroom="A-101"
    )
    tracker.schools["B"] = Outage(OutageKind.SCHOOL, "B", clock.now - 5, clock.now)
    text = scrape(exposition)
    assert one(text, "edumon_classroom_outage", classroom="A-101") == 1
    assert one(text, "edumon_school_outage", school="B") == 1
    assert one(text, "edumon_school_outage_start_timestamp_seconds", school="B") == clock.now - 5
    del tracker.classrooms["A-101"], tracker.schools["B"]
    text = scrape(exposition)
    assert one(text, "edumon_classroom_outage", classroom="A-101") == 0
    assert find(text, "edumon_school_outage_start_timestamp_seconds", school="B") == []


async def test_both_formats_parse_with_each_family_once(populated_runtime: Runtime) -> None:
    exposition = Exposition(populated_runtime)
    om = exposition.render(openmetrics=True).decode()
    assert om.endswith("# EOF\n")
    families = [f.name for f in openmetrics_parser.text_string_to_metric_families(om)]
    assert len(families) == len(set(families))
    text = scrape(exposition)
    helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")]
    assert len(helps) == len(set(helps))
    # The same series in both formats.
    om_series = {
        (s.name, frozenset(s.labels.items()))
        for f in openmetrics_parser.text_string_to_metric_families(om)
        for s in f.samples
    }
    assert om_series == set(samples(text))


async def test_promtool_finds_nothing_in_the_streamed_text(populated_runtime: Runtime) -> None:
    # The text as /metrics sends it (not re-rendered by prometheus_client), linted for real.
    text = Exposition(populated_runtime).render().decode()
    code, report = await promtool_check(text)
    assert (code, report.strip()) == (0, "")


async def test_the_app_streams_what_prometheus_asks_for(populated_runtime: Runtime) -> None:
    app = create_app(populated_runtime)
    accept = (
        "application/openmetrics-text;version=1.0.0;q=0.5,"
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.1"
    )  # what Prometheus sends
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://edumon.test") as client:
        om = await client.get("/metrics", headers={"accept": accept})
        text = await client.get("/metrics")
    assert om.status_code == text.status_code == 200
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")
    assert list(openmetrics_parser.text_string_to_metric_families(om.text))
    assert text.headers["content-type"].startswith("text/plain")
    assert one(text.text, "edumon_device_up", device="sw-a") == 1


async def test_a_background_refresh_is_served_while_current_and_never_older(
    populated_runtime: Runtime,
) -> None:
    rt = populated_runtime
    exposition = Exposition(rt)
    for _ in exposition.refresh():  # as keep_fresh does, between slices
        pass
    assert exposition.refreshed_at is not None
    rendered = exposition.switches.rendered
    first = scrape(exposition)
    assert exposition.switches.rendered == rendered  # served as refreshed: joined, not rendered
    assert one(first, "edumon_device_up", device="sw-a") == 1
    await rt.collector.submit(DeviceUnreachable("sw-a", T0 + 180, "timeout"))
    await rt.collector.drain()
    # Within max_age the scrape serves the last refresh; the next refresh brings the change.
    assert one(scrape(exposition), "edumon_device_up", device="sw-a") == 1
    for _ in exposition.refresh():
        pass
    assert one(scrape(exposition), "edumon_device_up", device="sw-a") == 0
    # A refresh older than max_age (the background task stalled or stopped) is not trusted:
    # the scrape refreshes before it sends.
    await rt.collector.submit(reading_of_sw_a(T0 + 240))
    await rt.collector.drain()
    exposition.refreshed_at = exposition.refreshed_at - exposition.max_age - 1  # type: ignore[operator]
    assert one(scrape(exposition), "edumon_device_up", device="sw-a") == 1


def reading_of_sw_a(at: float) -> DeviceReading:
    return DeviceReading("sw-a", at, 7_000, "A-ACCESS-1", "H3C S5130", (port(1, "Gi0/1"),))
