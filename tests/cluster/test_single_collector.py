"""One collector with ``[cluster]`` on SQLite: it holds every shard and runs every school."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

from edumon import app
from edumon.config import parse_config
from edumon.runtime import Runtime
from tests.fixtures.mqtt import MOSQUITTO_HOST, MOSQUITTO_PORT

SCHOOLS = [f"S{i}" for i in range(6)]


async def test_a_lone_collector_on_sqlite_runs_every_school(tmp_path: Path) -> None:
    district = "one" + uuid.uuid4().hex[:6]
    schools = "".join(
        f"""
[[switches]]
id = "{code}-core"
host = "127.0.0.1"
port = 9
timeout_seconds = 0.2
retries = 0
snmp = {{ version = "2c", community = "lone-collector" }}

[[schools]]
code = "{code}"
name = "学校{code}"
kind = "primary"
uplink = {{ switch = "{code}-core", port = "Gi0/1" }}
"""
        for code in SCHOOLS
    )
    config = parse_config(
        f"""
[district]
code = "{district}"
name = "单采集器"

[storage]
url = "sqlite:///{tmp_path / "edumon.db"}"

[api]
listen = "127.0.0.1:0"

[polling]
interval_seconds = 60

[mqtt]
broker = "external"
host = "{MOSQUITTO_HOST}"
port = {MOSQUITTO_PORT}

[cluster]
collector_id = "only"
shards = 4
lease_seconds = 4
renew_seconds = 0.5
{schools}"""
    )
    stop = asyncio.Event()
    ready: asyncio.Queue[Runtime] = asyncio.Queue()
    task = asyncio.create_task(
        app.run(config, stop=stop, on_ready=lambda runtime, _url: ready.put_nowait(runtime))
    )
    try:
        async with asyncio.timeout(30):
            runtime = await ready.get()
        # Alone, it takes every shard in its first round after joining.
        assert runtime.cluster is not None
        assert runtime.cluster.active == frozenset(range(4))
        assert set(runtime.config.schools) == set(SCHOOLS)
        assert runtime.ingest is not None
        assert runtime.ingest.stats.connected or await _connected(runtime)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    # A clean stop gives every shard back and leaves the members.
    with sqlite3.connect(tmp_path / "edumon.db") as db:
        assert db.execute("SELECT count(*) FROM cluster_leases WHERE owner IS NULL").fetchone() == (
            4,
        )
        assert db.execute("SELECT count(*) FROM cluster_members").fetchone() == (0,)


async def _connected(runtime: Runtime) -> bool:
    """Whether the shards' ingests connect to the broker within 20 s (polled: no event)."""
    for _ in range(200):
        if runtime.ingest is not None and runtime.ingest.stats.connected:
            return True
        await asyncio.sleep(0.1)
    return False
