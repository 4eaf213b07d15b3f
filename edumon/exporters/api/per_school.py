"""Each school's compliance, connectivity and classrooms, computed per school and cached.

What a request costs (docs/architecture.md, "Readers and hot paths"):

- a school's page reads only its school: its switches and those above them (the uplink's
  district switch, a core's parent), its classrooms and its terminals;
- a district page (/summary, /schools, /compliance, the totals of /terminals) assembles the
  per-school results. A school's result is kept with a *change key* and recomputed only when
  the key differs:

  - the number of polls applied to each switch the school depends on (every poll result goes
    through ``NetworkState.apply``, which counts it; so a changed port, a reboot or an
    unreachable switch all change the sum);
  - each of its terminals' online flag and the NIC speed a classroom without a switch port is
    judged by (a heartbeat that changes neither leaves the school's figures as they were);
  - the lesson state of its timetables: the local date, whether it is a school day and the
    period in progress of each timetable its classrooms follow.

  Checking a key reads a few integers per switch and a flag per terminal, no strings, no
  pydantic; a school is recomputed when it changed (about once a poll cycle), never on a
  request that finds it unchanged.

Everything is read on the event loop that owns the state, between awaits: a result is a
consistent snapshot of its school.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import NamedTuple

from edumon.domain.checks import CheckName, SchoolCompliance, Verdict, check_school
from edumon.domain.inventory import SchoolRef
from edumon.domain.schedule import (
    LessonAt,
    Period,
    Place,
    SchoolDay,
    Timetable,
    school_day,
    timetable_for,
)
from edumon.domain.state import DeviceState
from edumon.domain.terminals import TerminalState
from edumon.domain.topology import SchoolLink, Topology, parent_of
from edumon.runtime import Runtime
from edumon.views import (
    ClassroomNow,
    MemoCalendar,
    school_classrooms,
    school_lessons,
    school_switches,
    school_topology,
    terminal_speeds,
)


@dataclass(frozen=True, slots=True)
class TerminalTally:
    """A school's terminals by status now (what /terminals counts)."""

    total: int = 0
    online: int = 0
    offline: int = 0
    unknown: int = 0
    offline_in_lesson: int = 0

    def matching(self, status: str | None) -> int:
        """How many terminals have this status (all for None)."""
        if status is None:
            return self.total
        count: int = getattr(self, status)
        return count


@dataclass(frozen=True, slots=True)
class SchoolNow:
    """One school's derived state at one change key.

    Attributes:
        ref: the school.
        switches: the switches its page lists (own, uplink switch, classrooms').
        topology: the parent-failure view of its switches and the ones above them.
        compliance: its checks.
        classrooms: each classroom with its terminal and lesson.
        terminals: its classrooms with a terminal, counted by status.
        key: the change key it was computed at.
    """

    ref: SchoolRef
    switches: tuple[str, ...]
    topology: Topology
    compliance: SchoolCompliance
    classrooms: tuple[ClassroomNow, ...]
    terminals: TerminalTally
    key: _Key
    checks: Mapping[tuple[Verdict, CheckName], int]
    """How many of its check results have each (verdict, check)."""
    not_online: tuple[tuple[ClassroomNow, ...], tuple[ClassroomNow, ...]]
    """Its classrooms whose terminal is not online: in a lesson now, and outside lessons."""

    def count(self, verdict: Verdict | None = None, check: CheckName | None = None) -> int:
        """How many of its check results match (None matches all)."""
        return sum(
            n
            for (v, c), n in self.checks.items()
            if (verdict is None or v is verdict) and (check is None or c is check)
        )

    @property
    def link(self) -> SchoolLink:
        return self.topology.schools[self.ref.code]

    @property
    def classrooms_failing(self) -> int:
        return sum(1 for r in self.compliance.classrooms if r.verdict is Verdict.FAIL)


@dataclass(frozen=True, slots=True)
class _Static:
    """What does not change while the daemon runs: a school's switches and timetables."""

    ref: SchoolRef
    switches: tuple[str, ...]
    watched: tuple[str, ...]
    """Its switches and every switch their condition depends on."""
    devices: tuple[DeviceState, ...]
    """The watched switches' states (live objects: NetworkState never replaces one)."""
    missing: tuple[str, ...]
    """Watched switches without a state yet (looked up again on every key)."""
    terminals: tuple[TerminalState, ...]
    """The classrooms' terminal states (live objects, never replaced), in classroom order."""
    unmapped: tuple[TerminalState, ...]
    """The terminals of classrooms without a switch port (judged by their NIC's speed)."""
    timetables: tuple[Timetable, ...]


