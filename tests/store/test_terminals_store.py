"""The store's classroom-terminal tables against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Table, bindparam, func, insert, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from edumon.config import Config, parse_config
from edumon.domain.models import DeviceSample, Event, EventKind, TerminalSample
from edumon.errors import StoreError
from edumon.store import Store, StoreProtocol, StoreReader, async_url, open_store
from edumon.store import tables as t
from edumon.store.protocol import ClassroomAvailability
from edumon.store.repository import MIGRATIONS_DIR
from tests.fixtures.databases import PostgresServer
from tests.store.test_repository import head_revision

T0 = 1_725_148_800.0  # 2024-09-01T00:00:00Z
DB_PASSWORD = "DbPw-5c20e7-NEVER-SHOWN"

INVENTORY = """
[district]
code = "demo-county"
name = "示范县"

[[switches]]
id = "core"
host = "10.0.0.1"
snmp = { version = "2c", community = "public-test" }

[[schools]]
code = "3301000001"
name = "第一小学"
kind = "primary"
uplink = { switch = "core", port = "Gi1/0/1" }
classrooms = [
  { id = "a-101", name = "一年级1班", terminal = "ops-a101" },
  { id = "a-102", name = "一年级2班" },
]
"""


def config(text_: str) -> Config:
    return parse_config(text_, where="test.toml")


@asynccontextmanager
async def raw(url: str) -> AsyncIterator[AsyncConnection]:
    """A connection that bypasses the Store, to check what it really wrote."""
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            yield conn
    finally:
        await engine.dispose()


async def rows(url: str, table: Table) -> list[dict[str, Any]]:
    async with raw(url) as conn:
        query = select(table).order_by(*table.primary_key.columns)
        return [dict(r._mapping) for r in (await conn.execute(query)).all()]


async def count(url: str, table: Table) -> int:
    async with raw(url) as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def version(url: str) -> list[str]:
    async with raw(url) as conn:
        return list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())


async def table_names(url: str) -> set[str]:
    async with raw(url) as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


def _alembic(connection: Connection) -> AlembicConfig:
    config_ = AlembicConfig()
    config_.set_main_option("script_location", str(MIGRATIONS_DIR))
    config_.attributes["connection"] = connection
    return config_


async def migrate_to(url: str, revision: str, *, down: bool = False) -> None:
    """Upgrade (or downgrade) a database to ``revision`` as an older or newer edumon would."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)

    def run(connection: Connection) -> None:
        move = command.downgrade if down else command.upgrade
        move(_alembic(connection), revision)

    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


def _schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, t.metadata))


def heartbeat(
    at: float,
    classroom: str = "a-101",
    seq: int = 0,
    *,
    school: str = "3301000001",
    terminal: str | None = None,
    boot_id: str = "boot-1",
    **changes: Any,
) -> TerminalSample:
    values: dict[str, Any] = {
        "uptime_seconds": 3600.5,
        "link_speed_mbps": 1000.0,
        "cpu_percent": 12.5,
        "memory_used_bytes": 3 * 2**30,
        "disk_used_bytes": 120 * 2**30,
    }
    values.update(changes)
    return TerminalSample(
        at=at,
        school=school,
        terminal=terminal or f"ops-{classroom}",
        classroom=classroom,
        boot_id=boot_id,
        seq=seq,
        **values,
    )


def availability_row(
    day: date, classroom: str = "a-101", school: str = "3301000001", **changes: Any
) -> ClassroomAvailability:
    values: dict[str, Any] = {
        "terminal": f"t-{classroom}",
        "lesson_seconds": 16_800.0,
        "monitored_seconds": 16_000.0,
        "online_seconds": 14_730.5,
        "lessons": 7,
        "lessons_monitored": 7,
        "lessons_used": 6,
        "terminal_days": 1,
        "terminal_days_monitored": 1,
        "terminals_on": 1,
        "switched_on": True,
        "computed_at": T0 + 0.25,
    }
    values.update(changes)
    return ClassroomAvailability(day=day, school=school, classroom=classroom, **values)


