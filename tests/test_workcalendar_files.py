"""Arrangement files: the rules they must follow, errors that name file, line and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edumon.config import parse_config
from edumon.errors import ConfigError
from edumon.schedule_config import ScheduleConfig
from edumon.workcalendar import (
    SHIPPED_DIR,
    ArrangementError,
    check_directory,
    parse_arrangement,
)

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
year = 2027
title = "国务院办公厅关于2027年部分节假日安排的通知"
published = 2026-12-10

[[holidays]]
name = "元旦"
start = 2027-01-01
end = 2027-01-03

[[holidays]]
name = "春节"
start = 2027-02-05
end = 2027-02-13
makeup_workdays = [2027-01-30, 2027-02-20]
"""


def problems_of(text: str, year: int | None = 2027) -> list[str]:
    with pytest.raises(ArrangementError) as info:
        parse_arrangement(text, where="2027.toml", year=year)
    return list(info.value.problems)


def test_a_good_file() -> None:
    arrangement = parse_arrangement(GOOD, where="2027.toml", year=2027)
    assert (arrangement.year, arrangement.published.isoformat()) == (2027, "2026-12-10")
    assert [h.name for h in arrangement.holidays] == ["元旦", "春节"]
    entries = {day.isoformat(): (workday, name) for day, workday, name in arrangement.entries()}
    assert entries["2027-02-20"] == (True, "春节")
    assert entries["2027-01-02"] == (False, "元旦")
    assert len(entries) == 3 + 9 + 2


def test_end_may_be_left_out_for_one_day() -> None:
    text = GOOD.replace("end = 2027-01-03\n", "")
    arrangement = parse_arrangement(text, where="2027.toml")
    assert arrangement.holidays[0].end == arrangement.holidays[0].start


def test_the_new_year_may_start_in_december() -> None:
    # 2019's notice: 元旦 from 2018-12-30, and 2018-12-29 (a Saturday) worked.
    text = GOOD.replace("start = 2027-01-01", "start = 2026-12-31").replace(
        "end = 2027-01-03\n", "end = 2027-01-02\nmakeup_workdays = [2026-12-26]\n"
    )
    parse_arrangement(text, where="2027.toml", year=2027)


