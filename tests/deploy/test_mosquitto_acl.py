"""The shipped Mosquitto ACL: a school's account publishes only under its own subtree."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.agents.support import DEADLINE, PrivateBroker, Recorder

ROOT = Path(__file__).resolve().parents[2]
DISTRICT = "acl-test"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    acl = (ROOT / "deploy" / "mosquitto" / "edumon.acl").read_text(encoding="utf-8")
    (tmp_path / "edumon.acl").write_text(acl.replace("example-county", DISTRICT), encoding="utf-8")
    passwd = tmp_path / "edumon.passwd"
    for i, (user, password) in enumerate(
        (("CG01", "pw-school-cg01"), ("CG02", "pw-school-cg02"), ("edumon-collector", "pw-coll"))
    ):
        args = ["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(passwd), user, password]
        subprocess.run(args, check=True, capture_output=True, timeout=30)
    server = PrivateBroker(
        tmp_path,
        f"allow_anonymous false\npassword_file {passwd}\nacl_file {tmp_path / 'edumon.acl'}\n",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def publisher(broker: PrivateBroker, user: str, password: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"acl-{user}")
    client.username_pw_set(user, password)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def test_school_account_cannot_publish_for_another_school(broker: PrivateBroker) -> None:
    recorder = Recorder(DISTRICT, port=broker.port, username="edumon-collector", password="pw-coll")
    school = publisher(broker, "CG01", "pw-school-cg01")
    try:
        base = f"edumon/v1/{DISTRICT}"
        school.publish(
            f"{base}/CG02/terminal/CG02-001/heartbeat", b"forged", qos=1
        ).wait_for_publish(DEADLINE)
        school.publish(f"{base}/CG01/terminal/CG01-001/heartbeat", b"own", qos=1).wait_for_publish(
            DEADLINE
        )
        # Messages of one client arrive in order: once "own" is here, "forged" would be too.
        recorder.wait_for(lambda m: m.topic.endswith("CG01-001/heartbeat"))
        topics = [m.topic for m in recorder.messages]
        assert f"{base}/CG01/terminal/CG01-001/heartbeat" in topics
        assert not any("/CG02/" in t for t in topics)
    finally:
        school.loop_stop()
        school.disconnect()
        recorder.close()
