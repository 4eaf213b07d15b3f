"""The store against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import asyncio
import socket
import traceback
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Table, func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from edumon.config import Config, parse_config
from edumon.domain.models import DeviceSample, Event, EventKind, OperStatus
from edumon.domain.rollups import InterfaceRollup
from edumon.errors import StoreError
from edumon.store import Store, StoreProtocol, StoreReader, async_url, open_store
from edumon.store import tables as t
from edumon.store.repository import MIGRATIONS_DIR
from tests.fixtures.databases import PostgresServer

COMMUNITY = "Comm-77d1c2-NEVER-STORED"
DB_PASSWORD = "DbPw-3e9a51-NEVER-SHOWN"
T0 = 1_725_148_800.0  # 2024-09-01T00:00:00Z

INVENTORY_V1 = f"""
[district]
code = "demo-county"
name = "示范县"

[credentials.campus]
version = "2c"
community = "{COMMUNITY}"

[[switches]]
id = "core"
host = "10.0.0.1"
credentials = "campus"

[[switches]]
id = "sw-a"
school = "3301000001"
host = "10.1.0.2"
credentials = "campus"

[[switches]]
id = "spare"
host = "10.0.0.9"
credentials = "campus"

[[switches]]
id = "sw-b"
school = "3301000002"
host = "10.2.0.2"
port = 1161
credentials = "campus"

[[schools]]
code = "3301000001"
name = "第一小学"
kind = "primary"
uplink = {{ switch = "core", port = "Gi1/0/1" }}
classrooms = [
  {{ id = "a-101", name = "一年级1班", switch = "sw-a", port = "Gi0/1" }},
  {{ id = "a-102", name = "一年级2班", switch = "sw-a", port = "Gi0/2" }},
]

[[schools]]
code = "3301000002"
name = "第二中学"
kind = "middle"
uplink = {{ switch = "core", port = "Gi1/0/2" }}
classrooms = [{{ id = "b-101", name = "初一1班", switch = "sw-b", port = "Gi0/1" }}]
"""

# School A renamed, a-102 gone, a-101 moved to another port, sw-a re-addressed;
# school B and its switch gone; school C new.
INVENTORY_V2 = f"""
[district]
code = "demo-county"
name = "示范县教育局"

[credentials.campus]
version = "2c"
community = "{COMMUNITY}"

[[switches]]
id = "core"
host = "10.0.0.1"
credentials = "campus"

[[switches]]
id = "sw-a"
school = "3301000001"
host = "10.1.0.3"
credentials = "campus"

[[switches]]
id = "sw-c"
school = "3301000003"
host = "10.3.0.2"
credentials = "campus"

[[schools]]
code = "3301000001"
name = "实验第一小学"
kind = "primary"
uplink = {{ switch = "core", port = "Gi1/0/1" }}
classrooms = [{{ id = "a-101", name = "一年级1班", switch = "sw-a", port = "Gi0/5" }}]

[[schools]]
code = "3301000003"
name = "第三中学"
kind = "high"
uplink = {{ switch = "core", port = "Gi1/0/3" }}
classrooms = [{{ id = "c-101", name = "高一1班", switch = "sw-c", port = "Gi0/1" }}]
"""

OTHER_DISTRICT = f"""
[district]
code = "other-county"
name = "邻县"

[[switches]]
id = "other-core"
host = "10.9.0.1"
snmp = {{ version = "2c", community = "{COMMUNITY}" }}

[[schools]]
code = "3302000001"
name = "邻县小学"
kind = "primary"
uplink = {{ switch = "other-core", port = "Gi1/0/1" }}
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


def head_revision() -> str:
    config_ = AlembicConfig()
    config_.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config_).get_current_head()
    assert head is not None
    return head


def sample(
    at: float, device: str = "sw-a", interface: str = "Gi0/1", **changes: Any
) -> InterfaceRollup:
    """A 5-minute roll-up whose bucket starts at ``at``."""
    values: dict[str, Any] = {
        "bucket_seconds": 300,
        "polls": 5,
        "up_polls": 5,
        "in_bps": 1.5e6,
        "out_bps": 2.5e5,
        "in_bps_max": 3e6,
        "out_bps_max": 5e5,
        "max_utilisation": 0.003,
        "speed_mbps": 1000.0,
        "oper_status": OperStatus.UP,
        "last_at": at + 240,
    }
    values.update(changes)
    return InterfaceRollup(device_id=device, interface=interface, bucket_start=at, **values)


