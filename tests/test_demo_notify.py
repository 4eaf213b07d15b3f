"""`edumon demo` with a 钉钉 bot configured: the fibre cut of one school is one signed message,
and its repair one more (the bot here is a local server that checks 加签 like DingTalk does)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from tests.notify.bots import DINGTALK_SECRET, serve_bots
from tests.test_daemon import get
from tests.test_demo import start_demo, stop

pytestmark = [pytest.mark.timeout(300)]


async def test_a_school_cut_gives_one_signed_dingtalk_message_and_one_resolution(
    tmp_path: Path,
) -> None:
    async with serve_bots() as bots:
        notify = tmp_path / "notify.toml"
        notify.write_text(
            "[notify]\n"
            "digest_seconds = 1\n"
            "[[notify.channels]]\n"
            'name = "noc"\n'
            'kind = "dingtalk"\n'
            f'url = "{bots.url("dingtalk")}"\n'
            f'secret = "{DINGTALK_SECRET}"\n'
            'schools = ["syxx"]\n',
            encoding="utf-8",
        )
        demo = await asyncio.to_thread(
            start_demo,
            tmp_path,
            "--interval",
            "2",
            "--cut-after",
            "6",
            "--cut-for",
            "30",
            "--notify-config",
            str(notify),
        )
        try:

            def events(kind: str) -> list[dict[str, object]]:
                status, body = get(f"{demo.base}/api/v1/events?kind={kind}&school=syxx")
                assert status == 200, body
                return list(json.loads(body)["events"])

            await bots.wait_for(
                lambda: len(bots.delivered("dingtalk")) >= 2, "two DingTalk messages", 150
            )
            # The outage and its end are each stored once: exactly what was sent, no more.
            # Events are written in batches: wait (with a deadline) for the end to be stored.
            deadline = time.monotonic() + 60
            restored = await asyncio.to_thread(events, "school_restored")
            while not restored and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                restored = await asyncio.to_thread(events, "school_restored")
            outages = await asyncio.to_thread(events, "school_outage")
        finally:
            await asyncio.to_thread(stop, demo.proc)
            for pipe in (demo.proc.stdout, demo.proc.stderr):
                if pipe is not None:
                    pipe.close()
    texts = [r.raw.decode() for r in bots.received]
    assert len(outages) == 1, texts
    assert len(restored) == 1
    assert [r.problem for r in bots.received] == [None, None]  # every 加签 checked and valid
    firing, resolution = (r.json["markdown"]["text"] for r in bots.received)
    assert "实验小学" in firing
    assert "已恢复" not in firing
    assert "实验小学" in resolution
    assert "已恢复" in resolution
    for request in bots.received:
        assert set(request.query) >= {"access_token", "timestamp", "sign"}
