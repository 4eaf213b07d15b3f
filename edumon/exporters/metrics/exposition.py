"""/metrics at city scale: each entity's text cached, re-rendered only when the entity changed.

A 500-school city has 5,000 switches and 20,000 classrooms; between two scrapes 15 s apart about
a quarter of the switches were polled and half the terminals sent a heartbeat, the rest did not
change. So every switch, school and classroom keeps its sample lines (one text per family) with
the *change key* they were rendered for, and a scrape

1. computes each entity's change key (cheap: a few fields of its state, no formatting), and
   re-renders only the entities whose key differs;
2. streams the exposition family by family: a family's header once, then every entity's
   cached lines of that family, joined without being formatted again.

Change keys: a switch's poll counts (every observation applied to it counts one) and its
condition; a switch's poller figures; a school's compliance inputs (the poll counts of the
switches its checks read, its unmapped classrooms' terminal speeds); a school's connectivity and
open outage; a classroom's terminal (its session, sequence, online state and heartbeats), whether
it is behind a failure, the lesson scheduled now and its open outage. Time-dependent state is
worked out once per scrape and shared: the parent-failure view (recomputed only when a switch's
reachability or a school uplink changed) and the lesson now (once per school and timetable).

The process's own families (collector, store, poller, MQTT, notifications, calendar: a few dozen
series whatever the district) are rendered afresh at every scrape by ``ProcessCollector``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter

from prometheus_client.exposition import generate_latest as text_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from edumon.domain.checks import check_school
from edumon.domain.counters import DurationHistogram
from edumon.domain.inventory import ClassroomRef, SchoolRef
from edumon.domain.schedule import LessonAt, Place, lesson_at, timetable_for
from edumon.domain.terminals import TerminalState
from edumon.domain.topology import Condition, Topology, assess
from edumon.exporters.metrics import families as f
from edumon.exporters.metrics.entities import (
    EntityCache,
    HistogramSum,
    PollFigures,
    render_classroom,
    render_compliance,
    render_polled,
    render_school_link,
    render_school_names,
    render_switch,
    unmapped,
)
from edumon.exporters.metrics.process import ProcessCollector
from edumon.runtime import Runtime
from edumon.views import ClassroomNow, MemoCalendar

_TERMINAL_KEY = attrgetter(
    "online",
    "session",
    "last_seq",
    "last_seen",
    "online_since",
    "offline_since",
    "offline_reason",
    "heartbeats",
)
"""Every accepted message moves ``last_seq`` or ``session`` (a heartbeat also ``heartbeats``);
every online/offline change moves ``online`` or its times: so an unchanged key is an
unchanged terminal."""
_POLLER_KEY = attrgetter(
    "polls_ok",
    "polls_failed",
    "requests",
    "timeouts",
    "retries",
    "varbinds",
    "walks_aborted",
    "last_varbinds",
    "max_repetitions",
    "last_poll_seconds",
)
_FAILED = (Condition.UNREACHABLE, Condition.UNKNOWN)
# How much is refreshed between two pauses of the stream (a few milliseconds' work).
_SLICE_SWITCHES = 1000
_SLICE_SCHOOLS = 50


@dataclass(frozen=True, slots=True)
class _Room:
    room: ClassroomRef
    terminal: TerminalState | None
    lesson: tuple[str, str] | None
    """(school, timetable): classrooms that share it share the lesson now."""


@dataclass(frozen=True, slots=True)
class _School:
    ref: SchoolRef
    switches: tuple[str, ...]
    """The switches the school's compliance checks read."""
    unmapped: tuple[ClassroomRef, ...]
    rooms: tuple[_Room, ...]
    timetables: dict[tuple[str, str], Place]
    """One place of the school per timetable its classrooms follow."""


class _Plan:
    """What does not change while the runtime's parts stay the same: the district's layout."""

    def __init__(self, runtime: Runtime) -> None:
        schedule = runtime.schedule
        terminals = runtime.terminals
        timed = schedule is not None and runtime.calendar is not None
        schools = []
        self.names = EntityCache(f.SCHOOL_NAMES)
        for code, ref in runtime.state.inventory.schools.items():
            self.names.store(code, None, render_school_names(ref), code)
            rooms = []
            timetables: dict[tuple[str, str], Place] = {}
            for room in ref.classrooms:
                st = terminals.of_classroom(room.id) if terminals is not None else None
                lesson = None
                if timed and schedule is not None:
                    place = Place(code, ref.kind, room.id)
                    lesson = (code, timetable_for(schedule, place).name)
                    timetables.setdefault(lesson, place)
                rooms.append(_Room(room, st, lesson))
            switches = dict.fromkeys(
                [ref.uplink_switch, *(r.switch for r in ref.classrooms if r.switch is not None)]
            )
            schools.append(_School(ref, tuple(switches), unmapped(ref), tuple(rooms), timetables))
        self.schools = tuple(schools)