def device_sample(at: float, device: str = "sw-a", reachable: bool = True) -> DeviceSample:
    return DeviceSample(
        at=at,
        device_id=device,
        reachable=reachable,
        uptime_seconds=86_400.25 if reachable else None,
        poll_seconds=0.125,
    )


def assert_no_secret(exc: BaseException, secret: str) -> None:
    assert secret not in str(exc)
    assert secret not in repr(exc)
    assert secret not in "".join(traceback.format_exception(exc))


# --- migrations --------------------------------------------------------------------------------


async def test_fresh_database_is_migrated_and_reopening_is_idempotent(
    fresh_database_url: str,
) -> None:
    first = await open_store(fresh_database_url)
    try:
        await first.write(events=[Event(T0, EventKind.DEVICE_REBOOT, "sw-a", message="first")])
    finally:
        await first.aclose()

    async with raw(fresh_database_url) as conn:
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    assert version == [(head_revision(),)]
    assert set(t.metadata.tables) <= names

    async with await open_store(fresh_database_url) as second:
        found = await second.events()
        await second.write(events=[Event(T0 + 1, EventKind.LINK_UP, "sw-a", message="second")])
        assert [e.message for e in found] == ["first"]
        assert [e.message for e in await second.events()] == ["second", "first"]
    async with raw(fresh_database_url) as conn:
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert version == [(head_revision(),)]


def _schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, t.metadata))


async def test_migrations_build_exactly_the_declared_tables(fresh_database_url: str) -> None:
    async with await open_store(fresh_database_url):
        pass
    async with raw(fresh_database_url) as conn:
        differences = await conn.run_sync(_schema_differences)
    assert differences == []


async def test_stores_opened_at_once_on_a_fresh_database_all_succeed(
    fresh_database_url: str,
) -> None:
    stores = await asyncio.gather(*(open_store(fresh_database_url) for _ in range(3)))
    try:
        assert [await s.ping() for s in stores] == [True, True, True]
    finally:
        for s in stores:
            await s.aclose()
    async with raw(fresh_database_url) as conn:
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert version == [(head_revision(),)]


async def test_a_database_from_a_newer_edumon_is_refused(fresh_database_url: str) -> None:
    async with await open_store(fresh_database_url):
        pass
    async with raw(fresh_database_url) as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        await conn.commit()
    with pytest.raises(StoreError, match="newer edumon"):
        await open_store(fresh_database_url)


async def test_postgres_timestamps_are_timestamptz(database_url: str, store: Store) -> None:
    async with raw(database_url) as conn:
        columns = await conn.run_sync(lambda c: inspect(c).get_columns("events"))
        dialect = conn.dialect.name
    at = next(c for c in columns if c["name"] == "at")
    if dialect == "postgresql":
        assert "TIMESTAMP" in str(at["type"]).upper()
        assert at["type"].timezone is True
    else:
        assert "TIMESTAMP" in str(at["type"]).upper() or "DATETIME" in str(at["type"]).upper()


# --- inventory ---------------------------------------------------------------------------------


