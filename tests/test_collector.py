"""The collector keeps accepted rows across store failures and counts what it drops."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from edumon.collector import Collector
from edumon.config import Config, inventory_of, parse_config
from edumon.domain.models import DeviceSample, DeviceUnreachable, Event, InterfaceSample
from edumon.domain.state import NetworkState
from edumon.errors import StoreError
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

    async def write(
        self,
        interface_samples: Sequence[InterfaceSample],
        device_samples: Sequence[DeviceSample],
        events: Sequence[Event],
    ) -> None:
        self.attempts += 1
        if self.down:
            raise StoreError("database unavailable")
        self.interface_samples += interface_samples
        self.device_samples += device_samples
        self.events += events

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
