"""The shipped Prometheus alert rules: promtool's checks and unit tests, and their schedule data."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from edumon.domain.schedule import DayReason, Place, is_lesson_scheduled, school_day
from edumon.schedule_config import ScheduleConfig
from edumon.workcalendar import ChineseWorkingCalendar

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "edumon-terminals.yml"
RULE_TESTS = PROMETHEUS / "tests" / "terminals_test.yml"

# The kind of each school in the promtool tests, as their header comment says.
SCHOOL_KINDS = {"YZ01": "middle", "YZ02": "middle", "CG01": "primary"}

GROUP_START = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?[+-]\d\d:\d\d")
EXPANDING = re.compile(r"^(-?\d+(?:\.\d+)?)(?:([+-])(\d+(?:\.\d+)?))?x(\d+)$")


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found (Debian package `prometheus`); run `bash tests/run.sh`, "
            "which installs it"
        )
    return subprocess.run(
        [path, *map(str, args)], capture_output=True, text=True, timeout=50, check=False
    )


def expand(values: str) -> list[float]:
    """promtool's series notation: "0x2 1+1x2" is 0 0 0 1 2 3 (``axn`` is n+1 samples)."""
    out: list[float] = []
    for token in values.split():
        match = EXPANDING.match(token)
        if match is None:
            out.append(float(token))  # a plain number; anything else (_ or stale) is refused
            continue
        first, sign, step, times = match.groups()
        delta = float(step or 0) * (-1 if sign == "-" else 1)
        out.extend(float(first) + delta * i for i in range(int(times) + 1))
    return out


def minutes(duration: str) -> int:
    match = re.fullmatch(r"(\d+)([mh])", duration)
    assert match is not None, f"interval {duration!r}: the check handles whole minutes or hours"
    return int(match[1]) * (60 if match[2] == "h" else 1)


def series_labels(series: str) -> tuple[str, dict[str, str]]:
    name, _, rest = series.partition("{")
    return name, dict(re.findall(r'(\w+)="([^"]*)"', rest))


def group_start(group: dict[str, Any]) -> datetime:
    match = GROUP_START.search(group["name"])
    assert match is not None, f"test group {group['name']!r} names no start time"
    return datetime.fromisoformat(match[0])


def rule_test_groups() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    groups: list[dict[str, Any]] = loaded["tests"]
    return groups


def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("change", "before", "after", "caught_by"),
    [
        (
            "no uplink suppression",
            "unless on (school)\n            (edumon_school_uplink_up == 0)",
            "",
            {"uplink down", "uplink fails during a lesson"},
        ),
        (
            "schedule ignored",
            "(edumon_classroom_expected_online == 1)",
            "(edumon_classroom_expected_online >= 0)",
            {"night", "holiday weekday (国庆节)", "weekend"},
        ),
        ("no for delay", "for: 5m", "for: 0m", {"weekday lesson", "调休 make-up Saturday"}),
        (
            "uplink alert dropped",
            "expr: edumon_school_uplink_up == 0",
            "expr: vector(0) > 1",
            {
                "uplink down",
                "uplink fails during a lesson",
            },
        ),
    ],
)
def test_promtool_unit_tests_catch_a_broken_rule(
    tmp_path: Path, change: str, before: str, after: str, caught_by: set[str]
) -> None:
    rules = RULES.read_text(encoding="utf-8")
    assert rules.count(before) == 1, f"{change}: the rule file no longer contains {before!r}"
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules" / RULES.name).write_text(rules.replace(before, after), encoding="utf-8")
    shutil.copy(RULE_TESTS, tmp_path / "tests" / RULE_TESTS.name)
    result = promtool("test", "rules", tmp_path / "tests" / RULE_TESTS.name)
    assert result.returncode != 0, f"{change}: promtool's tests still pass"
    report = result.stdout + result.stderr
    failed = {m.split(":")[0] for m in re.findall(r"^\s*name: (.+?),$", report, re.M)}
    assert caught_by <= failed, report


def test_expected_online_series_follow_the_schedule() -> None:
    schedule = ScheduleConfig().schedule()
    calendar = ChineseWorkingCalendar()
    checked = 0
    for group in rule_test_groups():
        start = group_start(group)
        step = timedelta(minutes=minutes(group.get("interval", "1m")))
        for series in group["input_series"]:
            name, labels = series_labels(series["series"])
            if name != "edumon_classroom_expected_online":
                continue
            place = Place(labels["school"], SCHOOL_KINDS[labels["school"]], labels["classroom"])
            given = expand(series["values"])
            computed = [
                float(is_lesson_scheduled(schedule, calendar, place, start + i * step))
                for i in range(len(given))
            ]
            wrong = [
                f"{(start + i * step):%Y-%m-%d %H:%M} file {g:g} schedule {c:g}"
                for i, (g, c) in enumerate(zip(given, computed, strict=True))
                if g != c
            ]
            assert not wrong, f"{group['name']}: {series['series']}: {wrong[:3]}"
            checked += 1
    assert checked >= 10


def test_rule_tests_cover_the_calendar_cases() -> None:
    schedule = ScheduleConfig().schedule()
    calendar = ChineseWorkingCalendar()
    days: dict[DayReason, list[date]] = {}
    for group in rule_test_groups():
        day = group_start(group).date()
        answer = school_day(schedule, calendar, day)
        assert not answer.calendar_fallback, f"{day}: beyond the installed calendar's data"
        days.setdefault(answer.reason, []).append(day)
    makeup = days.get(DayReason.MAKEUP_WORKDAY, [])
    holidays = days.get(DayReason.HOLIDAY, [])
    assert any(d.weekday() == 5 for d in makeup), "no 调休 make-up Saturday among the tests"
    assert any(d.weekday() < 5 for d in holidays), "no holiday weekday among the tests"
    assert DayReason.WEEKEND in days
    assert DayReason.WORKDAY in days
