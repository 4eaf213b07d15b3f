"""A failing disk or database while `edumon run` writes: it survives, reports, loses nothing.

Real processes: the daemon, its embedded broker fed heartbeats by this test, SQLite files made
immutable (``chattr +i``, as root) or their disk filled (a small tmpfs), and a PostgreSQL
server of the test's own stopped for 30 s. Every heartbeat published is a stored terminal
sample (each one changes the link speed, so none is thinned): published = accepted = stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import asyncpg
import httpx
import pytest

from tests.fixtures.mqtt import heartbeat, wire_message
from tests.fixtures.ports import free_tcp_port
from tests.fixtures.private_postgres import PrivatePostgres

DISTRICT = "sf"
TERMINALS = [f"T{i}" for i in range(1, 5)]
LATE_TERMINALS = [f"T{i}" for i in range(5, 9)]
"""Heard from first during the fault: their coming online is an event while writes fail."""
PUBLISH_EVERY_SECONDS = 0.05
START_SECONDS = 60.0
STOP_SECONDS = 60.0
FAULT_SECONDS = 8.0


def config_text(storage_url: str, api_port: int, mqtt_port: int) -> str:
    rooms = "\n".join(
        f'[[schools.classrooms]]\nid = "S1-{t}"\nname = "教室 {t}"\nterminal = "{t}"\n'
        for t in TERMINALS + LATE_TERMINALS
    )
    return f"""
[district]
code = "{DISTRICT}"
name = "存储故障测试县"

[storage]
url = "{storage_url}"
flush_seconds = 0.2

[api]
listen = "127.0.0.1:{api_port}"

[mqtt]
broker = "embedded"
listen = "127.0.0.1:{mqtt_port}"
# No terminal times out during the test: every event is one the test caused.
heartbeat_interval_seconds = 600

[[switches]]
id = "core"
host = "127.0.0.1"
port = 9
timeout_seconds = 0.2
retries = 0
snmp = {{ version = "2c", community = "unused" }}

[[schools]]
code = "S1"
name = "第一小学"
kind = "primary"
uplink = {{ switch = "core", port = "Gi0/1" }}

{rooms}
"""


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    base: str
    mqtt_port: int
    log: Path

    def alive(self) -> None:
        if self.proc.poll() is not None:
            code = self.proc.returncode
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
            tail = self.log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"edumon died ({how}) while its storage failed:\n{tail}")


async def start_daemon(tmp_path: Path, storage_url: str) -> Daemon:
    api_port, mqtt_port = free_tcp_port(), free_tcp_port()
    config = tmp_path / "edumon.toml"
    config.write_text(config_text(storage_url, api_port, mqtt_port), encoding="utf-8")
    log = tmp_path / "edumon.log"
    with log.open("wb") as out:
        # Its own directory: `-m` puts the working directory first on sys.path.
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "edumon", "run", "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    daemon = Daemon(proc, f"http://127.0.0.1:{api_port}", mqtt_port, log)
    await until("the API answers", lambda: ready_status(daemon), daemon, START_SECONDS)
    return daemon


async def ready_status(daemon: Daemon) -> int | None:
    try:
        async with httpx.AsyncClient(timeout=15) as http:
            return (await http.get(f"{daemon.base}/readyz")).status_code
    except httpx.HTTPError:
        return None


async def metrics(daemon: Daemon) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=15) as http:
        text = (await http.get(f"{daemon.base}/metrics")).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"(edumon_(?:store|collector)_[a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if match:
            out[match[1] + (match[2] or "")] = float(match[3])
    return out


def total(figures: dict[str, float], name: str) -> float:
    return sum(v for k, v in figures.items() if k == name or k.startswith(name + "{"))


async def until(
    what: str, probe: Callable[[], Awaitable[Any]], daemon: Daemon, within: float = 60.0
) -> Any:
    """Probe every 0.2 s until it answers something truthy; fail if the daemon dies first."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        daemon.alive()
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {within} s: {what}; last {last!r}")


