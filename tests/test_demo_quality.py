"""The demo's district contradicts its own inventory, and edumon says so: data-quality warnings.

``edumon demo`` on free ports (real simulated switches over SNMP, real terminals over its MQTT
broker). Its recordings have classroom ports down or at 100M while the classrooms' terminals
report online at 1000M: /api/v1/data-quality must flag those, each consistent with what the
switch and terminal endpoints show, and a terminal that reports under another school's topic.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edumon import wire
from tests.fixtures.mqtt import heartbeat
from tests.test_daemon import get, wait_until
from tests.test_demo import Demo, start_demo


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    started = start_demo(tmp_path, "--db", str(tmp_path / "demo.db"))
    try:
        yield started
    finally:
        if started.proc.poll() is None:
            started.proc.kill()
        started.proc.communicate(timeout=60)


def json_of(url: str) -> Any:
    status, body = get(url)
    assert status == 200, body
    return json.loads(body)


def publish_as_other_school(demo: Demo, terminal: str, school: str) -> None:
    """One heartbeat of ``terminal`` on ``school``'s topic, through the demo's own broker."""
    # start_demo reads up to the metrics URL; the broker's line follows it.
    assert demo.proc.stdout is not None
    match = None
    for _ in range(10):
        line = demo.proc.stdout.readline()
        demo.printed.append(line)
        match = re.search(r"MQTT\s+127\.0\.0\.1:(\d+)", line)
        if match is not None or not line:
            break
    assert match is not None, demo.printed
    beat = heartbeat(
        "demo",
        school,
        terminal,
        seq=int(time.time()),
        birth_seq=1,
        observed_at=time.time(),
        uptime_seconds=10.0,
    )
    # The demo's terminals log in per school; it prints each school's password.
    (password,) = [
        m[1]
        for line in demo.printed
        if (m := re.search(rf"^\s+{school}\s+EDUMON_MQTT_PASSWORD=(\S+)", line))
    ]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="quality-test")
    client.username_pw_set(school, password)
    client.connect("127.0.0.1", int(match[1]))
    client.loop_start()
    try:
        info = client.publish(
            wire.terminal_topic("demo", school, terminal, "heartbeat"),
            wire.encode_heartbeat(beat),
            qos=1,
        )
        info.wait_for_publish(timeout=10)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.timeout(180)
def test_demo_contradictions_are_flagged(demo: Demo) -> None:
    base, proc = demo.base, demo.proc
    api = f"{base}/api/v1"

    def both_kinds() -> dict[str, Any] | None:
        body = json_of(f"{api}/data-quality?school=cgzx&school=syxx&school=dyzx&school=sqzx")
        counts = body["counts"]
        done = counts["terminal_online_port_down"] and counts["speed_mismatch"]
        return body if done else None

    wait_until("port-down and speed warnings", both_kinds, proc, deadline=90)

    def snapshot() -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
        terminals = json_of(f"{api}/terminals?limit=1000")["terminals"]
        ports = {
            (sw["id"], i["name"]): (i["status"], i["speed_mbps"])
            for sw in json_of(f"{api}/switches?limit=1000")["switches"]
            for i in json_of(f"{api}/switches/{sw['id']}/interfaces")["interfaces"]
        }
        return {t["classroom"]: t["status"] for t in terminals}, ports

    # The warnings between two readings of the ports and terminals: where both readings agree
    # (the demo's flapping port may have moved in between), they must agree with the warning.
    before = snapshot()
    body = json_of(f"{api}/data-quality")
    after = snapshot()
    assert body["page"]["total"] == body["counts"]["total"] == len(body["warnings"])
    checked = 0
    for w in body["warnings"]:
        assert w["school_name"]
        assert w["classroom_name"]
        assert w["fix"].startswith("检查 classrooms.csv 中 ")
        assert f"{w['school_name']} {w['classroom_name']} ({w['classroom']})" in w["fix"]
        assert w["since"].endswith("+08:00")
        if w["kind"] not in ("terminal_online_port_down", "speed_mismatch"):
            continue
        key = (w["switch"], w["port"])
        terminal = before[0][w["classroom"]]
        if before[1][key] != after[1][key] or terminal != after[0][w["classroom"]]:
            continue
        status, speed = before[1][key]
        assert terminal == "online", w
        if w["kind"] == "terminal_online_port_down":
            assert status != "up", (w, status)
        else:
            assert speed == w["port_speed_mbps"] != w["terminal_speed_mbps"], (w, speed)
        checked += 1
    assert checked >= 2

    publish_as_other_school(demo, "cgzx-01", "syxx")

    def wrong_school() -> list[dict[str, Any]] | None:
        found = json_of(f"{api}/data-quality?kind=terminal_wrong_school")["warnings"]
        return found or None

    (moved,) = wait_until("the terminal reporting from another school", wrong_school, proc)
    assert (moved["school"], moved["classroom"], moved["other_school"]) == (
        "cgzx",
        "cgzx-01",
        "syxx",
    )
    assert moved["other_school_name"] == "实验小学"

    status, metrics = get(f"{base}/metrics")
    assert status == 200
    assert re.search(
        r'^edumon_data_quality_warnings\{kind="speed_mismatch",school="\w+"\} [1-9]',
        metrics,
        re.M,
    )
