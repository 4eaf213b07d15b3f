"""Classroom terminals in the API and /metrics: status, offline reasons, the lesson schedule.

The district (tests.fixtures.runtime.TERMINALS_TOML) on Monday 2026-09-07, a school day; at
10:30 the primary school is in its third lesson (10:20-11:00) and the middle school in its third
(10:10-10:55); the kindergarten has no lessons. Messages go through the collector as the MQTT
ingest hands them over:

- A-101 online (1000M); A-102 online, then killed at 10:25 (its Last Will); A-103 (terminal id
  ops-a103, no switch port) online at 100M; A-104 never heard from;
- B-701 silent since 07:50 (heartbeat timeout), and school B's uplink is down;
- K-1 shut down cleanly at 10:26;
- two terminals that are in no classroom.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import httpx
import pytest
from prometheus_client import generate_latest

from edumon.domain.alerts import Alert
from edumon.domain.models import DeviceReading
from edumon.exporters.api import create_app
from edumon.exporters.metrics import create_registry
from edumon.outage_watch import OutageWatch, alerts_of
from edumon.runtime import Runtime
from edumon.wire import REASONS as WIRE_REASONS
from edumon.wire import terminal_topic
from tests.exporters.test_metrics import find, one, promtool_check
from tests.fixtures.mqtt import Endpoint, IngestFactory, eventually, ingest_settings, wire_message
from tests.fixtures.runtime import (
    ALL_SECRETS,
    MQTT_PASSWORD,
    Agent,
    Clock,
    build_terminals_runtime,
    feed,
    local,
    port,
)

API = "/api/v1"
MONDAY = date(2026, 9, 7)
IN_LESSON = local(MONDAY, "10:30")
NIGHT = local(MONDAY, "21:00")


@dataclass
class District:
    runtime: Runtime
    clock: Clock
    client: httpx.AsyncClient

    def metrics(self) -> str:
        return generate_latest(create_registry(self.runtime, clock=self.clock)).decode()

    async def get(self, url: str, status: int = 200) -> Any:
        response = await self.client.get(url)
        assert response.status_code == status, response.text
        return response.json()


def core_poll(at: float, *, b_uplink_up: bool) -> DeviceReading:
    return DeviceReading(
        "core",
        at,
        90_000_000,
        "CORE",
        "Huawei S7706",
        (
            port(1, "ge-0/0/1"),
            port(2, "ge-0/0/2", up=b_uplink_up),
            port(3, "ge-0/0/3"),
        ),
    )


@pytest.fixture
async def district(tmp_path: Path) -> AsyncIterator[District]:
    clock = Clock(local(MONDAY, "07:00"))
    runtime = await build_terminals_runtime(tmp_path / "t.db", clock, started_at=clock.now)
    a101, a102 = Agent("jy", "A", "A-101"), Agent("jy", "A", "A-102", ip="10.20.1.102")
    a103, b701 = Agent("jy", "A", "ops-a103"), Agent("jy", "B", "B-701")
    k1 = Agent("jy", "K", "K-1")
    morning = local(MONDAY, "07:50")
    late = local(MONDAY, "10:29")
    birth101 = a101.birth()
    hb101 = a101.heartbeat()
    await feed(
        runtime,
        [
            (birth101, morning),
            (hb101, morning + 1),
            (a102.birth(), morning),
            (a102.heartbeat(), morning + 1),
            (a103.birth(), morning),
            (a103.heartbeat(speed=100), morning + 1),
            (b701.birth(), morning),
            (b701.heartbeat(), morning + 1),
            (k1.birth(), morning),
            (a102.will(), local(MONDAY, "10:25")),
            (k1.shutdown(), local(MONDAY, "10:26")),
            (a101.heartbeat(), late),
            (hb101, late + 1),  # a redelivery: ignored as a duplicate
            (a103.heartbeat(speed=100), late),
            (Agent("jy", "A", "A-999", ip="10.20.1.199").heartbeat(), late),
            (Agent("jy", "Z9", "x1").heartbeat(), late),
        ],
    )
    await runtime.collector.submit(core_poll(late, b_uplink_up=False))
    await runtime.collector.drain()
    clock.now = IN_LESSON
    runtime.collector.expire_terminals()  # B-701 has been silent since 07:50
    await runtime.collector.drain()
    app = create_app(runtime, clock=clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://edumon.test"
    ) as client:
        try:
            yield District(runtime, clock, client)
        finally:
            await runtime.store.aclose()


def by(items: list[dict[str, Any]], key: str, value: object) -> dict[str, Any]:
    found = [item for item in items if item[key] == value]
    assert len(found) == 1, f"{key}={value!r} in {items}"
    return found[0]


def iso(seconds: float) -> str:
    """As the API writes a time: Beijing time, the district's zone, with its offset."""
    return datetime.fromtimestamp(seconds, ZoneInfo("Asia/Shanghai")).isoformat()


