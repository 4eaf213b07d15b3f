"""Store-and-forward under faults, all real processes: snmpd, a Mosquitto of the test's own (with
persistence, restarted), `edumon run` on SQLite, and `edumon school-agent` killed with SIGKILL.

The exact trace counted is the collector's ``agent_reports`` table (one row per (agent, boot,
seq), the poll's own time in ``observed_at``) against the agent's own spool file, read by the
test before the broker comes back: every poll still waiting there must end up recorded once,
at its own time. Device samples are thinned by design (one per switch per 5 minutes, plus
changes: docs/storage.md), so of them the test checks only that those stored during the outage
carry the exact times the agent polled at.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.agents.support import PrivateBroker
from tests.fixtures.databases import PostgresServer, run_in_thread
from tests.fixtures.ports import free_tcp_port
from tests.fixtures.snmpd import Snmpd

OUTAGE_SECONDS = 62.0  # the minimum is 60 s
DRAIN_PER_SECOND = 10  # slow enough that the agent can be killed in the middle of a drain
SECRET_COMMUNITY_ENV = "T_SA_COMMUNITY"


def _when(value: datetime) -> float:
    return value.replace(tzinfo=value.tzinfo or UTC).timestamp()


def _wait(
    what: str, check: Callable[[], Any], procs: list[subprocess.Popen[Any]], limit: float
) -> Any:
    """Check every 0.2 s until ``check`` is truthy; fail at the deadline or if a process died."""
    end = time.monotonic() + limit
    last: Any = None
    while time.monotonic() < end:
        for proc in procs:
            assert proc.poll() is None, f"{proc.args} exited ({proc.returncode}) waiting for {what}"
        try:
            last = check()
        except asyncpg.UndefinedTableError:  # the collector has not created its tables yet
            last = None
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"not within {limit} s: {what}; last: {last!r}")


class Db:
    """Looks into the collector's PostgreSQL database while it runs (a running edumon holds a
    SQLite file for itself: docs/storage.md)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        async def fetch() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(self.url)
            try:
                return [tuple(row) for row in await conn.fetch(sql)]
            finally:
                await conn.close()

        return asyncio.run(fetch())

    def reports(self) -> dict[tuple[str, int], tuple[float, float, bool]]:
        """(boot, seq) -> (observed_at, received_at, historical) of the switch's reports."""
        return {
            (boot, seq): (_when(obs), _when(rec), bool(hist))
            for boot, seq, obs, rec, hist in self.rows(
                "SELECT boot_id, seq, observed_at, received_at, historical FROM agent_reports"
            )
        }


def spool_entries(path: Path) -> dict[tuple[str, int], float]:
    """(boot, seq) -> ts of every poll waiting in the agent's spool file."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT payload FROM spool").fetchall()
    out = {}
    for (payload,) in rows:
        data = json.loads(payload)
        out[(data["boot"], data["seq"])] = data["ts"]
    return out


def metric(api: str, name: str) -> float:
    try:
        with urllib.request.urlopen(f"{api}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return -1.0  # not serving yet
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.fixture
def terminal_port() -> Iterator[int]:
    """A listening TCP socket standing in for a classroom terminal without an agent."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        yield int(listener.getsockname()[1])


