"""班班通 terminals: online/offline state from MQTT heartbeats and statuses, and its events.

Sessions follow ``edumon.wire``: every MQTT session of an agent has a ``(boot, bd_seq)`` pair that
its birth, heartbeats and Last Will share. A terminal's *current session* is the newest one the
collector has heard a birth or heartbeat from; messages from older sessions are ignored, and an
offline status counts only when it ends the current session (``wire.offline_ends_session``).

Time is always passed in (``now``: the collector's receive time, Unix seconds); the senders'
clocks (``observed_at``) only order sessions of one terminal, never date a state change, and a
clock further ahead than ``max_clock_skew_seconds`` is not believed at all (docs/wire-protocol.md,
"Bounds on sessions").

Blindness (docs/wire-protocol.md, "When the collector is blind"): while the collector's broker
link is down it hears nothing, so every terminal it knew becomes *unknown* (``unknown_since``)
rather than offline, no timeout runs, and a Last Will is held for ``will_hold_seconds`` before
it counts: a Will still held when the link is found down, or one of a burst across schools, is
the broker's (shutting down) and not the terminal's. Unknown ends with fresh data (a birth or
heartbeat), or after a full timeout window of silence once the link is back.

Availability history: each terminal keeps its recent online intervals in memory (bounded by age
and count, see ``TerminalsState``) for today's live figures. The TERMINAL_ONLINE and
TERMINAL_OFFLINE events are dated so that ``intervals_from_events`` rebuilds the same intervals
from the stored events; reports over past days use that, since memory does not survive a restart.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from edumon.domain.inventory import Inventory
from edumon.domain.models import Event, EventKind
from edumon.wire import Duplex, Heartbeat, Status, offline_ends_session

OfflineReason = Literal["will", "shutdown", "timeout"]
"""Why a terminal is offline: its Last Will (killed, connection lost), a clean shutdown, or its
heartbeats stopped without a Will (power loss while the broker still holds the TCP session)."""

DEFAULT_HEARTBEAT_INTERVAL_SECONDS: Final = 30.0
DEFAULT_TIMEOUT_INTERVALS: Final = 3.0
DEFAULT_TIMEOUT_SECONDS: Final = DEFAULT_TIMEOUT_INTERVALS * DEFAULT_HEARTBEAT_INTERVAL_SECONDS
"""``heartbeat_timeout()`` with the defaults: what ``expire`` uses when not told."""
DEFAULT_HISTORY_SECONDS: Final = 2 * 86_400.0
"""Online intervals are kept for today and yesterday (in any time zone)."""
DEFAULT_HISTORY_LIMIT: Final = 512
"""At most this many closed intervals per terminal: a flapping terminal cannot grow memory."""
DEFAULT_UNKNOWN_LIMIT: Final = 1_000

# Why a message changed nothing; fixed so that a collector can pre-create metric labels.
IGNORED_UNKNOWN: Final = "unknown_terminal"
IGNORED_DUPLICATE: Final = "duplicate"
"""A (boot, seq) already seen, or older than one seen: a redelivery or an out-of-order message."""
IGNORED_OLD_SESSION: Final = "old_session"
"""A birth or heartbeat from a session older than the current one."""
IGNORED_STALE_OFFLINE: Final = "stale_offline"
"""An offline status (a late Will, a retained status) from a session that is not current."""
IGNORED_CLOCK_SKEW: Final = "clock_skew"
"""A message dated further in the future than ``max_clock_skew_seconds``: never believed."""
IGNORED_BROKER_WILL: Final = "broker_will"
"""A Last Will the broker published as it went away (held when the link dropped, one of a
burst across schools, or a retained Will received again after a blind spell): the terminal's
state is unknown, not offline."""
IGNORED_REASONS: Final = (
    IGNORED_UNKNOWN,
    IGNORED_DUPLICATE,
    IGNORED_OLD_SESSION,
    IGNORED_STALE_OFFLINE,
    IGNORED_CLOCK_SKEW,
    IGNORED_BROKER_WILL,
)

# Historical heartbeats (docs/wire-protocol.md, "Historical heartbeats"): observed while the
# terminal could not reach the broker, sent later. They are evidence of the past, never of now.
HISTORICAL_LAG_SECONDS: Final = 60.0
"""A heartbeat without ``hist`` that the session rules would ignore (a duplicate seq, an old
session) is historical when observed this much before the newest message of the current one."""
HISTORICAL_MAX_AHEAD_SECONDS: Final = 300.0
"""A historical heartbeat dated further ahead of the receive time is not stored."""
IGNORED_HISTORICAL_AHEAD: Final = "historical_ahead"
"""A historical heartbeat dated in the future (a wrong clock, or forged): not stored."""
Timing = Literal["live", "historical", "ignored"]
DEFAULT_MAX_CLOCK_SKEW_SECONDS: Final = 86_400.0
"""A message whose ``ts`` is further ahead of the collector's clock is ignored (clock_skew).
A day: a terminal whose clock is off by a time zone (8 h) still counts, a forged far-future
timestamp does not."""
MAX_BD_SEQ_JUMP: Final = 1_000
"""A new session of an online terminal is newer by ``bd_seq`` only within this many sessions
of the current one; beyond it, only its (bounded) timestamp can make it newer."""
TAKEOVER_MESSAGES: Final = 2
"""In-order messages of one ignored session that replace a current session gone silent meanwhile:
a forged session that slipped through is displaced by the real terminal's next heartbeats."""
DEFAULT_WILL_HOLD_SECONDS: Final = 0.5
"""How long a Will waits before it counts (``Collector`` sets it; 0 here: counted at once)."""
WILL_BURST_TERMINALS: Final = 10
WILL_BURST_SCHOOLS: Final = 2
"""Wills held at once from at least this many terminals of this many schools are a burst: a
broker (or a cluster node) going away, not terminals."""