async def test_terminals_during_a_lesson(district: District) -> None:
    body = await district.get(f"{API}/terminals")
    rows = body["terminals"]
    assert [r["classroom"] for r in rows] == ["A-101", "A-102", "A-103", "A-104", "B-701", "K-1"]
    assert body["counts"] == {
        "total": 6,
        "online": 2,
        "offline": 3,
        "unknown": 1,
        "offline_in_lesson": 2,
    }

    a101 = by(rows, "classroom", "A-101")
    assert a101["status"] == "online"
    assert a101["offline_reason"] is None
    assert a101["since"] == iso(local(MONDAY, "07:50"))
    assert a101["last_seen"] == iso(local(MONDAY, "10:29"))
    assert (a101["link_speed_mbps"], a101["duplex"], a101["nic"]) == (1000, "full", "以太网")
    assert (a101["ip"], a101["mac"], a101["agent_version"]) == (
        "10.20.1.101",
        "00:1a:2b:3c:4d:5e",
        "1.2.0",
    )
    assert a101["uptime_seconds"] == 3600
    assert a101["heartbeats"] == 2
    assert a101["expected_online"] is True
    assert a101["lesson"] == "第3节 10:20-11:00"
    assert a101["offline_in_lesson"] is False
    assert (a101["school_name"], a101["classroom_name"]) == ("城关第一小学", "一年级(1)班")

    a102 = by(rows, "classroom", "A-102")
    assert (a102["status"], a102["offline_reason"]) == ("offline", "will")
    assert a102["since"] == iso(local(MONDAY, "10:25"))
    assert a102["link_speed_mbps"] is None  # not a measurement while offline
    assert a102["last_link_speed_mbps"] == 1000
    assert a102["offline_in_lesson"] is True

    assert by(rows, "classroom", "A-103")["terminal"] == "ops-a103"

    a104 = by(rows, "classroom", "A-104")
    assert (a104["status"], a104["offline_reason"], a104["since"]) == (
        "offline",
        "never_seen",
        None,
    )
    assert a104["offline_in_lesson"] is True

    # School B's uplink is down: its silent terminal is unknown, not offline, and not alerting.
    b701 = by(rows, "classroom", "B-701")
    assert (b701["status"], b701["offline_reason"]) == ("unknown", "timeout")
    assert b701["school_uplink_down"] is True
    assert b701["since"] == iso(local(MONDAY, "07:50") + 1)  # its last sign of life
    assert b701["expected_online"] is True
    assert b701["lesson"] == "第3节 10:10-10:55"
    assert b701["offline_in_lesson"] is False

    k1 = by(rows, "classroom", "K-1")
    assert (k1["status"], k1["offline_reason"]) == ("offline", "shutdown")
    assert (k1["expected_online"], k1["lesson"], k1["offline_in_lesson"]) == (False, None, False)


async def test_terminals_filtered(district: District) -> None:
    async def classrooms(query: str) -> list[str]:
        body = await district.get(f"{API}/terminals?{query}")
        return [r["classroom"] for r in body["terminals"]]

    assert await classrooms("status=online") == ["A-101", "A-103"]
    assert await classrooms("status=offline") == ["A-102", "A-104", "K-1"]
    assert await classrooms("status=unknown") == ["B-701"]
    assert await classrooms("school=A&status=offline") == ["A-102", "A-104"]
    assert await classrooms("school=K") == ["K-1"]
    await district.get(f"{API}/terminals?school=NOPE", status=404)
    await district.get(f"{API}/terminals?status=asleep", status=422)
    # Several values of one filter: any of them.
    assert await classrooms("status=online&status=unknown") == ["A-101", "A-103", "B-701"]
    assert await classrooms("school=B&school=K") == ["B-701", "K-1"]
    # A page at a time, with the total of every match on each page.
    page = await district.get(f"{API}/terminals?status=offline&status=online&limit=2&offset=2")
    assert [r["classroom"] for r in page["terminals"]] == ["A-103", "A-104"]
    assert page["page"] == {"limit": 2, "offset": 2, "total": 5, "next_offset": 4}


