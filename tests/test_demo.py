"""`edumon demo`: no config, no broker, no database server; the API shows the story at once."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_daemon import free_tcp_port, get, wait_until


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edumon",
            "demo",
            "--listen",
            f"127.0.0.1:{free_tcp_port()}",
            "--db",
            str(tmp_path / "demo.db"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        base = None
        while base is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "edumon demo exited before printing its URLs"
            match = re.search(r"(http://127\.0\.0\.1:\d+)/metrics", line)
            base = match.group(1) if match else None
        assert base is not None, "edumon demo printed no metrics URL"
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_demo_shows_non_compliant_classrooms_and_a_reboot(
    demo: tuple[str, subprocess.Popen[str]],
) -> None:
    base, proc = demo

    def failing_classrooms() -> list[dict[str, Any]] | None:
        status, body = get(f"{base}/api/v1/compliance?verdict=fail")
        results = json.loads(body)["results"] if status == 200 else []
        rooms = [r for r in results if r["check"] == "classroom_speed"]
        return rooms or None

    rooms = wait_until("a non-compliant classroom", failing_classrooms, proc, deadline=30)
    assert all(r["speed_mbps"] < r["target_mbps"] for r in rooms)

    def reboot() -> list[dict[str, Any]] | None:
        status, body = get(f"{base}/api/v1/events?kind=device_reboot")
        return (json.loads(body)["events"] or None) if status == 200 else None

    events = wait_until("the reboot event", reboot, proc, deadline=60)
    rebooted = events[0]["switch"]
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

    story = wait_until("terminals online, offline in a lesson, off schedule", terminals_story, proc)
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
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err[-2000:]
