"""The embedded broker's TLS listener, its internal listener, and its refusal to be exposed."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiomqtt
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edumon.errors import ConfigError
from edumon.sources.mqtt.accounts import INTERNAL_ACCOUNT, AccessPolicy, Account
from edumon.sources.mqtt.broker import EmbeddedBroker, ServerTls
from edumon.tokens import digest, new_token
from tests.agents.support import make_pki
from tests.fixtures.mqtt import DEADLINE

DISTRICT = "tls-test"
TOPIC = f"edumon/v1/{DISTRICT}/CG01/terminal/CG01-101/heartbeat"


def policy_for(password: str) -> AccessPolicy:
    return AccessPolicy(DISTRICT, [Account("CG01", "school", "CG01", digest(password))])


async def next_message(client: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(DEADLINE):
        return await anext(aiter(client.messages))


def paho_over_tls(port: int, ca: Path, user: str, password: str) -> mqtt.MQTTErrorCode:
    """A paho client (as the terminal agent uses) publishing once over TLS; its result."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="tls-paho", protocol=MQTTProtocolVersion.MQTTv311
    )
    client.tls_set_context(ssl.create_default_context(cafile=str(ca)))
    client.username_pw_set(user, password)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    try:
        info = client.publish(TOPIC, b"over-tls", qos=1)
        info.wait_for_publish(DEADLINE)
        return info.rc
    finally:
        client.disconnect()
        client.loop_stop()


async def test_tls_listener_with_a_generated_ca(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    password = new_token()
    tls = ServerTls(pki.server_cert, pki.server_key)
    async with EmbeddedBroker(policy=policy_for(password), tls=tls) as broker:
        credentials = broker.internal_credentials()
        assert credentials is not None
        user, internal_password = credentials
        host, internal_port = broker.client_endpoint()
        assert (host, user) == ("127.0.0.1", INTERNAL_ACCOUNT)
        assert internal_port != broker.port
        # The collector of this process: plain TCP to the internal listener, internal account.
        async with aiomqtt.Client(
            host, internal_port, username=user, password=internal_password
        ) as collector:
            await collector.subscribe(f"edumon/v1/{DISTRICT}/#", qos=1)
            rc = await asyncio.to_thread(paho_over_tls, broker.port, pki.ca, "CG01", password)
            assert rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
            message = await next_message(collector)
            assert (str(message.topic), message.payload) == (TOPIC, b"over-tls")
        # Plain MQTT on the TLS port gets nowhere.
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(
                "127.0.0.1", broker.port, username="CG01", password=password, timeout=5
            ):
                pass
        # The internal listener admits the internal account only.
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(
                host, internal_port, username="CG01", password=password, timeout=5
            ):
                pass
        assert broker.refused["not_authorized"] == 1


async def test_no_accounts_means_loopback_only() -> None:
    exposed = EmbeddedBroker("0.0.0.0", 0)
    with pytest.raises(ConfigError) as refused:
        await exposed.start()
    message = str(refused.value)
    assert "未配置 MQTT 账号" in message
    assert "[[mqtt.accounts]]" in message
    assert "127.0.0.1" in message
    assert "edumon mqtt-account new" in message
    with pytest.raises(RuntimeError):  # nothing left listening
        _ = exposed.port
    # With accounts it may listen anywhere (here: every address, on a free port).
    async with EmbeddedBroker("0.0.0.0", 0, policy=policy_for(new_token())) as broker:
        assert broker.client_endpoint() == ("127.0.0.1", broker.port)
        assert broker.internal_credentials() is not None
    # Without accounts on loopback: anonymous, and the collector has no credentials to use.
    async with EmbeddedBroker() as anonymous:
        assert anonymous.internal_credentials() is None


async def test_a_configured_account_cannot_take_the_internal_name() -> None:
    policy = AccessPolicy(DISTRICT, [Account(INTERNAL_ACCOUNT, "collector", None, b"x" * 32)])
    with pytest.raises(ValueError, match="reserved"):
        EmbeddedBroker(policy=policy)


def test_policy_rights() -> None:
    policy = AccessPolicy(
        "d1",
        [
            Account("CG01", "school", "CG01", digest("p" * 43)),
            Account("noc", "collector", None, digest("q" * 43)),
        ],
    )
    school = policy.account("CG01")
    noc = policy.account("noc")
    assert school is not None
    assert noc is not None
    assert policy.authenticate("CG01", b"p" * 43) is school
    assert policy.authenticate("CG01", b"q" * 43) is None
    assert policy.authenticate("nobody", b"p" * 43) is None
    assert policy.authenticate(None, None) is None
    for topic in (
        "edumon/v1/d1/CG01/terminal/T1/status",
        "edumon/v1/d1/CG01/terminal/T1/heartbeat",
        "edumon/v1/d1/CG01/agent/A1/status",
        "edumon/v1/d1/CG01/agent/A1/poll",
    ):
        assert policy.may_publish(school, topic), topic
        assert not policy.may_publish(noc, topic), topic
        assert policy.may_receive(noc, topic)
        assert not policy.may_receive(school, topic)
    for topic in (
        "edumon/v1/d1/CG02/terminal/T1/status",
        "edumon/v1/d2/CG01/terminal/T1/status",
        "edumon/v1/d1/CG01/terminal/T1/other",
        "edumon/v1/d1/CG01/switch/T1/status",
        "edumon/v1/d1/CG01/terminal/T1/status/extra",
        "edumon/v1/d1/CG01/terminal//status",
        "edumon/v2/d1/CG01/terminal/T1/status",
    ):
        assert not policy.may_publish(school, topic), topic
    for topic_filter in ("#", "edumon/#", "edumon/v1/#", "edumon/v1/+/#", "$SYS/#"):
        assert not policy.may_subscribe(noc, topic_filter), topic_filter
        assert not policy.may_subscribe(school, topic_filter), topic_filter
    for topic_filter in (
        "edumon/v1/d1/#",
        "edumon/v1/d1/+/terminal/+/status",
        "$share/edumon/edumon/v1/d1/CG01/#",
    ):
        assert policy.may_subscribe(noc, topic_filter), topic_filter
        assert not policy.may_subscribe(school, topic_filter), topic_filter
    assert policy.may_take_over(school, None)
    assert policy.may_take_over(school, "CG01")
    assert not policy.may_take_over(school, "noc")
    assert policy.may_take_over(noc, "CG01")
    assert "digest" not in repr(school)
    assert "p" * 10 not in repr(school)