_POLLS_OK = attrgetter("polls_ok")
_POLLS_FAILED = attrgetter("polls_failed")
_ONLINE = attrgetter("online")
_SPEEDS = attrgetter("link_speed_mbps", "last_link_speed_mbps")


class _Key(NamedTuple):
    """A school's change key: when any part differs, its results are recomputed."""

    polls: int
    """Polls applied to the switches it depends on."""
    online: tuple[bool | None, ...]
    """Its terminals' online flags."""
    speeds: tuple[object, ...]
    """The NIC speeds of the terminals of classrooms without a switch port."""
    lessons: tuple[object, ...]
    """The local date, whether it is a school day, each of its timetables' period now."""


class _Moment:
    """One request's moment in the schedule's zone; each timetable's period asked once."""

    def __init__(self, local: datetime) -> None:
        self.today: date = local.date()
        self._time = local.time()
        self._periods: dict[str, Period | None] = {}

    def period(self, timetable: Timetable) -> Period | None:
        try:
            return self._periods[timetable.name]
        except KeyError:
            found = self._periods[timetable.name] = timetable.period_at(self._time)
            return found


def _watched(runtime: Runtime, switches: tuple[str, ...]) -> tuple[str, ...]:
    inventory = runtime.state.inventory
    seen: set[str] = set()
    todo = list(switches)
    while todo:
        device = todo.pop()
        if device in seen:
            continue
        seen.add(device)
        parent = parent_of(inventory, device)
        if parent is not None:
            todo.append(parent)
        code = inventory.switch_school.get(device)
        ref = inventory.schools.get(code) if code is not None else None
        if ref is not None:
            todo.append(ref.uplink_switch)
    return tuple(sorted(seen))