CASES = [
    # id, replace this, with this, (a problem's start FILE:LINE: KEY: , and a part of the rest)
    (
        "unknown top-level key",
        "title =",
        "titel =",
        ("2027.toml:2: titel: ", "未知的键 / unknown key"),
    ),
    (
        "unknown key in a holiday",
        "makeup_workdays =",
        "makeup_days =",
        ("2027.toml:14: holidays[1].makeup_days: ", "unknown key"),
    ),
    (
        "missing title",
        'title = "国务院办公厅关于2027年部分节假日安排的通知"\n',
        "",
        ("2027.toml: title: ", "缺少必填的键 / required key is missing"),
    ),
    (
        "no holidays",
        GOOD[GOOD.index("[[holidays]]") :],
        "holidays = []\n",
        ("2027.toml:5: holidays: ", "no holidays listed"),
    ),
    (
        "a date in another year",
        "end = 2027-02-13",
        "end = 2028-02-13",
        ("2027.toml:13: holidays[1].end: ", "2028-02-13 is not in 2027"),
    ),
    (
        "more than a week into next year",
        "start = 2027-01-01",
        "start = 2026-12-20",
        ("2027.toml:7: holidays[0].start: ", "2026-12-20 不在2027年内"),
    ),
    (
        "a make-up day on a weekday",
        "2027-01-30, 2027-02-20",
        "2027-01-29, 2027-02-20",
        (
            "2027.toml:14: holidays[1].makeup_workdays: ",
            "2027-01-29 是周五，本来就是工作日；调休上班日是周六或周日 / 2027-01-29 is a Friday",
        ),
    ),
    (
        "both holiday and make-up day",
        "2027-01-30, 2027-02-20",
        "2027-02-06, 2027-02-20",
        (
            "2027.toml:14: holidays[1].makeup_workdays: ",
            "2027-02-06 is both a holiday (春节) and a make-up working day",
        ),
    ),
    (
        "a make-up day listed twice",
        "2027-01-30, 2027-02-20",
        "2027-01-30, 2027-01-30",
        ("2027.toml:14: holidays[1].makeup_workdays: ", "2027-01-30 is listed twice"),
    ),
    (
        "end before start",
        "end = 2027-01-03",
        "end = 2026-12-31",
        ("2027.toml:8: holidays[0].end: ", "end 2026-12-31 is before start 2027-01-01"),
    ),
    (
        "overlapping holidays",
        "start = 2027-02-05\nend = 2027-02-13",
        "start = 2027-01-03\nend = 2027-01-05",
        (
            "2027.toml:12: holidays[1].start: ",
            "春节 (2027-01-03 to 2027-01-05) overlaps holidays[0] (元旦) on 2027-01-03",
        ),
    ),
    (
        "a date with a time of day",
        "published = 2026-12-10",
        "published = 2026-12-10T10:00:00",
        ("2027.toml:3: published: ", "write a date without a time of day"),
    ),
    (
        "a date as text",
        "published = 2026-12-10",
        'published = "十二月"',
        ("2027.toml:3: published: ", ""),
    ),
    (
        "empty name",
        'name = "元旦"',
        'name = ""',
        ("2027.toml:6: holidays[0].name: ", "String should"),
    ),
    (
        "year of the file name",
        "year = 2027",
        "year = 2026",
        ("2027.toml:1: year: ", "文件名是 2027.toml，但 year = 2026"),
    ),
    ("not TOML", "[[holidays]]\nname", "[[holidays]\nname", ("2027.toml: not valid TOML", "")),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_problems_name_file_line_and_key(old: str, new: str, expected: tuple[str, str]) -> None:
    assert old in GOOD
    problems = problems_of(GOOD.replace(old, new, 1))
    start, part = expected
    assert any(p.startswith(start) and part in p for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    text = GOOD.replace("2027-01-30, 2027-02-20", "2027-02-01, 2027-02-06").replace(
        "title =", "titel ="
    )
    # The file's shape first (the rules need a parsed file): the misspelt key, and so a missing one.
    assert len(problems_of(text)) == 2
    text = GOOD.replace("2027-01-30, 2027-02-20", "2027-02-01, 2027-02-06")
    assert len(problems_of(text)) == 2


def test_the_shipped_files_are_valid() -> None:
    scan = check_directory(SHIPPED_DIR)
    assert scan.problems == ()
    assert {2025, 2026} <= set(scan.arrangements)
    for year, arrangement in scan.arrangements.items():
        assert arrangement.title == f"国务院办公厅关于{year}年部分节假日安排的通知"


def test_directory_problems(tmp_path: Path) -> None:
    missing = check_directory(tmp_path / "nowhere")
    assert "does not exist" in missing.problems[0]
    (tmp_path / "calendar").mkdir()
    (tmp_path / "calendar" / "README.txt").write_text("notes", encoding="utf-8")
    (tmp_path / "calendar" / "2027.toml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "calendar" / "next-year.toml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "calendar" / "2028.toml").write_bytes("year = 2028 # 二〇二八\n".encode("gbk"))
    scan = check_directory(tmp_path / "calendar")
    assert set(scan.arrangements) == {2027}
    assert len(scan.problems) == 2, scan.problems
    assert any("2028.toml: the file is not UTF-8" in p for p in scan.problems)
    assert any("next-year.toml: name an arrangement file after" in p for p in scan.problems)


# -- edumon check-config ------------------------------------------------------------------------

CONFIG = """\
[district]
code = "t"
name = "测试县"

[[switches]]
id = "core"
host = "127.0.0.1"
snmp = {{ version = "2c", community = "s3cret-community" }}

[[schools]]
code = "S1"
name = "第一小学"
kind = "primary"
uplink = {{ switch = "core", port = "Gi0/1" }}

[schedule]
calendar_dir = "{calendar_dir}"
"""


def check_config(config_file: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edumon", "check-config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def test_check_config_reads_a_relative_calendar_dir(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "calendar").mkdir(parents=True)
    (etc / "calendar" / "2027.toml").write_text(GOOD, encoding="utf-8")
    config_file = etc / "edumon.toml"
    config_file.write_text(CONFIG.format(calendar_dir="calendar"), encoding="utf-8")
    result = check_config(config_file, cwd=tmp_path)  # relative to the file, not the cwd
    assert result.returncode == 0, result.stderr
    assert f"2027 {etc / 'calendar' / '2027.toml'}" in result.stdout
    assert "2026 shipped" in result.stdout


def test_check_config_rejects_a_bad_arrangement(tmp_path: Path) -> None:
    (tmp_path / "calendar").mkdir()
    bad = GOOD.replace("2027-01-30, 2027-02-20", "2027-02-01, 2027-02-20")
    (tmp_path / "calendar" / "2027.toml").write_text(bad, encoding="utf-8")
    config_file = tmp_path / "edumon.toml"
    config_file.write_text(CONFIG.format(calendar_dir=tmp_path / "calendar"), encoding="utf-8")
    result = check_config(config_file, cwd=ROOT)
    assert result.returncode == 2
    expected = f"{tmp_path / 'calendar' / '2027.toml'}:14: holidays[1].makeup_workdays: 2027-02-01"
    assert expected in result.stderr
    assert "OK" not in result.stdout
    assert "s3cret-community" not in result.stdout + result.stderr


def test_check_config_rejects_a_missing_calendar_dir(tmp_path: Path) -> None:
    config_file = tmp_path / "edumon.toml"
    config_file.write_text(CONFIG.format(calendar_dir="calendar"), encoding="utf-8")
    result = check_config(config_file, cwd=ROOT)
    assert result.returncode == 2
    assert f"{tmp_path / 'calendar'}: the calendar directory does not exist" in result.stderr


def test_check_config_without_calendar_dir_still_says_what_is_covered() -> None:
    result = check_config(ROOT / "config.example.toml", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "2026 shipped" in result.stdout


def test_the_readme_example_is_the_shipped_2026_file() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### 工作日历 / Working calendar") :]
    example = section[section.index("```toml\n") + 8 : section.index("```\n", 8)]
    documented = parse_arrangement(example, where="README.md", year=2026)
    shipped = check_directory(SHIPPED_DIR).arrangements[2026]
    assert sorted(documented.entries()) == sorted(shipped.entries())
    assert (documented.title, documented.published) == (shipped.title, shipped.published)


@pytest.mark.parametrize(
    ("value", "config_file", "expected"),
    [
        (None, Path("/etc/edumon/edumon.toml"), None),
        ("/srv/calendar", Path("/etc/edumon/edumon.toml"), Path("/srv/calendar")),
        ("calendar", Path("/etc/edumon/edumon.toml"), Path("/etc/edumon/calendar")),
        ("calendar", None, Path("calendar")),  # parsed from text: the working directory
    ],
)
def test_calendar_dir_is_relative_to_the_config_file(
    value: str | None, config_file: Path | None, expected: Path | None
) -> None:
    section = ScheduleConfig() if value is None else ScheduleConfig(calendar_dir=value)
    assert section.calendar_path(config_file) == expected


def test_an_empty_calendar_dir_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"schedule\.calendar_dir: String should have at least"):
        parse_config(CONFIG.format(calendar_dir=""), where="edumon.toml")
