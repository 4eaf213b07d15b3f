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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from edumon.domain.checks import SchoolCompliance, Verdict, check_school
from edumon.domain.inventory import SchoolRef
from edumon.domain.schedule import Place, SchoolDay, Timetable, school_day, timetable_for
from edumon.domain.terminals import TerminalState
from edumon.domain.topology import SchoolLink, Topology, parent_of
from edumon.runtime import Runtime
from edumon.views import (
    ClassroomNow,
    MemoCalendar,
    _school_classrooms,
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
    key: tuple[object, ...]

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
    terminals: tuple[TerminalState | None, ...]
    """Each classroom's terminal state (live objects), in classroom order."""
    unmapped: tuple[int, ...]
    """Positions of the classrooms without a switch port (judged by the terminal's NIC)."""
    timetables: tuple[Timetable, ...]


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
        self.recomputed = 0
        """Schools recomputed since start (the tests read it; so can a benchmark)."""

    # -- the index, built once per school ---------------------------------------------------

    def _static_of(self, ref: SchoolRef) -> _Static:
        found = self._static.get(ref.code)
        if found is not None and found.ref is ref:
            return found
        runtime = self._runtime
        switches = school_switches(runtime, ref)
        terminals = runtime.terminals
        states = tuple(
            terminals.of_classroom(room.id) if terminals is not None else None
            for room in ref.classrooms
        )
        unmapped = tuple(
            i for i, room in enumerate(ref.classrooms) if room.switch is None or room.port is None
        )
        schedule = runtime.schedule
        timetables: dict[str, Timetable] = {}
        if schedule is not None:
            for room in ref.classrooms:
                tt = timetable_for(schedule, Place(ref.code, ref.kind, room.id))
                timetables.setdefault(tt.name, tt)
        found = _Static(
            ref, switches, _watched(runtime, switches), states, unmapped, tuple(timetables.values())
        )
        self._static[ref.code] = found
        return found

    # -- change keys ------------------------------------------------------------------------

    def _lesson_key(self, st: _Static, local: datetime | None) -> tuple[object, ...]:
        runtime = self._runtime
        if local is None or runtime.schedule is None or runtime.calendar is None:
            return ()
        today = local.date()
        day = self._days.get((st.ref.code, today))
        if day is None:
            if len(self._days) > 4 * max(1, len(self._static)):
                self._days.clear()  # yesterday's answers
            day = school_day(runtime.schedule, runtime.calendar, today, st.ref.code)
            self._days[(st.ref.code, today)] = day
        if not day.is_school_day:
            return (today, False)
        t = local.time()
        return (today, True, *(tt.period_at(t) for tt in st.timetables))

    def _key(self, st: _Static, local: datetime | None) -> tuple[object, ...]:
        devices = self._runtime.state.devices
        polls = 0
        for device in st.watched:
            dev = devices.get(device)
            if dev is not None:
                polls += dev.polls_ok + dev.polls_failed + 1
        online = tuple(t.online if t is not None else None for t in st.terminals)
        speeds: tuple[object, ...] = ()
        if st.unmapped:
            speeds = tuple(
                (t.link_speed_mbps, t.last_link_speed_mbps) if t is not None else None
                for t in (st.terminals[i] for i in st.unmapped)
            )
        return (polls, online, speeds, *self._lesson_key(st, local))

    # -- results ----------------------------------------------------------------------------

    def _local(self, now: float) -> datetime | None:
        schedule = self._runtime.schedule
        if schedule is None:
            return None
        return datetime.fromtimestamp(now, UTC).astimezone(schedule.timezone)

    def school(self, code: str, now: float | None = None) -> SchoolNow | None:
        """One school's results now; None for an unknown code."""
        ref = self._runtime.state.inventory.schools.get(code)
        if ref is None:
            return None
        at = self._clock() if now is None else now
        return self._get(ref, at, self._local(at), None)

    def all(self, now: float | None = None) -> list[SchoolNow]:
        """Every school's results now, in the inventory's order."""
        at = self._clock() if now is None else now
        local = self._local(at)
        calendar = (
            MemoCalendar(self._runtime.calendar) if self._runtime.calendar is not None else None
        )
        return [
            self._get(ref, at, local, calendar)
            for ref in self._runtime.state.inventory.schools.values()
        ]

    def _get(
        self, ref: SchoolRef, now: float, local: datetime | None, calendar: MemoCalendar | None
    ) -> SchoolNow:
        st = self._static_of(ref)
        key = self._key(st, local)
        cached = self._cache.get(ref.code)
        if cached is not None and cached.key == key and cached.ref is ref:
            return cached
        fresh = self._compute(st, now, key, calendar)
        self._cache[ref.code] = fresh
        return fresh

    def _compute(
        self, st: _Static, now: float, key: tuple[object, ...], calendar: MemoCalendar | None
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
        rooms = tuple(
            _school_classrooms(runtime, ref, datetime.fromtimestamp(now, UTC), calendar, topo)
        )
        with_terminal = [c for c in rooms if c.terminal is not None]
        tally = TerminalTally(
            total=len(with_terminal),
            online=sum(1 for c in with_terminal if c.status == "online"),
            offline=sum(1 for c in with_terminal if c.status == "offline"),
            unknown=sum(1 for c in with_terminal if c.status == "unknown"),
            offline_in_lesson=sum(1 for c in with_terminal if c.offline_in_lesson),
        )
        return SchoolNow(ref, st.switches, topo, compliance, rooms, tally, key)
