"""The collector killed with SIGKILL while terminals publish QoS 1 heartbeats: nothing lost.

Real processes and a real Mosquitto: `edumon run` (SQLite and PostgreSQL) subscribes through a
Mosquitto started here on a free port with the shipped config's session settings
(deploy/mosquitto/edumon.conf); a publisher sends every terminal's heartbeats at QoS 1, each one
a stored sample (the link speed alternates, so none is thinned); an independent subscriber with
its own persistent session records everything the broker delivered. The collector is killed
with SIGKILL mid-stream and restarted 30 s later (issue 10). Afterwards the stored heartbeats
equal the published ones and the witness's: 0 lost, 0 duplicated (docs/wire-protocol.md,
"Collector session").
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy.engine import make_url

from edumon.wire import Heartbeat, Status, encode_heartbeat, encode_status, terminal_topic
from tests.fixtures.ports import free_tcp_port
from tests.test_daemon import get

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONF = ROOT / "deploy" / "mosquitto" / "edumon.conf"
# The shipped settings this test's broker must share: the collector's session and flow control.
SESSION_SETTINGS = (
    "max_inflight_messages",
    "max_queued_messages",
    "persistent_client_expiration",
    "message_size_limit",
)
SCHOOL = "S1"
TERMINALS = 10
RATE_PER_TERMINAL = 2.0  # heartbeats a second: 20 a second in all, ~700 queued in the outage
BEFORE_KILL_SECONDS = 6.0
DOWN_SECONDS = 30.0  # the restart delay
AFTER_RESTART_SECONDS = 6.0
SETTLE_DEADLINE = 60.0
START_DEADLINE = 45.0


def shipped_settings() -> list[str]:
    """The lines of the shipped Mosquitto config this test's broker takes over."""
    lines = []
    for line in SHIPPED_CONF.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words and words[0] in SESSION_SETTINGS:
            lines.append(" ".join(words))
    return lines


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    """A Mosquitto of this test's own on a free port (the shared one is never restarted)."""
    settings = shipped_settings()
    assert any(s.startswith("max_inflight_messages ") for s in settings), settings
    for _ in range(3):
        port = free_tcp_port()
        conf = tmp_path / f"mosquitto-{port}.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listener {port} 127.0.0.1",
                    "allow_anonymous true",
                    "persistence false",
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    *settings,
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        log = (tmp_path / f"mosquitto-{port}.log").open("w")
        proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        if proc.poll() is None:
            break
        log.close()
    else:
        raise AssertionError("could not start a Mosquitto on a free port")
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def config_text(tmp_path: Path, url: str, district: str, api_port: int, mqtt_port: int) -> str:
    classrooms = "\n".join(
        f'[[schools.classrooms]]\nid = "{SCHOOL}-{i:03d}"\nname = "教室 {i}"\n'
        f'terminal = "T{i:03d}"\n'
        for i in range(TERMINALS)
    )
    return f"""
[district]
code = "{district}"
name = "崩溃测试县"

[storage]
url = "{url}"
flush_seconds = 3.0

[api]
listen = "127.0.0.1:{api_port}"

[mqtt]
broker = "external"
host = "127.0.0.1"
port = {mqtt_port}
client_id = "edumon-collector-{district}"
heartbeat_interval_seconds = 600

[[switches]]
id = "core"
host = "127.0.0.1"
port = 9
timeout_seconds = 0.2
retries = 0
snmp = {{ version = "2c", community = "unused" }}

[[schools]]
code = "{SCHOOL}"
name = "第一小学"
kind = "primary"
uplink = {{ switch = "core", port = "Gi0/1" }}

{classrooms}
"""


def start_collector(config: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "edumon", "run", "-c", str(config)],
            stdout=out,
            stderr=out,
            env=dict(os.environ),
        )
    finally:
        out.close()


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_subscribed(base: str, proc: subprocess.Popen[bytes], log: Path) -> str:
    """Wait until the collector is connected to the broker; returns /metrics."""
    deadline = time.monotonic() + START_DEADLINE
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"edumon exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            status, last = get(f"{base}/metrics")
        except OSError:
            status = 0
        if status == 200 and metric(last, "edumon_mqtt_connected") == 1:
            return last
        time.sleep(0.2)
    raise AssertionError(f"collector not connected within {START_DEADLINE} s: {log.read_text()}")


Key = tuple[str, str, int]  # terminal, boot, seq


