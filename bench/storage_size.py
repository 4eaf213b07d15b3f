"""Benchmark: database bytes per school per day and per month, through the real Collector and store.

A city of N schools (each: 10 switches of 57 ports polled every 60 s, 40 classroom terminals
heartbeating every 30 s, all day: the upper bound) runs for a simulated day on a fake clock
through ``edumon.collector.Collector`` into a real SQLite file and a real PostgreSQL database.
What the database grew by (SQLite: the file after a WAL checkpoint; PostgreSQL: the tables with
their indexes and TOAST) is divided by schools and days. Every terminal also reboots once a day
(a Will, a new boot, its events and a sample each). Nothing here waits for real time.

``--code DIR`` runs the same city through another checkout's code (e.g. ``git archive main``
unpacked), for the old layout's figure; use ``--hours 1`` there (it stores every poll of every
port: the day is extrapolated linearly from the hours run).

Usage: ``python bench/storage_size.py [--schools 2] [--hours 24] [--backends sqlite postgresql]
[--postgres URL] [--code DIR]``. PostgreSQL: an admin URL for a role that may create databases
(default ``$EDUMON_TEST_POSTGRES``, as the tests use, see tests/run.sh); a database is created
for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

SWITCHES = 10
PORTS = 57
ROOMS = 40
POLL_SECONDS = 60
HEARTBEAT_SECONDS = 30
T0 = 1_725_148_800.0  # 2024-09-01T00:00:00Z
DEFAULT_POSTGRES = "postgresql://edumon_test:edumon-test-7f3c2a@127.0.0.1:5432/postgres"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--schools", type=int, default=2)
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours (default a day)")
    p.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    p.add_argument("--postgres", default=os.environ.get("EDUMON_TEST_POSTGRES", DEFAULT_POSTGRES))
    p.add_argument("--code", type=Path, default=REPO, help="the edumon checkout to run")
    return p.parse_args()


ARGS = parse_args()
sys.path.insert(0, str(ARGS.code.resolve()))

from edumon.collector import Collector  # noqa: E402
from edumon.domain.inventory import ClassroomRef, Inventory, SchoolRef, SwitchLink  # noqa: E402
from edumon.domain.models import (  # noqa: E402
    AdminStatus,
    DeviceReading,
    InterfaceReading,
    OperStatus,
)
from edumon.domain.state import NetworkState  # noqa: E402
from edumon.domain.terminals import TerminalInventory, TerminalsState  # noqa: E402
from edumon.store import open_store  # noqa: E402
from edumon.wire import Heartbeat, Status  # noqa: E402


def city(schools: int) -> Inventory:
    """Per school: switch 0 carries the uplink (Gi0/1) and the links to switches 1..9 (Gi0/2..10);
    the 40 classrooms hang off switches 1..9."""
    refs: dict[str, SchoolRef] = {}
    switch_school: dict[str, str | None] = {}
    upstream: dict[str, SwitchLink] = {}
    for n in range(schools):
        code = f"33{n:08d}"
        sw = [f"{code}-sw{k}" for k in range(SWITCHES)]
        for k, s in enumerate(sw):
            switch_school[s] = code
            if k:
                upstream[s] = SwitchLink(s, sw[0], f"Gi0/{k + 1}")
        rooms = tuple(
            ClassroomRef(f"{code}-r{r:02d}", f"{r}班", sw[1 + r % 9], f"Gi0/{r // 9 + 1}")
            for r in range(ROOMS)
        )
        refs[code] = SchoolRef(code, code, "primary", sw[0], "Gi0/1", rooms)
    return Inventory(refs, switch_school, upstream)


def reading(device: str, at: float, minute: int) -> DeviceReading:
    octets = minute * POLL_SECONDS * 1_250_000  # 10 Mbit/s each way
    ports = tuple(
        InterfaceReading(
            if_index=i,
            name=f"Gi0/{i}",
            alias="",
            descr=f"GigabitEthernet0/{i}",
            oper_status=OperStatus.UP,
            admin_status=AdminStatus.UP,
            speed_mbps=1000.0,
            in_octets=octets,
            out_octets=octets // 2,
            in_errors=0,
            out_errors=0,
        )
        for i in range(1, PORTS + 1)
    )
    return DeviceReading(device, at, minute * 6000 + 100, device, "sim", ports, poll_seconds=0.2)


def heartbeat(school: str, terminal: str, boot: int, seq: int, at: float) -> Heartbeat:
    return Heartbeat(
        district="d",
        school=school,
        terminal=terminal,
        boot_id=f"{terminal}-boot{boot}",
        seq=seq,
        birth_seq=boot,
        observed_at=at,
        uptime_seconds=float(seq * HEARTBEAT_SECONDS),
        agent_version="1.4.2",
        nic="Ethernet",
        link_speed_mbps=1000,
        duplex="full",
        ip="10.20.30.40",
        mac="02:00:5e:10:20:30",
        cpu_percent=12.5,
        memory_used_bytes=3 * 2**30,
        memory_total_bytes=8 * 2**30,
        disk_used_bytes=60 * 2**30,
        disk_total_bytes=128 * 2**30,
    )


def will(school: str, terminal: str, boot: int, seq: int, at: float) -> Status:
    return Status(
        district="d",
        school=school,
        terminal=terminal,
        state="offline",
        reason="will",
        boot_id=f"{terminal}-boot{boot}",
        seq=seq,
        birth_seq=boot,
        observed_at=at,
        agent_version="1.4.2",
    )


async def applied(collector: Collector) -> None:
    while collector.queue_depth:  # noqa: ASYNC110  (no change notification on the queue)
        await asyncio.sleep(0)


async def simulate(url: str, schools: int, hours: float) -> dict[str, Any]:
    inventory = city(schools)
    terminals = TerminalsState(TerminalInventory.from_inventory(inventory, district="d"))
    refs = list(terminals.inventory)
    store = await open_store(url)
    now = [T0]
    collector = Collector(
        NetworkState(inventory),
        store,
        terminals=terminals,
        clock=lambda: now[0],
        queue_size=len(refs) * 2 + len(inventory.switch_school) + 1000,
        flush_seconds=3600.0,  # written below, once per simulated minute
    )
    consumer = asyncio.create_task(collector.run())
    boots = dict.fromkeys(range(len(refs)), 1)
    seqs = dict.fromkeys(range(len(refs)), 0)
    minutes = round(hours * 60)
    started = time.perf_counter()
    try:
        for minute in range(minutes):
            for sw in inventory.switch_school:
                await collector.submit(reading(sw, now[0], minute))
            for half in range(POLL_SECONDS // HEARTBEAT_SECONDS):
                at = now[0] + half * HEARTBEAT_SECONDS
                for i, ref in enumerate(refs):
                    seqs[i] += 1
                    # Each terminal reboots once a day, at its own minute: a Will, a new boot.
                    if half == 0 and minute % 1440 == (i * 7) % 1440 and minute:
                        collector.submit_terminal(
                            will(ref.school, ref.terminal, boots[i], seqs[i], at), at
                        )
                        boots[i] += 1
                        seqs[i] += 1
                    hb = heartbeat(ref.school, ref.terminal, boots[i], seqs[i], at)
                    collector.submit_terminal(hb, at)
                await applied(collector)
            now[0] += POLL_SECONDS
            if not await collector.flush():
                raise RuntimeError("a store write failed; see the log")
        await applied(collector)
        await collector.drain()
    finally:
        consumer.cancel()
        await store.aclose()
    return {
        "seconds": time.perf_counter() - started,
        "rows": collector.stats.rows_written_total,
        "events": sum(collector.stats.events_total.values()),
    }


def sqlite_bytes(path: Path) -> tuple[int, dict[str, int]]:
    """Bytes in use, and by table with its indexes (where SQLite has the dbstat table)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        tables: dict[str, int] = {}
        try:
            found = conn.execute(
                "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d "
                "LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1"
            ).fetchall()
        except sqlite3.OperationalError:
            found = []
        tables = {name: int(size) for name, size in found}
    return int((pages - free) * page_size), tables