# --- migrations --------------------------------------------------------------------------------


async def test_a_database_at_0001_is_upgraded_and_keeps_its_data(fresh_database_url: str) -> None:
    await migrate_to(fresh_database_url, "0001")
    assert await version(fresh_database_url) == ["0001"]
    assert "terminal_samples" not in await table_names(fresh_database_url)
    engine = create_async_engine(async_url(fresh_database_url))
    try:
        async with engine.begin() as conn:
            # Written through 0001's columns only: the classrooms table has no terminal yet.
            await conn.execute(insert(t.districts), [{"code": "demo-county", "name": "示范县"}])
            await conn.execute(
                insert(t.schools),
                [
                    {
                        "code": "3301000001",
                        "district": "demo-county",
                        "name": "第一小学",
                        "kind": "primary",
                        "uplink_switch": "core",
                        "uplink_port": "Gi1/0/1",
                    }
                ],
            )
            await conn.execute(
                text("INSERT INTO classrooms (id, school, name) VALUES (:id, :school, :name)"),
                [
                    {"id": "a-101", "school": "3301000001", "name": "一年级1班"},
                    {"id": "a-102", "school": "3301000001", "name": "一年级2班"},
                ],
            )
    finally:
        await engine.dispose()

    async with await open_store(fresh_database_url) as store:
        await store.write(events=[Event(T0, EventKind.LINK_DOWN, "sw-a", message="after")])
        await store.write(terminal_samples=[heartbeat(T0)])
        assert [s.at for s in await store.terminal_history("a-101")] == [T0]

    assert await version(fresh_database_url) == [head_revision()]
    # Until the next inventory sync, a classroom's terminal is the classroom itself.
    assert [(r["id"], r["terminal"]) for r in await rows(fresh_database_url, t.classrooms)] == [
        ("a-101", "a-101"),
        ("a-102", "a-102"),
    ]
    async with raw(fresh_database_url) as conn:
        differences = await conn.run_sync(_schema_differences)
    assert differences == []


async def test_a_fresh_database_is_created_with_the_terminal_indexes(
    fresh_database_url: str,
) -> None:
    async with await open_store(fresh_database_url):
        pass
    assert await version(fresh_database_url) == [head_revision()]
    async with raw(fresh_database_url) as conn:
        indexes = await conn.run_sync(
            lambda c: {
                table: {
                    (i["name"], tuple(i["column_names"])) for i in inspect(c).get_indexes(table)
                }
                for table in ("terminal_samples", "classroom_availability_daily")
            }
        )
        keys = await conn.run_sync(
            lambda c: {
                table: inspect(c).get_pk_constraint(table)["constrained_columns"]
                for table in ("terminal_samples", "classroom_availability_daily")
            }
        )
    assert indexes["terminal_samples"] == {
        ("ix_terminal_samples_classroom_at", ("classroom", "at")),
        ("ix_terminal_samples_at", ("at",)),
    }
    assert indexes["classroom_availability_daily"] == {
        ("ix_classroom_availability_daily_school_day", ("school", "day")),
        ("ix_classroom_availability_daily_classroom_day", ("classroom", "day")),
    }
    assert keys == {
        "terminal_samples": ["school", "terminal", "boot_id", "seq"],
        "classroom_availability_daily": ["day", "classroom"],
    }