Interval = tuple[float, float]
"""An online interval ``(start, end)`` in Unix seconds, end not before start."""


def heartbeat_timeout(
    interval_seconds: float = DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
    intervals: float = DEFAULT_TIMEOUT_INTERVALS,
) -> float:
    """How long a terminal may stay silent before ``expire`` calls it offline.

    ``intervals`` heartbeat intervals (3 by default): one lost heartbeat never flaps a
    classroom. No grace is added for the broker's or the collector's queues: ``expire`` is only
    asked about a time up to which everything received has been applied (see
    ``Collector.expire_terminals``), and receive times are taken when a message is read.
    """
    return intervals * interval_seconds


@dataclass(frozen=True, slots=True)
class TerminalRef:
    """Which classroom of which school a terminal id belongs to."""

    school: str
    terminal: str
    classroom: str


class TerminalInventory:
    """Known terminals, keyed by the ``(school, terminal)`` pair of their MQTT topic.

    Terminal ids are unique within a school (the topic names the school), classroom ids within
    the district; a classroom has at most one terminal.
    """

    def __init__(
        self, terminals: Mapping[tuple[str, str], str], district: str | None = None
    ) -> None:
        """Build from an explicit map.

        Args:
            terminals: classroom id by ``(school, terminal id)``.
            district: when given, messages from another district are unknown terminals.

        Raises:
            ValueError: a classroom is given two terminals.
        """
        refs: dict[tuple[str, str], TerminalRef] = {}
        by_classroom: dict[str, TerminalRef] = {}
        for (school, terminal), classroom in terminals.items():
            ref = TerminalRef(school, terminal, classroom)
            other = by_classroom.setdefault(classroom, ref)
            if other is not ref:
                raise ValueError(
                    f"classroom {classroom} has two terminals: {other.terminal} and {terminal}"
                )
            refs[(school, terminal)] = ref
        self.district = district
        self._refs: Mapping[tuple[str, str], TerminalRef] = MappingProxyType(refs)
        self._by_classroom: Mapping[str, TerminalRef] = MappingProxyType(by_classroom)

    @classmethod
    def from_inventory(
        cls,
        inventory: Inventory,
        terminal_ids: Mapping[tuple[str, str], str] | None = None,
        district: str | None = None,
    ) -> TerminalInventory:
        """One terminal per classroom: its id is the classroom id unless ``terminal_ids`` names one.

        Args:
            inventory: the schools and their classrooms.
            terminal_ids: classroom id by ``(school, terminal id)`` for classrooms whose terminal
                reports another id than the classroom's (the config's ``terminal = ...``).
            district: see ``__init__``.

        Raises:
            ValueError: ``terminal_ids`` names a classroom the school does not have, or one
                terminal id would serve two classrooms of a school.
        """
        named: dict[tuple[str, str], str] = {}  # (school, classroom) -> terminal id
        for (school, terminal), classroom in (terminal_ids or {}).items():
            ref = inventory.schools.get(school)
            if ref is None or all(room.id != classroom for room in ref.classrooms):
                raise ValueError(
                    f"terminal {terminal}: school {school} has no classroom {classroom}"
                )
            other = named.setdefault((school, classroom), terminal)
            if other != terminal:
                raise ValueError(
                    f"classroom {classroom} of school {school} has two terminals: "
                    f"{other} and {terminal}"
                )
        terminals: dict[tuple[str, str], str] = {}
        for code, school_ref in inventory.schools.items():
            for room in school_ref.classrooms:
                terminal = named.get((code, room.id), room.id)
                other = terminals.setdefault((code, terminal), room.id)
                if other != room.id:
                    raise ValueError(
                        f"school {code}: terminal {terminal} would serve classrooms {other} "
                        f"and {room.id}; give one of them another terminal id"
                    )
        return cls(terminals, district)

    def lookup(self, district: str, school: str, terminal: str) -> TerminalRef | None:
        """The terminal a topic names, or None for an unknown one."""
        if self.district is not None and district != self.district:
            return None
        return self._refs.get((school, terminal))

    def of_classroom(self, classroom: str) -> TerminalRef | None:
        """The terminal of a classroom, or None if it has none."""
        return self._by_classroom.get(classroom)

    def of_school(self, school: str) -> tuple[TerminalRef, ...]:
        """The terminals of a school."""
        return tuple(r for r in self._refs.values() if r.school == school)

    def __iter__(self) -> Iterator[TerminalRef]:
        return iter(self._refs.values())

    def __len__(self) -> int:
        return len(self._refs)


