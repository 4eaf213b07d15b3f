"""The collector: one bounded queue from the sources into state, events and batched store writes."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

from edumon.domain.models import (
    DeviceSample,
    Event,
    EventKind,
    Observation,
    TerminalSample,
)
from edumon.domain.rollups import (
    BUCKET_SECONDS,
    DeviceSampleThinner,
    InterfaceRollup,
    InterfaceRollups,
    TerminalSampleThinner,
)
from edumon.domain.state import NetworkState
from edumon.domain.terminals import DEFAULT_TIMEOUT_SECONDS, TerminalsState, TerminalState
from edumon.errors import StoreError
from edumon.store import StoreProtocol
from edumon.store.protocol import AgentReportRow, SenderPosition
from edumon.wire import Heartbeat, Status

log = logging.getLogger(__name__)

# Observations waiting for the collector. A poll cycle of a county is a few hundred; a
# city's collector has one per switch per minute — the bound is for a database that
# is down, not for normal load.
DEFAULT_QUEUE_SIZE = 10_000
# Rows kept in memory while the database is unreachable, before the oldest samples go
# (events are never dropped to make room: they are the record of what happened).
DEFAULT_MAX_PENDING_ROWS = 2_000_000
# Rows in one write transaction; more pending rows make the next write start at once.
DEFAULT_MAX_WRITE_ROWS = 20_000
_RETRY_MIN_SECONDS = 1.0
_RETRY_MAX_SECONDS = 30.0
# While a write is in flight, the consumer wakes this often to notice it finish.
_WRITER_POLL_SECONDS = 0.02
# Rows taken from the queue in one go before checking whether a write is due.
_MAX_BATCH_FACTOR = 20
# How often silent terminals are looked for; a timeout is noticed at most this late.
_EXPIRE_EVERY_SECONDS = 1.0
# Terminal online/offline changes are logged as one line per school, once the school's first
# unlogged change is this old: a start-up (retained births, then a heartbeat from everyone) or
# a school's power cut is one line, not one per terminal.
TERMINAL_SUMMARY_SECONDS = 30.0
_TERMINAL_EVENTS = frozenset({EventKind.TERMINAL_ONLINE, EventKind.TERMINAL_OFFLINE})

# A school's summary line names its terminals that changed when they are this few.
_NAMED_CHANGES = 3

TerminalMessage = tuple[Heartbeat | Status, float, int, bool]
"""A parsed MQTT message, when it was received, its number (1, 2, ... as submitted), and
whether it came in the backlog the broker queued while the collector was away."""

# A heartbeat from the broker's queue (the collector was away) that reaches us this much later
# than its own timestamp is stored at the timestamp, not at its arrival, as long as it is not
# older than LATE_WINDOW_SECONDS (docs/wire-protocol.md).
LATE_AFTER_SECONDS = 30.0
LATE_WINDOW_SECONDS = 86_400.0
# Stop reading MQTT while the queue is this full: the broker keeps the rest for us.
_PAUSE_FILL = 0.75
_TERMINAL_ROLE = "terminal"
_Position = tuple[tuple[str, int], int, float, float]
# Lost messages are logged at most this often (one line with the count); the metric has all.
_LOSS_LOG_EVERY_SECONDS = 60.0

COLLECTOR_DEVICE = "collector"
"""The device id of the collector's own events (``COLLECTOR_BLIND``, ``COLLECTOR_SIGHTED``)."""
DEFAULT_BLIND_GRACE_SECONDS = 10.0
"""/readyz and ``edumon_mqtt_blind`` report the link down once it has been down this long (a
reconnect takes a second or two); terminals become unknown at once."""


class LinkView(Protocol):
    """The broker link as the ingest reports it (``IngestStats``)."""

    @property
    def connected(self) -> bool: ...

    @property
    def connects_total(self) -> int: ...


@dataclass(frozen=True, slots=True)
class HistoricalObservation:
    """A poll older than the newest one applied for its switch (a school agent's spool replayed
    after an outage): stored at its own time, never applied to the current state."""

    observation: Observation


def _sample_of(msg: Heartbeat, classroom: str, at: float) -> TerminalSample:
    """The terminal sample a heartbeat is stored as, dated ``at``."""
    return TerminalSample(
        at=at,
        school=msg.school,
        terminal=msg.terminal,
        classroom=classroom,
        boot_id=msg.boot_id,
        seq=msg.seq,
        uptime_seconds=msg.uptime_seconds,
        link_speed_mbps=msg.link_speed_mbps,
        cpu_percent=msg.cpu_percent,
        memory_used_bytes=msg.memory_used_bytes,
        disk_used_bytes=msg.disk_used_bytes,
    )


