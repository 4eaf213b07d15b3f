"""The SNMP poller: reads system and IF-MIB data from every switch, each interval, as observations.

A per-device failure (timeout, authentication, protocol) becomes a DeviceUnreachable with a
reason a school admin can act on; anything else is a bug and propagates. Self-metrics are plain
dataclasses an exporter reads (no metrics library here).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from edumon.config import Switch
from edumon.domain import oids
from edumon.domain.counters import DurationHistogram
from edumon.domain.ifmib import decode_text, parse_interfaces
from edumon.domain.models import (
    DeviceReading,
    DeviceUnreachable,
    NoValue,
    Observation,
    SnmpValue,
)
from edumon.domain.oids import Oid
from edumon.errors import SnmpError, SnmpProtocolError
from edumon.sources.snmp.client import SnmpClient, WalkLimitExceeded, WalkResult
from edumon.sources.snmp.transport import TransportStats, UdpTransport
from edumon.sources.snmp.usm import KeyCache

logger = logging.getLogger(__name__)

DEFAULT_POLL_TIMEOUT = 120.0
POLL_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds of the poll-lag histogram: on time is milliseconds; seconds mean the loop or
the ``max_in_flight`` slots are saturated; tens of seconds put the poll cycle at risk."""
_SYSTEM_OIDS = (oids.SYS_UPTIME_0, oids.SYS_NAME_0, oids.SYS_DESCR_0)
# Clocks that tell a reboot from a misbehaving sysUpTime, read in the same GET where the agent
# has them (noSuchObject where not). v3 learns the engine's boots and time from USM instead.
_OPTIONAL_CLOCKS = (oids.HR_SYSTEM_UPTIME_0, oids.SNMP_ENGINE_BOOTS_0, oids.SNMP_ENGINE_TIME_0)

Sink = Callable[[Observation], Awaitable[None]]


@dataclass(slots=True)
class DeviceStats:
    """Per-switch self-metrics. Counters are cumulative since the poller started."""

    polls_ok: int = 0
    polls_failed: int = 0
    requests: int = 0
    timeouts: int = 0
    """Request attempts that got no reply in time."""
    retries: int = 0
    varbinds: int = 0
    """Varbinds received from this switch (a walk's overshoot included)."""
    last_poll_seconds: float = 0.0
    last_varbinds: int = 0
    """Values kept from the last successful poll."""
    last_error: str = ""
    last_success_at: float | None = None
    max_repetitions: int = 0
    walks_aborted: int = 0
    """Polls given up because a table walk passed its row or request cap (a broken agent)."""
    poll_seconds: DurationHistogram = dataclasses.field(default_factory=DurationHistogram)
    """How long each poll took (successful or not)."""


@dataclass(slots=True)
class PollerStats:
    """Poller-wide self-metrics."""

    polls_in_flight: int = 0
    overruns: int = 0
    """Poll intervals skipped because a poll (and its sink) outlasted the interval."""
    lag: DurationHistogram = dataclasses.field(
        default_factory=lambda: DurationHistogram(POLL_LAG_BUCKETS)
    )
    """How late each scheduled poll started (its first request sent) after its due time."""
    worst_lag_seconds: float = 0.0
    """The worst lag over the last full poll interval (0 until one has passed)."""
    _window_worst: float = 0.0
    _window_end: float | None = None

    def observe_lag(self, lag: float, now: float, interval: float) -> None:
        """Count one poll's lag; ``worst_lag_seconds`` rolls over every ``interval``."""
        self.lag.observe(lag)
        if self._window_end is None:
            self._window_end = now + interval
        elif now >= self._window_end:
            self.worst_lag_seconds = self._window_worst
            self._window_worst = 0.0
            self._window_end = now + interval
        self._window_worst = max(self._window_worst, lag)


@dataclass(slots=True)
class _DeviceState:
    # None until learned. Old switches lack ifXTable (names, HC counters, ifHighSpeed); learning
    # that once saves walking empty columns on every poll.
    has_ifx: bool | None = None
    has_hc: bool | None = None
    last_uptime: int | None = None
    failing: bool = False
    # Some old agents answer a GET naming an object they lack with an error for the whole
    # request instead of noSuchObject: then the optional clocks are not asked for again.
    optional_clocks: bool = True