async def test_sync_inventory_is_idempotent_and_follows_config_changes(
    database_url: str, store: Store
) -> None:
    await store.sync_inventory(config(INVENTORY_V1))
    first = {name: await rows(database_url, table) for name, table in t.metadata.tables.items()}
    await store.sync_inventory(config(INVENTORY_V1))
    again = {name: await rows(database_url, table) for name, table in t.metadata.tables.items()}
    assert again == first
    assert first["districts"] == [{"code": "demo-county", "name": "示范县"}]
    assert [(s["code"], s["name"], s["uplink_port"]) for s in first["schools"]] == [
        ("3301000001", "第一小学", "Gi1/0/1"),
        ("3301000002", "第二中学", "Gi1/0/2"),
    ]
    assert [(r["id"], r["school"], r["port"]) for r in first["classrooms"]] == [
        ("a-101", "3301000001", "Gi0/1"),
        ("a-102", "3301000001", "Gi0/2"),
        ("b-101", "3301000002", "Gi0/1"),
    ]
    switches = config(INVENTORY_V1).switches
    assert [(d["id"], d["school"], d["host"], d["port"]) for d in first["devices"]] == [
        (i, switches[i].school, switches[i].host, switches[i].port) for i in sorted(switches)
    ]
    assert ("spare", None, "10.0.0.9", 161) in [
        (d["id"], d["school"], d["host"], d["port"]) for d in first["devices"]
    ]
    assert ("sw-b", "3301000002", "10.2.0.2", 1161) in [
        (d["id"], d["school"], d["host"], d["port"]) for d in first["devices"]
    ]

    await store.sync_inventory(config(INVENTORY_V2))
    assert await rows(database_url, t.districts) == [
        {"code": "demo-county", "name": "示范县教育局"}
    ]
    schools = await rows(database_url, t.schools)
    assert [(s["code"], s["name"], s["kind"]) for s in schools] == [
        ("3301000001", "实验第一小学", "primary"),
        ("3301000003", "第三中学", "high"),
    ]
    classrooms = await rows(database_url, t.classrooms)
    assert [(r["id"], r["school"], r["port"]) for r in classrooms] == [
        ("a-101", "3301000001", "Gi0/5"),
        ("c-101", "3301000003", "Gi0/1"),
    ]
    devices = await rows(database_url, t.devices)
    assert [(d["id"], d["host"]) for d in devices] == [
        ("core", "10.0.0.1"),
        ("sw-a", "10.1.0.3"),
        ("sw-c", "10.3.0.2"),
    ]

    everything = [await rows(database_url, table) for table in t.metadata.tables.values()]
    assert COMMUNITY not in repr(everything)


async def test_sync_inventory_leaves_other_districts_and_shards_alone(
    database_url: str, store: Store
) -> None:
    await store.sync_inventory(config(OTHER_DISTRICT))
    await store.sync_inventory(config(INVENTORY_V1))
    await store.sync_inventory(config(INVENTORY_V2), remove_missing=False)
    schools = [s["code"] for s in await rows(database_url, t.schools)]
    # Kept: the other district's school, and V1's school B (removal was not asked for).
    assert schools == ["3301000001", "3301000002", "3301000003", "3302000001"]
    await store.sync_inventory(config(INVENTORY_V2))
    schools = [s["code"] for s in await rows(database_url, t.schools)]
    assert schools == ["3301000001", "3301000003", "3302000001"]


# --- samples and events ------------------------------------------------------------------------


def _events() -> list[Event]:
    return [
        Event(T0 + 1.000001, EventKind.LINK_DOWN, "sw-a", "s1", "Gi0/1", "a-101", "端口断开"),
        Event(T0 + 2, EventKind.LINK_UP, "sw-a", "s1", "Gi0/1", "a-101", "端口恢复"),
        Event(T0 + 3, EventKind.DEVICE_REBOOT, "sw-b", "s2", None, None, "rebooted"),
        Event(
            T0 + 4,
            EventKind.SPEED_DOWNGRADE,
            "sw-a",
            "s1",
            "Gi0/2",
            "a-102",
            "1000M → 100M",
            {"from_mbps": 1000.0, "to_mbps": 100.0, "ports": ["Gi0/2"], "note": None},
        ),
        Event(T0 + 5, EventKind.DEVICE_UNREACHABLE, "core", None, None, None, "timeout"),
        Event(T0 + 5, EventKind.LINK_DOWN, "sw-b", "s2", "Gi0/9", None, "same second"),
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, [5, 4, 3, 2, 1, 0]),
        ({"school": "s1"}, [3, 1, 0]),
        ({"school": "nowhere"}, []),
        ({"kind": EventKind.LINK_DOWN}, [5, 0]),
        ({"kind": "device_reboot"}, [2]),
        ({"device": "sw-a"}, [3, 1, 0]),
        ({"since": T0 + 3}, [5, 4, 3, 2]),
        ({"until": T0 + 3}, [1, 0]),
        ({"since": T0 + 2, "until": T0 + 5}, [3, 2, 1]),
        ({"since": T0 + 1.000001, "until": T0 + 1.000002}, [0]),
        ({"limit": 2}, [5, 4]),
        ({"limit": 2, "offset": 2}, [3, 2]),
        ({"offset": 6}, []),
        ({"limit": 0}, []),
        ({"school": "s1", "kind": EventKind.LINK_DOWN}, [0]),
        ({"device": "sw-b", "since": T0 + 4}, [5]),
    ],
)
async def test_events_are_listed_newest_first_with_filters(
    store: Store, filters: dict[str, Any], expected: list[int]
) -> None:
    written = _events()
    await store.write(events=written)
    assert await store.events(**filters) == [written[i] for i in expected]


