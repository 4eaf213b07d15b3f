"""GET /api/v1/data-quality and edumon_data_quality_warnings over the populated test district.

Two terminals report under the other school's topic: A-101 (第一小学) as school B, B-201
(第二中学) as school A. Each is a ``terminal_wrong_school`` warning of its inventory school.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from prometheus_client import generate_latest

from edumon.exporters.api import create_app
from edumon.exporters.metrics import create_registry
from edumon.runtime import Runtime
from tests.fixtures.runtime import T0, Agent

API = "/api/v1/data-quality"
NOW = T0 + 30


@pytest.fixture
def runtime(populated_runtime: Runtime) -> Runtime:
    assert populated_runtime.terminals is not None
    district = populated_runtime.config.district.code
    populated_runtime.terminals.apply(Agent(district, "B", "A-101").heartbeat(), T0 + 20)
    populated_runtime.terminals.apply(Agent(district, "A", "B-201").heartbeat(), T0 + 25)
    return populated_runtime


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edumon.test")


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(create_app(runtime, clock=lambda: NOW)) as c:
        yield c


async def get(client: httpx.AsyncClient, url: str, status: int = 200) -> Any:
    response = await client.get(url)
    assert response.status_code == status, response.text
    return response.json()


async def test_warnings_with_names_beside_codes(client: httpx.AsyncClient) -> None:
    body = await get(client, API)
    assert body["counts"] == {
        "total": 2,
        "terminal_online_port_down": 0,
        "speed_mismatch": 0,
        "two_classrooms_one_port": 0,
        "terminal_wrong_school": 2,
    }
    assert body["page"] == {"limit": 100, "offset": 0, "total": 2, "next_offset": None}
    assert body["generated_at"].endswith("+08:00")
    first, second = body["warnings"]
    assert (first["school"], first["school_name"]) == ("A", "第一小学")
    assert (first["classroom"], first["classroom_name"]) == ("A-101", "一年级(1)班")
    assert (first["other_school"], first["other_school_name"]) == ("B", "第二中学")
    assert first["kind_name"] == "终端从其他学校上报"
    assert first["since"].endswith("+08:00")
    assert "第一小学 一年级(1)班 (A-101)" in first["fix"]
    assert first["fix_en"]
    assert first["message_en"]
    assert first["message"]
    assert (second["school"], second["classroom"], second["other_school"]) == ("B", "B-201", "A")


async def test_filters_and_paging(client: httpx.AsyncClient) -> None:
    only_a = await get(client, f"{API}?school=A")
    assert [w["school"] for w in only_a["warnings"]] == ["A"]
    both = await get(client, f"{API}?school=A&school=B")
    assert both["counts"]["total"] == 2
    assert (await get(client, f"{API}?kind=speed_mismatch"))["counts"]["total"] == 0
    kinds = await get(client, f"{API}?kind=speed_mismatch&kind=terminal_wrong_school")
    assert kinds["counts"]["total"] == 2
    page = await get(client, f"{API}?limit=1&offset=1")
    assert page["page"] == {"limit": 1, "offset": 1, "total": 2, "next_offset": None}
    assert [w["school"] for w in page["warnings"]] == ["B"]
    assert (await get(client, f"{API}?limit=1"))["page"]["next_offset"] == 1


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("school=nowhere", 404),
        ("school=A&school=nowhere", 404),
        ("kind=bogus", 422),
        ("limit=0", 422),
        ("offset=-1", 422),
        ("school=%00", 422),
        ("school=A%00", 422),
    ],
)
async def test_bad_input_is_refused_with_a_reason(
    client: httpx.AsyncClient, query: str, status: int
) -> None:
    body = await get(client, f"{API}?{query}", status)
    assert body["detail"]
    if status == 404:
        assert " / " in body["detail"]


async def test_a_school_principal_sees_only_its_school(runtime: Runtime) -> None:
    app = create_app(runtime, clock=lambda: NOW)

    @app.middleware("http")
    async def school_a(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.principal = SimpleNamespace(schools=frozenset({"A"}))
        return await call_next(request)

    async with client_of(app) as client:
        body = await get(client, API)
        assert [w["school"] for w in body["warnings"]] == ["A"]
        assert body["page"]["total"] == 1
        other = await get(client, f"{API}?school=B", 404)
        unknown = await get(client, f"{API}?school=nowhere", 404)
        # Another school answers exactly as an unknown one would.
        assert other["detail"].replace("'B'", "X") == unknown["detail"].replace("'nowhere'", "X")


def test_metrics_count_warnings_by_school_and_kind(runtime: Runtime) -> None:
    text = generate_latest(create_registry(runtime, clock=lambda: NOW)).decode()
    lines = sorted(line for line in text.splitlines() if line.startswith("edumon_data_quality"))
    assert lines == [
        'edumon_data_quality_warnings{kind="terminal_wrong_school",school="A"} 1.0',
        'edumon_data_quality_warnings{kind="terminal_wrong_school",school="B"} 1.0',
    ]


def test_the_route_is_documented(runtime: Runtime) -> None:
    schema = create_app(runtime).openapi()
    operation = schema["paths"][API]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["school"]["schema"]["anyOf"][0]["type"] == "array"
    assert "404" in operation["responses"]
