"""The SNMP poller against simulated switches that behave like the ones in Chinese schools."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from edumon.config import Switch
from edumon.demo.agent import Quirks, SimulatedSwitch
from edumon.demo.recording import load_recording
from edumon.domain.models import (
    DeviceReading,
    DeviceUnreachable,
    InterfaceReading,
    Observation,
    OperStatus,
)
from edumon.sources.snmp.poller import SnmpPoller
from tests.fixtures.simswitch import SIM_COMMUNITY, ManualClock, StartSwitch, switch_for

IF_INDEX = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)
IF_HIGH_SPEED = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 15)
IF_NAME = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)
IF_OPER_STATUS = (1, 3, 6, 1, 2, 1, 2, 2, 1, 8)


@pytest.fixture
async def poller() -> AsyncIterator[SnmpPoller]:
    async with SnmpPoller([], max_in_flight=4) as p:
        yield p


def reading_of(observation: Observation) -> DeviceReading:
    assert isinstance(observation, DeviceReading), observation
    return observation


def by_index(reading: DeviceReading) -> dict[int, InterfaceReading]:
    return {i.if_index: i for i in reading.interfaces}


def recorded_if_indexes(name: str) -> set[int]:
    return set(load_recording(name).column(IF_INDEX))


async def test_huawei_reading_is_complete(
    simswitch: StartSwitch, sim_clock: ManualClock, poller: SnmpPoller
) -> None:
    sim = await simswitch("huawei-s5735", clock=sim_clock)
    reading = reading_of(await poller.poll(switch_for(sim, device_id="hw")))
    assert reading.device_id == "hw"
    assert reading.sys_name == "CGXX-JXL-S5735-01"
    assert reading.sys_descr.startswith("S5735-L48T4S-A1\nHuawei Versatile Routing Platform")
    assert reading.sys_uptime_ticks == 318_276_543
    ports = by_index(reading)
    assert set(ports) == recorded_if_indexes("huawei-s5735")
    ge1 = ports[5]
    assert (ge1.name, ge1.alias, ge1.oper_status, ge1.speed_mbps) == (
        "GigabitEthernet0/0/1",
        "一年级1班",
        OperStatus.UP,
        1000.0,
    )
    assert ge1.counter_bits == 64
    # UTF-8 Chinese port descriptions, the vendor's default ones, and a 10G uplink.
    assert ports[12].alias == "三年级2班"
    assert ports[40].alias == "HUAWEI, GigabitEthernet0/0/36 Interface"
    assert ports[53].speed_mbps == 10_000.0


async def test_high_speed_zero_on_a_down_port_is_no_speed(
    simswitch: StartSwitch, sim_clock: ManualClock, poller: SnmpPoller
) -> None:
    sim = await simswitch("huawei-s5735", clock=sim_clock)
    ports = by_index(reading_of(await poller.poll(switch_for(sim))))
    # GigabitEthernet0/0/4 is down and reports ifHighSpeed 0 and ifSpeed 0.
    assert ports[8].oper_status is OperStatus.DOWN
    assert ports[8].speed_mbps is None
    # GigabitEthernet0/0/6 negotiated 100M.
    assert ports[10].speed_mbps == 100.0
    sim.set_link(10, False)
    sim.set_link(8, True, 1000)
    ports = by_index(reading_of(await poller.poll(switch_for(sim))))
    assert (ports[10].oper_status, ports[10].speed_mbps) == (OperStatus.DOWN, None)
    assert (ports[8].oper_status, ports[8].speed_mbps) == (OperStatus.UP, 1000.0)


async def test_missing_ifxtable_falls_back_to_iftable(
    simswitch: StartSwitch, sim_clock: ManualClock, poller: SnmpPoller
) -> None:
    sim = await simswitch("ruijie-s2910", clock=sim_clock)
    switch = switch_for(sim)
    for _ in range(2):  # the second poll runs on what the poller learnt about the switch
        reading = reading_of(await poller.poll(switch))
        ports = by_index(reading)
        assert set(ports) == recorded_if_indexes("ruijie-s2910")
        assert ports[1].name == "GigabitEthernet 0/1"
        assert ports[4097].name == "VLAN 1"
        assert ports[1].alias == ""
        assert ports[1].speed_mbps == 1000.0
        assert ports[8].speed_mbps == 100.0
        assert ports[15].speed_mbps == 10.0
        assert ports[5].speed_mbps is None  # down
        assert all(p.counter_bits == 32 for p in ports.values())
        assert ports[25].in_octets is not None
        assert ports[25].in_octets < 2**32
    assert reading.sys_descr.startswith("Ruijie Full Gigabit")


async def test_32_bit_counters_wrap_between_polls(
    simswitch: StartSwitch, sim_clock: ManualClock, poller: SnmpPoller
) -> None:
    sim = await simswitch("ruijie-s2910", clock=sim_clock)
    sim.model.set_rate(25, 1_000_000.0, 1_000_000.0)
    before = by_index(reading_of(await poller.poll(switch_for(sim))))[25].in_octets
    assert before == 4_292_667_296
    sim_clock.advance(5.0)
    after = by_index(reading_of(await poller.poll(switch_for(sim))))[25].in_octets
    assert after == (before + 5_000_000) % 2**32
    assert after < before


async def test_gbk_and_invalid_aliases_are_decoded_without_crashing(
    simswitch: StartSwitch, sim_clock: ManualClock, poller: SnmpPoller
) -> None:
    sim = await simswitch("h3c-s5130", clock=sim_clock)
    sim.model.set_alias(14, b"\xff\xfe\xc0 bad \x80")
    reading = reading_of(await poller.poll(switch_for(sim)))
    ports = by_index(reading)
    assert ports[1].alias == "初一(1)班"
    assert ports[15].alias == "物理实验室"
    assert ports[32].alias == "管理网段"
    assert ports[1].name == "GigabitEthernet1/0/1"
    assert ports[1].descr == "GigabitEthernet1/0/1 Interface"
    # Cut in the middle of a double-byte character, and plain garbage: text all the same.
    for broken in (ports[13], ports[14]):
        assert isinstance(broken.alias, str)
    assert ports[13].alias != ports[12].alias
    # Comware keeps reporting the configured speed on a down port: still no speed.
    assert ports[3].oper_status is OperStatus.DOWN
    assert ports[3].speed_mbps is None


async def test_no_such_instance_holes(
    simswitch: StartSwitch, sim_clock: ManualClock, poller: SnmpPoller
) -> None:
    holes = frozenset({(*IF_HIGH_SPEED, 5), (*IF_NAME, 6), (*IF_OPER_STATUS, 7)})
    sim = await simswitch("huawei-s5735", clock=sim_clock, quirks=Quirks(holes=holes))
    ports = by_index(reading_of(await poller.poll(switch_for(sim))))
    assert set(ports) == recorded_if_indexes("huawei-s5735")
    # No ifHighSpeed: ifSpeed (1 Gbit/s) stands in.
    assert ports[5].speed_mbps == 1000.0
    # No ifName: ifDescr stands in.
    assert ports[6].name == "GigabitEthernet0/0/2"
    # No ifOperStatus: the port's state is unknown, so it has no speed either.
    assert ports[7].oper_status is OperStatus.UNKNOWN
    assert ports[7].speed_mbps is None
    assert ports[8].name == "GigabitEthernet0/0/4"


async def test_uptime_near_2_pow_32_keeps_reading_across_the_wrap(
    simswitch: StartSwitch, sim_clock: ManualClock, poller: SnmpPoller
) -> None:
    sim = await simswitch("h3c-s5130", clock=sim_clock, uptime_ticks=2**32 - 300)
    switch = switch_for(sim)
    first = reading_of(await poller.poll(switch))
    assert first.sys_uptime_ticks == 2**32 - 300
    sim_clock.advance(5.0)
    second = reading_of(await poller.poll(switch))
    assert second.sys_uptime_ticks == 200
    sim_clock.advance(5.0)
    third = reading_of(await poller.poll(switch))
    assert third.sys_uptime_ticks == 700
    # Wrap or not, the walk itself is as complete as before.
    assert {i.if_index for i in third.interfaces} == recorded_if_indexes("h3c-s5130")


async def test_reboot_shows_as_lower_uptime_and_reset_counters(
    simswitch: StartSwitch, sim_clock: ManualClock, poller: SnmpPoller
) -> None:
    sim = await simswitch("huawei-s5735", clock=sim_clock)
    switch = switch_for(sim)
    before = reading_of(await poller.poll(switch))
    sim.reboot(uptime_ticks=6_000)
    sim_clock.advance(1.0)
    after = reading_of(await poller.poll(switch))
    assert before.sys_uptime_ticks is not None
    assert after.sys_uptime_ticks == 6_100
    assert after.sys_uptime_ticks < before.sys_uptime_ticks
    uplink_before = by_index(before)[53].in_octets
    uplink_after = by_index(after)[53].in_octets
    assert uplink_before is not None
    assert uplink_after is not None
    assert uplink_after < uplink_before


async def test_rebooting_switch_is_unreachable_until_it_answers_again(
    simswitch: StartSwitch, sim_clock: ManualClock, poller: SnmpPoller
) -> None:
    sim = await simswitch("ruijie-s2910", clock=sim_clock)
    switch = switch_for(sim, timeout_seconds=0.2, retries=0)
    sim.reboot(silent_seconds=60.0)
    silent = await poller.poll(switch)
    assert isinstance(silent, DeviceUnreachable)
    sim_clock.advance(61.0)
    back = reading_of(await poller.poll(switch))
    assert back.sys_uptime_ticks == 100


async def test_too_big_makes_the_poller_back_off_and_finish(
    simswitch: StartSwitch, sim_clock: ManualClock, poller: SnmpPoller
) -> None:
    sim = await simswitch("huawei-s5735", clock=sim_clock, quirks=Quirks(too_big_above=4))
    switch = switch_for(sim, max_repetitions=10)
    reading = reading_of(await poller.poll(switch))
    assert {i.if_index for i in reading.interfaces} == recorded_if_indexes("huawei-s5735")
    assert sim.stats.too_big >= 1
    seen = sim.stats.bulk_max_repetitions
    assert seen[0] == 10
    # Backed off: the first size is never asked again, and most requests are answered.
    assert max(seen[1:]) < 10
    assert sim.stats.too_big < len(seen) / 2
    assert poller.device_stats["sim"].max_repetitions <= 4


async def test_back_off_remembers_the_size_that_failed(
    simswitch: StartSwitch, sim_clock: ManualClock, poller: SnmpPoller
) -> None:
    # A switch that never takes more than 4: after the first walks, no request may be refused
    # again (growing back into a known failure costs a failure, or a timeout, every few requests).
    sim = await simswitch("huawei-s5735", clock=sim_clock, quirks=Quirks(too_big_above=4))
    switch = switch_for(sim, max_repetitions=10)
    for _ in range(3):
        reading_of(await poller.poll(switch))
    refused_while_learning = sim.stats.too_big
    for _ in range(5):
        reading_of(await poller.poll(switch))
    assert sim.stats.too_big == refused_while_learning
    assert max(sim.stats.bulk_max_repetitions[-20:]) <= 4


async def test_timeouts_on_large_requests_make_the_poller_back_off(
    simswitch: StartSwitch, sim_clock: ManualClock, poller: SnmpPoller
) -> None:
    # A slow control plane: any GETBULK above 3 repetitions is never answered.
    sim = await simswitch("h3c-s5130", clock=sim_clock, quirks=Quirks(drop_above=3))
    switch = switch_for(sim, max_repetitions=10, timeout_seconds=0.2, retries=3)
    reading = reading_of(await poller.poll(switch))
    assert {i.if_index for i in reading.interfaces} == recorded_if_indexes("h3c-s5130")
    seen = sim.stats.bulk_max_repetitions
    assert seen[0] == 10
    assert max(seen[1:]) < 10
    assert 1 <= sim.stats.dropped < len(seen) / 2
    # Every dropped request timed out; a loaded machine may add a late reply or two.
    assert poller.device_stats["sim"].timeouts >= sim.stats.dropped


async def test_garbage_replies_never_crash_the_poller(
    simswitch: StartSwitch, sim_clock: ManualClock, poller: SnmpPoller
) -> None:
    sim = await simswitch(
        "ruijie-s2910", clock=sim_clock, quirks=Quirks(garbage_ratio=0.3, seed=2024)
    )
    switch = switch_for(sim, timeout_seconds=0.1, retries=3, max_repetitions=30)
    for _ in range(8):
        observation = await poller.poll(switch)
        assert isinstance(observation, DeviceReading | DeviceUnreachable)
    assert sim.stats.garbage >= 3
    assert poller.transport_stats.undecodable + poller.transport_stats.unmatched >= 1
    # Once the switch behaves, the same poller reads it fully.
    sim.quirks = Quirks()
    reading = reading_of(await poller.poll(switch))
    assert {i.if_index for i in reading.interfaces} == recorded_if_indexes("ruijie-s2910")


async def test_stopped_switch_is_unreachable(
    simswitch: StartSwitch, sim_clock: ManualClock, poller: SnmpPoller
) -> None:
    sim = await simswitch("h3c-s5130", clock=sim_clock)
    switch = switch_for(sim, timeout_seconds=0.2, retries=1)
    reading_of(await poller.poll(switch))
    await sim.stop()
    observation = await poller.poll(switch)
    assert isinstance(observation, DeviceUnreachable)
    assert observation.device_id == "sim"
    assert observation.reason
    assert SIM_COMMUNITY not in observation.reason
    # Started again on the same port, it is read again.
    await sim.start()
    reading_of(await poller.poll(switch))


async def test_wrong_community_is_unreachable_and_never_named(
    simswitch: StartSwitch, sim_clock: ManualClock, poller: SnmpPoller
) -> None:
    sim = await simswitch("huawei-s5735", clock=sim_clock)
    switch = switch_for(sim, community="Wrong-Comm-55aa", timeout_seconds=0.2, retries=0)
    observation = await poller.poll(switch)
    assert isinstance(observation, DeviceUnreachable)
    assert "community" in observation.reason
    assert "Wrong-Comm-55aa" not in observation.reason
    assert sim.stats.wrong_community == 1


async def test_many_simulated_switches_polled_concurrently(
    simswitch: StartSwitch, sim_clock: ManualClock
) -> None:
    sims: list[SimulatedSwitch] = []
    for n in range(9):
        name = ("huawei-s5735", "h3c-s5130", "ruijie-s2910")[n % 3]
        sims.append(await simswitch(name, clock=sim_clock, sys_name=f"SW-{n}"))
    switches: list[Switch] = [switch_for(s, device_id=f"sw{n}") for n, s in enumerate(sims)]
    async with SnmpPoller(switches, max_in_flight=3) as poller:
        observations = await asyncio.gather(*(poller.poll(s) for s in switches))
    readings = [reading_of(o) for o in observations]
    assert [r.sys_name for r in readings] == [f"SW-{n}" for n in range(9)]
    assert [r.device_id for r in readings] == [f"sw{n}" for n in range(9)]
