"""Prometheus /metrics: every series rendered from the runtime's state at scrape time.

Naming follows Prometheus conventions: prefix ``edumon_``, base units (bytes, seconds),
``_total`` counters and ``_info`` series that carry display names for ``group_left`` joins.
Labels are ids: ``school`` (code), ``classroom`` (id), ``device`` (switch id) and
``interface`` (ifName).

Series budget: only the ports the inventory names (school uplinks, classroom ports and
inter-switch links) are exported by default; every other port (Console, NULL, Vlanif, unused
access ports) only with ``export_all_ports`` for its switch or globally. The API shows them all.
Label values are short and stable: no multi-line sysDescr, no terminal IP or MAC.

Ports of a switch that cannot be reached (or has not answered yet) are unknown, not down:
their ``edumon_interface_up``/admin status/speed/counter series are omitted for as long
as the switch is unreachable, while ``edumon_interface_info`` stays, so that an alert on
``edumon_interface_up == 0`` never fires forty times for one dead switch (the switch's own
``edumon_device_up == 0`` does, once).

Octet and error counters are 64-bit monotonic totals that edumon keeps: a 32-bit ifInOctets
that wraps goes on counting past 2^32, so ``rate()`` never mistakes a wrap for a reset.

Compliance is one series per check carrying its current verdict,
``edumon_check_status{school,check,classroom,verdict} 1`` (one series per current state, not
one per possible value: the series budget), so that both "uplink below target"
(``edumon_check_status{check="uplink_speed",verdict="fail"}``) and "how many checks we
cannot judge" (``count(edumon_check_status{verdict="unknown"})``) are plain selectors.

Classroom terminals: ``edumon_terminal_up{school,classroom,terminal}`` is 0 for a terminal
never heard from, and ``edumon_classroom_expected_online{school,classroom}`` says whether a
lesson is scheduled at scrape time (for dashboards).

Parent failure and outages (docs/topology.md, docs/alerting.md): every school's
``edumon_school_connectivity{state}`` and every switch's ``edumon_device_state{state}`` are
present at every scrape; ``edumon_school_outage`` and ``edumon_classroom_outage`` are edumon's
outages — one per failure, a classroom's kept across breaks and lunch — which the shipped rules
in deploy/prometheus/rules/ alert on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from edumon.domain.checks import SchoolCompliance, Verdict, check_district
from edumon.domain.counters import DurationHistogram
from edumon.domain.models import EventKind, OperStatus
from edumon.domain.state import DeviceState, InterfaceState
from edumon.domain.terminals import IGNORED_REASONS
from edumon.domain.topology import assess
from edumon.exporters.notify import notify_families
from edumon.ports import PollerView
from edumon.runtime import Runtime
from edumon.views import (
    ClassroomNow,
    classrooms_now,
    local_date,
    midnight,
    terminal_speeds,
)
from edumon.wire import KIND_HEARTBEAT, KIND_STATUS
from edumon.wire import REASONS as WIRE_REASONS

BYTES_PER_MBIT = 1_000_000 / 8
"""Link speeds are configured and reported in Mbit/s; Prometheus wants bytes per second."""

# Reasons the collector drops data for; rendered at 0 from the start so that
# increase(...) sees the first drop (a series that appears at 1 has no increase).
_DROP_REASONS = (
    "queue_full",
    "pending_interface_samples",
    "pending_device_samples",
    "pending_terminal_samples",
)
_POLL_RESULTS = ("ok", "failed")
_VERDICTS = tuple(Verdict)


def create_registry(
    runtime: Runtime, *, clock: Callable[[], float] = time.time
) -> CollectorRegistry:
    """A fresh registry holding edumon's collector, for one app (or one test).

    The process-wide default registry is not used, and no process/platform collectors
    are added: everything on /metrics is rendered from ``runtime`` at scrape time.

    Args:
        runtime: the daemon's live parts; read, never changed.
        clock: the current time in Unix seconds, for the lesson schedule at scrape time.

    Returns:
        A registry to hand to ``prometheus_client.generate_latest``.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EdumonCollector(runtime, clock=clock))
    return registry


def mbps_to_bytes(mbps: float) -> float:
    """Mbit/s (as switches and targets state them) to bytes per second."""
    return mbps * BYTES_PER_MBIT


@dataclass(slots=True)
class _Family:
    """A gauge, counter or info family being filled, with its label names fixed up front."""

    metric: GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily
    labels: tuple[str, ...]

    def add(self, value: float, **labels: str) -> None:
        values = [labels[name] for name in self.labels]
        if isinstance(self.metric, InfoMetricFamily):
            self.metric.add_metric(values, {})  # an info series' value is always 1
        else:
            self.metric.add_metric(values, value)


