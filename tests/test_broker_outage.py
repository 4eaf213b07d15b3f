"""A broker outage is not a terminal outage; a forged session does not silence a terminal.

Real processes: `edumon run`, terminal agents (agents/terminal) and Mosquitto. The outage test
starts its own Mosquitto on a free port (with persistence, so the Wills it publishes as it
shuts down come back retained when it starts again), stops it with SIGTERM for 60 s and starts
it again. docs/wire-protocol.md, "When the collector is blind".
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edumon.wire import Heartbeat, encode_heartbeat, terminal_topic
from tests.agents.support import AgentProcess, PrivateBroker
from tests.test_daemon import free_tcp_port, get, wait_until

SCHOOLS = ("S1", "S2", "S3")
ROOMS_PER_SCHOOL = 4
HEARTBEAT_SECONDS = 5  # edumon's [mqtt] heartbeat_interval_seconds: a 15 s timeout
OUTAGE_SECONDS = 60.0
BACK_ONLINE_WITHIN = 45.0  # seconds from the broker's restart until every terminal is online


def config_text(tmp_path: Path, district: str, api_port: int, broker_port: int) -> str:
    schools = ""
    for school in SCHOOLS:
        schools += f"""
[[schools]]
code = "{school}"
name = "学校{school}"
kind = "primary"
uplink = {{ switch = "core", port = "Gi0/{school[1:]}" }}
"""
        for r in range(1, ROOMS_PER_SCHOOL + 1):
            schools += f"""
[[schools.classrooms]]
id = "{school}-{r}"
name = "{r}班"
"""
    return f"""
[district]
code = "{district}"
name = "断网测试县"

[storage]
url = "sqlite:///{tmp_path / "edumon.db"}"
flush_seconds = 0.2

[api]
listen = "127.0.0.1:{api_port}"

[mqtt]
broker = "external"
host = "127.0.0.1"
port = {broker_port}
heartbeat_interval_seconds = {HEARTBEAT_SECONDS}

[alerting]
classroom_offline_minutes = 0.5

