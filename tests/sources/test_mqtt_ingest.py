"""The MQTT ingest against real brokers: Mosquitto on 127.0.0.1:1883 and the embedded amqtt."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
from pathlib import Path

import aiomqtt
import pytest
from pydantic import SecretStr

from edumon.errors import ConfigError
from edumon.sources.mqtt.accounts import AccessPolicy, Account
from edumon.sources.mqtt.broker import EmbeddedBroker
from edumon.sources.mqtt.ingest import MqttIngest, MqttSettings, MqttTls
from edumon.tokens import digest
from edumon.wire import MAX_PAYLOAD_BYTES, REASONS, Heartbeat, Status
from tests.agents.support import PrivateBroker, make_pki
from tests.fixtures.mqtt import (
    Endpoint,
    IngestFactory,
    RecordingSink,
    WillClient,
    eventually,
    heartbeat,
    ingest_settings,
    status,
    wire_message,
)


async def publish(endpoint: Endpoint, *messages: tuple[str, bytes], retain: bool = False) -> None:
    """Publish with a plain aiomqtt client, QoS 1, in order."""
    async with aiomqtt.Client(endpoint.host, endpoint.port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1, retain=retain)


async def publish_with_password(
    endpoint: Endpoint, password: str, *messages: tuple[str, bytes]
) -> None:
    async with aiomqtt.Client(
        endpoint.host, endpoint.port, username="sch-1", password=password
    ) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


async def test_heartbeats_and_status_reach_the_sink_parsed(
    mqtt_broker: Endpoint, mqtt_district: str, start_ingest: IngestFactory
) -> None:
    sink = RecordingSink()
    ingest = await start_ingest(ingest_settings(mqtt_broker, mqtt_district), sink)
    sent: list[Heartbeat | Status] = [
        status(mqtt_district),
        heartbeat(mqtt_district, seq=2),
        heartbeat(mqtt_district, seq=3, nic=None, link_speed_mbps=None, ip=None, mac=None),
        heartbeat(mqtt_district, school="sch-2", terminal="cls-201", seq=7, ip="fd00::1"),
    ]
    await publish(mqtt_broker, *(wire_message(m) for m in sent))
    await sink.wait_count(len(sent))
    assert sorted(sink.messages, key=repr) == sorted(sent, key=repr)
    assert ingest.stats.received_total == ingest.stats.accepted_total == len(sent)
    assert ingest.stats.accepted_by_kind == {"heartbeat": 3, "status": 1}
    assert sum(ingest.stats.rejected_total.values()) == 0
    assert ingest.stats.last_message_at == max(at for _, at in sink.calls)


async def test_receive_time_comes_from_the_clock(mqtt_broker: Endpoint, mqtt_district: str) -> None:
    sink = RecordingSink()
    ticks = iter(range(1000, 100_000))
    handed_out: list[float] = []

    def clock() -> float:
        handed_out.append(float(next(ticks)))
        return handed_out[-1]

    async with MqttIngest(ingest_settings(mqtt_broker, mqtt_district), sink, clock=clock) as ingest:
        await eventually(lambda: ingest.stats.connected, "connected")
        await publish(mqtt_broker, wire_message(heartbeat(mqtt_district)))
        await sink.wait_count(1)
    # The time the read that got it began: one of the clock's, never one taken after delivery.
    received_at = sink.calls[0][1]
    assert received_at in handed_out
    assert received_at == ingest.stats.last_message_at


async def test_only_the_configured_district_is_subscribed(
    mosquitto: Endpoint, mqtt_district: str, start_ingest: IngestFactory
) -> None:
    sink = RecordingSink()
    ingest = await start_ingest(ingest_settings(mosquitto, mqtt_district), sink)
    other = heartbeat(f"{mqtt_district}-other", seq=1)
    own = heartbeat(mqtt_district, seq=2)
    # Mosquitto forwards one publisher's messages in order: when ``own`` arrives, ``other``
    # would have arrived before it.
    await publish(mosquitto, wire_message(other), wire_message(own))
    await sink.wait_count(1)
    assert sink.messages == [own]
    assert ingest.stats.received_total == 1


async def test_retained_birth_is_delivered_on_subscribe(
    mqtt_broker: Endpoint,
    mqtt_district: str,
    start_ingest: IngestFactory,
    retained_topics: list[tuple[Endpoint, str]],
) -> None:
    birth = status(mqtt_district, terminal="cls-105")
    topic, payload = wire_message(birth)
    retained_topics.append((mqtt_broker, topic))
    await publish(mqtt_broker, (topic, payload), retain=True)
    sink = RecordingSink()
    await start_ingest(ingest_settings(mqtt_broker, mqtt_district), sink)
    assert await sink.wait_for(lambda m: m == birth, "the retained birth") == birth


async def test_last_will_arrives_when_a_terminal_connection_drops(
    mqtt_broker: Endpoint,
    mqtt_district: str,
    start_ingest: IngestFactory,
    retained_topics: list[tuple[Endpoint, str]],
    will_clients: list[WillClient],
) -> None:
    will = status(mqtt_district, terminal="cls-106", state="offline")
    topic, payload = wire_message(will)
    retained_topics.append((mqtt_broker, topic))
    sink = RecordingSink()
    await start_ingest(ingest_settings(mqtt_broker, mqtt_district), sink)
    terminal = await WillClient.start(mqtt_broker, topic, payload)
    will_clients.append(terminal)
    assert sink.messages == []  # the Will is held by the mqtt_broker until the connection drops
    await terminal.kill()
    received = await sink.wait_for(lambda m: isinstance(m, Status), "the Last Will")
    assert received == will
    assert isinstance(received, Status)
    assert received.reason == "will"
    assert not received.online


async def test_malformed_messages_are_counted_by_reason_and_never_reach_the_sink(
    mosquitto: Endpoint,
    mqtt_district: str,
    start_ingest: IngestFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="edumon.sources.mqtt.ingest")
    sink = RecordingSink()
    ingest = await start_ingest(ingest_settings(mosquitto, mqtt_district), sink)
    good = heartbeat(mqtt_district, seq=99)
    hb_topic, hb_payload = wire_message(heartbeat(mqtt_district))
    st_topic, st_payload = wire_message(status(mqtt_district))
    bad = {
        "empty": [(hb_topic, b"")],
        "too_large": [(hb_topic, b" " * (MAX_PAYLOAD_BYTES + 1)), (hb_topic, b"x" * 1_000_000)],
        "bad_topic": [(hb_topic.replace("sch-1", "sch 1"), hb_payload)],
        "bad_json": [(hb_topic, hb_payload[:-1]), (hb_topic, b"\xff\xfe"), (hb_topic, b"[1]")],
        "schema_version": [(hb_topic, hb_payload.replace(b'"v":1', b'"v":2'))],
        "kind_mismatch": [(hb_topic, st_payload), (st_topic, hb_payload)],
        "id_mismatch": [(hb_topic.replace("cls-101", "cls-102"), hb_payload)],
        "bad_field": [(hb_topic, hb_payload.replace(b'"seq":1', b'"seq":-1'))],
    }
    assert set(bad) == set(REASONS)
    await publish(mosquitto, *(m for messages in bad.values() for m in messages))
    await publish(mosquitto, wire_message(good))
    await sink.wait_count(1)
    expected = {reason: len(messages) for reason, messages in bad.items()}
    await eventually(
        lambda: ingest.stats.rejected_total == expected,
        f"rejections {expected}, got {ingest.stats.rejected_total}",
    )
    assert sink.messages == [good]
    stats = ingest.stats
    assert stats.received_total == stats.accepted_total + sum(stats.rejected_total.values())
    # One WARNING per reason (empty payloads, cleared retained statuses, are not warned of);
    # the second bad_json, kind_mismatch and too_large are rate-limited to DEBUG.
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for reason in set(REASONS) - {"empty"}:
        assert sum(f": {reason}" in line for line in warned) == 1, (reason, warned)
    # The topic is logged, the payload only as a short prefix.
    assert all(len(line) < 600 for line in warned)
    assert any("sch 1" in line for line in warned)


async def test_reconnects_after_the_broker_restarts(
    mqtt_district: str, start_ingest: IngestFactory
) -> None:
    first = EmbeddedBroker()
    await first.start()
    port = first.port
    endpoint = Endpoint("embedded", "127.0.0.1", port)
    sink = RecordingSink()
    try:
        ingest = await start_ingest(ingest_settings(endpoint, mqtt_district), sink)
        await publish(endpoint, wire_message(heartbeat(mqtt_district, seq=1)))
        await sink.wait_count(1)
    finally:
        await first.stop()
    await eventually(lambda: not ingest.stats.connected, "the ingest notices the broker is gone")
    assert ingest.stats.reconnects_total == 0
    async with EmbeddedBroker(port=port):
        await eventually(lambda: ingest.stats.connected, "the ingest reconnects")
        assert ingest.stats.reconnects_total == 1
        await publish(endpoint, wire_message(heartbeat(mqtt_district, seq=2)))
        await sink.wait_count(2)
    assert [m.seq for m in sink.messages] == [1, 2]


async def test_unreachable_broker_is_retried_and_logged_without_credentials(
    mqtt_district: str, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    caplog.set_level(logging.DEBUG)
    secret = "Unreach-pw-77c1e0"
    settings = ingest_settings(
        Endpoint("none", "127.0.0.1", port), mqtt_district, username="u", password=secret
    )
    async with MqttIngest(settings, RecordingSink()) as ingest:
        await eventually(lambda: ingest.stats.connect_failures_total >= 3, "three attempts")
        assert not ingest.stats.connected
    assert f"127.0.0.1:{port}" in caplog.text
    assert secret not in caplog.text


async def test_password_is_used_but_never_logged_or_shown(
    tmp_path: Path,
    mqtt_district: str,
    start_ingest: IngestFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = "Ingest-pw-9d04b3"
    policy = AccessPolicy(
        mqtt_district,
        [
            Account("collector", "collector", None, digest(password)),
            Account("sch-1", "school", "sch-1", digest(password)),
        ],
    )
    caplog.set_level(logging.DEBUG)
    async with EmbeddedBroker(policy=policy) as broker:
        endpoint = Endpoint("embedded", "127.0.0.1", broker.port)
        wrong = ingest_settings(endpoint, mqtt_district, username="collector", password="nope")
        async with MqttIngest(wrong, RecordingSink()) as refused:
            await eventually(lambda: refused.stats.connect_failures_total >= 2, "two refusals")
            assert not refused.stats.connected
        assert "refused" in caplog.text

        settings = ingest_settings(
            endpoint, mqtt_district, username="collector", password=SecretStr(password)
        )
        sink = RecordingSink()
        await start_ingest(settings, sink)
        await publish_with_password(endpoint, password, wire_message(heartbeat(mqtt_district)))
        await sink.wait_count(1)
    assert password not in caplog.text
    for shown in (repr(settings), str(settings), repr(wrong), str(wrong)):
        assert password not in shown
        assert "nope" not in shown


async def test_a_sink_exception_is_a_bug_and_ends_run(
    mqtt_broker: Endpoint, mqtt_district: str
) -> None:
    class SinkBug(Exception):
        pass

    def sink(message: Heartbeat | Status, received_at: float) -> None:
        raise SinkBug(message)

    ingest = MqttIngest(ingest_settings(mqtt_broker, mqtt_district), sink)
    async with ingest:
        await eventually(lambda: ingest.stats.connected, "connected")
        await publish(mqtt_broker, wire_message(heartbeat(mqtt_district)))
        await eventually(lambda: ingest.stats.accepted_total == 1, "the message accepted")
        with pytest.raises(SinkBug):
            await ingest.aclose()
    assert not ingest.stats.connected


async def test_aclose_makes_run_return(mqtt_broker: Endpoint, mqtt_district: str) -> None:
    ingest = MqttIngest(ingest_settings(mqtt_broker, mqtt_district), RecordingSink())
    async with ingest:
        await eventually(lambda: ingest.stats.connected, "connected")
    assert not ingest.stats.connected
    assert ingest.stats.connects_total == 1


def test_settings_keep_the_password_secret() -> None:
    settings = MqttSettings(username="school-1", password="Plain-pw-1f2e3d")
    assert isinstance(settings.password, SecretStr)
    assert settings.password.get_secret_value() == "Plain-pw-1f2e3d"
    assert "Plain-pw-1f2e3d" not in repr(settings)
    assert "Plain-pw-1f2e3d" not in str(settings)
    assert settings.address == "127.0.0.1:1883"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"host": ""}, "mqtt.host"),
        ({"port": 0}, "mqtt.port"),
        ({"port": 65536}, "mqtt.port"),
        ({"district": "bad district"}, "mqtt.district"),
        ({"district": "#"}, "mqtt.district"),
        ({"password": "x"}, "needs mqtt.username"),
        ({"keepalive": 0}, "mqtt.keepalive"),
        ({"qos": 2}, "mqtt.qos"),
        ({"max_payload_bytes": 0}, "mqtt.max_payload_bytes"),
        ({"max_payload_bytes": MAX_PAYLOAD_BYTES + 1}, "mqtt.max_payload_bytes"),
        ({"connect_timeout": 0}, "mqtt.connect_timeout"),
        ({"reconnect_min_seconds": 0}, "mqtt.reconnect_min_seconds"),
        ({"reconnect_min_seconds": 5, "reconnect_max_seconds": 1}, "reconnect_min_seconds"),
    ],
)
def test_settings_are_validated(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MqttSettings(**overrides)  # type: ignore[arg-type]


def test_tls_needs_both_certificate_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cert_file and key_file"):
        MqttTls(cert_file=tmp_path / "client.pem")


async def test_max_payload_bytes_is_enforced_before_parsing(
    mosquitto: Endpoint, mqtt_district: str, start_ingest: IngestFactory
) -> None:
    sink = RecordingSink()
    small = heartbeat(mqtt_district, seq=1, nic=None, ip=None, mac=None)
    topic, payload = wire_message(small)
    ingest = await start_ingest(
        ingest_settings(mosquitto, mqtt_district, max_payload_bytes=len(payload)), sink
    )
    large_topic, large_payload = wire_message(heartbeat(mqtt_district, seq=2))
    assert len(large_payload) > len(payload)
    await publish(mosquitto, (large_topic, large_payload), (topic, payload))
    await sink.wait_count(1)
    assert sink.messages == [small]
    assert ingest.stats.rejected_total["too_large"] == 1


async def test_a_payload_the_parser_chokes_on_does_not_stop_the_ingest(
    mosquitto: Endpoint, mqtt_district: str, start_ingest: IngestFactory
) -> None:
    sink = RecordingSink()
    ingest = await start_ingest(ingest_settings(mosquitto, mqtt_district), sink)
    topic, payload = wire_message(heartbeat(mqtt_district, seq=1))
    fields = json.loads(payload)
    good = heartbeat(mqtt_district, seq=2)
    # An unhashable duplex once made the parser raise TypeError instead of WireError.
    await publish(
        mosquitto,
        (topic, json.dumps({**fields, "duplex": []}).encode()),
        wire_message(good),
    )
    await sink.wait_count(1)
    assert sink.messages == [good]
    assert ingest.stats.rejected_total["bad_field"] == 1
    assert ingest.stats.connected


async def test_tls_with_client_certificate_and_password(
    tmp_path: Path,
    mqtt_district: str,
    start_ingest: IngestFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = "Tls-pw-6be2f1"
    pki = make_pki(tmp_path)
    passwd = tmp_path / "passwd"
    await asyncio.to_thread(
        subprocess.run,
        ["mosquitto_passwd", "-b", "-c", str(passwd), "collector", password],
        check=True,
        timeout=30,
        capture_output=True,
    )
    broker = PrivateBroker(
        tmp_path,
        f"allow_anonymous false\npassword_file {passwd}\ncafile {pki.ca}\n"
        f"certfile {pki.server_cert}\nkeyfile {pki.server_key}\nrequire_certificate true\n",
    )
    await asyncio.to_thread(broker.start)
    caplog.set_level(logging.DEBUG)
    try:
        endpoint = Endpoint("tls", "127.0.0.1", broker.port)
        credentials = {"username": "collector", "password": password}
        # A CA that did not sign the broker's certificate: refused by us, retried, logged.
        (tmp_path / "other").mkdir()
        other_ca = make_pki(tmp_path / "other").ca
        untrusted = ingest_settings(
            endpoint,
            mqtt_district,
            tls=MqttTls(ca_file=other_ca, cert_file=pki.client_cert, key_file=pki.client_key),
            **credentials,
        )
        async with MqttIngest(untrusted, RecordingSink()) as ingest:
            await eventually(lambda: ingest.stats.connect_failures_total >= 2, "two failures")
            assert not ingest.stats.connected
        assert "CERTIFICATE_VERIFY_FAILED" in caplog.text

        sink = RecordingSink()
        tls = MqttTls(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)
        await start_ingest(ingest_settings(endpoint, mqtt_district, tls=tls, **credentials), sink)
        sent = [heartbeat(mqtt_district, seq=seq) for seq in range(1, 301)]
        async with aiomqtt.Client(
            endpoint.host, endpoint.port, tls_context=pki.client_context(), **credentials
        ) as client:
            for message in sent:
                await client.publish(*wire_message(message), qos=1)
        await sink.wait_count(len(sent))
        assert sink.messages == sent
    finally:
        await asyncio.to_thread(broker.stop)
    assert password not in caplog.text


async def test_a_qos1_burst_through_the_embedded_broker_in_the_same_loop(
    embedded_broker: EmbeddedBroker,
    mqtt_district: str,
    start_ingest: IngestFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The single-box set-up: broker and ingest share one event loop. amqtt waits for a
    # PUBACK only from some time after it sent the PUBLISH; an acknowledgement sent sooner
    # is dropped and the delivery stalls.
    endpoint = Endpoint("embedded", "127.0.0.1", embedded_broker.port)
    sink = RecordingSink()
    await start_ingest(ingest_settings(endpoint, mqtt_district, qos=1), sink)
    sent = [heartbeat(mqtt_district, terminal=f"cls-{seq % 5}", seq=seq) for seq in range(1000)]
    await publish(endpoint, *(wire_message(m) for m in sent))
    await sink.wait_count(len(sent))
    assert sorted(sink.messages, key=lambda m: m.seq) == sent
    assert "unknown pending message" not in caplog.text
