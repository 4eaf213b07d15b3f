"""The process's own figures and the district's totals: small families, rendered at each scrape.

These are a few dozen series whatever the district's size (the collector's queue, the store's
writes, the SNMP transport, the MQTT ingest, notifications, the working calendar), so they are
built with prometheus_client's metric families and its encoders at every scrape; the per-switch,
per-school and per-classroom families are cached (``edumon.exporters.metrics.exposition``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from edumon.domain.counters import DurationHistogram
from edumon.domain.models import EventKind
from edumon.domain.terminals import IGNORED_REASONS
from edumon.exporters.metrics.entities import mbps_to_bytes
from edumon.exporters.notify import notify_families
from edumon.quality_view import data_quality
from edumon.runtime import Runtime
from edumon.views import local_date, midnight
from edumon.wire import KIND_HEARTBEAT, KIND_STATUS
from edumon.wire import REASONS as WIRE_REASONS

_QUALITY_EVERY_SECONDS = 60.0
"""edumon_data_quality_warnings is worked out again at most once a poll interval (and at
least once a minute): a warning needs a poll interval to be one, and the checks walk every
classroom of the district; the scrapes in between reuse the counts."""
# Reasons the collector drops data for; rendered at 0 from the start so that
# increase(...) sees the first drop (a series that appears at 1 has no increase).
_DROP_REASONS = (
    "queue_full",
    "pending_interface_samples",
    "pending_device_samples",
    "pending_terminal_samples",
)


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


class ProcessCollector:
    """A prometheus_client collector of the small families, rendered at each scrape.

    Args:
        runtime: the daemon's live parts; read, never changed.
        poll_durations: the district's poll-duration histogram (kept by the exposition as
            switches change, so that a scrape does not sum thousands of them).
        clock: the current time in Unix seconds (today's date for the calendar).
    """

    def __init__(
        self,
        runtime: Runtime,
        poll_durations: Callable[[], DurationHistogram],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._runtime = runtime
        self._poll_durations = poll_durations
        self._clock = clock
        self._quality_memo: tuple[float, Counter[tuple[str, str]]] | None = None

    def collect(self) -> Iterable[Metric]:
        families: list[_Family | Metric] = []
        families.extend(self._district())
        families.extend(self._outages())
        families.extend(self._terminals())
        families.extend(self._quality())
        families.extend(self._calendar(self._clock()))
        families.extend(self._collector())
        families.extend(self._snmp())
        families.extend(self._mqtt())
        families.extend(self._broker())
        families.extend(self._agent_reports())
        families.extend(self._notify())
        families.extend(self._gc())
        families.extend(self._access())
        families.extend(self._cluster())
        for family in families:
            yield family.metric if isinstance(family, _Family) else family

    def _district(self) -> Iterator[_Family]:
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
        if self._runtime.started_at > 0:
            started = _gauge(
                "edumon_start_time_seconds", "When this edumon process started, Unix seconds."
            )
            started.add(self._runtime.started_at)
            yield started

    def _outages(self) -> Iterator[_Family]:
        tracker = self._runtime.outages
        if tracker is None:
            return
        opened = _counter(
            "edumon_outages_opened",
            "Outages opened since start, by kind (school, classroom).",
            "kind",
        )
        for kind, count in tracker.opened_total.items():
            opened.add(count, kind=kind.value)
        yield opened

    def _terminals(self) -> Iterator[_Family]:
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
            "(redelivered), old_session, stale_offline (a late Last Will of a replaced session), "
            "clock_skew (dated too far in the future), broker_will (a Will the broker published "
            "as it went away: the terminal is unknown, not offline).",
            "reason",
        )
        for cause in sorted(set(IGNORED_REASONS) | set(terminals.ignored)):
            ignored.add(terminals.ignored.get(cause, 0), reason=cause)
        historical = _counter(
            "edumon_terminal_heartbeats_historical",
            "Historical heartbeats (sent late from a terminal agent's spool) stored at their "
            "own time without changing the terminal's state (docs/wire-protocol.md).",
        )
        historical.add(terminals.historical)
        messages = _counter(
            "edumon_collector_terminal_messages",
            "Terminal messages (heartbeats and statuses) the collector took from its queue.",
        )
        messages.add(self._runtime.collector.stats.terminal_messages_total)
        yield from (unknown, ignored, messages)

    def _quality(self) -> Iterator[_Family]:
        # Worked out at most every few seconds: it walks every classroom of the district.
        now = self._clock()
        every = min(_QUALITY_EVERY_SECONDS, self._runtime.config.polling.interval_seconds)
        if self._quality_memo is None or now - self._quality_memo[0] >= every:
            counts = Counter((w.school, w.kind) for w in data_quality(self._runtime, now=now))
            self._quality_memo = (now, counts)
        warnings = _gauge(
            "edumon_data_quality_warnings",
            "Data-quality warnings by school and kind: where the switches and terminals "
            "contradict the inventory (GET /api/v1/data-quality names the rows to fix); "
            "absent for a school and kind without any.",
            "school",
            "kind",
        )
        for (school, kind), count in sorted(self._quality_memo[1].items()):
            warnings.add(count, school=school, kind=kind)
        yield warnings

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
        available = _gauge(
            "edumon_store_available",
            "1 while the database takes writes, 0 since a write failed (until one succeeds); "
            "rows meanwhile wait in memory (edumon_store_pending_rows).",
        )
        available.add(0 if self._runtime.store.write_failing is not None else 1)
        yield from (failures, rows, pruned, pending, available)
        if stats.last_write_ok_at is not None:
            last = _gauge(
                "edumon_store_last_write_success_timestamp_seconds",
                "When a batch was last written successfully, Unix seconds.",
            )
            last.add(stats.last_write_ok_at)
            yield last

    def _snmp(self) -> Iterator[_Family | Metric]:
        # District-wide: a histogram per switch would cost 12 series each; the last poll's
        # duration per switch is a gauge beside it (cached with the switch).
        duration = HistogramMetricFamily(
            "edumon_snmp_poll_duration_seconds",
            "How long polls of the switches took (successful or not), all switches together.",
        )
        _observe(duration, self._poll_durations())
        yield duration
        poller = self._runtime.poller
        if poller is None:
            return  # no poller in this process: the state's figures are all there is
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
        collector = self._runtime.collector
        now = self._clock()
        blind = _gauge(
            "edumon_mqtt_blind",
            "Whether the collector is blind (1): its MQTT broker link has been down longer than "
            "the grace (10 s), every terminal is unknown and /readyz fails.",
        )
        blind.add(1 if collector.blind(now) else 0)
        blind_seconds = _gauge(
            "edumon_mqtt_blind_seconds",
            "How long the MQTT broker link has been down, seconds (0 while it is up).",
        )
        blind_seconds.add(collector.blind_seconds(now))
        yield from (received, accepted, rejected, connected, reconnects, failures)
        yield from (blind, blind_seconds)
        resumed = _counter(
            "edumon_mqtt_sessions_resumed",
            "Connections on which the broker still held the collector's persistent session "
            "(and delivered what it queued meanwhile).",
        )
        resumed.add(stats.sessions_resumed_total)
        unacked = _gauge(
            "edumon_mqtt_unacknowledged_messages",
            "QoS 1 messages received and not yet acknowledged: waiting for the store's commit.",
        )
        unacked.add(stats.acks_pending)
        collector_stats = self._runtime.collector.stats
        schools: set[str] = (
            set(collector_stats.lost_messages_total)
            | set(collector_stats.duplicates_total)
            | set(collector_stats.resume_gap_messages_total)
        )
        terminals = self._runtime.terminals
        if terminals is not None:
            schools.update(ref.school for ref in terminals.inventory)
        lost = _counter(
            "edumon_mqtt_lost_messages",
            "Messages terminals numbered and the collector never received (gaps in seq within "
            "one session), by school: loss is counted, never silent (docs/wire-protocol.md).",
            "school",
        )
        duplicates = _counter(
            "edumon_mqtt_duplicates",
            "Messages received again after they were stored (a broker redelivery), by school; "
            "each was recognised and stored once.",
            "school",
        )
        resume_gaps = _counter(
            "edumon_mqtt_resume_gap_messages",
            "Messages between a terminal's stored position and its first message after a "
            "restart, by school: acknowledged ones that stored nothing, or lost at the broker "
            "(the two cannot be told apart, so they are not counted as lost; "
            "docs/wire-protocol.md).",
            "school",
        )
        for school in sorted(schools):
            lost.add(collector_stats.lost_messages_total.get(school, 0), school=school)
            duplicates.add(collector_stats.duplicates_total.get(school, 0), school=school)
            resume_gaps.add(collector_stats.resume_gap_messages_total.get(school, 0), school=school)
        yield from (resumed, unacked, lost, duplicates, resume_gaps)
        if stats.last_message_at is not None:
            last = _gauge(
                "edumon_mqtt_last_message_timestamp_seconds",
                "When the ingest last received a message, Unix seconds.",
            )
            last.add(stats.last_message_at)
            yield last

    def _broker(self) -> Iterator[_Family]:
        broker = self._runtime.embedded_broker
        if broker is None:
            return  # an external broker (Mosquitto) counts its own refusals
        refused = _counter(
            "edumon_mqtt_broker_refused",
            "Connections the embedded MQTT broker refused or ended, by reason: credentials "
            "(bad user name or password, or none), not_authorized (not the collector's account "
            "on its internal listener), will (a Will on a topic not the account's), client_id "
            "(another account's session), too_large (a packet or message over the limit), "
            "protocol (the first packet is not a CONNECT).",
            "reason",
        )
        for reason, count in sorted(broker.refused.items()):
            refused.add(count, reason=reason)
        yield refused

    # -- school agents' reports (edumon/sources/agent_reports.py) ---------------------------

    def _agent_reports(self) -> Iterator[_Family]:
        reports = self._runtime.agent_reports
        if reports is None:
            return
        stats = reports.stats
        families = []
        for name, doc, value in (
            (
                "edumon_agent_reports_received",
                "School agents' messages received.",
                stats.received_total,
            ),
            (
                "edumon_agent_reports_accepted",
                "School agents' poll reports accepted (once each).",
                stats.accepted_total,
            ),
            (
                "edumon_agent_reports_historical",
                "Accepted poll reports older than the newest of their switch (replayed from the "
                "agent's spool): stored at their own time, the current state unchanged.",
                stats.historical_total,
            ),
            (
                "edumon_agent_reports_duplicates",
                "Poll reports received again (same agent, boot id and seq): applied once.",
                stats.duplicates_total,
            ),
            (
                "edumon_agent_reports_gaps",
                "Seqs an agent boot skipped when a later one arrived (see "
                "edumon_agent_reports_missing for those that never came).",
                stats.gaps_total,
            ),
            (
                "edumon_agent_reports_recorded",
                "Poll reports recorded in the agent_reports table, in the transaction that "
                "stores their rows (then acknowledged).",
                stats.recorded_total,
            ),
        ):
            family = _counter(name, doc)
            family.add(value)
            families.append(family)
        rejected = _counter(
            "edumon_agent_reports_rejected",
            "School agents' messages refused, by reason (the wire's, not_agent_school, "
            "foreign_device, bad_observation).",
            "reason",
        )
        for reason, count in sorted(stats.rejected_total.items()):
            rejected.add(count, reason=reason)
        missing = _gauge(
            "edumon_agent_reports_missing",
            "Poll reports lost: seqs below an agent boot's highest that never arrived.",
        )
        missing.add(reports.missing)
        connected = _gauge(
            "edumon_agent_reports_connected",
            "Whether every subscription to school agents' topics (one per held shard in a "
            "cluster) is connected (1) or not (0).",
        )
        connected.add(1 if stats.connected else 0)
        up = _gauge(
            "edumon_agent_up",
            "Whether a school agent's retained status says online (1) or offline (0).",
            "school",
            "agent",
        )
        dropped = _gauge(
            "edumon_agent_spool_dropped",
            "Poll reports a school agent dropped from its full spool (its status says).",
            "school",
            "agent",
        )
        for agent, view in sorted(reports.agents.items()):
            if view.online is not None:
                up.add(1 if view.online else 0, school=view.school, agent=agent)
            if view.spool_dropped is not None:
                dropped.add(view.spool_dropped, school=view.school, agent=agent)
        yield from (*families, rejected, missing, connected, up, dropped)

    # -- notifications ---------------------------------------------------------------------

    def _notify(self) -> Iterator[Metric]:
        notifier = self._runtime.notifier
        if notifier is not None:  # None: no [notify] channels configured
            yield from notify_families(notifier)

    def _gc(self) -> Iterator[Metric]:
        pauses = self._runtime.gc_pauses
        if pauses is None:
            return
        family = HistogramMetricFamily(
            "edumon_gc_pause_seconds",
            "How long each garbage collection held the process (every part of the daemon "
            "waits meanwhile), by generation.",
            labels=["generation"],
        )
        for generation, hist in enumerate(pauses.by_generation):
            _observe(family, hist, str(generation))
        yield family

    def _access(self) -> Iterator[_Family]:
        access = self._runtime.access
        if access is None:
            return
        failures = _counter(
            "edumon_api_auth_failures",
            "Requests to the API, status page or /metrics refused, by reason: missing (no "
            "token), invalid (a token that matches none), expired (an ended status-page "
            "login), forbidden (a school's token on a district-only route).",
            "reason",
        )
        for reason, count in access.failures.items():
            failures.add(count, reason=reason)
        yield failures

    def _cluster(self) -> Iterator[_Family]:
        cluster = self._runtime.cluster
        if cluster is None:
            return  # one collector runs every school
        stats = cluster.stats
        info = _info("edumon_cluster", "This collector's id in its cluster.", "collector")
        info.add(1, collector=cluster.me)
        shards = _gauge("edumon_cluster_shards", "Shards the district's schools are hashed into.")
        shards.add(cluster.shards_total)
        held = _gauge(
            "edumon_cluster_shards_held",
            "Shards this collector runs now (the sum over collectors is the number of shards "
            "unless one is being handed over).",
        )
        held.add(len(cluster.active))
        alive = _gauge(
            "edumon_cluster_collectors_alive", "Collectors whose heartbeat this one last saw."
        )
        alive.add(stats.live_collectors)
        changes = _counter(
            "edumon_cluster_shard_changes",
            "Shards this collector took (taken), gave back to a newcomer (given_back), or "
            "lost (lost: taken over, or its leases ran out while the database was unreachable).",
            "change",
        )
        changes.add(stats.taken_total, change="taken")
        changes.add(stats.given_back_total, change="given_back")
        changes.add(stats.lost_total, change="lost")
        failures = _counter(
            "edumon_cluster_lease_round_failures",
            "Lease rounds that failed (database unreachable or slower than half a lease).",
        )
        failures.add(stats.round_failures_total)
        yield from (info, shards, held, alive, changes, failures)


def _observe(family: HistogramMetricFamily, hist: DurationHistogram, *labels: str) -> None:
    buckets = [(repr(float(b)), float(c)) for b, c in zip(hist.bounds, hist.counts, strict=True)]
    buckets.append(("+Inf", float(hist.total)))
    family.add_metric(list(labels), buckets, hist.sum)