@dataclass(slots=True)
class CollectorStats:
    """The collector's own health, read by the metrics exporter at scrape time."""

    observations_total: int = 0
    terminal_messages_total: int = 0
    dropped_total: dict[str, int] = field(default_factory=lambda: collections.Counter())
    events_total: dict[str, int] = field(default_factory=lambda: collections.Counter())
    rows_written_total: int = 0
    write_failures_total: int = 0
    write_seconds_sum: float = 0.0
    write_seconds_count: int = 0
    last_write_ok_at: float | None = None
    pending_rows: int = 0
    pruned_rows_total: int = 0
    historical_observations_total: int = 0
    """Polls replayed from a school agent's spool, stored without changing the present."""
    lost_messages_total: dict[str, int] = field(default_factory=lambda: collections.Counter())
    """Messages a sender numbered and we never got (gaps in ``seq`` within one session), by
    school: loss is counted, never silent."""
    duplicates_total: dict[str, int] = field(default_factory=lambda: collections.Counter())
    """Messages received again (a ``(boot, seq)`` already stored: a redelivery), by school."""
    resume_gap_messages_total: dict[str, int] = field(default_factory=lambda: collections.Counter())
    """Messages between a sender's stored position and its first message after a restart, by
    school: acknowledged ones that produced no row (their position is not stored) or ones lost
    at the broker; ambiguous, so not counted as lost (docs/wire-protocol.md)."""
    committed_messages: int = 0
    """Terminal messages whose rows are committed (what the ingest may acknowledge)."""
    not_stored_total: dict[str, int] = field(default_factory=lambda: collections.Counter())
    """Samples not stored by design (docs/storage.md), by kind: ``interface_port`` (a port
    that does not matter), ``interface_rolled_up`` (folded into a 5-minute roll-up),
    ``device`` and ``terminal`` (within a 5-minute bucket and unchanged)."""


@dataclass(slots=True)
class _TerminalChanges:
    """A school's terminal changes not logged yet."""

    first_at: float
    came_online: int = 0
    went_offline: int = 0
    terminals: list[str] = field(default_factory=list)
    """The first few terminals that changed (``_NAMED_CHANGES``)."""


class _Pending:
    """Rows accepted but not yet stored: kept across database failures."""

    def __init__(self) -> None:
        self.interface_rollups: list[InterfaceRollup] = []
        self.device_samples: list[DeviceSample] = []
        self.events: list[Event] = []
        self.terminal_samples: list[TerminalSample] = []

    def __len__(self) -> int:
        return (
            len(self.interface_rollups)
            + len(self.device_samples)
            + len(self.events)
            + len(self.terminal_samples)
        )

    def take(self, limit: int) -> _Pending:
        """At most ``limit`` rows, oldest first, events before samples.

        Bounded so that a batch retried after a failure does not grow with everything that
        arrived meanwhile: a write that timed out would be retried ever larger, and never
        succeed again while the rows waited in memory.
        """
        out = _Pending()
        room = limit
        for name in ("events", "device_samples", "terminal_samples", "interface_rollups"):
            rows = getattr(self, name)
            part, rest = rows[:room], rows[room:]
            setattr(out, name, part)
            setattr(self, name, rest)
            room -= len(part)
        return out

    def put_back(self, batch: _Pending) -> None:
        self.interface_rollups[:0] = batch.interface_rollups
        self.device_samples[:0] = batch.device_samples
        self.events[:0] = batch.events
        self.terminal_samples[:0] = batch.terminal_samples


