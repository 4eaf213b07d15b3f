"""Schedule-aware views of the district right now, shared by the API, /metrics and outages.

- ``classrooms_now``: each classroom's terminal with the lesson scheduled there now, and whether
  it is behind a failure (its school cut off or its switch down: then it is unknown, not
  offline; docs/topology.md).
- ``local_date`` / ``schedule_timezone``: the date school days are counted by.
- ``MemoCalendar``: the national working calendar asked at most once per date.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo

from edumon.domain.inventory import ClassroomRef, SchoolRef
from edumon.domain.schedule import (
    DEFAULT_TIMEZONE,
    LessonAt,
    Place,
    Schedule,
    Workday,
    WorkingCalendar,
    lesson_at,
    timetable_for,
)
from edumon.domain.terminals import TerminalState
from edumon.domain.topology import Topology, assess
from edumon.runtime import Runtime

TerminalStatus = Literal["online", "offline", "unknown"]
"""``unknown``: offline as far as the collector can tell, but its school's uplink is down."""
OfflineCause = Literal["will", "shutdown", "timeout", "never_seen"]
"""Why a terminal is offline; ``never_seen``: not heard from since the collector started."""

# -- the national calendar, once per date -----------------------------------------------------


class MemoCalendar:
    """A working calendar that asks the wrapped one at most once per date.

    A scrape asks about today once per classroom and a monthly report once per classroom-day;
    the answers cannot change within one request. Make one per request: it never forgets.
    """

    def __init__(self, calendar: WorkingCalendar) -> None:
        self._calendar = calendar
        self._days: dict[date, Workday] = {}

    def workday(self, day: date) -> Workday:
        """See ``WorkingCalendar.workday``."""
        answer = self._days.get(day)
        if answer is None:
            answer = self._days[day] = self._calendar.workday(day)
        return answer


def schedule_timezone(runtime: Runtime) -> tzinfo:
    """The zone school days are counted in (the schedule's, or Beijing time without one)."""
    return runtime.schedule.timezone if runtime.schedule is not None else ZoneInfo(DEFAULT_TIMEZONE)


def local_date(runtime: Runtime, when: float) -> date:
    """The local date at Unix time ``when`` in the schedule's time zone."""
    return datetime.fromtimestamp(when, schedule_timezone(runtime)).date()


def midnight(runtime: Runtime, day: date) -> float:
    """Unix time a local date begins in the schedule's time zone."""
    return datetime.combine(day, time(0), tzinfo=schedule_timezone(runtime)).timestamp()


# -- classrooms right now ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassroomNow:
    """One classroom's terminal at one moment, with the lesson scheduled there.

    Attributes:
        school: the school.
        room: the classroom.
        terminal: its terminal's state (None when the runtime keeps no terminal state).
        unknown_reason: why the classroom cannot be judged now (its school is cut off, or its
            access switch does not answer): its terminal cannot be heard, so an offline one is
            unknown rather than offline (one school or switch alert, not forty). None if it can.
        lesson: the schedule's answer for now; None without a schedule and calendar.
        day_end: Unix time today's last lesson ends in this classroom; None on a day without
            lessons or without a schedule.
    """

    school: SchoolRef
    room: ClassroomRef
    terminal: TerminalState | None
    unknown_reason: str | None
    lesson: LessonAt | None
    day_end: float | None = None

    @property
    def uplink_down(self) -> bool:
        """The classroom is behind a failure (its school cut off or its switch down)."""
        return self.unknown_reason is not None

    @property
    def online(self) -> bool:
        return self.terminal is not None and self.terminal.online is True

    @property
    def stale(self) -> bool:
        """The collector cannot know the terminal's state now: it was blind (its broker link
        was down, docs/wire-protocol.md) and has not heard from the terminal since."""
        return self.terminal is not None and self.terminal.unknown_since is not None

    @property
    def status(self) -> TerminalStatus:
        if self.stale:
            return "unknown"
        if self.online:
            return "online"
        return "unknown" if self.uplink_down else "offline"

    @property
    def offline_reason(self) -> OfflineCause | None:
        """Why the terminal is not online (also while the uplink is down); None when online."""
        if self.online:
            return None
        st = self.terminal
        if st is None or st.online is None or st.offline_reason is None:
            return "never_seen"
        return st.offline_reason

    @property
    def since(self) -> float | None:
        """When the terminal went online or offline; None if never heard from."""
        st = self.terminal
        if st is None:
            return None
        return st.online_since if st.online else st.offline_since

    @property
    def expected_online(self) -> bool | None:
        """A lesson is scheduled now; None without a schedule."""
        return None if self.lesson is None else self.lesson.scheduled

    @property
    def offline_in_lesson(self) -> bool | None:
        """Offline while a lesson is scheduled (what alerts); never while the uplink is down."""
        expected = self.expected_online
        return None if expected is None else expected and self.status == "offline"

    @property
    def period(self) -> str | None:
        """The lesson in progress, e.g. ``第3节 10:20-11:00``."""
        period = self.lesson.period if self.lesson is not None else None
        return None if period is None else str(period)

    @property
    def lesson_start(self) -> float | None:
        """Unix time the lesson in progress began; None outside lessons."""
        if self.lesson is None or self.lesson.period is None:
            return None
        local = self.lesson.when
        return datetime.combine(local.date(), self.lesson.period.start, local.tzinfo).timestamp()


