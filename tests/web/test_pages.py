"""The status page through its ASGI app, against the runtime fed by real polls and SQLite."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from edumon.exporters.api import create_app
from edumon.runtime import Runtime
from tests.fixtures.runtime import ALL_SECRETS, T0

Scope = MutableMapping[str, Any]
Asgi = Callable[[Scope, Any, Any], Awaitable[None]]

NOW = T0 + 60.0
"""The pages' clock: a Sunday morning (no lesson), a minute after the fixture's polls; the
wall clock would make a weekday's lessons decide which classrooms are red."""


def as_principal(app: Asgi, schools: frozenset[str]) -> Asgi:
    """The app as a school role sees it: what the access middleware sets, set here."""

    async def with_principal(scope: Scope, receive: Any, send: Any) -> None:
        scope.setdefault("state", {})["principal"] = SimpleNamespace(schools=schools)
        await app(scope, receive, send)

    return with_principal


@pytest.fixture
async def client(populated_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(populated_runtime, clock=lambda: NOW)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://edumon.test"
    ) as c:
        yield c


@pytest.fixture
async def school_a(populated_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = as_principal(create_app(populated_runtime, clock=lambda: NOW), frozenset({"A"}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://edumon.test"
    ) as c:
        yield c


class Page(HTMLParser):
    """The elements of a page with their attributes, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(data.strip())

    def with_attr(self, name: str, value: str | None = None) -> list[dict[str, str | None]]:
        return [a for _, a in self.elements if name in a and (value is None or a[name] == value)]

    @property
    def words(self) -> str:
        return " ".join(self.text)


async def page(client: httpx.AsyncClient, url: str, status: int = 200) -> Page:
    response = await client.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    return Page(response.text)


async def test_district_grid_colours_each_school_by_its_worst_state(
    client: httpx.AsyncClient,
) -> None:
    p = await page(client, "/")
    tiles = {a["data-school"]: a["data-state"] for a in p.with_attr("data-school")}
    # A: A-102 at 100M; B: its uplink at 100M; C: never polled.
    assert tiles == {"A": "below-target", "B": "below-target", "C": "unknown"}
    assert "第一小学" in p.words
    assert "第二中学" in p.words
    counts = {
        a["data-state"]: a for a in p.with_attr("data-state") if "count" in (a["class"] or "")
    }
    assert set(counts) == {"cut-off", "offline-in-lesson", "below-target", "unknown", "ok"}
    assert re.search(r"2 未达标 below target", p.words), p.words
    assert re.search(r"1 未知 unknown", p.words), p.words
    assert "上联 100M / 目标 1000M" in p.words


async def test_school_page_shows_uplink_classrooms_switches_and_events(
    client: httpx.AsyncClient,
) -> None:
    p = await page(client, "/schools/A")
    rooms = {a["data-classroom"]: a["data-state"] for a in p.with_attr("data-classroom")}
    # A-101 online at 1000M, A-102 at 100M, A-103 never heard from (no schedule: no lesson).
    assert rooms == {"A-101": "online", "A-102": "below-target", "A-103": "off-schedule"}
    assert "速率 100M，目标 1000M" in p.words
    assert "从未上报" in p.words
    assert {a["data-switch"] for a in p.with_attr("data-switch")} == {"core", "sw-a"}
    assert "交换机 sw-a 已重启" in p.words  # the stored reboot event, in Chinese
    # Each recent event reads word for word as the API's Chinese message.
    api = (await client.get("/api/v1/events", params={"school": "A", "limit": 20})).json()
    assert api["events"]
    for event in api["events"]:
        assert event["message"] in p.words, event
    assert "1.0 Mbit/s" in p.words  # the uplink's inbound traffic from its counters
    assert "2024-09-01 08:01:00" in p.words  # the district's zone (T0 + 60 s, +08:00)

    b = await page(client, "/schools/B")
    (verdict,) = b.with_attr("data-verdict")
    assert verdict["data-verdict"] == "below-target"
    assert "100M / 1000M 未达标" in b.words
    rooms = {a["data-classroom"]: a["data-state"] for a in b.with_attr("data-classroom")}
    assert rooms == {"B-201": "unknown"}  # behind the unreachable sw-b: unknown, not offline
    assert "交换机 sw-b 无法访问" in b.words


async def test_switch_page_lists_its_ports_with_what_they_serve(
    client: httpx.AsyncClient,
) -> None:
    p = await page(client, "/switches/core")
    ports = {a["data-port"]: a["data-state"] for a in p.with_attr("data-port")}
    assert ports == {"ge-0/0/1": "ok", "ge-0/0/2": "below-target"}
    assert "上联 · 第二中学（B）" in p.words
    sw_b = await page(client, "/switches/sw-b")
    assert {a["data-port"]: a["data-state"] for a in sw_b.with_attr("data-port")} == {
        "Gi0/1": "unknown"
    }
    assert "初一(1)班（B-201）" in sw_b.words


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("/schools/NOPE", "没有编号为 NOPE 的学校"),
        ("/switches/nope", "没有编号为 nope 的交换机"),
    ],
)
async def test_unknown_school_or_switch_is_a_chinese_404(
    client: httpx.AsyncClient, url: str, words: str
) -> None:
    p = await page(client, url, status=404)
    assert words in p.words
    assert "404 · 未找到" in p.words


async def test_a_school_role_sees_only_its_school(school_a: httpx.AsyncClient) -> None:
    p = await page(school_a, "/")
    assert [a["data-school"] for a in p.with_attr("data-school")] == ["A"]
    assert "第二中学" not in p.words
    await page(school_a, "/schools/A")
    # Another school's pages and switches answer as unknown ones would.
    other = await page(school_a, "/schools/B", status=404)
    assert "没有编号为 B 的学校" in other.words
    await page(school_a, "/switches/sw-b", status=404)
    await page(school_a, "/switches/core", status=404)  # a district switch: the district's
    await page(school_a, "/switches/sw-a")
    school = await page(school_a, "/schools/A")
    # core is listed (it holds the uplink) but not linked: its page is the district's.
    links = {a["href"] for a in school.with_attr("href")}
    assert "/switches/sw-a" in links
    assert "/switches/core" not in links


async def test_every_asset_is_served_by_edumon(client: httpx.AsyncClient) -> None:
    for url in ("/", "/schools/A", "/switches/core", "/schools/NOPE"):
        response = await client.get(url)
        p = Page(response.text)
        refs = [a.get("href") or a.get("src") for a in p.with_attr("href") + p.with_attr("src")]
        for ref in refs:
            assert ref is not None
            assert ref.startswith("/"), f"{url}: {ref} is not served by edumon"
            assert not ref.startswith("//"), f"{url}: {ref} is another host's"
        assets = [r for r in refs if r is not None and r.startswith("/status-assets/")]
        assert len(assets) == 3, assets  # style, script, icon
        for asset in assets:
            got = await client.get(asset)
            assert got.status_code == 200, asset
        assert "@import" not in response.text
    css = (await client.get("/status-assets/style.css")).text
    assert "url(" not in css  # no fonts or images from elsewhere


async def test_pages_render_no_secret_and_stay_out_of_the_api_schema(
    client: httpx.AsyncClient,
) -> None:
    for url in ("/", "/schools/A", "/schools/B", "/switches/core", "/switches/sw-b"):
        body = (await client.get(url)).text
        for secret in ALL_SECRETS:
            assert secret not in body, url
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not {"/", "/schools/{code}", "/switches/{switch_id}"} & set(paths)
    assert not [p for p in paths if p.startswith("/status-assets")]