def _generation(runtime: Runtime) -> tuple[int, ...]:
    """Identities of the parts a plan and the caches were built from; a new part, a new plan."""
    parts = (
        runtime.config,
        runtime.state,
        runtime.state.inventory,
        runtime.terminals,
        runtime.schedule,
        runtime.calendar,
        runtime.outages,
        runtime.poller,
    )
    return tuple(id(p) for p in parts)


class Exposition:
    """The /metrics text of one runtime, cached per switch, school and classroom.

    Not thread-safe: use it from the event loop that changes the state (``chunks`` is a
    generator; between two chunks the loop may run, and the next family shows what changed).

    Args:
        runtime: the daemon's live parts; read, never changed.
        clock: the current time in Unix seconds (the lesson now, today's date).
    """

    def __init__(self, runtime: Runtime, *, clock: Callable[[], float] = time.time) -> None:
        self._runtime = runtime
        self._clock = clock
        self._generation: tuple[int, ...] = ()
        self._process = ProcessCollector(runtime, self._poll_durations, clock=clock)
        self._reset()

    def _reset(self) -> None:
        self._generation = _generation(self._runtime)
        self._plan = _Plan(self._runtime)
        self.switches = EntityCache(f.SWITCH)
        self.polled = EntityCache(f.POLLED)
        self.compliance = EntityCache(f.COMPLIANCE)
        self.links = EntityCache(f.SCHOOL_LINK)
        self.classrooms = EntityCache(f.CLASSROOM)
        self._durations = HistogramSum()
        self._topology: tuple[object, Topology, frozenset[str]] | None = None
        self._poller_ids: tuple[tuple[int, int], list[str]] | None = None

    # -- the scrape --------------------------------------------------------------------------

    def chunks(self, *, openmetrics: bool = False) -> Iterator[bytes]:
        """The exposition, a family at a time (OpenMetrics 1.0 or the 0.0.4 text format)."""
        if _generation(self._runtime) != self._generation:
            self._reset()
        steps: tuple[tuple[Callable[[], Iterator[None]], EntityCache], ...] = (
            (self._refresh_switches, self.switches),
            (lambda: iter(()), self._plan.names),
            (self._refresh_compliance, self.compliance),
            (self._refresh_links, self.links),
            (self._refresh_classrooms, self.classrooms),
            (self._refresh_polled, self.polled),
        )
        for refresh, cache in steps:
            for _ in refresh():
                yield b""  # a pause: the loop may run between two slices of the district
            for family, text in cache.families():
                yield family.header(openmetrics)
                yield text
        if openmetrics:
            yield openmetrics_latest(self._process)  # type: ignore[no-untyped-call]
        else:
            yield text_latest(self._process)

    def render(self, *, openmetrics: bool = False) -> bytes:
        """The whole exposition at once (tests, tools); the app streams ``chunks``."""
        return b"".join(self.chunks(openmetrics=openmetrics))

    # -- shared views of the moment ---------------------------------------------------------

    def _topology_now(self) -> tuple[Topology, frozenset[str]]:
        """The parent-failure view, and the switches that failed (unreachable or behind one).

        It depends only on which switches answer and which school uplinks are up, so it is
        worked out again only when one of those changed.
        """
        state = self._runtime.state
        devices = state.devices
        uplinks = []
        for school in state.inventory.schools.values():
            dev = devices.get(school.uplink_switch)
            iface = dev.interfaces.get(school.uplink_port) if dev is not None else None
            uplinks.append(None if iface is None else iface.oper_status)
        signature = (tuple([d.reachable for d in devices.values()]), tuple(uplinks))
        memo = self._topology
        if memo is not None and memo[0] == signature:
            return memo[1], memo[2]
        topo = assess(state)
        failed = frozenset(d for d, v in topo.switches.items() if v.condition in _FAILED)
        self._topology = (signature, topo, failed)
        return topo, failed

    def _poll_durations(self) -> DurationHistogram:
        return self._durations.total

    # -- refreshing the caches ----------------------------------------------------------------

    def _refresh_switches(self) -> Iterator[None]:
        config = self._runtime.config
        inventory = self._runtime.state.inventory
        topo, _ = self._topology_now()
        cache = self.switches
        # A copy: between two slices the collector may add a switch it had not seen.
        for i, (device, dev) in enumerate(list(self._runtime.state.devices.items())):
            if i % _SLICE_SWITCHES == _SLICE_SWITCHES - 1:
                yield
            view = topo.switches.get(device)
            condition = view.condition if view is not None else Condition.PENDING
            key = (dev.polls_ok, dev.polls_failed, condition)
            if cache.fresh(device, key):
                continue
            sw = config.switches.get(device)
            cache.store(
                device,
                key,
                render_switch(
                    dev,
                    condition,
                    inventory,
                    host=sw.host if sw is not None else "",
                    all_ports=(
                        sw.export_all_ports if sw is not None else config.polling.export_all_ports
                    ),
                ),
            )

    def _refresh_polled(self) -> Iterator[None]:
        cache = self.polled
        poller = self._runtime.poller
        if poller is None:
            # No poller in this process (a collector fed over MQTT, or a test): what the
            # state recorded from the observations is all there is.
            for i, (device, dev) in enumerate(list(self._runtime.state.devices.items())):
                if i % _SLICE_SWITCHES == _SLICE_SWITCHES - 1:
                    yield
                key = (dev.polls_ok, dev.polls_failed)
                if cache.fresh(device, key):
                    continue
                figures = PollFigures(dev.polls_ok, dev.polls_failed, dev.poll_seconds)
                cache.store(device, key, render_polled(device, figures), dev.school or "")
                self._durations.update(device, dev.poll_durations)
            return
        stats = poller.device_stats
        size = (len(poller.switches), len(stats))
        if self._poller_ids is None or self._poller_ids[0] != size:
            ids = sorted({sw.id for sw in poller.switches} | set(stats))
            self._poller_ids = (size, ids)
        for i, device in enumerate(self._poller_ids[1]):
            if i % _SLICE_SWITCHES == _SLICE_SWITCHES - 1:
                yield
            st = stats.get(device)
            figures_key = None if st is None else _POLLER_KEY(st)
            if cache.fresh(device, figures_key):
                continue
            if st is None:
                figures = PollFigures(0, 0, 0.0, requests=0)
            else:
                figures = PollFigures(
                    st.polls_ok,
                    st.polls_failed,
                    st.last_poll_seconds,
                    requests=st.requests,
                    timeouts=st.timeouts,
                    retries=st.retries,
                    varbinds=st.varbinds,
                    walks_aborted=st.walks_aborted,
                    last_varbinds=st.last_varbinds,
                    max_repetitions=st.max_repetitions,
                )
                self._durations.update(device, st.poll_seconds)
            school = self._runtime.state.inventory.switch_school.get(device)
            cache.store(device, figures_key, render_polled(device, figures), school or "")

    def _refresh_compliance(self) -> Iterator[None]:
        runtime = self._runtime
        state = runtime.state
        devices = state.devices
        targets = runtime.config.targets
        terminals = runtime.terminals
        cache = self.compliance
        for i, school in enumerate(self._plan.schools):
            if i % _SLICE_SCHOOLS == _SLICE_SCHOOLS - 1:
                yield
            polls = tuple(
                [
                    None if dev is None else (dev.polls_ok, dev.polls_failed)
                    for dev in map(devices.get, school.switches)
                ]
            )
            speeds = {
                room.id: terminals.classroom_link_speed(room.id) if terminals is not None else None
                for room in school.unmapped
            }
            key = (polls, tuple(speeds.values()))
            code = school.ref.code
            if cache.fresh(code, key):
                continue
            # Classrooms without a mapped switch port are judged by their terminal's NIC speed.
            sc = check_school(state, school.ref, targets, speeds)
            cache.store(code, key, render_compliance(sc), code)

    def _refresh_links(self) -> Iterator[None]:
        topo, _ = self._topology_now()
        tracker = self._runtime.outages
        cache = self.links
        for code, link in topo.schools.items():
            outage = tracker.schools.get(code) if tracker is not None else None
            started = outage.started_at if outage is not None else None
            key = (link.connectivity, started)
            if cache.fresh(code, key):
                continue
            cache.store(
                code, key, render_school_link(link, started, outages=tracker is not None), code
            )
        yield

    def _refresh_classrooms(self) -> Iterator[None]:
        runtime = self._runtime
        topo, failed = self._topology_now()
        tracker = runtime.outages
        schedule, calendar = runtime.schedule, runtime.calendar
        memo = MemoCalendar(calendar) if calendar is not None else None
        when = datetime.fromtimestamp(self._clock(), UTC)
        cache = self.classrooms
        fresh, store = cache.fresh, cache.store
        outages = tracker.classrooms if tracker is not None else None
        for i, school in enumerate(self._plan.schools):
            if i % _SLICE_SCHOOLS == _SLICE_SCHOOLS - 1:
                yield
            code = school.ref.code
            school_unknown = topo.classroom_unknown(code, None) is not None
            # The lesson now, once per timetable of the school.
            scheduled: dict[tuple[str, str], LessonAt] = {}
            if schedule is not None and memo is not None:
                for group, place in school.timetables.items():
                    scheduled[group] = lesson_at(schedule, memo, place, when)
            for r in school.rooms:
                st = r.terminal
                lesson = scheduled.get(r.lesson) if r.lesson is not None else None
                room_id = r.room.id
                key = (
                    None if st is None else _TERMINAL_KEY(st),
                    school_unknown or r.room.switch in failed,
                    None if lesson is None else lesson.period is not None,
                    None if outages is None or st is None else room_id in outages,
                )
                if fresh(room_id, key):
                    continue
                why = topo.classroom_unknown(code, r.room.switch)
                now = ClassroomNow(school.ref, r.room, st, why, lesson)
                store(room_id, key, render_classroom(now, key[3]), code)