def _day_end(lesson: LessonAt, schedule: Schedule, place: Place) -> float | None:
    if not lesson.day.is_school_day:
        return None
    periods = timetable_for(schedule, place).periods
    if not periods:
        return None
    local = lesson.when
    return datetime.combine(local.date(), periods[-1].end, local.tzinfo).timestamp()


def school_lessons(
    runtime: Runtime, ref: SchoolRef, when: datetime, calendar: WorkingCalendar | None
) -> list[tuple[LessonAt | None, float | None]]:
    """Each classroom's lesson at ``when`` and the end of its school day (None, None without
    a schedule), in classroom order."""
    schedule = runtime.schedule
    if schedule is None or calendar is None:
        return [(None, None)] * len(ref.classrooms)
    # The lesson depends on the school's day and the classroom's timetable: asked once per
    # timetable of the school, not per classroom (a city has 40 classrooms per school).
    by_timetable: dict[str, tuple[LessonAt | None, float | None]] = {}
    out: list[tuple[LessonAt | None, float | None]] = []
    for room in ref.classrooms:
        place = Place(ref.code, ref.kind, room.id)
        name = timetable_for(schedule, place).name
        known = by_timetable.get(name)
        if known is None:
            first = lesson_at(schedule, calendar, place, when)
            known = by_timetable[name] = (first, _day_end(first, schedule, place))
        out.append(known)
    return out


def school_classrooms(
    runtime: Runtime,
    ref: SchoolRef,
    when: datetime,
    calendar: WorkingCalendar | None,
    topo: Topology,
    lessons: Sequence[tuple[LessonAt | None, float | None]] | None = None,
    *,
    only: Collection[str] | None = None,
) -> list[ClassroomNow]:
    """One school's classrooms at ``when`` (``lessons``: from ``school_lessons``, if known;
    ``only``: only these classrooms)."""
    terminals = runtime.terminals
    if lessons is None:
        lessons = school_lessons(runtime, ref, when, calendar)
    out = []
    for room, (lesson, day_end) in zip(ref.classrooms, lessons, strict=True):
        if only is not None and room.id not in only:
            continue
        st = terminals.of_classroom(room.id) if terminals is not None else None
        why = topo.classroom_unknown(ref.code, room.switch)
        out.append(ClassroomNow(ref, room, st, why, lesson, day_end))
    return out


def classrooms_now(
    runtime: Runtime,
    now: float,
    *,
    school: str | None = None,
    topology: Topology | None = None,
    only: Collection[str] | None = None,
) -> list[ClassroomNow]:
    """Every classroom (of one school, or all) with its terminal and the lesson at ``now``.

    Args:
        runtime: the daemon's parts; read only.
        now: the moment (Unix seconds).
        school: only this school's classrooms; then only its part of the district is read.
        topology: the parent-failure view to use (computed from the state when not given).
        only: only these classrooms (ids).
    """
    calendar = MemoCalendar(runtime.calendar) if runtime.calendar is not None else None
    when = datetime.fromtimestamp(now, UTC)
    inventory = runtime.state.inventory
    if school is not None:
        ref = inventory.schools.get(school)
        if ref is None:
            return []
        topo = topology if topology is not None else school_topology(runtime, ref)
        return school_classrooms(runtime, ref, when, calendar, topo, only=only)
    topo = topology if topology is not None else assess(runtime.state)
    out = []
    for ref in inventory.schools.values():
        out.extend(school_classrooms(runtime, ref, when, calendar, topo, only=only))
    return out


def school_switches(
    runtime: Runtime, ref: SchoolRef, own: Collection[str] | None = None
) -> tuple[str, ...]:
    """The switches a school's page lists: its own, its uplink switch and its classrooms'.

    Args:
        runtime: the daemon's parts; read only.
        ref: the school.
        own: the switches configured for the school, if already known (else found by a pass
            over every switch).
    """
    if own is None:
        ids = {sid for sid, sw in runtime.config.switches.items() if sw.school == ref.code}
        inventory = runtime.state.inventory
        ids.update(d for d, code in inventory.switch_school.items() if code == ref.code)
    else:
        ids = set(own)
    ids.add(ref.uplink_switch)
    ids.update(r.switch for r in ref.classrooms if r.switch is not None)
    return tuple(sorted(ids))


def school_topology(
    runtime: Runtime, ref: SchoolRef, switches: tuple[str, ...] | None = None
) -> Topology:
    """The parent-failure view of one school: its link, its switches and those above them."""
    devices = switches if switches is not None else school_switches(runtime, ref)
    return assess(runtime.state, schools=(ref.code,), devices=devices)


def terminal_speeds(runtime: Runtime, school: str | None = None) -> dict[str, float | None]:
    """Each classroom's terminal NIC speed (Mbit/s), for classrooms without a switch port.

    Args:
        runtime: the daemon's parts; read only.
        school: only this school's classrooms.
    """
    terminals = runtime.terminals
    if terminals is None:
        return {}
    schools = runtime.state.inventory.schools
    refs = (
        list(schools.values())
        if school is None
        else ([schools[school]] if school in schools else [])
    )
    return {
        room.id: terminals.classroom_link_speed(room.id) for ref in refs for room in ref.classrooms
    }