async def postgres_bytes(url: str) -> tuple[int, dict[str, int]]:
    """Bytes of the tables with their indexes and TOAST, in all and by table."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("VACUUM ANALYZE")
        rows = await conn.fetch(
            "SELECT c.relname, pg_total_relation_size(c.oid) AS size FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'"
        )
    finally:
        await conn.close()
    tables = {r["relname"]: int(r["size"]) for r in rows}
    return sum(tables.values()), tables


def grown(before: tuple[int, dict[str, int]], after: tuple[int, dict[str, int]]) -> dict[str, Any]:
    by_table = {
        name: size - before[1].get(name, 0)
        for name, size in after[1].items()
        if size - before[1].get(name, 0) > 0
    }
    return {"bytes": after[0] - before[0], "tables": by_table}


async def measure(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "edumon.db"
            url = f"sqlite:///{path}"
            await (await open_store(url)).aclose()
            empty = sqlite_bytes(path)
            result = await simulate(url, args.schools, args.hours)
            result |= grown(empty, sqlite_bytes(path))
        return result
    import asyncpg
    from sqlalchemy.engine import make_url

    admin = make_url(args.postgres)
    name = f"edumon_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin.set(drivername="postgresql").render_as_string(False))
    await conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        await (await open_store(url)).aclose()
        empty = await postgres_bytes(url)
        result = await simulate(url, args.schools, args.hours)
        result |= grown(empty, await postgres_bytes(url))
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
    return result


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError


async def main() -> None:
    args = ARGS
    print(
        f"city: {args.schools} schools × ({SWITCHES} switches × {PORTS} ports polled every "
        f"{POLL_SECONDS} s, {ROOMS} terminals every {HEARTBEAT_SECONDS} s, all day); "
        f"{args.hours:g} simulated hours; code: {args.code}"
    )
    print(
        f"{'backend':<11} {'rows':>10} {'events':>7} {'grew':>12} {'/school/day':>14} "
        f"{'/school/month':>15} {'run s':>7}"
    )
    scale = 24 / args.hours / args.schools
    for backend in args.backends:
        r = await measure(backend, args)
        per_day = r["bytes"] * scale
        print(
            f"{backend:<11} {r['rows']:>10,} {r['events']:>7,} {human(r['bytes']):>12} "
            f"{human(per_day):>14} {human(per_day * 30):>15} {r['seconds']:>7.1f}"
        )
        for name, size in sorted(r["tables"].items(), key=lambda kv: -kv[1]):
            print(f"{'':<11}   {name:<28} {human(size * scale * 30):>12} /school/month")


if __name__ == "__main__":
    asyncio.run(main())
