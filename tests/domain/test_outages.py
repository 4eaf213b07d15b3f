"""Outages: one per failure, across breaks and lunch, closed when restored or the day ends."""

from __future__ import annotations

import pytest

from edumon.domain.outages import CloseReason, OutageTracker, RoomNow, RoomStatus
from edumon.domain.topology import Connectivity

MIN = 60.0
# A day of two lessons before lunch and one after (minutes since 08:00 = 0).
LESSONS = ((0, 45), (55, 100), (240, 285))
DAY_END = 285 * MIN


def room(at_min: float, status: RoomStatus, offline_since_min: float | None = None) -> RoomNow:
    lesson = next(((s, e) for s, e in LESSONS if s <= at_min < e), None)
    return RoomNow(
        school="S",
        classroom="S-1",
        status=status,
        offline_since=None if offline_since_min is None else offline_since_min * MIN,
        lesson_start=None if lesson is None else lesson[0] * MIN,
        lesson=None if lesson is None else f"第{LESSONS.index(lesson) + 1}节",
        day_end=DAY_END,
    )


def run(timeline: list[tuple[float, RoomStatus, float | None]]) -> list[tuple[float, bool, str]]:
    """Tick each minute of the timeline; return (minute, opened, reason) transitions."""
    tracker = OutageTracker(classroom_grace=5 * MIN)
    out = []
    for minute, status, since in timeline:
        for t in tracker.update(
            minute * MIN, {"S": Connectivity.OK}, [room(minute, status, since)]
        ):
            reason = "" if t.opened else str(t.outage.close_reason)
            out.append((minute, t.opened, reason))
    return out


def minutes(
    start: float, end: float, status: RoomStatus, since: float | None
) -> list[tuple[float, RoomStatus, float | None]]:
    return [(m, status, since) for m in range(int(start), int(end))]


@pytest.mark.parametrize(
    ("timeline", "expected"),
    [
        # Off from before the first lesson all day: one outage, 5 min into the lesson, closed
        # when the school day ends (not at the bell, not at lunch).
        (minutes(-30, 300, "offline", -30.0), [(5, True, ""), (285, False, "day_ended")]),
        # Switched on 3 minutes late: no outage.
        (minutes(0, 3, "offline", -30.0) + minutes(3, 300, "online", None), []),
        # Goes off 2 minutes before the first bell: the grace restarts with the next lesson.
        (
            minutes(0, 43, "online", None) + minutes(43, 200, "offline", 43.0),
            [(60, True, "")],
        ),
        # Back after lunch: the outage spans the breaks and ends when it is back.
        (
            minutes(0, 10, "offline", -1.0)
            + minutes(10, 250, "offline", -1.0)
            + minutes(250, 260, "online", None),
            [(5, True, ""), (250, False, "restored")],
        ),
        # The school is cut off meanwhile: the classroom becomes unknown, its outage ends.
        (
            minutes(0, 20, "offline", -1.0) + minutes(20, 30, "unknown", -1.0),
            [(5, True, ""), (20, False, "parent_failed")],
        ),
        # Offline only during breaks and lunch: never an outage.
        (minutes(100, 240, "offline", 100.0), []),
    ],
)
def test_classroom_outage_is_one_per_failure(
    timeline: list[tuple[float, RoomStatus, float | None]], expected: list[tuple[float, bool, str]]
) -> None:
    assert run(timeline) == expected


def test_outage_remembers_when_and_in_which_lesson_it_began() -> None:
    tracker = OutageTracker(classroom_grace=5 * MIN)
    for minute in range(56, 62):
        tracker.update(minute * MIN, {"S": Connectivity.OK}, [room(minute, "offline", 50.0)])
    outage = tracker.classrooms["S-1"]
    assert (outage.started_at, outage.opened_at, outage.lesson) == (55 * MIN, 60 * MIN, "第2节")


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        # A lost poll is not an outage.
        (["ok", "unreachable", "ok"], []),
        # Cut off for the grace: one outage from the first failure, even when the state
        # flips between uplink_down and unreachable; unknown is not a recovery.
        (
            ["ok", "unreachable", "unreachable", "uplink_down", "unknown", "unreachable", "ok"],
            [(2, True, 1), (6, False, 1)],
        ),
        (["uplink_down"] * 3, [(1, True, 0)]),
    ],
)
def test_school_outage_opens_after_grace_and_ends_when_ok(
    states: list[str], expected: list[tuple[int, bool, int]]
) -> None:
    tracker = OutageTracker(school_grace=1 * MIN)
    got = []
    for minute, state in enumerate(states):
        for t in tracker.update(minute * MIN, {"S": Connectivity(state)}, []):
            got.append((minute, t.opened, int(t.outage.started_at // MIN)))
            if not t.opened:
                assert t.outage.close_reason is CloseReason.RESTORED
    assert got == expected
    assert tracker.evaluated_at == (len(states) - 1) * MIN