class Collector:
    """Consumes observations, updates the state, and writes samples and events in batches.

    Sources call :meth:`submit`; :meth:`run` is the one consumer. A database that is down
    makes rows wait in memory (up to ``max_pending_rows``) and be retried with backoff;
    nothing accepted is dropped silently: every drop is logged and counted by reason.

    What is stored of the sample streams (edumon.domain.rollups, docs/storage.md): interface
    polls as 5-minute roll-ups of the ports that matter (the inventory's uplinks, classroom
    ports and links, and every port of the ``all_ports_switches``), written once per bucket;
    at most one device and one terminal sample per 5 minutes each, plus every change.
    """

    def __init__(
        self,
        state: NetworkState,
        store: StoreProtocol,
        *,
        terminals: TerminalsState | None = None,
        heartbeat_timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        batch_size: int = 500,
        flush_seconds: float = 2.0,
        retention_seconds: float = 30 * 86400,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_pending_rows: int = DEFAULT_MAX_PENDING_ROWS,
        clock: Callable[[], float] = time.time,
        expire_every_seconds: float = _EXPIRE_EVERY_SECONDS,
        all_ports_switches: Collection[str] = (),
        bucket_seconds: int = BUCKET_SECONDS,
        max_write_rows: int = DEFAULT_MAX_WRITE_ROWS,
        will_hold_seconds: float | None = None,
        blind_grace_seconds: float = DEFAULT_BLIND_GRACE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.store = store
        self.terminals = terminals
        if terminals is not None and will_hold_seconds is not None:
            # The daemon holds Wills (DEFAULT_WILL_HOLD_SECONDS); tests of one message at a
            # time count them at once.
            terminals.will_hold_seconds = will_hold_seconds
            terminals.hold_clock = monotonic  # real time, whatever the wall clock does
        self.blind_grace_seconds = blind_grace_seconds
        self.link_down_since: float | None = None
        """Since when the broker link is down (or not yet up); None while it is up or when
        this collector has no link to watch."""
        self.blind_spells = 0
        """Blind spells (the link lost after it had been up)."""
        self._connects_seen = 0
        self._heartbeat_timeout = heartbeat_timeout_seconds
        self.stats = CollectorStats()
        self._queue: asyncio.Queue[Observation | TerminalMessage | HistoricalObservation] = (
            asyncio.Queue(queue_size)
        )
        self._pending = _Pending()
        self._batch_size = batch_size
        self._max_batch = batch_size * _MAX_BATCH_FACTOR
        self._max_write_rows = max_write_rows
        self._writer: asyncio.Task[bool] | None = None
        self._flush_seconds = flush_seconds
        self._retention_seconds = retention_seconds
        self._max_pending = max_pending_rows
        self._clock = clock
        self._expire_every = expire_every_seconds
        self.expired_at: float | None = None
        """The time the last look for silent terminals judged them as of."""
        all_ports = frozenset(all_ports_switches)
        inventory = state.inventory
        self._port_matters: Callable[[str, str], bool] = lambda device, port: (
            device in all_ports or inventory.monitored(device, port)
        )
        self.rollups = InterfaceRollups(
            self._port_matters,
            seconds=bucket_seconds,
            grace_seconds=bucket_seconds,
        )
        self._device_thinner = DeviceSampleThinner(bucket_seconds)
        self._terminal_thinner = TerminalSampleThinner(bucket_seconds)
        # Historical heartbeats (late, dated by the terminal) are thinned apart from live ones.
        self._historical_thinner = TerminalSampleThinner(bucket_seconds)
        # Schools with terminal changes not logged yet.
        self._terminal_changes: dict[str, _TerminalChanges] = {}
        # Replayed history (HistoricalObservation): a state of its own, only for the rates
        # between consecutive old polls, and roll-ups and thinning of its own, so that the past
        # never moves the present's. Created on the first one.
        self._history: tuple[NetworkState, InterfaceRollups, DeviceSampleThinner] | None = None
        self.backlog: Callable[[], bool] | None = None
        """Whether the message being submitted comes from the broker's queue of what arrived
        while the collector was away (the MQTT ingest's ``in_backlog``)."""
        self.on_committed: Callable[[int], None] | None = None
        """Told, after each commit, how many terminal messages (counted in the order they
        were submitted) have their rows stored: the MQTT ingest's ``committed``."""
        self._submitted = 0  # terminal messages submitted (dropped ones included)
        self._applied = 0  # the number of the last terminal message applied
        self._marked = 0  # the last number a write was started for
        # Each terminal's newest (session, seq, observed_at, received_at) not yet written: stored
        # with the rows it covers.
        self._positions: dict[tuple[str, str], _Position] = {}
        # School agents' reports applied, not yet stored: each recorded with the batch that
        # completes its rows, then acknowledged (accept_report).
        self._reports: list[tuple[AgentReportRow, Callable[[], None]]] = []
        # Senders whose position came from the store and who have sent nothing new since: the
        # gap before their first new message is ambiguous (restore_positions).
        self._resumed: set[tuple[str, str]] = set()
        self._unlogged_loss = 0
        self._loss_logged_at = -_LOSS_LOG_EVERY_SECONDS

    def tracked_sizes(self) -> dict[str, int]:
        """Entries of what the collector keeps in memory, each bounded by the inventory.

        ``open_rollups``: one per port that matters at most; ``device_samples_last`` and
        ``terminal_samples_last``: one per switch and terminal; ``terminal_changes``: one per
        school; ``pending_rows``: bounded by ``max_pending_rows``.
        """
        return {
            "open_rollups": len(self.rollups),
            "finished_rollups": self.rollups.finished,
            "device_samples_last": len(self._device_thinner),
            "terminal_samples_last": len(self._terminal_thinner),
            "terminal_changes": len(self._terminal_changes),
            "pending_rows": len(self._pending),
            "queue": self._queue.qsize(),
        }

    def paused(self) -> bool:
        """Whether the MQTT ingest should stop reading for now (the queue is nearly full)."""
        return self._queue.qsize() >= self._queue.maxsize * _PAUSE_FILL

    def restore_positions(self, positions: Collection[SenderPosition]) -> int:
        """Load the stored senders' positions into the terminals' sessions (at start-up).

        A message the broker delivers again after a crash between our commit and its
        acknowledgement is then a duplicate, not a second row. Returns how many were loaded.

        A stored position is that of the sender's newest message that produced rows; messages
        after it that produced none were acknowledged without one. So the gap between it and
        the sender's first new message is not counted as loss but as a resume gap
        (``resume_gap_messages_total``); later gaps are loss as always.
        """
        if self.terminals is None:
            return 0
        loaded = 0
        for p in positions:
            if p.role == _TERMINAL_ROLE and self.terminals.restore_position(
                p.school, p.sender, (p.boot_id, p.birth_seq), p.seq, p.observed_at
            ):
                self._resumed.add((p.school, p.sender))
                loaded += 1
        return loaded

    def restore_left_online(self, terminals: Collection[tuple[str, str, float]]) -> int:
        """Note the terminals the store left online (at start-up, before any message).

        See ``TerminalsState.restore_online``. Returns how many are in the inventory.
        """
        if self.terminals is None:
            return 0
        now = self._clock()
        return sum(
            self.terminals.restore_online(school, terminal, now)
            for school, terminal, _ in terminals
        )

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def queue_capacity(self) -> int:
        return self._queue.maxsize

    async def submit(self, obs: Observation) -> None:
        """Hand an observation to the collector without blocking the source.

        When the queue is full the observation is dropped, logged and counted: a poll
        result is superseded by the next cycle, and blocking would stall every poller.
        """
        self.submit_nowait(obs)

    def submit_nowait(self, obs: Observation) -> None:
        """``submit`` for a caller that is not a coroutine (a school agent's report)."""
        try:
            self._queue.put_nowait(obs)
        except asyncio.QueueFull:
            self.stats.dropped_total["queue_full"] += 1
            log.warning(
                "collector queue full (%d); dropped a poll of %s",
                self._queue.maxsize,
                obs.device_id,
                extra={"device": obs.device_id, "reason": "queue_full"},
            )

    def submit_terminal(self, msg: Heartbeat | Status, received_at: float) -> None:
        """Hand a parsed terminal message to the collector (the MQTT ingest's sink; never blocks).

        A full queue drops the message, logged and counted: a heartbeat is superseded by the
        next one, and the ingest must keep reading or the broker's buffers fill instead.
        """
        self._submitted += 1
        try:
            backlog = self.backlog is not None and self.backlog()
            self._queue.put_nowait((msg, received_at, self._submitted, backlog))
        except asyncio.QueueFull:
            self.stats.dropped_total["queue_full"] += 1
            if self.stats.dropped_total["queue_full"] % 1000 == 1:
                log.warning(
                    "collector queue full (%d): dropping terminal messages", self._queue.maxsize
                )

    def accept_report(
        self,
        obs: Observation | None,
        *,
        historical: bool,
        row: AgentReportRow,
        ack: Callable[[], None],
    ) -> None:
        """Apply a school agent's report now, and ``ack`` it once its rows are committed.

        The report's record (``row``) is written in the transaction that completes every row
        accepted up to it, so a report recorded is a report whose rows are stored: a collector
        killed before that is sent it again, and one killed after it finds the record at
        start-up (docs/wire-protocol.md, "School agents"). Reports are few (one per switch
        and poll), so they skip the queue rather than wait behind a district's heartbeats.

        Args:
            obs: the poll; None for a report that only needs recording (a terminal probe).
            historical: an older poll than the newest of its switch (``submit_history``).
            row: its record.
            ack: acknowledges it to the broker.
        """
        if obs is not None:
            if historical:
                self._accept_history(obs)
            else:
                self._accept(obs)
        self._reports.append((row, ack))

    def submit_history(self, obs: Observation) -> None:
        """Hand over a poll older than the newest applied for its switch (never blocks).

        It is stored (device sample, interface roll-ups) at its own time but does not change
        the current state, and raises no events: the present is already known.
        """
        try:
            self._queue.put_nowait(HistoricalObservation(obs))
        except asyncio.QueueFull:
            self.stats.dropped_total["queue_full"] += 1

    def _accept_history(self, obs: Observation) -> None:
        if self._history is None:
            self._history = (
                NetworkState(self.state.inventory, []),
                InterfaceRollups(
                    self._port_matters,
                    seconds=self.rollups.seconds,
                    grace_seconds=self.rollups.grace_seconds,
                ),
                DeviceSampleThinner(self._device_thinner.seconds),
            )
        state, rollups, thinner = self._history
        applied = state.apply(obs)
        self.stats.observations_total += 1
        self.stats.historical_observations_total += 1
        rollups.add(applied.interface_samples)
        if thinner.keep(applied.device_sample, applied.events):
            self._pending.device_samples.append(applied.device_sample)
        else:
            self.stats.not_stored_total["device"] += 1
        self._shed()

    def _accept(self, item: Observation | TerminalMessage | HistoricalObservation) -> None:
        if isinstance(item, tuple):
            self._accept_terminal(*item)
            return
        if type(item) is HistoricalObservation:
            self._accept_history(item.observation)
            return
        assert not isinstance(item, HistoricalObservation)
        applied = self.state.apply(item)
        self.stats.observations_total += 1
        skipped = self.rollups.skipped
        self.rollups.add(applied.interface_samples)
        kept = len(applied.interface_samples) - (self.rollups.skipped - skipped)
        self.stats.not_stored_total["interface_port"] += self.rollups.skipped - skipped
        self.stats.not_stored_total["interface_rolled_up"] += kept
        if self._device_thinner.keep(applied.device_sample, applied.events):
            self._pending.device_samples.append(applied.device_sample)
        else:
            self.stats.not_stored_total["device"] += 1
        self._record(applied.events)
        self._shed()

    def record_events(self, events: tuple[Event, ...]) -> None:
        """Record events found outside an observation (outages): stored with the next batch."""
        self._record(events)

    def _record(self, events: tuple[Event, ...]) -> None:
        self._pending.events.extend(events)
        for event in events:
            self.stats.events_total[event.kind.value] += 1
            if event.kind in _TERMINAL_EVENTS and event.school is not None:
                # Summarised per school (_log_terminal_changes); each one at debug level.
                self._note_terminal_change(event)
                log.debug(
                    "event %s: %s",
                    event.kind.value,
                    event.message,
                    extra={"kind": event.kind.value, "school": event.school},
                )
                continue
            log.info(
                "event %s: %s",
                event.kind.value,
                event.message,
                extra={"kind": event.kind.value, "school": event.school, "device": event.device_id},
            )

    def _accept_terminal(
        self, msg: Heartbeat | Status, received_at: float, number: int, backlog: bool = False
    ) -> None:
        # The hot path of a district's heartbeats: kept to plain lookups and one allocation.
        self.stats.terminal_messages_total += 1
        self._applied = number
        terminals = self.terminals
        if terminals is None:
            self.stats.dropped_total["no_terminal_inventory"] += 1
            return
        st = terminals.terminals.get((msg.school, msg.terminal))
        if st is not None and type(msg) is Heartbeat:
            timing = terminals.timing(msg, received_at)
            if timing != "live":
                if timing == "historical":
                    self._store_historical(st.ref.classroom, msg)
                return
        heartbeats_before = st.heartbeats if st is not None else 0
        if st is not None and st.session is not None and st.last_seq is not None:
            self._count_sequence(msg, st.session, st.last_seq)
        events = terminals.apply(msg, received_at)
        if events:
            self._record(events)
            if st is not None:
                self._note_position(st, msg, received_at)
        if st is None:
            unknown = terminals.unknown.get(msg.district, msg.school, msg.terminal)
            if unknown is not None and unknown.messages == 1:
                log.warning(
                    "terminal %s of school %s (district %s) is not in the inventory: its "
                    "messages are counted, not used; add it as a classroom's terminal "
                    "(see GET /api/v1/terminals/unknown)",
                    msg.terminal,
                    msg.school,
                    msg.district,
                    extra={"terminal": msg.terminal, "school": msg.school},
                )
            return
        # Only a heartbeat the state accepted is a sample (not a duplicate, not an old session).
        if st.heartbeats > heartbeats_before and type(msg) is Heartbeat:
            late = received_at - msg.observed_at
            # A heartbeat the broker held while we were away is stored at its own time
            # (bounded); the state's "now" stays the receive time.
            at = (
                msg.observed_at
                if backlog and LATE_AFTER_SECONDS < late <= LATE_WINDOW_SECONDS
                else received_at
            )
            if not self._terminal_thinner.keep_values(
                msg.school, msg.terminal, at, msg.boot_id, msg.link_speed_mbps
            ):
                self.stats.not_stored_total["terminal"] += 1
                return
            self._pending.terminal_samples.append(_sample_of(msg, st.ref.classroom, at))
            if not events:
                self._note_position(st, msg, received_at)
            self._shed()

    def _note_position(
        self, st: TerminalState, msg: Heartbeat | Status, received_at: float
    ) -> None:
        """Keep the sender's position to be written with the rows this message produced.

        Only messages that produced rows (events, samples) need one: a redelivery of any
        other stores nothing twice (a heartbeat's sample is unique by (school, terminal, boot,
        seq) in the database), so the per-message upserts of the thinned heartbeats, the bulk of
        a district's traffic, are not written (docs/wire-protocol.md, "Collector session").
        """
        if st.session is not None and st.last_seq is not None:
            self._positions[(msg.school, msg.terminal)] = (
                st.session,
                st.last_seq,
                st.last_observed_at if st.last_observed_at is not None else msg.observed_at,
                received_at,
            )

    def _store_historical(self, classroom: str, msg: Heartbeat) -> None:
        """A heartbeat observed earlier (docs/wire-protocol.md, "Historical heartbeats"):
        a sample at its own timestamp; the terminal's current state is not touched."""
        sample = _sample_of(msg, classroom, msg.observed_at)
        if self._historical_thinner.keep(sample):
            self._pending.terminal_samples.append(sample)
            self._shed()
        else:
            self.stats.not_stored_total["terminal"] += 1

    def _count_sequence(
        self, msg: Heartbeat | Status, session: tuple[str, int], last_seq: int
    ) -> None:
        """Count a gap in ``seq`` within the current session as loss, a repeat as a duplicate."""
        resumed = self._resumed
        if resumed and (msg.boot_id != session[0] or msg.seq > last_seq):
            key = (msg.school, msg.terminal)
            if key in resumed:
                # The first new message since the stored position (restore_positions).
                resumed.discard(key)
                if (
                    msg.boot_id == session[0]
                    and msg.birth_seq == session[1]
                    and msg.seq > last_seq + 1
                ):
                    self.stats.resume_gap_messages_total[msg.school] += msg.seq - last_seq - 1
                return
        if msg.boot_id != session[0]:
            return
        if msg.seq <= last_seq:
            # A Will carries a seq below its session's birth: late, not repeated.
            if not isinstance(msg, Status) or msg.reason != "will":
                self.stats.duplicates_total[msg.school] += 1
            return
        if msg.birth_seq == session[1] and msg.seq > last_seq + 1:
            lost = msg.seq - last_seq - 1
            self.stats.lost_messages_total[msg.school] += lost
            self._unlogged_loss += lost
            now = time.monotonic()
            if now - self._loss_logged_at < _LOSS_LOG_EVERY_SECONDS:
                return
            self._loss_logged_at = now
            total, self._unlogged_loss = self._unlogged_loss, 0
            log.warning(
                "MQTT 消息丢失：%d 条，最近为终端 %s（学校 %s）(%d messages terminals numbered "
                "never arrived since the last such line; the latest gap: terminal %s of school "
                "%s, seq %d to %d; edumon_mqtt_lost_messages_total counts them by school)",
                total,
                msg.terminal,
                msg.school,
                total,
                msg.terminal,
                msg.school,
                last_seq,
                msg.seq,
                extra={"school": msg.school, "terminal": msg.terminal},
            )

    def _note_terminal_change(self, event: Event) -> None:
        assert event.school is not None
        change = self._terminal_changes.get(event.school)
        if change is None:
            change = self._terminal_changes[event.school] = _TerminalChanges(self._clock())
        if event.kind is EventKind.TERMINAL_ONLINE:
            change.came_online += 1
        else:
            change.went_offline += 1
        if len(change.terminals) <= _NAMED_CHANGES:
            change.terminals.append(event.device_id)

    def _log_terminal_changes(self, *, everything: bool = False) -> None:
        """One line per school whose terminals changed, once its first change is old enough."""
        if not self._terminal_changes or self.terminals is None:
            return
        now = self._clock()
        due = [
            school
            for school, change in self._terminal_changes.items()
            if everything or now - change.first_at >= TERMINAL_SUMMARY_SECONDS
        ]
        if not due:
            return
        online = dict.fromkeys(due, 0)
        known = dict.fromkeys(due, 0)
        for st in self.terminals.terminals.values():
            if st.school in known:
                known[st.school] += 1
                online[st.school] += st.online is True
        for school in due:
            change = self._terminal_changes.pop(school)
            named = change.terminals
            which = f": {', '.join(named)}" if len(named) <= _NAMED_CHANGES else ""
            log.info(
                "学校 %s 终端 %d/%d 在线 (school %s: %d of %d terminals online; "
                "%d came online, %d went offline since the last line%s)",
                school,
                online[school],
                known[school],
                school,
                online[school],
                known[school],
                change.came_online,
                change.went_offline,
                which,
                extra={"school": school},
            )

    # -- terminal timeouts ------------------------------------------------------------------------

    def expire_terminals(
        self,
        received_until: Callable[[], float] | None = None,
        link: LinkView | None = None,
    ) -> None:
        """Mark terminals silent past the heartbeat timeout offline (called every second).

        A stalled loop must never make a heartbeat that has arrived look missing. So the
        terminals are judged as of ``received_until()`` (the ingest's: a time before which
        every message that reached the process has been handed to the collector; the clock's
        time when not given, and never later), and only after everything queued has been
        applied; and a message's receive time is when the ingest's read of it began.

        With ``link`` (the ingest's statistics), a link that is down makes the collector blind
        (``watch_link``): no timeout runs, and Wills still held are the broker's. Wills held
        long enough count (``TerminalsState.release``).
        """
        now = self._clock()
        if received_until is not None:
            now = min(now, received_until())
        # What the ingest handed over before ``now`` waits in the queue: apply it first.
        while not self._queue.empty():
            self._accept(self._queue.get_nowait())
        if link is not None:
            self.watch_link(link, self._clock())
        if self.terminals is not None:
            self._record(self.terminals.release(now))
            self._record(self.terminals.expire(now, self._heartbeat_timeout))
        self.expired_at = now

    def watch_link(self, link: LinkView, now: float) -> None:
        """Follow the broker link: blind while it is down, sighted again when it is back.

        Blindness begins only once the link has been up (before the first connection nothing
        was known). A drop and reconnect between two looks (``connects_total`` grew) is a blind
        spell too: the terminals' Wills and retained states of that moment are the broker's.
        """
        connects = link.connects_total
        terminals = self.terminals
        if not link.connected:
            if self.link_down_since is None:
                self.link_down_since = now
            if self._connects_seen > 0 and terminals is not None and terminals.blind_since is None:
                self._go_blind(terminals, now)
        else:
            reconnected = connects > self._connects_seen > 0
            if terminals is not None:
                if reconnected and terminals.blind_since is None:
                    self._go_blind(terminals, now)
                if terminals.blind_since is not None:
                    self._regain_sight(terminals, now)
            self.link_down_since = None
        self._connects_seen = connects

    def blind_seconds(self, now: float) -> float:
        """How long the broker link has been down (0 while it is up)."""
        since = self.link_down_since
        return 0.0 if since is None else max(0.0, now - since)

    def blind(self, now: float) -> bool:
        """The link has been down longer than ``blind_grace_seconds`` (/readyz, the metric)."""
        since = self.link_down_since
        return since is not None and now - since > self.blind_grace_seconds

    def _go_blind(self, terminals: TerminalsState, now: float) -> None:
        since = self.link_down_since if self.link_down_since is not None else now
        became = terminals.go_blind(since)
        self.blind_spells += 1
        self._record(
            (
                Event(
                    at=since,
                    kind=EventKind.COLLECTOR_BLIND,
                    device_id=COLLECTOR_DEVICE,
                    message="采集服务与 MQTT 服务器断开，终端状态未知 / "
                    "the collector lost its MQTT broker link: terminals are unknown",
                    details={"terminals_unknown": became},
                ),
            )
        )

    def _regain_sight(self, terminals: TerminalsState, now: float) -> None:
        since = terminals.blind_since if terminals.blind_since is not None else now
        terminals.regain_sight(now)
        self._record(
            (
                Event(
                    at=now,
                    kind=EventKind.COLLECTOR_SIGHTED,
                    device_id=COLLECTOR_DEVICE,
                    message="采集服务恢复与 MQTT 服务器的连接 / "
                    "the collector has its MQTT broker link back",
                    details={
                        "blind_since": since,
                        "blind_seconds": now - since,
                        "terminals_unknown": terminals.unknown_count(),
                    },
                ),
            )
        )

    async def expire_forever(
        self,
        received_until: Callable[[], float] | None = None,
        link: LinkView | None = None,
    ) -> None:
        """Look for silent terminals every second (``expire_every_seconds``).

        A terminal is offline within that long after its timeout (when the ingest keeps up);
        a Will counts within that long after its hold.
        """
        while True:
            self.expire_terminals(received_until, link)
            await asyncio.sleep(self._expire_every)

    def _shed(self) -> None:
        over = len(self._pending) - self._max_pending
        if over <= 0:
            return
        # Interface roll-ups keep the reason name of the samples they are made of.
        rows: list[InterfaceRollup] | list[TerminalSample] | list[DeviceSample]
        for rows, reason in (
            (self._pending.interface_rollups, "pending_interface_samples"),
            (self._pending.terminal_samples, "pending_terminal_samples"),
            (self._pending.device_samples, "pending_device_samples"),
        ):
            cut = min(over, len(rows))
            if cut:
                del rows[:cut]
                over -= cut
                self.stats.dropped_total[reason] += cut
                log.error(
                    "database unavailable for too long: dropped the %d oldest %s",
                    cut,
                    reason.removeprefix("pending_").replace("_", " "),
                )

    async def flush(self, *, everything: bool = False) -> bool:
        """Write everything pending, in transactions of at most ``max_write_rows``; False (the
        rows not written kept) if the store fails.

        With ``everything``, interface roll-ups of buckets not over yet are written too (on
        shutdown; the store merges a bucket written twice).
        """
        if self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)  # one write at a time, in order
        ok = await self._write_pending(everything=everything)
        while ok and len(self._pending):
            ok = await self._write_pending(everything=everything)
        return ok

    async def _write_pending(self, *, everything: bool = False) -> bool:
        # Roll-ups whose bucket is over join the batch (all of them on shutdown).
        self._pending.interface_rollups.extend(
            self.rollups.take(self._clock(), everything=everything)
        )
        if self._history is not None:
            self._pending.interface_rollups.extend(
                self._history[1].take(self._clock(), everything=everything)
            )
        self._shed()
        self._log_terminal_changes(everything=everything)
        self.stats.pending_rows = len(self._pending)
        batch = self._pending.take(self._max_write_rows)
        mark: int | None = None
        positions: dict[tuple[str, str], _Position] = {}
        reports: list[tuple[AgentReportRow, Callable[[], None]]] = []
        if not len(self._pending):
            # The batch holds every row accepted so far: the messages applied up to here are
            # stored with it, and so are their senders' positions and the school agents'
            # reports (docs/wire-protocol.md).
            mark = self._applied
            self._marked = mark
            positions, self._positions = self._positions, {}
            reports, self._reports = self._reports, []
        if not len(batch) and not positions and not reports:
            if mark is not None:
                self._committed(mark)
            return True
        started = time.perf_counter()
        try:
            if positions or reports:
                await self.store.write(
                    batch.interface_rollups,
                    batch.device_samples,
                    batch.events,
                    terminal_samples=batch.terminal_samples,
                    agent_reports=[row for row, _ in reports],
                    positions=[
                        SenderPosition(
                            school=school,
                            role=_TERMINAL_ROLE,
                            sender=terminal,
                            boot_id=session[0],
                            birth_seq=session[1],
                            seq=seq,
                            observed_at=observed_at,
                            at=at,
                        )
                        for (school, terminal), (session, seq, observed_at, at) in positions.items()
                    ],
                )
            else:
                await self.store.write(
                    batch.interface_rollups,
                    batch.device_samples,
                    batch.events,
                    terminal_samples=batch.terminal_samples,
                )
        except StoreError as exc:
            self._put_back_positions(positions)
            self._reports[:0] = reports
            self._pending.put_back(batch)
            self.stats.write_failures_total += 1
            self.stats.pending_rows = len(self._pending)
            if everything:
                # The last write, on shutdown (drain): what it could not store is lost.
                log.error(
                    "store write failed on shutdown: %d accepted rows (%d events) not stored: %s",
                    len(self._pending),
                    len(self._pending.events),
                    exc,
                )
                return False
            log.warning("store write failed, %d rows kept for retry: %s", len(self._pending), exc)
            return False
        except BaseException:
            # Cancelled mid-write (shutdown): keep the rows for drain(); the write either
            # committed (a retry then skips the samples already stored) or did not.
            self._put_back_positions(positions)
            self._reports[:0] = reports
            self._pending.put_back(batch)
            raise
        elapsed = time.perf_counter() - started
        self.stats.write_seconds_sum += elapsed
        self.stats.write_seconds_count += 1
        self.stats.rows_written_total += len(batch)
        self.stats.last_write_ok_at = self._clock()
        self.stats.pending_rows = len(self._pending)
        for _, ack in reports:
            ack()
        if mark is not None:
            self._committed(mark)
        return True

    def _put_back_positions(self, positions: dict[tuple[str, str], _Position]) -> None:
        for key, position in positions.items():
            self._positions.setdefault(key, position)  # a newer one taken since wins

    def _committed(self, mark: int) -> None:
        if mark <= self.stats.committed_messages:
            return
        self.stats.committed_messages = mark
        if self.on_committed is not None:
            self.on_committed(mark)

    async def run(self) -> None:
        """Consume the queue forever: apply each observation, flush in batches, retry on failure.

        A write runs in its own task while the queue keeps being consumed (the database works
        in its driver's thread or server meanwhile); rows that arrive during a write make the
        next batch, so batches grow with the load.
        """
        retry = _RETRY_MIN_SECONDS
        deadline = time.monotonic() + self._flush_seconds
        retry_at = 0.0  # after a failed write, no new attempt before this time
        while True:
            writer = self._writer
            if writer is not None and writer.done():
                self._writer = None
                ok = writer.result()
                retry = _RETRY_MIN_SECONDS if ok else min(retry * 2, _RETRY_MAX_SECONDS)
                retry_at = 0.0 if ok else time.monotonic() + retry
                if not ok:
                    deadline = retry_at
            timeout = max(0.0, deadline - time.monotonic())
            if self._writer is not None:
                timeout = min(timeout, _WRITER_POLL_SECONDS)  # notice the write finishing
            try:
                async with asyncio.timeout(timeout):
                    obs = await self._queue.get()
                self._accept(obs)
                while not self._queue.empty() and len(self._pending) < self._max_batch:
                    self._accept(self._queue.get_nowait())
            except TimeoutError:
                pass
            now = time.monotonic()
            due = (
                len(self._pending) >= self._batch_size
                or self._applied - self._marked >= self._batch_size
                or now >= deadline
            )
            if due and now >= retry_at and self._writer is None:
                self._writer = asyncio.create_task(self._write_pending(), name="store-write")
                deadline = now + self._flush_seconds

    async def drain(self) -> None:
        """Apply what is queued and write it out (on shutdown)."""
        while not self._queue.empty():
            self._accept(self._queue.get_nowait())
        await self.flush(everything=True)

    async def prune_forever(self, every_seconds: float = 3600.0) -> None:
        """Delete samples older than the retention period, hourly."""
        while True:
            try:
                removed = await self.store.prune(self._clock(), self._retention_seconds)
            except StoreError as exc:
                log.warning("pruning old samples failed, will retry: %s", exc)
            else:
                self.stats.pruned_rows_total += removed
            await asyncio.sleep(every_seconds)
