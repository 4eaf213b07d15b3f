"""The shipped Prometheus alert rules: promtool checks and unit tests, and their conventions."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERTING_DOC = REPO / "docs" / "alerting.md"

# Metrics edumon no longer exports (or that only edumon itself should act on).
RETIRED_METRICS = (
    "edumon_school_uplink_up",  # replaced by edumon_school_connectivity and _outage
    "edumon_interface_oper_status",  # replaced by edumon_interface_up
    "edumon_classroom_expected_online",  # the lesson schedule is applied by edumon
    "edumon_classroom_offline_in_lesson",  # replaced by edumon_classroom_outage
)
CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN_WORD = re.compile(r"[A-Za-z]{3,}")
TEMPLATE = re.compile(r"\{\{.*?\}\}", re.S)


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


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def alert_rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in load(path)["groups"] for rule in group["rules"] if "alert" in rule]


def all_alert_rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for rule in alert_rules(path)]


def rule_tests() -> list[tuple[str, dict[str, Any]]]:
    """(test group name, alert_rule_test case) for every case of every promtool test file."""
    return [
        (group["name"], case)
        for path in TEST_FILES
        for group in load(path)["tests"]
        for case in group.get("alert_rule_test", [])
    ]


def failed_groups(report: str) -> set[str]:
    """Names of the test groups promtool reports as failed."""
    return {m.rsplit(",", 1)[0] for m in re.findall(r"^\s*name: (.+,)$", report, re.M)}


def test_the_rule_set_is_complete() -> None:
    names = {path.name for path in RULE_FILES}
    assert names == {
        "edumon-calendar.yml",
        "edumon-classrooms.yml",
        "edumon-collector.yml",
        "edumon-schools.yml",
        "edumon-switches.yml",
    }
    assert len(TEST_FILES) >= len(RULE_FILES) + 1  # one per rule file and the outage tests


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rules_pass_promtool_check(path: Path) -> None:
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules(path))} rules found" in result.stdout


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path: Path) -> None:
    result = promtool("test", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("rule", all_alert_rules(), ids=lambda r: str(r["alert"]))
def test_every_alert_has_severity_scope_and_bilingual_text(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert rule["labels"]["scope"] in {"district", "school"}
    notes = rule["annotations"]
    assert set(notes) == {"summary", "description", "runbook"}
    for key in ("summary", "runbook"):
        chinese, sep, english = TEMPLATE.sub("", notes[key]).partition(" / ")
        assert sep, f"{key}: no ' / ' between the Chinese and the English"
        assert CJK.search(chinese), f"{key}: no Chinese before ' / '"
        assert LATIN_WORD.search(english), f"{key}: no English after ' / '"
    # The description is a Chinese paragraph ending in 。 followed by the English one.
    description = TEMPLATE.sub("", notes["description"])
    chinese, sep, english = description.partition("。")
    assert sep, "description: no Chinese sentence (ending in 。) first"
    assert CJK.search(chinese), "description: no Chinese sentence first"
    assert LATIN_WORD.search(english), "description: no English after the Chinese"


@pytest.mark.parametrize("rule", all_alert_rules(), ids=lambda r: str(r["alert"]))
def test_school_alerts_name_their_school(rule: dict[str, Any]) -> None:
    if rule["labels"]["scope"] != "school":
        return
    expr = " ".join(rule["expr"].split())
    assert "on (school) group_left (school_name) edumon_school_info" in expr
    assert "$labels.school_name" in rule["annotations"]["summary"]


def test_rules_use_no_retired_metric() -> None:
    for path in RULE_FILES:
        for rule in alert_rules(path):
            text = rule["expr"] + "".join(rule["annotations"].values())
            used = [metric for metric in RETIRED_METRICS if metric in text]
            assert not used, f"{path.name}: {rule['alert']} uses {used}"


def test_every_alert_has_firing_and_silent_cases() -> None:
    names = {str(rule["alert"]) for rule in all_alert_rules()}
    firing = {case["alertname"] for _, case in rule_tests() if case.get("exp_alerts")}
    silent = {case["alertname"] for _, case in rule_tests() if not case.get("exp_alerts")}
    assert names - firing == set(), "alerts no test sees firing"
    assert names - silent == set(), "alerts no test sees silent"
    assert (firing | silent) - names == set(), "tests of alerts that do not exist"


def test_expected_school_alerts_carry_the_school_name() -> None:
    for group, case in rule_tests():
        for alert in case.get("exp_alerts") or []:
            labels = alert["exp_labels"]
            if labels["scope"] == "school":
                assert labels.get("school_name"), f"{group}: {case['alertname']}"


def test_alerting_doc_lists_every_alert() -> None:
    doc = ALERTING_DOC.read_text(encoding="utf-8")
    table = {m for m in re.findall(r"^\| `(Edumon\w+)`", doc, re.M)}
    assert table == {str(rule["alert"]) for rule in all_alert_rules()}


# Each change breaks a property the rules promise; promtool's tests must notice it, in the test
# groups named.
BROKEN_RULES = [
    (
        "classroom alert not suppressed by the school outage",
        "edumon-classrooms.yml",
        "unless on (school) (edumon_school_outage == 1)",
        "",
        {"a school cut off during lessons: one school alert, no switch or classroom alert"},
    ),
    (
        "classroom alert not suppressed behind an unreachable access switch",
        "edumon-classrooms.yml",
        'unless on (device) (edumon_device_state{state=~"unreachable|unknown"} == 1)',
        "",
        {"an access switch unreachable: one switch alert, none for the classrooms behind it"},
    ),
    (
        "classroom alert resolving at the bell",
        "edumon-classrooms.yml",
        "(edumon_classroom_outage == 1)",
        "(edumon_classroom_outage == 1 and on (school, classroom)"
        " edumon_classroom_expected_online == 1)",
        {"a classroom outage that spans a break is one alert"},
    ),
    (
        "one classroom link alert per classroom",
        "edumon-classrooms.yml",
        "count by (job, instance, school) (",
        "max by (job, instance, school, classroom) (",
        {"classroom links below the target: one alert per school with the count"},
    ),
    (
        "school alert per connectivity state",
        "edumon-schools.yml",
        "(edumon_school_outage == 1)",
        '(edumon_school_connectivity{state=~"uplink_down|unreachable"} == 1)',
        {
            "a school outage whose cause flips from uplink_down to unreachable is one alert",
            "a school cut off during lessons: one school alert, no switch or classroom alert",
        },
    ),
    (
        "school alert without its delay",
        "edumon-schools.yml",
        "for: 2m",
        "for: 0m",
        {"a school outage whose cause flips from uplink_down to unreachable is one alert"},
    ),
    (
        "school switch alert not suppressed by the school outage",
        "edumon-switches.yml",
        "unless on (school) (edumon_school_outage == 1)",
        "",
        {"a school cut off during lessons: one school alert, no switch or classroom alert"},
    ),
    (
        "switch alert for switches behind a failure",
        "edumon-switches.yml",
        'edumon_device_state{state="unreachable", school!=""}',
        'edumon_device_state{state=~"unreachable|unknown", school!=""}',
        {"a district switch unreachable: one district alert, none for the schools behind it"},
    ),
    (
        "store alert without pending rows",
        "edumon-collector.yml",
        "and on (job, instance) (edumon_store_pending_rows > 0)",
        "",
        {"the database stops taking writes"},
    ),
    (
        "calendar alert without its delay",
        "edumon-calendar.yml",
        "for: 1h",
        "for: 0m",
        {"next year's arrangement missing from 1 December"},
    ),
]


@pytest.mark.parametrize(
    ("change", "file", "before", "after", "caught_by"),
    BROKEN_RULES,
    ids=[b[0] for b in BROKEN_RULES],
)
def test_promtool_unit_tests_catch_a_broken_rule(
    tmp_path: Path, change: str, file: str, before: str, after: str, caught_by: set[str]
) -> None:
    shutil.copytree(PROMETHEUS / "rules", tmp_path / "rules")
    shutil.copytree(PROMETHEUS / "tests", tmp_path / "tests")
    target = tmp_path / "rules" / file
    rules = target.read_text(encoding="utf-8")
    # Whitespace (line breaks, indentation) in `before` matches any whitespace.
    pattern = re.compile(r"\s+".join(map(re.escape, before.split())))
    assert len(pattern.findall(rules)) == 1, f"{change}: {file} has no single {before!r}"
    target.write_text(pattern.sub(lambda _: after, rules), encoding="utf-8")
    assert promtool("check", "rules", target).returncode == 0, f"{change}: not valid PromQL"
    result = promtool("test", "rules", *sorted((tmp_path / "tests").glob("*.yml")))
    report = result.stdout + result.stderr
    assert result.returncode != 0, f"{change}: promtool's tests still pass"
    assert caught_by <= failed_groups(report), report
