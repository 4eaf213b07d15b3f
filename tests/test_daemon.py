"""`edumon run -c FILE` end to end: a real snmpd, an unreachable switch, the API and /metrics."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.snmpd import Snmpd

AUTH = "auth-Pass-sha256"
PRIV = "priv-Pass-aes256"


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_until(
    what: str, probe: Callable[[], Any], proc: subprocess.Popen[Any], deadline: float = 30.0
) -> Any:
    """Poll ``probe`` until it returns something truthy, failing if the daemon dies first."""
    end = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < end:
        assert proc.poll() is None, f"edumon exited ({proc.returncode}) while waiting for {what}"
        try:
            last = probe()
        except (OSError, ValueError, KeyError):
            last = None
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture
def daemon(snmpd: Snmpd, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    api_port = free_tcp_port()
    user = snmpd.users["sha256-aes256"]
    config = tmp_path / "edumon.toml"
    config.write_text(
        f"""
[district]
code = "it"
name = "集成测试县"

[storage]
url = "sqlite:///{tmp_path / "edumon.db"}"
flush_seconds = 0.2

[api]
listen = "127.0.0.1:{api_port}"

[polling]
interval_seconds = 1

[mqtt]
listen = "127.0.0.1:0"

[[switches]]
id = "snmpd"
host = "127.0.0.1"
port = {snmpd.port}
timeout_seconds = 1
[switches.snmp]
version = "3"
user = "{user.name}"
auth_protocol = "SHA-256"
auth_password_env = "T_AUTH"
priv_protocol = "AES-256"
priv_password_env = "T_PRIV"

[[switches]]
id = "dead"
host = "127.0.0.1"
port = {free_udp_port()}
timeout_seconds = 0.3
retries = 1
snmp = {{ version = "2c", community = "dead-switch-community" }}

[[schools]]
code = "S1"
name = "第一小学"
kind = "primary"
uplink = {{ switch = "snmpd", port = "lo" }}

[[schools]]
code = "S2"
name = "第二小学"
kind = "primary"
uplink = {{ switch = "dead", port = "Gi0/1" }}
""",
        encoding="utf-8",
    )
    env = dict(os.environ, T_AUTH=AUTH, T_PRIV=PRIV)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edumon", "run", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        yield f"http://127.0.0.1:{api_port}", proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_run_reports_snmpd_interfaces_uptime_and_a_dead_switch(
    daemon: tuple[str, subprocess.Popen[str]],
) -> None:
    base, proc = daemon

    def interfaces() -> list[dict[str, Any]] | None:
        status, body = get(f"{base}/api/v1/switches/snmpd/interfaces")
        data = json.loads(body) if status == 200 else {}
        return data.get("interfaces") or None

    ifaces = wait_until("snmpd's interfaces", interfaces, proc)
    lo = next(i for i in ifaces if i["name"] == "lo")
    assert lo["status"] == "up"
    assert (lo["role"], lo["school"]) == ("uplink", "S1")

    def switches() -> dict[str, dict[str, Any]] | None:
        status, body = get(f"{base}/api/v1/switches")
        rows = {s["id"]: s for s in json.loads(body)["switches"]} if status == 200 else {}
        done = rows and rows["snmpd"]["uptime_seconds"] and rows["dead"]["reachable"] is False
        return rows if done else None

    rows = wait_until("uptime and the dead switch", switches, proc)
    assert rows["snmpd"]["uptime_seconds"] > 0
    assert rows["snmpd"]["reachable"] is True
    assert rows["dead"]["status"] == "down"
    assert "dead-switch-community" not in json.dumps(rows)

    # /metrics serves what the daemon rendered in the background up to 2 s ago.
    def scraped_dead_switch() -> str | None:
        status, text = get(f"{base}/metrics")
        assert status == 200
        return text if 'edumon_device_up{device="dead"' in text else None

    metrics = wait_until("the dead switch on /metrics", scraped_dead_switch, proc)
    assert 'edumon_device_up{device="snmpd"' in metrics
    assert "edumon_interface_up{" in metrics
    assert 'interface="lo"' in metrics
    # The daemon times its garbage collections (young ones happen within seconds).
    assert 'edumon_gc_pause_seconds_count{generation="0"}' in metrics
    dead_up = [
        line
        for line in metrics.splitlines()
        if line.startswith("edumon_device_up{") and 'device="dead"' in line
    ]
    assert dead_up
    assert dead_up[0].endswith(" 0.0")

    def unreachable_event() -> list[dict[str, Any]] | None:
        status, body = get(f"{base}/api/v1/events?kind=device_unreachable&device=dead")
        return (json.loads(body).get("events") or None) if status == 200 else None

    events = wait_until("the dead switch's event (stored)", unreachable_event, proc)
    assert events[0]["school"] == "S2"

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err[-2000:]
    for secret in (AUTH, PRIV, "dead-switch-community"):
        assert secret not in out + err