async def test_downgrading_to_0001_drops_only_the_terminal_schema(fresh_database_url: str) -> None:
    async with await open_store(fresh_database_url) as store:
        await store.sync_inventory(config(INVENTORY))
        await store.write(
            events=[Event(T0, EventKind.DEVICE_REBOOT, "core", message="kept")],
            terminal_samples=[heartbeat(T0)],
        )
    await migrate_to(fresh_database_url, "0001", down=True)
    assert await version(fresh_database_url) == ["0001"]
    names = await table_names(fresh_database_url)
    assert {"terminal_samples", "classroom_availability_daily"} & names == set()
    async with raw(fresh_database_url) as conn:
        columns = await conn.run_sync(lambda c: inspect(c).get_columns("classrooms"))
        messages = (await conn.execute(text("SELECT message FROM events"))).scalars().all()
        rooms = (await conn.execute(text("SELECT id FROM classrooms ORDER BY id"))).scalars().all()
    assert "terminal" not in {c["name"] for c in columns}
    assert messages == ["kept"]
    assert rooms == ["a-101", "a-102"]

    async with await open_store(fresh_database_url) as store:
        assert await store.terminal_history("a-101") == []
    assert await version(fresh_database_url) == [head_revision()]


# --- inventory ---------------------------------------------------------------------------------


async def test_sync_inventory_stores_each_classrooms_terminal_id(
    database_url: str, store: Store
) -> None:
    await store.sync_inventory(config(INVENTORY))
    assert [(r["id"], r["terminal"]) for r in await rows(database_url, t.classrooms)] == [
        ("a-101", "ops-a101"),
        ("a-102", "a-102"),
    ]
    await store.sync_inventory(config(INVENTORY.replace('terminal = "ops-a101"', 'terminal = "x"')))
    assert [(r["id"], r["terminal"]) for r in await rows(database_url, t.classrooms)] == [
        ("a-101", "x"),
        ("a-102", "a-102"),
    ]


# --- terminal samples --------------------------------------------------------------------------


async def test_terminal_samples_are_written_and_read_back(store: Store) -> None:
    written = [
        *(heartbeat(T0 + 30 * i, seq=i, uptime_seconds=100.0 + 30 * i) for i in range(10)),
        heartbeat(T0 + 5, "a-102", 0, link_speed_mbps=None, cpu_percent=None),
        heartbeat(T0 + 6, "b-101", 0, school="3301000002", terminal="ops-a-101"),
        heartbeat(
            T0 + 300,
            seq=10,
            link_speed_mbps=None,
            cpu_percent=None,
            memory_used_bytes=None,
            disk_used_bytes=None,
        ),
    ]
    await store.write(terminal_samples=written)

    history = await store.terminal_history("a-101")
    assert history == [*written[:10], written[-1]]
    assert await store.terminal_history("a-102") == [written[10]]
    window = await store.terminal_history("a-101", T0 + 60, T0 + 150)
    assert [s.seq for s in window] == [2, 3, 4]
    newest = await store.terminal_history("a-101", limit=3)
    assert [s.seq for s in newest] == [8, 9, 10]
    # A terminal id is unique within its school only.
    by_terminal = await store.terminal_history(school="3301000002", terminal="ops-a-101")
    assert by_terminal == [written[11]]
    assert await store.terminal_history("nowhere") == []


async def test_terminal_history_follows_a_terminal_across_classrooms(store: Store) -> None:
    moved = [
        heartbeat(T0, "a-101", 1, terminal="ops-7"),
        heartbeat(T0 + 30, "a-102", 2, terminal="ops-7"),
        heartbeat(T0 + 60, "a-102", 0, terminal="ops-8"),
    ]
    await store.write(terminal_samples=moved)
    by_terminal = await store.terminal_history(school="3301000001", terminal="ops-7")
    assert by_terminal == moved[:2]
    assert [s.terminal for s in await store.terminal_history("a-102")] == ["ops-7", "ops-8"]


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"classroom": "a-101", "school": "3301000001", "terminal": "ops-a-101"},
        {"school": "3301000001"},
        {"terminal": "ops-a-101"},
        {"classroom": "a-101", "terminal": "ops-a-101"},
        {"classroom": "a-101", "limit": -1},
    ],
)
async def test_terminal_history_rejects_ambiguous_arguments(
    store: Store, arguments: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match=r"classroom|negative"):
        await store.terminal_history(**arguments)


