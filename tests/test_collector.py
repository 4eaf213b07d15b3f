"""The collector keeps accepted rows across store failures and counts what it drops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace

import pytest

from edumon.collector import Collector
from edumon.config import Config, inventory_of, parse_config
from edumon.domain.models import (
    DeviceSample,
    DeviceUnreachable,
    Event,
    OperStatus,
    TerminalSample,
)
from edumon.domain.rollups import InterfaceRollup
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
        self.interface_rollups: list[InterfaceRollup] = []
        self.device_samples: list[DeviceSample] = []
        self.events: list[Event] = []
        self.terminal_samples: list[TerminalSample] = []
        self.agent_reports: list[object] = []

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
        self.attempts += 1
        if self.down:
            raise StoreError("database unavailable")
        self.interface_rollups += interface_rollups
        self.device_samples += device_samples
        self.events += events
        self.terminal_samples += terminal_samples
        self.agent_reports += agent_reports

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
        # One roll-up of the port's bucket (long over by the real clock), one device sample
        # (the second poll is in the same 5 minutes and changes nothing of the switch), an event.
        assert collector.stats.pending_rows == 3
        store.down = False
        await wait_for(lambda: collector.stats.pending_rows == 0 and store.events)
    finally:
        task.cancel()
    assert [e.kind.value for e in store.events] == ["link_down"]
    [rollup] = store.interface_rollups
    assert (rollup.polls, rollup.up_polls, rollup.oper_status) == (2, 1, OperStatus.DOWN)
    assert len(store.device_samples) == 1
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
        NetworkState(inventory_of(config)), store, max_pending_rows=2, flush_seconds=60
    )
    await collector.submit(reading("acc", 0.0, 0, port(2, "Gi0/2"), port(3, "Gi0/3")))
    await collector.submit(reading("acc", 60.0, 6000, port(2, "Gi0/2", up=False), port(3, "Gi0/3")))
    await collector.drain()  # write fails: rows stay pending, bounded
    assert collector.stats.pending_rows == 2  # the device sample and the event
    assert collector.stats.dropped_total["pending_interface_samples"] == 2  # both roll-ups
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


def terminal_collector(config: Config, store: FlakyStore, now: list[float]) -> Collector:
    """A collector of the config's terminals (district "t"), timing out after 30 s of silence."""
    inventory = inventory_of(config)
    return Collector(
        NetworkState(inventory),
        store,
        terminals=TerminalsState(TerminalInventory.from_inventory(inventory, district="t")),
        heartbeat_timeout_seconds=30.0,
        clock=lambda: now[0],
    )


async def test_terminal_heartbeats_become_samples_and_silence_goes_offline(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    store = FlakyStore()
    collector = terminal_collector(config, store, now)
    collector.submit_terminal(heartbeat(1), 1000.0)
    collector.submit_terminal(heartbeat(1), 1000.5)  # a redelivery: no second sample
    collector.submit_terminal(heartbeat(2), 1001.0)  # same 5 minutes, nothing changed: not stored
    collector.submit_terminal(replace(heartbeat(3), link_speed_mbps=100), 1002.0)  # a change
    collector.submit_terminal(replace(heartbeat(4), link_speed_mbps=100), 1003.0)
    collector.submit_terminal(replace(heartbeat(5), link_speed_mbps=100), 1200.0)  # next bucket
    collector.submit_terminal(heartbeat(1, terminal="T-unknown"), 1001.0)
    caplog.set_level(logging.INFO, logger="edumon.collector")
    await collector.drain()
    assert [(s.terminal, s.seq) for s in store.terminal_samples] == [
        ("S1-101", 1),
        ("S1-101", 3),
        ("S1-101", 5),
    ]
    assert collector.stats.not_stored_total["terminal"] == 2
    assert [e.kind.value for e in store.events] == ["terminal_online"]
    # One line for the school (drain logs it at once), none per terminal at INFO.
    assert (
        "school S1: 1 of 3 terminals online; 1 came online, 0 went offline since the last line: "
        "S1-101)" in caplog.text
    )
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "event" in r.msg]
    assert collector.terminals is not None
    assert [u.terminal for u in collector.terminals.unknown.entries()] == ["T-unknown"]
    assert "T-unknown of school S1 (district t) is not in the inventory" in caplog.text
    now[0] = 1220.0
    collector.expire_terminals()
    await collector.flush()
    assert [e.kind.value for e in store.events] == ["terminal_online"]
    now[0] = 1240.0
    collector.expire_terminals()
    await collector.flush()
    assert [e.kind.value for e in store.events] == ["terminal_online", "terminal_offline"]
    assert store.events[-1].details.get("reason", store.events[-1].message)


