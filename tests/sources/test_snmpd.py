"""The SNMP client and poller against a real net-snmp snmpd on loopback (v2c and v3 USM)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import cast

import pytest

from edumon.domain import oids
from edumon.domain.models import DeviceReading, DeviceUnreachable, NoValue, Observation, OperStatus
from edumon.errors import SnmpAuthError, SnmpError, SnmpTimeout
from edumon.sources.snmp import ber
from edumon.sources.snmp.client import SnmpClient
from edumon.sources.snmp.poller import SnmpPoller
from edumon.sources.snmp.transport import UdpTransport
from tests.fixtures.snmpd import SNMPD_USERS, Snmpd

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
    # net-snmp has the optional clocks: hrSystemUptime, snmpEngineBoots and snmpEngineTime.
    assert obs.hr_uptime_ticks is not None
    assert obs.engine_boots is not None
    assert obs.engine_boots >= 1
    assert obs.varbinds == 6 + 11 * len(obs.interfaces)
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
    assert second.varbinds == 6 + 8 * len(second.interfaces)  # 3 system scalars, 3 clocks


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


# ------------------------------------------------------------------------------ USM matrix

AUTH_PRIV_KINDS = [k for k in SNMPD_USERS if k != "noauthnopriv"]


@pytest.mark.parametrize("kind", AUTH_PRIV_KINDS)
async def test_every_auth_and_priv_protocol_reads_snmpd(
    snmpd: Snmpd, transport: UdpTransport, kind: str
) -> None:
    client = SnmpClient(snmpd.host, snmpd.port, snmpd.v3(kind), transport=transport, timeout=1)
    assert client.engine_boots is None
    got = await client.get([oids.SYS_UPTIME_0, oids.SYS_NAME_0])
    assert got[oids.SYS_NAME_0] == socket.gethostname().encode()
    walked = await client.walk([oids.IF_DESCR])
    assert walked[oids.IF_DESCR][(1,)] == b"lo"
    # The engine clock of authenticated replies, for reboot detection.
    assert client.engine_boots is not None
    assert client.engine_boots >= 1
    assert client.engine_time is not None
    assert client.engine_time >= 0
    assert client.stats.timeouts == 0


async def test_v2c_and_no_auth_have_no_engine_clock(snmpd: Snmpd, transport: UdpTransport) -> None:
    for creds in (snmpd.v2c(), snmpd.v3("noauthnopriv")):
        client = SnmpClient(snmpd.host, snmpd.port, creds, transport=transport, timeout=1)
        await client.get([oids.SYS_UPTIME_0])
        assert client.engine_boots is None
        assert client.engine_time is None


@pytest.mark.parametrize(
    ("kind", "ours"),
    [
        ("sha-aes256c", "AES-256"),
        ("sha-aes256", "AES-256-C"),
        ("md5-aes192c", "AES-192"),
        ("md5-aes192", "AES-192-C"),
    ],
)
async def test_blumenthal_and_reeder_keys_do_not_interoperate_over_sha1_and_md5(
    snmpd: Snmpd, transport: UdpTransport, kind: str, ours: str
) -> None:
    # Proof that snmpd's "-C" users really extend keys the Reeder way: the other extension
    # cannot talk to them (snmpd cannot decrypt, drops the request, and we time out).
    creds = snmpd.v3(kind).model_copy(update={"priv_protocol": ours})
    client = SnmpClient(snmpd.host, snmpd.port, creds, transport=transport, timeout=0.3, retries=0)
    with pytest.raises(SnmpError) as caught:
        await client.get([oids.SYS_UPTIME_0])
    assert "priv_p" in str(caught.value)
    assert str(snmpd.users[kind].priv_password) not in str(caught.value)


async def test_with_sha_256_the_key_extensions_coincide(
    snmpd: Snmpd, transport: UdpTransport
) -> None:
    # SHA-256 yields 32 octets, enough for AES-256 without extension: "-C" changes nothing.
    creds = snmpd.v3("sha256-aes256").model_copy(update={"priv_protocol": "AES-256-C"})
    client = SnmpClient(snmpd.host, snmpd.port, creds, transport=transport, timeout=1)
    assert isinstance((await client.get([oids.SYS_UPTIME_0]))[oids.SYS_UPTIME_0], int)


# ------------------------------------------------------------------------------ forged reports


class ForgingRelay(asyncio.DatagramProtocol):
    """A UDP relay between the client and snmpd that can answer a request with a forged,
    unauthenticated Report before passing it on (an attacker on the path)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.forge: Callable[[ber.V3Message], bytes] | None = None
        self.seen: list[ber.UsmSecurityParameters] = []
        self._client: tuple[str, int] | None = None
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self._transport is not None
        if addr == self.upstream:
            if self._client is not None:
                self._transport.sendto(data, self._client)
            return
        self._client = addr
        msg = ber.decode_message(data)
        assert isinstance(msg, ber.V3Message)
        self.seen.append(msg.security)
        if self.forge is not None and msg.security.engine_id:
            forged, self.forge = self.forge(msg), None
            self._transport.sendto(forged, addr)  # sent first, so it arrives first
        self._transport.sendto(data, self.upstream)


