"""The API against its own OpenAPI document: schemathesis, every check, on a real server.

A real uvicorn server on a free port serves the populated test district (switches polled,
terminals heard from, events stored) from SQLite and from PostgreSQL; schemathesis (its CLI, in
its own process) reads /openapi.json and sends what the schema allows and what it does not.
Any 5xx, any response the schema does not describe, or any request wrongly accepted or rejected
fails the test. The seed is fixed, so a failure reproduces.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from edumon.exporters.api import create_app
from edumon.runtime import Runtime
from tests.fixtures.ports import free_tcp_port
from tests.fixtures.runtime import build_runtime

ROOT = Path(__file__).resolve().parents[2]
START_DEADLINE_SECONDS = 10.0
RUN_DEADLINE_SECONDS = 120.0
SEED = "20261130"
MAX_EXAMPLES = "8"


async def serve(runtime: Runtime) -> AsyncIterator[str]:
    """The API of ``runtime`` on a free 127.0.0.1 port; yields its base URL."""
    port = free_tcp_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve(), name="api-under-test")
    try:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while not server.started:  # uvicorn has no event for it
            assert not task.done(), "the API server stopped while starting"
            assert time.monotonic() < deadline, "the API server did not start"
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, START_DEADLINE_SECONDS)


@pytest.fixture
async def api_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    runtime = await build_runtime(tmp_path / "unused.db", database_url=database_url)
    try:
        async for url in serve(runtime):
            yield url
    finally:
        await runtime.store.aclose()


async def schemathesis(url: str, report: Path, *extra: str) -> tuple[int, str]:
    """Run the schemathesis CLI against ``url``; its exit code and output."""
    st = Path(sys.executable).with_name("st")
    proc = await asyncio.create_subprocess_exec(
        str(st),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        SEED,
        "--workers",
        "2",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(report),
        # The Alertmanager receiver answers 503 by design where no [notify] channel is
        # configured, as in this district (tests/notify covers the receiver).
        "--exclude-path",
        "/api/v1/alertmanager/webhook",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.exporters.schemathesis_hooks",
            "PYTHONPATH": str(ROOT),
        },
        cwd=report.parent,  # schemathesis keeps its own files in the working directory
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_DEADLINE_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


# About 40 s on SQLite with every operation on an idle machine (the coverage phase's boundary
# values are most of it), less on PostgreSQL; the CLI itself is stopped at RUN_DEADLINE_SECONDS.
@pytest.mark.timeout(RUN_DEADLINE_SECONDS + 30)
async def test_the_api_meets_its_schema(database_url: str, api_url: str, tmp_path: Path) -> None:
    # The server is real and answers (not schemathesis failing to connect).
    async with httpx.AsyncClient(base_url=api_url) as client:
        assert (await client.get("/api/v1/summary")).status_code == 200
    # Only /events reads the database for a request; every other operation answers from the
    # state in memory, the same whatever the store: on PostgreSQL /events alone is run again.
    extra = ("--include-path", "/api/v1/events") if database_url.startswith("postgres") else ()
    code, out = await schemathesis(api_url, tmp_path / "report", *extra)
    print(out[-3000:])  # shown with -s or on failure: the phases and their times
    assert code == 0, out[-20000:]
    assert "No issues found" in out or "passed" in out, out[-5000:]


async def test_nul_is_422_on_every_database(api_url: str) -> None:
    """``?school=%00`` answered 503 "database unavailable" on PostgreSQL (which rejects NUL in
    text): the request is refused before any query, on SQLite and PostgreSQL alike."""
    async with httpx.AsyncClient(base_url=api_url) as client:
        for url in (
            "/api/v1/events?school=%00",
            "/api/v1/events?device_kind=terminal&device=A-101%00",
            "/api/v1/compliance?school=A%00",
            "/api/v1/schools/%00",
        ):
            response = await client.get(url)
            assert response.status_code == 422, (url, response.text)
            assert "NUL" in response.json()["detail"][0]["msg"]
        # The database is still there for the next request.
        assert (await client.get("/api/v1/events?school=A")).status_code == 200