@dataclass(slots=True)
class TerminalState:
    """One terminal as last heard of. Times are the collector's receive times.

    Attributes:
        online: None until anything is heard from the terminal.
        session: the current session's ``(boot, bd_seq)``.
        last_seq: the highest ``seq`` received from the current session's boot.
        last_observed_at: the sender's clock on the newest message of the current session
            (orders sessions of different boots when an agent lost its persisted bd_seq).
        last_seen: when the last birth or heartbeat arrived (what ``expire`` measures).
        online_since: start of the current online interval (None while offline).
        offline_since: when it went offline: the receive time of a Will or shutdown, the last
            sign of life for a timeout.
        history: closed online intervals, oldest first, bounded.
        history_dropped: intervals evicted by the count bound (not by age).
    """

    ref: TerminalRef
    online: bool | None = None
    session: tuple[str, int] | None = None
    last_seq: int | None = None
    last_observed_at: float | None = None
    last_seen: float | None = None
    last_heartbeat_at: float | None = None
    online_since: float | None = None
    offline_since: float | None = None
    offline_reason: OfflineReason | None = None
    agent_version: str | None = None
    uptime_seconds: float | None = None
    nic: str | None = None
    link_speed_mbps: int | None = None
    """From the last heartbeat; None when the NIC reported no speed (Wi-Fi, link not up)."""
    last_link_speed_mbps: int | None = None
    """The last speed any heartbeat reported, kept while the terminal is off."""
    last_link_speed_at: float | None = None
    duplex: Duplex = "unknown"
    unknown_since: float | None = None
    """Since when the collector cannot know the terminal's state (it was blind, or the broker
    published a burst of Wills); None when it knows. ``online`` keeps the last known value."""
    watch_from: float | None = None
    """A timeout counts silence only from here (the link came back): a full window of fresh
    data after a blind spell."""
    left_online: bool = False
    """The store's newest event of this terminal says online, and nothing has been heard since
    the collector started (``TerminalsState.restore_online``): should it turn out offline, an
    OFFLINE event closes that interval."""
    challenger: tuple[str, int] | None = None
    """A session whose messages are being ignored as old (see ``TAKEOVER_MESSAGES``)."""
    challenger_seq: int = 0
    challenger_count: int = 0
    challenger_since: float = 0.0
    """When the challenger's last message arrived."""
    ip: str | None = None
    mac: str | None = None
    cpu_percent: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    disk_used_bytes: int | None = None
    disk_total_bytes: int | None = None
    heartbeats: int = 0
    history: deque[Interval] = field(default_factory=deque)
    history_dropped: int = 0

    @property
    def school(self) -> str:
        return self.ref.school

    @property
    def terminal(self) -> str:
        return self.ref.terminal

    @property
    def classroom(self) -> str:
        return self.ref.classroom


@dataclass(slots=True)
class UnknownTerminal:
    """A terminal that sends messages but is not in the inventory (to list for an admin)."""

    district: str
    school: str
    terminal: str
    first_seen: float
    last_seen: float
    messages: int = 0
    ip: str | None = None
    mac: str | None = None
    agent_version: str | None = None


