"""The embedded amqtt broker: free ports, retained messages, Last Wills, restarts, accounts."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid

import aiomqtt
import pytest

from edumon.sources.mqtt.accounts import AccessPolicy, Account
from edumon.sources.mqtt.broker import EmbeddedBroker
from edumon.tokens import digest, new_token
from tests.fixtures.mqtt import DEADLINE, MOSQUITTO_PORT, Endpoint, WillClient


def endpoint_of(broker: EmbeddedBroker) -> Endpoint:
    return Endpoint("embedded", "127.0.0.1", broker.port)


async def next_message(client: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(DEADLINE):
        return await anext(aiter(client.messages))


async def test_listens_on_a_free_loopback_port_only_while_running() -> None:
    broker = EmbeddedBroker()
    with pytest.raises(RuntimeError):
        _ = broker.port
    async with broker:
        port = broker.port
        assert port not in (0, MOSQUITTO_PORT)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        async with EmbeddedBroker() as other:
            assert other.port != port
    with pytest.raises(RuntimeError):
        _ = broker.port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


async def test_a_taken_port_raises_oserror() -> None:
    # The system Mosquitto holds 127.0.0.1:1883.
    broker = EmbeddedBroker("127.0.0.1", MOSQUITTO_PORT)
    with pytest.raises(OSError, match="address already in use"):
        await broker.start()
    with pytest.raises(RuntimeError):
        _ = broker.port


async def test_retained_message_reaches_a_later_subscriber_until_cleared(
    embedded_broker: EmbeddedBroker,
) -> None:
    port = embedded_broker.port
    async with aiomqtt.Client("127.0.0.1", port) as publisher:
        await publisher.publish("edumon-test/a/status", b"first", qos=1, retain=True)
    async with aiomqtt.Client("127.0.0.1", port) as subscriber:
        await subscriber.subscribe("edumon-test/+/status", qos=1)
        message = await next_message(subscriber)
    assert (message.topic.value, message.payload, message.retain) == (
        "edumon-test/a/status",
        b"first",
        True,
    )

    async with aiomqtt.Client("127.0.0.1", port) as publisher:
        await publisher.publish("edumon-test/a/status", b"", qos=1, retain=True)  # clears it
        await publisher.publish("edumon-test/b/status", b"second", qos=1, retain=True)
    async with aiomqtt.Client("127.0.0.1", port) as subscriber:
        await subscriber.subscribe("edumon-test/+/status", qos=1)
        message = await next_message(subscriber)
    # Only b is retained now: a's cleared status is not delivered (it would come first).
    assert (message.topic.value, message.payload) == ("edumon-test/b/status", b"second")


async def test_last_will_is_published_and_retained_when_a_connection_drops(
    embedded_broker: EmbeddedBroker, will_clients: list[WillClient]
) -> None:
    topic = f"edumon-test/{uuid.uuid4().hex[:8]}/status"
    async with aiomqtt.Client("127.0.0.1", embedded_broker.port) as watcher:
        await watcher.subscribe(topic, qos=1)
        client = await WillClient.start(endpoint_of(embedded_broker), topic, b"gone")
        will_clients.append(client)
        await client.kill()
        message = await next_message(watcher)
    assert (message.topic.value, message.payload) == (topic, b"gone")

    async with aiomqtt.Client("127.0.0.1", embedded_broker.port) as later:
        await later.subscribe(topic, qos=1)
        retained = await next_message(later)
    assert (retained.payload, retained.retain) == (b"gone", True)


async def test_no_last_will_after_a_clean_disconnect(
    embedded_broker: EmbeddedBroker, will_clients: list[WillClient]
) -> None:
    prefix = f"edumon-test/{uuid.uuid4().hex[:8]}"
    async with aiomqtt.Client("127.0.0.1", embedded_broker.port) as watcher:
        await watcher.subscribe(f"{prefix}/#", qos=1)
        client = await WillClient.start(endpoint_of(embedded_broker), f"{prefix}/will", b"gone")
        will_clients.append(client)
        await client.terminate()  # DISCONNECT first: the broker must discard the Will
        async with aiomqtt.Client("127.0.0.1", embedded_broker.port) as publisher:
            await publisher.publish(f"{prefix}/marker", b"after", qos=1)
        message = await next_message(watcher)
    assert message.topic.value == f"{prefix}/marker"


async def test_restart_on_the_same_port_drops_and_then_accepts_clients() -> None:
    first = EmbeddedBroker()
    await first.start()
    port = first.port
    try:
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe("edumon-test/#", qos=1)
            await first.stop()
            with pytest.raises(aiomqtt.MqttError):
                await next_message(client)
    finally:
        await first.stop()
    async with EmbeddedBroker(port=port) as second:
        assert second.port == port
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe("edumon-test/x", qos=1)
            await client.publish("edumon-test/x", b"back", qos=1)
            assert (await next_message(client)).payload == b"back"


async def test_accounts_admit_only_known_users() -> None:
    password = new_token()
    policy = AccessPolicy("d7", [Account("school-7", "school", "school-7", digest(password))])
    async with EmbeddedBroker(policy=policy) as broker:
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, username="school-7", password=password
        ) as client:
            await client.publish("edumon/v1/d7/school-7/terminal/t1/heartbeat", b"x", qos=1)
        for username, wrong in (("school-7", "not-it"), ("school-8", password), (None, None)):
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client(
                    "127.0.0.1", broker.port, username=username, password=wrong, timeout=5
                ):
                    pass
        assert broker.refused["credentials"] == 3


async def test_amqtt_logs_nothing_below_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with EmbeddedBroker() as broker, aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.publish("edumon-test/quiet", b"x", qos=1, retain=True)
    chatty = [
        r
        for r in caplog.records
        if r.name.split(".")[0] in ("amqtt", "transitions") and r.levelno < logging.WARNING
    ]
    assert chatty == []