async def test_summary_counts_terminals(district: District) -> None:
    body = await district.get(f"{API}/summary")
    # online; offline in a lesson; K-1 shut down after its lessons
    # (a kindergarten: none now); B-701 behind B's down uplink.
    assert body["terminals"] == {
        "total": 6,
        "online": 2,
        "offline_in_lesson": 2,
        "off_schedule": 1,
        "unknown": 1,
    }
    school_b = await district.get(f"{API}/summary?school=B")
    assert school_b["terminals"] == {
        "total": 1,
        "online": 0,
        "offline_in_lesson": 0,
        "off_schedule": 0,
        "unknown": 1,
    }
    district.clock.now = NIGHT
    night = (await district.get(f"{API}/summary"))["terminals"]
    # No lesson at night: no longer count as in a lesson; B-701 stays unknown.
    assert (night["offline_in_lesson"], night["off_schedule"], night["unknown"]) == (0, 3, 1)


async def test_terminal_events_are_about_terminals(district: District) -> None:
    """Terminal events were reported under ``switch``, and ``device=`` matched switches and
    terminals alike; a terminal's events are now asked for as a terminal's."""
    await district.runtime.collector.flush()
    body = await district.get(f"{API}/events?device_kind=terminal&device=A-102")
    kinds = [e["kind"] for e in body["events"]]
    assert kinds == ["terminal_offline", "terminal_online"]
    offline = body["events"][0]
    assert (offline["device_kind"], offline["device"], offline["device_name"]) == (
        "terminal",
        "A-102",
        "A-102",
    )
    assert (offline["school_name"], offline["classroom_name"]) == ("城关第一小学", "一年级(2)班")
    assert offline["message"] == (
        "城关第一小学 一年级(2)班（A-102） 终端 A-102 离线：连接中断或代理被终止（遗嘱消息）"
    )
    assert offline["message_en"].startswith("terminal A-102 is offline: its connection was lost")
    assert offline["at"] == iso(local(MONDAY, "10:25"))
    assert body["page"]["total"] == 2
    # The id is a terminal's: as a switch's it is unknown.
    await district.get(f"{API}/events?device=A-102", status=404)
    every = await district.get(f"{API}/events?device_kind=terminal&limit=1000")
    assert {e["device_kind"] for e in every["events"]} == {"terminal"}


async def test_offline_classrooms_in_lesson_and_at_night(district: District) -> None:
    body = await district.get(f"{API}/classrooms/offline")
    assert body["schedule_known"] is True
    in_lesson = body["in_lesson"]
    assert [c["classroom"] for c in in_lesson] == ["A-102", "A-104", "B-701"]
    killed = by(in_lesson, "classroom", "A-102")
    assert (killed["reason"], killed["status"], killed["alerting"]) == ("will", "offline", True)
    assert killed["lesson"] == "第3节 10:20-11:00"
    assert killed["since"] == iso(local(MONDAY, "10:25"))
    assert by(in_lesson, "classroom", "A-104")["reason"] == "never_seen"
    parent = by(in_lesson, "classroom", "B-701")
    assert (parent["status"], parent["reason"]) == ("unknown", "timeout")
    assert (parent["school_uplink_down"], parent["alerting"]) == (True, False)
    off = body["off_schedule"]
    assert [c["classroom"] for c in off] == ["K-1"]
    assert (off[0]["reason"], off[0]["alerting"], off[0]["lesson"]) == ("shutdown", False, None)

    school_a = await district.get(f"{API}/classrooms/offline?school=A")
    assert [c["classroom"] for c in school_a["in_lesson"]] == ["A-102", "A-104"]
    assert school_a["off_schedule"] == []

    # At night nothing is scheduled: the same terminals are off, and none alerts.
    district.clock.now = NIGHT
    night = await district.get(f"{API}/classrooms/offline")
    assert night["in_lesson"] == []
    assert [c["classroom"] for c in night["off_schedule"]] == ["A-102", "A-104", "B-701", "K-1"]
    assert not any(c["alerting"] for c in night["off_schedule"])


