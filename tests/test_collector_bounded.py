"""A long run of heartbeats and polls keeps what the collector holds in memory bounded.

The daemon's memory grew for as long as it ran when every heartbeat was a row: the writes fell
behind and the rows waited in memory. Here many simulated hours go through the real Collector
and TerminalsState on a fake clock; what they hold is measured by entries, never by bytes or
time, and must stop growing once every terminal, port and switch has been seen.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence

import pytest

from edumon.collector import Collector
from edumon.domain.inventory import ClassroomRef, Inventory, SchoolRef
from edumon.domain.models import DeviceSample, Event, TerminalSample
from edumon.domain.rollups import InterfaceRollup
from edumon.domain.state import NetworkState
from edumon.domain.terminals import TerminalInventory, TerminalsState
from edumon.wire import Heartbeat
from tests.domain.readings import port, reading

SCHOOLS = 5
ROOMS = 40
PORTS = 48  # per school switch: the uplink, 40 classroom ports, 7 that serve nothing known
HISTORY_LIMIT = 8
UNKNOWN_LIMIT = 20
T0 = 1_725_148_800.0


class CountingStore:
    """Counts what is written, keeps nothing (the store is not under test)."""

    def __init__(self) -> None:
        self.rollups = 0
        self.devices = 0
        self.events = 0
        self.terminals = 0

    async def write(
        self,
        interface_rollups: Sequence[InterfaceRollup] = (),
        device_samples: Sequence[DeviceSample] = (),
        events: Sequence[Event] = (),
        terminal_samples: Sequence[TerminalSample] = (),
        *,
        positions: Sequence[object] = (),
        agent_reports: Sequence[object] = (),
    ) -> None:
        self.rollups += len(interface_rollups)
        self.devices += len(device_samples)
        self.events += len(events)
        self.terminals += len(terminal_samples)

    async def prune(self, now: float, retention_seconds: float) -> int:
        return 0


def city() -> Inventory:
    schools = {}
    for n in range(SCHOOLS):
        code = f"s{n}"
        rooms = tuple(
            ClassroomRef(f"{code}-r{r:02d}", f"{r}班", f"{code}-sw", f"Gi0/{r + 2}")
            for r in range(ROOMS)
        )
        schools[code] = SchoolRef(code, code, "primary", f"{code}-sw", "Gi0/1", rooms)
    return Inventory(schools, {f"s{n}-sw": f"s{n}" for n in range(SCHOOLS)})


def heartbeat(school: str, terminal: str, seq: int, at: float) -> Heartbeat:
    return Heartbeat(
        district="d",
        school=school,
        terminal=terminal,
        boot_id=f"boot-{terminal}",
        seq=seq,
        birth_seq=1,
        observed_at=at,
        uptime_seconds=30.0 * seq,
        agent_version="1.0",
        nic="eth0",
        link_speed_mbps=1000,
        duplex="full",
        ip="10.0.0.2",
        mac="02:00:00:00:00:02",
        cpu_percent=12.5,
        memory_used_bytes=2**31,
        memory_total_bytes=2**33,
        disk_used_bytes=2**35,
        disk_total_bytes=2**37,
    )


async def test_a_long_run_keeps_the_collectors_structures_bounded() -> None:
    inventory = city()
    terminals = TerminalsState(
        TerminalInventory.from_inventory(inventory, district="d"),
        history_limit=HISTORY_LIMIT,
        unknown_limit=UNKNOWN_LIMIT,
    )
    refs = list(terminals.inventory)
    now = [T0]
    store = CountingStore()
    collector = Collector(
        NetworkState(inventory),
        store,
        terminals=terminals,
        heartbeat_timeout_seconds=100.0,
        clock=lambda: now[0],
        queue_size=len(refs) + 100,
        flush_seconds=3600.0,  # the test flushes, once per simulated step
    )
    consumer = asyncio.create_task(collector.run())
    try:
        await simulate(collector, terminals, store, now)
    finally:
        consumer.cancel()


async def applied(collector: Collector) -> None:
    """Wait until the consumer has applied everything queued (it applies as it takes)."""
    async with asyncio.timeout(10):
        # The queue has no change notification; yield to the consumer until it is empty.
        while collector.queue_depth:  # noqa: ASYNC110
            await asyncio.sleep(0)


async def simulate(
    collector: Collector, terminals: TerminalsState, store: CountingStore, now: list[float]
) -> None:
    refs = list(terminals.inventory)
    seq = itertools.count(1)
    unknown_ids = itertools.count()
    hours = 6
    sizes_after_first_hour: dict[str, int] = {}
    written_per_hour: list[int] = []
    for step in range(hours * 120):  # a step is 30 s: every terminal heartbeats once
        at = now[0]
        minute = step // 2
        for i, ref in enumerate(refs):
            # One terminal in ten is off for 3 minutes of every 20: it times out, comes back.
            if i % 10 == 0 and minute % 20 < 3:
                continue
            collector.submit_terminal(heartbeat(ref.school, ref.terminal, next(seq), at), at)
        # A misconfigured agent that invents a new terminal id each time.
        collector.submit_terminal(heartbeat("s0", f"ghost-{next(unknown_ids)}", 1, at), at)
        if step % 2 == 0:  # switches are polled every minute
            for n in range(SCHOOLS):
                ports = tuple(
                    port(i + 1, f"Gi0/{i + 1}", octets=step * 10**6) for i in range(PORTS)
                )
                await collector.submit(reading(f"s{n}-sw", at, 6000 * step, *ports))
        await applied(collector)
        now[0] += 30.0
        collector.expire_terminals()
        await collector.flush()
        if step % 120 == 119:
            sizes = collector.tracked_sizes()
            assert sizes["pending_rows"] == 0
            assert sizes["queue"] == 0
            assert sizes["finished_rollups"] == 0
            assert sizes["open_rollups"] <= SCHOOLS * (1 + ROOMS)
            assert sizes["device_samples_last"] <= SCHOOLS
            assert sizes["terminal_samples_last"] <= len(refs)
            assert sizes["terminal_changes"] <= SCHOOLS
            assert len(terminals.unknown) <= UNKNOWN_LIMIT
            assert all(len(st.history) <= HISTORY_LIMIT for st in terminals.terminals.values())
            if not sizes_after_first_hour:
                sizes_after_first_hour = sizes
            else:
                assert sizes["open_rollups"] <= sizes_after_first_hour["open_rollups"]
                assert (
                    sizes["terminal_samples_last"]
                    <= sizes_after_first_hour["terminal_samples_last"]
                )
            written_per_hour.append(store.terminals)
    # What reaches the database per hour is per 5 minutes, not per heartbeat: 12 an hour per
    # terminal, and one more for each return from a timeout (a new bucket's first heartbeat
    # counts once either way).
    terminals_per_hour = [b - a for a, b in itertools.pairwise([0, *written_per_hour])]
    assert max(terminals_per_hour) <= 12 * len(refs) + len(refs) // 10 * 3
    assert store.rollups <= hours * 12 * SCHOOLS * (1 + ROOMS) + SCHOOLS * (1 + ROOMS)
    assert store.devices <= hours * 12 * SCHOOLS + SCHOOLS
    assert collector.stats.events_total["terminal_offline"] > 0  # the flapping happened


async def test_start_up_logs_one_line_per_school_not_per_terminal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inventory = city()
    terminals = TerminalsState(TerminalInventory.from_inventory(inventory, district="d"))
    now = [T0]
    collector = Collector(
        NetworkState(inventory),
        CountingStore(),
        terminals=terminals,
        clock=lambda: now[0],
        queue_size=1000,
    )
    caplog.set_level(logging.DEBUG, logger="edumon.collector")
    for ref in terminals.inventory:  # everyone's first heartbeat, as at start-up
        collector.submit_terminal(heartbeat(ref.school, ref.terminal, 1, now[0]), now[0])
    consumer = asyncio.create_task(collector.run())
    try:
        await applied(collector)
        await collector.flush()
        info = [r for r in caplog.records if r.levelno >= logging.INFO]
        assert info == []  # not yet: the school's line waits for the rest of its terminals
        now[0] += 30.0
        await collector.flush()
    finally:
        consumer.cancel()
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert sorted(info) == [
        f"学校 s{n} 终端 40/40 在线 (school s{n}: 40 of 40 terminals online; "
        "40 came online, 0 went offline since the last line)"
        for n in range(SCHOOLS)
    ]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debug) == SCHOOLS * ROOMS  # each change is still there, at debug level
