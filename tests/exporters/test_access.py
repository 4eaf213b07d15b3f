"""Tokens, the status-page login and /metrics' token, against a real uvicorn server."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from edumon.exporters.api.access import SESSION_COOKIE
from edumon.runtime import Runtime
from tests.exporters.access_server import (
    DISTRICT_TOKEN,
    METRICS_TOKEN,
    SCHOOL_A_TOKEN,
    TOKENS,
    bearer,
    served_runtime,
    tokened_runtime,
)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    rt = await tokened_runtime(tmp_path / "edumon.db")
    try:
        yield rt
    finally:
        await rt.store.aclose()


@pytest.fixture
async def base(runtime: Runtime) -> AsyncIterator[str]:
    async with served_runtime(runtime) as url:
        yield url


@pytest.fixture
async def http(base: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base, follow_redirects=False) as client:
        yield client


def failures(metrics: str, reason: str) -> float:
    match = re.search(
        rf'^edumon_api_auth_failures_total\{{reason="{reason}"\}} (\S+)$', metrics, re.M
    )
    assert match is not None, f"no edumon_api_auth_failures_total{{reason={reason}}}"
    return float(match[1])


async def test_without_tokens_the_api_answers_as_before(populated_runtime: Runtime) -> None:
    async with (
        served_runtime(populated_runtime) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        assert (await client.get("/api/v1/summary")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
        schema = (await client.get("/openapi.json")).json()
        assert "securitySchemes" not in schema.get("components", {})
        login = await client.get("/login")
        assert login.status_code == 200
        assert "未配置访问令牌" in login.text


async def test_api_wants_a_valid_bearer_token(http: httpx.AsyncClient) -> None:
    missing = await http.get("/api/v1/summary")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert " / " in missing.json()["detail"]  # 中文 / English
    wrong = await http.get("/api/v1/summary", headers=bearer("not-a-token-" + "x" * 40))
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    basic = await http.get("/api/v1/summary", headers={"Authorization": "Basic bm9jOm5vYw=="})
    assert basic.status_code == 401
    assert (await http.get("/api/v1/summary", headers=bearer(DISTRICT_TOKEN))).status_code == 200
    lower = {"Authorization": f"bearer {SCHOOL_A_TOKEN}"}  # the scheme is case-insensitive
    assert (await http.get("/api/v1/outages", headers=lower)).status_code == 200
    # Probes stay open.
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/readyz")).status_code == 200


async def test_openapi_declares_the_bearer_token(http: httpx.AsyncClient) -> None:
    assert (await http.get("/openapi.json")).status_code == 401
    schema = (await http.get("/openapi.json", headers=bearer(SCHOOL_A_TOKEN))).json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            if path.startswith("/api/"):
                assert operation["security"] == [{"bearer": []}], path
                assert "401" in operation["responses"], path
            else:
                assert "security" not in operation, path


async def test_a_browser_is_sent_to_the_login_page_and_back(http: httpx.AsyncClient) -> None:
    html = {"Accept": "text/html,application/xhtml+xml"}
    page = await http.get("/docs", headers=html, params={"x": "1"})
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fdocs%3Fx%3D1"
    form = await http.get(page.headers["location"])
    assert form.status_code == 200
    assert 'name="token"' in form.text
    assert 'value="/docs?x=1"' in form.text
    assert form.headers["cache-control"] == "no-store"

    bad = await http.post("/login", data={"token": "wrong-" + "y" * 40, "next": "/docs"})
    assert bad.status_code == 401
    assert "令牌无效" in bad.text
    assert SESSION_COOKIE not in bad.headers.get("set-cookie", "")

    ok = await http.post("/login", data={"token": SCHOOL_A_TOKEN, "next": "/docs?x=1"})
    assert ok.status_code == 303
    assert ok.headers["location"] == "/docs?x=1"
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert "secure" not in attributes  # plain http; see the https test
    assert SCHOOL_A_TOKEN not in cookie
    # The login is the school's: its pages and API answer, the district's routes do not.
    assert (await http.get("/docs", headers=html)).status_code == 200
    assert (await http.get("/api/v1/outages")).status_code == 200
    webhook = await http.post("/api/v1/alertmanager/webhook", json={"alerts": []})
    assert webhook.status_code == 403
    assert "form" in (await http.get("/login")).text  # shows who is logged in, and the form
    assert "school-a" in (await http.get("/login")).text
    status_page = await http.get("/", headers=html)  # names who is logged in, offers 退出
    assert status_page.status_code == 200
    assert "school-a" in status_page.text
    assert 'href="/logout"' in status_page.text

    out = await http.get("/logout")
    assert out.status_code == 303
    assert out.headers["location"] == "/login"
    assert "max-age=0" in out.headers["set-cookie"].lower()
    session = cookie.split(";")[0].split("=", 1)[1]
    http.cookies.set(SESSION_COOKIE, session)  # a browser that kept the cookie
    ended = await http.get("/api/v1/outages")
    assert ended.status_code == 401
    assert "登录已过期" in ended.json()["detail"]
    again = await http.get("/", headers=html)
    assert again.status_code == 303
    assert again.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "", "docs"]
)
async def test_login_never_sends_to_another_site(http: httpx.AsyncClient, target: str) -> None:
    ok = await http.post("/login", data={"token": DISTRICT_TOKEN, "next": target})
    assert ok.status_code == 303
    assert ok.headers["location"] == "/"


async def test_login_from_another_site_is_refused(http: httpx.AsyncClient) -> None:
    forged = await http.post(
        "/login",
        data={"token": DISTRICT_TOKEN, "next": "/"},
        headers={"Origin": "https://evil.example"},
    )
    assert forged.status_code == 403
    assert "set-cookie" not in forged.headers
    own = await http.post(
        "/login",
        data={"token": DISTRICT_TOKEN, "next": "/"},
        headers={"Origin": str(http.base_url).rstrip("/")},
    )
    assert own.status_code == 303


async def test_the_cookie_is_secure_behind_an_https_proxy(http: httpx.AsyncClient) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (a reverse proxy on the same host).
    ok = await http.post(
        "/login",
        data={"token": DISTRICT_TOKEN, "next": "/"},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert ok.status_code == 303
    assert "secure" in {a.strip().lower() for a in ok.headers["set-cookie"].split(";")}


async def test_metrics_want_their_token_or_the_districts(http: httpx.AsyncClient) -> None:
    assert (await http.get("/metrics")).status_code == 401
    assert (await http.get("/metrics", headers=bearer("wrong-" + "z" * 40))).status_code == 401
    assert (await http.get("/metrics", headers=bearer(SCHOOL_A_TOKEN))).status_code == 403
    assert (await http.get("/metrics", headers=bearer(DISTRICT_TOKEN))).status_code == 200
    # The /metrics token reads /metrics and nothing else.
    assert (await http.get("/api/v1/summary", headers=bearer(METRICS_TOKEN))).status_code == 401
    metrics = await http.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert metrics.status_code == 200
    assert failures(metrics.text, "missing") >= 1
    assert failures(metrics.text, "invalid") >= 2
    assert failures(metrics.text, "forbidden") >= 1
    assert failures(metrics.text, "expired") == 0


async def test_metrics_stay_open_without_their_token(tmp_path: Path) -> None:
    runtime = await tokened_runtime(tmp_path / "edumon.db", metrics_token=False)
    try:
        async with served_runtime(runtime) as url, httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/metrics")).status_code == 200
            assert (await client.get("/api/v1/summary")).status_code == 401
    finally:
        await runtime.store.aclose()


async def test_a_token_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edumon.tokens import new_token
    from tests.fixtures.runtime import DISTRICT_TOML, build_runtime

    token = new_token()
    monkeypatch.setenv("EDUMON_TEST_TOKEN_NOC", token)
    toml = DISTRICT_TOML + (
        '\n[[api.tokens]]\nname = "noc"\nrole = "district"\ntoken_env = "EDUMON_TEST_TOKEN_NOC"\n'
    )
    runtime = await build_runtime(tmp_path / "edumon.db", toml)
    try:
        async with served_runtime(runtime) as url, httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/api/v1/summary")).status_code == 401
            ok = await client.get("/api/v1/summary", headers=bearer(token))
            assert ok.status_code == 200
    finally:
        await runtime.store.aclose()


async def test_no_token_is_ever_logged_or_answered(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []
    for token in (*TOKENS, "wrong-" + "q" * 40):
        for path in ("/api/v1/summary", "/api/v1/outages", "/metrics", "/openapi.json"):
            response = await http.get(path, headers=bearer(token))
            bodies.append(response.text + str(response.headers))
        login = await http.post("/login", data={"token": token, "next": "/"})
        bodies.append(login.text + str(login.headers))
    assert "access refused" in caplog.text  # the refusals were logged ...
    for token in TOKENS:  # ... without any token
        assert token not in caplog.text
        assert all(token not in body for body in bodies)


@pytest.mark.parametrize(
    "body",
    [
        "&".join(f"f{i}=x" for i in range(50)),  # more fields than a login form has
        "token=" + "x" * 9000,  # larger than a login form
        "%ff%fe=%00",  # not UTF-8, a NUL
    ],
)
async def test_a_malformed_login_form_is_refused_plainly(
    http: httpx.AsyncClient, body: str
) -> None:
    answer = await http.post(
        "/login", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert answer.status_code in (400, 401)
    assert "set-cookie" not in answer.headers