async def test_events_reject_negative_paging(store: Store) -> None:
    with pytest.raises(ValueError, match="negative"):
        await store.events(limit=-1)
    with pytest.raises(ValueError, match="negative"):
        await store.events(offset=-1)


async def test_interface_history_is_oldest_first_and_keeps_the_newest(store: Store) -> None:
    down = {"oper_status": OperStatus.DOWN, "speed_mbps": None, "in_bps": None, "up_polls": 2}
    await store.write(
        interface_rollups=[
            *(sample(T0 + 300 * i, polls=i + 1) for i in range(10)),
            sample(T0, interface="Gi0/2"),
            sample(T0, device="sw-b"),
            sample(T0 + 3000, **down),
        ]
    )
    history = await store.interface_history("sw-a", "Gi0/1")
    assert [s.polls for s in history] == [*range(1, 11), 5]
    assert history[-1] == sample(T0 + 3000, **down)
    window = await store.interface_history("sw-a", "Gi0/1", T0 + 600, T0 + 1500)
    assert [s.bucket_start for s in window] == [T0 + 600, T0 + 900, T0 + 1200]
    newest = await store.interface_history("sw-a", "Gi0/1", limit=3)
    assert [s.bucket_start for s in newest] == [T0 + 2400, T0 + 2700, T0 + 3000]
    assert await store.interface_history("sw-a", "Gi9/9") == []


async def test_a_bucket_written_twice_is_merged(store: Store) -> None:
    # A restart in mid-bucket: the first part written on shutdown, the rest after the start.
    first = sample(T0, polls=2, up_polls=2, in_bps=100.0, out_bps=None, last_at=T0 + 60)
    second = sample(
        T0,
        polls=3,
        up_polls=1,
        in_bps=200.0,
        out_bps=50.0,
        in_bps_max=9e6,
        out_bps_max=None,
        max_utilisation=None,
        speed_mbps=None,
        oper_status=OperStatus.DOWN,
        last_at=T0 + 240,
    )
    await store.write(interface_rollups=[first])
    await store.write(interface_rollups=[second])
    late = replace(first, polls=1, up_polls=1, in_bps=400.0, last_at=T0 + 1)  # an older poll
    await store.write(interface_rollups=[late])
    [merged] = await store.interface_history("sw-a", "Gi0/1")
    assert merged.polls == 6
    assert merged.up_polls == 4
    assert merged.in_bps == pytest.approx((100.0 * 2 + 200.0 * 3 + 400.0) / 6)
    assert merged.out_bps == 50.0
    assert (merged.in_bps_max, merged.out_bps_max) == (9e6, 5e5)
    assert merged.max_utilisation == 0.003
    # Status and speed are those of the latest poll, whichever write brought it.
    assert (merged.oper_status, merged.speed_mbps, merged.last_at) == (
        OperStatus.DOWN,
        None,
        T0 + 240,
    )


