"""Broker outages with the terminal agent's spool: real agent processes, a Mosquitto of the
test's own (stopped and restarted), an independent subscriber, and the collector with a real
SQLite store.

What must hold (docs/wire-protocol.md, "Historical heartbeats"): every heartbeat the agent made
while the broker was down arrives after the reconnect, in order, marked historical, after the
birth and a live heartbeat of the new session; a SIGKILL mid-drain loses none of them (at least
once from the agent, exactly once in storage); the collector stores them at their own
timestamps and its view of the terminal now is what the live messages alone make it.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edumon.collector import Collector
from edumon.config import inventory_of, parse_config
from edumon.domain.state import NetworkState
from edumon.domain.terminals import TerminalInventory, TerminalsState
from edumon.store import open_store
from edumon.wire import Heartbeat, Status, WireError, parse_message
from tests.agents.support import DEADLINE, AgentProcess, PrivateBroker, poll_until

SCHOOL = "CG01"
TERMINAL = "CG01-501"
CLASSROOM = TERMINAL  # the terminal id is the classroom id unless the config names another
HEARTBEAT_SECONDS = 1.5  # above the collector's 1 s buckets below: no heartbeat is thinned
OUTAGE_SECONDS = 20.0
_SPOOLED = re.compile(r"spooled heartbeat seq (\d+) \(boot ([0-9a-f]+), bd_seq (\d+)\)")


@dataclass(frozen=True)
class Arrival:
    """A message the subscriber received, with the wall-clock time it arrived."""

    topic: str
    payload: bytes
    at: float
    parsed: Heartbeat | Status


class DurableSubscriber:
    """An MQTT 5 subscriber with a persistent session: the broker (persistence on) keeps its
    subscription and queues what is published while it is away, across a broker restart."""

    def __init__(self, district: str, port: int) -> None:
        self._lock = threading.Condition()
        self.arrivals: list[Arrival] = []
        self._subscribed = threading.Event()
        self._filter = f"edumon/v1/{district}/#"
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-durable-{uuid.uuid4().hex[:12]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.reconnect_delay_set(0.1, 0.5)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600
        self._client.connect(
            "127.0.0.1", port, keepalive=30, clean_start=False, properties=properties
        )
        self._client.loop_start()
        if not self._subscribed.wait(DEADLINE):
            raise AssertionError("subscriber not subscribed in time")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, *_: Any) -> None:
        if not flags.session_present:
            client.subscribe(self._filter, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if not message.payload:
            return
        try:
            parsed = parse_message(message.topic, message.payload)
        except WireError as exc:
            raise AssertionError(f"unparsable {message.topic}: {exc}") from None
        with self._lock:
            self.arrivals.append(Arrival(message.topic, message.payload, time.time(), parsed))
            self._lock.notify_all()

    def wait(self, condition: Callable[[list[Arrival]], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition(self.arrivals):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    summary = [(type(a.parsed).__name__, a.parsed.seq) for a in self.arrivals]
                    raise AssertionError(f"not within {timeout} s: {what}; got {summary}")
                self._lock.wait(remaining)

    def snapshot(self) -> list[Arrival]:
        with self._lock:
            return list(self.arrivals)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def outage_parts(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A private persistent Mosquitto, a durable subscriber on it, and a list for agents."""
    store = tmp_path / "mosquitto-db"
    store.mkdir()
    broker = PrivateBroker(
        tmp_path,
        f"allow_anonymous true\npersistence true\npersistence_location {store}/\n",
    )
    broker.start()
    district = f"spool-{uuid.uuid4().hex[:10]}"
    subscriber = DurableSubscriber(district, broker.port)
    agents: list[AgentProcess] = []
    try:
        yield {"broker": broker, "district": district, "sub": subscriber, "agents": agents}
    finally:
        for agent in agents:
            agent.stop()
        subscriber.close()
        broker.stop()