class SchoolsNow:
    """Per-school results for the API, recomputed only when their school changed.

    Args:
        runtime: the daemon's parts; read only.
        clock: the current time in Unix seconds.
    """

    def __init__(self, runtime: Runtime, clock: Callable[[], float]) -> None:
        self._runtime = runtime
        self._clock = clock
        self._static: dict[str, _Static] = {}
        self._cache: dict[str, SchoolNow] = {}
        self._days: dict[tuple[str, date], SchoolDay] = {}
        self._lessons: dict[
            str, tuple[tuple[object, ...], tuple[tuple[LessonAt | None, float | None], ...]]
        ] = {}
        self._switches_by_school: dict[str, set[str]] = {}
        self.recomputed = 0
        """Schools recomputed since start (the tests read it; so can a benchmark)."""

    # -- the index, built once per school ---------------------------------------------------

    def _static_of(self, ref: SchoolRef) -> _Static:
        found = self._static.get(ref.code)
        if found is not None and found.ref is ref:
            return found
        runtime = self._runtime
        if not self._switches_by_school:
            # One pass over the configured switches for every school, not one per school.
            for sid, sw in runtime.config.switches.items():
                if sw.school is not None:
                    self._switches_by_school.setdefault(sw.school, set()).add(sid)
            for sid, code in runtime.state.inventory.switch_school.items():
                if code is not None:
                    self._switches_by_school.setdefault(code, set()).add(sid)
        own = self._switches_by_school.get(ref.code, set())
        switches = school_switches(runtime, ref, own)
        watched = _watched(runtime, switches)
        devices = runtime.state.devices
        terminals = runtime.terminals
        states: list[TerminalState] = []
        unmapped: list[TerminalState] = []
        for room in ref.classrooms:
            st = terminals.of_classroom(room.id) if terminals is not None else None
            if st is None:
                continue
            states.append(st)
            if room.switch is None or room.port is None:
                unmapped.append(st)
        schedule = runtime.schedule
        timetables: dict[str, Timetable] = {}
        if schedule is not None:
            for room in ref.classrooms:
                tt = timetable_for(schedule, Place(ref.code, ref.kind, room.id))
                timetables.setdefault(tt.name, tt)
        found = _Static(
            ref,
            switches,
            watched,
            tuple(devices[d] for d in watched if d in devices),
            tuple(d for d in watched if d not in devices),
            tuple(states),
            tuple(unmapped),
            tuple(timetables.values()),
        )
        self._static[ref.code] = found
        return found

    # -- change keys ------------------------------------------------------------------------

    def _lesson_key(self, st: _Static, moment: _Moment | None) -> tuple[object, ...]:
        runtime = self._runtime
        if moment is None or runtime.schedule is None or runtime.calendar is None:
            return ()
        day = self._days.get((st.ref.code, moment.today))
        if day is None:
            if len(self._days) > 4 * max(1, len(self._static)):
                self._days.clear()  # yesterday's answers
            day = school_day(runtime.schedule, runtime.calendar, moment.today, st.ref.code)
            self._days[(st.ref.code, moment.today)] = day
        if not day.is_school_day:
            return (moment.today, False)
        return (moment.today, True, *(moment.period(tt) for tt in st.timetables))

    def _key(self, st: _Static, moment: _Moment | None) -> _Key:
        # Attribute getters mapped in C: a few microseconds per school, so that a district
        # page checks 500 schools in a few milliseconds.
        polls = sum(map(_POLLS_OK, st.devices)) + sum(map(_POLLS_FAILED, st.devices))
        if st.missing:
            devices = self._runtime.state.devices
            present = [devices[d] for d in st.missing if d in devices]
            polls += sum(d.polls_ok + d.polls_failed + 1 for d in present)
        online = tuple(map(_ONLINE, st.terminals))
        speeds = tuple(map(_SPEEDS, st.unmapped)) if st.unmapped else ()
        return _Key(polls, online, speeds, self._lesson_key(st, moment))

    # -- results ----------------------------------------------------------------------------

    def _moment(self, now: float) -> _Moment | None:
        schedule = self._runtime.schedule
        if schedule is None:
            return None
        return _Moment(datetime.fromtimestamp(now, UTC).astimezone(schedule.timezone))

    def school(self, code: str, now: float | None = None) -> SchoolNow | None:
        """One school's results now; None for an unknown code."""
        ref = self._runtime.state.inventory.schools.get(code)
        if ref is None:
            return None
        at = self._clock() if now is None else now
        return self._get(ref, at, self._moment(at), None)

    def all(self, now: float | None = None) -> list[SchoolNow]:
        """Every school's results now, in the inventory's order."""
        at = self._clock() if now is None else now
        moment = self._moment(at)
        calendar = (
            MemoCalendar(self._runtime.calendar) if self._runtime.calendar is not None else None
        )
        return [
            self._get(ref, at, moment, calendar)
            for ref in self._runtime.state.inventory.schools.values()
        ]

    def _get(
        self, ref: SchoolRef, now: float, moment: _Moment | None, calendar: MemoCalendar | None
    ) -> SchoolNow:
        st = self._static_of(ref)
        key = self._key(st, moment)
        cached = self._cache.get(ref.code)
        if cached is not None and cached.key == key and cached.ref is ref:
            return cached
        fresh = self._compute(st, now, key, calendar)
        self._cache[ref.code] = fresh
        return fresh

    def _compute(
        self, st: _Static, now: float, key: _Key, calendar: MemoCalendar | None
    ) -> SchoolNow:
        runtime = self._runtime
        ref = st.ref
        self.recomputed += 1
        topo = school_topology(runtime, ref, st.switches)
        compliance = check_school(
            runtime.state, ref, runtime.config.targets, terminal_speeds(runtime, ref.code)
        )
        if calendar is None and runtime.calendar is not None:
            calendar = MemoCalendar(runtime.calendar)
        when = datetime.fromtimestamp(now, UTC)
        lesson_key = key.lessons
        kept = self._lessons.get(ref.code)
        if kept is not None and kept[0] == lesson_key and lesson_key:
            lessons = kept[1]
        else:
            # Lessons change at period boundaries only: a poll or a terminal reuses them.
            lessons = tuple(school_lessons(runtime, ref, when, calendar))
            self._lessons[ref.code] = (lesson_key, lessons)
        rooms = tuple(school_classrooms(runtime, ref, when, calendar, topo, lessons))
        with_terminal = [c for c in rooms if c.terminal is not None]
        tally = TerminalTally(
            total=len(with_terminal),
            online=sum(1 for c in with_terminal if c.status == "online"),
            offline=sum(1 for c in with_terminal if c.status == "offline"),
            unknown=sum(1 for c in with_terminal if c.status == "unknown"),
            offline_in_lesson=sum(1 for c in with_terminal if c.offline_in_lesson),
        )
        checks = Counter((r.verdict, r.check) for r in compliance.results)
        not_online = [c for c in with_terminal if not c.online]
        split = (
            tuple(c for c in not_online if c.expected_online),
            tuple(c for c in not_online if not c.expected_online),
        )
        return SchoolNow(ref, st.switches, topo, compliance, rooms, tally, key, checks, split)
