"""The access tests' district and server: the runtime district with tokens, served by uvicorn.

School ``A``'s token sees school A; the district's token sees all; the /metrics token reads
/metrics. Each token is a distinctive string so that a test can prove none is ever rendered
or logged. The app runs in a real uvicorn server on a free 127.0.0.1 port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from edumon.exporters.api import create_app
from edumon.runtime import Runtime
from edumon.tokens import hash_token
from tests.fixtures.runtime import DISTRICT_TOML, build_runtime

DISTRICT_TOKEN = "DistrictTok-0c5e8a1f-NEVER-RENDER-7d2b"
SCHOOL_A_TOKEN = "SchoolATok-91b3f7e2-NEVER-RENDER-4a6c"
METRICS_TOKEN = "MetricsTok-5d8e2c07-NEVER-RENDER-b913"
TOKENS = (DISTRICT_TOKEN, SCHOOL_A_TOKEN, METRICS_TOKEN)

TOKENS_TOML = f"""
[[api.tokens]]
name = "noc"
role = "district"
token_hash = "{hash_token(DISTRICT_TOKEN)}"

[[api.tokens]]
name = "school-a"
role = "school"
school = "A"
token_hash = "{hash_token(SCHOOL_A_TOKEN)}"
"""

METRICS_TOML = f"""
[metrics]
token_hash = "{hash_token(METRICS_TOKEN)}"
"""


async def tokened_runtime(db_path: Path, *, metrics_token: bool = True) -> Runtime:
    """The fixture district (schools A, B, C) with the district's and school A's tokens."""
    toml = DISTRICT_TOML + TOKENS_TOML + (METRICS_TOML if metrics_token else "")
    return await build_runtime(db_path, toml)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` on a free 127.0.0.1 port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="api-under-test")
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn has no event for it
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.asynccontextmanager
async def served_runtime(runtime: Runtime) -> AsyncIterator[str]:
    """The daemon's app over ``runtime``, served; yields the base URL."""
    async with serve(create_app(runtime)) as base:
        yield base
