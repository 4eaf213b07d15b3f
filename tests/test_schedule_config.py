"""The [schedule] configuration section: defaults, merging with built-ins, strict validation."""

from __future__ import annotations

import inspect
import textwrap
import tomllib
from datetime import date, time
from typing import Any, get_args

import pytest
from pydantic import ValidationError

import edumon.schedule_config as schedule_config
from edumon.config import SchoolConfig
from edumon.schedule_config import ScheduleConfig, SchoolKind


def parse(text: str) -> ScheduleConfig:
    return ScheduleConfig.model_validate(tomllib.loads(text).get("schedule", {}))


def test_the_documented_example_is_valid() -> None:
    doc = inspect.getdoc(schedule_config) or ""
    example = textwrap.dedent(doc.split("Example::", 1)[1])
    section = parse(example)
    schedule = section.schedule()
    assert schedule.kind_timetables["high"] == "senior"
    assert schedule.overrides[("JY01", "JY01-701")] == "middle"
    assert schedule.overrides[("JY01", "JY01-801")] == "middle"
    assert ("JY01", None) not in schedule.overrides
    assert [t.name for t in schedule.terms] == ["2026秋季学期"]
    (sports,) = schedule.no_lesson_days
    assert (sports.start, sports.end, sports.schools) == (
        date(2026, 11, 12),
        date(2026, 11, 13),
        frozenset({"YZ01"}),
    )
    (makeup,) = schedule.lesson_days
    assert makeup.start == makeup.end == date(2026, 12, 19)
    assert schedule.timetables["senior"].periods[-1].start == time(19, 0)


def test_an_absent_section_gives_the_reference_county_defaults() -> None:
    section = parse("")
    assert set(section.timetables) == {"primary", "middle", "none"}
    assert section.defaults["primary"] == "primary"
    assert section.defaults["middle"] == "middle"
    assert section.defaults["kindergarten"] == "none"
    assert section.schedule().timetables["none"].periods == ()


def test_timetables_and_defaults_merge_onto_the_built_ins() -> None:
    section = parse(
        """
        [schedule.timetables.senior]
        periods = [{ start = "07:40", end = "08:25" }]
        [schedule.timetables.primary]
        periods = [{ start = "08:30", end = "09:10" }]
        [schedule.defaults]
        high = "senior"
        """
    )
    schedule = section.schedule()
    assert set(schedule.timetables) == {"primary", "middle", "none", "senior"}
    assert schedule.timetables["primary"].periods[0].start == time(8, 30)  # replaced
    assert len(schedule.timetables["middle"].periods) == 8  # kept
    assert schedule.kind_timetables["high"] == "senior"
    assert schedule.kind_timetables["vocational"] == "middle"  # kept


def test_toml_local_times_are_accepted() -> None:
    section = parse('[schedule.timetables.t]\nperiods = [{ start = 08:00:00, end = "8:40" }]')
    assert section.schedule().timetables["t"].periods[0].minutes == 40


def test_dates_may_be_quoted() -> None:
    section = parse('[[schedule.terms]]\nname = "t"\nstart = "2026-09-01"\nend = 2027-01-22')
    assert section.schedule().terms[0].start == date(2026, 9, 1)


def test_school_kinds_match_the_school_table() -> None:
    # The [schedule.defaults] keys are the kinds a [[schools]] entry may have.
    annotation: Any = SchoolConfig.model_fields["kind"].annotation
    assert set(get_args(annotation)) == set(get_args(SchoolKind))


