"""What the API, /readyz, /metrics and the outage watch say while the collector is blind."""

from __future__ import annotations

from dataclasses import dataclass, field

from edumon.outage_watch import OutageWatch
from edumon.sources.mqtt.ingest import IngestStats
from tests.exporters.test_metrics import find, one
from tests.exporters.test_terminals_api import API, IN_LESSON, District, district

__all__ = ["district"]  # the fixture, shared


@dataclass
class Link:
    """The ingest as the API sees it (its statistics)."""

    stats: IngestStats = field(default_factory=IngestStats)


async def test_blind_terminals_are_unknown_and_open_no_outage(district: District) -> None:
    runtime, clock = district.runtime, district.clock
    assert runtime.terminals is not None
    link = Link(IngestStats(connected=True, connects_total=1))
    runtime.ingest = link
    runtime.collector.expire_terminals(link=link.stats)
    # The broker goes away at 10:30, in a lesson; A-102 (offline since 10:25) and A-101 (online).
    link.stats.connected = False
    runtime.collector.expire_terminals(link=link.stats)
    terminals = {t["terminal"]: t for t in (await district.get(f"{API}/terminals"))["terminals"]}
    assert terminals["A-101"]["status"] == "unknown"
    assert terminals["A-101"]["offline_reason"] is None
    assert terminals["A-102"]["status"] == "unknown"
    # Within the grace /readyz still answers 200; past it, 503 with the reason.
    response = await district.client.get("/readyz")
    assert response.status_code == 200
    watch = OutageWatch(runtime, clock=clock)
    for minutes in range(0, 16):  # far past the 5-minute grace, in lesson time
        clock.now = IN_LESSON + minutes * 60
        runtime.collector.expire_terminals(link=link.stats)
        watch.tick()
    assert "A-102" not in watch.tracker.classrooms
    assert "A-101" not in watch.tracker.classrooms
    response = await district.client.get("/readyz")
    assert response.status_code == 503
    assert "blind" in response.json()["detail"]
    text = district.metrics()
    assert one(text, "edumon_mqtt_blind") == 1
    assert one(text, "edumon_mqtt_blind_seconds") >= 15 * 60
    assert one(text, "edumon_terminal_up", classroom="A-101") == 1  # last known, not offline
    assert find(text, "edumon_classroom_offline_in_lesson", classroom="A-102") == []
    await runtime.collector.flush()
    events = (await district.get(f"{API}/events?device_kind=collector&device=collector"))["events"]
    assert [e["kind"] for e in events] == ["collector_blind"]
    assert events[0]["message"].startswith("采集服务 collector 与 MQTT 服务器断开")
    # The link is back: /readyz is ready again, a fresh heartbeat makes A-101 known.
    link.stats.connected, link.stats.connects_total = True, 2
    runtime.collector.expire_terminals(link=link.stats)
    assert (await district.client.get("/readyz")).status_code == 200
    assert one(district.metrics(), "edumon_mqtt_blind") == 0
