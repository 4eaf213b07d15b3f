"""Acknowledge after store, against the real Mosquitto: what is not committed comes again.

The ingest holds the PUBACK of a QoS 1 message until ``committed`` covers it; a connection lost
before that makes the broker deliver it again on the next one (persistent session), and a
message committed and acknowledged does not come back.
"""

from __future__ import annotations

import aiomqtt

from edumon.sources.mqtt import MqttIngest
from tests.fixtures.mqtt import (
    Endpoint,
    RecordingSink,
    eventually,
    heartbeat,
    ingest_settings,
    wire_message,
)


async def publish(endpoint: Endpoint, district: str, seqs: range) -> None:
    async with aiomqtt.Client(endpoint.host, endpoint.port) as client:
        for seq in seqs:
            await client.publish(*wire_message(heartbeat(district, seq=seq)), qos=1)


async def test_uncommitted_messages_are_delivered_again_committed_ones_are_not(
    mosquitto: Endpoint, mqtt_district: str
) -> None:
    settings = ingest_settings(
        mosquitto, mqtt_district, clean_session=False, client_id=f"ack-{mqtt_district}"
    )
    first = RecordingSink()
    async with MqttIngest(settings, first, ack_after_store=True) as ingest:
        await eventually(lambda: ingest.stats.connected, "subscribed")
        await publish(mosquitto, mqtt_district, range(1, 4))
        await first.wait_count(3)
        assert ingest.stats.acks_pending == 3  # nothing committed: nothing acknowledged
        ingest.committed(2)  # the first two are stored
        assert ingest.stats.acks_pending == 1
    # The third was never acknowledged: the broker kept it for our session.
    again = RecordingSink()
    async with MqttIngest(settings, again, ack_after_store=True) as ingest:
        await eventually(lambda: ingest.stats.connected, "subscribed again")
        await again.wait_count(1)
        assert ingest.stats.sessions_resumed_total == 1
        assert [m.seq for m in again.messages] == [3]
        ingest.committed(1)
        assert ingest.stats.acks_pending == 0
    # Leave no session behind on the shared broker.
    cleanup = ingest_settings(
        mosquitto, mqtt_district, clean_session=True, client_id=f"ack-{mqtt_district}"
    )
    last = RecordingSink()
    async with MqttIngest(cleanup, last) as ingest:
        await eventually(lambda: ingest.stats.connected, "subscribed with a clean session")
    assert last.messages == []