async def test_the_uplink_coming_back_makes_the_silent_terminal_offline(
    district: District,
) -> None:
    await district.runtime.collector.submit(core_poll(IN_LESSON, b_uplink_up=True))
    await district.runtime.collector.drain()
    body = await district.get(f"{API}/classrooms/offline?school=B")
    (b701,) = body["in_lesson"]
    assert (b701["status"], b701["school_uplink_down"], b701["alerting"]) == (
        "offline",
        False,
        True,
    )


async def test_unknown_terminals(district: District) -> None:
    body = await district.get(f"{API}/terminals/unknown")
    assert body["messages_total"] == 2
    assert body["evicted"] == 0
    assert body["limit"] >= 2
    stray = by(body["terminals"], "terminal", "A-999")
    assert (stray["district"], stray["school"], stray["school_known"]) == ("jy", "A", True)
    assert (stray["ip"], stray["messages"]) == ("10.20.1.199", 1)
    assert stray["first_seen"] == iso(local(MONDAY, "10:29"))
    other = by(body["terminals"], "terminal", "x1")
    assert (other["school"], other["school_known"]) == ("Z9", False)


async def test_school_detail_shows_each_classrooms_terminal(district: District) -> None:
    a = await district.get(f"{API}/schools/A")
    rooms = {r["id"]: r["terminal"] for r in a["classrooms"]}
    assert rooms["A-101"]["status"] == "online"
    assert rooms["A-101"]["link_speed_mbps"] == 1000
    assert rooms["A-101"]["expected_online"] is True
    assert (rooms["A-102"]["status"], rooms["A-102"]["offline_reason"]) == ("offline", "will")
    assert rooms["A-102"]["offline_in_lesson"] is True
    assert rooms["A-103"]["terminal"] == "ops-a103"
    assert rooms["A-104"]["offline_reason"] == "never_seen"
    b = await district.get(f"{API}/schools/B")
    assert b["classrooms"][0]["terminal"]["status"] == "unknown"


async def test_a_classroom_without_a_port_is_judged_by_its_terminals_nic(
    district: District,
) -> None:
    checks = (await district.get(f"{API}/compliance?school=A&check=classroom_speed"))["results"]
    a103 = by(checks, "classroom", "A-103")
    assert a103["verdict"] == "fail"
    assert a103["speed_mbps"] == 100
    assert "由班班通终端上报" in a103["reason"]
    assert "reported by the classroom terminal" in a103["reason_en"]
    text = district.metrics()
    status = {"check": "classroom_speed", "classroom": "A-103"}
    assert one(text, "edumon_check_status", **status, verdict="fail") == 1
    assert one(text, "edumon_check_speed_bytes", **status) == 100e6 / 8


