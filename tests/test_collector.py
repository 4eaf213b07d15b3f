"""The collector keeps accepted rows across store failures and counts what it drops."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from edumon.collector import Collector
from edumon.config import Config, inventory_of, parse_config
from edumon.domain.models import (
    DeviceSample,
    DeviceUnreachable,
    Event,
    InterfaceSample,
    TerminalSample,
)
from edumon.domain.state import NetworkState
from edumon.domain.terminals import TerminalInventory, TerminalsState
from edumon.errors import StoreError
from edumon.wire import Heartbeat
from tests.domain.conftest import DISTRICT
from tests.domain.readings import port, reading


class FlakyStore:
    """A store whose writes fail while ``down`` is set (the unit under test is the collector)."""

    def __init__(self) -> None:
        self.down = False
        self.attempts = 0
        self.interface_samples: list[InterfaceSample] = []
        self.device_samples: list[DeviceSample] = []
        self.events: list[Event] = []
        self.terminal_samples: list[TerminalSample] = []

    async def write(
        self,
        interface_samples: Sequence[InterfaceSample] = (),
        device_samples: Sequence[DeviceSample] = (),
        events: Sequence[Event] = (),
        terminal_samples: Sequence[TerminalSample] = (),
    ) -> None:
        self.attempts += 1
        if self.down:
            raise StoreError("database unavailable")
        self.interface_samples += interface_samples
        self.device_samples += device_samples
        self.events += events
        self.terminal_samples += terminal_samples

    async def prune(self, now: float, retention_seconds: float) -> int:
        return 0


@pytest.fixture
def config() -> Config:
    return parse_config(DISTRICT)


async def wait_for(condition: object, deadline: float = 10.0) -> None:
    async with asyncio.timeout(deadline):
        # The collector's counters have no change notification; poll them under the deadline.
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_rows_survive_a_store_outage(config: Config) -> None:
    store = FlakyStore()
    store.down = True
    collector = Collector(NetworkState(inventory_of(config)), store, flush_seconds=0.05)
    task = asyncio.create_task(collector.run())
    try:
        await collector.submit(reading("acc", 0.0, 0, port(2, "Gi0/2")))
        await collector.submit(reading("acc", 60.0, 6000, port(2, "Gi0/2", up=False)))
        await wait_for(lambda: store.attempts >= 1 and collector.stats.write_failures_total >= 1)
        assert collector.stats.pending_rows == 5  # 2 interface + 2 device samples + 1 event
        store.down = False
        await wait_for(lambda: collector.stats.pending_rows == 0 and store.events)
    finally:
        task.cancel()
    assert [e.kind.value for e in store.events] == ["link_down"]
    assert len(store.interface_samples) == 2
    assert len(store.device_samples) == 2
    assert sum(collector.stats.dropped_total.values()) == 0


async def test_full_queue_drops_are_counted(config: Config) -> None:
    collector = Collector(NetworkState(inventory_of(config)), FlakyStore(), queue_size=2)
    for i in range(5):
        await collector.submit(DeviceUnreachable("acc", float(i), "timeout"))
    assert collector.queue_depth == 2
    assert collector.stats.dropped_total["queue_full"] == 3


async def test_pending_rows_are_bounded_oldest_samples_first_events_kept(config: Config) -> None:
    store = FlakyStore()
    store.down = True
    collector = Collector(
        NetworkState(inventory_of(config)), store, max_pending_rows=4, flush_seconds=60
    )
    await collector.submit(reading("acc", 0.0, 0, port(2, "Gi0/2"), port(3, "Gi0/3")))
    await collector.submit(reading("acc", 60.0, 6000, port(2, "Gi0/2", up=False), port(3, "Gi0/3")))
    await collector.drain()  # write fails: rows stay pending, bounded
    assert collector.stats.pending_rows == 4
    assert collector.stats.dropped_total["pending_interface_samples"] == 3
    store.down = False
    assert await collector.flush()
    assert [e.kind.value for e in store.events] == ["link_down"]


def heartbeat(seq: int, *, terminal: str = "S1-101", boot: str = "b1") -> Heartbeat:
    return Heartbeat(
        district="t",
        school="S1",
        terminal=terminal,
        boot_id=boot,
        seq=seq,
        birth_seq=1,
        observed_at=1000.0 + seq,
        uptime_seconds=float(seq),
        agent_version="1.0",
        nic="eth0",
        link_speed_mbps=1000,
        duplex="full",
        ip="127.0.0.1",
        mac="02:00:00:00:00:01",
        cpu_percent=None,
        memory_used_bytes=None,
        memory_total_bytes=None,
        disk_used_bytes=None,
        disk_total_bytes=None,
    )


async def test_terminal_heartbeats_become_samples_and_silence_goes_offline(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    store = FlakyStore()
    inventory = inventory_of(config)
    collector = Collector(
        NetworkState(inventory),
        store,
        terminals=TerminalsState(TerminalInventory.from_inventory(inventory, district="t")),
        heartbeat_timeout_seconds=30.0,
        clock=lambda: now[0],
    )
    collector.submit_terminal(heartbeat(1), 1000.0)
    collector.submit_terminal(heartbeat(1), 1000.5)  # a redelivery: no second sample
    collector.submit_terminal(heartbeat(2), 1001.0)
    collector.submit_terminal(heartbeat(1, terminal="T-unknown"), 1001.0)
    await collector.drain()
    assert [(s.terminal, s.seq) for s in store.terminal_samples] == [("S1-101", 1), ("S1-101", 2)]
    assert [e.kind.value for e in store.events] == ["terminal_online"]
    assert collector.terminals is not None
    assert [u.terminal for u in collector.terminals.unknown.entries()] == ["T-unknown"]
    assert "T-unknown of school S1 (district t) is not in the inventory" in caplog.text
    now[0] = 1020.0
    collector.expire_terminals()
    await collector.flush()
    assert [e.kind.value for e in store.events] == ["terminal_online"]
    now[0] = 1040.0
    collector.expire_terminals()
    await collector.flush()
    assert [e.kind.value for e in store.events] == ["terminal_online", "terminal_offline"]
    assert store.events[-1].details.get("reason", store.events[-1].message)


async def test_silence_is_judged_after_the_queue_and_as_of_what_was_received(
    config: Config,
) -> None:
    now = [1000.0]
    store = FlakyStore()
    inventory = inventory_of(config)
    collector = Collector(
        NetworkState(inventory),
        store,
        terminals=TerminalsState(TerminalInventory.from_inventory(inventory, district="t")),
        heartbeat_timeout_seconds=30.0,
        clock=lambda: now[0],
    )
    collector.submit_terminal(heartbeat(1), 1000.0)
    await collector.drain()
    # A heartbeat received at 1025 still waits in the queue at 1040 (the loop was busy): it
    # is applied before the terminal is judged, so the terminal is not silent.
    collector.submit_terminal(heartbeat(2), 1025.0)
    now[0] = 1040.0
    collector.expire_terminals()
    assert collector.terminals is not None
    st = collector.terminals.terminal("S1", "S1-101")
    assert st is not None
    assert (st.online, st.last_seen) == (True, 1025.0)
    # At 1070 the clock says silent for 45 s, but the ingest has only read what reached it
    # before 1050 (bytes wait in its socket): judged as of 1050, still online.
    now[0] = 1070.0
    collector.expire_terminals(lambda: 1050.0)
    assert st.online is True
    assert collector.expired_at == 1050.0
    # Once it has caught up, the silence counts.
    collector.expire_terminals(lambda: 1070.0)
    assert st.online is False
    await collector.flush()
    assert store.events[-1].details["reason"] == "timeout"
    assert store.events[-1].details["detected_at"] == 1070.0