def forged_report(
    oid: tuple[int, ...], *, engine: bytes | None = None, boots: int = 0, engine_time: int = 0
) -> Callable[[ber.V3Message], bytes]:
    def build(request: ber.V3Message) -> bytes:
        engine_id = request.security.engine_id if engine is None else engine
        pdu = ber.Pdu(ber.PduType.REPORT, request.msg_id, 0, 0, [(oid, ber.counter32(1))])
        data, _ = ber.encode_v3_message(
            msg_id=request.msg_id,
            max_size=65507,
            flags=0,
            security=ber.UsmSecurityParameters(engine_id, boots, engine_time, b""),
            scoped_pdu=ber.encode_scoped_pdu(ber.ScopedPdu(engine_id, b"", pdu)),
        )
        return data

    return build


@pytest.fixture
async def relay(snmpd: Snmpd) -> AsyncIterator[tuple[ForgingRelay, int]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: ForgingRelay((snmpd.host, snmpd.port)), local_addr=("127.0.0.1", 0)
    )
    try:
        yield protocol, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


@pytest.mark.parametrize(
    "forge",
    [
        forged_report(oids.USM_STATS_NOT_IN_TIME_WINDOWS, boots=0, engine_time=0),
        forged_report(oids.USM_STATS_NOT_IN_TIME_WINDOWS, boots=2**31 - 1, engine_time=9),
        forged_report(oids.USM_STATS_UNKNOWN_ENGINE_IDS, engine=b"\x80\x00\x00\x00\x04forged"),
        forged_report(oids.USM_STATS_UNKNOWN_USER_NAMES),
    ],
    ids=["clock-back", "clock-max", "engine-id", "unknown-user"],
)
async def test_forged_unauthenticated_report_changes_no_engine_state(
    snmpd: Snmpd,
    transport: UdpTransport,
    relay: tuple[ForgingRelay, int],
    forge: Callable[[ber.V3Message], bytes],
) -> None:
    proxy, port = relay
    client = SnmpClient(
        snmpd.host, port, snmpd.v3("sha-aes128"), transport=transport, timeout=1, retries=2
    )
    await client.get([oids.SYS_UPTIME_0])
    boots, engine_time = client.engine_boots, client.engine_time
    assert boots is not None
    assert engine_time is not None
    real_engine = proxy.seen[-1].engine_id
    proxy.forge = forge
    got = await client.get([oids.SYS_UPTIME_0])
    assert isinstance(got[oids.SYS_UPTIME_0], int)
    # The forged Report cost one attempt and changed nothing: no rediscovery, same engine,
    # a clock neither rolled back nor pushed forward.
    assert client.stats.retries == 1
    assert client.engine_boots == boots
    assert client.engine_time is not None
    assert engine_time <= client.engine_time <= engine_time + 60
    await client.get([oids.SYS_UPTIME_0])
    requests = proxy.seen[1:]  # after the one discovery
    assert [r.engine_id for r in requests] == [real_engine] * 4
    assert all(r.engine_boots == boots for r in requests)
    assert all(engine_time <= r.engine_time <= engine_time + 60 for r in requests)
    assert client.stats.requests == 5
    assert client.stats.timeouts == 0


async def test_replaced_switch_is_rediscovered_after_a_failed_request(
    snmpd: Snmpd, other_snmpd: Snmpd, transport: UdpTransport, relay: tuple[ForgingRelay, int]
) -> None:
    proxy, port = relay
    client = SnmpClient(
        snmpd.host, port, snmpd.v3("sha256-aes256"), transport=transport, timeout=1, retries=1
    )
    await client.get([oids.SYS_UPTIME_0])
    first_engine = proxy.seen[-1].engine_id
    # The switch is swapped for another one (new engine ID) at the same address: its
    # unauthenticated unknownEngineID Reports are not believed one by one...
    proxy.upstream = (other_snmpd.host, other_snmpd.port)
    with pytest.raises(SnmpAuthError, match="engine ID unknown"):
        await client.get([oids.SYS_UPTIME_0])
    # ...but a request refused on every attempt resets the session: the next one discovers.
    got = await client.get([oids.SYS_UPTIME_0])
    assert isinstance(got[oids.SYS_UPTIME_0], int)
    second_engine = proxy.seen[-1].engine_id
    assert second_engine
    assert second_engine != first_engine
    assert client.engine_boots is not None


async def test_a_busy_event_loop_neither_loses_a_reply_nor_misdates_it(
    snmpd: Snmpd, transport: UdpTransport
) -> None:
    # The loop is kept busy far past the request's deadline while snmpd answers at once: the
    # reply waiting in the socket is read at the deadline instead of being called lost, and
    # it is dated by when the kernel received it, not by when the loop got round to it.
    client = SnmpClient(snmpd.host, snmpd.port, snmpd.v2c(), transport=transport, timeout=0.3)
    await client.get([oids.SYS_UPTIME_0])  # resolved and warm
    asked = time.monotonic()
    request = asyncio.create_task(client.get([oids.SYS_UPTIME_0]))
    await asyncio.sleep(0)  # the request is sent (the reply may be in before the hog starts)
    _hog_the_loop(1.5)  # a reader computing something district-wide, say
    stalled_until = time.monotonic()
    values = await request
    assert isinstance(values[oids.SYS_UPTIME_0], int)
    assert client.stats.timeouts == 0
    assert client.reply_arrived is not None
    # Read only after the hog, yet dated when the kernel had it: before the hog ended.
    assert asked <= client.reply_arrived < stalled_until


def _hog_the_loop(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