class SnmpPoller:
    """Polls switches over one shared UDP socket.

    Args:
        switches: the switches :meth:`run` polls.
        max_in_flight: switches polled at once, globally.
        clock: wall clock for observation times (Unix seconds).
        transport: the socket to use; the poller creates (and closes) its own by default.
        poll_timeout: the most one poll may take (in :meth:`run`, also at most the interval).
        rng: source of the start-time jitter.
    """

    def __init__(
        self,
        switches: Iterable[Switch],
        *,
        max_in_flight: int = 64,
        clock: Callable[[], float] = time.time,
        transport: UdpTransport | None = None,
        poll_timeout: float = DEFAULT_POLL_TIMEOUT,
        rng: random.Random | None = None,
    ) -> None:
        if max_in_flight < 1 or poll_timeout <= 0:
            raise ValueError("max_in_flight must be >= 1 and poll_timeout > 0")
        self._switches = {s.id: s for s in switches}
        self._clock = clock
        self._own_transport = transport is None
        self._transport = transport if transport is not None else UdpTransport()
        self._keys = KeyCache()
        self._clients: dict[str, tuple[Switch, SnmpClient]] = {}
        self._state: dict[str, _DeviceState] = {}
        self._global = asyncio.Semaphore(max_in_flight)
        self._poll_timeout = poll_timeout
        self._rng = rng if rng is not None else random.Random()
        self._closed = asyncio.Event()
        self.stats = PollerStats()
        self.device_stats: dict[str, DeviceStats] = {}

    def __repr__(self) -> str:
        return f"SnmpPoller({len(self._switches)} switches)"

    @property
    def transport_stats(self) -> TransportStats:
        """Datagrams sent/received, and those dropped as undecodable or unmatched."""
        return self._transport.stats

    @property
    def switches(self) -> tuple[Switch, ...]:
        """The switches :meth:`run` polls."""
        return tuple(self._switches.values())

    def client(self, switch: Switch) -> SnmpClient:
        """The client for a switch (created on first use, replaced if its settings changed)."""
        entry = self._clients.get(switch.id)
        if entry is not None and entry[0] == switch:
            return entry[1]
        client = SnmpClient.for_switch(switch, transport=self._transport, key_cache=self._keys)
        if entry is not None:
            # Settings changed: keep the counters going so exported counters never go back.
            client.stats = dataclasses.replace(
                entry[1].stats, max_repetitions=switch.max_repetitions
            )
        self._clients[switch.id] = (switch, client)
        self._state.pop(switch.id, None)
        return client

    async def poll(self, switch: Switch) -> Observation:
        """Poll one switch once, within the poller's ``poll_timeout``.

        Returns:
            A DeviceReading, or a DeviceUnreachable whose reason says what went wrong.
        """
        return await self._poll(switch, self._poll_timeout)

    async def _poll(
        self, switch: Switch, budget: float, due: tuple[float, float] | None = None
    ) -> Observation:
        stats = self.device_stats.setdefault(switch.id, DeviceStats())
        client = self.client(switch)
        async with self._global:
            if due is not None:
                # Lateness counts the wait for a slot too: both delay the first request.
                now = asyncio.get_running_loop().time()
                self.stats.observe_lag(max(0.0, now - due[0]), now, due[1])
            self.stats.polls_in_flight += 1
            started = time.perf_counter()
            reason = ""
            try:
                async with asyncio.timeout(budget):
                    reading = await self._read(switch, client)
            except WalkLimitExceeded as exc:
                stats.walks_aborted += 1
                reason = str(exc)
            except SnmpError as exc:
                reason = str(exc)
            except TimeoutError:
                reason = f"{client.target}: poll did not finish within {budget:g} s"
            finally:
                self.stats.polls_in_flight -= 1
                elapsed = time.perf_counter() - started
                self._update_stats(stats, client, elapsed)
        state = self._state.setdefault(switch.id, _DeviceState())
        if reason:
            at = self._clock()
            stats.polls_failed += 1
            stats.last_error = reason
            # Warn when a switch starts failing, not every interval while it stays down.
            log = logger.debug if state.failing else logger.warning
            log(
                "poll of switch %s failed: %s",
                switch.id,
                reason,
                extra={"device": switch.id, "reason": reason},
            )
            state.failing = True
            return DeviceUnreachable(switch.id, at, reason, elapsed)
        if state.failing:
            logger.info("switch %s answers again", switch.id, extra={"device": switch.id})
        state.failing = False
        stats.polls_ok += 1
        stats.last_error = ""
        stats.last_success_at = reading.at
        stats.last_varbinds = reading.varbinds
        return dataclasses.replace(reading, poll_seconds=elapsed)

    def _update_stats(self, stats: DeviceStats, client: SnmpClient, elapsed: float) -> None:
        c = client.stats
        stats.requests = c.requests
        stats.timeouts = c.timeouts
        stats.retries = c.retries
        stats.varbinds = c.varbinds
        stats.max_repetitions = c.max_repetitions
        stats.last_poll_seconds = elapsed
        stats.poll_seconds.observe(elapsed)

    async def _system(self, client: SnmpClient, state: _DeviceState) -> dict[Oid, SnmpValue]:
        """GET the system scalars, and the optional clocks where the agent stands being asked."""
        if not state.optional_clocks:
            return await client.get(_SYSTEM_OIDS)
        try:
            return await client.get(_SYSTEM_OIDS + _OPTIONAL_CLOCKS)
        except SnmpProtocolError as exc:
            logger.info(
                "%s: the agent refuses a GET naming objects it lacks (%s); "
                "reading sysUpTime alone from now on",
                client.target,
                exc,
            )
            state.optional_clocks = False
            return await client.get(_SYSTEM_OIDS)

    async def _read(self, switch: Switch, client: SnmpClient) -> DeviceReading:
        state = self._state.setdefault(switch.id, _DeviceState())
        system = await self._system(client, state)
        # The poll's time is when sysUpTime arrived, not when the poll began nor when a busy
        # loop got round to the reply: the two are compared to tell a reboot from a slow clock.
        at = self._clock()
        if client.reply_arrived is not None:
            at -= max(0.0, time.monotonic() - client.reply_arrived)
        uptime = system.get(oids.SYS_UPTIME_0)
        uptime_ticks = _number(uptime)
        engine = client.engine_clock()
        engine_boots: int | None
        engine_time: int | None
        if engine is not None:
            engine_boots, engine_time = engine
        else:
            engine_boots = _number(system.get(oids.SNMP_ENGINE_BOOTS_0))
            engine_time = _number(system.get(oids.SNMP_ENGINE_TIME_0))
        if (
            uptime_ticks is not None
            and state.last_uptime is not None
            and uptime_ticks < state.last_uptime
        ):
            # Restarted (or wrapped): a firmware upgrade may have changed which tables exist.
            state.has_ifx = state.has_hc = None
        state.last_uptime = uptime_ticks

        columns = list(oids.IF_TABLE_COLUMNS)
        if state.has_ifx is not False:
            columns += oids.IF_X_COLUMNS
        columns += oids.HC_COUNTER_COLUMNS if state.has_hc is not False else oids.COUNTER32_COLUMNS
        walked: WalkResult = await client.walk(columns)
        if walked[oids.IF_DESCR] or walked[oids.IF_OPER_STATUS]:
            if state.has_ifx is None:
                state.has_ifx = any(walked[c] for c in oids.IF_X_COLUMNS)
            if state.has_hc is None:
                state.has_hc = any(walked[c] for c in oids.HC_COUNTER_COLUMNS)
                if not state.has_hc:
                    walked.update(await client.walk(oids.COUNTER32_COLUMNS))
            if not state.has_ifx or not state.has_hc:
                logger.debug(
                    "switch %s: ifXTable %s, 64-bit counters %s",
                    switch.id,
                    "present" if state.has_ifx else "absent",
                    "present" if state.has_hc else "absent",
                )
        name = system.get(oids.SYS_NAME_0)
        descr = system.get(oids.SYS_DESCR_0)
        kept = sum(1 for v in system.values() if not isinstance(v, NoValue))
        kept += sum(len(rows) for rows in walked.values())
        return DeviceReading(
            device_id=switch.id,
            at=at,
            sys_uptime_ticks=uptime_ticks,
            sys_name=decode_text(name) if isinstance(name, bytes) else "",
            sys_descr=decode_text(descr) if isinstance(descr, bytes) else "",
            interfaces=parse_interfaces(walked),
            varbinds=kept,
            hr_uptime_ticks=_number(system.get(oids.HR_SYSTEM_UPTIME_0)),
            engine_boots=engine_boots,
            engine_time=engine_time,
        )

    async def run(self, interval_seconds: float, sink: Sink) -> None:
        """Poll every switch each interval and hand each observation to ``sink``.

        Each switch starts at a random offset within the first interval so a district's
        switches are not all asked at once; a switch is never polled twice at the same time.
        Returns after :meth:`aclose`; an exception from ``sink`` propagates.
        """
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        if self._closed.is_set():
            raise RuntimeError("the poller is closed")
        async with asyncio.TaskGroup() as tg:
            for switch in self._switches.values():
                tg.create_task(
                    self._poll_loop(switch, interval_seconds, sink), name=f"snmp-poll:{switch.id}"
                )
            if not self._switches:
                logger.info("no switches configured; the SNMP poller has nothing to do")
                tg.create_task(self._closed.wait(), name="snmp-poll:idle")

    async def _poll_loop(self, switch: Switch, interval: float, sink: Sink) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self._rng.uniform(0, interval)
        budget = min(self._poll_timeout, interval)
        while True:
            if await self._closed_before(next_at):
                return
            observation = await self._poll(switch, budget, (next_at, interval))
            if self._closed.is_set():
                return  # shutting down: a half-done poll is not an observation
            await sink(observation)
            next_at += interval
            now = loop.time()
            if next_at < now:
                missed = int((now - next_at) // interval) + 1
                self.stats.overruns += missed
                next_at += missed * interval

    async def _closed_before(self, deadline: float) -> bool:
        delay = deadline - asyncio.get_running_loop().time()
        if delay <= 0:
            return self._closed.is_set()
        try:
            async with asyncio.timeout(delay):
                await self._closed.wait()
        except TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        """Stop :meth:`run` and close the socket (if the poller created it)."""
        self._closed.set()
        if self._own_transport:
            await self._transport.aclose()

    async def __aenter__(self) -> SnmpPoller:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _number(value: SnmpValue) -> int | None:
    # NoValue (noSuchObject), strings and OIDs are absences; bool is never produced.
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None