async def test_metrics_follow_the_schedule(district: District) -> None:
    text = district.metrics()
    a101 = {"school": "A", "classroom": "A-101", "terminal": "A-101"}
    a102 = {"school": "A", "classroom": "A-102", "terminal": "A-102"}
    assert one(text, "edumon_terminal_up", **a101) == 1
    assert one(text, "edumon_terminal_up", **a102) == 0
    assert one(text, "edumon_terminal_up", classroom="A-104", terminal="A-104") == 0
    assert one(text, "edumon_terminal_up", classroom="A-103", terminal="ops-a103") == 1
    assert one(text, "edumon_classroom_expected_online", school="A", classroom="A-101") == 1
    assert one(text, "edumon_classroom_expected_online", school="B", classroom="B-701") == 1
    assert one(text, "edumon_classroom_expected_online", school="K", classroom="K-1") == 0
    assert one(text, "edumon_classroom_offline_in_lesson", classroom="A-102") == 1
    assert one(text, "edumon_classroom_offline_in_lesson", classroom="A-104") == 1
    assert one(text, "edumon_classroom_offline_in_lesson", classroom="A-101") == 0
    assert one(text, "edumon_classroom_offline_in_lesson", classroom="K-1") == 0
    # Behind a dead uplink: unknown, so no series (the school alert covers it).
    assert find(text, "edumon_classroom_offline_in_lesson", classroom="B-701") == []
    assert one(text, "edumon_school_connectivity", school="B", state="uplink_down") == 1

    reasons = {
        labels: value
        for labels in ("will", "shutdown", "timeout", "never_seen")
        for value in find(text, "edumon_terminal_offline_reason", **a102, reason=labels)
    }
    # One series per current reason (the series budget), none while online.
    assert reasons == {"will": 1}
    assert find(text, "edumon_terminal_offline_reason", **a101) == []
    assert one(text, "edumon_terminal_offline_reason", classroom="K-1", reason="shutdown") == 1
    assert one(text, "edumon_terminal_offline_reason", classroom="A-104", reason="never_seen") == 1

    assert one(text, "edumon_terminal_last_seen_timestamp_seconds", **a101) == local(
        MONDAY, "10:29"
    )
    assert one(text, "edumon_terminal_last_change_timestamp_seconds", **a102) == local(
        MONDAY, "10:25"
    )
    assert one(text, "edumon_terminal_uptime_seconds", **a101) == 3600
    assert find(text, "edumon_terminal_uptime_seconds", **a102) == []
    assert one(text, "edumon_terminal_link_speed_bytes", **a101) == 1000e6 / 8
    assert find(text, "edumon_terminal_link_speed_bytes", **a102) == []
    assert (
        one(
            text,
            "edumon_terminal_info",
            **a101,
            agent_version="1.2.0",
            nic="以太网",
            duplex="full",
        )
        == 1
    )
    # Addresses change (DHCP, a replaced NIC): they are in the API, not in label values.
    assert "10.20.1.101" not in text
    assert "00:1a:2b:3c:4d:5e" not in text
    assert one(text, "edumon_terminals_unknown") == 2
    assert one(text, "edumon_terminal_messages_ignored_total", reason="unknown_terminal") == 2
    assert one(text, "edumon_terminal_messages_ignored_total", reason="duplicate") == 1
    assert one(text, "edumon_terminal_messages_ignored_total", reason="stale_offline") == 0
    assert one(text, "edumon_collector_terminal_messages_total") == 16
    assert one(text, "edumon_collector_events_total", kind="terminal_offline") == 3
    assert one(text, "edumon_calendar_fallback") == 0

    # At night the schedule expects nobody; the terminals' own state is unchanged.
    district.clock.now = NIGHT
    night = district.metrics()
    assert one(night, "edumon_classroom_expected_online", school="A", classroom="A-101") == 0
    assert one(night, "edumon_classroom_offline_in_lesson", classroom="A-102") == 0
    assert one(night, "edumon_terminal_up", **a101) == 1

    code, report = await promtool_check(text)
    assert (code, report.strip()) == (0, "")


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (local(date(2026, 10, 10), "10:30"), 1),  # 调休: a Saturday with lessons
        (local(date(2026, 10, 1), "10:30"), 0),  # 国庆节, a Thursday
        (local(date(2026, 9, 12), "10:30"), 0),  # an ordinary Saturday
        (local(date(2027, 2, 1), "10:30"), 0),  # 寒假
        (local(MONDAY, "12:30"), 0),  # lunch break
        (local(MONDAY, "08:19"), 0),  # just before the first lesson
        (local(MONDAY, "08:20"), 1),
    ],
)
async def test_expected_online_follows_the_calendar(
    district: District, when: float, expected: int
) -> None:
    district.clock.now = when
    text = district.metrics()
    assert one(text, "edumon_classroom_expected_online", classroom="A-101") == expected
    body = await district.get(f"{API}/terminals?school=A")
    assert by(body["terminals"], "classroom", "A-101")["expected_online"] is bool(expected)


async def test_calendar_fallback_is_exposed_and_logged_once_a_day(
    district: District, caplog: pytest.LogCaptureFixture
) -> None:
    registry = create_registry(district.runtime, clock=district.clock)
    district.clock.now = local(date(2099, 9, 7), "10:30")  # past every arrangement
    missing = "2099年的放假安排"
    with caplog.at_level(logging.WARNING, logger="edumon.workcalendar"):
        first = generate_latest(registry).decode()
        second = generate_latest(registry).decode()
        assert one(first, "edumon_calendar_fallback") == 1
        assert one(second, "edumon_calendar_fallback") == 1
        assert one(first, "edumon_calendar_coverage_warning") == 1
        # The statutory fallback still makes an ordinary Monday a school day.
        assert one(first, "edumon_classroom_expected_online", classroom="A-101") == 1
        assert sum(missing in r.getMessage() for r in caplog.records) == 1
        district.clock.now = local(date(2099, 9, 8), "10:30")
        generate_latest(registry)
        assert sum(missing in r.getMessage() for r in caplog.records) == 2
    district.clock.now = IN_LESSON
    assert one(generate_latest(registry).decode(), "edumon_calendar_fallback") == 0