@dataclass
class Publisher:
    """Heartbeats of every terminal in turn, QoS 1, each acknowledged by the broker."""

    port: int
    published: int = 0
    seq: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TERMINALS, 0))

    def add_late_terminals(self) -> None:
        self.seq.update(dict.fromkeys(LATE_TERMINALS, 0))

    async def run(self, stop: asyncio.Event) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port, identifier="storage-faults") as client:
            while not stop.is_set():
                for terminal in list(self.seq):
                    self.seq[terminal] += 1
                    seq = self.seq[terminal]
                    beat = heartbeat(
                        DISTRICT,
                        "S1",
                        terminal,
                        seq=seq,
                        boot_id=f"boot-{terminal}",
                        birth_seq=1,
                        observed_at=time.time(),
                        uptime_seconds=100.0 + seq,
                        # A new speed each time: every heartbeat is a stored sample.
                        link_speed_mbps=1000 if seq % 2 else 100,
                    )
                    topic, payload = wire_message(beat)
                    await client.publish(topic, payload, qos=1)
                    self.published += 1
                await asyncio.sleep(PUBLISH_EVERY_SECONDS)


@contextlib.asynccontextmanager
async def publishing(daemon: Daemon) -> AsyncIterator[Publisher]:
    publisher = Publisher(daemon.mqtt_port)
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    try:
        yield publisher
    finally:
        stop.set()
        # A broker gone with its daemon is what the daemon's death reports, not this.
        with contextlib.suppress(aiomqtt.MqttError):
            await asyncio.wait_for(task, 30)


@dataclass
class Outage:
    """What the daemon showed while its storage failed."""

    readyz: int
    detail: str
    available: float
    failures: float
    pending_peak: float


async def through_outage(daemon: Daemon, publisher: Publisher, hold: float) -> Outage:
    """Wait for the daemon to notice the failure, keep publishing ``hold`` s more, watching;
    terminals not heard from before come online meanwhile (events while writes fail)."""

    async def noticed() -> dict[str, float] | None:
        figures = await metrics(daemon)
        return figures if figures.get("edumon_store_available") == 0 else None

    await until("edumon_store_available 0", noticed, daemon, 60)
    publisher.add_late_terminals()
    async with httpx.AsyncClient(timeout=15) as http:
        response = await http.get(f"{daemon.base}/readyz")
    peak = 0.0
    end = time.monotonic() + hold
    while time.monotonic() < end:
        daemon.alive()
        figures = await metrics(daemon)
        peak = max(peak, figures["edumon_store_pending_rows"])
        await asyncio.sleep(0.5)
    daemon.alive()
    return Outage(
        readyz=response.status_code,
        detail=response.json()["detail"] or "",
        available=figures["edumon_store_available"],
        failures=figures["edumon_store_write_failures_total"],
        pending_peak=peak,
    )


async def recovered(daemon: Daemon) -> dict[str, float]:
    async def writing_again() -> dict[str, float] | None:
        figures = await metrics(daemon)
        ok = figures.get("edumon_store_available") == 1
        ok = ok and figures["edumon_store_pending_rows"] == 0
        return figures if ok and await ready_status(daemon) == 200 else None

    figures: dict[str, float] = await until("writes again", writing_again, daemon, 90)
    return figures


async def settled(daemon: Daemon, publisher: Publisher) -> dict[str, float]:
    """The collector's figures once every heartbeat is applied and everything is written."""

    async def quiet() -> dict[str, float] | None:
        figures = await metrics(daemon)
        applied = figures["edumon_collector_terminal_messages_total"] >= publisher.published
        done = applied and figures["edumon_store_pending_rows"] == 0
        return figures if done else None

    return dict(await until("every heartbeat applied and written", quiet, daemon, 60))


async def stop_daemon(daemon: Daemon) -> None:
    if daemon.proc.poll() is not None:
        return  # it died: the probe that saw it (Daemon.alive) says how
    daemon.proc.send_signal(signal.SIGINT)
    code = await asyncio.to_thread(daemon.proc.wait, STOP_SECONDS)
    tail = daemon.log.read_text(errors="replace")[-2000:]
    assert code == 0, f"edumon exited {code}:\n{tail}"


def report(
    kind: str, published: int, figures: dict[str, float], stored: tuple[int, int], outage: Outage
) -> None:
    accepted = figures["edumon_collector_terminal_messages_total"]
    events = total(figures, "edumon_collector_events_total")
    print(
        f"\n[{kind}] heartbeats published {published}, accepted {accepted:.0f}, "
        f"stored {stored[0]}, lost {published - stored[0]}; events recorded {events:.0f}, "
        f"stored {stored[1]}; during the fault: /readyz {outage.readyz}, "
        f"edumon_store_available {outage.available:.0f}, write failures "
        f"{outage.failures:.0f}, pending rows up to {outage.pending_peak:.0f}"
    )


