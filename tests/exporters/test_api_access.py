"""What a request may see: every list filtered to its schools, everything else a plain 404.

The token check that sets ``request.state.principal`` is not part of these routes; here a
test-only middleware sets a school's principal, as that check will, and the routes must do
the rest through ``access.visible_schools``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from edumon.exporters.api import create_app
from edumon.runtime import Runtime

API = "/api/v1"


@dataclass(frozen=True)
class SchoolPrincipal:
    schools: frozenset[str]


class AsSchool:
    """Test-only: every request is made by school A's principal."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})["principal"] = SchoolPrincipal(frozenset({"A"}))
        await self.app(scope, receive, send)


@pytest.fixture
async def school_a(populated_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(populated_runtime)
    app.add_middleware(AsSchool)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://edumon.test"
    ) as c:
        yield c


async def get(client: httpx.AsyncClient, url: str, status: int = 200) -> Any:
    response = await client.get(url)
    assert response.status_code == status, (url, response.text)
    return response.json()


async def test_lists_show_only_the_schools_it_may_see(school_a: httpx.AsyncClient) -> None:
    schools = await get(school_a, f"{API}/schools")
    assert [s["code"] for s in schools["schools"]] == ["A"]
    assert schools["page"]["total"] == 1
    # Its own switch, and the district switch its uplink hangs off (its page shows it).
    switches = await get(school_a, f"{API}/switches")
    assert [s["id"] for s in switches["switches"]] == ["core", "sw-a"]
    events = await get(school_a, f"{API}/events")
    assert {e["school"] for e in events["events"]} == {"A"}
    assert events["page"]["total"] == 1
    compliance = await get(school_a, f"{API}/compliance")
    assert {r["school"] for r in compliance["results"]} == {"A"}
    terminals = await get(school_a, f"{API}/terminals")
    assert {t["school"] for t in terminals["terminals"]} == {"A"}
    assert terminals["counts"]["total"] == 3
    unknown = await get(school_a, f"{API}/terminals/unknown")
    assert {t["school"] for t in unknown["terminals"]} == {"A"}
    offline = await get(school_a, f"{API}/classrooms/offline")
    assert {c["school"] for c in offline["off_schedule"] + offline["in_lesson"]} <= {"A"}
    summary = await get(school_a, f"{API}/summary")
    assert summary["schools"]["total"] == 1
    assert summary["terminals"]["total"] == 3
    assert summary["switches"]["total"] == 2


@pytest.mark.parametrize(
    ("hidden", "unknown"),
    [
        (f"{API}/schools/B", f"{API}/schools/NOPE"),
        (f"{API}/switches/sw-b/interfaces", f"{API}/switches/NOPE/interfaces"),
        (f"{API}/events?school=B", f"{API}/events?school=NOPE"),
        (f"{API}/events?device_kind=switch&device=sw-b", f"{API}/events?device=NOPE"),
        (
            f"{API}/events?device_kind=terminal&device=B-201",
            f"{API}/events?device_kind=terminal&device=NOPE",
        ),
        (f"{API}/compliance?school=A&school=B", f"{API}/compliance?school=A&school=NOPE"),
        (f"{API}/terminals?school=B", f"{API}/terminals?school=NOPE"),
        (f"{API}/summary?school=B", f"{API}/summary?school=NOPE"),
        (f"{API}/outages?school=B", f"{API}/outages?school=NOPE"),
    ],
)
async def test_another_schools_data_is_404_like_an_unknown_code(
    school_a: httpx.AsyncClient, hidden: str, unknown: str
) -> None:
    hidden_body = await get(school_a, hidden, 404)
    unknown_body = await get(school_a, unknown, 404)
    # The same answer but for the code: nothing tells that B exists.
    code = hidden.rsplit("=", 1)[-1] if "=" in hidden else hidden.split("/")[-1]
    if code == "interfaces":
        code = "sw-b"
    assert hidden_body["detail"].replace(code, "X") == unknown_body["detail"].replace("NOPE", "X")


async def test_a_district_switch_shows_a_school_only_its_own_ports(
    school_a: httpx.AsyncClient,
) -> None:
    # The core carries A's uplink (ge-0/0/1) and B's (ge-0/0/2): A sees its own port only.
    body = await get(school_a, f"{API}/switches/core/interfaces")
    assert [(p["name"], p["school"]) for p in body["interfaces"]] == [("ge-0/0/1", "A")]