async def test_openapi_documents_the_terminal_endpoints(district: District) -> None:
    spec = await district.get("/openapi.json")
    for path, schema in (
        ("/terminals", "TerminalList"),
        ("/terminals/unknown", "UnknownTerminalList"),
        ("/classrooms/offline", "OfflineClassrooms"),
    ):
        ok = spec["paths"][f"{API}{path}"]["get"]["responses"]["200"]
        assert ok["content"]["application/json"]["schema"]["$ref"].endswith(f"/{schema}")
    terminal = spec["components"]["schemas"]["Terminal"]["properties"]
    assert {"status", "offline_reason", "expected_online", "offline_in_lesson"} <= set(terminal)


async def test_no_secret_in_terminal_responses(district: District) -> None:
    password = district.runtime.config.mqtt.password
    assert password is not None
    assert password.get_secret_value() == MQTT_PASSWORD  # held, so a leak would show
    urls = [
        "/metrics",
        "/openapi.json",
        f"{API}/terminals",
        f"{API}/terminals/unknown",
        f"{API}/classrooms/offline",
        f"{API}/schools/A",
        f"{API}/terminals?school=NOPE",
    ]
    for url in urls:
        response = await district.client.get(url)
        for secret in ALL_SECRETS:
            assert secret not in response.text, url


async def test_mqtt_ingest_health_from_a_real_broker(
    tmp_path: Path, mosquitto: Endpoint, mqtt_district: str, start_ingest: IngestFactory
) -> None:
    clock = Clock(IN_LESSON)
    runtime = await build_terminals_runtime(
        tmp_path / "mqtt.db", clock, started_at=clock.now, district=mqtt_district
    )
    try:
        ingest = await start_ingest(
            ingest_settings(mosquitto, mqtt_district), runtime.collector.submit_terminal
        )
        runtime.ingest = ingest
        registry = create_registry(runtime, clock=clock)
        before = generate_latest(registry).decode()
        assert one(before, "edumon_mqtt_connected") == 1
        assert one(before, "edumon_mqtt_received_total") == 0
        assert one(before, "edumon_mqtt_rejected_total", reason="bad_json") == 0  # pre-filled

        async with aiomqtt.Client(mosquitto.host, mosquitto.port, timeout=10) as client:
            topic, payload = wire_message(Agent(mqtt_district, "A", "A-101").heartbeat())
            await client.publish(topic, payload, qos=1)
            bad = terminal_topic(mqtt_district, "A", "A-102", "heartbeat")
            await client.publish(bad, b"{not json", qos=1)
        await eventually(lambda: ingest.stats.received_total == 2, "both messages received")
        await runtime.collector.drain()

        text = generate_latest(registry).decode()
        assert one(text, "edumon_mqtt_received_total") == 2
        assert one(text, "edumon_mqtt_accepted_total", kind="heartbeat") == 1
        assert one(text, "edumon_mqtt_accepted_total", kind="status") == 0
        assert one(text, "edumon_mqtt_rejected_total", reason="bad_json") == 1
        assert one(text, "edumon_mqtt_rejected_total", reason="too_large") == 0
        assert one(text, "edumon_mqtt_reconnects_total") == 0
        assert one(text, "edumon_mqtt_last_message_timestamp_seconds") > 0
        assert one(text, "edumon_terminal_up", classroom="A-101") == 1
        assert one(text, "edumon_terminal_up", classroom="A-102") == 0
        assert one(text, "edumon_classroom_offline_in_lesson", classroom="A-102") == 1
        code, report = await promtool_check(text)
        assert (code, report.strip()) == (0, "")
    finally:
        await runtime.store.aclose()


def test_mqtt_families_are_pre_filled_before_any_traffic(populated_runtime: Runtime) -> None:
    # The fixture's ingest never connected and rejected one malformed message.
    text = generate_latest(create_registry(populated_runtime)).decode()
    assert one(text, "edumon_mqtt_connected") == 0
    assert one(text, "edumon_mqtt_received_total") == 1
    assert one(text, "edumon_mqtt_rejected_total", reason="bad_json") == 1
    for reason in WIRE_REASONS:
        assert len(find(text, "edumon_mqtt_rejected_total", reason=reason)) == 1, reason
    assert one(text, "edumon_terminal_messages_ignored_total", reason="old_session") == 0