@dataclass
class Witness:
    """An independent subscriber with its own persistent session: what the broker delivered."""

    port: int
    district: str
    seen: set[Key] = field(default_factory=set)
    deliveries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"witness-{self.district}",
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=False,
        )
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        self.client.subscribe(f"edumon/v1/{self.district}/{SCHOOL}/terminal/+/heartbeat", qos=1)
        assert subscribed.wait(10), "witness not subscribed"

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        terminal = message.topic.split("/")[-2]
        boot = re.search(rb'"boot":"([^"]+)"', message.payload)
        seq = re.search(rb'"seq":(\d+)', message.payload)
        assert boot is not None
        assert seq is not None
        with self.lock:
            self.deliveries += 1
            self.seen.add((terminal, boot.group(1).decode(), int(seq.group(1))))

    def snapshot(self) -> set[Key]:
        with self.lock:
            return set(self.seen)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Publisher:
    """Every terminal's birth, then QoS 1 heartbeats, RATE_PER_TERMINAL a second from each."""

    def __init__(self, port: int, district: str) -> None:
        self.district = district
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"terminals-{district}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self.boots = {f"T{i:03d}": uuid.uuid4().hex for i in range(TERMINALS)}
        self.seq = dict.fromkeys(self.boots, 0)
        self.published: set[Key] = set()
        self.infos: list[mqtt.MQTTMessageInfo] = []
        self.dead: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for terminal, boot in self.boots.items():
            self.seq[terminal] += 1
            birth = Status(
                district=district,
                school=SCHOOL,
                terminal=terminal,
                state="online",
                reason="birth",
                boot_id=boot,
                seq=self.seq[terminal],
                birth_seq=1,
                observed_at=time.time(),
                agent_version="0.1.0",
            )
            topic = terminal_topic(district, SCHOOL, terminal, "status")
            self.infos.append(self.client.publish(topic, encode_status(birth), qos=1, retain=True))

    def will(self, terminal: str) -> None:
        """The terminal dies: its Will (retained, QoS 1, as the broker publishes it), and no
        more heartbeats."""
        self.dead.add(terminal)
        self.seq[terminal] += 1
        will = Status(
            district=self.district,
            school=SCHOOL,
            terminal=terminal,
            state="offline",
            reason="will",
            boot_id=self.boots[terminal],
            seq=self.seq[terminal],
            birth_seq=1,
            observed_at=time.time(),
            agent_version="0.1.0",
        )
        topic = terminal_topic(self.district, SCHOOL, terminal, "status")
        self.infos.append(self.client.publish(topic, encode_status(will), qos=1, retain=True))

    def _heartbeat(self, terminal: str) -> None:
        if terminal in self.dead:
            return
        self.seq[terminal] += 1
        seq = self.seq[terminal]
        heartbeat = Heartbeat(
            district=self.district,
            school=SCHOOL,
            terminal=terminal,
            boot_id=self.boots[terminal],
            seq=seq,
            birth_seq=1,
            observed_at=time.time(),
            uptime_seconds=float(seq),
            agent_version="0.1.0",
            nic="eth0",
            link_speed_mbps=100 if seq % 2 else 1000,  # every heartbeat a stored sample
            duplex="full",
            ip=None,
            mac=None,
            cpu_percent=None,
            memory_used_bytes=None,
            memory_total_bytes=None,
            disk_used_bytes=None,
            disk_total_bytes=None,
        )
        topic = terminal_topic(self.district, SCHOOL, terminal, "heartbeat")
        self.infos.append(self.client.publish(topic, encode_heartbeat(heartbeat), qos=1))
        self.published.add((terminal, self.boots[terminal], seq))

    def _run(self) -> None:
        # One terminal after the other, evenly spaced: the collector always holds rows it has
        # accepted and not yet written, whenever it is killed.
        period = 1.0 / (RATE_PER_TERMINAL * TERMINALS)
        next_at = time.monotonic()
        while not self._stop.is_set():
            for terminal in self.boots:
                self._heartbeat(terminal)
                next_at += period
                if self._stop.wait(max(0.0, next_at - time.monotonic())):
                    return

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="terminals", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(10)
        for info in self.infos:
            info.wait_for_publish(10)  # acknowledged by the broker: it has every one
        self.client.disconnect()
        self.client.loop_stop()


def stored(url: str, district: str) -> tuple[list[Key], int, list[tuple[str, str]]]:
    """The stored heartbeat samples (one entry per row), the number of TERMINAL_ONLINE events,
    and every terminal event as (terminal, kind) in the order they happened."""
    samples = "SELECT terminal, boot_id, seq FROM terminal_samples WHERE school = 'S1'"
    onlines = "SELECT count(*) FROM events WHERE kind = 'terminal_online'"
    changes = (
        "SELECT device_id, kind FROM events WHERE kind IN ('terminal_online', 'terminal_offline') "
        "ORDER BY at, id"
    )
    if url.startswith("sqlite"):
        with sqlite3.connect(make_url(url).database or "") as conn:
            rows = [(str(t), str(b), int(s)) for t, b, s in conn.execute(samples)]
            (online,) = conn.execute(onlines).fetchone()
            kinds = [(str(d), str(k)) for d, k in conn.execute(changes)]
        return rows, int(online), kinds

    async def read() -> tuple[list[Key], int, list[tuple[str, str]]]:
        conn = await asyncpg.connect(url)
        try:
            rows = [(r[0], r[1], int(r[2])) for r in await conn.fetch(samples)]
            online = int(await conn.fetchval(onlines))
            kinds = [(r[0], r[1]) for r in await conn.fetch(changes)]
        finally:
            await conn.close()
        return rows, online, kinds

    return asyncio.run(read())