class UnknownTerminals:
    """Unknown terminals by ``(district, school, terminal)``, bounded.

    When full, the entry heard from least recently is evicted (and counted): a misconfigured
    fleet of many ids cannot grow memory, and the ones still sending stay listed.
    """

    def __init__(self, limit: int = DEFAULT_UNKNOWN_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.limit = limit
        self.messages = 0
        """Messages from unknown terminals, evicted ones included."""
        self.evicted = 0
        self._entries: OrderedDict[tuple[str, str, str], UnknownTerminal] = OrderedDict()

    def note(self, msg: Heartbeat | Status, now: float) -> UnknownTerminal:
        """Count one message; returns its entry (``messages == 1`` on the first sighting)."""
        self.messages += 1
        key = (msg.district, msg.school, msg.terminal)
        entry = self._entries.get(key)
        if entry is None:
            entry = UnknownTerminal(msg.district, msg.school, msg.terminal, now, now)
            self._entries[key] = entry
            if len(self._entries) > self.limit:
                self._entries.popitem(last=False)
                self.evicted += 1
        else:
            self._entries.move_to_end(key)
        entry.last_seen = now
        entry.messages += 1
        entry.agent_version = msg.agent_version
        if isinstance(msg, Heartbeat):
            entry.ip = msg.ip or entry.ip
            entry.mac = msg.mac or entry.mac
        return entry

    def get(self, district: str, school: str, terminal: str) -> UnknownTerminal | None:
        """The entry of one unknown terminal, if it is listed."""
        return self._entries.get((district, school, terminal))

    def entries(self) -> tuple[UnknownTerminal, ...]:
        """The entries, least recently heard from first."""
        return tuple(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


def _merge_into(intervals: list[Interval], start: float, end: float) -> None:
    if intervals and start <= intervals[-1][1]:
        intervals[-1] = (intervals[-1][0], max(intervals[-1][1], end))
    else:
        intervals.append((start, end))


def clip_intervals(
    intervals: Iterable[Interval], since: float, until: float
) -> tuple[Interval, ...]:
    """Intervals cut to ``[since, until]``, merged where they overlap, empty ones dropped."""
    out: list[Interval] = []
    for start, end in sorted(intervals):
        start, end = max(start, since), min(end, until)
        if end > start:
            _merge_into(out, start, end)
    return tuple(out)


class TerminalsState:
    """In-memory state of all known terminals. Not thread-safe; owned by the collector task.

    Args:
        inventory: the known terminals; messages from others go to ``unknown``.
        history_seconds: closed online intervals that ended longer ago are dropped.
        history_limit: at most this many closed intervals per terminal.
        unknown_limit: at most this many unknown terminals are remembered.
        max_clock_skew_seconds: messages dated further ahead of ``now`` are ignored.
        will_hold_seconds: a Will waits this long in ``held`` before it counts (``release``);
            0: at once.
    """

    def __init__(
        self,
        inventory: TerminalInventory,
        *,
        history_seconds: float = DEFAULT_HISTORY_SECONDS,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        unknown_limit: int = DEFAULT_UNKNOWN_LIMIT,
        max_clock_skew_seconds: float = DEFAULT_MAX_CLOCK_SKEW_SECONDS,
        will_hold_seconds: float = 0.0,
    ) -> None:
        if history_limit < 1:
            raise ValueError(f"history_limit must be at least 1, not {history_limit}")
        self.inventory = inventory
        self.history_seconds = history_seconds
        self.terminals: dict[tuple[str, str], TerminalState] = {
            (r.school, r.terminal): TerminalState(r, history=deque(maxlen=history_limit))
            for r in inventory
        }
        self.unknown = UnknownTerminals(unknown_limit)
        self.ignored: dict[str, int] = dict.fromkeys(IGNORED_REASONS, 0)
        """Messages that changed nothing, by reason (one of ``IGNORED_REASONS``)."""
        self.historical = 0
        """Historical heartbeats accepted (``timing``): stored, changing nothing."""
        self.max_clock_skew_seconds = max_clock_skew_seconds
        self.will_hold_seconds = will_hold_seconds
        self.held: dict[tuple[str, str], tuple[Status, float, float]] = {}
        """Wills waiting ``will_hold_seconds`` before they count: each with its receive time and
        when it was held by ``hold_clock``."""
        self.hold_clock: Callable[[], float] | None = None
        """What measures the hold (the collector passes a monotonic clock: the hold is about
        the order of real events, the link drop and the Wills); None: the ``now`` passed in."""
        self.blind_since: float | None = None
        """Since when the collector is blind (its broker link is down); None while it hears."""
        self._burst_until = float("-inf")
        self.takeovers = 0
        """Current sessions replaced by a challenger (``TAKEOVER_MESSAGES``)."""

    def terminal(self, school: str, terminal: str) -> TerminalState | None:
        """The state of a known terminal, or None for an id not in the inventory."""
        return self.terminals.get((school, terminal))

    def of_classroom(self, classroom: str) -> TerminalState | None:
        """The state of a classroom's terminal, or None if the classroom has none."""
        ref = self.inventory.of_classroom(classroom)
        return None if ref is None else self.terminals[(ref.school, ref.terminal)]

    def restore_position(
        self,
        school: str,
        terminal: str,
        session: tuple[str, int],
        last_seq: int,
        observed_at: float,
    ) -> bool:
        """Set a terminal's session and highest ``seq`` from the store (at start-up, before any
        message): a redelivered message is then a duplicate. Online state stays unknown.

        Returns False for a terminal not in the inventory (or already heard from).
        """
        st = self.terminals.get((school, terminal))
        if st is None or st.session is not None:
            return False
        st.session = session
        st.last_seq = last_seq
        st.last_observed_at = observed_at
        return True

    def restore_online(self, school: str, terminal: str, now: float) -> bool:
        """Note that the store left this terminal online (at start-up, before any message).

        The collector stopped, or was killed, while the terminal was online; what happened
        since is unknown. Availability is rebuilt from the stored events
        (``intervals_from_events``), so that interval must be closed if the terminal is not
        online now: by its Will or shutdown received after the start (queued by the broker, or
        retained), or by a timeout counted from ``now`` when nothing comes. A heartbeat instead
        continues the interval.

        Returns False for a terminal not in the inventory (or already heard from).
        """
        st = self.terminals.get((school, terminal))
        if st is None or st.online is not None:
            return False
        st.left_online = True
        st.watch_from = now
        return True

    def classroom_link_speed(self, classroom: str) -> float | None:
        """The classroom terminal's NIC speed (Mbit/s), for the 1000M check without a switch port.

        While the terminal is online, the speed its last heartbeat reported (None when the NIC
        reports none, e.g. on Wi-Fi). While it is off, the last speed any heartbeat reported,
        as the SNMP side judges a down port by its last speed up; ``last_link_speed_at`` says
        when. None when no heartbeat ever reported one.
        """
        st = self.of_classroom(classroom)
        if st is None:
            return None
        speed = st.link_speed_mbps if st.online else st.last_link_speed_mbps
        return None if speed is None else float(speed)

    def apply(self, msg: Heartbeat | Status, now: float) -> tuple[Event, ...]:
        """Fold one message into the state.

        Args:
            msg: a parsed heartbeat or status (``edumon.wire.parse_message``).
            now: when it was received (Unix seconds).

        Returns:
            TERMINAL_ONLINE or TERMINAL_OFFLINE on a transition, else nothing.
        """
        # The inventory's lookup, on the state's own map (same keys): once per heartbeat.
        district = self.inventory.district
        st = (
            self.terminals.get((msg.school, msg.terminal))
            if district is None or msg.district == district
            else None
        )
        if st is None:
            self.unknown.note(msg, now)
            self.ignored[IGNORED_UNKNOWN] += 1
            return ()
        if msg.observed_at > now + self.max_clock_skew_seconds:
            self.ignored[IGNORED_CLOCK_SKEW] += 1
            return ()
        events: tuple[Event, ...] = ()
        if self.held:
            held = self.held.pop((st.school, st.terminal), None)
            if held is not None:  # it counts before anything newer from the same terminal
                events = self._offline_status(st, held[0], held[1])
        if type(msg) is Status and not msg.online:
            if msg.reason != "shutdown" and self.will_hold_seconds > 0:
                return events + self._hold(st, msg, now)
            return events + self._offline_status(st, msg, now)
        verdict = self._classify(st, msg, now)
        if verdict is not None:
            self.ignored[verdict] += 1
            return events
        # Accepted: either a new boot, or a seq above every one seen from this boot.
        st.challenger = None
        st.unknown_since = None
        st.last_seq = msg.seq
        st.session = msg.session
        st.last_observed_at = msg.observed_at
        st.last_seen = now
        st.agent_version = msg.agent_version
        if type(msg) is Heartbeat:
            self._heartbeat_fields(st, msg, now)
        if st.online:
            return events
        return (*events, self._online(st, msg, now))

    def timing(self, msg: Heartbeat, now: float) -> Timing:
        """Whether a heartbeat is live (for ``apply``) or historical (never for ``apply``).

        Historical: ``hist`` is true, or the session rules would ignore it and it was observed
        ``HISTORICAL_LAG_SECONDS`` before the newest message of the current session. Such a
        heartbeat is evidence that the terminal was up at its own ``observed_at``: the caller
        stores it as a sample dated so, and nothing else changes — not the online state, not
        ``last_seen`` (the timeout), not the session, not the events. ``ignored`` (counted as
        ``IGNORED_HISTORICAL_AHEAD``): dated more than ``HISTORICAL_MAX_AHEAD_SECONDS`` after
        ``now``. Unknown terminals are ``live``: ``apply`` counts them.
        """
        st = self.terminals.get((msg.school, msg.terminal))
        if st is None:
            return "live"
        if not msg.historical:
            newest = st.last_observed_at
            if (
                newest is None
                or msg.observed_at >= newest - HISTORICAL_LAG_SECONDS
                or self._order(st, msg) is None
            ):
                return "live"
        if msg.observed_at > now + HISTORICAL_MAX_AHEAD_SECONDS:
            self.ignored[IGNORED_HISTORICAL_AHEAD] = (
                self.ignored.get(IGNORED_HISTORICAL_AHEAD, 0) + 1
            )
            return "ignored"
        self.historical += 1
        return "historical"

    def expire(
        self, now: float, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    ) -> tuple[Event, ...]:
        """Call offline (reason ``timeout``) every online terminal silent for ``timeout_seconds``.

        Without a Will, a terminal that lost power stays online at the broker until its keepalive
        runs out (or for ever, behind a NAT that drops the connection silently): only the missing
        heartbeats tell. The offline interval starts at the last sign of life, not at ``now``.

        Args:
            now: the current time (Unix seconds).
            timeout_seconds: see ``heartbeat_timeout``; pass the configured one.
        """
        if self.blind_since is not None:
            return ()  # nothing can be heard: silence says nothing
        events: list[Event] = []
        for st in self.terminals.values():
            if not (st.online or st.unknown_since is not None or st.left_online):
                continue
            # Silence counts from the last sign of life, or from when the link came back.
            marks = [t for t in (st.last_seen, st.watch_from) if t is not None]
            if not marks or now - max(marks) <= timeout_seconds:
                continue
            st.unknown_since = None
            st.watch_from = None
            if st.left_online:
                events.append(self._close_left_online(st, "timeout", max(marks), now))
            elif st.online and st.last_seen is not None:
                events.append(
                    self._go_offline(
                        st, "timeout", st.last_seen, now, silent_seconds=now - st.last_seen
                    )
                )
        return tuple(events)

    # --- blindness (docs/wire-protocol.md, "When the collector is blind") ----------------------

    def go_blind(self, now: float) -> int:
        """The collector's broker link is down: every terminal heard of becomes unknown.

        Wills still held are the broker's (it published them as it went away) and are dropped.
        Returns how many terminals became unknown.
        """
        if self.blind_since is None:
            self.blind_since = now
        self.ignored[IGNORED_BROKER_WILL] += len(self.held)
        self.held.clear()
        became = 0
        for st in self.terminals.values():
            if st.online is not None and st.unknown_since is None:
                st.unknown_since = now
                became += 1
        return became

    def regain_sight(self, now: float) -> None:
        """The link is back: a terminal still unknown is timed out only after a full window."""
        self.blind_since = None
        for st in self.terminals.values():
            if st.unknown_since is not None or st.online or st.left_online:
                st.watch_from = now

    def release(self, now: float) -> tuple[Event, ...]:
        """Count the Wills held for ``will_hold_seconds`` (dated when they arrived)."""
        if not self.held or self.blind_since is not None:
            return ()
        clock = now if self.hold_clock is None else self.hold_clock()
        hold = self.will_hold_seconds
        due = [k for k, (_, _, held_at) in self.held.items() if clock - held_at >= hold]
        events: list[Event] = []
        for key in due:
            msg, at, _ = self.held.pop(key)
            events.extend(self._offline_status(self.terminals[key], msg, at))
        return tuple(events)

    def unknown_count(self) -> int:
        """Terminals whose state the collector cannot know now."""
        return sum(st.unknown_since is not None for st in self.terminals.values())

    def online_intervals(
        self, school: str, terminal: str, since: float, until: float
    ) -> tuple[Interval, ...]:
        """A terminal's online intervals within ``[since, until]``, oldest first.

        The current online interval, if any, runs to ``until`` (pass the current time). Only
        ``history_seconds`` of history are kept: for older days use ``intervals_from_events``.

        Raises:
            KeyError: the terminal is not in the inventory.
        """
        st = self.terminals[(school, terminal)]
        spans: list[Interval] = list(st.history)
        if st.online and st.online_since is not None:
            spans.append((st.online_since, max(until, st.online_since)))
        return clip_intervals(spans, since, until)

    # --- internals ---------------------------------------------------------------------------

    def _hold(self, st: TerminalState, msg: Status, now: float) -> tuple[Event, ...]:
        """Keep a Will back for ``will_hold_seconds``, or drop it as one of a broker's burst."""
        key = (st.school, st.terminal)
        if st.unknown_since is not None and st.session == msg.session:
            # Its session is the one known before a blind spell or burst: a retained Will the
            # broker published as it went away, received again on re-subscribe. Stale.
            self.ignored[IGNORED_BROKER_WILL] += 1
            return ()
        if now < self._burst_until:
            self._burst_until = now + self.will_hold_seconds
            self._broker_will(st, now)
            return ()
        self.held[key] = (msg, now, now if self.hold_clock is None else self.hold_clock())
        if len(self.held) >= WILL_BURST_TERMINALS:
            schools = {school for school, _ in self.held}
            if len(schools) >= WILL_BURST_SCHOOLS:
                self._burst_until = now + self.will_hold_seconds
                for school, terminal in list(self.held):
                    self._broker_will(self.terminals[(school, terminal)], now)
                self.held.clear()
        return ()

    def _broker_will(self, st: TerminalState, now: float) -> None:
        self.ignored[IGNORED_BROKER_WILL] += 1
        if st.online is not None and st.unknown_since is None:
            st.unknown_since = now
        st.watch_from = now

    def _classify(self, st: TerminalState, msg: Heartbeat | Status, now: float) -> str | None:
        """Why a birth or heartbeat must be ignored, or None to accept it."""
        verdict = self._order(st, msg)
        if verdict != IGNORED_OLD_SESSION:
            return verdict
        # A forged session that slipped through must not silence the terminal: another session
        # whose messages keep coming in order while the current one says nothing wins back.
        # (Counted afresh whenever the current session spoke since the challenger's last one.)
        if (
            st.challenger != msg.session
            or msg.seq <= st.challenger_seq
            or (st.last_seen is not None and st.last_seen > st.challenger_since)
        ):
            st.challenger = msg.session
            st.challenger_count = 0
        st.challenger_seq = msg.seq
        st.challenger_since = now
        st.challenger_count += 1
        if st.challenger_count >= TAKEOVER_MESSAGES:
            self.takeovers += 1
            return None
        return IGNORED_OLD_SESSION

    @staticmethod
    def _order(st: TerminalState, msg: Heartbeat | Status) -> str | None:
        """Whether a birth or heartbeat is older than the current session (or a duplicate)."""
        if st.session is None:
            return None
        boot, birth_seq = st.session
        if msg.boot_id == boot:
            if msg.birth_seq < birth_seq:
                return IGNORED_OLD_SESSION
            # seq grows through all sessions of one boot: a seq not above the highest seen is
            # a redelivery (a retained birth on re-subscribe) or arrived out of order.
            if st.last_seq is not None and msg.seq <= st.last_seq:
                return IGNORED_DUPLICATE
            return None
        # Another agent process. bd_seq is persisted, so a restarted agent continues it; when it
        # did not (state lost, agent reinstalled) its clock usually still runs forward. Once the
        # current session is over, any other process is newer: the broker retains only the last
        # status, so an old birth cannot come back, and a terminal must never be stuck ignored
        # because its bd_seq was reset and its clock set back.
        # A live session is replaced by bd_seq only within a plausible jump (a forged bd_seq of a
        # million is not a million reconnects); the sender's clock is bounded by the caller.
        if st.online is False or birth_seq < msg.birth_seq <= birth_seq + MAX_BD_SEQ_JUMP:
            return None
        if st.last_observed_at is not None and msg.observed_at > st.last_observed_at:
            return None
        return IGNORED_OLD_SESSION

    def _offline_status(self, st: TerminalState, msg: Status, now: float) -> tuple[Event, ...]:
        if st.unknown_since is not None and msg.reason != "shutdown":
            # Known before the blind spell, received again (retained) or published by the broker
            # as it went away: not the terminal's doing. Fresh data or a timeout will tell.
            self.ignored[IGNORED_BROKER_WILL] += 1
            return ()
        if not offline_ends_session(msg, st.session):
            # A Will the broker published late for a session the terminal has since replaced.
            self.ignored[IGNORED_STALE_OFFLINE] += 1
            return ()
        st.session = msg.session
        st.last_seq = max(msg.seq, st.last_seq) if st.last_seq is not None else msg.seq
        if st.last_observed_at is None:
            st.last_observed_at = msg.observed_at
        if st.online is False:
            self.ignored[IGNORED_DUPLICATE] += 1
            return ()
        reason: OfflineReason = "shutdown" if msg.reason == "shutdown" else "will"
        st.unknown_since = None
        st.watch_from = None
        if st.online is None:
            if st.left_online:
                # The store left it online when the collector stopped: that interval ends.
                return (self._close_left_online(st, reason, now, now),)
            # Nothing was online, so no interval ends and no event is due (a retained Will seen
            # when the collector starts at night).
            st.online = False
            st.offline_since = now
            st.offline_reason = reason
            return ()
        return (self._go_offline(st, reason, now, now),)

    def _heartbeat_fields(self, st: TerminalState, hb: Heartbeat, now: float) -> None:
        st.heartbeats += 1
        st.last_heartbeat_at = now
        st.uptime_seconds = hb.uptime_seconds
        st.nic = hb.nic
        st.link_speed_mbps = hb.link_speed_mbps
        if hb.link_speed_mbps is not None:
            st.last_link_speed_mbps = hb.link_speed_mbps
            st.last_link_speed_at = now
        st.duplex = hb.duplex
        st.ip = hb.ip
        st.mac = hb.mac
        st.cpu_percent = hb.cpu_percent
        st.memory_used_bytes = hb.memory_used_bytes
        st.memory_total_bytes = hb.memory_total_bytes
        st.disk_used_bytes = hb.disk_used_bytes
        st.disk_total_bytes = hb.disk_total_bytes

    def _online(self, st: TerminalState, msg: Heartbeat | Status, now: float) -> Event:
        previous = st.offline_reason
        st.left_online = False
        st.online = True
        st.online_since = now
        st.offline_since = None
        st.offline_reason = None
        via = "heartbeat" if isinstance(msg, Heartbeat) else "birth"
        return Event(
            at=now,
            kind=EventKind.TERMINAL_ONLINE,
            device_id=st.terminal,
            school=st.school,
            classroom=st.classroom,
            message=f"terminal {st.terminal} of classroom {st.classroom} is online",
            details={
                "terminal": st.terminal,
                "via": via,
                "boot": msg.boot_id,
                "bd_seq": msg.birth_seq,
                "previous_offline_reason": previous,
            },
        )

    def _go_offline(
        self,
        st: TerminalState,
        reason: OfflineReason,
        since: float,
        now: float,
        **details: object,
    ) -> Event:
        start = st.online_since if st.online_since is not None else since
        self._prune(st, since)
        if st.history.maxlen is not None and len(st.history) == st.history.maxlen:
            st.history_dropped += 1
        st.history.append((start, max(start, since)))
        why = {
            "will": "its connection was lost or its agent was killed (Last Will)",
            "shutdown": "it shut down cleanly",
            "timeout": "its heartbeats stopped (power loss or network cut)",
        }[reason]
        return self._offline_event(
            st,
            reason,
            since,
            why,
            online_since=start,
            last_seen=st.last_seen,
            detected_at=now,
            **details,
        )

    def _close_left_online(
        self, st: TerminalState, reason: OfflineReason, since: float, now: float
    ) -> Event:
        """The OFFLINE event that ends an interval the store left open (``restore_online``).

        Dated when this run learnt it (the Will's receipt; for a timeout, the start of the
        window): the time the collector was down is not monitored either way.
        """
        st.left_online = False
        st.watch_from = None
        why = {
            "will": "its Last Will arrived after the collector restarted",
            "shutdown": "it had shut down while the collector was stopped",
            "timeout": "nothing was heard from it after the collector restarted",
        }[reason]
        return self._offline_event(
            st,
            reason,
            since,
            why,
            online_since=None,
            last_seen=None,
            detected_at=now,
            after_restart=True,
        )

    @staticmethod
    def _offline_event(
        st: TerminalState, reason: OfflineReason, since: float, why: str, **details: object
    ) -> Event:
        """Set the terminal offline since ``since`` and return its TERMINAL_OFFLINE event."""
        st.online = False
        st.online_since = None
        st.offline_since = since
        st.offline_reason = reason
        boot, birth_seq = st.session if st.session is not None else (None, None)
        return Event(
            at=since,
            kind=EventKind.TERMINAL_OFFLINE,
            device_id=st.terminal,
            school=st.school,
            classroom=st.classroom,
            message=f"terminal {st.terminal} of classroom {st.classroom} is offline: {why}",
            details={
                "terminal": st.terminal,
                "reason": reason,
                "boot": boot,
                "bd_seq": birth_seq,
                **details,
            },
        )

    def _prune(self, st: TerminalState, now: float) -> None:
        horizon = now - self.history_seconds
        while st.history and st.history[0][1] < horizon:
            st.history.popleft()


def intervals_from_events(events: Iterable[Event], until: float) -> tuple[Interval, ...]:
    """One terminal's online intervals rebuilt from its stored TERMINAL_ONLINE/OFFLINE events.

    Each event's ``at`` is when the change happened (for a timeout, the last sign of life), so
    this gives the intervals ``TerminalsState`` kept in memory. An ONLINE while already online
    (the collector restarted and heard the terminal again) keeps the earlier start: the gap is
    unknown, and the terminal was online at both ends of it. Other event kinds are skipped.

    Args:
        events: the terminal's events, in any order.
        until: the end of an interval still open after the last event (the report's end).
    """
    spans: list[Interval] = []
    start: float | None = None
    for event in sorted(events, key=lambda e: e.at):
        if event.kind is EventKind.TERMINAL_ONLINE:
            if start is None:
                start = event.at
        elif event.kind is EventKind.TERMINAL_OFFLINE and start is not None:
            spans.append((start, event.at))
            start = None
    if start is not None and until > start:
        spans.append((start, until))
    return clip_intervals(spans, float("-inf"), float("inf"))