async def test_ports_that_matter_are_rolled_up_and_written_once_per_bucket(config: Config) -> None:
    now = [0.0]
    store = FlakyStore()
    collector = Collector(NetworkState(inventory_of(config)), store, clock=lambda: now[0])
    gb = 10**9 // 8  # octets a second at 1 Gbit/s
    for minute in range(11):  # polls at 0, 60, ..., 600 s
        now[0] = 60.0 * minute
        octets = minute * 60 * gb // 10  # 100 Mbit/s in and out
        ports = (port(2, "Gi0/2", octets=octets), port(9, "Gi0/9", octets=octets))
        await collector.submit(reading("acc", now[0], 6000 * minute, *ports))
        await collector.drain() if minute == 10 else await collector.flush()
        if minute == 4:
            assert store.interface_rollups == []  # the first bucket is not over yet
    # Gi0/2 is a classroom's port; Gi0/9 serves nothing the inventory names: not stored.
    assert [(r.interface, r.bucket_start, r.polls) for r in store.interface_rollups] == [
        ("Gi0/2", 0.0, 5),
        ("Gi0/2", 300.0, 5),
        ("Gi0/2", 600.0, 1),  # the open bucket, written on shutdown (the store merges it)
    ]
    second = store.interface_rollups[1]
    assert second.in_bps == pytest.approx(1e8)
    assert second.max_utilisation == pytest.approx(0.1)
    assert collector.stats.not_stored_total["interface_port"] == 11
    # The switch: one sample per 5 minutes.
    assert [s.at for s in store.device_samples] == [0.0, 300.0, 600.0]


async def test_all_ports_of_a_switch_with_export_all_ports_are_rolled_up(config: Config) -> None:
    store = FlakyStore()
    collector = Collector(NetworkState(inventory_of(config)), store, all_ports_switches=["acc"])
    await collector.submit(reading("acc", 0.0, 0, port(2, "Gi0/2"), port(9, "Gi0/9")))
    await collector.drain()
    assert sorted(r.interface for r in store.interface_rollups) == ["Gi0/2", "Gi0/9"]


async def test_a_switch_change_is_always_stored(config: Config) -> None:
    store = FlakyStore()
    collector = Collector(NetworkState(inventory_of(config)), store)
    await collector.submit(reading("acc", 0.0, 100_000))
    await collector.submit(reading("acc", 60.0, 106_000))  # steady, same bucket: thinned
    await collector.submit(DeviceUnreachable("acc", 120.0, "timeout"))
    await collector.submit(DeviceUnreachable("acc", 150.0, "timeout"))  # no change: thinned
    await collector.submit(reading("acc", 180.0, 200))  # reachable again, and rebooted
    await collector.submit(reading("acc", 240.0, 6200))
    await collector.drain()
    assert [(s.at, s.reachable) for s in store.device_samples] == [
        (0.0, True),
        (120.0, False),
        (180.0, True),
    ]
    assert collector.stats.not_stored_total["device"] == 3
    kinds = [e.kind.value for e in store.events]
    assert kinds == ["device_unreachable", "device_reachable", "device_reboot"]


async def test_a_retried_write_does_not_grow_with_what_arrived_meanwhile(config: Config) -> None:
    store = FlakyStore()
    store.down = True
    sizes: list[int] = []
    write = store.write

    async def recording(*batch: Sequence[object], **named: Sequence[object]) -> None:
        sizes.append(sum(len(rows) for rows in (*batch, *named.values())))
        await write(*batch, **named)  # type: ignore[arg-type]

    store.write = recording  # type: ignore[method-assign]
    collector = Collector(NetworkState(inventory_of(config)), store, max_write_rows=3)
    for i in range(10):
        await collector.submit(DeviceUnreachable("acc", 300.0 * i, "timeout"))
    await collector.drain()
    assert not await collector.flush()
    assert sizes == [3, 3]  # each attempt bounded, the rows kept
    store.down = False
    assert await collector.flush()
    assert sizes[2:] == [3, 3, 3, 2]
    assert len(store.device_samples) == 10
    assert len(store.events) == 1


async def test_silence_is_judged_after_the_queue_and_as_of_what_was_received(
    config: Config,
) -> None:
    now = [1000.0]
    store = FlakyStore()
    collector = terminal_collector(config, store, now)
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
