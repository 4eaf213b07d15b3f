"""Both brokers locked down alike: the real Mosquitto with the shipped configuration and ACL,
and the embedded broker with [[mqtt.accounts]] (docs/mqtt-security.md).

For each: a school's account cannot publish into another school's topics (a collector-account
subscriber sees its own message arrive and the forged one never), cannot read anything with
``#``, cannot leave a Will on another school's topic, cannot push a message over the size
limit; anonymous clients and wrong passwords are refused.
"""

from __future__ import annotations

import asyncio
import getpass
import re
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edumon.sources.mqtt.accounts import AccessPolicy, Account
from edumon.sources.mqtt.broker import MAX_MESSAGE_BYTES, MAX_PACKET_BYTES, EmbeddedBroker
from edumon.tokens import digest, new_token
from tests.agents.support import DEADLINE, PrivateBroker

ROOT = Path(__file__).resolve().parents[2]
DISTRICT = "lockdown-test"
BASE = f"edumon/v1/{DISTRICT}"
COLLECTOR = "edumon-collector"
NEGATIVE_WAIT = 3.0
"""Seconds a test waits for something that must not happen, after the broker has delivered a
later message that proves it had its chance (a bounded negative check)."""


@dataclass
class Broker:
    """A running broker and the passwords of its accounts."""

    name: str
    port: int
    passwords: dict[str, str]


