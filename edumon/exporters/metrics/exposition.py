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
it is behind a failure, the lesson scheduled now and its open outage. What every poll or
heartbeat moves (a switch's counters, uptime and poll times; a terminal's last-seen time and
uptime) is cached apart from the rest, which is rendered again only when what it reads changed
(a port's status or speed, the terminal coming or going): between two scrapes 15 s apart a
quarter of a city's switches are polled and half its terminals heartbeat, few change state.

Time-dependent state is worked out once per scrape and shared: the parent-failure view
(recomputed only when a switch's reachability or a school uplink changed) and the lesson now
(once per school and timetable).

The process's own families (collector, store, poller, MQTT, notifications, calendar: a few dozen
series whatever the district) are rendered afresh at every scrape by ``ProcessCollector``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter

from prometheus_client.exposition import generate_latest as text_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from edumon.config import Switch
from edumon.domain.checks import check_school
from edumon.domain.counters import DurationHistogram
from edumon.domain.inventory import ClassroomRef, SchoolRef
from edumon.domain.schedule import LessonAt, Place, lesson_at, timetable_for
from edumon.domain.state import DeviceState
from edumon.domain.terminals import TerminalState
from edumon.domain.topology import Condition, Topology, assess
from edumon.exporters.metrics import families as f
from edumon.exporters.metrics.entities import (
    EntityCache,
    HistogramSum,
    PollFigures,
    Port,
    exported_ports,
    render_classroom,
    render_compliance,
    render_counters,
    render_heartbeat,
    render_polled,
    render_school_link,
    render_school_names,
    render_switch,
    switch_state_key,
    unmapped,
)
from edumon.exporters.metrics.process import ProcessCollector
from edumon.exporters.metrics.text import pairs
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
_HEARTBEAT_KEY = attrgetter("online", "last_seen", "uptime_seconds")
_STATE_KEY = attrgetter(
    "online",
    "online_since",
    "offline_since",
    "offline_reason",
    "agent_version",
    "nic",
    "duplex",
    "link_speed_mbps",
)
"""What ``render_classroom`` reads of a terminal."""
_CHECKED = attrgetter("oper_status", "speed_mbps", "last_speed_mbps")
"""What the compliance checks read of a port (``edumon.domain.checks``)."""
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
# A scrape serves what ``keep_fresh`` rendered up to this long ago (it runs every second).
DEFAULT_MAX_AGE_SECONDS = 2.0
_SLICE_SCHOOLS = 50


@dataclass(frozen=True, slots=True)
class _Room:
    room: ClassroomRef
    terminal: TerminalState | None
    lesson: tuple[str, str] | None
    """(school, timetable): classrooms that share it share the lesson now."""
    labels: str
    """Its school and classroom labels, rendered."""
    terminal_labels: str
    """Those and its terminal's."""


@dataclass(frozen=True, slots=True)
class _School:
    ref: SchoolRef
    switches: tuple[str, ...]
    """The switches the school's compliance checks read."""
    ports: tuple[tuple[str, str], ...]
    """The ports they read: the uplink and each classroom's."""
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
        self.names = EntityCache(f.shown(f.SCHOOL_NAMES, runtime.config.metrics.detail))
        for code, ref in runtime.state.inventory.schools.items():
            self.names.store(code, None, render_school_names(ref, self.names.kind), code)
            rooms = []
            timetables: dict[tuple[str, str], Place] = {}
            for room in ref.classrooms:
                st = terminals.of_classroom(room.id) if terminals is not None else None
                lesson = None
                if timed and schedule is not None:
                    place = Place(code, ref.kind, room.id)
                    lesson = (code, timetable_for(schedule, place).name)
                    timetables.setdefault(lesson, place)
                labels = pairs(f.CLASSROOM_EXPECTED.labels, (code, room.id))
                terminal_labels = labels
                if st is not None:
                    terminal_labels = f"{labels},{pairs(('terminal',), (st.terminal,))}"
                rooms.append(_Room(room, st, lesson, labels, terminal_labels))
            switches = dict.fromkeys(
                [ref.uplink_switch, *(r.switch for r in ref.classrooms if r.switch is not None)]
            )
            ports = [(ref.uplink_switch, ref.uplink_port)]
            ports += [(r.switch, r.port) for r in ref.classrooms if r.switch and r.port]
            schools.append(
                _School(ref, tuple(switches), tuple(ports), unmapped(ref), tuple(rooms), timetables)
            )
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
        self.refreshed_at: float | None = None
        """``time.monotonic()`` when ``refresh`` last finished (None: never run)."""
        self.max_age = DEFAULT_MAX_AGE_SECONDS
        """How old a background refresh may be for a scrape to serve it as it is."""
        self._reset()

    def _reset(self) -> None:
        self._generation = _generation(self._runtime)
        self._plan = _Plan(self._runtime)
        detail = self._runtime.config.metrics.detail
        self.detail = detail
        """``[metrics] detail``: full, or essential (``families.DIAGNOSTICS`` left out)."""
        self.switches = EntityCache(f.shown(f.SWITCH, detail))
        self.counters = EntityCache(f.shown(f.SWITCH_COUNTERS, detail))
        self._switch_seen: dict[str, object] = {}
        self._ports: dict[str, tuple[tuple[str, ...], tuple[Port, ...]]] = {}
        self.polled = EntityCache(f.shown(f.POLLED, detail))
        self.compliance = EntityCache(f.shown(f.COMPLIANCE, detail))
        self._compliance_seen: dict[str, object] = {}
        self.links = EntityCache(f.shown(f.SCHOOL_LINK, detail))
        self.classrooms = EntityCache(f.shown(f.CLASSROOM, detail))
        self.heartbeats = EntityCache(f.shown(f.HEARTBEAT, detail))
        self._room_seen: dict[str, object] = {}
        self._durations = HistogramSum()
        self._topology: tuple[object, Topology, frozenset[str]] | None = None
        self._poller_ids: tuple[tuple[int, int], list[str]] | None = None

    # -- the scrape --------------------------------------------------------------------------

    def chunks(self, *, openmetrics: bool = False) -> Iterator[bytes]:
        """The exposition, a family at a time (OpenMetrics 1.0 or the 0.0.4 text format).

        An empty chunk is a pause between two slices of the refresh, not a part of the body: a
        server hands the event loop back there (and sends nothing).
        """
        if _generation(self._runtime) != self._generation:
            self._reset()
        # Kept fresh in the background (``refresh``) a moment ago: the scrape only joins and
        # sends; otherwise it refreshes each kind of entity before sending it.
        published = self.refreshed_at
        current = published is not None and time.monotonic() - published <= self.max_age
        for refresh, cache in self._steps():
            if not current:
                for _ in refresh():
                    yield b""  # a pause: the loop may run between two slices of the district
            for family, text in cache.families():
                yield family.header(openmetrics)
                yield text
        if openmetrics:
            yield openmetrics_latest(self._process)  # type: ignore[no-untyped-call]
        else:
            yield text_latest(self._process)

    def _steps(self) -> tuple[tuple[Callable[[], Iterator[None]], EntityCache], ...]:
        return (
            (self._refresh_switches, self.switches),
            (lambda: iter(()), self.counters),
            (lambda: iter(()), self._plan.names),
            (self._refresh_compliance, self.compliance),
            (self._refresh_links, self.links),
            (self._refresh_classrooms, self.classrooms),
            (lambda: iter(()), self.heartbeats),
            (self._refresh_polled, self.polled),
        )

    def refresh(self) -> Iterator[None]:
        """Bring every cache up to date, a slice at a time (yielding between slices).

        Run in the background every second or so (``keep_fresh``), it leaves a scrape only the
        joins: what it serves is then at most ``max_age`` seconds old.
        """
        if _generation(self._runtime) != self._generation:
            self._reset()
        for refresh, cache in self._steps():
            yield from refresh()
            cache.join()
            yield
        self.refreshed_at = time.monotonic()

    async def keep_fresh(self, every_seconds: float = 1.0) -> None:
        """Refresh every ``every_seconds``, handing the loop back between slices."""
        while True:
            for _ in self.refresh():
                await asyncio.sleep(0)
            await asyncio.sleep(every_seconds)

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
        topo, _ = self._topology_now()
        seen = self._switch_seen
        # A copy: between two slices the collector may add a switch it had not seen.
        for i, (device, dev) in enumerate(list(self._runtime.state.devices.items())):
            if i % _SLICE_SWITCHES == _SLICE_SWITCHES - 1:
                yield
            view = topo.switches.get(device)
            condition = view.condition if view is not None else Condition.PENDING
            key = (dev.polls_ok, dev.polls_failed, condition)
            if seen.get(device) == key:
                continue
            seen[device] = key
            sw = config.switches.get(device)
            ports = self._exported(dev, sw)
            school = dev.school or ""
            # A poll moves the counters; the state only when a port or the switch changed.
            state = switch_state_key(dev, condition, ports)
            if not self.switches.fresh(device, state):
                host = sw.host if sw is not None else ""
                text = render_switch(dev, condition, ports, host=host, kind=self.switches.kind)
                self.switches.store(device, state, text, school)
            self.counters.store(
                device, key, render_counters(dev, ports, self.counters.kind), school
            )

    def _exported(self, dev: DeviceState, sw: Switch | None) -> tuple[Port, ...]:
        """The switch's exported ports, worked out again only when its ports are not the same."""
        names = tuple(dev.interfaces)
        known = self._ports.get(dev.device_id)
        if known is not None and known[0] == names:
            return known[1]
        config = self._runtime.config
        all_ports = sw.export_all_ports if sw is not None else config.polling.export_all_ports
        ports = exported_ports(dev, self._runtime.state.inventory, all_ports=all_ports)
        self._ports[dev.device_id] = (names, ports)
        return ports

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
                text = render_polled(device, figures, cache.kind)
                cache.store(device, key, text, dev.school or "")
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
            text = render_polled(device, figures, cache.kind)
            cache.store(device, figures_key, text, school or "")

    def _refresh_compliance(self) -> Iterator[None]:
        runtime = self._runtime
        state = runtime.state
        devices = state.devices
        targets = runtime.config.targets
        terminals = runtime.terminals
        cache = self.compliance
        seen = self._compliance_seen
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
            code = school.ref.code
            seen_key = (polls, tuple(speeds.values()))
            if seen.get(code) == seen_key:
                continue
            seen[code] = seen_key
            # A poll of one of its switches: did anything the checks read change?
            ports = []
            for device, port in school.ports:
                dev = devices.get(device)
                iface = dev.interfaces.get(port) if dev is not None else None
                ports.append(
                    (
                        None if dev is None else dev.reachable,
                        None if iface is None else _CHECKED(iface),
                    )
                )
            key = (tuple(ports), seen_key[1])
            if cache.fresh(code, key):
                continue
            # Classrooms without a mapped switch port are judged by their terminal's NIC speed.
            sc = check_school(state, school.ref, targets, speeds)
            cache.store(code, key, render_compliance(sc, cache.kind), code)

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
            text = render_school_link(link, started, outages=tracker is not None, kind=cache.kind)
            cache.store(code, key, text, code)
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
        seen = self._room_seen
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
                if seen.get(room_id) == key:
                    continue
                seen[room_id] = key
                if st is not None and self.heartbeats.kind:
                    beat = _HEARTBEAT_KEY(st)
                    if not self.heartbeats.fresh(room_id, beat):
                        text = render_heartbeat(st, r.terminal_labels, self.heartbeats.kind)
                        self.heartbeats.store(room_id, beat, text, code)
                # A heartbeat moves the two lines above; the rest only when the terminal
                # comes or goes, or the lesson or an outage does.
                state = (None if st is None else _STATE_KEY(st), *key[1:])
                if fresh(room_id, state):
                    continue
                why = topo.classroom_unknown(code, r.room.switch)
                now = ClassroomNow(school.ref, r.room, st, why, lesson)
                text = render_classroom(now, key[3], r.labels, r.terminal_labels, cache.kind)
                store(room_id, state, text, code)