async def test_a_batch_of_5000_samples_is_written_in_one_call(
    database_url: str, store: Store
) -> None:
    interfaces = [(f"sw-{d:03d}", f"Gi0/{i}") for d in range(100) for i in range(50)]
    batch = [
        sample(T0, device, name, in_bps=float(n), out_bps=2.0 * n)
        for n, (device, name) in enumerate(interfaces)
    ]
    devices = [device_sample(T0, f"sw-{d:03d}", reachable=d % 7 != 0) for d in range(100)]
    events = [Event(T0, EventKind.LINK_DOWN, f"sw-{d:03d}", interface="Gi0/1") for d in range(10)]
    await store.write(batch, devices, events)

    assert await count(database_url, t.interface_rollups) == 5000
    assert await count(database_url, t.device_samples) == 100
    assert await count(database_url, t.events) == 10
    seen = await rows(database_url, t.interfaces)
    assert sorted((r["device_id"], r["name"]) for r in seen) == sorted(interfaces)
    assert {r["first_seen"] for r in seen} == {datetime.fromtimestamp(T0, UTC)}
    assert await store.interface_history("sw-042", "Gi0/17") == [batch[42 * 50 + 17]]
    assert await store.device_history("sw-007") == [devices[7]]
    assert (await store.device_history("sw-008"))[0].reachable is True


async def test_a_replayed_batch_adds_no_duplicate_samples(database_url: str, store: Store) -> None:
    batch = [sample(T0 + 300 * (i // 5), interface=f"Gi0/{i % 5}") for i in range(20)]
    devices = [device_sample(T0 + i) for i in range(3)]
    await store.write(batch, devices)
    await store.write(batch, devices)
    # Roll-ups of one bucket merge (test_a_bucket_written_twice_is_merged): one row each.
    assert await count(database_url, t.interface_rollups) == 20
    assert await count(database_url, t.device_samples) == 3
    assert await count(database_url, t.interfaces) == 5


async def test_an_empty_write_is_a_no_op(database_url: str, store: Store) -> None:
    await store.write()
    await store.write([], [], [])
    assert await count(database_url, t.events) == 0


async def test_prune_deletes_old_samples_and_keeps_events(database_url: str, store: Store) -> None:
    now, retention = T0, 3600.0
    await store.write(
        interface_rollups=[
            sample(now - 7200),
            sample(now - 3600.000001),
            sample(now - 3600),  # a bucket starting exactly at the cutoff: kept
            sample(now - 10),
        ],
        device_samples=[device_sample(now - 7200), device_sample(now - 10)],
        events=[Event(now - 365 * 86_400, EventKind.DEVICE_REBOOT, "sw-a", message="last year")],
    )

    assert await store.prune(now, retention) == 3
    history = await store.interface_history("sw-a", "Gi0/1")
    assert [s.bucket_start for s in history] == [now - 3600, now - 10]
    assert [s.at for s in await store.device_history("sw-a")] == [now - 10]
    assert [e.message for e in await store.events()] == ["last year"]
    assert await count(database_url, t.interfaces) == 1
    assert await store.prune(now, retention) == 0
    with pytest.raises(ValueError, match="positive"):
        await store.prune(now, 0)


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
async def test_times_round_trip_to_the_microsecond(
    database_url: str, store: Store, at: float
) -> None:
    await store.write(
        [sample(at)],
        [device_sample(at)],
        [Event(at, EventKind.LINK_UP, "sw-a", message="t")],
    )
    [rollup] = await store.interface_history("sw-a", "Gi0/1")
    assert (rollup.bucket_start, rollup.last_at) == (at, at + 240)
    assert [s.at for s in await store.device_history("sw-a")] == [at]
    assert [e.at for e in await store.events()] == [at]
    assert [e.at for e in await store.events(since=at, until=at + 0.000001)] == [at]
    async with raw(database_url) as conn:
        stored = (await conn.execute(select(t.events.c.at))).scalar_one()
    assert stored == datetime.fromtimestamp(at, UTC)
    assert stored.utcoffset() is not None
    assert stored.utcoffset().total_seconds() == 0


async def test_times_do_not_depend_on_the_postgres_session_time_zone(
    postgres_server: PostgresServer,
) -> None:
    name = await postgres_server.create_database()
    try:
        conn = await postgres_server._connect()
        try:
            await conn.execute(f"ALTER DATABASE \"{name}\" SET timezone = 'Asia/Shanghai'")
        finally:
            await conn.close()
        async with await open_store(postgres_server.url(name)) as store:
            await store.write(events=[Event(T0 + 0.5, EventKind.LINK_UP, "sw-a")])
            assert [e.at for e in await store.events(since=T0, until=T0 + 1)] == [T0 + 0.5]
        async with raw(postgres_server.url(name)) as raw_conn:
            local = (
                await raw_conn.execute(text("SELECT to_char(at, 'HH24:MI:SS.US') FROM events"))
            ).scalar_one()
        assert local == "08:00:00.500000"  # stored as an instant, shown in Beijing time
    finally:
        await postgres_server.drop_database(name)


# --- failures ----------------------------------------------------------------------------------


async def test_an_unreachable_database_raises_store_error_without_the_password() -> None:
    # A bound socket that does not listen: connections to its port are refused.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        url = f"postgresql://edumon:{DB_PASSWORD}@127.0.0.1:{port}/edumon"
        with pytest.raises(StoreError) as info:
            await open_store(url)
    message = str(info.value)
    assert f"127.0.0.1:{port}/edumon" in message
    assert "refused" in message.lower()
    assert_no_secret(info.value, DB_PASSWORD)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"mysql://root:{DB_PASSWORD}@127.0.0.1/edumon", "unsupported database"),
        (f"postgresql://u:{DB_PASSWORD}@[::1/edumon", "not a database URL"),
        (f"postgresql+psycopg2://u:{DB_PASSWORD}@127.0.0.1:notaport/x", "not a database URL"),
    ],
)
async def test_a_bad_url_raises_store_error_without_the_password(url: str, expected: str) -> None:
    with pytest.raises(StoreError, match=expected) as info:
        await open_store(url)
    assert_no_secret(info.value, DB_PASSWORD)


