"""Digests, dedup, resolved messages, the rate limit and retries, against the local bot server."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from edumon.notify_config import NotifyConfig
from tests.notify.bots import ALL_SECRETS, Answer, BotServer
from tests.notify.conftest import channel, classroom_alert, notify_config, running, settled


def text_of(body: dict[str, object]) -> str:
    markdown = body["markdown"]
    assert isinstance(markdown, dict)
    return str(markdown.get("content") or markdown.get("text"))


async def test_five_classrooms_of_one_school_are_one_message(bots: BotServer) -> None:
    async with running(notify_config(channel(bots, "wecom"), digest_seconds=0.3)) as notifier:
        # They arrive apart, as a tracker finds them one poll after another, within the window.
        for n in range(1, 6):
            notifier.submit([classroom_alert(n)])
        notifier.submit([classroom_alert(1, school="sqzx")])
        await settled(notifier, bots, 2)
    assert len(bots.received) == 2
    first, second = (r.json for r in bots.received)
    content = text_of(first)
    assert "城关第一小学（cgxx） 5 条告警" in content
    for n in range(1, 6):
        assert f"三年级{n}班（cgxx-30{n}）" in content
    assert "石桥中学" in text_of(second)
    assert "城关第一小学" not in text_of(second)


async def test_the_same_outage_is_sent_once_and_its_end_once(bots: BotServer) -> None:
    alert = classroom_alert(1)
    async with running(notify_config(channel(bots, "dingtalk"))) as notifier:
        notifier.submit([alert, alert])
        await settled(notifier, bots, 1)
        # Alertmanager's repeat_interval delivers it again; the tracker may resubmit it.
        notifier.submit([alert, replace(alert, labels={"repeat": "1"})])
        ended = replace(alert, status="resolved", ends_at=alert.starts_at + 3900)
        notifier.submit([ended])
        await settled(notifier, bots, 2)
        notifier.submit([ended])
        await bots.wait_for(
            lambda: notifier.stats.dropped_total["duplicate"] == 4 and notifier.queue_depth == 0,
            "the resolved repeat dropped",
        )
    assert len(bots.received) == 2
    resolved = bots.received[1].json["markdown"]
    assert resolved["title"].startswith("【已恢复】")
    assert "已恢复，持续 1小时5分钟（11-23 10:21 至 11:26）" in resolved["text"]
    assert notifier.stats.sent_total["dingtalk-noc"] == 2


async def test_firing_and_resolved_within_one_window_report_the_recovery(bots: BotServer) -> None:
    alert = classroom_alert(1)
    async with running(notify_config(channel(bots, "feishu"), digest_seconds=0.3)) as notifier:
        notifier.submit([alert, classroom_alert(2)])
        notifier.submit([replace(alert, status="resolved", ends_at=alert.starts_at + 120)])
        await settled(notifier, bots, 1)
    [request] = bots.received
    card = request.json["card"]
    assert card["header"]["template"] == "orange"
    content = card["elements"][0]["content"]
    assert "**告警 1 条**" in content
    assert "**已恢复 1 条**" in content
    assert (
        "三年级1班（cgxx-301）：班班通终端上课时间离线｜第3节 10:20-11:00｜已恢复，持续 2分钟"
        in content
    )


async def test_routing_by_school_and_severity(bots: BotServer) -> None:
    config = notify_config(
        channel(bots, "wecom", schools=["sqzx"]),
        channel(bots, "webhook", min_severity="critical"),
    )
    async with running(config) as notifier:
        notifier.submit(
            [
                classroom_alert(1),  # cgxx warning: neither
                classroom_alert(2, school="sqzx"),  # wecom only
                classroom_alert(3, severity="critical"),  # webhook only
            ]
        )
        await settled(notifier, bots, 2)
    assert notifier.stats.dropped_total["not_routed"] == 1
    assert {r.kind for r in bots.received} == {"wecom", "webhook"}
    [hook] = bots.delivered("webhook")
    assert [a["classroom"] for a in hook.json["alerts"]] == ["cgxx-303"]


async def test_rate_limit_merges_the_excess_into_the_next_message(bots: BotServer) -> None:
    # One message a second, no burst: five schools at once make one message, then one digest
    # of the four that had to wait, instead of four more.
    config = notify_config(channel(bots, "dingtalk", rate_per_minute=60, burst=1))
    async with running(config) as notifier:
        notifier.submit([classroom_alert(1, school=f"s{i}") for i in range(5)])
        await settled(notifier, bots, 2)
    assert len(bots.received) == 2
    assert notifier.stats.rate_limited_total["dingtalk-noc"] == 4
    assert notifier.stats.merged_total["dingtalk-noc"] == 3
    merged = bots.received[1].json["markdown"]
    assert merged["title"] == "【告警汇总】4 所学校：告警 4 条"
    for i in range(1, 5):
        assert f"学校s{i}（s{i}）" in merged["text"]
    assert "学校s0" not in merged["text"]


@pytest.mark.parametrize(
    ("kind", "answers", "reasons"),
    [
        (
            "dingtalk",
            [
                Answer(500, {"error": "busy"}),
                Answer(429, {"error": "slow down"}, {"Retry-After": "0"}),
                Answer(
                    200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
                ),
                Answer(200, {"errcode": -1, "errmsg": "系统繁忙"}),
            ],
            {"http_5xx": 1, "http_429": 1, "rate_limited": 1, "errcode": 1},
        ),
        (
            "wecom",
            [Answer(200, {"errcode": 45009, "errmsg": "api freq out of limit"})],
            {"rate_limited": 1},
        ),
        ("feishu", [Answer(200, {"code": 11232, "msg": "frequency limited"})], {"rate_limited": 1}),
        ("webhook", [Answer(503, {"error": "down"})], {"http_5xx": 1}),
    ],
)
async def test_failures_are_retried_with_backoff(
    bots: BotServer, kind: str, answers: list[Answer], reasons: dict[str, int]
) -> None:
    bots.script(kind, *answers)
    async with running(notify_config(channel(bots, kind, rate_per_minute=6000))) as notifier:
        notifier.submit([classroom_alert(1)])
        await settled(notifier, bots, 1)
    assert len(bots.received) == len(answers) + 1
    assert bots.received[-1].problem is None
    failures = {r: n for (c, r), n in notifier.stats.failures_total.items() if n}
    assert failures == reasons
    assert notifier.stats.sent_total[f"{kind}-noc"] == 1
    gaps = [b.at - a.at for a, b in zip(bots.received, bots.received[1:], strict=False)]
    assert all(gap > 0 for gap in gaps)


async def test_giving_up_counts_and_lets_a_repeat_through(bots: BotServer) -> None:
    bots.script("webhook", *[Answer(502, {"error": "bad gateway"})] * 3)
    config = notify_config(channel(bots, "webhook", rate_per_minute=6000), max_attempts=3)
    async with running(config) as notifier:
        notifier.submit([classroom_alert(1), classroom_alert(2)])
        await bots.wait_for(
            lambda: notifier.stats.dropped_total["retries_exhausted"] == 2, "given up"
        )
        assert notifier.stats.failures_total[("webhook-noc", "http_5xx")] == 3
        # Never delivered, so Alertmanager's next repeat is not a duplicate.
        notifier.submit([classroom_alert(1)])
        await settled(notifier, bots, 1)
    assert len(bots.received) == 4
    assert notifier.stats.dropped_total["duplicate"] == 0


async def test_an_unreachable_bot_never_blocks_submit(bots: BotServer) -> None:
    config = NotifyConfig.model_validate(
        {
            "queue_size": 3,
            "digest_seconds": 0.05,
            "retry_initial_seconds": 0.01,
            "retry_max_seconds": 0.02,
            "max_attempts": 2,
            "channels": [{"name": "gone", "kind": "wecom", "url": "http://127.0.0.1:9/x?key=k"}],
        }
    )
    async with running(config) as notifier:
        # Not started yet: the queue takes 3 and counts the rest, without waiting.
        assert notifier.submit([classroom_alert(n) for n in range(1, 6)]) == 3
        assert notifier.stats.dropped_total["queue_full"] == 2
        await bots.wait_for(
            lambda: notifier.stats.dropped_total["retries_exhausted"] == 3, "given up"
        )
    assert notifier.stats.failures_total[("gone", "connect")] == 2


async def test_secrets_never_reach_the_logs(
    bots: BotServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bots.script(
        "dingtalk",
        Answer(500, {"error": "x"}),
        Answer(200, {"errcode": 300001, "errmsg": "token is not exist"}),
    )
    bots.script("wecom", Answer(200, {"errcode": 93000, "errmsg": "invalid webhook url"}))
    bots.script("feishu", Answer(400, {"code": 9499, "msg": "Bad Request"}))
    config = notify_config(
        *(channel(bots, kind) for kind in ("dingtalk", "wecom", "feishu", "webhook")),
        {
            "name": "refused",
            "kind": "dingtalk",
            "url": f"http://127.0.0.1:9/robot/send?access_token={ALL_SECRETS[0]}",
            "secret": ALL_SECRETS[1],
        },
        max_attempts=2,
    )
    async with running(config) as notifier:
        notifier.submit([classroom_alert(1)])
        await bots.wait_for(
            lambda: (
                sum(notifier.stats.sent_total.values()) == 1
                and notifier.stats.dropped_total["undeliverable"] == 3
                and notifier.stats.dropped_total["retries_exhausted"] == 1
            ),
            "every channel done",
        )
    # Everything edumon and httpx/httpcore logged; the stand-in bot server's own access log
    # (uvicorn's, on the vendor's side of the wire) is not edumon's.
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("uvicorn"))
    assert any(r.name.startswith("httpcore") for r in caplog.records)
    assert "通知渠道 dingtalk-noc（dingtalk，127.0.0.1）发送失败" in text
    assert "通知已发送 (sent) channel=webhook-noc" in text
    for secret in ALL_SECRETS:
        assert secret not in text
    for secret in ALL_SECRETS:
        assert secret not in repr(config)
        assert secret not in str(config.model_dump())
