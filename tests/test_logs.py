"""Log output: the JSON formatter, and `edumon run --log-format json` as Loki/ELK would read it."""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edumon.logs import JsonFormatter, _StderrHandler, configure_logging, formatter_for
from tests.test_daemon import free_tcp_port, free_udp_port

# 2025-03-03 08:20:00.250 UTC
CREATED = 1740990000.25
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def record(
    msg: str = "poll of switch %s failed",
    args: tuple[object, ...] = ("cg-acc1",),
    level: int = logging.WARNING,
    extra: dict[str, Any] | None = None,
    exc: bool = False,
) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            exc_info = sys.exc_info()
    rec = logging.getLogger("edumon.sources.snmp.poller").makeRecord(
        "edumon.sources.snmp.poller", level, __file__, 1, msg, args, exc_info, extra=extra
    )
    rec.created = CREATED
    return rec


@pytest.mark.parametrize(
    ("rec", "expected"),
    [
        pytest.param(
            record(),
            {
                "ts": "2025-03-03T08:20:00.250Z",
                "level": "warning",
                "logger": "edumon.sources.snmp.poller",
                "msg": "poll of switch cg-acc1 failed",
            },
            id="core-fields-only",
        ),
        pytest.param(
            record(extra={"device": "cg-acc1", "reason": "超时：检查团体名和 ACL"}),
            {
                "ts": "2025-03-03T08:20:00.250Z",
                "level": "warning",
                "logger": "edumon.sources.snmp.poller",
                "msg": "poll of switch cg-acc1 failed",
                "device": "cg-acc1",
                "reason": "超时：检查团体名和 ACL",
            },
            id="extra-fields",
        ),
        pytest.param(
            record("event %s", ("link_down",), logging.INFO, {"ts": 5, "level": "x"}),
            {
                "ts": "2025-03-03T08:20:00.250Z",
                "level": "info",
                "logger": "edumon.sources.snmp.poller",
                "msg": "event link_down",
                "ts_": 5,
                "level_": "x",
            },
            id="extra-named-like-a-core-field-is-kept-apart",
        ),
        pytest.param(
            record("from %s", (Path("/etc/edumon.toml"),), extra={"file": Path("/a b")}),
            {
                "ts": "2025-03-03T08:20:00.250Z",
                "level": "warning",
                "logger": "edumon.sources.snmp.poller",
                "msg": "from /etc/edumon.toml",
                "file": "/a b",
            },
            id="non-json-extra-as-text",
        ),
        pytest.param(
            record("Started server", (), logging.INFO, {"color_message": "\x1b[1mStarted"}),
            {
                "ts": "2025-03-03T08:20:00.250Z",
                "level": "info",
                "logger": "edumon.sources.snmp.poller",
                "msg": "Started server",
            },
            id="uvicorn-colour-copy-dropped",
        ),
        pytest.param(
            record('forged\n{"level": "error"}', (), logging.ERROR),
            {
                "ts": "2025-03-03T08:20:00.250Z",
                "level": "error",
                "logger": "edumon.sources.snmp.poller",
                "msg": 'forged\n{"level": "error"}',
            },
            id="newline-stays-inside-the-string",
        ),
    ],
)
def test_json_formatter(rec: logging.LogRecord, expected: dict[str, Any]) -> None:
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    assert json.loads(line) == expected
    assert "\\u" not in line  # Chinese is written as UTF-8, readable in a log viewer


def test_json_formatter_puts_the_traceback_in_exc() -> None:
    data = json.loads(JsonFormatter().format(record(exc=True)))
    assert data["msg"] == "poll of switch cg-acc1 failed"
    assert data["exc"].startswith("Traceback (most recent call last):")
    assert data["exc"].endswith("ZeroDivisionError: division by zero")


def test_json_timestamp_is_rfc3339_utc() -> None:
    rec = logging.makeLogRecord({"msg": "x"})
    ts = json.loads(JsonFormatter().format(rec))["ts"]
    assert RFC3339_UTC.fullmatch(ts), ts


def test_text_format_is_unchanged() -> None:
    line = formatter_for("text").format(record(extra={"device": "cg-acc1"}))
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING edumon\.sources\.snmp\.poller: "
        r"poll of switch cg-acc1 failed",
        line,
    ), line


def test_configure_logging_replaces_its_own_handler_and_leaves_others_alone() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        root.handlers = []
        out = io.StringIO()
        configure_logging("info", stream=out)
        configure_logging("warning", "json", stream=out)
        assert [type(h) for h in root.handlers] == [_StderrHandler]
        logging.getLogger("edumon.t").info("not shown")
        logging.getLogger("edumon.t").warning("shown", extra={"school": "cgxx"})
        lines = out.getvalue().splitlines()
        assert [json.loads(line)["school"] for line in lines] == ["cgxx"]

        foreign = logging.NullHandler()
        root.handlers = [foreign]
        configure_logging("debug", "json", stream=out)
        assert root.handlers == [foreign]
    finally:
        root.handlers, root.level = saved_handlers, saved_level


# -- the daemon ------------------------------------------------------------------------------


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "edumon.toml"
    config.write_text(
        f"""
[district]
code = "lg"
name = "日志测试县"

[storage]
url = "sqlite:///{tmp_path / "edumon.db"}"

[api]
listen = "127.0.0.1:{free_tcp_port()}"

[polling]
interval_seconds = 1

[mqtt]
listen = "127.0.0.1:{free_tcp_port()}"

[[switches]]
id = "dead"
host = "127.0.0.1"
port = {free_udp_port()}
timeout_seconds = 0.2
retries = 0
snmp = {{ version = "2c", community = "log-test-community" }}

[[schools]]
code = "S1"
name = "第一小学"
kind = "primary"
uplink = {{ switch = "dead", port = "Gi0/1" }}
""",
        encoding="utf-8",
    )
    return config


@pytest.mark.parametrize("how", ["flag", "env"])
def test_run_logs_json_lines_with_device_and_reason(tmp_path: Path, how: str) -> None:
    argv = [sys.executable, "-m", "edumon", "run", "-c", str(_config(tmp_path))]
    env = dict(os.environ)
    env.pop("EDUMON_LOG_FORMAT", None)
    if how == "flag":
        argv += ["--log-format", "json"]
    else:
        env["EDUMON_LOG_FORMAT"] = "json"
    # Only stderr is read: the URLs printed on stdout are not log records.
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read_stderr, name="edumon-stderr", daemon=True)
    reader.start()
    seen: list[str] = []
    failed: dict[str, Any] | None = None
    try:
        deadline = time.monotonic() + 30
        while failed is None:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no poll-failed record; stderr: {''.join(seen)[-2000:]}"
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line is not None, f"edumon exited; stderr: {''.join(seen)[-2000:]}"
            seen.append(line)
            data = json.loads(line)  # every line is one JSON object
            assert {"ts", "level", "logger", "msg"} <= data.keys(), line
            if data["logger"] == "edumon.sources.snmp.poller" and "failed" in data["msg"]:
                failed = data
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == 0, "".join(seen)[-2000:]
    assert failed["level"] == "warning"
    assert failed["device"] == "dead"
    assert failed["reason"]
    assert failed["reason"] in failed["msg"]
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    for line in seen:
        assert RFC3339_UTC.fullmatch(json.loads(line)["ts"]), line
        assert "log-test-community" not in line