ERRORS = [
    # id, TOML, where pydantic puts the error, words of the message
    ("unknown key", "[schedule]\ntimezon = 'Asia/Shanghai'", ("timezon",), "Extra inputs"),
    (
        "unknown time zone",
        "[schedule]\ntimezone = 'Asia/Beijing'",
        ("timezone",),
        "unknown time zone",
    ),
    (
        "time not HH:MM",
        '[schedule.timetables.t]\nperiods = [{ start = "8h00", end = "08:40" }]',
        ("timetables", "t", "periods", 0, "start"),
        '"8h00" is not a time of day',
    ),
    (
        "time with seconds",
        '[schedule.timetables.t]\nperiods = [{ start = 08:00:30, end = "08:40" }]',
        ("timetables", "t", "periods", 0, "start"),
        "HH:MM",
    ),
    (
        "period ends before it starts",
        '[schedule.timetables.t]\nperiods = [{ start = "08:40", end = "08:00" }]',
        ("timetables", "t", "periods", 0),
        "end 08:00 must be after start 08:40",
    ),
    (
        "overlapping periods",
        '[schedule.timetables.t]\nperiods = [{ start = "08:00", end = "08:45" },'
        ' { start = "08:40", end = "09:20" }]',
        ("timetables", "t"),
        "period 2 (08:40-09:20) starts before period 1 (08:00-08:45) ends",
    ),
    (
        "unknown key in a period",
        '[schedule.timetables.t]\nperiods = [{ start = "08:00", end = "08:45", name = "1" }]',
        ("timetables", "t", "periods", 0, "name"),
        "Extra inputs",
    ),
    (
        "terms out of order",
        "[[schedule.terms]]\nname = '2026秋季学期'\nstart = 2026-09-01\nend = 2027-01-22\n"
        "[[schedule.terms]]\nname = '2026春季学期'\nstart = 2026-03-02\nend = 2026-07-10",
        ("terms",),
        "terms[1] (2026春季学期) starts on 2026-03-02, before terms[0]",
    ),
    (
        "overlapping terms",
        "[[schedule.terms]]\nname = 'a'\nstart = 2026-03-02\nend = 2026-09-10\n"
        "[[schedule.terms]]\nname = 'b'\nstart = 2026-09-01\nend = 2027-01-22",
        ("terms",),
        "without overlaps",
    ),
    (
        "term ends before it starts",
        "[[schedule.terms]]\nname = 'a'\nstart = 2026-09-01\nend = 2026-01-22",
        ("terms", 0),
        "end 2026-01-22 is before start 2026-09-01",
    ),
    (
        "date as a number",
        "[[schedule.terms]]\nname = 'a'\nstart = 20260901\nend = 2027-01-22",
        ("terms", 0, "start"),
        "YYYY-MM-DD",
    ),
    (
        "date with a time",
        "[[schedule.terms]]\nname = 'a'\nstart = 2026-09-01T08:00:00\nend = 2027-01-22",
        ("terms", 0, "start"),
        "without a time of day",
    ),
    (
        "default names no timetable",
        "[schedule.defaults]\nhigh = 'senior'",
        (),
        "defaults.high: no timetable 'senior'",
    ),
    (
        "default for an unknown kind",
        "[schedule.defaults]\nuniversity = 'middle'",
        ("defaults", "university", "[key]"),
        "Input should be",
    ),
    (
        "override names no timetable",
        "[[schedule.overrides]]\nschool = 'YZ01'\ntimetable = 'senior'",
        (),
        "overrides[0].timetable: no timetable 'senior'",
    ),
    (
        "school overridden twice",
        "[[schedule.overrides]]\nschool = 'YZ01'\ntimetable = 'middle'\n"
        "[[schedule.overrides]]\nschool = 'YZ01'\ntimetable = 'primary'",
        (),
        "overrides[1]: YZ01 is already overridden by overrides[0]",
    ),
    (
        "classroom overridden twice",
        "[[schedule.overrides]]\nschool = 'JY01'\nclassrooms = ['JY01-701']\ntimetable = 'middle'\n"
        "[[schedule.overrides]]\nschool = 'JY01'\nclassrooms = ['JY01-701']\ntimetable = 'none'",
        (),
        "JY01 JY01-701 is already overridden",
    ),
    (
        "lesson and no-lesson on the same day",
        "[[schedule.no_lesson_days]]\nstart = 2026-12-07\nend = 2026-12-09\n"
        "[[schedule.lesson_days]]\nstart = 2026-12-08\nschools = ['YZ01']",
        (),
        "lesson_days[0] and no_lesson_days[0]",
    ),
    (
        "days end before they start",
        "[[schedule.no_lesson_days]]\nstart = 2026-12-07\nend = 2026-12-01",
        ("no_lesson_days", 0),
        "is before start",
    ),
]


@pytest.mark.parametrize(
    ("text", "loc", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_invalid_sections_are_refused_naming_the_key(
    text: str, loc: tuple[str | int, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse(text)
    (error,) = caught.value.errors()
    assert error["loc"] == loc
    assert message in error["msg"]


def test_lesson_and_no_lesson_days_for_different_schools_may_share_a_date() -> None:
    section = parse(
        "[[schedule.no_lesson_days]]\nstart = 2026-11-12\nschools = ['YZ01']\n"
        "[[schedule.lesson_days]]\nstart = 2026-11-12\nschools = ['CG01']"
    )
    schedule = section.schedule()
    assert schedule.no_lesson_days[0].applies(date(2026, 11, 12), "YZ01")
    assert not schedule.no_lesson_days[0].applies(date(2026, 11, 12), "CG01")


def test_unknown_schools_and_classrooms_are_reported() -> None:
    section = parse(
        """
        [[schedule.overrides]]
        school = "YZ09"
        timetable = "middle"
        [[schedule.overrides]]
        school = "JY01"
        classrooms = ["JY01-701", "JY01-999"]
        timetable = "middle"
        [[schedule.no_lesson_days]]
        start = 2026-11-12
        schools = ["YZ01", "ZZ00"]
        [[schedule.lesson_days]]
        start = 2026-12-12
        schools = ["QQ01"]
        """
    )
    problems = section.unknown_references({"YZ01": {"YZ01-701"}, "JY01": {"JY01-701"}})
    assert problems == [
        "schedule.overrides[0].school: no school with code YZ09",
        "schedule.overrides[1].classrooms: school JY01 has no classroom JY01-999",
        "schedule.lesson_days[0].schools: no school with code QQ01",
        "schedule.no_lesson_days[0].schools: no school with code ZZ00",
    ]
    assert parse("").unknown_references({}) == []


def test_section_is_frozen() -> None:
    section = parse("")
    with pytest.raises(ValidationError):
        section.timezone = "UTC"  # type: ignore[misc]
