"""The SNMP client and poller against a real net-snmp snmpd on loopback (v2c and v3 USM)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from edumon.domain import oids
from edumon.domain.models import DeviceReading, DeviceUnreachable, NoValue, Observation, OperStatus
from edumon.errors import SnmpAuthError, SnmpTimeout
from edumon.sources.snmp import ber
from edumon.sources.snmp.client import SnmpClient
from edumon.sources.snmp.poller import SnmpPoller
from edumon.sources.snmp.transport import UdpTransport
from tests.fixtures.snmpd import Snmpd

V3_KINDS = [
    "sha-aes128",
    "sha256-aes256",
    "sha512-aes128",
    "sha-aes256",
    "sha-authnopriv",
    "noauthnopriv",
]


@pytest.fixture
async def transport() -> AsyncIterator[UdpTransport]:
    async with UdpTransport(local_host_v4="127.0.0.1") as shared:
        yield shared


def assert_reads_snmpd(obs: Observation) -> DeviceReading:
    assert isinstance(obs, DeviceReading), obs
    assert obs.sys_uptime_ticks is not None
    assert obs.sys_uptime_ticks > 0
    assert obs.sys_descr.startswith("Linux")
    assert obs.sys_name == socket.gethostname()
    lo = next(i for i in obs.interfaces if i.name == "lo")
    assert lo.descr == "lo"
    assert lo.oper_status is OperStatus.UP
    assert lo.in_octets is not None
    assert lo.in_octets > 0
    assert lo.counter_bits == 64
    # ifIndex is the walk's index, and names are unique per switch.
    assert len({i.if_index for i in obs.interfaces}) == len(obs.interfaces)
    assert obs.varbinds == 3 + 11 * len(obs.interfaces)
    return obs


async def test_v2c_poll_reads_system_and_interfaces(snmpd: Snmpd, transport: UdpTransport) -> None:
    async with SnmpPoller([], transport=transport) as poller:
        obs = await poller.poll(snmpd.switch(snmpd.v2c()))
    reading = assert_reads_snmpd(obs)
    assert reading.device_id == "snmpd"
    assert {i.name for i in reading.interfaces} >= {"lo"}
    stats = poller.device_stats["snmpd"]
    assert stats.polls_ok == 1
    assert stats.polls_failed == 0
    assert stats.last_varbinds == reading.varbinds
    assert poller.transport_stats.matched == stats.requests


@pytest.mark.parametrize("kind", V3_KINDS)
async def test_v3_poll_reads_system_and_interfaces(
    snmpd: Snmpd, transport: UdpTransport, kind: str
) -> None:
    async with SnmpPoller([], transport=transport) as poller:
        first = await poller.poll(snmpd.switch(snmpd.v3(kind)))
        second = await poller.poll(snmpd.switch(snmpd.v3(kind)))
    assert_reads_snmpd(first)
    assert_reads_snmpd(second)
    assert isinstance(first, DeviceReading)
    assert isinstance(second, DeviceReading)
    assert second.sys_uptime_ticks is not None
    assert first.sys_uptime_ticks is not None
    assert second.sys_uptime_ticks >= first.sys_uptime_ticks


async def test_v3_walk_matches_v2c_walk(snmpd: Snmpd, transport: UdpTransport) -> None:
    columns = [oids.IF_DESCR, oids.IF_OPER_STATUS, oids.IF_NAME]
    v2 = SnmpClient(snmpd.host, snmpd.port, snmpd.v2c(), transport=transport, timeout=1)
    v3 = SnmpClient(
        snmpd.host, snmpd.port, snmpd.v3("sha256-aes256"), transport=transport, timeout=1
    )
    a = await v2.walk(columns)
    b = await v3.walk(columns)
    assert a == b
    assert a[oids.IF_DESCR][(1,)] == b"lo"
    assert v2.last_walk_varbinds == sum(len(rows) for rows in a.values())


async def test_walk_with_tiny_max_repetitions_and_parallel_streams(
    snmpd: Snmpd, transport: UdpTransport
) -> None:
    columns = [*oids.IF_TABLE_COLUMNS, *oids.IF_X_COLUMNS, *oids.HC_COUNTER_COLUMNS]
    reference = SnmpClient(snmpd.host, snmpd.port, snmpd.v2c(), transport=transport)
    small = SnmpClient(
        snmpd.host,
        snmpd.port,
        snmpd.v2c(),
        transport=transport,
        max_repetitions=1,
        max_in_flight=3,
    )
    want = await reference.walk(columns)
    got = await small.walk(columns)
    assert set(got) == set(want)
    for column in columns:
        assert set(got[column]) == set(want[column]), column
        assert got[column], column
    # One row per request and column: at least as many requests as rows in the widest column.
    assert small.stats.requests >= max(len(rows) for rows in got.values())


async def test_get_reports_missing_objects(snmpd: Snmpd, transport: UdpTransport) -> None:
    client = SnmpClient(snmpd.host, snmpd.port, snmpd.v2c(), transport=transport)
    got = await client.get([oids.SYS_UPTIME_0, (1, 3, 6, 1, 2, 1, 1, 99, 0)])
    assert isinstance(got[oids.SYS_UPTIME_0], int)
    assert got[(1, 3, 6, 1, 2, 1, 1, 99, 0)] in (NoValue.NO_SUCH_OBJECT, NoValue.NO_SUCH_INSTANCE)


async def test_wrong_community_is_unreachable_by_timeout(
    snmpd: Snmpd, transport: UdpTransport
) -> None:
    wrong = "not-the-Community-42"
    switch = snmpd.switch(snmpd.v2c(wrong), timeout_seconds=0.2, retries=1)
    async with SnmpPoller([], transport=transport) as poller:
        obs = await poller.poll(switch)
    assert isinstance(obs, DeviceUnreachable)
    assert "no reply" in obs.reason
    assert f"{snmpd.host}:{snmpd.port}" in obs.reason
    assert wrong not in obs.reason
    assert snmpd.community not in obs.reason
    stats = poller.device_stats["snmpd"]
    assert stats.polls_failed == 1
    assert stats.timeouts == 2
    assert stats.retries == 1


@pytest.mark.parametrize("kind", ["sha-aes128", "sha512-aes128", "sha-authnopriv"])
async def test_wrong_v3_password_is_an_auth_error_without_the_password(
    snmpd: Snmpd, transport: UdpTransport, kind: str
) -> None:
    wrong = "Wrong-auth-PASSWORD-1"
    creds = snmpd.v3(kind, auth_password=wrong)
    client = SnmpClient(snmpd.host, snmpd.port, creds, transport=transport, timeout=0.5)
    with pytest.raises(SnmpAuthError) as caught:
        await client.get([oids.SYS_UPTIME_0])
    message = str(caught.value)
    assert snmpd.users[kind].name in message
    assert "auth_password" in message
    assert wrong not in message
    assert str(snmpd.users[kind].auth_password) not in message

    async with SnmpPoller([], transport=transport) as poller:
        obs = await poller.poll(snmpd.switch(creds))
    assert isinstance(obs, DeviceUnreachable)
    assert snmpd.users[kind].name in obs.reason
    assert wrong not in obs.reason
    assert wrong not in repr(obs)


async def test_wrong_priv_password_fails_without_the_password(
    snmpd: Snmpd, transport: UdpTransport
) -> None:
    wrong = "Wrong-priv-PASSWORD-2"
    creds = snmpd.v3("sha-aes128", priv_password=wrong)
    async with SnmpPoller([], transport=transport) as poller:
        obs = await poller.poll(snmpd.switch(creds, timeout_seconds=0.3, retries=0))
    # The agent cannot decrypt the request and drops it: a timeout that names the suspect.
    assert isinstance(obs, DeviceUnreachable)
    assert "no reply" in obs.reason
    assert "priv_password" in obs.reason
    assert wrong not in obs.reason
    assert "priv-Pass" not in obs.reason


async def test_unknown_v3_user_is_an_auth_error(snmpd: Snmpd, transport: UdpTransport) -> None:
    creds = snmpd.v3("sha-aes128", user="nobody-here")
    client = SnmpClient(snmpd.host, snmpd.port, creds, transport=transport, timeout=0.5)
    with pytest.raises(SnmpAuthError, match=r"nobody-here.*does not know this user"):
        await client.get([oids.SYS_UPTIME_0])


async def test_nothing_listening_is_unreachable_within_the_timeouts(
    snmpd: Snmpd, transport: UdpTransport
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        silent_port = s.getsockname()[1]
        switch = snmpd.switch(snmpd.v2c(), port=silent_port, timeout_seconds=0.2, retries=2)
        async with SnmpPoller([], transport=transport) as poller:
            started = time.monotonic()
            obs = await poller.poll(switch)
            elapsed = time.monotonic() - started
    assert isinstance(obs, DeviceUnreachable)
    assert f"127.0.0.1:{silent_port}" in obs.reason
    assert "3 attempt(s)" in obs.reason
    # It waited out every attempt, then gave up (the ceiling only says it did not hang: a
    # loaded machine may add seconds).
    assert 0.2 * 3 <= elapsed < 0.2 * 3 + 15.0


async def test_v3_unreachable_fails_at_discovery_within_the_timeouts(
    snmpd: Snmpd, transport: UdpTransport
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        silent_port = s.getsockname()[1]
        switch = snmpd.switch(
            snmpd.v3("sha-aes128"), port=silent_port, timeout_seconds=0.2, retries=1
        )
        async with SnmpPoller([], transport=transport) as poller:
            started = time.monotonic()
            obs = await poller.poll(switch)
            elapsed = time.monotonic() - started
    assert isinstance(obs, DeviceUnreachable)
    assert "discovery" in obs.reason
    assert elapsed < 0.2 * 2 + 15.0  # gave up, did not hang (generous: a loaded machine)


async def test_timeout_halves_max_repetitions(snmpd: Snmpd, transport: UdpTransport) -> None:
    # A silent port makes every attempt time out; each retry of a walk halves the size.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        client = SnmpClient(
            "127.0.0.1",
            s.getsockname()[1],
            snmpd.v2c(),
            transport=transport,
            timeout=0.05,
            retries=2,
            max_repetitions=20,
        )
        with pytest.raises(SnmpTimeout):
            await client.walk([oids.IF_DESCR])
    assert client.max_repetitions == 5
    assert client.stats.timeouts == 3
    assert client.stats.failures == 1


async def test_run_polls_every_switch_and_stops_on_aclose(
    snmpd: Snmpd, transport: UdpTransport
) -> None:
    switches = [
        snmpd.switch(snmpd.v2c(), device_id="a"),
        snmpd.switch(snmpd.v3("sha-aes128"), device_id="b"),
    ]
    seen: list[Observation] = []
    enough = asyncio.Event()

    def read_twice(device: str) -> bool:
        return sum(isinstance(o, DeviceReading) and o.device_id == device for o in seen) >= 2

    async def sink(obs: Observation) -> None:
        seen.append(obs)
        if read_twice("a") and read_twice("b"):
            enough.set()

    poller = SnmpPoller(switches, transport=transport, max_in_flight=2)
    runner = asyncio.create_task(poller.run(0.2, sink), name="poller-under-test")
    # Eventual facts, not a rate: on a loaded machine a poll may time out now and then, so
    # the test waits for two readings of each switch instead of asserting every poll worked.
    async with asyncio.timeout(45):
        await enough.wait()
    await poller.aclose()
    async with asyncio.timeout(20):
        await runner
    assert {o.device_id for o in seen} == {"a", "b"}
    assert poller.device_stats["a"].polls_ok >= 2
    assert poller.device_stats["b"].polls_ok >= 2


def test_switch_repr_never_shows_secrets(snmpd: Snmpd) -> None:
    creds = snmpd.v3("sha256-aes256")
    client = SnmpClient(snmpd.host, snmpd.port, creds)
    text = repr(client) + repr(client.stats) + repr(snmpd.switch(creds))
    user = snmpd.users["sha256-aes256"]
    assert user.auth_password is not None
    assert user.auth_password not in text
    assert user.priv_password is not None
    assert user.priv_password not in text


async def test_old_switch_without_if_x_table_uses_32_bit_counters_and_remembers(
    snmpd: Snmpd, transport: UdpTransport
) -> None:
    old = snmpd.switch(snmpd.v2c(snmpd.old_switch_community), device_id="old")
    async with SnmpPoller([], transport=transport) as poller:
        first = await poller.poll(old)
        requests_first = poller.device_stats["old"].requests
        second = await poller.poll(old)
        requests_second = poller.device_stats["old"].requests - requests_first
    for obs in (first, second):
        assert isinstance(obs, DeviceReading), obs
        lo = next(i for i in obs.interfaces if i.if_index == 1)
        assert lo.name == "lo"  # from ifDescr: there is no ifName
        assert lo.alias == ""
        assert lo.counter_bits == 32
        assert lo.in_octets is not None
        assert lo.oper_status is OperStatus.UP
        assert lo.speed_mbps == 10.0  # net-snmp's ifSpeed for lo is 10,000,000
    # The first poll learned that ifXTable is absent (and walked the 32-bit counters on top);
    # the second walks only what exists.
    assert requests_second < requests_first
    assert isinstance(second, DeviceReading)
    assert second.varbinds == 3 + 8 * len(second.interfaces)


async def test_engine_time_out_of_window_is_resynchronised_once(
    snmpd: Snmpd, transport: UdpTransport
) -> None:
    now = [1000.0]
    client = SnmpClient(
        snmpd.host,
        snmpd.port,
        snmpd.v3("sha-aes128"),
        transport=transport,
        timeout=1,
        clock=lambda: now[0],
    )
    await client.get([oids.SYS_UPTIME_0])
    assert client.stats.requests == 2  # discovery + GET
    now[0] += 3600  # our estimate of the engine clock runs an hour ahead of the agent's
    got = await client.get([oids.SYS_UPTIME_0])
    assert isinstance(got[oids.SYS_UPTIME_0], int)
    # The agent answered notInTimeWindow with its clock; we resynchronised and asked again.
    assert client.stats.requests == 4
    assert client.stats.timeouts == 0


async def test_stray_datagrams_are_counted_and_dropped(
    snmpd: Snmpd, transport: UdpTransport
) -> None:
    client = SnmpClient(snmpd.host, snmpd.port, snmpd.v2c(), transport=transport, timeout=1)
    await client.get([oids.SYS_UPTIME_0])  # opens the socket
    local = transport.local_address()
    assert local is not None
    # A well-formed reply with a request-id no request is waiting for.
    stray_reply = ber.encode_community_message(
        snmpd.community.encode(), ber.Pdu(ber.PduType.RESPONSE, 2**31 - 1, 0, 0, [])
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\x30\x03garbage", local)
        s.sendto(b"", local)
        s.sendto(stray_reply, local)
    before = transport.stats.matched
    # The socket keeps working, and by the time this reply is in, the strays were read.
    async with asyncio.timeout(5):
        while transport.stats.undecodable + transport.stats.unmatched < 3:
            await client.get([oids.SYS_UPTIME_0])
    assert transport.stats.undecodable >= 2
    assert transport.stats.unmatched >= 1
    assert transport.stats.matched > before
    assert transport.pending == 0
