"""The status API, called through its ASGI app, against a runtime fed by real polls and SQLite."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edumon.exporters.api import create_app
from edumon.runtime import Runtime
from tests.fixtures.runtime import (
    ALL_SECRETS,
    DISTRICT_TOML,
    MQTT_PASSWORD,
    SECRETS,
    T0,
    build_runtime,
)

API = "/api/v1"


@pytest.fixture
async def client(populated_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(populated_runtime)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://edumon.test"
    ) as c:
        yield c


async def get_json(client: httpx.AsyncClient, url: str, status: int = 200) -> Any:
    response = await client.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def by(items: list[dict[str, Any]], key: str, value: object) -> dict[str, Any]:
    found = [item for item in items if item[key] == value]
    assert len(found) == 1, f"{key}={value!r} in {items}"
    return found[0]


async def test_summary(client: httpx.AsyncClient) -> None:
    body = await get_json(client, f"{API}/summary")
    assert body["district"] == {"code": "demo-county", "name": "示范县"}
    assert body["targets"] == {
        "profile": "district-1000m",
        "uplink_mbps": 1000,
        "classroom_mbps": 1000,
    }
    # A fails (A-102 at 100M), B fails (uplink at 100M), C is unknown (never polled).
    assert body["schools"] == {"total": 3, "pass": 0, "fail": 2, "unknown": 1}
    # A-101 pass, A-102 fail, A-103 never up and B-201 behind an unreachable switch: unknown.
    assert body["classrooms"] == {"total": 4, "pass": 1, "fail": 1, "unknown": 2}
    assert body["switches"] == {"total": 4, "up": 2, "down": 1, "never_polled": 1}
    assert body["events"]["total"] == 2
    assert body["events"]["by_kind"]["device_reboot"] == 1
    assert body["events"]["by_kind"]["device_unreachable"] == 1
    assert body["events"]["by_kind"]["link_down"] == 0
    # A-101 and B-201 online; A-102 (killed) and A-103 (never heard from) offline: in a lesson
    # or not, as the real clock falls.
    terminals = body["terminals"]
    assert (terminals["total"], terminals["online"], terminals["unknown"]) == (4, 2, 0)
    assert terminals["offline_in_lesson"] + terminals["off_schedule"] == 2
    # Beijing time, the district's zone.
    assert body["generated_at"].endswith("+08:00")


async def test_summary_of_some_schools(client: httpx.AsyncClient) -> None:
    body = await get_json(client, f"{API}/summary?school=B&school=C")
    assert body["schools"] == {"total": 2, "pass": 0, "fail": 1, "unknown": 1}
    assert body["classrooms"]["total"] == 1
    assert body["terminals"]["total"] == 1
    # B's sw-b, C's sw-c and the core their uplinks (B's) hang off.
    assert body["switches"] == {"total": 3, "up": 1, "down": 1, "never_polled": 1}


async def test_schools(client: httpx.AsyncClient) -> None:
    schools = (await get_json(client, f"{API}/schools"))["schools"]
    assert [s["code"] for s in schools] == ["A", "B", "C"]
    a, b, c = schools
    assert a["name"] == "第一小学"
    assert a["kind"] == "primary"
    assert a["verdict"] == "fail"
    assert a["uplink"] == {
        "switch": "core",
        "switch_name": "core",
        "port": "ge-0/0/1",
        "status": "up",
        "speed_mbps": 1000,
    }
    assert (a["classrooms_total"], a["classrooms_failing"]) == (3, 1)
    assert b["verdict"] == "fail"
    assert b["uplink"]["speed_mbps"] == 100
    assert b["classrooms_failing"] == 0
    assert c["verdict"] == "unknown"
    assert c["uplink"]["status"] == "unknown"
    assert c["uplink"]["speed_mbps"] is None


async def test_school_detail(client: httpx.AsyncClient) -> None:
    a = await get_json(client, f"{API}/schools/A")
    assert a["verdict"] == "fail"
    checks = {c["check"]: c for c in a["uplink"]["checks"]}
    assert checks["uplink_up"]["verdict"] == "pass"
    assert checks["uplink_speed"]["verdict"] == "pass"
    assert checks["uplink_speed"]["speed_mbps"] == 1000

    slow = by(a["classrooms"], "id", "A-102")
    assert slow["name"] == "一年级(2)班"
    assert (slow["switch"], slow["port"]) == ("sw-a", "Gi0/2")
    assert (slow["status"], slow["speed_mbps"]) == ("up", 100)
    assert slow["check"]["verdict"] == "fail"
    assert "低于 1000 Mbit/s 目标" in slow["check"]["reason"]
    assert "100 Mbit/s" in slow["check"]["reason_en"]
    assert "1000 Mbit/s" in slow["check"]["reason_en"]
    assert slow["check"]["target_mbps"] == 1000
    assert (slow["check"]["school_name"], slow["check"]["classroom_name"]) == (
        "第一小学",
        "一年级(2)班",
    )
    assert (slow["switch_name"], slow["check"]["switch_name"]) == ("sw-a", "sw-a")

    off = by(a["classrooms"], "id", "A-103")
    assert (off["status"], off["speed_mbps"]) == ("down", None)
    assert off["check"]["verdict"] == "unknown"
    assert "尚未见过连接" in off["check"]["reason"]
    assert "not been seen up" in off["check"]["reason_en"]

    assert by(a["classrooms"], "id", "A-101")["check"]["verdict"] == "pass"
    switches = {s["id"]: s for s in a["switches"]}
    assert set(switches) == {"core", "sw-a"}
    assert switches["sw-a"]["reboots"] == 1


async def test_school_behind_an_unreachable_switch(client: httpx.AsyncClient) -> None:
    b = await get_json(client, f"{API}/schools/B")
    room = by(b["classrooms"], "id", "B-201")
    assert (room["status"], room["speed_mbps"]) == ("unknown", None)
    assert room["last_speed_mbps"] == 1000
    assert room["check"]["verdict"] == "unknown"
    assert "无法访问" in room["check"]["reason"]
    assert "unreachable" in room["check"]["reason_en"]
    assert by(b["switches"], "id", "sw-b")["status"] == "down"
    speed = by(b["uplink"]["checks"], "check", "uplink_speed")
    assert speed["verdict"] == "fail"
    assert "100 Mbit/s" in speed["reason"]
    assert "100 Mbit/s" in speed["reason_en"]


async def test_unknown_school_and_switch_are_404(client: httpx.AsyncClient) -> None:
    body = await get_json(client, f"{API}/schools/NOPE", status=404)
    assert "NOPE" in body["detail"]
    assert "/api/v1/schools" in body["detail"]
    body = await get_json(client, f"{API}/switches/nope-sw/interfaces", status=404)
    assert "nope-sw" in body["detail"]
    body = await get_json(client, f"{API}/compliance?school=NOPE", status=404)
    assert "NOPE" in body["detail"]


# Every list and /summary: an unknown school is a 404 with a "中文 / English" detail (it was
# 200 [] on /events and /switches took it, /compliance 404).
@pytest.mark.parametrize(
    "path",
    [
        "summary",
        "schools",
        "switches",
        "events",
        "compliance",
        "terminals",
        "terminals/unknown",
        "classrooms/offline",
        "outages",
    ],
)
async def test_unknown_school_is_404_on_every_list(client: httpx.AsyncClient, path: str) -> None:
    body = await get_json(client, f"{API}/{path}?school=A&school=NOPE", status=404)
    zh, en = body["detail"].split(" / ", 1)
    assert "NOPE" in zh
    assert "学校" in zh
    assert "no school" in en


async def test_switches(client: httpx.AsyncClient) -> None:
    switches = (await get_json(client, f"{API}/switches"))["switches"]
    assert [s["id"] for s in switches] == ["core", "sw-a", "sw-b", "sw-c"]
    a = by(switches, "id", "sw-a")
    assert (a["status"], a["reachable"], a["uptime_seconds"], a["reboots"]) == ("up", True, 10, 1)
    assert (a["sys_name"], a["host"], a["interfaces"]) == ("A-ACCESS-1", "127.0.0.11", 4)
    b = by(switches, "id", "sw-b")
    assert (b["status"], b["reachable"], b["uptime_seconds"]) == ("down", False, None)
    assert b["last_error"] == "no reply within 2 s (3 tries)"
    # Beijing time (the district's zone, with its offset): the same instants as before in UTC.
    assert b["last_ok_at"] == "2024-09-01T08:00:00+08:00"
    assert b["last_poll_at"] == "2024-09-01T08:01:00+08:00"
    assert (b["name"], b["school_name"]) == ("sw-b", "第二中学")
    assert (b["condition_reason"], b["condition_reason_en"]) == (
        "交换机 sw-b 无响应",
        "switch sw-b does not answer",
    )
    assert (b["polls_ok"], b["polls_failed"]) == (1, 1)
    c = by(switches, "id", "sw-c")
    assert (c["status"], c["reachable"], c["last_poll_at"]) == ("never_polled", None, None)


async def test_interfaces(client: httpx.AsyncClient) -> None:
    body = await get_json(client, f"{API}/switches/sw-a/interfaces")
    assert body["switch"]["id"] == "sw-a"
    ports = body["interfaces"]
    assert [p["name"] for p in ports] == ["Gi0/1", "Gi0/2", "Gi0/3", "Gi0/24"]
    slow = by(ports, "name", "Gi0/2")
    assert (slow["status"], slow["speed_mbps"], slow["known"]) == ("up", 100, True)
    assert (slow["in_octets"], slow["out_octets"], slow["in_errors"]) == (600, 1200, 4)
    assert (slow["role"], slow["school"], slow["classroom"]) == ("classroom", "A", "A-102")
    assert slow["last_change"] == "2024-09-01T08:00:00+08:00"
    assert slow["last_seen"] == "2024-09-01T08:01:00+08:00"
    assert (slow["school_name"], slow["classroom_name"]) == ("第一小学", "一年级(2)班")
    # The switch rebooted between the polls: counters restarted, so there is no honest rate.
    assert slow["in_bps"] is None
    printer = by(ports, "name", "Gi0/24")
    assert (printer["alias"], printer["role"], printer["classroom"]) == ("printer", None, None)

    core = (await get_json(client, f"{API}/switches/core/interfaces"))["interfaces"]
    uplink = by(core, "name", "ge-0/0/1")
    # 7,500,000 octets in 60 s.
    assert uplink["in_bps"] == pytest.approx(1_000_000)
    assert uplink["out_bps"] == pytest.approx(2_000_000)
    assert (uplink["role"], uplink["school"], uplink["alias"]) == ("uplink", "A", "to 第一小学")
    assert by(core, "name", "ge-0/0/2")["school"] == "B"


async def test_ports_of_an_unreachable_switch_are_unknown(client: httpx.AsyncClient) -> None:
    body = await get_json(client, f"{API}/switches/sw-b/interfaces")
    assert body["switch"]["status"] == "down"
    (port,) = body["interfaces"]
    assert (port["status"], port["known"], port["speed_mbps"]) == ("unknown", False, None)
    assert port["last_speed_mbps"] == 1000
    assert port["in_bps"] is None
    assert port["last_seen"] == "2024-09-01T08:00:00+08:00"


async def test_events_listed_and_filtered(client: httpx.AsyncClient) -> None:
    events = (await get_json(client, f"{API}/events"))["events"]
    assert [e["kind"] for e in events] == ["device_unreachable", "device_reboot"]
    reboot = by(events, "kind", "device_reboot")
    assert (reboot["device_kind"], reboot["device"], reboot["device_name"]) == (
        "switch",
        "sw-a",
        "sw-a",
    )
    assert (reboot["school"], reboot["school_name"]) == ("A", "第一小学")
    assert "switch" not in reboot
    assert reboot["at"] == "2024-09-01T08:01:00+08:00"
    assert reboot["details"] == {
        "previous_uptime_seconds": 1000,
        "uptime_seconds": 10,
        "evidence": "sysUpTime",
    }
    assert reboot["message"].startswith("第一小学 交换机 sw-a 已重启")
    assert "rebooted" in reboot["message_en"]
    unreachable = by(events, "kind", "device_unreachable")
    assert unreachable["message"] == "第二中学 交换机 sw-b 无法访问：no reply within 2 s (3 tries)"

    async def kinds(query: str) -> list[str]:
        body = await get_json(client, f"{API}/events?{query}")
        return [e["kind"] for e in body["events"]]

    assert await kinds("kind=device_reboot") == ["device_reboot"]
    assert await kinds("school=A") == ["device_reboot"]
    assert await kinds("device=sw-b") == ["device_unreachable"]
    assert await kinds("device_kind=switch&device=sw-b") == ["device_unreachable"]
    assert await kinds("device_kind=terminal") == []
    assert await kinds("device_kind=school&device=A") == []
    assert await kinds("school=B&kind=device_reboot") == []
    assert len(await kinds("kind=device_reboot&kind=device_unreachable")) == 2
    assert len(await kinds("school=A&school=B")) == 2
    at = T0 + 60
    assert len(await kinds(f"since={at:.0f}")) == 2
    assert await kinds(f"since={at + 1:.0f}") == []
    assert await kinds(f"until={at:.0f}") == []  # until is exclusive
    # The same instant as Beijing time and as UTC.
    assert len(await kinds("since=2024-09-01T08:01:00%2B08:00")) == 2
    assert await kinds("since=2024-09-01T00:01:01Z") == []
    assert await kinds("since=2024-09-01T00:00:30Z&until=2024-09-01T00:01:30Z") == [
        "device_unreachable",
        "device_reboot",
    ]
    page = await get_json(client, f"{API}/events?limit=1&offset=1")
    assert page["page"] == {
        "limit": 1,
        "offset": 1,
        "total": 2,
        "next_offset": None,
        "next_cursor": None,
    }
    assert [e["kind"] for e in page["events"]] == ["device_reboot"]
    first = await get_json(client, f"{API}/events?limit=1&school=A&school=B")
    assert (first["page"]["total"], first["page"]["next_offset"]) == (2, 1)
    assert first["page"]["next_cursor"]


@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        ("since=yesterday", "since", "ISO-8601"),
        ("until=2024-13-01T00:00:00Z", "until", "ISO-8601"),
        ("since=2024-09-01T08:00:00", "since", "UTC offset"),
        ("since=nan", "since", "finite"),
        ("since=200&until=100", "since", "earlier than until"),
        ("limit=1001", "limit", "1000"),
        ("limit=0", "limit", "1"),
        ("limit=ten", "limit", "integer"),
        ("offset=-1", "offset", "0"),
        # They answered 500 before: times no datetime can hold, or no database timestamp.
        ("since=1e308", "since", "out of range"),
        ("since=9999-12-31T23:59:59-12:00", "since", "out of range"),
        ("until=0001-01-01T00:00:00%2B14:00", "until", "out of range"),
        ("since=-1", "since", "out of range"),
        ("limit=99999999999999999999999", "limit", "1000"),
        ("offset=-5", "offset", "0"),
        # "9999-12-31T23:59:59-12:00|1" and an id beyond 64 bits, as cursors.
        ("cursor=OTk5OS0xMi0zMVQyMzo1OTo1OS0xMjowMHwx", "cursor", "cursor"),
        (
            "cursor=MjAyNC0wOS0wMVQwMDowMDowMCswMDowMHw5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ",
            "cursor",
            "cursor",
        ),
        ("cursor=%ff%fe", "cursor", "cursor"),
        ("device_kind=router", "device_kind", "switch"),
    ],
)
async def test_events_reject_bad_values(
    client: httpx.AsyncClient, query: str, field: str, says: str
) -> None:
    body = await get_json(client, f"{API}/events?{query}", status=422)
    (error,) = body["detail"]
    assert error["loc"] == ["query", field]
    assert says in error["msg"]


async def test_events_reject_an_unknown_kind(client: httpx.AsyncClient) -> None:
    body = await get_json(client, f"{API}/events?kind=link_down&kind=explosion", status=422)
    (error,) = body["detail"]
    assert error["loc"] == ["query", "kind", 1]
    assert "device_reboot" in error["msg"]


@pytest.mark.parametrize(
    "query",
    [
        "device=nope",  # a switch by default
        "device_kind=switch&device=A-101",  # a terminal's id, not a switch's
        "device_kind=terminal&device=sw-a",
        "device_kind=school&device=NOPE",
        "device_kind=classroom&device=NOPE",
    ],
)
async def test_events_of_an_unknown_device_are_404(client: httpx.AsyncClient, query: str) -> None:
    body = await get_json(client, f"{API}/events?{query}", status=404)
    assert " / no " in body["detail"]


@pytest.mark.parametrize(
    "url",
    [
        f"{API}/events?school=%00",
        f"{API}/events?device=sw%00a",
        f"{API}/schools/A%00",
        f"{API}/switches/sw-a%00/interfaces",
        f"{API}/terminals?school=A&status=online%00",
        f"{API}/summary?x=%00",
    ],
)
async def test_nul_anywhere_is_422(client: httpx.AsyncClient, url: str) -> None:
    body = await get_json(client, url, status=422)
    assert "NUL" in body["detail"][0]["msg"]


async def test_compliance(client: httpx.AsyncClient) -> None:
    body = await get_json(client, f"{API}/compliance")
    assert body["targets"]["profile"] == "district-1000m"
    assert len(body["results"]) == 10  # 3 schools x 2 uplink checks + 4 classrooms
    failing = (await get_json(client, f"{API}/compliance?verdict=fail"))["results"]
    assert {(r["school"], r["check"], r["classroom"]) for r in failing} == {
        ("A", "classroom_speed", "A-102"),
        ("B", "uplink_speed", None),
    }
    assert all(r["verdict"] == "fail" and r["reason"] and r["reason_en"] for r in failing)
    both = await get_json(client, f"{API}/compliance?verdict=fail&verdict=unknown")
    # A-103 and B-201 (unknown), C's two uplink checks (never polled).
    assert both["page"]["total"] == len(failing) + 4
    two = await get_json(client, f"{API}/compliance?school=A&school=C&limit=2")
    assert {r["school"] for r in two["results"]} == {"A"}
    assert (two["page"]["total"], two["page"]["next_offset"]) == (7, 2)
    school_a = (await get_json(client, f"{API}/compliance?school=A&check=classroom_speed"))[
        "results"
    ]
    assert [r["classroom"] for r in school_a] == ["A-101", "A-102", "A-103"]
    body = await get_json(client, f"{API}/compliance?verdict=maybe", status=422)
    assert body["detail"][0]["loc"] == ["query", "verdict", 0]


async def test_health(client: httpx.AsyncClient) -> None:
    assert await get_json(client, "/healthz") == {"status": "ok", "detail": None}
    assert (await get_json(client, "/readyz"))["status"] == "ready"


async def test_readyz_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    db_dir = tmp_path / "db"
    runtime = await build_runtime(db_dir / "edumon.db")
    app = create_app(runtime)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://edumon.test"
        ) as c:
            assert (await get_json(c, "/readyz"))["status"] == "ready"
            # Drop the pooled connections and take the database's directory away: every new
            # connection now fails, as with a database server that is down.
            await runtime.store.aclose()
            shutil.rmtree(db_dir)
            body = await get_json(c, "/readyz", status=503)
            assert body["status"] == "unavailable"
            assert "database" in body["detail"]
            body = await get_json(c, f"{API}/events", status=503)
            assert "database" in body["detail"]
            assert str(tmp_path) not in body["detail"]
            # Liveness does not depend on the database.
            assert (await get_json(c, "/healthz"))["status"] == "ok"
    finally:
        await runtime.store.aclose()


async def test_metrics_on_the_same_app(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert 'edumon_device_up{device="sw-b",school="B"} 0.0' in response.text
    response = await client.get(
        "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


async def test_openapi_documents_every_endpoint(client: httpx.AsyncClient) -> None:
    spec = await get_json(client, "/openapi.json")
    assert set(spec["paths"]) >= {
        f"{API}/summary",
        f"{API}/schools",
        f"{API}/schools/{{code}}",
        f"{API}/switches",
        f"{API}/switches/{{switch_id}}/interfaces",
        f"{API}/events",
        f"{API}/compliance",
        "/healthz",
        "/readyz",
    }
    summary = spec["paths"][f"{API}/summary"]["get"]["responses"]["200"]
    assert summary["content"]["application/json"]["schema"]["$ref"].endswith("/Summary")
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_docs_are_served_offline(client: httpx.AsyncClient) -> None:
    """/docs and /redoc load Swagger UI and ReDoc from edumon itself: no CDN, no other host."""
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        hosts = re.findall(r"(?:https?:)?//([\w.-]+)", html)
        assert hosts == [], (page, hosts)
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets, page
        for url in assets:
            assert url.startswith("/static/docs/"), url
            response = await client.get(url)
            assert response.status_code == 200, url
            assert len(response.content) > 1000, url
        assert "/openapi.json" in html


async def test_no_secret_in_any_response(
    populated_runtime: Runtime, client: httpx.AsyncClient
) -> None:
    # The runtime does hold the secrets (so this test would see a leak)...
    switches = populated_runtime.config.switches
    v2c, v3 = switches["sw-a"].snmp, switches["sw-b"].snmp
    assert v2c.community is not None
    assert v3.auth_password is not None
    assert v3.priv_password is not None
    held = (
        v2c.community.get_secret_value(),
        v3.auth_password.get_secret_value(),
        v3.priv_password.get_secret_value(),
    )
    assert held == SECRETS
    mqtt_password = populated_runtime.config.mqtt.password
    assert mqtt_password is not None
    assert mqtt_password.get_secret_value() == MQTT_PASSWORD
    # ...and no response carries any of them.
    urls = [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
        f"{API}/summary",
        f"{API}/schools",
        f"{API}/switches",
        f"{API}/events",
        f"{API}/compliance",
        f"{API}/schools/NOPE",
        f"{API}/switches/NOPE/interfaces",
        f"{API}/events?since=bad",
        f"{API}/terminals",
        f"{API}/terminals/unknown",
        f"{API}/classrooms/offline",
        f"{API}/availability/daily?day=2024-09-01",
        f"{API}/availability/daily?day=2024-09-01&format=csv",
        f"{API}/availability/monthly?month=2024-09&format=csv",
    ]
    urls += [f"{API}/schools/{code}" for code in ("A", "B", "C")]
    urls += [f"{API}/switches/{sw}/interfaces" for sw in ("core", "sw-a", "sw-b", "sw-c")]
    statuses = set()
    for url in urls:
        response = await client.get(url)
        statuses.add(response.status_code)
        for secret in ALL_SECRETS:
            assert secret not in response.text, url
    assert statuses == {200, 404, 422}


async def test_a_switch_name_shows_beside_its_id(tmp_path: Path) -> None:
    toml = DISTRICT_TOML.replace(
        'id = "core"\nhost = "127.0.0.10"', 'id = "core"\nname = "区中心核心"\nhost = "127.0.0.10"'
    )
    assert toml != DISTRICT_TOML
    runtime = await build_runtime(tmp_path / "edumon.db", toml)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(runtime)), base_url="http://edumon.test"
        ) as c:
            core = by((await get_json(c, f"{API}/switches"))["switches"], "id", "core")
            assert core["name"] == "区中心核心"
            a = await get_json(c, f"{API}/schools/A")
            assert (a["uplink"]["switch"], a["uplink"]["switch_name"]) == ("core", "区中心核心")
            uplink = by(a["uplink"]["checks"], "check", "uplink_up")
            assert uplink["switch_name"] == "区中心核心"
    finally:
        await runtime.store.aclose()


async def test_a_long_unknown_code_is_not_repeated_whole(client: httpx.AsyncClient) -> None:
    code = "x" * 5000
    for url in (
        f"{API}/schools/{code}",
        f"{API}/events?school={code}",
        f"{API}/events?device_kind=terminal&device={code}",
    ):
        body = await get_json(client, url, status=404)
        assert len(body["detail"]) < 400