[[switches]]
id = "core"
host = "127.0.0.1"
port = 9
timeout_seconds = 0.2
retries = 0
snmp = {{ version = "2c", community = "unused" }}
{schools}
"""


class Daemon:
    """`edumon run` as a process, and what the tests ask its API."""

    def __init__(self, tmp_path: Path, district: str, broker_port: int) -> None:
        api_port = free_tcp_port()
        self.base = f"http://127.0.0.1:{api_port}"
        config = tmp_path / "edumon.toml"
        config.write_text(config_text(tmp_path, district, api_port, broker_port), encoding="utf-8")
        self.log_path = tmp_path / "edumon.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edumon", "run", "-c", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until("the API", lambda: get(f"{self.base}/healthz")[0] == 200, self.proc)

    def json(self, path: str) -> Any:
        status, body = get(f"{self.base}{path}")
        assert status == 200, body
        return json.loads(body)

    def statuses(self) -> dict[str, str]:
        return {t["terminal"]: t["status"] for t in self.json("/api/v1/terminals")["terminals"]}

    def offline_reasons(self) -> dict[str, str | None]:
        """Why each terminal is not online: None while online or unknown after being online.

        (The test's switch never answers, so the schools' uplinks are unknown and a terminal
        that is not online shows as ``unknown`` whatever its state: the reason tells.)"""
        terminals = self.json("/api/v1/terminals")["terminals"]
        return {t["terminal"]: t["offline_reason"] for t in terminals}

    def terminals_up(self) -> float:
        status, text = get(f"{self.base}/metrics")
        assert status == 200
        return sum(float(v) for v in re.findall(r"^edumon_terminal_up\{.*\} (\S+)$", text, re.M))

    def events(self, kind: str) -> list[dict[str, Any]]:
        return list(self.json(f"/api/v1/events?kind={kind}&limit=500")["events"])

    def metric(self, name: str, labels: str = "") -> float:
        status, text = get(f"{self.base}/metrics")
        assert status == 200
        match = re.search(rf"^{name}{re.escape(labels)} (\S+)$", text, re.M)
        assert match is not None, f"{name}{labels} not in /metrics"
        return float(match.group(1))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


def start_agent(
    tmp_path: Path, district: str, school: str, terminal: str, port: int, interval: float
) -> AgentProcess:
    settings = tmp_path / f"agent-{terminal}.toml"
    settings.write_text(
        "[agent]\nreconnect_min_seconds = 1\nreconnect_max_seconds = 4\n", encoding="utf-8"
    )
    args = [
        "-c",
        str(settings),
        "--district",
        district,
        "--school",
        school,
        "--terminal",
        terminal,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-tls",
        "--heartbeat-interval",
        str(interval),
        "--state-dir",
        str(tmp_path / f"state-{terminal}"),
    ]
    return AgentProcess(args, tmp_path / f"agent-{terminal}.log")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[PrivateBroker, Daemon, list[AgentProcess]]]:
    district = f"blind-{uuid.uuid4().hex[:8]}"
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    broker = PrivateBroker(
        broker_dir,
        listener_options=(
            f"allow_anonymous true\npersistence true\npersistence_location {broker_dir}/\n"
        ),
    )
    broker.start()
    agents: list[AgentProcess] = []
    daemon: Daemon | None = None
    try:
        daemon = Daemon(tmp_path, district, broker.port)
        for school in SCHOOLS:
            for r in range(1, ROOMS_PER_SCHOOL + 1):
                agents.append(
                    start_agent(tmp_path, district, school, f"{school}-{r}", broker.port, 2)
                )
        yield broker, daemon, agents
    finally:
        for agent in agents:
            agent.stop()
        if daemon is not None:
            daemon.stop()
        broker.stop()


@pytest.mark.timeout(420)  # a 60 s outage, and generous deadlines for a loaded machine
def test_a_broker_outage_makes_terminals_unknown_never_offline(
    stack: tuple[PrivateBroker, Daemon, list[AgentProcess]],
) -> None:
    broker, daemon, agents = stack
    total = len(agents)
    proc = daemon.proc
    wait_until(
        "every terminal online",
        lambda: set(daemon.statuses().values()) == {"online"},
        proc,
        deadline=90,
    )
    assert get(f"{daemon.base}/readyz")[0] == 200
    wills_before = daemon.metric("edumon_terminal_messages_ignored_total", '{reason="broker_will"}')

    # The broker goes away as in a real restart: SIGTERM, so it publishes the Wills.
    broker.stop()  # SIGTERM (so it publishes the Wills), and waits for it to exit
    stopped_at = time.monotonic()

    def readyz_503() -> str | None:
        status, body = get(f"{daemon.base}/readyz")
        return body if status == 503 else None

    body = wait_until("/readyz 503 while blind", readyz_503, proc, deadline=40)
    assert "blind" in body
    assert daemon.metric("edumon_mqtt_blind") == 1
    seen_during: set[str] = set()
    samples = 0
    while time.monotonic() - stopped_at < OUTAGE_SECONDS:
        statuses = daemon.statuses()
        seen_during |= set(statuses.values())
        reasons = daemon.offline_reasons()
        assert set(reasons.values()) == {None}, reasons  # neither will nor timeout
        assert daemon.terminals_up() == total
        assert readyz_503() is not None
        samples += 1
        time.sleep(2)
    assert samples >= 10
    assert seen_during == {"unknown"}
    assert daemon.events("terminal_offline") == []

    broker.start()
    restarted_at = time.monotonic()
    wait_until("/readyz 200 again", lambda: get(f"{daemon.base}/readyz")[0] == 200, proc)
    wait_until(
        "every terminal online again",
        lambda: set(daemon.statuses().values()) == {"online"},
        proc,
        deadline=BACK_ONLINE_WITHIN,
    )
    back_after = time.monotonic() - restarted_at
    # A full timeout window (3 × 5 s) and more after the link returned: still nobody offline.
    time.sleep(3 * HEARTBEAT_SECONDS + 3)
    assert set(daemon.statuses().values()) == {"online"}
    offline = daemon.events("terminal_offline")
    alerts = daemon.events("classroom_outage")
    blind = daemon.events("collector_blind")
    sighted = daemon.events("collector_sighted")
    wills = (
        daemon.metric("edumon_terminal_messages_ignored_total", '{reason="broker_will"}')
        - wills_before
    )
    assert daemon.metric("edumon_mqtt_blind") == 0
    print(
        f"\nbroker outage: {total} terminals, broker down {OUTAGE_SECONDS:.0f} s, "
        f"broker Wills seen and set aside {wills:.0f}, offline events {len(offline)}, "
        f"classroom outages {len(alerts)}, blind events {len(blind)}/{len(sighted)}, "
        f"all online {back_after:.1f} s after the broker restarted"
    )
    assert offline == []
    assert alerts == []
    assert len(blind) == 1
    assert len(sighted) == 1
    assert blind[0]["device_kind"] == "collector"


def publish(port: int, topic: str, payload: bytes) -> None:
    """Publish one QoS 1 message through the broker and wait for its acknowledgement."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"forger-{uuid.uuid4().hex[:6]}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.timeout(240)
