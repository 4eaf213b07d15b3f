"""`edumon demo`: no config, no broker, no database server; the API shows the story at once."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.ports import PORT_ATTEMPTS, PortTaken, free_tcp_port
from tests.test_daemon import get, wait_until

# Generous: a loaded machine (other test runs, a user's demo beside) starts slowly.
START_SECONDS = 60.0
STOP_SECONDS = 60.0


@dataclass
class Demo:
    """A running ``edumon demo`` and what it printed before serving."""

    base: str
    proc: subprocess.Popen[str]
    printed: list[str]


def start_demo(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Demo:
    """Start ``edumon demo`` on free ports (never 9310 or 1884: a user's demo may hold them)."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            return _start_demo_once(tmp_path, *args, env=env)
        except PortTaken:
            if attempt == PORT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _start_demo_once(tmp_path: Path, *args: str, env: dict[str, str] | None) -> Demo:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edumon",
            "demo",
            "--listen",
            f"127.0.0.1:{free_tcp_port()}",
            "--mqtt-listen",
            f"127.0.0.1:{free_tcp_port()}",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + START_SECONDS
    printed: list[str] = []
    base = None
    while base is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            _, err = proc.communicate(timeout=STOP_SECONDS)
            proc.stdout.close()
            if "address already in use" in err:
                raise PortTaken(f"edumon demo lost a port to another process: {err[-300:]}")
            raise AssertionError(f"edumon demo exited before printing its URLs: {err[-2000:]}")
        printed.append(line)
        match = re.search(r"(http://127\.0\.0\.1:\d+)/metrics", line)
        base = match.group(1) if match else None
    if base is None:
        proc.kill()
        proc.wait(timeout=STOP_SECONDS)
        raise AssertionError(f"edumon demo printed no metrics URL: {printed}")
    return Demo(base, proc, printed)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=STOP_SECONDS)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    started = start_demo(tmp_path, "--db", str(tmp_path / "demo.db"))
    try:
        yield started.base, started.proc
    finally:
        stop(started.proc)


@pytest.mark.timeout(300)
def test_demo_shows_non_compliant_classrooms_and_a_reboot(
    demo: tuple[str, subprocess.Popen[str]],
) -> None:
    base, proc = demo

    def failing_classrooms() -> list[dict[str, Any]] | None:
        status, body = get(f"{base}/api/v1/compliance?verdict=fail")
        results = json.loads(body)["results"] if status == 200 else []
        rooms = [r for r in results if r["check"] == "classroom_speed"]
        return rooms or None

    rooms = wait_until("a non-compliant classroom", failing_classrooms, proc, deadline=60)
    assert all(r["speed_mbps"] < r["target_mbps"] for r in rooms)

    def reboot() -> list[dict[str, Any]] | None:
        status, body = get(f"{base}/api/v1/events?kind=device_reboot")
        return (json.loads(body)["events"] or None) if status == 200 else None

    events = wait_until("the reboot event", reboot, proc, deadline=90)
    assert events[0]["device_kind"] == "switch"
    rebooted = events[0]["device"]
    assert "已重启" in events[0]["message"]
    status, body = get(f"{base}/api/v1/switches")
    switches = {s["id"]: s for s in json.loads(body)["switches"]}
    assert switches[rebooted]["reboots"] >= 1

    def terminals_story() -> dict[str, Any] | None:
        status, body = get(f"{base}/api/v1/classrooms/offline")
        offline = json.loads(body) if status == 200 else {}
        status, body = get(f"{base}/api/v1/terminals")
        counts = json.loads(body)["counts"] if status == 200 else {}
        done = offline.get("in_lesson") and offline.get("off_schedule") and counts.get("online")
        return {"offline": offline, "counts": counts} if done else None

    story = wait_until(
        "terminals online, offline in a lesson, off schedule", terminals_story, proc, deadline=90
    )
    in_lesson = {c["classroom"] for c in story["offline"]["in_lesson"]}
    off_schedule = {c["school"] for c in story["offline"]["off_schedule"]}
    assert in_lesson
    assert off_schedule
    assert not {c.split("-")[0] for c in in_lesson} & off_schedule  # no lessons there: no alert

    status, metrics = get(f"{base}/metrics")
    assert status == 200
    expected = {
        line.rsplit(" ", 1)[1]
        for line in metrics.splitlines()
        if line.startswith("edumon_classroom_expected_online{")
    }
    assert expected == {"0.0", "1.0"}
    assert "edumon_terminal_up{" in metrics
    assert "edumon_interface_speed_bytes{" in metrics
    assert "edumon_check_status{" in metrics

    status, body = get(f"{base}/api/v1/schools")
    assert status == 200
    assert len(json.loads(body)["schools"]) >= 4

    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=STOP_SECONDS)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err, err[-4000:]


@pytest.mark.timeout(180)
def test_ctrl_c_stops_the_demo_quietly_and_removes_its_temporary_database(
    tmp_path: Path,
) -> None:
    # No --db: the demo makes a temporary database, here under the test's own TMPDIR.
    temp = tmp_path / "tmp"
    temp.mkdir()
    started = start_demo(tmp_path, env=dict(os.environ, TMPDIR=str(temp)))
    try:
        (said,) = [line for line in started.printed if "database" in line]
        match = re.search(r"database (\S+) \(temporary", said)
        assert match is not None, said
        db = Path(match.group(1))
        assert db.is_relative_to(temp)
        assert db.exists()
        status, _ = get(f"{started.base}/api/v1/summary")
        assert status == 200
        started.proc.send_signal(signal.SIGINT)
        out, err = started.proc.communicate(timeout=STOP_SECONDS)
    finally:
        stop(started.proc)
    assert started.proc.returncode == 0, err[-2000:]
    assert "Traceback" not in out + err, err[-4000:]
    assert list(temp.iterdir()) == []  # the database and its directory are gone


def test_a_port_taken_before_the_demo_binds_it_is_retried_on_new_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = int(held.getsockname()[1])
        picks = iter([taken, taken])  # the first start gets a port someone already holds
        real = free_tcp_port

        def pick() -> int:
            return next(picks, None) or real()

        monkeypatch.setattr(sys.modules[__name__], "free_tcp_port", pick)
        started = start_demo(tmp_path)
        try:
            assert started.base != f"http://127.0.0.1:{taken}"
            assert next(picks, None) is None  # both taken picks were used by the first start
        finally:
            stop(started.proc)
            started.proc.communicate(timeout=STOP_SECONDS)  # and its pipes closed