def agent_config(tmp_path: Path, district: str, port: int, drain_rate: float) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f"""
[terminal]
district = "{district}"
school = "{SCHOOL}"
id = "{TERMINAL}"

[mqtt]
host = "127.0.0.1"
port = {port}

[agent]
heartbeat_seconds = {HEARTBEAT_SECONDS}
state_dir = "{tmp_path / "state"}"
reconnect_min_seconds = 0.2
reconnect_max_seconds = 1.0
spool_drain_per_second = {drain_rate}
log_level = "debug"
""",
        encoding="utf-8",
    )
    return path


def start_agent(parts: dict[str, Any], tmp_path: Path, config: Path) -> AgentProcess:
    agents: list[AgentProcess] = parts["agents"]
    agent = AgentProcess(["-c", str(config)], tmp_path / f"agent-{len(agents)}.log")
    agents.append(agent)
    return agent


def spooled(agent: AgentProcess) -> list[tuple[str, int, int]]:
    """(boot, seq, bd_seq) of every heartbeat the agent logged as spooled, in order."""
    return [(m[2], int(m[1]), int(m[3])) for m in _SPOOLED.finditer(agent.log())]


def heartbeats(arrivals: list[Arrival], historical: bool) -> list[Heartbeat]:
    return [
        a.parsed
        for a in arrivals
        if isinstance(a.parsed, Heartbeat) and a.parsed.historical is historical
    ]


def index_of(arrivals: list[Arrival], match: Callable[[Heartbeat | Status], bool]) -> int:
    for i, arrival in enumerate(arrivals):
        if match(arrival.parsed):
            return i
    raise AssertionError("no such message")


def births(arrivals: list[Arrival]) -> list[Status]:
    return [a.parsed for a in arrivals if isinstance(a.parsed, Status) and a.parsed.online]


def outage(parts: dict[str, Any], agent: AgentProcess) -> tuple[float, float]:
    """Stop the broker for ``OUTAGE_SECONDS`` while the agent runs; (stopped, restarted) times."""
    broker: PrivateBroker = parts["broker"]
    stopped = time.time()
    broker.stop()
    agent.wait_log("connection lost")
    # The outage lasts its time: the agent spools meanwhile (nothing to wait for but the clock).
    time.sleep(OUTAGE_SECONDS)
    broker.start()
    return stopped, time.time()


def collector_config(district: str) -> str:
    return f"""
[district]
code = "{district}"
name = "测试县"

[[switches]]
id = "core"
host = "127.0.0.1"
snmp = {{ version = "2c", community = "unused" }}

[[schools]]
code = "{SCHOOL}"
name = "第一小学"
kind = "primary"
uplink = {{ switch = "core", port = "Gi0/1" }}
classrooms = [{{ id = "{CLASSROOM}", name = "五年级1班" }}]
"""


async def collect(
    district: str, arrivals: list[Arrival], db: Path
) -> tuple[TerminalsState, list[Any]]:
    """Feed the arrivals, as the ingest would (receive time = arrival), to a collector with a
    real SQLite store; returns its terminals' state and the events it stored."""
    inventory = inventory_of(parse_config(collector_config(district), where="test.toml"))
    terminals = TerminalsState(TerminalInventory.from_inventory(inventory, district=district))
    store = await open_store(f"sqlite:///{db}")
    try:
        collector = Collector(NetworkState(inventory), store, terminals=terminals, bucket_seconds=1)
        events: list[Any] = []
        original = collector._record

        def record(found: tuple[Any, ...]) -> None:
            events.extend(found)
            original(found)

        collector._record = record  # type: ignore[method-assign]
        for arrival in arrivals:
            collector.submit_terminal(arrival.parsed, arrival.at)
        await collector.drain()
        assert await collector.flush(everything=True)
    finally:
        await store.aclose()
    return terminals, events


