"""Outages: one per failure, however many lessons, bells and polls it spans.

A *classroom outage* opens when the classroom's terminal has been offline for ``classroom_grace``
seconds of one scheduled lesson (counted from the later of the lesson's start and the moment it
went offline, so a panel switched on a minute late is no outage). It stays open across breaks,
大课间 and lunch, and closes when the terminal is back, when the school day ends (the end of the
classroom's last lesson), or when the classroom becomes unknown because its school or access
switch failed (that failure is the one alarm then).

A *school outage* opens when the school has been cut off (uplink down or unreachable, see
``edumon.domain.topology``) for ``school_grace`` seconds and closes when its connectivity is
``ok`` again. It is not tied to lessons: a school cut off at night matters to the NOC.
While the school is *unknown* (its district switch is down) an open outage stays open: unknown
is not a recovery.

Pure: time is passed in; the caller ticks ``update`` every few seconds and exports the state.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from edumon.domain.topology import Connectivity

DEFAULT_CLASSROOM_GRACE_SECONDS = 300.0
DEFAULT_SCHOOL_GRACE_SECONDS = 120.0

RoomStatus = Literal["online", "offline", "unknown"]


class OutageKind(enum.StrEnum):
    SCHOOL = "school"
    CLASSROOM = "classroom"


class CloseReason(enum.StrEnum):
    """Why an outage ended."""

    RESTORED = "restored"
    """The terminal is back online, or the school's connectivity is ok again."""
    DAY_ENDED = "day_ended"
    """The classroom's school day ended with the terminal still off."""
    PARENT_FAILED = "parent_failed"
    """The classroom became unknown: its school or access switch failed."""

    @property
    def label(self) -> str:
        return {
            CloseReason.RESTORED: "已恢复",
            CloseReason.DAY_ENDED: "今日课程结束",
            CloseReason.PARENT_FAILED: "上级故障，状态未知",
        }[self]


@dataclass(frozen=True, slots=True)
class RoomNow:
    """What the tracker needs to know about one classroom at one moment.

    Attributes:
        school: school code.
        classroom: classroom id.
        status: online; offline; or unknown (its school or switch failed).
        offline_since: when the terminal went offline (None: never heard from).
        lesson_start: Unix time the lesson in progress began; None outside lessons.
        lesson: the lesson in progress, e.g. ``第3节 10:20-11:00``.
        day_end: Unix time today's last lesson ends there; None when today has no lessons.
    """

    school: str
    classroom: str
    status: RoomStatus
    offline_since: float | None
    lesson_start: float | None
    lesson: str | None
    day_end: float | None


@dataclass(slots=True)
class Outage:
    """One open or closed outage.

    Attributes:
        started_at: when the failure began (offline in lesson, or first seen cut off).
        opened_at: when the grace ran out and the outage became an alert.
        lesson: the lesson it opened in (classroom outages).
        cause: school connectivity when it opened (school outages), for the message.
    """

    kind: OutageKind
    school: str
    started_at: float
    opened_at: float
    classroom: str | None = None
    lesson: str | None = None
    cause: str | None = None
    closed_at: float | None = None
    close_reason: CloseReason | None = None

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.school, self.classroom)


@dataclass(frozen=True, slots=True)
class Transition:
    """An outage that opened or closed in one ``update``."""

    outage: Outage
    opened: bool


@dataclass(slots=True)
class OutageTracker:
    """Open outages by school and classroom. Not thread-safe; owned by one task."""

    classroom_grace: float = DEFAULT_CLASSROOM_GRACE_SECONDS
    school_grace: float = DEFAULT_SCHOOL_GRACE_SECONDS
    schools: dict[str, Outage] = field(default_factory=dict)
    classrooms: dict[str, Outage] = field(default_factory=dict)
    evaluated_at: float | None = None
    """The ``now`` of the last ``update`` (a controllable clock's tests wait on it)."""
    evaluations: int = 0
    _cut_since: dict[str, float] = field(default_factory=dict)
    opened_total: dict[OutageKind, int] = field(
        default_factory=lambda: dict.fromkeys(OutageKind, 0)
    )

    def update(
        self,
        now: float,
        connectivity: Mapping[str, Connectivity],
        rooms: Iterable[RoomNow],
    ) -> list[Transition]:
        """Open and close outages for the situation at ``now``.

        Args:
            now: Unix seconds.
            connectivity: every school's connectivity now.
            rooms: every classroom with a terminal, as it is now.

        Returns:
            The outages opened or closed, school ones first.
        """
        out = [*self._schools(now, connectivity), *self._rooms(now, rooms)]
        self.evaluated_at = now
        self.evaluations += 1
        return out

    def _schools(self, now: float, connectivity: Mapping[str, Connectivity]) -> list[Transition]:
        out = []
        for school, state in connectivity.items():
            open_ = self.schools.get(school)
            if state.cut_off:
                since = self._cut_since.setdefault(school, now)
                if open_ is None and now - since >= self.school_grace:
                    outage = Outage(OutageKind.SCHOOL, school, since, now, cause=state.value)
                    self.schools[school] = outage
                    self.opened_total[OutageKind.SCHOOL] += 1
                    out.append(Transition(outage, True))
            elif state is Connectivity.OK:
                self._cut_since.pop(school, None)
                if open_ is not None:
                    out.append(self._close(self.schools, school, now, CloseReason.RESTORED))
        return out

    def _rooms(self, now: float, rooms: Iterable[RoomNow]) -> list[Transition]:
        out = []
        for room in rooms:
            open_ = self.classrooms.get(room.classroom)
            if open_ is not None:
                reason = _close_reason(room, now)
                if reason is not None:
                    end = room.day_end if reason is CloseReason.DAY_ENDED and room.day_end else now
                    out.append(self._close(self.classrooms, room.classroom, min(end, now), reason))
                continue
            if room.status != "offline" or room.lesson_start is None:
                continue
            since = max(room.offline_since or room.lesson_start, room.lesson_start)
            if now - since >= self.classroom_grace:
                outage = Outage(
                    OutageKind.CLASSROOM,
                    room.school,
                    since,
                    now,
                    classroom=room.classroom,
                    lesson=room.lesson,
                )
                self.classrooms[room.classroom] = outage
                self.opened_total[OutageKind.CLASSROOM] += 1
                out.append(Transition(outage, True))
        return out

    @staticmethod
    def _close(table: dict[str, Outage], key: str, at: float, reason: CloseReason) -> Transition:
        outage = table.pop(key)
        outage.closed_at = max(at, outage.opened_at)
        outage.close_reason = reason
        return Transition(outage, False)


def _close_reason(room: RoomNow, now: float) -> CloseReason | None:
    if room.status == "online":
        return CloseReason.RESTORED
    if room.status == "unknown":
        return CloseReason.PARENT_FAILED
    if room.day_end is None or now >= room.day_end:
        return CloseReason.DAY_ENDED
    return None
