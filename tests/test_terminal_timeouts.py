"""Silent terminals through the real Mosquitto: offline soon after the timeout, never falsely.

The collector, the MQTT ingest and the look for silent terminals run as ``edumon run`` wires
them; heartbeats come from a publisher thread (paho's own network loop), so that they keep
arriving while the test blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Collection, Iterator
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edumon.collector import Collector
from edumon.domain.inventory import Inventory
from edumon.domain.models import EventKind
from edumon.domain.state import NetworkState
from edumon.domain.terminals import TerminalInventory, TerminalsState, heartbeat_timeout
from edumon.sources.mqtt.ingest import MqttIngest
from tests.fixtures.mqtt import Endpoint, eventually, heartbeat, ingest_settings, wire_message
from tests.test_collector import FlakyStore

INTERVAL = 1.0  # seconds between heartbeats, as [mqtt] heartbeat_interval_seconds = 1
TIMEOUT = heartbeat_timeout(INTERVAL)  # 3 intervals
SCHOOL = "sch-1"


class Heartbeats:
    """Terminals heartbeating every ``interval`` from their own thread, until told to stop."""

    def __init__(self, endpoint: Endpoint, district: str, terminals: list[str]) -> None:
        self.district = district
        self.silent: set[str] = set()
        self._seq = dict.fromkeys(terminals, 0)
        self._stop = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self._client.connect(endpoint.host, endpoint.port)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="heartbeats", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for terminal in self._seq:
                if terminal in self.silent:
                    continue
                self._seq[terminal] += 1
                topic, payload = wire_message(
                    heartbeat(self.district, SCHOOL, terminal, seq=self._seq[terminal])
                )
                self._client.publish(topic, payload, qos=0)
            self._stop.wait(INTERVAL / 2)  # twice per interval: a late one is never the cause

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._client.disconnect()
        self._client.loop_stop()


@dataclass
class District:
    collector: Collector
    terminals: TerminalsState
    ingest: MqttIngest
    store: FlakyStore

    def offline(self) -> list[str]:
        return [st.terminal for st in self.terminals.terminals.values() if st.online is False]

    def online(self) -> list[str]:
        return [st.terminal for st in self.terminals.terminals.values() if st.online]

    def offline_events(self) -> list[dict[str, object]]:
        return [
            dict(e.details)
            for e in self.collector._pending.events + self.store.events
            if e.kind is EventKind.TERMINAL_OFFLINE
        ]


@contextlib.asynccontextmanager
async def district(
    endpoint: Endpoint, district_id: str, terminals: Collection[str]
) -> AsyncIterator[District]:
    inventory = TerminalInventory({(SCHOOL, t): t for t in terminals}, district_id)
    state = TerminalsState(inventory)
    store = FlakyStore()
    collector = Collector(
        NetworkState(Inventory({}, {}), []),
        store,
        terminals=state,
        heartbeat_timeout_seconds=TIMEOUT,
    )
    ingest = MqttIngest(ingest_settings(endpoint, district_id, qos=0), collector.submit_terminal)
    async with asyncio.TaskGroup() as tg:
        tasks = [
            tg.create_task(collector.run()),
            tg.create_task(ingest.run()),
            tg.create_task(collector.expire_forever(ingest.received_until)),
        ]
        try:
            await eventually(lambda: ingest.stats.connected, "ingest subscribed")
            yield District(collector, state, ingest, store)
        finally:
            await ingest.aclose()
            for task in tasks:
                task.cancel()


@pytest.fixture
def publishers() -> Iterator[list[Heartbeats]]:
    """Heartbeat publishers a test starts, stopped after it."""
    started: list[Heartbeats] = []
    yield started
    for publisher in started:
        publisher.close()


async def test_a_terminal_that_stops_heartbeating_goes_offline_after_the_timeout(
    mosquitto: Endpoint, mqtt_district: str, publishers: list[Heartbeats]
) -> None:
    names = [f"cls-{i}" for i in range(1, 6)]
    async with district(mosquitto, mqtt_district, names) as d:
        hb = Heartbeats(mosquitto, mqtt_district, names)
        publishers.append(hb)
        hb.start()
        await eventually(lambda: len(d.online()) == len(names), "every terminal online")
        # cls-3 loses its power: no Will, its heartbeats just stop.
        hb.silent.add("cls-3")
        stopped = time.time()
        await eventually(lambda: d.offline() == ["cls-3"], "cls-3 offline", within=TIMEOUT + 10)
        noticed = time.time()
        (event,) = d.offline_events()
        assert event["reason"] == "timeout"
        last_seen = event["last_seen"]
        detected_at = event["detected_at"]
        assert isinstance(last_seen, float)
        assert isinstance(detected_at, float)
        # Not before the timeout; dated at the last heartbeat; nobody else went offline.
        assert detected_at - last_seen > TIMEOUT
        assert last_seen <= stopped + 0.5
        assert sorted(d.online()) == [n for n in names if n != "cls-3"]
    print(f"offline {noticed - last_seen - TIMEOUT:.2f} s after the timeout")


async def test_a_stalled_loop_never_makes_a_terminal_offline(
    mosquitto: Endpoint, mqtt_district: str, publishers: list[Heartbeats]
) -> None:
    # More terminals than the ingest reads messages in one go: after the stall, the look for
    # silent terminals may come while heartbeats of some of them still wait in the socket.
    names = [f"cls-{i}" for i in range(1, 401)]
    async with district(mosquitto, mqtt_district, names) as d:
        hb = Heartbeats(mosquitto, mqtt_district, names)
        publishers.append(hb)
        hb.start()
        await eventually(lambda: len(d.online()) == len(names), "every terminal online")
        received = d.ingest.stats.received_total
        # The event loop is blocked well past the timeout while heartbeats keep arriving (a
        # long synchronous render, a slow query on the loop): they wait in the socket.
        time.sleep(TIMEOUT + 2.0)  # noqa: ASYNC251 - the stall under test
        assert d.ingest.stats.received_total == received  # nothing was read meanwhile
        # The loop runs again: the looks for silent terminals must see those heartbeats.
        await eventually(
            lambda: d.ingest.stats.received_total >= received + len(names) * 4,
            "the heartbeats sent during the stall read",
        )
        expired_at = d.collector.expired_at
        await eventually(
            lambda: (d.collector.expired_at or 0) > (expired_at or 0) + 2 * INTERVAL,
            "two more looks for silent terminals",
        )
        assert d.offline_events() == []
        assert sorted(d.online()) == sorted(names)
