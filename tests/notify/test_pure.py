"""Pure parts of notifications, table-driven: durations, keys, composing, size limits, the token
bucket, the dedup memory, backoff and signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace
from urllib.parse import unquote

import pytest

from edumon.domain.alerts import alert_key, duration_zh, severity_rank
from edumon.exporters.notify import dingtalk, feishu, webhook, wecom
from edumon.exporters.notify.compose import compose
from edumon.exporters.notify.dedup import SeenSet
from edumon.exporters.notify.ratelimit import TokenBucket
from edumon.exporters.notify.retry import backoff_seconds
from edumon.exporters.notify.signing import dingtalk_query, dingtalk_sign, feishu_sign
from tests.notify.conftest import TZ, classroom_alert


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0秒"),
        (45.4, "45秒"),
        (60, "1分钟"),
        (3599, "59分钟"),
        (3600, "1小时"),
        (3900, "1小时5分钟"),
        (86400, "1天"),
        (2 * 86400 + 3 * 3600 + 59, "2天3小时"),
        (-5, "0秒"),
    ],
)
def test_duration_zh(seconds: float, text: str) -> None:
    assert duration_zh(seconds) == text


def test_severity_rank_and_alert_key() -> None:
    assert severity_rank("info") < severity_rank("warning") < severity_rank("CRITICAL")
    assert severity_rank("page") == severity_rank("warning")
    alert = classroom_alert(1)
    assert alert_key(alert) == alert_key(replace(alert, status="resolved", ends_at=1.0))
    assert alert_key(alert) != alert_key(replace(alert, starts_at=alert.starts_at + 600))
    assert alert_key(replace(alert, fingerprint="fp")) == "fp"


def test_titles() -> None:
    one = classroom_alert(1)
    ended = replace(one, status="resolved", ends_at=one.starts_at + 60)
    other = classroom_alert(1, school="sqzx")
    cases = [
        ([[one]], "【告警】城关第一小学（cgxx） 班班通终端上课时间离线", "firing"),
        ([[one, classroom_alert(2)]], "【告警】城关第一小学（cgxx） 2 条告警", "firing"),
        ([[ended]], "【已恢复】城关第一小学（cgxx） 班班通终端上课时间离线", "resolved"),
        (
            [[ended, replace(classroom_alert(2), status="resolved", ends_at=1e10)]],
            "【已恢复】城关第一小学（cgxx） 2 条告警已恢复",
            "resolved",
        ),
        ([[classroom_alert(2), ended]], "【告警 1 条 · 已恢复 1 条】城关第一小学（cgxx）", "mixed"),
        ([[one], [other]], "【告警汇总】2 所学校：告警 2 条", "firing"),
        (
            [[replace(one, summary="城关第一小学 与教育城域网失联", classroom=None)]],
            "【告警】城关第一小学 与教育城域网失联",
            "firing",
        ),
    ]
    for batches, title, status in cases:
        message = compose(batches, TZ)
        assert (message.title, message.status) == (title, status)
    with pytest.raises(ValueError, match="at least one alert"):
        compose([[]], TZ)


def test_lines_say_where_what_lesson_and_when() -> None:
    school_wide = replace(
        classroom_alert(1), classroom=None, lesson=None, device="cg-core", severity="critical"
    )
    [section] = compose([[classroom_alert(1), school_wide]], TZ).sections
    assert [line.text for line in section.firing] == [
        "[警告] 三年级1班（cgxx-301）：班班通终端上课时间离线｜第3节 10:20-11:00｜11-23 10:21 起",
        "[严重] 全校 设备 cg-core：班班通终端上课时间离线｜11-23 10:21 起",
    ]


@pytest.mark.parametrize(
    ("vendor", "limit"),
    [
        (wecom.WeCom(), 4096),
        (dingtalk.DingTalk(), 20_000),
        (feishu.Feishu(), 20_000),
        (webhook.Webhook(), 10**6),
    ],
)
def test_a_district_wide_outage_fits_the_bots_size_limits(vendor: object, limit: int) -> None:
    batches = [
        [classroom_alert(n, school=f"school{s:03d}") for n in range(1, 9)] for s in range(60)
    ]
    message = compose(batches, TZ)
    out = vendor.request(message, "http://127.0.0.1/x", "secret", 1.8e9)  # type: ignore[attr-defined]
    assert len(out.body) <= limit
    text = out.body.decode()
    assert "school000" in text
    # The bots get the first lines and a count of the rest; a webhook gets every alert.
    assert ("未列出" in text) == (limit < 10**6)


def test_token_bucket() -> None:
    bucket = TokenBucket(rate_per_second=0.3, burst=2, now=0.0)
    assert bucket.take(0.0)
    assert bucket.take(0.0)
    assert not bucket.take(0.0)
    assert bucket.wait_time(0.0) == pytest.approx(1 / 0.3)
    assert bucket.take(1 / 0.3)
    # In any 60 s, at most burst + rate * 60 = 20 messages.
    sent = sum(bucket.take(t / 10) for t in range(40, 640))
    assert sent <= 18
    bucket.empty(100.0)
    assert bucket.wait_time(100.0) == pytest.approx(1 / 0.3)
    with pytest.raises(ValueError, match="positive rate"):
        TokenBucket(0, 1, 0.0)


def test_seen_set_expires_and_stays_bounded() -> None:
    seen = SeenSet(ttl=10.0, capacity=3)
    seen.add("a", 0.0)
    assert seen.seen("a", 9.9)
    assert not seen.seen("a", 10.0)
    for key in "bcde":
        seen.add(key, 20.0)
    assert len(seen) == 3
    assert not seen.seen("b", 20.0)
    seen.forget("c")
    assert not seen.seen("c", 20.0)


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 0.5, 1.0), (2, 1.0, 2.0), (6, 16, 32), (7, 30, 60), (50, 30, 60)],
)
def test_backoff_is_exponential_with_jitter_and_capped(
    attempt: int, low: float, high: float
) -> None:
    for r in (0.0, 0.5, 0.999):
        wait = backoff_seconds(attempt, initial=1.0, maximum=60.0, random=lambda r=r: r)
        assert low <= wait <= high


def test_signatures_follow_the_vendors_recipes() -> None:
    secret = "SEC000000000000000000000000000000000000000000000000000000000000"
    ts_ms = 1_700_000_000_000
    mac = hmac.new(secret.encode(), f"{ts_ms}\n{secret}".encode(), hashlib.sha256).digest()
    assert dingtalk_sign(secret, ts_ms) == base64.b64encode(mac).decode()
    query = dingtalk_query(secret, ts_ms)
    assert query.startswith(f"timestamp={ts_ms}&sign=")
    assert unquote(query.split("sign=")[1]) == dingtalk_sign(secret, ts_ms)
    assert "+" not in query.split("sign=")[1]
    assert "/" not in query.split("sign=")[1]
    key = f"1700000000\n{secret}".encode()
    assert (
        feishu_sign(secret, 1_700_000_000)
        == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    )
