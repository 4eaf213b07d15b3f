"""The demo's simulated terminals: real paho-mqtt clients of a real broker, speaking the wire."""

from __future__ import annotations

import asyncio
import threading

import aiomqtt

from edumon.demo.terminals import SimulatedTerminals, TerminalPlan
from edumon.sources.mqtt.broker import EmbeddedBroker
from edumon.wire import Heartbeat, Status, parse_message
from tests.fixtures.mqtt import DEADLINE
from tests.fixtures.ports import free_tcp_port


async def messages_until(
    client: aiomqtt.Client, done: list[Heartbeat | Status], enough: int, terminal: str
) -> None:
    """Collect parsed messages into ``done`` until ``terminal`` has sent ``enough`` of them."""
    async with asyncio.timeout(DEADLINE):
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            done.append(parse_message(message.topic.value, message.payload))
            if sum(m.terminal == terminal for m in done) >= enough:
                return


def paho_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("paho-mqtt-client-")}


async def test_terminals_connect_once_the_broker_is_up_then_beat_and_leave_cleanly(
    mqtt_district: str,
) -> None:
    port = free_tcp_port()
    plans = [
        TerminalPlan(mqtt_district, "s1", "on", link_speed_mbps=100),
        TerminalPlan(mqtt_district, "s1", "off", switched_on=False),
        TerminalPlan(mqtt_district, "s1", "cut", drops_after_seconds=0.0),
    ]
    before = paho_threads()
    terminals = SimulatedTerminals(plans, "127.0.0.1", port, heartbeat_seconds=0.2)
    # As in the demo: the terminals start first, the daemon's broker a moment later.
    await terminals.start()
    try:
        async with (
            EmbeddedBroker("127.0.0.1", port),
            aiomqtt.Client("127.0.0.1", port) as watcher,
        ):
            await watcher.subscribe(f"edumon/v1/{mqtt_district}/#", qos=1)
            got: list[Heartbeat | Status] = []
            await messages_until(watcher, got, 4, "on")
    finally:
        await terminals.stop()
    on = [m for m in got if m.terminal == "on"]
    birth = next(m for m in on if isinstance(m, Status))
    assert (birth.state, birth.reason) == ("online", "birth")
    assert birth.birth_seq >= 1  # one more for each attempt before the broker was up
    beats = [m for m in on if isinstance(m, Heartbeat)]
    assert beats
    assert all(b.link_speed_mbps == 100 and b.boot_id == birth.boot_id for b in beats)
    seqs = [m.seq for m in on]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert all(m.terminal != "off" for m in got)  # switched off: never connects
    assert all(not isinstance(m, Heartbeat) for m in got if m.terminal == "cut")
    # Stopped: every task ended and every network thread joined.
    assert not any(t.get_name().startswith("demo-terminal:") for t in asyncio.all_tasks())
    assert paho_threads() <= before