def sqlite_counts(db: Path) -> tuple[int, int]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        samples = conn.execute("SELECT count(*) FROM terminal_samples").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    return int(samples), int(events)


def chattr(flag: str, *paths: Path) -> None:
    for path in paths:
        subprocess.run(["chattr", flag, str(path)], check=True, timeout=30)


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Any:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, timeout=30)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file."""
    filler = disk / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", ["immutable", "disk_full"])
async def test_sqlite_failing_under_the_daemon_loses_nothing(tmp_path: Path, fault: str) -> None:
    """The SQLite files made unwritable (``chattr +i`` on the database, its WAL and, where one
    exists, its -shm: what killed the daemon with SIGBUS), or their disk filled."""
    assert os.geteuid() == 0, "this test makes files immutable and mounts a tmpfs: run as root"
    disk = tmp_path
    with contextlib.ExitStack() as stack:
        if fault == "disk_full":
            disk = stack.enter_context(small_tmpfs(tmp_path / "disk", "16m"))
        db = disk / "edumon.db"
        files = [db, db.with_name("edumon.db-wal"), db.with_name("edumon.db-shm")]
        stack.callback(
            lambda: subprocess.run(["chattr", "-i", *map(str, files)], capture_output=True)
        )
        daemon = await start_daemon(tmp_path, f"sqlite:///{db}")
        try:
            async with publishing(daemon) as publisher:

                async def some_written() -> bool:
                    figures = await metrics(daemon)
                    return figures.get("edumon_store_written_rows_total", 0) > 0

                await until("the first rows written", some_written, daemon)
                # The fault, while heartbeats keep coming.
                if fault == "immutable":
                    existing = [f for f in files if f.exists()]
                    chattr("+i", *existing)
                    outage = await through_outage(daemon, publisher, FAULT_SECONDS)
                    chattr("-i", *existing)
                else:
                    filler = fill(disk)
                    outage = await through_outage(daemon, publisher, FAULT_SECONDS)
                    filler.unlink()
                await recovered(daemon)
            figures = await settled(daemon, publisher)
        finally:
            await stop_daemon(daemon)
        samples, events = sqlite_counts(db)

    report(f"sqlite {fault}", publisher.published, figures, (samples, events), outage)
    assert outage.readyz == 503
    assert "database writes are failing" in outage.detail
    assert str(tmp_path) not in outage.detail
    assert outage.available == 0
    assert outage.failures >= 1
    assert outage.pending_peak > 0
    assert total(figures, "edumon_collector_dropped_total") == 0
    assert samples == publisher.published
    assert events == total(figures, "edumon_collector_events_total")
    assert events >= len(TERMINALS + LATE_TERMINALS)  # each came online


@pytest.mark.timeout(300)
async def test_postgresql_restarted_under_the_daemon_loses_nothing(tmp_path: Path) -> None:
    """A PostgreSQL server of the test's own, stopped for 30 s while the daemon writes."""
    server = PrivatePostgres()
    try:
        await asyncio.to_thread(server.start)
        daemon = await start_daemon(tmp_path, server.url)
        try:
            async with publishing(daemon) as publisher:

                async def some_written() -> bool:
                    figures = await metrics(daemon)
                    return figures.get("edumon_store_written_rows_total", 0) > 0

                await until("the first rows written", some_written, daemon)
                await asyncio.to_thread(server.stop)
                outage = await through_outage(daemon, publisher, 30.0)
                await asyncio.to_thread(server.start)
                await recovered(daemon)
            figures = await settled(daemon, publisher)
        finally:
            await stop_daemon(daemon)
        conn = await asyncpg.connect(server.url)
        try:
            samples = int(await conn.fetchval("SELECT count(*) FROM terminal_samples"))
            events = int(await conn.fetchval("SELECT count(*) FROM events"))
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(server.remove)

    report("postgresql restart", publisher.published, figures, (samples, events), outage)
    assert outage.readyz == 503
    assert outage.available == 0
    assert outage.failures >= 1
    assert outage.pending_peak > 0
    assert total(figures, "edumon_collector_dropped_total") == 0
    assert samples == publisher.published
    assert events == total(figures, "edumon_collector_events_total")
    assert events >= len(TERMINALS + LATE_TERMINALS)  # each came online