@pytest.mark.timeout(240)
def test_collector_killed_and_restarted_30_s_later_loses_and_duplicates_nothing(
    fresh_database_url: str, broker: int, tmp_path: Path
) -> None:
    district = f"c{uuid.uuid4().hex[:10]}"
    api_port = free_tcp_port()
    config = tmp_path / "edumon.toml"
    config.write_text(
        config_text(tmp_path, fresh_database_url, district, api_port, broker), encoding="utf-8"
    )
    log = tmp_path / "edumon.log"
    base = f"http://127.0.0.1:{api_port}"
    witness = Witness(broker, district)
    collector = start_collector(config, log)
    publisher: Publisher | None = None
    try:
        wait_subscribed(base, collector, log)
        publisher = Publisher(broker, district)
        publisher.start()
        # T000 loses power: silent from now, its Will published by the broker only once the
        # collector is down (its keepalive ran out).
        publisher.dead.add("T000")
        time.sleep(BEFORE_KILL_SECONDS)  # the stream runs: rows accepted, some not yet written
        before_kill = len(publisher.published)
        collector.send_signal(signal.SIGKILL)
        collector.wait(10)
        killed_at = time.monotonic()
        publisher.will("T000")
        time.sleep(DOWN_SECONDS)
        collector = start_collector(config, log)
        metrics = wait_subscribed(base, collector, log)
        restart_seconds = time.monotonic() - killed_at
        during_outage = len(publisher.published) - before_kill
        time.sleep(AFTER_RESTART_SECONDS)
        publisher.stop()
        published = set(publisher.published)

        # Settled when every heartbeat published since the kill has been accepted (the
        # API's per-terminal count since start) and nothing waits for a commit. The database is
        # read once the collector has stopped: a running edumon holds its SQLite file for
        # itself (docs/storage.md).
        after_kill = len(published) - before_kill  # all new to the restarted collector
        deadline = time.monotonic() + SETTLE_DEADLINE
        settled = False
        while time.monotonic() < deadline and not settled:
            _, body = get(f"{base}/api/v1/terminals?school=S1&limit=1000")
            accepted = sum(int(n) for n in re.findall(r'"heartbeats":\s*(\d+)', body))
            _, metrics = get(f"{base}/metrics")
            settled = (
                accepted >= after_kill
                and metric(metrics, "edumon_mqtt_unacknowledged_messages") == 0
                and witness.snapshot() >= published
            )
            if not settled:
                time.sleep(0.5)
        _, metrics = get(f"{base}/metrics")
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(30) == 0, log.read_text()[-3000:]
        rows, online_events, changes = stored(fresh_database_url, district)
        seen = witness.snapshot()
        stored_set = set(rows)
        lost = len(published - stored_set)
        duplicated = len(rows) - len(stored_set)
        unexpected = len(stored_set - published)
        print(
            f"\ncollector crash ({make_url(fresh_database_url).get_backend_name()}): "
            f"{len(published)} heartbeats published ({during_outage} while the collector was "
            f"down, restarted {restart_seconds:.1f} s after SIGKILL), witness saw {len(seen)}, "
            f"stored {len(rows)}: lost {lost}, duplicated {duplicated}, unexpected {unexpected}; "
            f"redeliveries recognised {metric(metrics, 'edumon_mqtt_duplicates_total'):.0f}, "
            f"seq gaps counted {metric(metrics, 'edumon_mqtt_lost_messages_total'):.0f}, "
            f"sessions resumed {metric(metrics, 'edumon_mqtt_sessions_resumed_total'):.0f}"
        )
        assert seen == published, "the witness must have every published heartbeat"
        assert during_outage > 0
        assert lost == 0, sorted(published - stored_set)[:10]
        assert duplicated == 0
        assert unexpected == 0
        assert metric(metrics, "edumon_mqtt_lost_messages_total") == 0
        # Every heartbeat here is a row, so its position is stored: no ambiguous gap either.
        assert metric(metrics, "edumon_mqtt_resume_gap_messages_total") == 0
        # One ONLINE per terminal before the kill, at most one more after the restart (the
        # restarted collector does not know the terminal was online: docs/availability.md).
        assert TERMINALS <= online_events <= 2 * TERMINALS
        # The terminal that died while the collector was down: the online interval the killed
        # collector left open is closed by its Will, received after the restart, so the
        # stored events (what availability is rebuilt from) end offline as the state does.
        assert [k for t, k in changes if t == "T000"][-1] == "terminal_offline"
        assert all(
            [k for t, k in changes if t == x][-1] == "terminal_online"
            for x in publisher.boots
            if x != "T000"
        )
    finally:
        if publisher is not None and publisher._thread is not None:
            publisher._stop.set()
        witness.close()
        if collector.poll() is None:
            collector.kill()
            collector.wait(10)
