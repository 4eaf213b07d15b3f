"""Schedule-aware views: the lesson of every classroom, asked once per timetable of a school."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from edumon.domain.schedule import Place, lesson_at
from edumon.views import MemoCalendar, classrooms_now
from tests.fixtures.runtime import TERMINALS_TOML, Clock, build_terminals_runtime, local

# A classroom of school A follows the middle school's timetable (45-minute lessons from 08:00),
# the rest of A the primary one (40 minutes from 08:20): the two disagree at 08:05.
OVERRIDE = """
[[schedule.overrides]]
school = "A"
classrooms = ["A-102"]
timetable = "middle"
"""

MONDAY = date(2026, 11, 30)
SATURDAY = date(2026, 12, 5)


@pytest.mark.parametrize(
    "moment",
    [
        (MONDAY, "08:05"),
        (MONDAY, "08:30"),
        (MONDAY, "12:10"),
        (MONDAY, "21:00"),
        (SATURDAY, "09:00"),
    ],
)
async def test_every_classroom_has_the_lesson_of_its_own_timetable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: tuple[date, str]
) -> None:
    now = local(*moment)
    monkeypatch.setattr("tests.fixtures.runtime.TERMINALS_TOML", TERMINALS_TOML + OVERRIDE)
    runtime = await build_terminals_runtime(tmp_path / "v.db", Clock(now), started_at=now)
    try:
        assert runtime.schedule is not None
        assert runtime.calendar is not None
        rooms = classrooms_now(runtime, now)
        assert [c.room.id for c in rooms] == ["A-101", "A-102", "A-103", "A-104", "B-701", "K-1"]
        calendar = MemoCalendar(runtime.calendar)
        when = datetime.fromtimestamp(now, UTC)
        for c in rooms:
            place = Place(c.school.code, c.school.kind, c.room.id)
            assert c.lesson == lesson_at(runtime.schedule, calendar, place, when), c.room.id
        by_id = {c.room.id: c for c in rooms}
        if moment == (MONDAY, "08:05"):
            assert by_id["A-102"].period is not None  # 中学 timetable: first lesson from 08:00
            assert by_id["A-101"].period is None  # 小学: not before 08:20
    finally:
        await runtime.store.aclose()


async def test_only_the_classrooms_asked_for(tmp_path: Path) -> None:
    now = local(MONDAY, "08:30")
    runtime = await build_terminals_runtime(tmp_path / "v.db", Clock(now), started_at=now)
    try:
        rooms = classrooms_now(runtime, now, only={"A-104", "K-1", "no-such-room"})
        assert [c.room.id for c in rooms] == ["A-104", "K-1"]
        assert [c.room.id for c in classrooms_now(runtime, now, school="B")] == ["B-701"]
        assert classrooms_now(runtime, now, school="no-such-school") == []
    finally:
        await runtime.store.aclose()