async def test_replayed_heartbeats_add_no_duplicates(database_url: str, store: Store) -> None:
    batch = [heartbeat(T0 + 30 * i, seq=i) for i in range(20)]
    await store.write(terminal_samples=batch)
    await store.write(terminal_samples=batch)
    # Replayed from a spool later: received again at another time, still the same heartbeats.
    await store.write(terminal_samples=[replace(s, at=s.at + 3600) for s in batch[5:15]])
    assert await count(database_url, t.terminal_samples) == 20
    assert [s.at for s in await store.terminal_history("a-101")] == [s.at for s in batch]

    # The same sequence numbers from a new boot, or from another school, are new heartbeats.
    await store.write(
        terminal_samples=[
            heartbeat(T0 + 900, seq=0, boot_id="boot-2"),
            heartbeat(T0 + 900, seq=0, school="3301000002"),
            heartbeat(T0 + 900, seq=0, terminal="ops-other"),
        ]
    )
    assert await count(database_url, t.terminal_samples) == 23


async def test_a_batch_of_20000_heartbeats_is_written_in_one_call(
    database_url: str, store: Store
) -> None:
    # 200 classrooms of 20 schools, 100 heartbeats each, with other rows in the same batch.
    batch = [
        heartbeat(
            T0 + 30 * n + room / 10,
            f"r-{room:03d}",
            n,
            school=f"s-{room % 20:02d}",
            memory_used_bytes=room * 2**20 + n,
        )
        for n in range(100)
        for room in range(200)
    ]
    devices = [DeviceSample(T0, "core", True, 86_400.0, 0.125)]
    events = [Event(T0, EventKind.LINK_DOWN, "sw-a", interface="Gi0/1")]
    await store.write((), devices, events, batch)

    assert await count(database_url, t.terminal_samples) == 20_000
    assert await count(database_url, t.device_samples) == 1
    assert await count(database_url, t.events) == 1
    history = await store.terminal_history("r-042", limit=2000)
    assert history == [batch[n * 200 + 42] for n in range(100)]


async def test_prune_removes_old_heartbeats_and_keeps_events_and_availability(
    database_url: str, store: Store
) -> None:
    now, retention = T0, 3600.0
    await store.write(
        events=[Event(now - 86_400, EventKind.LINK_DOWN, "sw-a", message="yesterday")],
        terminal_samples=[
            heartbeat(now - 7200, seq=0),
            heartbeat(now - 3600.000001, seq=1),
            heartbeat(now - 3600, seq=2),  # exactly at the cutoff: kept
            heartbeat(now - 10, seq=3),
            heartbeat(now - 5000, "a-102", 0),
        ],
    )
    old_day = availability_row(date(2024, 8, 30), computed_at=now - 86_400)
    await store.upsert_availability([old_day])

    assert await store.prune(now, retention) == 3
    assert [s.seq for s in await store.terminal_history("a-101")] == [2, 3]
    assert await store.terminal_history("a-102") == []
    assert [e.message for e in await store.events()] == ["yesterday"]
    assert await store.availability(date(2024, 8, 1), date(2024, 9, 1)) == [old_day]
    assert await store.prune(now, retention) == 0
    assert await count(database_url, t.terminal_samples) == 2


# --- daily availability ------------------------------------------------------------------------


async def test_availability_upsert_is_idempotent_and_replaces_rows(
    database_url: str, store: Store
) -> None:
    first = [
        availability_row(date(2024, 9, 2), "a-101"),
        availability_row(date(2024, 9, 2), "a-102", online_seconds=0.0, switched_on=False),
        availability_row(date(2024, 9, 3), "a-101", lessons_used=7),
    ]
    await store.upsert_availability(first)
    await store.upsert_availability(first)
    assert await count(database_url, t.classroom_availability_daily) == 3
    assert await store.availability(date(2024, 9, 1), date(2024, 9, 30)) == first

    recomputed = replace(first[1], online_seconds=7215.0, switched_on=True, computed_at=T0 + 9)
    await store.upsert_availability([recomputed, availability_row(date(2024, 9, 4))])
    assert await store.availability(date(2024, 9, 1), date(2024, 9, 30)) == [
        first[0],
        recomputed,
        first[2],
        availability_row(date(2024, 9, 4)),
    ]
    assert await count(database_url, t.classroom_availability_daily) == 4
    await store.upsert_availability([])
    assert await count(database_url, t.classroom_availability_daily) == 4


