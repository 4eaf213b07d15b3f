"""`edumon demo --db FILE`, then `edumon report --month <this month> --db FILE` (README)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.test_daemon import get, wait_until
from tests.test_demo import STOP_SECONDS, start_demo


def report(db: Path, month: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "edumon", "report", "--month", month, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.timeout(300)
def test_the_report_on_the_demos_data(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    demo = start_demo(tmp_path, "--db", str(db), "--cut-after", "-1")
    try:

        def terminals_stored() -> bool | None:
            status, body = get(f"{demo.base}/api/v1/reports/monthly")
            if status != 200:
                return None
            return (json.loads(body)["district"]["online_minutes"] > 0) or None

        wait_until("online lesson time in the monthly report", terminals_stored, demo.proc, 60)
    finally:
        demo.proc.send_signal(signal.SIGINT)
        demo.proc.communicate(timeout=STOP_SECONDS)  # and close its pipes
    assert (tmp_path / "demo.db.toml").is_file()

    this_month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    text = report(db, this_month)
    assert "月度网络与终端运行报告" in text
    assert "实验小学（syxx）" in text
    district = text.split("== 全区 district ==")[1].split("==")[0]
    online = next(line for line in district.splitlines() if "在线率" in line)
    assert online.rstrip().endswith("%"), online  # a figure: the demo was monitored
    assert "部分监测" in district  # only part of the month's lesson time was

    before = report(db, "2020-01")
    assert "无数据 no data" in before
    # Every rate is "no data"; only the coverage (of lesson time monitored) is 0 %.
    rates = [line for line in before.splitlines() if "率" in line and "覆盖" not in line]
    assert rates
    assert not any("0.0 %" in line for line in rates), before
