"""School agents in a cluster: one subscription per held shard, to its schools' topics only.

Against the real Mosquitto on 127.0.0.1:1883 (a district of the test's own): a collector that
holds shard 1 gets the reports of shard 1's agent schools and never sees another shard's, so it
can neither refuse (and acknowledge away) nor take the session of a report meant for another
collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edumon.sources.agent_reports import AgentReports, agent_subscribers
from edumon.sources.mqtt.ingest import MqttSettings
from tests.school_agent.test_agent_reports import Sink, Store, poll


async def _wait_async(what: str, check: Callable[[], object], limit: float) -> None:
    """Poll ``check`` (the subscriber's counters have no change notification) until truthy."""
    try:
        async with asyncio.timeout(limit):
            while not check():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {limit} s: {what}") from None


def test_one_subscription_per_shard_with_agents() -> None:
    district = "city"
    reports = AgentReports(
        Sink(), Store(), district=district, agent_schools=frozenset({"A", "B"}), switch_school={}
    )
    settings = MqttSettings(district=district)
    subscribers = agent_subscribers(
        settings, reports, district, {0: ("A",), 1: ("B", "C"), 2: ("C",)}
    )
    assert [s.client_id for s in subscribers] == [
        "edumon-agents-city-shard-0",
        "edumon-agents-city-shard-1",
    ]
    (single,) = agent_subscribers(settings, reports, district, None)
    assert single.client_id == "edumon-agents-city"


async def test_a_shards_subscription_hears_only_its_schools() -> None:
    district = f"as{uuid.uuid4().hex[:8]}"
    sink = Sink()
    reports = AgentReports(
        sink,
        Store(),
        district=district,
        agent_schools=frozenset({"A", "B"}),
        switch_school={"sw-a": "A", "sw-b": "B"},
    )
    settings = MqttSettings(host="127.0.0.1", port=1883, district=district)
    subscribers = agent_subscribers(settings, reports, district, {0: ("A",), 1: ("B",)})
    shard_1 = subscribers[1]
    task = asyncio.create_task(shard_1.run())
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{district}-pub")
    try:
        await _wait_async("subscribed", lambda: reports.stats.connected, 30)
        publisher.connect("127.0.0.1", 1883)
        publisher.loop_start()
        for school, device in (("A", "sw-a"), ("B", "sw-b"), ("A", "sw-a")):
            topic, payload = poll(1, 100.0, device=device, school=school, district=district)
            publisher.publish(topic, payload, qos=1).wait_for_publish(10)
        await _wait_async("shard 1's report", lambda: sink.uncommitted, 30)
        # A report published after A's second one arrived: nothing of A's came before it.
        topic, payload = poll(2, 200.0, device="sw-b", school="B", district=district)
        publisher.publish(topic, payload, qos=1).wait_for_publish(10)
        await _wait_async("shard 1's second report", lambda: len(sink.uncommitted) == 2, 30)
        assert [row.school for row, _ in sink.uncommitted] == ["B", "B"]
        assert dict(reports.stats.rejected_total) == {}
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
