"""What a request reads: one school for a school's page, cached per-school results for the
district, keyset pages of /events on both databases, a limit on every list."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from edumon.app import terminals_of
from edumon.collector import Collector
from edumon.config import inventory_of, parse_config
from edumon.demo.city import CityShape, city_toml, readings
from edumon.domain.checks import check_district
from edumon.domain.models import DeviceReading, Event, EventKind
from edumon.domain.state import NetworkState
from edumon.domain.topology import assess
from edumon.exporters.api import create_app
from edumon.exporters.api.events import decode_cursor, encode_cursor
from edumon.exporters.api.per_school import SchoolsNow
from edumon.runtime import Runtime
from edumon.store.reads import EventPosition
from edumon.store.repository import Store
from edumon.views import classrooms_now, terminal_speeds
from edumon.workcalendar import ChineseWorkingCalendar
from tests.fixtures.runtime import T0, Agent, Clock, local, port

API = "/api/v1"


async def get_json(client: httpx.AsyncClient, url: str, status: int = 200) -> Any:
    response = await client.get(url)
    assert response.status_code == status, response.text
    return response.json()


# -- a school's results equal what the district-wide computation gave for it ------------------


def _city_runtime(seed: int, now: float) -> Runtime:
    config = parse_config(city_toml(CityShape(6, access=2, classrooms=5)))
    state = NetworkState(inventory_of(config))
    terminals = terminals_of(config)
    rng = random.Random(seed)
    for at in (now - 120, now - 60):
        for obs in readings(config, at, rng, unreachable=0.2):
            state.apply(obs)
    district = config.district.code
    for ref in terminals.inventory:
        agent = Agent(district, ref.school, ref.terminal)
        roll = rng.random()
        if roll < 0.2:
            continue  # never heard from
        terminals.apply(agent.birth(), now - 50)
        terminals.apply(agent.heartbeat(speed=rng.choice([1000, 100, None])), now - 40)
        if roll < 0.4:
            terminals.apply(agent.will(), now - 30)
    collector = Collector(state, None, terminals=terminals)  # type: ignore[arg-type]
    return Runtime(
        config,
        state,
        None,  # type: ignore[arg-type]
        collector,
        terminals=terminals,
        schedule=config.schedule.schedule(),
        calendar=ChineseWorkingCalendar(),
    )


def _room_view(c: Any) -> tuple[object, ...]:
    return (c.school, c.room, c.terminal, c.unknown_reason, c.lesson, c.day_end, c.status)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), minute=st.integers(0, 24 * 60 - 1))
def test_each_school_equals_the_district_computation(seed: int, minute: int) -> None:
    now = local(date(2026, 9, 7), "00:00") + minute * 60  # a Monday in term
    runtime = _city_runtime(seed, now)
    views = SchoolsNow(runtime, lambda: now)
    district = check_district(runtime.state, runtime.config.targets, terminal_speeds(runtime))
    topo = assess(runtime.state)
    everyone = classrooms_now(runtime, now)
    for code in runtime.config.schools:
        one = views.school(code)
        assert one is not None
        assert one.compliance == district[code]
        assert one.link == topo.schools[code]
        for device in one.switches:
            assert one.topology.switches[device] == topo.switches[device]
        assert [_room_view(c) for c in one.classrooms] == [
            _room_view(c) for c in everyone if c.school.code == code
        ]
        assert [_room_view(c) for c in classrooms_now(runtime, now, school=code)] == [
            _room_view(c) for c in everyone if c.school.code == code
        ]
    assert [sc.compliance for sc in views.all()] == list(district.values())


# -- the cache is never stale ------------------------------------------------------------------


@pytest.fixture
async def clocked(populated_runtime: Runtime) -> AsyncIterator[tuple[httpx.AsyncClient, Clock]]:
    clock = Clock(T0 + 120)
    app = create_app(populated_runtime, clock=clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://edumon.test"
    ) as c:
        yield c, clock


def _a_reading(at: float, a102_speed: float) -> DeviceReading:
    return DeviceReading(
        "sw-a",
        at,
        2_000,
        "A-ACCESS-1",
        "H3C S5130",
        (
            port(1, "Gi0/1", octets=900),
            port(2, "Gi0/2", speed=a102_speed, octets=1_000, errors=4),
            port(3, "Gi0/3", up=False),
            port(24, "Gi0/24", alias="printer"),
        ),
        poll_seconds=0.5,
    )


async def test_a_changed_port_shows_on_the_next_request(
    populated_runtime: Runtime, clocked: tuple[httpx.AsyncClient, Clock]
) -> None:
    client, _ = clocked
    a = await get_json(client, f"{API}/schools/A")
    assert by_id(a["classrooms"], "A-102")["check"]["verdict"] == "fail"
    summary = await get_json(client, f"{API}/summary")
    assert summary["classrooms"]["fail"] == 1
    # Nothing changed: the next district page reuses every school's results.
    views = client_views(client)
    recomputed = views.recomputed
    await get_json(client, f"{API}/summary")
    await get_json(client, f"{API}/schools")
    assert views.recomputed == recomputed
    # A-102's cable is fixed: the next poll reads 1000M.
    populated_runtime.state.apply(_a_reading(T0 + 90, 1000.0))
    a = await get_json(client, f"{API}/schools/A")
    assert by_id(a["classrooms"], "A-102")["check"]["verdict"] == "pass"
    summary = await get_json(client, f"{API}/summary")
    assert summary["classrooms"]["fail"] == 0
    schools = await get_json(client, f"{API}/schools")
    assert by_code(schools["schools"], "A")["classrooms_failing"] == 0
    failing = await get_json(client, f"{API}/compliance?verdict=fail")
    assert ("A", "A-102") not in {(r["school"], r["classroom"]) for r in failing["results"]}
    # And back to 100M.
    populated_runtime.state.apply(_a_reading(T0 + 150, 100.0))
    summary = await get_json(client, f"{API}/summary")
    assert summary["classrooms"]["fail"] == 1


async def test_a_terminal_going_offline_shows_on_the_next_request(
    populated_runtime: Runtime, clocked: tuple[httpx.AsyncClient, Clock]
) -> None:
    client, _ = clocked
    listed = await get_json(client, f"{API}/terminals?school=A")
    assert by_classroom(listed["terminals"], "A-101")["status"] == "online"
    online_before = (await get_json(client, f"{API}/terminals"))["counts"]["online"]
    terminals = populated_runtime.terminals
    assert terminals is not None
    agent = Agent(populated_runtime.config.district.code, "A", "A-101")
    agent.bd_seq = 1
    agent.will_seq = 1  # the Will of the session the fixture's birth opened
    terminals.apply(agent.will(), T0 + 100)
    listed = await get_json(client, f"{API}/terminals?school=A")
    assert by_classroom(listed["terminals"], "A-101")["status"] == "offline"
    assert (await get_json(client, f"{API}/terminals"))["counts"]["online"] == online_before - 1
    offline = await get_json(client, f"{API}/classrooms/offline")
    rooms = {r["classroom"] for r in offline["in_lesson"] + offline["off_schedule"]}
    assert "A-101" in rooms


async def test_a_lesson_starting_shows_on_the_next_request(
    populated_runtime: Runtime, clocked: tuple[httpx.AsyncClient, Clock]
) -> None:
    client, clock = clocked
    schedule = populated_runtime.schedule
    assert schedule is not None
    first = schedule.timetables[schedule.kind_timetables["primary"]].periods[0]
    monday = date(2024, 9, 2)
    clock.now = local(monday, f"{first.start:%H:%M}") - 60
    before = await get_json(client, f"{API}/terminals?school=A")
    assert by_classroom(before["terminals"], "A-102")["expected_online"] is False
    clock.now += 60
    during = await get_json(client, f"{API}/terminals?school=A")
    assert by_classroom(during["terminals"], "A-102")["expected_online"] is True
    assert during["counts"]["offline_in_lesson"] >= 1


def client_views(client: httpx.AsyncClient) -> SchoolsNow:
    transport = client._transport  # the ASGI app behind the test client
    assert isinstance(transport, httpx.ASGITransport)
    views = transport.app.state.schools_now  # type: ignore[attr-defined]
    assert isinstance(views, SchoolsNow)
    return views


def by_id(items: list[dict[str, Any]], value: str) -> dict[str, Any]:
    (found,) = [i for i in items if i["id"] == value]
    return found


def by_code(items: list[dict[str, Any]], value: str) -> dict[str, Any]:
    (found,) = [i for i in items if i["code"] == value]
    return found


def by_classroom(items: list[dict[str, Any]], value: str) -> dict[str, Any]:
    (found,) = [i for i in items if i["classroom"] == value]
    return found


# -- lists page with a limit -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "rows"),
    [
        ("/schools", "schools"),
        ("/switches", "switches"),
        ("/compliance", "results"),
        ("/terminals", "terminals"),
        ("/terminals/unknown", "terminals"),
        ("/outages", "outages"),
    ],
)
async def test_lists_page_without_gaps_or_repeats(
    clocked: tuple[httpx.AsyncClient, Clock], path: str, rows: str
) -> None:
    client, _ = clocked
    whole = (await get_json(client, f"{API}{path}?limit=1000"))[rows]
    paged: list[Any] = []
    offset: int | None = 0
    while offset is not None:
        body = await get_json(client, f"{API}{path}?limit=2&offset={offset}")
        assert body["page"]["total"] == len(whole)
        assert len(body[rows]) <= 2
        paged.extend(body[rows])
        offset = body["page"]["next_offset"]
    assert paged == whole


async def test_terminals_paged_by_status_skip_no_one(
    clocked: tuple[httpx.AsyncClient, Clock],
) -> None:
    client, _ = clocked
    for status in ("online", "offline", "unknown"):
        whole = await get_json(client, f"{API}/terminals?status={status}&limit=1000")
        assert all(t["status"] == status for t in whole["terminals"])
        assert whole["page"]["total"] == whole["counts"][status] == len(whole["terminals"])
        paged = []
        for offset in range(len(whole["terminals"])):
            body = await get_json(
                client, f"{API}/terminals?status={status}&limit=1&offset={offset}"
            )
            paged.extend(body["terminals"])
        assert paged == whole["terminals"]


@pytest.mark.parametrize(
    "query",
    [
        "/schools?limit=0",
        "/schools?limit=1001",
        "/switches?offset=-1",
        "/terminals?limit=abc",
        "/compliance?limit=5000",
        "/outages?offset=99999999999",
        "/events?limit=1001",
        "/events?offset=10001",
        "/events?cursor=not-a-cursor",
        "/classrooms/offline?limit=0",
    ],
)
async def test_parameters_out_of_range_are_422_with_a_reason(
    clocked: tuple[httpx.AsyncClient, Clock], query: str
) -> None:
    client, _ = clocked
    body = await get_json(client, f"{API}{query}", status=422)
    assert body["detail"][0]["msg"]


async def test_switches_of_one_school(clocked: tuple[httpx.AsyncClient, Clock]) -> None:
    client, _ = clocked
    body = await get_json(client, f"{API}/switches?school=A")
    assert [s["id"] for s in body["switches"]] == ["core", "sw-a"]
    await get_json(client, f"{API}/switches?school=nope", status=404)


# -- /events: keyset pages on both databases ---------------------------------------------------


def _events(n: int) -> list[Event]:
    # Seven events per timestamp: a page boundary falls inside a group of equal times.
    return [
        Event(
            at=T0 + (i // 7) * 1.5,
            kind=(EventKind.LINK_DOWN, EventKind.LINK_UP)[i % 2],
            device_id=f"sw-{i % 3}",
            school=("A", "B")[i % 2],
            message=f"e{i}",
        )
        for i in range(n)
    ]


async def test_event_pages_chain_without_gaps_or_repeats(store: Store) -> None:
    written = _events(130)
    await store.write(events=written)
    for filters in ({}, {"school": "A"}, {"device": "sw-1"}, {"kind": EventKind.LINK_UP}):
        whole = [e.event.message for e in await store.event_page(limit=1000, **filters)]  # type: ignore[arg-type]
        assert len(whole) == len(set(whole)) > 0
        paged: list[str] = []
        before: EventPosition | None = None
        while True:
            page = await store.event_page(limit=6, before=before, **filters)  # type: ignore[arg-type]
            paged.extend(e.event.message for e in page)
            if len(page) < 6:
                break
            # Through the API's opaque cursor, as a client would carry it.
            before = decode_cursor(encode_cursor(page[-1].position))
        assert paged == whole
    # Newest first, and within a timestamp the later write first.
    assert whole[0] == "e129"


async def test_an_event_page_reads_one_index_range(store: Store) -> None:
    await store.write(events=_events(50))
    page = await store.event_page(limit=5)
    select_sql = (
        "SELECT id FROM events WHERE school = 'A' AND at <= :at AND (at < :at OR id < :id)"
        " ORDER BY at DESC, id DESC LIMIT 5"
    )
    at = page[-1].position.at
    async with store._engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # A 50-row table is scanned whole by choice; forbid that to see the index is usable.
            await conn.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(
                r[0]
                for r in await conn.execute(
                    text(f"EXPLAIN {select_sql}"), {"at": at, "id": page[-1].position.id}
                )
            )
            assert "ix_events_school_at_id" in plan
            assert "Sort" not in plan
        else:
            sqlite_at = at.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
            plan = "\n".join(
                str(r[3])
                for r in await conn.execute(
                    text(f"EXPLAIN QUERY PLAN {select_sql}"),
                    {"at": sqlite_at, "id": page[-1].position.id},
                )
            )
            assert "ix_events_school_at_id" in plan
            assert "TEMP B-TREE" not in plan


async def test_events_api_pages_by_cursor(populated_runtime: Runtime) -> None:
    await populated_runtime.store.write(events=_events(40))
    app = create_app(populated_runtime)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://edumon.test"
    ) as client:
        whole = (await get_json(client, f"{API}/events?limit=1000"))["events"]
        assert len(whole) == 42
        paged: list[Any] = []
        url = f"{API}/events?limit=5"
        while True:
            body = await get_json(client, url)
            paged.extend(body["events"])
            assert body["page"]["total"] == 42  # on every page, not only the first
            if body["page"]["next_cursor"] is None:
                break
            url = f"{API}/events?limit=5&cursor={body['page']['next_cursor']}"
        assert paged == whole
        cursor = (await get_json(client, f"{API}/events?limit=5"))["page"]["next_cursor"]
        both = await get_json(client, f"{API}/events?cursor={cursor}&offset=5", status=422)
        assert both["detail"][0]["loc"] == ["query", "offset"]


# -- the listener ----------------------------------------------------------------------------


async def test_api_connections_send_replies_without_waiting_for_acks() -> None:
    import asyncio
    import socket

    from edumon.app import bind_listener

    nodelay: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(handle, sock=bind_listener("127.0.0.1:0"))
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.read()  # the server closes once it has looked
        writer.close()
    # Nagle off: a reply written in two parts is not held back for the client's delayed ACK.
    assert nodelay == [1]
