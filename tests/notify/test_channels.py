"""Each bot's request as its vendor documents it, checked by the local bot server over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from tests.notify.bots import (
    DINGTALK_SECRET,
    DINGTALK_TOKEN,
    FEISHU_SECRET,
    FEISHU_TOKEN,
    WEBHOOK_SECRET,
    WECOM_KEY,
    BotServer,
    dingtalk_expected_sign,
    feishu_expected_sign,
)
from tests.notify.conftest import channel, classroom_alert, notify_config, running, settled


async def test_dingtalk_markdown_signed_in_the_query(bots: BotServer) -> None:
    async with running(notify_config(channel(bots, "dingtalk"))) as notifier:
        notifier.submit([classroom_alert(1)])
        await settled(notifier, bots, 1)
    [request] = bots.received
    assert request.problem is None
    assert request.path == "/robot/send"
    assert request.query["access_token"] == DINGTALK_TOKEN
    # 加签: milliseconds, HMAC-SHA256 keyed by the secret over "timestamp\nsecret", base64.
    timestamp = request.query["timestamp"]
    assert abs(int(timestamp) / 1000 - time.time()) < 60
    assert request.query["sign"] == dingtalk_expected_sign(timestamp, DINGTALK_SECRET)
    # The sign is URL-encoded in the raw query ('+', '/' and '=' of base64 escaped).
    body = request.json
    assert body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"title", "text"}
    assert body["markdown"]["title"] == "【告警】城关第一小学（cgxx） 班班通终端上课时间离线"
    text = body["markdown"]["text"]
    assert "三年级1班（cgxx-301）" in text
    assert "第3节 10:20-11:00" in text
    assert "11-23 10:21 起" in text


async def test_dingtalk_sign_survives_url_encoding(bots: BotServer) -> None:
    # A signature with '+' or '/' must reach the server intact: send until one has them.
    async with running(
        notify_config(channel(bots, "dingtalk", rate_per_minute=6000, burst=50))
    ) as n:
        n.submit([classroom_alert(i, school=f"s{i:02d}") for i in range(1, 9)])
        await settled(n, bots, 8)
    assert [r.problem for r in bots.received] == [None] * 8
    assert any(set(r.query["sign"]) & set("+/") for r in bots.received)


async def test_wecom_markdown_with_the_key_in_the_url(bots: BotServer) -> None:
    async with running(notify_config(channel(bots, "wecom"))) as notifier:
        notifier.submit([classroom_alert(1), classroom_alert(2)])
        await settled(notifier, bots, 1)
    [request] = bots.received
    assert request.problem is None
    assert request.query == {"key": WECOM_KEY}
    body = request.json
    assert body == {"msgtype": "markdown", "markdown": {"content": body["markdown"]["content"]}}
    content = body["markdown"]["content"]
    assert content.startswith("### 【告警】城关第一小学（cgxx） 2 条告警")
    assert '<font color="warning">**告警 2 条**</font>' in content
    assert "三年级2班（cgxx-302）" in content


async def test_feishu_card_signed_in_the_body(bots: BotServer) -> None:
    async with running(notify_config(channel(bots, "feishu"))) as notifier:
        notifier.submit([classroom_alert(1)])
        await settled(notifier, bots, 1)
    [request] = bots.received
    assert request.problem is None
    assert request.path == f"/open-apis/bot/v2/hook/{FEISHU_TOKEN}"
    body = request.json
    # 签名校验: seconds, as a string; HMAC-SHA256 keyed by "timestamp\nsecret" over nothing.
    assert isinstance(body["timestamp"], str)
    assert abs(int(body["timestamp"]) - time.time()) < 60
    assert body["sign"] == feishu_expected_sign(body["timestamp"], FEISHU_SECRET)
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["header"]["template"] == "red"
    assert card["header"]["title"] == {
        "tag": "plain_text",
        "content": "【告警】城关第一小学（cgxx） 班班通终端上课时间离线",
    }
    [element] = card["elements"]
    assert element["tag"] == "markdown"
    assert "第3节 10:20-11:00" in element["content"]


async def test_generic_webhook_carries_the_alerts_and_an_hmac(bots: BotServer) -> None:
    async with running(notify_config(channel(bots, "webhook"))) as notifier:
        notifier.submit([classroom_alert(1)])
        await settled(notifier, bots, 1)
    [request] = bots.received
    assert request.problem is None
    timestamp = request.headers["x-edumon-timestamp"]
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + request.raw, hashlib.sha256)
    assert request.headers["x-edumon-signature"] == f"sha256={mac.hexdigest()}"
    body = request.json
    assert body["version"] == "1"
    assert body["status"] == "firing"
    [alert] = body["alerts"]
    assert alert["school"] == "cgxx"
    assert alert["school_name"] == "城关第一小学"
    assert alert["classroom"] == "cgxx-301"
    assert alert["lesson"] == "第3节 10:20-11:00"
    assert alert["starts_at"] == "2026-11-23T02:21:01+00:00"
    assert alert["ends_at"] is None


@pytest.mark.parametrize("kind", ["dingtalk", "feishu"])
async def test_a_wrong_secret_is_refused_and_not_retried(bots: BotServer, kind: str) -> None:
    config = notify_config(channel(bots, kind, secret="not-the-secret"))
    async with running(config) as notifier:
        notifier.submit([classroom_alert(1)])
        await bots.wait_for(
            lambda: notifier.stats.dropped_total["undeliverable"] == 1, "undeliverable"
        )
    [request] = bots.received
    assert request.problem == "sign"
    assert notifier.stats.failures_total[(f"{kind}-noc", "errcode")] == 1
    assert sum(notifier.stats.sent_total.values()) == 0
