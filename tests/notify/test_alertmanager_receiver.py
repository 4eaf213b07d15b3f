"""POST /api/v1/alertmanager/webhook through the ASGI app, into a notifier and out to a bot."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from edumon.exporters.api import create_app
from edumon.exporters.api.alertmanager import Names, parse_time, receiver_router
from edumon.exporters.notify import Notifier
from tests.fixtures.runtime import DISTRICT_TOML, build_runtime
from tests.notify.bots import WEBHOOK_SECRET, BotServer
from tests.notify.conftest import T0, TZ, channel, notify_config, running, settled

URL = "/api/v1/alertmanager/webhook"
TOKEN = "am-receiver-T0ken-77"


def am_alert(status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "EdumonClassroomTerminalOffline",
            "severity": "warning",
            "school": "A",
            "classroom": "A-101",
            **labels,
        },
        "annotations": {"summary": "班班通终端上课时间离线"},
        # Alertmanager writes nanoseconds, and Go's zero time as the end of a firing alert.
        "startsAt": "2026-11-23T02:21:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": "3f2a9c0d1e4b5a67",
    }


def am_body(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="EdumonClassroomTerminalOffline"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "edumon",
        "groupLabels": {"alertname": "EdumonClassroomTerminalOffline"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def describe(school: str, classroom: str | None, at: float) -> Names:
    assert at == pytest.approx(T0, abs=1)
    return Names(
        {"A": "第一小学"}.get(school),
        {"A-101": "一年级(1)班"}.get(classroom or ""),
        "第3节 10:20-11:00",
    )


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edumon.test")


@pytest.fixture
async def notifier(bots: BotServer) -> AsyncIterator[Notifier]:
    async with running(notify_config(channel(bots, "webhook"))) as n:
        yield n


def app_with(notifier: Notifier | None, token: str | None = None) -> FastAPI:
    app = FastAPI()
    secret = None if token is None else SecretStr(token)
    app.include_router(
        receiver_router(lambda: notifier, token=secret, describe=describe), prefix="/api/v1"
    )
    return app


async def test_alerts_with_codes_only_get_names_and_the_lesson(
    bots: BotServer, notifier: Notifier
) -> None:
    async with client_for(app_with(notifier)) as client:
        response = await client.post(URL, json=am_body(am_alert()))
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "queued": 1, "invalid": 0, "problems": []}
    await settled(notifier, bots, 1)
    [request] = bots.delivered("webhook")
    [alert] = request.json["alerts"]
    assert alert["school_name"] == "第一小学"
    assert alert["classroom_name"] == "一年级(1)班"
    assert alert["lesson"] == "第3节 10:20-11:00"
    assert alert["summary"] == "班班通终端上课时间离线"
    assert alert["ends_at"] is None
    assert alert["fingerprint"] == f"am:3f2a9c0d1e4b5a67@{T0:.0f}"
    assert "一年级(1)班（A-101）" in request.json["text"]


async def test_repeats_are_dropped_and_the_resolution_is_sent(
    bots: BotServer, notifier: Notifier
) -> None:
    ended = am_alert("resolved")
    ended["endsAt"] = "2026-11-23T03:26:00Z"
    async with client_for(app_with(notifier)) as client:
        for _ in range(3):  # Alertmanager's group_interval and repeat_interval
            assert (await client.post(URL, json=am_body(am_alert()))).status_code == 200
        await settled(notifier, bots, 1)
        assert (await client.post(URL, json=am_body(ended))).status_code == 200
        await settled(notifier, bots, 2)
    assert notifier.stats.dropped_total["duplicate"] == 2
    first, second = bots.delivered("webhook")
    assert first.json["status"] == "firing"
    assert second.json["status"] == "resolved"
    assert "已恢复，持续 1小时5分钟" in second.json["text"]


async def test_unusable_alerts_are_counted_and_named(notifier: Notifier) -> None:
    no_school = am_alert()
    del no_school["labels"]["school"]
    bad_time = am_alert(classroom="A-102")
    bad_time["startsAt"] = "yesterday"
    async with client_for(app_with(notifier)) as client:
        response = await client.post(URL, json=am_body(no_school, bad_time, am_alert()))
    assert response.status_code == 200
    body = response.json()
    assert (body["received"], body["queued"], body["invalid"]) == (3, 1, 2)
    assert "school 标签" in body["problems"][0]
    assert "RFC 3339" in body["problems"][1]
    assert notifier.stats.dropped_total["invalid"] == 2


async def test_not_json_or_not_alertmanager_is_422(notifier: Notifier) -> None:
    async with client_for(app_with(notifier)) as client:
        assert (await client.post(URL, content=b"{not json")).status_code == 422
        assert (await client.post(URL, json={"alerts": "many"})).status_code == 422


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "]
)
async def test_the_token_is_required_when_configured(
    notifier: Notifier, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with client_for(app_with(notifier, TOKEN)) as client:
        response = await client.post(URL, json=am_body(am_alert()), headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in response.text
        ok = await client.post(
            URL, json=am_body(am_alert()), headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert ok.status_code == 200
    assert notifier.stats.submitted_total == 1


async def test_without_channels_the_receiver_answers_503() -> None:
    async with client_for(app_with(None)) as client:
        response = await client.post(URL, json=am_body(am_alert()))
    assert response.status_code == 503
    assert "通知未配置" in response.json()["detail"]


def test_parse_time() -> None:
    assert parse_time("2026-11-23T02:21:00Z") == T0
    assert parse_time("2026-11-23T10:21:00.5+08:00") == T0 + 0.5
    assert parse_time("2026-11-23T02:21:00.123456789Z") == pytest.approx(T0 + 0.123456)
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time(None) is None
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time("2026-11-23 02:21")


async def test_the_daemon_app_routes_to_the_runtime_notifier(
    bots: BotServer, tmp_path: Path
) -> None:
    toml = (
        DISTRICT_TOML
        + f"""
[notify]
digest_seconds = 0.05
receiver_token = "{TOKEN}"

[[notify.channels]]
name = "school-a"
kind = "webhook"
url = "{bots.url("webhook")}"
secret = "{WEBHOOK_SECRET}"
schools = ["A"]
"""
    )
    runtime = await build_runtime(tmp_path / "edumon.db", toml)
    try:
        async with running(runtime.config.notify) as notifier:
            runtime.notifier = notifier
            other = copy.deepcopy(am_alert(school="B", classroom="B-201"))
            async with client_for(create_app(runtime)) as client:
                response = await client.post(
                    URL,
                    json=am_body(am_alert(), other),
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                assert response.status_code == 200, response.text
                await settled(notifier, bots, 1)
                metrics = (await client.get("/metrics")).text
                openapi = (await client.get("/openapi.json")).json()
    finally:
        await runtime.store.aclose()
    assert URL in openapi["paths"]
    [request] = bots.delivered("webhook")
    [alert] = request.json["alerts"]  # school B is not this channel's
    # Names from [[schools]] and the lesson from the built-in primary timetable.
    assert alert["school_name"] == "第一小学"
    assert alert["classroom_name"] == "一年级(1)班"
    assert alert["lesson"] == "第3节 10:20-11:00"
    assert 'edumon_notify_sent_total{channel="school-a"} 1.0' in metrics
    assert 'edumon_notify_dropped_total{reason="not_routed"} 1.0' in metrics
    assert 'edumon_notify_failures_total{channel="school-a",reason="timeout"} 0.0' in metrics
    assert "edumon_notify_queue_depth 0.0" in metrics
    assert TOKEN not in metrics
    assert TZ.key == "Asia/Shanghai"