def stored_samples(db: Path) -> list[tuple[str, int, float]]:
    """(boot, seq, at as Unix seconds) of the stored terminal samples, ordered by time."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT boot_id, seq, at FROM terminal_samples WHERE terminal = ? ORDER BY at",
            (TERMINAL,),
        ).fetchall()
    out = []
    for boot, seq, at in rows:
        # UtcDateTime's SQLite form: naive UTC text.
        out.append((boot, int(seq), datetime.fromisoformat(at).replace(tzinfo=UTC).timestamp()))
    return out


def test_heartbeats_during_a_broker_outage_arrive_once_in_order_as_history(
    outage_parts: dict[str, Any], tmp_path: Path
) -> None:
    parts = outage_parts
    sub: DurableSubscriber = parts["sub"]
    broker: PrivateBroker = parts["broker"]
    drain_rate = 4.0
    agent = start_agent(
        parts, tmp_path, agent_config(tmp_path, parts["district"], broker.port, drain_rate)
    )
    sub.wait(lambda a: len(heartbeats(a, False)) >= 2, "two live heartbeats", DEADLINE)
    first_birth = births(sub.snapshot())[0]

    # On a slow start a heartbeat may fall due before the first CONNACK: spooled, sent then.
    before = spooled(agent)
    drains = agent.log().count("spool drained")
    stopped, restarted = outage(parts, agent)
    made = spooled(agent)[len(before) :]
    assert len(made) >= OUTAGE_SECONDS / HEARTBEAT_SECONDS * 0.5, agent.log()
    # At 4 a second the backlog takes its length / 4 s: the deadline allows for that.
    poll_until(
        lambda: agent.log().count("spool drained") > drains,
        DEADLINE + len(made) / drain_rate,
        lambda: f"the spool drained after the outage:\n{agent.log()}",
    )
    spooled_made = spooled(agent)  # the last may have been made while reconnecting
    sub.wait(
        lambda a: len(heartbeats(a, True)) >= len(spooled_made),
        "every spooled heartbeat",
        DEADLINE,
    )
    arrivals = sub.snapshot()
    history = heartbeats(arrivals, True)

    # Exactly once, in order, with the session they were observed in and their own times.
    assert [(h.boot_id, h.seq, h.birth_seq) for h in history] == spooled_made[: len(history)]
    assert len(history) == len(spooled_made)
    assert all(h.boot_id == first_birth.boot_id for h in history)
    outage_made = {(b, s) for b, s, _ in spooled_made[len(before) :]}
    during = [h for h in history if (h.boot_id, h.seq) in outage_made]
    assert len(during) >= len(made)
    assert all(stopped - 1.0 <= h.observed_at <= restarted + 2.0 for h in during)
    observed = [h.observed_at for h in history]
    assert observed == sorted(observed)

    # After the restart: the new session's birth, then a live heartbeat, then the backlog.
    later = max(births(arrivals), key=lambda b: b.birth_seq)
    assert later.birth_seq > first_birth.birth_seq
    birth_at = index_of(arrivals, lambda m: m == later)  # its first arrival
    live_at = index_of(
        arrivals,
        lambda m: isinstance(m, Heartbeat) and not m.historical and m.session == later.session,
    )

    def of_outage(m: Heartbeat | Status) -> bool:
        return isinstance(m, Heartbeat) and m.historical and (m.boot_id, m.seq) in outage_made

    first_hist_at = index_of(arrivals, of_outage)
    assert birth_at < live_at < first_hist_at
    # Rate-limited: the backlog came over (at least) its length / rate seconds.
    hist_times = [a.at for a in arrivals if of_outage(a.parsed)]
    assert hist_times[-1] - hist_times[0] >= (len(hist_times) - 2) / drain_rate * 0.8

    # The collector: history at its own time, the present as the live messages alone make it.
    db = tmp_path / "edumon.db"
    everything, events = asyncio.run(collect(parts["district"], arrivals, db))
    live_only = [
        a for a in arrivals if not (isinstance(a.parsed, Heartbeat) and a.parsed.historical)
    ]
    baseline, baseline_events = asyncio.run(
        collect(parts["district"], live_only, tmp_path / "b.db")
    )
    now_state = everything.terminal(SCHOOL, TERMINAL)
    base_state = baseline.terminal(SCHOOL, TERMINAL)
    assert now_state is not None
    assert base_state is not None
    for name in ("online", "session", "last_seq", "last_observed_at", "last_seen", "online_since"):
        assert getattr(now_state, name) == getattr(base_state, name), name
    assert [(e.kind, e.at) for e in events] == [(e.kind, e.at) for e in baseline_events]
    assert everything.historical == len(history)
    samples = {(boot, seq): at for boot, seq, at in stored_samples(db)}
    for h in history:
        assert samples[(h.boot_id, h.seq)] == pytest.approx(h.observed_at, abs=0.01)
    # The heartbeat timeout still counts from the last live message.
    last_live = max(a.at for a in live_only)
    assert now_state.last_seen == last_live
    print(  # the figures for the report (pytest -s)
        f"outage {restarted - stopped:.0f} s: spooled {len(outage_made)}, received "
        f"{len(during)} historical (0 duplicated), stored {len(during)} at their own time, "
        f"drained over {hist_times[-1] - hist_times[0]:.1f} s"
    )


def test_agent_killed_mid_drain_loses_nothing_and_storage_has_each_once(
    outage_parts: dict[str, Any], tmp_path: Path
) -> None:
    parts = outage_parts
    sub: DurableSubscriber = parts["sub"]
    broker: PrivateBroker = parts["broker"]
    config = agent_config(tmp_path, parts["district"], broker.port, 1.0)
    agent = start_agent(parts, tmp_path, config)
    sub.wait(lambda a: len(heartbeats(a, False)) >= 1, "a live heartbeat", DEADLINE)

    before = len(heartbeats(sub.snapshot(), True))  # from a slow first connect, if any
    outage(parts, agent)
    made = spooled(agent)
    assert len(made) >= 5, agent.log()
    sub.wait(lambda a: len(heartbeats(a, True)) >= before + 3, "the drain under way", DEADLINE)
    agent.send(signal.SIGKILL)
    agent.wait()
    made = spooled(agent)
    received_before_kill = len(heartbeats(sub.snapshot(), True))
    assert received_before_kill < len(made), "the drain was over before the kill"

    restarted = start_agent(parts, tmp_path, config)
    restarted.wait_log("spool drained", timeout=DEADLINE + len(made))
    new_boot = max(births(sub.snapshot()), key=lambda b: b.birth_seq).boot_id
    assert new_boot != made[0][0]
    sub.wait(
        lambda a: {(h.boot_id, h.seq) for h in heartbeats(a, True)} >= {(b, s) for b, s, _ in made},
        "every heartbeat spooled by the killed agent",
        DEADLINE,
    )
    arrivals = sub.snapshot()
    history = [(h.boot_id, h.seq) for h in heartbeats(arrivals, True) if h.boot_id == made[0][0]]
    # At least once, in order apart from the resent tail: deduplicated, exactly what was made.
    unique = list(dict.fromkeys(history))
    assert unique == [(b, s) for b, s, _ in made]
    duplicates = len(history) - len(unique)
    assert duplicates <= 20  # at most the in-flight window at the kill

    db = tmp_path / "edumon.db"
    asyncio.run(collect(parts["district"], arrivals, db))
    stored = [(boot, seq) for boot, seq, _ in stored_samples(db) if boot == made[0][0]]
    assert sorted(stored, key=lambda k: k[1]) == sorted(set(stored), key=lambda k: k[1])
    assert {(b, s) for b, s, _ in made} <= set(stored)
    print(  # the figures for the report (pytest -s)
        f"spooled {len(made)}, received {len(history)} ({duplicates} duplicated), "
        f"stored {len([k for k in stored if k in set(unique)])}, lost "
        f"{len(set(unique) - set(stored))}"
    )