async def test_a_sqlite_path_that_cannot_be_created_raises_store_error(tmp_path: Any) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    url = f"sqlite:///{blocker / 'sub' / 'edumon.db'}"
    with pytest.raises(StoreError, match="cannot create its directory") as info:
        await open_store(url)
    assert str(blocker) in str(info.value)


async def test_a_dropped_database_gives_store_errors_and_a_failed_ping(
    postgres_server: PostgresServer,
) -> None:
    name = await postgres_server.create_database()
    # The role's password (or, on a trust-authentication server, one it ignores): the Store
    # must never show it.
    url, secret = postgres_server.url_with_secret(name, DB_PASSWORD)
    store = await open_store(url)
    try:
        assert await store.ping() is True
        await store.write([sample(T0)])
        await postgres_server.drop_database(name)
        with pytest.raises(StoreError) as info:
            await store.write([sample(T0 + 60)])
        assert name in str(info.value)
        assert_no_secret(info.value, secret)
        with pytest.raises(StoreError):
            await store.events()
        assert await store.ping() is False
    finally:
        await store.aclose()
        await postgres_server.drop_database(name)


async def test_the_store_survives_its_connections_being_terminated(
    postgres_server: PostgresServer, postgres_database: str
) -> None:
    await postgres_server.truncate_all(postgres_database)
    url = postgres_server.url(postgres_database)
    async with await open_store(url) as store:
        await store.write([sample(T0)])
        # What a server restart does to the pooled connection, without stopping the server.
        assert await postgres_server.terminate_connections(postgres_database) >= 1

        pending: list[Sequence[InterfaceRollup]] = [[sample(T0 + 300)], [sample(T0 + 600)]]
        try:
            await store.write(pending[0])
        except StoreError:
            # Allowed once: the caller keeps the batch and writes it with the next one.
            pending[1] = [*pending[0], *pending[1]]
        await store.write(pending[1])
        assert [s.bucket_start for s in await store.interface_history("sw-a", "Gi0/1")] == [
            T0,
            T0 + 300,
            T0 + 600,
        ]
        assert await store.ping() is True


async def test_store_works_through_its_protocols(store: Store) -> None:
    writer: StoreProtocol = store
    reader: StoreReader = store
    await writer.write([sample(T0)], [device_sample(T0)], [])
    assert await writer.prune(T0 + 10, 5) == 2
    assert await reader.ping() is True
    assert await reader.interface_history("sw-a", "Gi0/1") == []
