"""Fixtures of the notification tests: the local bot server and alerts to send."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edumon.domain.alerts import Alert
from edumon.exporters.notify import Notifier
from edumon.notify_config import NotifyConfig
from tests.notify.bots import (
    DINGTALK_SECRET,
    FEISHU_SECRET,
    WEBHOOK_SECRET,
    BotServer,
    serve_bots,
)

TZ = ZoneInfo("Asia/Shanghai")
# 2026-11-23 (a Monday) 10:21 Beijing time: during 第3节 10:20-11:00.
T0 = datetime(2026, 11, 23, 10, 21, tzinfo=TZ).timestamp()


@pytest.fixture
async def bots() -> AsyncIterator[BotServer]:
    async with serve_bots() as server:
        yield server


def channel(bots: BotServer, kind: str, **extra: Any) -> dict[str, Any]:
    """One [[notify.channels]] entry pointing at the local bot server."""
    secret = {"dingtalk": DINGTALK_SECRET, "feishu": FEISHU_SECRET, "webhook": WEBHOOK_SECRET}
    entry: dict[str, Any] = {"name": f"{kind}-noc", "kind": kind, "url": bots.url(kind)}
    if kind in secret:
        entry["secret"] = secret[kind]
    entry.update(extra)
    return entry


def notify_config(*channels: dict[str, Any], **settings: Any) -> NotifyConfig:
    # Short windows and retries: the tests wait for conditions, never for these to pass.
    values: dict[str, Any] = {
        "digest_seconds": 0.05,
        "retry_initial_seconds": 0.01,
        "retry_max_seconds": 0.05,
        "channels": list(channels),
    }
    values.update(settings)
    return NotifyConfig.model_validate(values)


@contextlib.asynccontextmanager
async def running(config: NotifyConfig, **kwargs: Any) -> AsyncIterator[Notifier]:
    """A Notifier from ``config`` with its run task, cancelled at the end of the block."""
    notifier = Notifier.from_config(config, tz=TZ, **kwargs)
    task = asyncio.create_task(notifier.run(), name="notify")
    try:
        yield notifier
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def classroom_alert(n: int, school: str = "cgxx", **changes: Any) -> Alert:
    """Classroom ``n`` of a school, its terminal offline since T0 during 第3节."""
    base = Alert(
        name="EdumonClassroomTerminalOffline",
        status="firing",
        severity="warning",
        school=school,
        school_name={"cgxx": "城关第一小学", "sqzx": "石桥中学"}.get(school, f"学校{school}"),
        starts_at=T0 + n,
        ends_at=None,
        summary="班班通终端上课时间离线",
        classroom=f"{school}-30{n}",
        classroom_name=f"三年级{n}班",
        lesson="第3节 10:20-11:00",
        device=f"{school}-30{n}",
    )
    return replace(base, **changes)


async def settled(notifier: Notifier, bots: BotServer, sent: int) -> None:
    """Wait until ``sent`` messages went out and nothing more is queued or in a digest."""

    def done() -> bool:
        return sum(notifier.stats.sent_total.values()) >= sent and notifier.queue_depth == 0

    await bots.wait_for(done, f"{sent} message(s) sent; stats {notifier.stats}")


Factory = Callable[..., Alert]