def test_a_forged_future_session_does_not_silence_a_heartbeating_terminal(
    tmp_path: Path,
) -> None:
    """Through the shared Mosquitto: a forged heartbeat (bd_seq 1000000, year 2242), then a
    plausible forged one, while the real agent heartbeats every second (timeout 3 s)."""
    district = f"forge-{uuid.uuid4().hex[:8]}"
    daemon = Daemon(tmp_path, district, 1883)
    agent = start_agent(tmp_path, district, "S1", "S1-1", 1883, 1)
    try:
        proc = daemon.proc

        def s1_1() -> str:
            return daemon.statuses()["S1-1"]

        wait_until("S1-1 online", lambda: s1_1() == "online", proc, deadline=60)
        topic = terminal_topic(district, "S1", "S1-1", "heartbeat")

        def forged(bd_seq: int, ts: float) -> bytes:
            return encode_heartbeat(
                Heartbeat(
                    district=district,
                    school="S1",
                    terminal="S1-1",
                    boot_id="f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0",
                    seq=1,
                    birth_seq=bd_seq,
                    observed_at=ts,
                    uptime_seconds=1.0,
                    agent_version="0.1.0",
                    nic=None,
                    link_speed_mbps=None,
                    duplex="unknown",
                    ip=None,
                    mac=None,
                    cpu_percent=None,
                    memory_used_bytes=None,
                    memory_total_bytes=None,
                    disk_used_bytes=None,
                    disk_total_bytes=None,
                )
            )

        year_2242 = 8_585_000_000.0
        publish(1883, topic, forged(1_000_000, year_2242))
        wait_until(
            "the forged heartbeat counted as clock_skew",
            lambda: (
                daemon.metric("edumon_terminal_messages_ignored_total", '{reason="clock_skew"}')
                >= 1
            ),
            proc,
        )
        # One that is plausible in every bound slips through; the real heartbeats win back.
        publish(1883, topic, forged(1_000_000, time.time() + 60))
        end = time.monotonic() + 12  # four timeouts of the real terminal
        while time.monotonic() < end:
            assert s1_1() == "online"
            time.sleep(0.5)
        assert daemon.events("terminal_offline") == []
        terminal = next(
            t for t in daemon.json("/api/v1/terminals")["terminals"] if t["terminal"] == "S1-1"
        )
        assert terminal["status"] == "online"
    finally:
        agent.stop()
        daemon.stop()
