"""The terminal agent against `edumon run`: online at its first heartbeat, offline at its Will.

Both ways a district runs it: the embedded broker (single box) and the Mosquitto on
127.0.0.1:1883 (production shape).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edumon.demo.agent import SimulatedSwitch
from tests.fixtures.simswitch import SIM_COMMUNITY, UPLINK_PORT
from tests.test_daemon import free_tcp_port, get, wait_until

ROOT = Path(__file__).resolve().parents[1]
AGENT_DIR = ROOT / "agents" / "terminal"


def config_text(tmp_path: Path, district: str, api_port: int, mqtt: str, switch_port: int) -> str:
    """A one-classroom district whose uplink switch answers (a simulated one on ``switch_port``):
    the terminal alone decides the classroom's state."""
    return f"""
[district]
code = "{district}"
name = "终端测试县"

[storage]
url = "sqlite:///{tmp_path / "edumon.db"}"
flush_seconds = 0.2

[api]
listen = "127.0.0.1:{api_port}"

[polling]
interval_seconds = 2  # the switch is polled during the test, and answers

{mqtt}

[[switches]]
id = "core"
host = "127.0.0.1"
port = {switch_port}
timeout_seconds = 1
retries = 1
snmp = {{ version = "2c", community = "{SIM_COMMUNITY}" }}

[[schools]]
code = "S1"
name = "第一小学"
kind = "primary"
uplink = {{ switch = "core", port = "{UPLINK_PORT}" }}

[[schools.classrooms]]
id = "S1-101"
name = "一年级(1)班"
terminal = "T101"
"""


@pytest.fixture(params=["embedded", "mosquitto"])
def daemon_and_broker(
    request: pytest.FixtureRequest, tmp_path: Path, uplink_switch: SimulatedSwitch
) -> Iterator[tuple[str, str, int]]:
    district = f"e2e-{uuid.uuid4().hex[:8]}"
    api_port = free_tcp_port()
    if request.param == "embedded":
        broker_port = free_tcp_port()
        mqtt = f'[mqtt]\nbroker = "embedded"\nlisten = "127.0.0.1:{broker_port}"'
    else:
        broker_port = 1883
        mqtt = '[mqtt]\nbroker = "external"\nhost = "127.0.0.1"\nport = 1883'
    mqtt += "\nheartbeat_interval_seconds = 1"
    config = tmp_path / "edumon.toml"
    config.write_text(
        config_text(tmp_path, district, api_port, mqtt, uplink_switch.port), encoding="utf-8"
    )
    log = (tmp_path / "edumon.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edumon", "run", "-c", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{api_port}"
        wait_until("the API", lambda: get(f"{base}/healthz")[0] == 200, proc)
        request.node.daemon = proc
        yield base, district, broker_port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log.close()


def terminal(base: str) -> dict[str, Any]:
    status, body = get(f"{base}/api/v1/terminals")
    assert status == 200, body
    (only,) = json.loads(body)["terminals"]
    return dict(only)


@pytest.mark.timeout(240)  # generous deadlines inside: a loaded machine is slow, not wrong
def test_agent_online_at_first_heartbeat_and_offline_at_its_will(
    daemon_and_broker: tuple[str, str, int], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    base, district, broker_port = daemon_and_broker
    daemon: subprocess.Popen[bytes] = request.node.daemon
    assert terminal(base)["status"] == "offline"  # never heard of yet
    env = dict(os.environ, PYTHONPATH=str(AGENT_DIR))
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edumon_terminal_agent",
            "--district",
            district,
            "--school",
            "S1",
            "--terminal",
            "T101",
            "--host",
            "127.0.0.1",
            "--port",
            str(broker_port),
            "--no-tls",
            "--heartbeat-interval",
            "1",
            "--state-dir",
            str(tmp_path / "agent-state"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        # Online at its first heartbeat (generous deadline: the agent is a process that may
        # start slowly on a loaded machine).
        online = wait_until(
            "the terminal online",
            lambda: (t := terminal(base))["status"] == "online" and t,
            daemon,
            deadline=60,
        )
        assert online["classroom"] == "S1-101"
        assert online["heartbeats"] >= 1
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        # The broker publishes the Will when the TCP connection drops, well before the
        # heartbeat timeout (3 × 1 s + 10 s); the reason says which one it was.
        offline = wait_until(
            "the terminal offline by its Will",
            lambda: (t := terminal(base))["status"] == "offline" and t,
            daemon,
            deadline=30,
        )
        assert offline["offline_reason"] == "will"

        def stored_offline_event() -> list[dict[str, Any]] | None:
            status, body = get(f"{base}/api/v1/events?kind=terminal_offline")
            return (json.loads(body)["events"] or None) if status == 200 else None

        events = wait_until("the offline event stored", stored_offline_event, daemon)
        assert events[0]["classroom"] == "S1-101"
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(timeout=10)