def _shipped_mosquitto_conf(port: int, directory: Path) -> str:
    conf = (ROOT / "deploy" / "mosquitto" / "edumon.conf").read_text(encoding="utf-8")
    conf = re.sub(r"(?m)^listener 1883$", f"listener {port} 127.0.0.1", conf)
    conf = conf.replace("/etc/mosquitto/edumon.passwd", str(directory / "edumon.passwd"))
    conf = conf.replace("/etc/mosquitto/edumon.acl", str(directory / "edumon.acl"))
    # Our own user (not mosquitto's: pytest's tmp directories are private), our own files.
    return f"user {getpass.getuser()}\nlog_dest stderr\npersistence_location {directory}/\n{conf}"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    acl = (ROOT / "deploy" / "mosquitto" / "edumon.acl").read_text(encoding="utf-8")
    (tmp_path / "edumon.acl").write_text(acl.replace("example-county", DISTRICT), encoding="utf-8")
    passwords = {"CG01": new_token(), "CG02": new_token(), COLLECTOR: new_token()}
    passwd = tmp_path / "edumon.passwd"
    for i, (user, password) in enumerate(passwords.items()):
        args = ["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(passwd), user, password]
        subprocess.run(args, check=True, capture_output=True, timeout=30)
    server = PrivateBroker(tmp_path)
    server.conf.write_text(_shipped_mosquitto_conf(server.port, tmp_path), encoding="utf-8")
    server.start()
    try:
        yield Broker("mosquitto", server.port, passwords)
    finally:
        server.stop()


class ThreadedBroker:
    """An ``EmbeddedBroker`` on an event loop of its own thread (the tests' clients block)."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self.broker = broker
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> EmbeddedBroker:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.broker.start(), self._loop).result(DEADLINE)
        return self.broker

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.broker.stop(), self._loop).result(DEADLINE)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(DEADLINE)
        self._loop.close()


def school_policy(passwords: dict[str, str]) -> AccessPolicy:
    return AccessPolicy(
        DISTRICT,
        [
            Account(
                name,
                "collector" if name == COLLECTOR else "school",
                None if name == COLLECTOR else name,
                digest(password),
            )
            for name, password in passwords.items()
        ],
    )


@pytest.fixture
def embedded() -> Iterator[Broker]:
    passwords = {"CG01": new_token(), "CG02": new_token(), COLLECTOR: new_token()}
    with ThreadedBroker(EmbeddedBroker(policy=school_policy(passwords))) as broker:
        yield Broker("embedded", broker.port, passwords)


@pytest.fixture(params=["mosquitto", "embedded"])
def broker(request: pytest.FixtureRequest) -> Broker:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


class Client:
    """A paho MQTT 3.1.1 client (both brokers speak it) that records what happens to it."""

    def __init__(
        self,
        broker: Broker,
        user: str | None,
        password: str | None = None,
        *,
        will: str | None = None,
        client_id: str | None = None,
    ) -> None:
        self._condition = threading.Condition()
        self.connack: Any = None
        self.disconnected = False
        self.messages: list[mqtt.MQTTMessage] = []
        self.granted: list[int] = []
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"lockdown-{uuid.uuid4().hex[:10]}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        if user is not None:
            self.client.username_pw_set(
                user, password if password is not None else broker.passwords[user]
            )
        if will is not None:
            self.client.will_set(will, b"forged-will", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", broker.port, keepalive=30)
        self.client.loop_start()
        self.wait(lambda: self.connack is not None or self.disconnected, "a CONNACK")

    def _notify(self) -> None:
        with self._condition:
            self._condition.notify_all()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = reason
        self._notify()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        self.disconnected = True
        self._notify()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.append(message)
        self._notify()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        self.granted.extend(int(c.value) for c in codes)
        self._notify()

    @property
    def accepted(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def wait(self, condition: Any, what: str, timeout: float = DEADLINE) -> None:
        with self._condition:
            if not self._condition.wait_for(condition, timeout):
                raise AssertionError(f"not within {timeout} s: {what}")

    def subscribe(self, *filters: str) -> list[int]:
        before = len(self.granted)
        self.client.subscribe([(f, 1) for f in filters])
        self.wait(lambda: len(self.granted) >= before + len(filters), f"SUBACK for {filters}")
        return self.granted[before:]

    def topics(self) -> list[str]:
        with self._condition:
            return [m.topic for m in self.messages]

    def wait_for_topic(self, topic: str) -> None:
        self.wait(lambda: topic in [m.topic for m in self.messages], f"a message on {topic}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def collector(broker: Broker) -> Iterator[Client]:
    client = Client(broker, COLLECTOR)
    assert client.accepted, client.connack
    assert client.subscribe(f"{BASE}/#") == [1]
    yield client
    client.close()


def test_anonymous_clients_and_wrong_passwords_are_refused(broker: Broker) -> None:
    for user, password in ((None, None), ("CG01", "not-the-password"), ("nobody", "x" * 43)):
        client = Client(broker, user, password)
        try:
            assert not client.accepted, f"{broker.name} admitted {user!r}"
        finally:
            client.close()


def test_a_school_cannot_publish_into_another_schools_topics(
    broker: Broker, collector: Client
) -> None:
    school = Client(broker, "CG01")
    try:
        assert school.accepted
        forged = [
            f"{BASE}/CG02/terminal/CG02-001/status",  # a retained "online" for a classroom
            f"{BASE}/CG02/terminal/CG02-001/heartbeat",
            f"{BASE}/CG02/agent/ag-1/poll",
            "edumon/v1/other-district/CG01/terminal/CG01-001/status",
            f"{BASE}/CG01/terminal/CG01-001/anything-else",
        ]
        for topic in forged:
            school.client.publish(topic, b"forged", qos=1, retain=True).wait_for_publish(DEADLINE)
        own = f"{BASE}/CG01/terminal/CG01-001/status"
        school.client.publish(own, b"own", qos=1, retain=True).wait_for_publish(DEADLINE)
        agent = f"{BASE}/CG01/agent/ag-1/poll"
        school.client.publish(agent, b"batch", qos=1).wait_for_publish(DEADLINE)
        # One client's messages arrive in order: once these are here, the forged ones would be.
        collector.wait_for_topic(agent)
        assert collector.topics() == [own, agent], broker.name
        # Nor was any kept as a retained message: a new subscriber gets only the school's own.
        late = Client(broker, COLLECTOR)
        try:
            assert late.subscribe(f"{BASE}/CG02/#", "edumon/v1/other-district/#") in (
                [1, 1],
                [1, 128],  # the embedded broker refuses a filter outside the district
            )
            late.subscribe(own)  # its SUBACK follows the retained messages of the first
            late.wait_for_topic(own)
            assert set(late.topics()) == {own}, broker.name
        finally:
            late.close()
    finally:
        school.close()


def test_a_school_reads_nothing(broker: Broker, collector: Client) -> None:
    school = Client(broker, "CG01")
    other = Client(broker, "CG02")
    try:
        granted = school.subscribe("#", f"{BASE}/#", f"{BASE}/CG01/#", "$SYS/#")
        if broker.name == "embedded":
            assert granted == [128, 128, 128, 128]  # refused outright
        topic = f"{BASE}/CG02/terminal/CG02-007/heartbeat"
        other.client.publish(topic, b"hb", qos=1).wait_for_publish(DEADLINE)
        mine = f"{BASE}/CG01/terminal/CG01-001/heartbeat"
        school.client.publish(mine, b"hb", qos=1).wait_for_publish(DEADLINE)
        collector.wait_for_topic(topic)
        collector.wait_for_topic(mine)
        with pytest.raises(AssertionError):  # bounded: the broker delivered to the collector
            school.wait(lambda: bool(school.messages), "nothing", NEGATIVE_WAIT)
        assert school.messages == [], broker.name
    finally:
        school.close()
        other.close()


def test_a_will_on_another_schools_topic_is_refused(broker: Broker, collector: Client) -> None:
    target = f"{BASE}/CG02/terminal/CG02-001/status"
    forger = Client(broker, "CG01", will=target)
    if broker.name == "embedded":
        assert not forger.accepted, "the embedded broker admitted a Will on another school's topic"
    else:
        # Mosquitto 2.0 admits the CONNECT and checks the ACL when it would publish the Will.
        assert forger.accepted
        sock = forger.client.socket()
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)  # lost without DISCONNECT: the Will is due now
        forger.wait(lambda: forger.disconnected, "the forger's connection closed")
    forger.client.loop_stop()
    # Its own topic is fine, and that Will is published when the connection is lost: by then
    # the broker has long seen the forger go (it has answered a new CONNECT since).
    own = f"{BASE}/CG01/terminal/CG01-001/status"
    honest = Client(broker, "CG01", will=own)
    assert honest.accepted
    sock = honest.client.socket()
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)
    collector.wait_for_topic(own)
    honest.client.loop_stop()
    assert target not in collector.topics(), broker.name
    late = Client(broker, COLLECTOR)  # nor is it retained
    try:
        late.subscribe(target)
        late.subscribe(own)
        late.wait_for_topic(own)
        assert target not in late.topics(), broker.name
    finally:
        late.close()


@pytest.mark.parametrize(
    "size",
    [MAX_MESSAGE_BYTES + 1, MAX_MESSAGE_BYTES + 4096],
    ids=["payload-over-the-limit", "packet-over-the-limit"],
)
def test_a_message_over_the_size_limit_is_refused(
    broker: Broker, collector: Client, size: int
) -> None:
    school = Client(broker, "CG01")
    try:
        batch = f"{BASE}/CG01/agent/ag-1/poll"
        # A large poll batch within the limit passes (the limit is not the wire's 4096 bytes).
        school.client.publish(batch, b"b" * (200 * 1024), qos=1).wait_for_publish(DEADLINE)
        collector.wait_for_topic(batch)
        huge = f"{BASE}/CG01/terminal/CG01-001/heartbeat"
        info = school.client.publish(huge, b"h" * size, qos=1)
        if broker.name == "mosquitto" and size + len(huge) + 10 <= MAX_PACKET_BYTES:
            info.wait_for_publish(DEADLINE)  # message_size_limit: acknowledged and dropped
            assert not school.disconnected
        else:  # max_packet_size, and the embedded broker for both: the connection ends
            school.wait(lambda: school.disconnected, "the broker ending the connection")
    finally:
        school.close()
    marker = f"{BASE}/CG02/terminal/CG02-001/heartbeat"
    other = Client(broker, "CG02")
    try:
        other.client.publish(marker, b"after", qos=1).wait_for_publish(DEADLINE)
        collector.wait_for_topic(marker)
        assert huge not in collector.topics(), broker.name
    finally:
        other.close()


def test_embedded_broker_keeps_a_session_from_another_account(embedded: Broker) -> None:
    """A school cannot take over (and with a clean session discard) the collector's session."""
    collector = Client(embedded, COLLECTOR, client_id="edumon-collector-1")
    try:
        assert collector.accepted
        thief = Client(embedded, "CG01", client_id="edumon-collector-1")
        assert not thief.accepted
        thief.client.loop_stop()
        assert not collector.disconnected
    finally:
        collector.close()


def test_shipped_mosquitto_limits_match_the_embedded_broker() -> None:
    conf = (ROOT / "deploy" / "mosquitto" / "edumon.conf").read_text(encoding="utf-8")
    settings = dict(
        line.split(None, 1) for line in conf.splitlines() if line and not line.startswith("#")
    )
    assert int(settings["message_size_limit"]) == MAX_MESSAGE_BYTES
    assert int(settings["max_packet_size"]) == MAX_PACKET_BYTES
    assert settings["persistence"] == "true"
    assert int(settings["max_queued_messages"]) >= 4_700_000  # 24 h of a city: docs
    # Mosquitto 2.0 parses these as C ints: a larger value silently wraps.
    for key in ("message_size_limit", "max_packet_size", "max_queued_messages"):
        assert int(settings[key]) < 2**31, key
    assert "max_queued_bytes" not in settings  # an int too: cannot hold a city's day
    assert int(settings["memory_limit"]) >= 22 * 10**9
