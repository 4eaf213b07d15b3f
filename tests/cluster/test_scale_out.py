"""Two collectors as processes on one Mosquitto (started here) and one PostgreSQL database.

Each school is processed by exactly one collector (each one's /metrics lists its own schools,
the two lists split the district); after SIGKILL of one, the other takes its shards over within
the lease and a bound, and the QoS 1 heartbeats published to the dead collector's schools while
nobody held them are stored exactly once (counted against an independent subscriber).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edumon.cluster.shards import schools_by_shard
from edumon.wire import Heartbeat, encode_heartbeat, terminal_filter, terminal_topic
from tests.fixtures.databases import PostgresServer, run_in_thread
from tests.fixtures.ports import free_tcp_port

T = TypeVar("T")

SHARDS = 4
LEASE_SECONDS = 6.0
RENEW_SECONDS = 1.0
TAKEOVER_BOUND = 30.0
"""Seconds beyond the lease for the survivor to run the dead collector's schools (its member
row running out, a lease round, and restarting its pipeline on a loaded machine)."""
DEADLINE = 60.0
HEARTBEATS_EACH = 4
SCHOOLS = [f"SH{i:02d}" for i in range(8)]
DISTRICT = "cl" + os.urandom(3).hex()
SCHOOL_INFO = re.compile(r'^edumon_school_info\{[^}]*\bschool="([^"]+)"', re.M)


def wait_for(what: str, probe: Callable[[], T | None], *procs: subprocess.Popen[Any]) -> T:
    deadline = time.monotonic() + DEADLINE
    last: Any = None
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"a collector exited ({proc.returncode}) waiting for {what}")
        try:
            last = probe()
        except OSError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    """A Mosquitto of this test's own (persistent sessions kept in memory), on a free port."""
    port = free_tcp_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 10000\n",
        encoding="utf-8",
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    log = (tmp_path / "mosquitto.log").open("w")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:

        def listening() -> bool:
            with socket.socket() as s:
                s.settimeout(1)
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for("mosquitto", listening, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[str]:
    name = run_in_thread(postgres_server.create_database)
    yield postgres_server.url(name)
    run_in_thread(lambda: postgres_server.drop_database(name))


def write_config(path: Path, collector: str, api_port: int, broker: int, db: str) -> None:
    dead = free_tcp_port()  # nothing answers SNMP there: the switches are unreachable
    schools = "".join(
        f"""
[[switches]]
id = "{code}-core"
host = "127.0.0.1"
port = {dead}
timeout_seconds = 0.3
retries = 0
snmp = {{ version = "2c", community = "cluster-test" }}

[[schools]]
code = "{code}"
name = "学校{code}"
kind = "primary"
uplink = {{ switch = "{code}-core", port = "Gi0/1" }}

[[schools.classrooms]]
id = "{code}-101"
name = "一年级(1)班"
"""
        for code in SCHOOLS
    )
    path.write_text(
        f"""
[district]
code = "{DISTRICT}"
name = "扩展测试市"

[storage]
url = "{db}"
flush_seconds = 0.2

[api]
listen = "127.0.0.1:{api_port}"

[polling]
interval_seconds = 30

[mqtt]
broker = "external"
host = "127.0.0.1"
port = {broker}

[cluster]
collector_id = "{collector}"
shards = {SHARDS}
lease_seconds = {LEASE_SECONDS}
renew_seconds = {RENEW_SECONDS}
{schools}""",
        encoding="utf-8",
    )


@dataclass
class Collector:
    name: str
    url: str
    proc: subprocess.Popen[Any]
    log: Path

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as reply:
            return str(reply.read().decode())

    def schools(self) -> set[str] | None:
        return set(SCHOOL_INFO.findall(self.metrics()))

    def sample(self, series: str) -> float:
        match = re.search(rf"^{re.escape(series)} (\S+)$", self.metrics(), re.M)
        assert match is not None, f"{series} not in {self.name}'s /metrics"
        return float(match.group(1))


Launch = Callable[[str], Collector]


@pytest.fixture
def launch(tmp_path: Path, broker: int, database: str) -> Iterator[Launch]:
    """Starts a collector process by name; every one is stopped at the end."""
    started: list[Collector] = []

    def start(name: str) -> Collector:
        port = free_tcp_port()
        config = tmp_path / f"{name}.toml"
        write_config(config, name, port, broker, database)
        log = tmp_path / f"{name}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "edumon", "run", "-c", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(Collector(name, f"http://127.0.0.1:{port}", proc, log))
        return started[-1]

    try:
        yield start
    finally:
        for c in started:
            if c.proc.poll() is None:
                c.proc.terminate()
        for c in started:
            try:
                c.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait(timeout=5)


@pytest.fixture
def collectors(launch: Launch) -> list[Collector]:
    return [launch("a"), launch("b")]


@dataclass
class Subscriber:
    """An independent MQTT subscriber counting the heartbeats the broker delivered."""

    port: int
    seen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"count-{DISTRICT}")
        client.on_message = lambda _c, _u, msg: self._note(msg)
        client.on_subscribe = lambda *_: subscribed.set()
        client.connect("127.0.0.1", self.port)
        client.subscribe(terminal_filter("heartbeat", DISTRICT), qos=1)
        client.loop_start()
        assert subscribed.wait(10), "the counting subscriber was not subscribed"
        self.client = client

    def _note(self, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.seen.add(f"{msg.topic}#{hash(msg.payload)}")

    def count(self) -> int:
        with self.lock:
            return len(self.seen)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def publish_heartbeats(
    port: int, schools: list[str], seqs: range = range(1, HEARTBEATS_EACH + 1)
) -> int:
    """QoS 1 heartbeats to each school's terminal, each acknowledged by the broker."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{DISTRICT}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    sent = 0
    try:
        for seq in seqs:
            for code in schools:
                terminal = f"{code}-101"
                beat = Heartbeat(
                    district=DISTRICT,
                    school=code,
                    terminal=terminal,
                    boot_id="boot-1",
                    seq=seq,
                    birth_seq=1,
                    observed_at=time.time(),
                    uptime_seconds=3600.0 + seq,
                    agent_version="1.2.0",
                    nic="以太网",
                    # A new speed each time: the collector stores every one (it thins
                    # heartbeats that change nothing to one per terminal and bucket).
                    link_speed_mbps=1000 if seq % 2 else 100,
                    duplex="full",
                    ip="10.1.1.10",
                    mac="00:1a:2b:3c:4d:5e",
                    cpu_percent=None,
                    memory_used_bytes=None,
                    memory_total_bytes=None,
                    disk_used_bytes=None,
                    disk_total_bytes=None,
                )
                topic = terminal_topic(DISTRICT, code, terminal, "heartbeat")
                info = client.publish(topic, encode_heartbeat(beat), qos=1)
                info.wait_for_publish(timeout=10)
                assert info.is_published(), topic
                sent += 1
    finally:
        client.loop_stop()
        client.disconnect()
    return sent


def query(db: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(db)
        try:
            return [tuple(row) for row in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return run_in_thread(fetch)


@pytest.mark.timeout(180)
def test_two_collectors_split_the_schools_and_one_takes_over_from_a_killed_one(
    collectors: list[Collector], broker: int, database: str
) -> None:
    a, b = collectors
    by_shard = schools_by_shard(SCHOOLS, SHARDS)
    assert all(by_shard.values()), "every shard should have a school in this test"

    def split() -> tuple[set[str], set[str]] | None:
        mine_a, mine_b = a.schools(), b.schools()
        if mine_a and mine_b and not mine_a & mine_b and mine_a | mine_b == set(SCHOOLS):
            return mine_a, mine_b
        return None

    schools_a, schools_b = wait_for("the schools split between a and b", split, a.proc, b.proc)
    owners = dict(query(database, "SELECT shard, owner FROM cluster_leases"))
    assert {owners[k] for k in range(SHARDS)} == {"a", "b"}
    for k, codes in by_shard.items():
        assert set(codes) <= (schools_a if owners[k] == "a" else schools_b)

    held = "edumon_cluster_shards_held"
    assert a.sample(held) + b.sample(held) == SHARDS
    assert b.sample(f'edumon_cluster_info{{collector="{b.name}"}}') == 1

    counter = Subscriber(broker)
    try:
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(timeout=10)
        killed = time.monotonic()
        dead_schools = sorted(schools_a)
        sent = publish_heartbeats(broker, dead_schools)
        # Published while nobody held a's shards: its leases have not been taken over yet.
        still_a = query(
            database,
            "SELECT count(*) FROM cluster_leases WHERE owner = 'a' AND shard = ANY($1::int[])",
            [k for k, codes in by_shard.items() if set(codes) <= schools_a],
        )[0][0]
        assert still_a == sum(1 for codes in by_shard.values() if set(codes) <= schools_a)

        wait_for("b runs every school", lambda: b.schools() == set(SCHOOLS), b.proc)
        took = time.monotonic() - killed
        assert b.sample(held) == SHARDS
        assert b.sample('edumon_cluster_shard_changes_total{change="taken"}') >= SHARDS
        assert took < LEASE_SECONDS + TAKEOVER_BOUND, took

        counts: list[int] = []

        def stored() -> int | None:
            n = query(
                database,
                "SELECT count(*) FROM terminal_samples WHERE school = ANY($1::text[])",
                dead_schools,
            )[0][0]
            counts.append(int(n))
            return int(n) if n >= sent else None

        try:
            wait_for("the queued heartbeats stored", stored, b.proc)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {counts[-1:]} of {sent} stored") from None
        assert counts[-1] == sent
        wait_for("the subscriber's count", lambda: counter.count() >= sent)
        assert counter.count() == sent == len(dead_schools) * HEARTBEATS_EACH
        distinct = query(
            database,
            "SELECT count(DISTINCT (school, terminal, boot_id, seq)) FROM terminal_samples "
            "WHERE school = ANY($1::text[])",
            dead_schools,
        )[0][0]
        assert distinct == sent
        print(
            f"\nscale-out: a held {len(schools_a)} schools, b {len(schools_b)}; b ran all "
            f"{took:.1f} s after SIGKILL of a (lease {LEASE_SECONDS:g} s); {sent} QoS 1 "
            f"heartbeats sent while nobody held them, {counter.count()} seen by the "
            f"subscriber, {counts[-1]} stored, 0 duplicated"
        )
    finally:
        counter.close()


def count_stored(db: str) -> int:
    return int(query(db, "SELECT count(*) FROM terminal_samples")[0][0])


@pytest.mark.timeout(180)
def test_a_newcomer_gets_its_share_and_nothing_published_meanwhile_is_lost(
    launch: Launch, broker: int, database: str
) -> None:
    a = launch("a")
    wait_for("a runs every school", lambda: a.schools() == set(SCHOOLS), a.proc)
    counter = Subscriber(broker)
    try:
        b = launch("b")
        sent = 0
        seq = 0
        split_at: float | None = None
        deadline = time.monotonic() + DEADLINE
        # Heartbeats to every school all along the hand-over, until a second after the split.
        while split_at is None or time.monotonic() < split_at + 1.0:
            assert time.monotonic() < deadline, "a and b did not split the schools"
            assert a.proc.poll() is None
            assert b.proc.poll() is None
            seq += 1
            sent += publish_heartbeats(broker, SCHOOLS, range(seq, seq + 1))
            if split_at is None:
                try:
                    mine_a, mine_b = a.schools(), b.schools()
                except OSError:
                    continue  # a pipeline restarting: its requests wait in the backlog
                if mine_a and mine_b and not mine_a & mine_b and mine_a | mine_b == set(SCHOOLS):
                    split_at = time.monotonic()
            time.sleep(0.2)
        counts: list[int] = []

        def all_stored() -> bool:
            counts.append(count_stored(database))
            return counts[-1] >= sent

        try:
            wait_for("every heartbeat stored", all_stored, a.proc, b.proc)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {counts[-1:]} of {sent} stored") from None
        wait_for("the subscriber's count", lambda: counter.count() >= sent)
        assert counter.count() == sent == counts[-1]
        print(
            f"\nscale-out hand-over: {sent} QoS 1 heartbeats published while b joined and a gave "
            f"shards back; {counter.count()} seen by the subscriber, {counts[-1]} stored"
        )
    finally:
        counter.close()
