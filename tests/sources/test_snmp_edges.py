"""The poller and the state together over real UDP: clocks, wraps, broken agents."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import time
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from edumon.config import DEFAULT_MAX_WALK_ROWS, SnmpCredentials, Switch
from edumon.domain.counters import UPTIME_MODULUS
from edumon.domain.inventory import Inventory
from edumon.domain.models import DeviceReading, DeviceUnreachable, EventKind, Observation
from edumon.domain.state import NetworkState
from edumon.sources.snmp.poller import POLL_LAG_BUCKETS, SnmpPoller
from tests.fixtures.simswitch import SIM_COMMUNITY, ManualClock, StartSwitch, switch_for
from tests.sources.hostile_agent import EndlessAgent


@pytest.fixture
def wall() -> ManualClock:
    """The collector's wall clock, moved by hand (Unix seconds)."""
    return ManualClock(1_800_000_000.0)


@pytest.fixture
async def poller(wall: ManualClock) -> AsyncIterator[SnmpPoller]:
    async with SnmpPoller([], clock=wall) as p:
        yield p


def empty_state() -> NetworkState:
    return NetworkState(Inventory({}, {}))


def reboots_in(events: object) -> int:
    return sum(1 for e in events if e.kind is EventKind.DEVICE_REBOOT)  # type: ignore[attr-defined]


def reading_of(observation: Observation) -> DeviceReading:
    assert isinstance(observation, DeviceReading), observation
    return observation


async def test_a_frozen_agent_clock_and_a_racing_collector_clock_raise_no_reboot(
    simswitch: StartSwitch, sim_clock: ManualClock, wall: ManualClock, poller: SnmpPoller
) -> None:
    # The agent's clock never moves (a cached sysUpTime); the collector's jumps ten minutes
    # between polls. Before, every poll after the first was a reboot and rates stayed empty.
    sim = await simswitch("huawei-s5735", clock=sim_clock)
    switch = switch_for(sim)
    state = empty_state()
    reboots = 0
    for _ in range(6):
        reboots += reboots_in(state.apply(await poller.poll(switch)).events)
        wall.advance(600.0)
    assert reboots == 0
    uplink = state.interface("sim", "XGigabitEthernet0/0/1")
    assert uplink is not None
    assert uplink.in_bps == 0.0  # the frozen switch counts nothing: a rate of 0, not "no rate"


async def test_a_real_reboot_is_seen_once_from_the_engine_boots(
    simswitch: StartSwitch, sim_clock: ManualClock, wall: ManualClock, poller: SnmpPoller
) -> None:
    sim = await simswitch("huawei-s5735", clock=sim_clock)
    switch = switch_for(sim)
    state = empty_state()
    first = reading_of(await poller.poll(switch))
    assert (first.engine_boots, first.hr_uptime_ticks) == (7, None)
    state.apply(first)
    sim.reboot(uptime_ticks=0)
    events = []
    for _ in range(4):
        sim_clock.advance(60.0)
        wall.advance(60.0)
        events += state.apply(await poller.poll(switch)).events
    reboots = [e for e in events if e.kind is EventKind.DEVICE_REBOOT]
    assert len(reboots) == 1
    assert reboots[0].details["evidence"] == "snmpEngineBoots"
    assert state.devices["sim"].uptime_seconds == 240.0


async def test_uptime_is_true_after_the_497_day_wrap(
    simswitch: StartSwitch, sim_clock: ManualClock, wall: ManualClock, poller: SnmpPoller
) -> None:
    sim = await simswitch("h3c-s5130", clock=sim_clock, uptime_ticks=UPTIME_MODULUS - 300)
    switch = switch_for(sim)
    state = empty_state()
    state.apply(await poller.poll(switch))
    sim_clock.advance(5.0)
    wall.advance(5.0)
    applied = state.apply(await poller.poll(switch))
    assert applied.events == ()
    dev = state.devices["sim"]
    assert dev.uptime_ticks == 200
    assert dev.uptime_seconds == pytest.approx((UPTIME_MODULUS + 200) / 100)  # not 2 s
    assert applied.device_sample.uptime_seconds == dev.uptime_seconds


async def test_a_wrapping_32_bit_counter_becomes_a_monotonic_total(
    simswitch: StartSwitch, sim_clock: ManualClock, wall: ManualClock, poller: SnmpPoller
) -> None:
    # A Ruijie without HC counters carrying 100 Mbit/s: ifInOctets wraps every 5.7 minutes.
    sim = await simswitch("ruijie-s2910", clock=sim_clock)
    sim.model.set_rate(25, 12_500_000.0, 12_500_000.0)
    switch = switch_for(sim)
    state = empty_state()
    totals, raws = [], []
    for _ in range(12):
        state.apply(await poller.poll(switch))
        port = next(i for i in state.devices["sim"].interfaces.values() if i.if_index == 25)
        assert port.counter_bits == 32
        totals.append(port.in_octets_total)
        raws.append(port.in_octets)
        sim_clock.advance(120.0)
        wall.advance(120.0)
    assert any(b < a for a, b in itertools.pairwise(raws))  # it did wrap, twice
    assert totals == sorted(totals)
    assert totals[-1] - totals[0] == 11 * 120 * 12_500_000
    assert totals[-1] > 2**32


