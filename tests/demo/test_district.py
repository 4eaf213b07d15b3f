"""The simulated demo district: its config, its switches read by the real poller, its timers."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator

import pytest

from edumon.config import Config
from edumon.demo.district import SimulatedDistrict
from edumon.domain.models import DeviceReading, OperStatus
from edumon.errors import ConfigError
from edumon.sources.snmp.poller import SnmpPoller
from tests.fixtures.ports import free_tcp_port, refused_tcp_port

STORAGE_URL = "sqlite:///demo-test.db"


@pytest.fixture
def listen() -> str:
    """``api.listen`` of the generated config: nothing binds it in these tests, but it is a
    free port, never the product's 9310."""
    return f"127.0.0.1:{free_tcp_port()}"


@pytest.fixture
def mqtt_listen() -> Iterator[str]:
    """Where the district's terminals connect: a port this test holds, so they find no broker
    (and never reach a running demo's broker on 1884, or another run's)."""
    with refused_tcp_port() as port:
        yield f"127.0.0.1:{port}"


@pytest.fixture
async def district(listen: str, mqtt_listen: str) -> AsyncIterator[SimulatedDistrict]:
    # Timers far in the future: the scenario holds still while a test reads it.
    async with SimulatedDistrict(
        storage_url=STORAGE_URL,
        listen=listen,
        mqtt_listen=mqtt_listen,
        interval_seconds=7.0,
        flap_period_seconds=3600.0,
        first_reboot_seconds=3600.0,
    ) as d:
        yield d


async def poll_all(config: Config) -> dict[str, DeviceReading]:
    """A reading of every switch; a poll that times out on a loaded machine is tried again."""
    readings: dict[str, DeviceReading] = {}
    async with SnmpPoller(config.switches.values(), max_in_flight=8) as poller:
        async with asyncio.timeout(45):
            while len(readings) < len(config.switches):
                todo = [s for s in config.switches.values() if s.id not in readings]
                for observation in await asyncio.gather(*(poller.poll(s) for s in todo)):
                    if isinstance(observation, DeviceReading):
                        readings[observation.device_id] = observation
    return readings


async def test_config_describes_the_district_and_points_at_its_switches(
    district: SimulatedDistrict, listen: str, mqtt_listen: str
) -> None:
    config = district.config
    assert config.storage.url.get_secret_value() == STORAGE_URL
    assert config.api.listen == listen
    assert config.mqtt.listen == mqtt_listen
    assert config.polling.interval_seconds == 7.0
    assert config.targets.profile == "district-1000m"
    assert len(config.schools) == 4
    names = [s.name for s in config.schools.values()]
    assert any(n.endswith("小学") for n in names)
    assert any(n.endswith("中学") for n in names)
    assert {s.kind for s in config.schools.values()} >= {"primary", "middle"}
    for code, school in config.schools.items():
        switches = [s for s in config.switches.values() if s.school == code]
        # The uplink is a port of the school's own switch, or of a district switch (no school).
        uplink = config.switches[school.uplink.switch]
        assert uplink.id in {s.id for s in switches} or uplink.school is None
        access = {room.switch for room in school.classrooms}
        assert 1 <= len(access) <= 2
        assert school.uplink.switch not in access
        recordings = {district.switches[s.id].model.recording.name for s in switches}
        assert len(recordings) >= 2, f"{code} uses one vendor only"
        assert len(school.classrooms) >= 4
    for switch in config.switches.values():
        sim = district.switches[switch.id]
        assert (switch.host, switch.port) == ("127.0.0.1", sim.port)
        assert sim.running
    community = next(iter(config.switches.values())).snmp.community
    assert community is not None
    assert community.get_secret_value() not in repr(config)
    assert community.get_secret_value() not in repr(district)


async def test_polling_the_district_finds_the_scenario(district: SimulatedDistrict) -> None:
    config = district.config
    readings = await poll_all(config)
    assert set(readings) == set(config.switches)
    links = district.classroom_links()
    slow = []
    for school in config.schools.values():
        for room in school.classrooms:
            assert room.switch is not None
            assert room.port is not None
            ports = {i.name: i for i in readings[room.switch].interfaces}
            port = ports[room.port]
            link = links[room.id]
            assert port.oper_status is (OperStatus.UP if link.up else OperStatus.DOWN), room.id
            if link.up:
                assert port.speed_mbps == link.speed_mbps, room.id
                if link.speed_mbps < 1000:
                    slow.append(room.id)
            if district.switches[room.switch].model.recording.name != "ruijie-s2910":
                # Port descriptions carry the classroom name, GBK on H3C, UTF-8 on Huawei.
                assert port.alias == room.name
    assert len(slow) >= 3
    assert any(not link.up for link in links.values())
    for code, school in config.schools.items():
        ports = {i.name: i for i in readings[school.uplink.switch].interfaces}
        uplink = ports[school.uplink.port]
        assert uplink.oper_status is OperStatus.UP
        assert uplink.speed_mbps is not None
        if code == district.slow_uplink_school:
            assert uplink.speed_mbps == 100.0
        else:
            assert uplink.speed_mbps >= 1000.0


async def test_flapping_port_and_rebooting_switch(listen: str, mqtt_listen: str) -> None:
    async with SimulatedDistrict(
        storage_url=STORAGE_URL,
        listen=listen,
        mqtt_listen=mqtt_listen,
        flap_period_seconds=0.3,
        first_reboot_seconds=0.2,
        reboot_every_seconds=0.6,
        reboot_silent_seconds=0.1,
    ) as district:
        config = district.config
        flap_switch, flap_port = district.flapping_port
        seen: set[OperStatus] = set()
        uptimes: list[int] = []
        async with SnmpPoller(config.switches.values()) as poller:
            # Eventual facts only: on a loaded machine a poll may time out now and then.
            async with asyncio.timeout(45):
                while len(seen) < 2:
                    reading = await poller.poll(config.switches[flap_switch])
                    if isinstance(reading, DeviceReading):
                        seen |= {i.oper_status for i in reading.interfaces if i.name == flap_port}
                while not any(b < a for a, b in itertools.pairwise(uptimes)):
                    observation = await poller.poll(config.switches[district.rebooting_switch])
                    # While it boots it answers nothing: unreachable, then a lower uptime.
                    if (
                        isinstance(observation, DeviceReading)
                        and observation.sys_uptime_ticks is not None
                    ):
                        uptimes.append(observation.sys_uptime_ticks)
        assert seen == {OperStatus.UP, OperStatus.DOWN}
        assert district.flaps >= 1
        assert district.reboots >= 1
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert f"demo-flap:{flap_switch}:{flap_port}" in names
        assert f"demo-reboot:{district.rebooting_switch}" in names
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert not any(n.startswith("demo-") for n in names)
    assert district.switches == {}
    with pytest.raises(RuntimeError, match="not started"):
        _ = district.config


async def test_the_config_goes_through_validation(listen: str, mqtt_listen: str) -> None:
    # polling.interval_seconds must be at least 1 s, for the demo as for production.
    with pytest.raises(ConfigError, match="interval_seconds"):
        async with SimulatedDistrict(
            storage_url=STORAGE_URL, listen=listen, mqtt_listen=mqtt_listen, interval_seconds=0.5
        ):
            pass
    with pytest.raises(ConfigError, match="listen"):
        async with SimulatedDistrict(
            storage_url=STORAGE_URL, listen="nowhere", mqtt_listen=mqtt_listen
        ):
            pass