async def test_availability_is_filtered_by_days_school_and_classroom(store: Store) -> None:
    rows_ = [
        availability_row(date(2024, 9, d), room, school)
        for d in (1, 2, 3)
        for room, school in (("a-101", "s1"), ("a-102", "s1"), ("b-101", "s2"))
    ]
    await store.upsert_availability(rows_[::-1])

    def days(found: list[ClassroomAvailability]) -> list[tuple[int, str]]:
        return [(r.day.day, r.classroom) for r in found]

    assert days(await store.availability(date(2024, 9, 2), date(2024, 9, 3))) == [
        (2, "a-101"),
        (2, "a-102"),
        (2, "b-101"),
    ]
    assert days(await store.availability(date(2024, 9, 1), date(2024, 9, 4), school="s2")) == [
        (1, "b-101"),
        (2, "b-101"),
        (3, "b-101"),
    ]
    assert days(
        await store.availability(date(2024, 9, 2), date(2024, 9, 9), classroom="a-102")
    ) == [
        (2, "a-102"),
        (3, "a-102"),
    ]
    assert await store.availability(date(2024, 9, 3), date(2024, 9, 3)) == []
    assert await store.availability(date(2024, 9, 1), date(2024, 9, 4), school="s9") == []


# --- times -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "at",
    [
        T0,
        1_700_000_000.123456,
        1_234_567_890.000001,
        1_718_000_000.999999,
        4_102_444_799.999999,  # 2099-12-31T23:59:59.999999Z
        86_400.000001,
    ],
)
async def test_terminal_times_round_trip_to_the_microsecond(
    database_url: str, store: Store, at: float
) -> None:
    await store.write(terminal_samples=[heartbeat(at)])
    row = availability_row(date(2099, 12, 31), computed_at=at)
    await store.upsert_availability([row])

    assert [s.at for s in await store.terminal_history("a-101")] == [at]
    assert [s.at for s in await store.terminal_history("a-101", at, at + 0.000001)] == [at]
    assert await store.terminal_history("a-101", at - 1, at) == []
    assert await store.availability(date(2099, 12, 31), date(2100, 1, 1)) == [row]
    stored = await rows(database_url, t.terminal_samples)
    assert [r["at"] for r in stored] == [datetime.fromtimestamp(at, UTC)]


# --- failures and seams ------------------------------------------------------------------------


async def test_a_dropped_database_gives_store_errors_without_the_password(
    postgres_server: PostgresServer,
) -> None:
    name = await postgres_server.create_database()
    url, secret = postgres_server.url_with_secret(name, DB_PASSWORD)
    store = await open_store(url)
    try:
        await postgres_server.drop_database(name)
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: store.write(terminal_samples=[heartbeat(T0)]),
            lambda: store.terminal_history("a-101"),
            lambda: store.upsert_availability([availability_row(date(2024, 9, 2))]),
            lambda: store.availability(date(2024, 9, 1), date(2024, 9, 2)),
        ]
        for call in calls:
            with pytest.raises(StoreError) as info:
                await call()
            assert name in str(info.value)
            assert secret not in "".join(traceback.format_exception(info.value))
    finally:
        await store.aclose()
        await postgres_server.drop_database(name)