def hostile_switch(agent: EndlessAgent, **limits: int) -> Switch:
    return Switch(
        id="hostile",
        school=None,
        host=agent.host,
        port=agent.port,
        snmp=SnmpCredentials(version="2c", community=SecretStr(SIM_COMMUNITY)),
        timeout_seconds=0.5,
        retries=1,
        max_repetitions=10,
        max_in_flight=1,
        **limits,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("limits", "expected_requests"),
    [
        pytest.param({}, math.ceil((DEFAULT_MAX_WALK_ROWS + 1) / 10), id="default-4096-rows"),
        pytest.param({"max_walk_rows": 100}, 11, id="configured-100-rows"),
    ],
)
async def test_an_agent_with_endless_rows_is_given_up_at_the_row_cap(
    poller: SnmpPoller, limits: dict[str, int], expected_requests: int
) -> None:
    async with EndlessAgent(SIM_COMMUNITY) as agent:
        switch = hostile_switch(agent, **limits)
        observation = await poller.poll(switch)
    assert isinstance(observation, DeviceUnreachable)
    rows = limits.get("max_walk_rows", DEFAULT_MAX_WALK_ROWS)
    assert f"agent returned more than {rows} rows for ifTable; possibly a broken agent" in (
        observation.reason
    )
    assert "SNMP 代理可能有故障" in observation.reason
    assert SIM_COMMUNITY not in observation.reason
    # One GETBULK per ten rows until the cap: hundreds, not the thousands an uncapped walk took.
    assert agent.bulk_requests == expected_requests
    stats = poller.device_stats["hostile"]
    assert (stats.walks_aborted, stats.polls_failed) == (1, 1)


async def test_an_agent_that_ignores_max_repetitions_is_given_up_at_the_request_cap(
    poller: SnmpPoller,
) -> None:
    async with EndlessAgent(SIM_COMMUNITY, rows_per_reply=1) as agent:
        switch = hostile_switch(agent, max_walk_requests=40)
        first = await poller.poll(switch)
        second = await poller.poll(dataclasses.replace(switch, max_walk_requests=40))
    for observation in (first, second):
        assert isinstance(observation, DeviceUnreachable)
        assert "walking ifTable took more than 40 requests; possibly a broken agent" in (
            observation.reason
        )
    assert agent.bulk_requests == 80
    assert poller.device_stats["hostile"].walks_aborted == 2


async def test_the_poll_time_is_when_the_reply_arrived(
    simswitch: StartSwitch, sim_clock: ManualClock, wall: ManualClock
) -> None:
    # A clock that moves on each reading: the poll's time is read after the system reply.
    ticks = iter(range(1_800_000_000, 1_800_001_000, 10))

    async with SnmpPoller([], clock=lambda: float(next(ticks))) as poller:
        sim = await simswitch("huawei-s5735", clock=sim_clock)
        reading = reading_of(await poller.poll(switch_for(sim)))
    # The one clock reading, taken once sysUpTime was in, less how long the reply had waited.
    assert 1_800_000_000.0 - 1.0 < reading.at <= 1_800_000_000.0
    assert next(ticks) == 1_800_000_010


async def test_a_poll_due_while_the_loop_is_busy_shows_its_lateness(
    simswitch: StartSwitch, sim_clock: ManualClock
) -> None:
    sim = await simswitch("huawei-s5735", clock=sim_clock)
    loop = asyncio.get_running_loop()
    observations: list[Observation] = []
    enough = asyncio.Event()

    async def sink(observation: Observation) -> None:
        observations.append(observation)
        if len(observations) == 1:
            # The next poll comes due 0.3 s on, while something hogs the loop for 1 s.
            loop.call_later(0.05, _hog_the_loop, 1.0)
        if len(observations) >= 3:
            enough.set()

    async with SnmpPoller([switch_for(sim)]) as poller:
        running = asyncio.create_task(poller.run(0.3, sink))
        async with asyncio.timeout(30):
            await enough.wait()
        await poller.aclose()
        await running
    assert all(isinstance(o, DeviceReading) for o in observations)
    lag = poller.stats.lag
    assert lag.total >= 3
    # At least one poll started more than half a second late, and most were on time.
    assert lag.counts[POLL_LAG_BUCKETS.index(0.5)] < lag.total
    assert lag.counts[POLL_LAG_BUCKETS.index(0.1)] >= 1


def _hog_the_loop(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