async def test_outages_one_per_failure_with_names(district: District) -> None:
    runtime, clock = district.runtime, district.clock
    watch = OutageWatch(runtime, clock=clock)
    for minutes in range(0, 16):  # 10:30 .. 10:45, a tick a minute
        clock.now = IN_LESSON + minutes * 60
        watch.tick()
    body = await district.get(f"{API}/outages")
    by_kind = {(o["kind"], o["classroom"] or o["school"]): o for o in body["outages"]}
    school = by_kind[("school", "B")]
    assert (school["school_name"], school["cause"]) == ("城关中学", "uplink_down")
    # Behind the school's failure its classroom is unknown: no classroom outage for B-701.
    assert not any(o["school"] == "B" and o["kind"] == "classroom" for o in body["outages"])
    rooms = {o["classroom"] for o in body["outages"] if o["kind"] == "classroom"}
    assert rooms <= {"A-102", "A-104"}
    schools = {row["code"]: row for row in (await district.get(f"{API}/schools"))["schools"]}
    assert schools["B"]["connectivity"]["state"] == "uplink_down"
    assert schools["B"]["connectivity"]["reason"].startswith("学校上联端口")
    assert schools["B"]["connectivity"]["reason"] == "学校上联端口 core ge-0/0/2 已断开（down）"
    assert schools["B"]["connectivity"]["reason_en"] == "uplink ge-0/0/2 on core is down"
    assert schools["B"]["connectivity"]["outage_since"] is not None
    assert schools["A"]["connectivity"]["state"] == "ok"
    summary = await district.get(f"{API}/summary")
    assert summary["connectivity"] == {"ok": 2, "uplink_down": 1, "unreachable": 0, "unknown": 0}
    assert summary["outages"]["schools"] >= 1
    text = district.metrics()
    assert one(text, "edumon_school_outage", school="B") == 1
    assert one(text, "edumon_school_outage", school="A") == 0
    # One school outage event, however many ticks.
    await runtime.collector.flush()
    events = await district.get(f"{API}/events?kind=school_outage")
    assert [e["school"] for e in events["events"]].count("B") == 1
    outage = by(events["events"], "school", "B")
    # About the school, not the core switch its uplink hangs off.
    assert (outage["device_kind"], outage["device"], outage["device_name"]) == (
        "school",
        "B",
        "城关中学",
    )
    assert outage["message"].startswith("城关中学（B）上联中断")
    assert outage["message_en"] == "school cut off"
    same = await district.get(f"{API}/events?device_kind=school&device=B")
    assert [e["kind"] for e in same["events"]] == ["school_outage"]
    both = await district.get(f"{API}/outages?school=A&school=B&kind=school")
    assert [o["school"] for o in both["outages"]] == ["B"]


async def test_outages_become_notifications_with_names_and_lesson(district: District) -> None:
    runtime, clock = district.runtime, district.clock
    sent: list[Alert] = []
    watch = OutageWatch(
        runtime, clock=clock, listeners=(lambda ts: sent.extend(alerts_of(runtime, ts)),)
    )
    for minutes in range(0, 16):
        clock.now = IN_LESSON + minutes * 60
        watch.tick()
    school = [a for a in sent if a.name == "EdumonSchoolDown"]
    assert [(a.school, a.school_name, a.status, a.severity) for a in school] == [
        ("B", "城关中学", "firing", "critical")
    ]
    assert "上联中断" in school[0].summary
    rooms = [a for a in sent if a.name == "EdumonClassroomTerminalOffline"]
    assert rooms, "a terminal offline in a lesson is a classroom outage"
    assert all(a.lesson and a.lesson.startswith("第") for a in rooms)
    assert all(a.classroom_name for a in rooms)
    # The school's uplink comes back: one resolution, the same outage (same fingerprint).
    await runtime.collector.submit(core_poll(clock.now, b_uplink_up=True))
    await runtime.collector.drain()
    watch.tick()
    resolved = [a for a in sent if a.name == "EdumonSchoolDown" and a.status == "resolved"]
    assert [a.fingerprint for a in resolved] == [school[0].fingerprint]