async def test_the_store_meets_its_protocols_for_terminals(store: Store) -> None:
    writer: StoreProtocol = store
    reader: StoreReader = store
    await writer.write([], [], [], [heartbeat(T0), heartbeat(T0 + 30, seq=1)])
    await writer.upsert_availability([availability_row(date(2024, 9, 2))])
    assert [s.seq for s in await reader.terminal_history("a-101")] == [0, 1]
    assert len(await reader.availability(date(2024, 9, 2), date(2024, 9, 3))) == 1
    assert await writer.prune(T0 + 40, 20) == 1


async def test_interface_samples_of_0002_become_rollups(fresh_database_url: str) -> None:
    await migrate_to(fresh_database_url, "0002")
    at = T0 + 17.25  # in the bucket [T0, T0 + 300)
    polls = [
        # (time, status, speed, in, out)
        (at, 1, 1000.0, 1e6, 4e8),
        (at + 60, 1, 1000.0, 3e6, None),
        (at + 120, 2, None, None, None),  # the last poll of the bucket: down
        (T0 + 300, 1, 100.0, 5e6, 1e6),  # the next bucket
    ]
    engine = create_async_engine(async_url(fresh_database_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO interface_samples (device_id, interface, at, oper_status, "
                    "speed_mbps, in_bps, out_bps) VALUES ('sw-a', 'Gi0/1', :at, :status, "
                    ":speed, :in_bps, :out_bps)"
                ).bindparams(bindparam("at", type_=t.terminal_samples.c.at.type)),
                [
                    {"at": datetime.fromtimestamp(p, UTC), "status": s, "speed": v}
                    | {"in_bps": i, "out_bps": o}
                    for p, s, v, i, o in polls
                ],
            )
    finally:
        await engine.dispose()

    async with await open_store(fresh_database_url) as store:
        first, second = await store.interface_history("sw-a", "Gi0/1")
    assert "interface_samples" not in await table_names(fresh_database_url)
    assert (first.bucket_start, first.bucket_seconds, first.polls, first.up_polls) == (
        T0,
        300,
        3,
        2,
    )
    assert first.in_bps == pytest.approx(2e6)
    assert first.out_bps == pytest.approx(4e8)
    assert (first.in_bps_max, first.out_bps_max) == (3e6, 4e8)
    assert first.max_utilisation == pytest.approx(0.4)
    assert (first.oper_status, first.speed_mbps, first.last_at) == (2, None, at + 120)
    assert (second.bucket_start, second.polls, second.speed_mbps) == (T0 + 300, 1, 100.0)
    assert second.max_utilisation == pytest.approx(0.05)
    async with raw(fresh_database_url) as conn:
        assert await conn.run_sync(_schema_differences) == []


async def test_the_last_events_before_a_time_come_in_one_query_per_school(store: Store) -> None:
    online, offline = EventKind.TERMINAL_ONLINE, EventKind.TERMINAL_OFFLINE

    def ev(at: float, kind: EventKind, device: str, school: str = "s1") -> Event:
        return Event(T0 + at, kind, device, school, message=f"{device} {kind} {at}")

    await store.write(
        events=[
            ev(1, online, "t1"),
            ev(2, offline, "t1"),
            ev(3, online, "t1"),  # the newest online before 10
            ev(3, offline, "t1"),  # same time as another kind: each kind keeps its own
            ev(5, online, "t2"),
            ev(5, online, "t2"),  # a tie: one of the two, not both
            ev(20, offline, "t2"),  # after the time asked for
            ev(4, online, "t3", school="s2"),  # another school's terminal
            ev(6, EventKind.LINK_DOWN, "t1"),  # another kind
        ]
    )
    found = await store.last_events_before(
        school="s1", devices=["t1", "t2", "t4"], kinds=(online, offline), before=T0 + 10
    )
    got = sorted((e.device_id, e.kind, e.at - T0) for e in found)
    assert got == [("t1", offline, 3.0), ("t1", online, 3.0), ("t2", online, 5.0)]
    assert (
        await store.last_events_before(school="s1", devices=[], kinds=(online,), before=T0 + 10)
        == []
    )