def _district(
    tmp_path: Path, snmpd: Snmpd, broker_port: int, api_port: int, database_url: str
) -> Path:
    config = tmp_path / "district.toml"
    config.write_text(
        f"""
[district]
code = "sa-fault"
name = "学校代理故障测试县"

[storage]
url = "{database_url}"
flush_seconds = 0.2

[api]
listen = "127.0.0.1:{api_port}"

[polling]
interval_seconds = 1

[mqtt]
broker = "external"
host = "127.0.0.1"
port = {broker_port}

[[switches]]
id = "sw-a"
host = "127.0.0.1"
port = {snmpd.port}
timeout_seconds = 1
snmp = {{ version = "2c", community_env = "{SECRET_COMMUNITY_ENV}" }}

[[schools]]
code = "A"
name = "第一小学"
kind = "primary"
switches = "agent"
uplink = {{ switch = "sw-a", port = "lo" }}

[[schools.classrooms]]
id = "A-101"
name = "一年级(1)班"
terminal = "T-101"
""",
        encoding="utf-8",
    )
    return config


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edumon", *args], stdout=out, stderr=out, env=env
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A database of its own on the test PostgreSQL server, dropped afterwards."""
    name = run_in_thread(postgres_server.create_database)
    yield postgres_server.url(name)
    run_in_thread(lambda: postgres_server.drop_database(name))


@dataclass
class Rig:
    """A school agent, its district's collector and a broker of their own, ready to start."""

    broker: PrivateBroker
    api: str
    district: Path
    agent_toml: Path
    spool: Path
    env: dict[str, str]
    db: Db
    logs: Path

    def collector(self) -> subprocess.Popen[bytes]:
        return _start(["run", "-c", str(self.district)], self.env, self.logs / "collector.log")

    def agent(self) -> subprocess.Popen[bytes]:
        return _start(
            ["school-agent", "-c", str(self.agent_toml)], self.env, self.logs / "agent.log"
        )

    def wait_drained(
        self, waiting: dict[tuple[str, int], float], procs: list[subprocess.Popen[bytes]]
    ) -> None:
        """Wait until every poll that waited in the spool is recorded and the spool is empty."""

        def all_stored() -> bool:
            stored = self.db.reports()
            return all(k in stored for k in waiting) and not spool_entries(self.spool)

        _wait("every spooled poll stored", all_stored, procs, 120)

    def outage(
        self, seconds: float, procs: list[subprocess.Popen[bytes]]
    ) -> tuple[float, dict[tuple[str, int], float]]:
        """Stop the broker for ``seconds``; when it ends, what the agent's spool holds (read
        before the broker returns, then restarted): (stopped at, spooled).

        The agent (the last of ``procs``) is held (SIGSTOP) from just before the broker returns
        until the collector has its subscription back: a broker delivers a session's queued
        messages interleaved with new ones (Mosquitto does), so an agent that reconnected first
        would have its drain order blurred by the broker, not by itself.
        """
        self.broker.stop()
        stopped_at = time.time()
        _wait("the outage", lambda: time.time() - stopped_at >= seconds, procs, seconds + 10)
        waiting = spool_entries(self.spool)
        agent = procs[-1]
        agent.send_signal(signal.SIGSTOP)
        try:
            self.broker.start()
            _wait(
                "the collector subscribed again",
                lambda: metric(self.api, "edumon_agent_reports_connected") == 1,
                procs[:-1],
                60,
            )
        finally:
            agent.send_signal(signal.SIGCONT)
        return stopped_at, waiting


