"""edumon_mqtt_broker_refused_total: the embedded broker's refused logins on /metrics.

A real paho client logs in with a wrong password to the real embedded broker on a free port;
the counter of its reason goes to 1, every other reason stays at 0, and neither password is in
the metrics or the log. Through ``edumon run`` too, so the app's wiring is what is read.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edumon.exporters.metrics import Exposition
from edumon.runtime import Runtime
from edumon.sources.mqtt.accounts import AccessPolicy, Account
from edumon.sources.mqtt.broker import REFUSAL_REASONS, EmbeddedBroker
from edumon.tokens import digest, new_token
from tests.exporters.test_metrics import find, one, promtool_check
from tests.fixtures.mqtt import DEADLINE
from tests.fixtures.runtime import build_runtime
from tests.test_daemon import get
from tests.test_mqtt_accounts_e2e import connack, locked_daemon  # noqa: F401 - a fixture

DISTRICT = "refused-test"
FAMILY = "edumon_mqtt_broker_refused_total"


def plain_connack(port: int, user: str, password: str) -> int:
    """The CONNACK reason code (MQTT 5 numbering, as paho gives it) for this login."""
    codes: list[int] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="wrong-pw", protocol=MQTTProtocolVersion.MQTTv311
    )
    client.username_pw_set(user, password)
    client.on_connect = lambda _c, _u, _f, reason, _p: codes.append(int(reason.value))
    client.connect("127.0.0.1", port, keepalive=30)
    try:
        for _ in range(int(DEADLINE / 0.2)):
            client.loop(timeout=0.2)
            if codes:
                return codes[0]
        raise AssertionError(f"no CONNACK within {DEADLINE} s")
    finally:
        client.disconnect()


async def test_a_wrong_password_is_counted_as_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password, wrong = new_token(), new_token()
    policy = AccessPolicy(DISTRICT, [Account("CG01", "school", "CG01", digest(password))])
    runtime = await build_runtime(tmp_path / "edumon.db")
    try:
        async with EmbeddedBroker(policy=policy) as broker:
            runtime.embedded_broker = broker
            before = Exposition(runtime).render().decode()
            for reason in REFUSAL_REASONS:  # present from the start, so increase() sees a first
                assert one(before, FAMILY, reason=reason) == 0
            code = await asyncio.to_thread(plain_connack, broker.port, "CG01", wrong)
            assert code == 0x86  # bad user name or password (3.1.1 return code 4)
            text = Exposition(runtime).render().decode()
    finally:
        await runtime.store.aclose()
    assert one(text, FAMILY, reason="credentials") == 1
    for reason in REFUSAL_REASONS:
        if reason != "credentials":
            assert one(text, FAMILY, reason=reason) == 0
    # Labels are the fixed reasons only: nothing the client sent.
    labels = set(re.findall(rf'^{FAMILY}\{{reason="([^"]*)"\}}', text, re.MULTILINE))
    assert labels == set(REFUSAL_REASONS)
    assert "# HELP edumon_mqtt_broker_refused_total Connections the embedded MQTT broker" in text
    for secret in (password, wrong):
        assert secret not in text
        assert secret not in caplog.text
    assert "credentials" in caplog.text  # the refusal was logged, without the password
    returncode, said = await promtool_check(text)
    assert returncode == 0, said


async def test_absent_without_the_embedded_broker(populated_runtime: Runtime) -> None:
    # An external broker (Mosquitto) counts its own refusals; edumon has nothing to say.
    text = Exposition(populated_runtime).render().decode()
    assert find(text, FAMILY) == []
    assert "edumon_mqtt_broker_refused" not in text


@pytest.mark.timeout(180)
def test_edumon_run_exports_the_refusal(
    locked_daemon: tuple[str, str, int, str, Path, subprocess.Popen[bytes]],  # noqa: F811
    tmp_path: Path,
) -> None:
    base, _district, broker_port, password, ca, _daemon = locked_daemon
    wrong = new_token()
    assert connack(broker_port, ca, "S1", wrong) == 0x86
    status, text = get(f"{base}/metrics")
    assert status == 200
    # The collector logs in to its own broker with the internal account: never refused.
    assert one(text, FAMILY, reason="credentials") == 1
    assert one(text, FAMILY, reason="not_authorized") == 0
    assert password not in text
    assert wrong not in text
    assert wrong not in (tmp_path / "edumon.log").read_text(errors="replace")