def _gauge(name: str, doc: str, *labels: str) -> _Family:
    return _Family(GaugeMetricFamily(name, doc, labels=labels), labels)


def _info(name: str, doc: str, *labels: str) -> _Family:
    # InfoMetricFamily appends _info itself (and is a gauge of 1 in the 0.0.4 text format).
    return _Family(InfoMetricFamily(name, doc, labels=labels), labels)


def _counter(name: str, doc: str, *labels: str) -> _Family:
    # CounterMetricFamily appends _total itself; the name here is without it.
    return _Family(CounterMetricFamily(name, doc, labels=labels), labels)


class EdumonCollector:
    """A prometheus_client collector that renders the runtime's state at each scrape."""

    def __init__(self, runtime: Runtime, *, clock: Callable[[], float] = time.time) -> None:
        self._runtime = runtime
        self._clock = clock

    def collect(self) -> Iterable[Metric]:
        now = self._clock()
        families: list[_Family | Metric] = []
        families.extend(self._targets())
        families.extend(self._devices())
        families.extend(self._interfaces())
        families.extend(self._compliance())
        families.extend(self._topology())
        families.extend(self._terminals(classrooms_now(self._runtime, now)))
        families.extend(self._calendar(now))
        families.extend(self._collector())
        families.extend(self._snmp())
        families.extend(self._mqtt())
        families.extend(self._notify())
        for family in families:
            yield family.metric if isinstance(family, _Family) else family

    # -- inventory and targets -------------------------------------------------------------

    def _targets(self) -> Iterator[_Family]:
        config = self._runtime.config
        targets = config.targets
        target = _gauge(
            "edumon_target_speed_bytes",
            "Minimum link speed the target profile in force requires, in bytes per second.",
            "link",
            "profile",
        )
        for link, mbps in (("uplink", targets.uplink_mbps), ("classroom", targets.classroom_mbps)):
            if mbps is not None:
                target.add(mbps_to_bytes(mbps), link=link, profile=targets.profile)
        yield target

        district = _info(
            "edumon_district",
            "The district this collector serves.",
            "district",
            "district_name",
        )
        district.add(1, district=config.district.code, district_name=config.district.name)
        yield district

        school_info = _info(
            "edumon_school",
            "Display names of each school and its uplink port.",
            "school",
            "school_name",
            "kind",
            "device",
            "interface",
        )
        classroom_info = _info(
            "edumon_classroom",
            "Display names of each classroom and its switch port.",
            "school",
            "classroom",
            "classroom_name",
            "device",
            "interface",
        )
        for school in self._runtime.state.inventory.schools.values():
            school_info.add(
                1,
                school=school.code,
                school_name=school.name,
                kind=school.kind,
                device=school.uplink_switch,
                interface=school.uplink_port,
            )
            for room in school.classrooms:
                classroom_info.add(
                    1,
                    school=school.code,
                    classroom=room.id,
                    classroom_name=room.name,
                    device=room.switch or "",
                    interface=room.port or "",
                )
        yield school_info
        yield classroom_info

        if self._runtime.started_at > 0:
            started = _gauge(
                "edumon_start_time_seconds", "When this edumon process started, Unix seconds."
            )
            started.add(self._runtime.started_at)
            yield started

    # -- switches --------------------------------------------------------------------------

    def _devices(self) -> Iterator[_Family]:
        labels = ("device", "school")
        up = _gauge(
            "edumon_device_up",
            "Whether the switch answered its last SNMP poll (1) or not (0); "
            "absent until the first poll has finished.",
            *labels,
        )
        uptime = _gauge(
            "edumon_device_uptime_seconds",
            "Switch uptime (sysUpTime, with its wraps every 497 days added back) at its last "
            "successful poll; absent while unreachable.",
            *labels,
        )
        reboots = _counter(
            "edumon_device_reboots",
            "Reboots detected: the boot time moved past the previous poll, by hrSystemUptime, "
            "snmpEngineBoots or sysUpTime (wraps at 2^32 ticks, frozen or jumping clocks "
            "excluded).",
            *labels,
        )
        last_poll = _gauge(
            "edumon_device_last_poll_timestamp_seconds",
            "When the switch was last polled (successfully or not), Unix seconds.",
            *labels,
        )
        last_ok = _gauge(
            "edumon_device_last_success_timestamp_seconds",
            "When the switch last answered a poll, Unix seconds.",
            *labels,
        )
        info = _info(
            "edumon_device",
            "Display names of each switch as it reports them (sysDescr is in the API).",
            *labels,
            "host",
            "sys_name",
        )
        switches = self._runtime.config.switches
        for dev in self._runtime.state.devices.values():
            ids = {"device": dev.device_id, "school": dev.school or ""}
            sw = switches.get(dev.device_id)
            # Only the host is rendered from the switch's configuration: its SNMP
            # credentials never leave the config object.
            info.add(
                1,
                **ids,
                host=sw.host if sw is not None else "",
                sys_name=dev.sys_name,
            )
            reboots.add(dev.reboots, **ids)
            if dev.reachable is not None:
                up.add(1 if dev.reachable else 0, **ids)
            if dev.reachable and dev.uptime_seconds is not None:
                uptime.add(dev.uptime_seconds, **ids)
            if dev.last_poll_at is not None:
                last_poll.add(dev.last_poll_at, **ids)
            if dev.last_ok_at is not None:
                last_ok.add(dev.last_ok_at, **ids)
        yield from (up, uptime, reboots, last_poll, last_ok, info)

    # -- ports -----------------------------------------------------------------------------

    def _interfaces(self) -> Iterator[_Family]:
        labels = ("device", "interface", "school", "classroom")
        up = _gauge(
            "edumon_interface_up",
            "Whether the port is up (ifOperStatus up = 1, anything else 0); "
            "absent while its switch is unreachable (the port is unknown, not down).",
            *labels,
        )
        admin = _gauge(
            "edumon_interface_admin_status",
            "IF-MIB ifAdminStatus: 1 up, 2 down, 3 testing; "
            "absent while its switch is unreachable.",
            *labels,
        )
        speed = _gauge(
            "edumon_interface_speed_bytes",
            "Negotiated link speed in bytes per second (ifHighSpeed, else ifSpeed); "
            "present only while the port is up and the speed was measured.",
            *labels,
        )
        in_bytes = _counter(
            "edumon_interface_in_bytes",
            "Octets received on the port (ifHCInOctets, else ifInOctets) as a 64-bit "
            "monotonic total edumon keeps from wrap-corrected deltas: 32-bit wraps are added "
            "back; it resets only at a reboot or counter discontinuity.",
            *labels,
        )
        out_bytes = _counter(
            "edumon_interface_out_bytes",
            "Octets sent from the port (ifHCOutOctets, else ifOutOctets) as a 64-bit "
            "monotonic total edumon keeps from wrap-corrected deltas: 32-bit wraps are added "
            "back; it resets only at a reboot or counter discontinuity.",
            *labels,
        )
        in_errors = _counter(
            "edumon_interface_in_errors",
            "Inbound packets with errors (ifInErrors) as a 64-bit monotonic total, 32-bit "
            "wraps added back; resets only at a reboot or counter discontinuity.",
            *labels,
        )
        out_errors = _counter(
            "edumon_interface_out_errors",
            "Outbound packets with errors (ifOutErrors) as a 64-bit monotonic total, 32-bit "
            "wraps added back; resets only at a reboot or counter discontinuity.",
            *labels,
        )
        downgrades = _counter(
            "edumon_interface_speed_downgrades",
            "Speed drops seen while the port stayed up (1000 to 100 Mbit/s: a bad cable); "
            "alert on increase(...[10m]) > 0.",
            *labels,
        )
        last_change = _gauge(
            "edumon_interface_last_change_timestamp_seconds",
            "When edumon last saw the port change status (or first saw it), Unix seconds.",
            *labels,
        )
        info = _info(
            "edumon_interface",
            "Display names of each exported port and what it serves: role uplink, classroom, "
            "link (another switch hangs off it) or none.",
            *labels,
            "role",
            "if_index",
            "alias",
        )
        inventory = self._runtime.state.inventory
        switches = self._runtime.config.switches
        export_all = self._runtime.config.polling.export_all_ports
        for dev in self._runtime.state.devices.values():
            sw = switches.get(dev.device_id)
            all_ports = sw.export_all_ports if sw is not None else export_all
            for iface in dev.interfaces.values():
                owner = inventory.owner(dev.device_id, iface.name)
                if owner is not None:
                    role = owner.role.value
                elif (dev.device_id, iface.name) in inventory.link_ports:
                    role = "link"
                elif all_ports:
                    role = "none"
                else:
                    continue  # not a port that matters: in the API, not on /metrics
                ids = {
                    "device": dev.device_id,
                    "interface": iface.name,
                    "school": owner.school if owner is not None else (dev.school or ""),
                    "classroom": (owner.classroom or "") if owner is not None else "",
                }
                info.add(1, **ids, role=role, if_index=str(iface.if_index), alias=iface.alias)
                last_change.add(iface.last_change, **ids)
                downgrades.add(iface.speed_downgrades, **ids)
                if not _port_known(dev, iface):
                    continue
                up.add(1 if iface.oper_status is OperStatus.UP else 0, **ids)
                admin.add(int(iface.admin_status), **ids)
                if iface.speed_mbps is not None:
                    speed.add(mbps_to_bytes(iface.speed_mbps), **ids)
                for family, value in (
                    (in_bytes, iface.in_octets_total),
                    (out_bytes, iface.out_octets_total),
                    (in_errors, iface.in_errors_total),
                    (out_errors, iface.out_errors_total),
                ):
                    if value is not None:
                        family.add(value, **ids)
        yield from (up, admin, speed, in_bytes, out_bytes, in_errors, out_errors, downgrades)
        yield from (last_change, info)

    # -- compliance ------------------------------------------------------------------------

    def _compliance(self) -> Iterator[_Family]:
        # Classrooms without a mapped switch port are judged by their terminal's NIC speed.
        results = check_district(
            self._runtime.state, self._runtime.config.targets, terminal_speeds(self._runtime)
        )
        status = _gauge(
            "edumon_check_status",
            "Outcome of each compliance check: one series per school, check and classroom, "
            "at 1, whose verdict label (pass, fail, unknown) is the current verdict.",
            "school",
            "check",
            "classroom",
            "verdict",
        )
        measured = _gauge(
            "edumon_check_speed_bytes",
            "The link speed a speed check judged, in bytes per second "
            "(for a down classroom port, the speed it had when last up).",
            "school",
            "check",
            "classroom",
        )
        school_status = _gauge(
            "edumon_school_compliance",
            "Each school's overall verdict, one series per school at 1 with its current verdict "
            "(fail beats unknown beats pass).",
            "school",
            "verdict",
        )
        classrooms = _gauge(
            "edumon_school_classrooms",
            "Classrooms of each school by the verdict of their link speed check "
            '(verdict="fail" counts the non-compliant classrooms).',
            "school",
            "verdict",
        )
        for code, sc in results.items():
            for result in sc.results:
                ids = {
                    "school": code,
                    "check": result.check.value,
                    "classroom": result.classroom or "",
                }
                status.add(1, **ids, verdict=result.verdict.value)
                if result.speed_mbps is not None:
                    measured.add(mbps_to_bytes(result.speed_mbps), **ids)
            school_status.add(1, school=code, verdict=sc.verdict.value)
            for verdict in _VERDICTS:
                classrooms.add(_count(sc, verdict), school=code, verdict=verdict.value)
        yield from (status, measured, school_status, classrooms)

    # -- parent failure and outages ---------------------------------------------------------

    def _topology(self) -> Iterator[_Family]:
        topo = assess(self._runtime.state)
        connectivity = _gauge(
            "edumon_school_connectivity",
            "Each school's link to the district network: one series per school, always "
            "present, at 1 with its current state: ok, uplink_down (port down on a switch that "
            "answers), unreachable (its uplink switch does not answer: fibre cut, core switch "
            "dead), unknown (not polled yet, or its uplink is on a district switch that does "
            "not answer).",
            "school",
            "state",
        )
        for code, link in topo.schools.items():
            connectivity.add(1, school=code, state=link.connectivity.value)
        condition = _gauge(
            "edumon_device_state",
            "Each switch as alerts see it, one series per switch at 1 with its current state: "
            "up; unreachable (this switch is the root cause); unknown (behind a failure: its "
            "school is cut off or the switch above it is down, so it raises nothing); pending "
            "(not polled yet).",
            "device",
            "school",
            "state",
        )
        for device, view in topo.switches.items():
            condition.add(1, device=device, school=view.school or "", state=view.condition.value)
        yield from (connectivity, condition)
        tracker = self._runtime.outages
        if tracker is None:
            return
        school_outage = _gauge(
            "edumon_school_outage",
            "1 while the school is in an outage (cut off for longer than the grace; one outage "
            "from the first failure until its connectivity is ok again), else 0.",
            "school",
        )
        school_start = _gauge(
            "edumon_school_outage_start_timestamp_seconds",
            "When the school's open outage began, Unix seconds; absent without one.",
            "school",
        )
        for code in topo.schools:
            outage = tracker.schools.get(code)
            school_outage.add(1 if outage is not None else 0, school=code)
            if outage is not None:
                school_start.add(outage.started_at, school=code)
        room_outage = _gauge(
            "edumon_classroom_outage",
            "1 while the classroom is in an outage: its terminal offline for the grace period of "
            "a scheduled lesson, then until it is back or the school day ends — across breaks "
            "and lunch, so one outage is one alert. 0 otherwise and while the classroom is "
            "unknown (its school or switch failed). When it began: GET /api/v1/outages, or "
            "edumon_terminal_last_change_timestamp_seconds.",
            "school",
            "classroom",
        )
        terminals = self._runtime.terminals
        for school in self._runtime.state.inventory.schools.values():
            for room in school.classrooms:
                if terminals is None or terminals.of_classroom(room.id) is None:
                    continue
                outage = tracker.classrooms.get(room.id)
                ids = {"school": school.code, "classroom": room.id}
                room_outage.add(1 if outage is not None else 0, **ids)
        opened = _counter(
            "edumon_outages_opened",
            "Outages opened since start, by kind (school, classroom).",
            "kind",
        )
        for kind, count in tracker.opened_total.items():
            opened.add(count, kind=kind.value)
        yield from (school_outage, school_start, room_outage, opened)

    # -- classroom terminals and the schedule ----------------------------------------------

    def _terminals(self, rooms: list[ClassroomNow]) -> Iterator[_Family]:
        labels = ("school", "classroom", "terminal")
        up = _gauge(
            "edumon_terminal_up",
            "Whether the classroom terminal is online (1) or not (0: offline, or never heard "
            "from since the collector started).",
            *labels,
        )
        last_seen = _gauge(
            "edumon_terminal_last_seen_timestamp_seconds",
            "When the terminal's last birth or heartbeat arrived, Unix seconds.",
            *labels,
        )
        last_change = _gauge(
            "edumon_terminal_last_change_timestamp_seconds",
            "When the terminal went online or offline, Unix seconds (for a heartbeat "
            "timeout, its last sign of life); absent if never heard from.",
            *labels,
        )
        uptime = _gauge(
            "edumon_terminal_uptime_seconds",
            "The terminal's uptime in its last heartbeat; absent while it is not online.",
            *labels,
        )
        speed = _gauge(
            "edumon_terminal_link_speed_bytes",
            "The terminal's NIC link speed in its last heartbeat, bytes per second; absent "
            "while it is not online or its NIC reports no speed (Wi-Fi).",
            *labels,
        )
        reason = _gauge(
            "edumon_terminal_offline_reason",
            "Why the terminal is not online: one series at 1 while it is not online, whose "
            "reason is will (Last Will: connection lost, agent killed), shutdown, timeout "
            "(heartbeats stopped) or never_seen; absent while it is online.",
            *labels,
            "reason",
        )
        info = _info(
            "edumon_terminal",
            "What the terminal's last heartbeat said about itself (its IP and MAC address, "
            "which change, are in the API).",
            *labels,
            "agent_version",
            "nic",
            "duplex",
        )
        expected = _gauge(
            "edumon_classroom_expected_online",
            "Whether a lesson is scheduled in the classroom now (1) or not (0), from the "
            "school calendar (校历), the working calendar (调休 included) and the timetable.",
            "school",
            "classroom",
        )
        in_lesson = _gauge(
            "edumon_classroom_offline_in_lesson",
            "Whether the classroom's terminal is offline while a lesson is scheduled (1) or "
            "not (0); absent while the school's uplink is down (the classroom is unknown).",
            "school",
            "classroom",
        )
        for c in rooms:
            room = {"school": c.school.code, "classroom": c.room.id}
            if c.expected_online is not None:
                expected.add(1 if c.expected_online else 0, **room)
            st = c.terminal
            if st is None:
                continue
            ids = {**room, "terminal": st.terminal}
            up.add(1 if c.online else 0, **ids)
            if not c.online and c.offline_reason is not None:
                reason.add(1, **ids, reason=c.offline_reason)
            info.add(
                1,
                **ids,
                agent_version=st.agent_version or "",
                nic=st.nic or "",
                duplex=st.duplex,
            )
            if st.last_seen is not None:
                last_seen.add(st.last_seen, **ids)
            if c.since is not None:
                last_change.add(c.since, **ids)
            if c.online and st.uptime_seconds is not None:
                uptime.add(st.uptime_seconds, **ids)
            if c.online and st.link_speed_mbps is not None:
                speed.add(mbps_to_bytes(st.link_speed_mbps), **ids)
            if c.offline_in_lesson is not None and not c.uplink_down:
                in_lesson.add(1 if c.offline_in_lesson else 0, **room)
        yield from (up, last_seen, last_change, uptime, speed, reason, info, expected, in_lesson)

        terminals = self._runtime.terminals
        if terminals is None:
            return
        unknown = _gauge(
            "edumon_terminals_unknown",
            "Terminals sending messages that are in no classroom of the inventory "
            "(GET /api/v1/terminals/unknown lists them).",
        )
        unknown.add(len(terminals.unknown))
        ignored = _counter(
            "edumon_terminal_messages_ignored",
            "Terminal messages that changed nothing, by reason: unknown_terminal, duplicate "
            "(redelivered), old_session, stale_offline (a late Last Will of a replaced session).",
            "reason",
        )
        for cause in sorted(set(IGNORED_REASONS) | set(terminals.ignored)):
            ignored.add(terminals.ignored.get(cause, 0), reason=cause)
        messages = _counter(
            "edumon_collector_terminal_messages",
            "Terminal messages (heartbeats and statuses) the collector took from its queue.",
        )
        messages.add(self._runtime.collector.stats.terminal_messages_total)
        yield from (unknown, ignored, messages)

    def _calendar(self, now: float) -> Iterator[_Family]:
        calendar = self._runtime.calendar
        if calendar is None:
            return
        today = local_date(self._runtime, now)
        # Asking for the coverage also logs the advice, once a day, while a year is missing.
        coverage = calendar.coverage(today)
        fallback = _gauge(
            "edumon_calendar_fallback",
            "1 when no holiday arrangement (file or chinese-calendar data) covers today: "
            "statutory holidays and weekends decide, 调休 make-up working days are unknown.",
        )
        fallback.add(0 if calendar.workday(today).arranged else 1)
        warning = _gauge(
            "edumon_calendar_coverage_warning",
            "1 while today's year has no holiday arrangement, and from 1 December while next "
            "year has none: add the State Council's notice as YYYY.toml to [schedule] "
            "calendar_dir (see the log or /api/v1/summary for where).",
        )
        warning.add(1 if coverage.warning else 0)
        covered = _gauge(
            "edumon_calendar_covered_until_timestamp_seconds",
            "End of the last date a holiday arrangement covers (00:00 local time of the day "
            "after it), in Unix seconds.",
        )
        until = coverage.covered_until
        if until is not None:
            covered.add(midnight(self._runtime, until + timedelta(days=1)))
        rejected = _gauge(
            "edumon_calendar_rejected_files",
            "Arrangement files left out because they are invalid (or an unreadable "
            "calendar_dir); each problem is logged, edumon check-config names file, line, key.",
        )
        rejected.add(len(coverage.rejected))
        yield from (fallback, warning, covered, rejected)

    # -- the collector's own health --------------------------------------------------------

    def _collector(self) -> Iterator[_Family | Metric]:
        collector = self._runtime.collector
        stats = collector.stats
        depth = _gauge(
            "edumon_collector_queue_depth", "Observations waiting in the collector's queue."
        )
        depth.add(collector.queue_depth)
        capacity = _gauge(
            "edumon_collector_queue_capacity",
            "Size of the collector's queue; observations beyond it are dropped.",
        )
        capacity.add(collector.queue_capacity)
        observations = _counter(
            "edumon_collector_observations", "Poll results applied to the state."
        )
        observations.add(stats.observations_total)
        dropped = _counter(
            "edumon_collector_dropped",
            "Data dropped, by reason: queue_full counts poll results, pending_* count rows "
            "shed while the database was unavailable for too long.",
            "reason",
        )
        for reason in sorted(set(_DROP_REASONS) | set(stats.dropped_total)):
            dropped.add(stats.dropped_total.get(reason, 0), reason=reason)
        events = _counter("edumon_collector_events", "State changes recorded, by kind.", "kind")
        for kind in sorted({k.value for k in EventKind} | set(stats.events_total)):
            events.add(stats.events_total.get(kind, 0), kind=kind)
        yield from (depth, capacity, observations, dropped, events)

        write = SummaryMetricFamily(
            "edumon_store_write_duration_seconds",
            "Time taken by batched writes to the database that succeeded.",
            count_value=stats.write_seconds_count,
            sum_value=stats.write_seconds_sum,
        )
        yield write
        failures = _counter(
            "edumon_store_write_failures",
            "Batched writes that failed (their rows are kept and retried).",
        )
        failures.add(stats.write_failures_total)
        rows = _counter("edumon_store_written_rows", "Rows (samples and events) written.")
        rows.add(stats.rows_written_total)
        pruned = _counter(
            "edumon_store_pruned_rows", "Samples deleted for being older than the retention."
        )
        pruned.add(stats.pruned_rows_total)
        pending = _gauge(
            "edumon_store_pending_rows", "Rows accepted but not yet written to the database."
        )
        pending.add(stats.pending_rows)
        yield from (failures, rows, pruned, pending)
        if stats.last_write_ok_at is not None:
            last = _gauge(
                "edumon_store_last_write_success_timestamp_seconds",
                "When a batch was last written successfully, Unix seconds.",
            )
            last.add(stats.last_write_ok_at)
            yield last

    def _snmp(self) -> Iterator[_Family | Metric]:
        # District-wide: a histogram per switch would cost 12 series each; the last poll's
        # duration per switch is a gauge beside it.
        duration = HistogramMetricFamily(
            "edumon_snmp_poll_duration_seconds",
            "How long polls of the switches took (successful or not), all switches together.",
        )
        last_duration = _gauge(
            "edumon_snmp_last_poll_duration_seconds",
            "How long the last poll of each switch took (successful or not).",
            "device",
        )
        polls = _counter(
            "edumon_snmp_polls", "Polls of each switch by result (ok, failed).", "device", "result"
        )
        poller = self._runtime.poller
        if poller is None:
            # No poller in this process (a collector fed over MQTT, or a test): what the
            # state recorded from the observations is all there is.
            total = DurationHistogram()
            for dev in self._runtime.state.devices.values():
                if dev.last_poll_at is not None:
                    last_duration.add(dev.poll_seconds, device=dev.device_id)
                    total.merge(dev.poll_durations)
                for result, value in zip(
                    _POLL_RESULTS, (dev.polls_ok, dev.polls_failed), strict=True
                ):
                    polls.add(value, device=dev.device_id, result=result)
            _observe(duration, total)
            yield duration
            yield from (last_duration, polls)
            return
        yield from self._poller(poller, duration, last_duration, polls)

    def _poller(
        self,
        poller: PollerView,
        duration: HistogramMetricFamily,
        last_duration: _Family,
        polls: _Family,
    ) -> Iterator[_Family | Metric]:
        per_device = {
            "requests": _counter(
                "edumon_snmp_requests",
                "SNMP request attempts sent to each switch (retries and v3 discovery included).",
                "device",
            ),
            "timeouts": _counter(
                "edumon_snmp_timeouts",
                "SNMP request attempts to each switch that got no reply in time.",
                "device",
            ),
            "retries": _counter(
                "edumon_snmp_retries",
                "SNMP request attempts after the first for the same request.",
                "device",
            ),
            "varbinds": _counter(
                "edumon_snmp_varbinds",
                "Varbinds received from each switch (a walk's overshoot included).",
                "device",
            ),
            "walks_aborted": _counter(
                "edumon_snmp_walks_aborted",
                "Polls given up because a table walk returned more rows (max_walk_rows) or "
                "took more requests (max_walk_requests) than allowed: a looping or broken agent.",
                "device",
            ),
        }
        last_varbinds = _gauge(
            "edumon_snmp_last_poll_varbinds",
            "Values kept from the last successful poll of each switch.",
            "device",
        )
        max_repetitions = _gauge(
            "edumon_snmp_max_repetitions",
            "GETBULK max-repetitions the next walk of each switch will use "
            "(lowered after tooBig replies and timeouts).",
            "device",
        )
        ids = sorted({sw.id for sw in poller.switches} | set(poller.device_stats))
        total = DurationHistogram()
        for device in ids:
            st = poller.device_stats.get(device)
            for result in _POLL_RESULTS:
                count = 0 if st is None else (st.polls_ok if result == "ok" else st.polls_failed)
                polls.add(count, device=device, result=result)
            for attr, family in per_device.items():
                family.add(0 if st is None else getattr(st, attr), device=device)
            if st is None or st.polls_ok + st.polls_failed == 0:
                continue  # not polled yet: no last poll to describe
            total.merge(st.poll_seconds)
            last_duration.add(st.last_poll_seconds, device=device)
            last_varbinds.add(st.last_varbinds, device=device)
            max_repetitions.add(st.max_repetitions, device=device)
        _observe(duration, total)
        yield duration
        yield from (last_duration, polls, *per_device.values(), last_varbinds, max_repetitions)

        in_flight = _gauge("edumon_snmp_polls_in_flight", "Switches being polled right now.")
        in_flight.add(poller.stats.polls_in_flight)
        overruns = _counter(
            "edumon_snmp_poll_overruns",
            "Poll intervals skipped because a poll outlasted its interval.",
        )
        overruns.add(poller.stats.overruns)
        lag = HistogramMetricFamily(
            "edumon_snmp_poll_lag_seconds",
            "How late each scheduled poll started after its due time (a busy process or "
            "too few max_in_flight slots).",
        )
        _observe(lag, poller.stats.lag)
        worst_lag = _gauge(
            "edumon_snmp_poll_lag_max_seconds",
            "The worst poll lag over the last full poll interval.",
        )
        worst_lag.add(poller.stats.worst_lag_seconds)
        yield lag
        transport = poller.transport_stats
        sent = _counter("edumon_snmp_datagrams_sent", "UDP datagrams sent to switches.")
        sent.add(transport.sent)
        received = _counter("edumon_snmp_datagrams_received", "UDP datagrams received.")
        received.add(transport.received)
        dropped = _counter(
            "edumon_snmp_datagrams_dropped",
            "Datagrams received and discarded: undecodable, or matching no outstanding request "
            "(a reply that came after its timeout).",
            "reason",
        )
        dropped.add(transport.undecodable, reason="undecodable")
        dropped.add(transport.unmatched, reason="unmatched")
        socket_errors = _counter(
            "edumon_snmp_socket_errors", "Errors the UDP socket reported (e.g. ICMP unreachable)."
        )
        socket_errors.add(transport.socket_errors)
        yield from (in_flight, overruns, worst_lag, sent, received, dropped, socket_errors)

    # -- MQTT ingest -----------------------------------------------------------------------

    def _mqtt(self) -> Iterator[_Family]:
        ingest = self._runtime.ingest
        if ingest is None:
            return  # no MQTT ingest in this process (a test of the SNMP side)
        stats = ingest.stats
        received = _counter(
            "edumon_mqtt_received", "MQTT messages received on the terminal topics."
        )
        received.add(stats.received_total)
        accepted = _counter(
            "edumon_mqtt_accepted",
            "MQTT messages that passed validation and went to the collector, by kind "
            "(heartbeat, status).",
            "kind",
        )
        for kind in sorted({KIND_HEARTBEAT, KIND_STATUS} | set(stats.accepted_by_kind)):
            accepted.add(stats.accepted_by_kind.get(kind, 0), kind=kind)
        rejected = _counter(
            "edumon_mqtt_rejected",
            "MQTT messages rejected by validation, by reason (too_large, bad_json, "
            "schema_version, id_mismatch, ...).",
            "reason",
        )
        for reason in sorted(set(WIRE_REASONS) | set(stats.rejected_total)):
            rejected.add(stats.rejected_total.get(reason, 0), reason=reason)
        connected = _gauge(
            "edumon_mqtt_connected",
            "Whether the ingest is connected and subscribed to the MQTT broker (1) or not (0).",
        )
        connected.add(1 if stats.connected else 0)
        reconnects = _counter(
            "edumon_mqtt_reconnects",
            "Connections to the MQTT broker after the first one (each follows a lost one).",
        )
        reconnects.add(stats.reconnects_total)
        failures = _counter(
            "edumon_mqtt_connect_failures",
            "Attempts to connect to the MQTT broker that failed (refused, unreachable, timeout).",
        )
        failures.add(stats.connect_failures_total)
        yield from (received, accepted, rejected, connected, reconnects, failures)
        if stats.last_message_at is not None:
            last = _gauge(
                "edumon_mqtt_last_message_timestamp_seconds",
                "When the ingest last received a message, Unix seconds.",
            )
            last.add(stats.last_message_at)
            yield last

    # -- notifications ---------------------------------------------------------------------

    def _notify(self) -> Iterator[Metric]:
        notifier = self._runtime.notifier
        if notifier is not None:  # None: no [notify] channels configured
            yield from notify_families(notifier)


def _observe(family: HistogramMetricFamily, hist: DurationHistogram) -> None:
    buckets = [(repr(float(b)), float(c)) for b, c in zip(hist.bounds, hist.counts, strict=True)]
    buckets.append(("+Inf", float(hist.total)))
    family.add_metric([], buckets, hist.sum)


def _port_known(dev: DeviceState, iface: InterfaceState) -> bool:
    """Whether the port's last reading still stands (its switch answered the last poll)."""
    return bool(dev.reachable) and iface.known


def _count(sc: SchoolCompliance, verdict: Verdict) -> int:
    return sum(1 for r in sc.classrooms if r.verdict is verdict)