@pytest.fixture
def rig(snmpd: Snmpd, tmp_path: Path, terminal_port: int, postgres_url: str) -> Iterator[Rig]:
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    broker = PrivateBroker(
        broker_dir,
        "allow_anonymous true\n"
        "persistence true\n"
        f"persistence_location {broker_dir}/\n"
        "autosave_interval 1\n"
        "max_queued_messages 100000\n",
    )
    broker.start()
    api_port = free_tcp_port()
    district = _district(tmp_path, snmpd, broker.port, api_port, postgres_url)
    env = dict(os.environ, **{SECRET_COMMUNITY_ENV: snmpd.community})
    env["EDUMON_AGENT_MQTT_PASSWORD"] = "school-a-password"

    # The agent's configuration comes from the district's, secrets by variable name only.
    generated = subprocess.run(
        [
            sys.executable,
            "-m",
            "edumon",
            "agent-config",
            "-c",
            str(district),
            "--school",
            "A",
            "--broker",
            f"127.0.0.1:{broker.port}",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    ).stdout
    assert snmpd.community not in generated
    assert f'community_env = "{SECRET_COMMUNITY_ENV}"' in generated
    spool = tmp_path / "agent" / "spool.db"
    agent_toml = tmp_path / "agent.toml"
    agent_toml.write_text(
        generated.replace(
            'spool_path = "/var/lib/edumon-school-agent/spool.db"', f'spool_path = "{spool}"'
        ).replace("drain_per_second = 20", f"drain_per_second = {DRAIN_PER_SECOND}")
        + f'\n[[probes]]\nterminal = "T-101"\nhost = "127.0.0.1"\nmethod = "tcp"\n'
        f"tcp_port = {terminal_port}\n",
        encoding="utf-8",
    )
    try:
        yield Rig(
            broker,
            f"http://127.0.0.1:{api_port}",
            district,
            agent_toml,
            spool,
            env,
            Db(postgres_url),
            tmp_path,
        )
    finally:
        broker.stop()


def _steady(rig: Rig, collector: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Start the agent once the collector listens, and wait for reports and the probed terminal."""
    # The collector's persistent session exists before the agent publishes anything (what is
    # published before any subscriber exists, a broker drops).
    _wait(
        "the collector subscribed to agents' topics",
        lambda: metric(rig.api, "edumon_agent_reports_connected") == 1,
        [collector],
        60,
    )
    agent = rig.agent()
    procs = [collector, agent]
    _wait("first reports", lambda: len(rig.db.reports()) >= 6, procs, 60)
    _wait(
        "the probed terminal online",
        lambda: rig.db.rows("SELECT 1 FROM events WHERE kind = 'terminal_online'"),
        procs,
        30,
    )
    return agent


def _gaps(stored: dict[tuple[str, int], tuple[float, float, bool]]) -> list[int]:
    """Seqs missing in any boot's sequence (the first boot's included): silent loss."""
    gaps = []
    for boot in {b for b, _ in stored}:
        seqs = sorted(s for b, s in stored if b == boot)
        gaps += [s for s in range(1, seqs[-1] + 1) if s not in set(seqs)]
    return gaps


@pytest.mark.timeout(360)
def test_broker_outage_then_agent_killed_mid_drain_stores_every_poll_once(rig: Rig) -> None:
    db, spool, api = rig.db, rig.spool, rig.api
    collector = rig.collector()
    procs = [collector]
    try:
        agent = _steady(rig, collector)
        procs = [collector, agent]

        # (a) The broker goes away for OUTAGE_SECONDS; the agent keeps polling into its spool.
        stopped_at, waiting = rig.outage(OUTAGE_SECONDS, procs)
        restarted_at = time.time()
        during = {k: ts for k, ts in waiting.items() if ts >= stopped_at}
        assert len(during) >= OUTAGE_SECONDS * 1.5  # a switch poll and a probe each second

        # (b) SIGKILL in the middle of the drain, then the agent starts again (a new boot).
        def some_drained() -> bool:
            stored = db.reports()
            return sum(1 for k in waiting if k in stored) >= 20

        _wait("the drain under way", some_drained, procs, 60)
        drained_before_kill = sum(1 for k in waiting if k in db.reports())
        left_in_spool = len(spool_entries(spool))
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        assert left_in_spool > 0, "the drain finished before the kill: slow it down"
        agent = rig.agent()
        procs = [collector, agent]

        rig.wait_drained(waiting, procs)
        stored = db.reports()
        duplicates = metric(api, "edumon_agent_reports_duplicates_total")
        missing = metric(api, "edumon_agent_reports_missing")
        historical = metric(api, "edumon_agent_reports_historical_total")

        # Exactly once, at the original time: every poll that waited is recorded, at its ts.
        lost = [k for k in waiting if k not in stored]
        wrong_time = [k for k, ts in waiting.items() if abs(stored[k][0] - ts) > 2e-6]
        gaps = _gaps(stored)
        # In order: the replayed history of the first boot was received in seq order.
        replayed = sorted((s, stored[(b, s)][1]) for b, s in waiting if stored[(b, s)][2])
        out_of_order = sum(1 for a, b in itertools.pairwise(replayed) if b[1] < a[1])
        # Device samples during the outage sit at times the agent polled at (thinned: at
        # least one per 5-minute bucket).
        polled_at = {ts for ts in during.values()}
        samples = [
            _when(at)
            for (at,) in db.rows(
                "SELECT at FROM device_samples WHERE device_id = 'sw-a' ORDER BY at"
            )
        ]
        in_outage = [at for at in samples if stopped_at <= at <= restarted_at]
        offline = db.rows("SELECT at, message FROM events WHERE kind = 'terminal_offline'")
        print(
            f"\nschool agent outage: {OUTAGE_SECONDS:.0f} s broker outage; polled during the "
            f"outage {len(during)}, waiting in the spool at restart {len(waiting)}; "
            f"stored {len(waiting) - len(lost)}, lost {len(lost)}, duplicated in storage 0 "
            f"(primary key), duplicates delivered and dropped {duplicates:.0f}, "
            f"seq gaps {len(gaps)} (missing metric {missing:.0f}), wrong timestamps "
            f"{len(wrong_time)}, out of order {out_of_order} of {len(replayed)} replayed; "
            f"SIGKILL after {drained_before_kill} drained with {left_in_spool} still spooled; "
            f"historical applied {historical:.0f}; device samples in the outage "
            f"{len(in_outage)} (thinned); terminals offline {len(offline)}"
        )
        assert lost == []
        assert wrong_time == []
        assert gaps == []
        assert missing == 0
        assert out_of_order == 0
        assert len(replayed) >= len(waiting) - 2
        assert in_outage
        assert all(at in polled_at or _near(at, polled_at) for at in in_outage)
        assert offline == []
    finally:
        for proc in procs:
            _stop(proc)


def _near(at: float, times: set[float]) -> bool:
    return any(abs(at - t) <= 2e-6 for t in times)


COLLECTOR_DOWN_SECONDS = 30.0  # "restarted 30 s later"


@pytest.mark.timeout(360)
def test_collector_killed_mid_drain_records_every_poll_once(rig: Rig) -> None:
    """The collector is SIGKILLed while the agent drains its spool and restarted 30 s later.

    What it had recorded comes again (committed, not acknowledged) and is a duplicate; what the
    agent published meanwhile waited at the broker; seqs recorded before the crash are not
    counted missing after it (they are loaded at start-up).
    """
    db, api = rig.db, rig.api
    collector = rig.collector()
    procs = [collector]
    try:
        agent = _steady(rig, collector)
        procs = [collector, agent]
        _, waiting = rig.outage(20.0, procs)
        assert len(waiting) >= 20

        def some_drained() -> int:
            stored = db.reports()
            return sum(1 for k in waiting if k in stored) >= 10

        _wait("the drain under way", some_drained, procs, 60)
        collector.send_signal(signal.SIGKILL)
        collector.wait(timeout=10)
        killed_at = time.time()
        recorded_at_kill = len(db.reports())
        procs = [agent]
        _wait(
            f"the collector down {COLLECTOR_DOWN_SECONDS:.0f} s",
            lambda: time.time() - killed_at >= COLLECTOR_DOWN_SECONDS,
            procs,
            COLLECTOR_DOWN_SECONDS + 10,
        )
        collector = rig.collector()
        procs = [collector, agent]

        rig.wait_drained(waiting, procs)
        # Everything the agent published before the restart has come through the broker's
        # queue: the newest seq recorded is past what was published while the collector was
        # down, and no seq of any boot is missing below it.
        high_at_restart = max(s for _, s in db.reports())
        _wait(
            "the collector caught up with the agent",
            lambda: max(s for _, s in db.reports()) >= high_at_restart + 3,
            procs,
            60,
        )
        stored = db.reports()
        gaps = _gaps(stored)
        lost = [k for k in waiting if k not in stored]
        duplicates = metric(api, "edumon_agent_reports_duplicates_total")
        missing = metric(api, "edumon_agent_reports_missing")
        _stop(collector)  # writes the open roll-ups
        procs = [agent]
        # A poll counted twice in an interface roll-up would show as more polls in a 5-minute
        # bucket than the switch's reports of that bucket.
        reports_per_bucket = collections.Counter(
            int(_when(at) // 300)
            for (at,) in db.rows("SELECT observed_at FROM agent_reports WHERE subject = 'sw-a'")
        )
        rollups = {
            int(_when(start) // 300): int(polls)
            for start, polls in db.rows(
                "SELECT bucket_start, polls FROM interface_rollups WHERE device_id = 'sw-a'"
            )
        }
        over = {
            b: (p, reports_per_bucket[b]) for b, p in rollups.items() if p > reports_per_bucket[b]
        }
        print(
            f"\ncollector SIGKILL mid-drain: {len(waiting)} polls spooled during a 20 s outage, "
            f"{recorded_at_kill} reports recorded at the kill, down {COLLECTOR_DOWN_SECONDS:.0f} "
            f"s; afterwards {len(stored)} recorded, lost {len(lost)}, seq gaps {len(gaps)}, "
            f"missing metric {missing:.0f}, redeliveries recognised as duplicates "
            f"{duplicates:.0f}, roll-up buckets over-counted {len(over)}"
        )
        assert lost == []
        assert gaps == []
        assert missing == 0
        assert rollups
        assert over == {}
    finally:
        for proc in procs:
            _stop(proc)


def _connectivity(api: str, school: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{api}/api/v1/schools/{school}", timeout=5) as response:
        return dict(json.load(response)["connectivity"])


@pytest.mark.timeout(240)
def test_a_silent_school_agent_makes_its_school_unreachable_until_it_reports(rig: Rig) -> None:
    """From the district, a school whose agent says nothing (3 poll intervals) is cut off, like
    a centrally polled school whose uplink switch does not answer; it is back at the agent's
    next report."""
    db, api = rig.db, rig.api
    collector = rig.collector()
    procs = [collector]
    try:
        agent = _steady(rig, collector)
        _wait("school A connected", lambda: _connectivity(api, "A")["state"] == "ok", procs, 30)
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        killed_at = time.time()
        cut = _wait(
            "school A unreachable",
            lambda: (c := _connectivity(api, "A"))["state"] == "unreachable" and c,
            procs,
            30,
        )
        cut_after = time.time() - killed_at
        assert "学校代理" in cut["reason"]
        assert "school agent" in cut["reason_en"]
        unreachable = lambda: db.rows(  # noqa: E731
            "SELECT message FROM events WHERE kind = 'device_unreachable' AND device_id = 'sw-a'"
        )
        (event,) = _wait("the stored event", unreachable, procs, 30)
        assert "no report from the school agent" in event[0]
        agent = rig.agent()
        procs = [collector, agent]
        _wait("school A back", lambda: _connectivity(api, "A")["state"] == "ok", procs, 60)
        _wait(
            "the stored reachable event",
            lambda: db.rows(
                "SELECT 1 FROM events WHERE kind = 'device_reachable' AND device_id = 'sw-a'"
            ),
            procs,
            30,
        )
        assert len(unreachable()) == 1  # declared once for the whole silence
        print(f"\nsilent school agent: school unreachable {cut_after:.1f} s after the agent died")
    finally:
        for proc in procs:
            _stop(proc)
