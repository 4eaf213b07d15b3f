"""The simulated switch as an SNMP agent: read by net-snmp's tools, its dynamics and its quirks."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from typing import cast

import pytest

from edumon.demo.agent import Quirks, SimulatedSwitch
from edumon.demo.recording import Tag, Typed, load_recording, parse_walk
from edumon.domain.models import Counter64, NoValue, SnmpValue
from edumon.errors import SnmpProtocolError
from edumon.sources.snmp import ber
from tests.fixtures.simswitch import SIM_COMMUNITY, ManualClock, StartSwitch

SYS_UPTIME_0 = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SYS_NAME_0 = (1, 3, 6, 1, 2, 1, 1, 5, 0)
ENGINE_BOOTS_0 = (1, 3, 6, 1, 6, 3, 10, 2, 1, 2, 0)
ENGINE_TIME_0 = (1, 3, 6, 1, 6, 3, 10, 2, 1, 3, 0)
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IF_DESCR = (*IF_ENTRY, 2)
IF_SPEED = (*IF_ENTRY, 5)
IF_OPER_STATUS = (*IF_ENTRY, 8)
IF_LAST_CHANGE = (*IF_ENTRY, 9)
IF_IN_OCTETS = (*IF_ENTRY, 10)
IF_IN_ERRORS = (*IF_ENTRY, 14)
IF_OUT_OCTETS = (*IF_ENTRY, 16)
IF_X_ENTRY = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
IF_NAME = (*IF_X_ENTRY, 1)
IF_HC_IN_OCTETS = (*IF_X_ENTRY, 6)
IF_HIGH_SPEED = (*IF_X_ENTRY, 15)
IF_ALIAS = (*IF_X_ENTRY, 18)

# Huawei: GigabitEthernet0/0/1 is ifIndex 5 (up at 1000M), GigabitEthernet0/0/4 is 8 (down).
HW_GE1 = 5
HW_GE4 = 8
RECORDINGS = ["huawei-s5735", "h3c-s5130", "ruijie-s2910"]

# --------------------------------------------------------------------------- helpers


async def net_snmp(*args: str) -> tuple[int, str, str]:
    """Run a net-snmp command line tool (without blocking the agent's event loop)."""
    tool = shutil.which(args[0])
    assert tool is not None, f"{args[0]} is not installed (apt-get install snmp)"
    proc = await asyncio.create_subprocess_exec(
        tool,
        *args[1:],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8"), err.decode("utf-8")


def target(sim: SimulatedSwitch) -> str:
    return f"udp:{sim.host}:{sim.port}"


class Manager:
    """A bare UDP socket speaking SNMP through ber.py, to send exactly the PDUs a test needs."""

    def __init__(self, sim: SimulatedSwitch) -> None:
        self._sim = sim
        self._replies: asyncio.Queue[bytes] = asyncio.Queue()
        self._transport: asyncio.DatagramTransport | None = None
        self._next_id = 1000

    async def __aenter__(self) -> Manager:
        replies = self._replies

        class _P(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                replies.put_nowait(data)

        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            _P, remote_addr=(self._sim.host, self._sim.port)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._transport is not None
        self._transport.close()

    def rid(self) -> int:
        self._next_id += 1
        return self._next_id

    def send(
        self, pdu: ber.Pdu, *, community: str = SIM_COMMUNITY, version: int = ber.VERSION_2C
    ) -> None:
        assert self._transport is not None
        self._transport.sendto(
            ber.encode_community_message(community.encode(), pdu, version=version)
        )

    def send_raw(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.sendto(data)

    async def raw_reply(self) -> bytes:
        async with asyncio.timeout(5):
            return await self._replies.get()

    async def reply(self) -> ber.Pdu:
        message = ber.decode_message(await self.raw_reply())
        assert isinstance(message, ber.CommunityMessage)
        assert message.community == SIM_COMMUNITY.encode()
        assert message.pdu.type == ber.PduType.RESPONSE
        return message.pdu

    async def request(self, pdu: ber.Pdu) -> ber.Pdu:
        self.send(pdu)
        reply = await self.reply()
        assert reply.request_id == pdu.request_id
        return reply

    async def get(self, *oids: tuple[int, ...]) -> list[SnmpValue]:
        reply = await self.request(ber.get_request(self.rid(), oids))
        assert reply.error_status == 0
        assert [o for o, _ in reply.varbinds] == list(oids)
        return [cast(SnmpValue, v) for _, v in reply.varbinds]

    async def get1(self, oid: tuple[int, ...]) -> SnmpValue:
        (value,) = await self.get(oid)
        return value

    def pending(self) -> int:
        return self._replies.qsize()


@pytest.fixture
async def huawei(simswitch: StartSwitch, sim_clock: ManualClock) -> SimulatedSwitch:
    return await simswitch("huawei-s5735", clock=sim_clock)


@pytest.fixture
async def manager(huawei: SimulatedSwitch) -> AsyncIterator[Manager]:
    async with Manager(huawei) as m:
        yield m


# --------------------------------------------------------------------------- net-snmp reads it


@pytest.mark.snmpd
@pytest.mark.parametrize("name", RECORDINGS)
async def test_snmpwalk_reads_back_the_recording(
    simswitch: StartSwitch, sim_clock: ManualClock, name: str
) -> None:
    # A frozen clock and no traffic: the agent must serve exactly what was recorded.
    sim = await simswitch(name, clock=sim_clock, octets_per_second=0)
    rc, out, err = await net_snmp(
        "snmpwalk", "-v2c", "-c", SIM_COMMUNITY, "-On", "-t", "2", "-r", "1", target(sim), ".1"
    )
    assert rc == 0, err
    assert list(parse_walk(out, name="snmpwalk")) == list(load_recording(name))
    assert "No more variables left in this MIB View" in out.splitlines()[-1]


@pytest.mark.snmpd
@pytest.mark.parametrize(("name", "repetitions"), [("huawei-s5735", 7), ("ruijie-s2910", 50)])
async def test_snmpbulkwalk_reads_back_the_recording(
    simswitch: StartSwitch, sim_clock: ManualClock, name: str, repetitions: int
) -> None:
    sim = await simswitch(name, clock=sim_clock, octets_per_second=0)
    rc, out, err = await net_snmp(
        "snmpbulkwalk", "-v2c", "-c", SIM_COMMUNITY, "-On", f"-Cr{repetitions}", target(sim), ".1"
    )
    assert rc == 0, err
    assert list(parse_walk(out, name="snmpbulkwalk")) == list(load_recording(name))
    assert sim.stats.bulk_max_repetitions
    assert set(sim.stats.bulk_max_repetitions) == {repetitions}


@pytest.mark.snmpd
async def test_snmpget_sees_no_such_instance_and_no_such_object(
    simswitch: StartSwitch,
) -> None:
    sim = await simswitch("ruijie-s2910")
    rc, out, err = await net_snmp(
        "snmpget", "-v2c", "-c", SIM_COMMUNITY, "-On", target(sim),
        ".1.3.6.1.2.1.1.5.0",  # sysName
        ".1.3.6.1.2.1.1.5.1",  # not an instance of sysName
        ".1.3.6.1.2.1.31.1.1.1.15.1",  # ifHighSpeed: this switch has no ifXTable
    )  # fmt: skip
    assert rc == 0, err
    assert [value for _, value in parse_walk(out)] == [
        Typed(Tag.OCTET_STRING, b"ZX01-SYL-S2910"),
        Typed(Tag.NO_SUCH_INSTANCE, None),
        Typed(Tag.NO_SUCH_OBJECT, None),
    ]


@pytest.mark.snmpd
async def test_snmpgetnext_past_the_last_oid_is_end_of_mib_view(simswitch: StartSwitch) -> None:
    sim = await simswitch("h3c-s5130")
    last = ".".join(map(str, load_recording("h3c-s5130").oids[-1]))
    rc, out, err = await net_snmp(
        "snmpgetnext", "-v2c", "-c", SIM_COMMUNITY, "-On", target(sim), "." + last
    )
    assert rc == 0, err
    assert "No more variables left in this MIB View" in out


@pytest.mark.snmpd
async def test_wrong_community_gets_no_answer(simswitch: StartSwitch) -> None:
    sim = await simswitch("huawei-s5735")
    rc, out, err = await net_snmp(
        "snmpget", "-v2c", "-c", "public", "-t", "0.3", "-r", "0", target(sim), ".1.3.6.1.2.1.1.5.0"
    )
    assert rc != 0
    assert "Timeout" in err
    assert out == ""
    assert sim.stats.wrong_community == 1
    assert sim.stats.responses == 0


# --------------------------------------------------------------------------- protocol details


async def test_silence_is_proved_by_the_next_reply(
    manager: Manager, huawei: SimulatedSwitch
) -> None:
    # The agent handles datagrams in order: once the reply to a later request is in, an earlier
    # request that was going to be answered would have been answered already.
    manager.send(ber.get_request(1, [SYS_NAME_0]), community="wrong")
    manager.send(ber.get_request(2, [SYS_NAME_0]), version=ber.VERSION_1)
    manager.send_raw(b"\x30\x03\x02\x01")
    reply = await manager.request(ber.get_request(3, [SYS_NAME_0]))
    assert reply.varbinds == [(SYS_NAME_0, b"CGXX-JXL-S5735-01")]
    assert manager.pending() == 0
    assert (huawei.stats.wrong_community, huawei.stats.unsupported, huawei.stats.undecodable) == (
        1,
        1,
        1,
    )


async def test_get_returns_typed_values_and_exceptions(manager: Manager) -> None:
    values = await manager.get(
        (*IF_NAME, HW_GE1),
        (*IF_HIGH_SPEED, HW_GE1),
        (*IF_HC_IN_OCTETS, HW_GE1),
        (*IF_OPER_STATUS, HW_GE1),
        (1, 3, 6, 1, 2, 1, 1, 2, 0),
        (*IF_NAME, 9999),
        (1, 3, 6, 1, 4, 1, 2011, 5, 25, 31, 1, 1, 1, 1, 7, 5),
    )
    assert values[0] == b"GigabitEthernet0/0/1"
    assert values[1] == 1000
    assert isinstance(values[2], Counter64)
    assert values[3] == 1
    assert values[4] == (1, 3, 6, 1, 4, 1, 2011, 2, 23, 615)
    assert values[5] is NoValue.NO_SUCH_INSTANCE
    assert values[6] is NoValue.NO_SUCH_OBJECT


async def test_getnext_walks_in_oid_order(manager: Manager) -> None:
    rec = load_recording("huawei-s5735")
    oid: tuple[int, ...] = IF_DESCR
    seen = []
    for _ in range(5):
        reply = await manager.request(ber.get_next_request(manager.rid(), [oid]))
        ((oid, value),) = reply.varbinds
        seen.append((oid, value))
    expected = rec.subtree((1, 3, 6, 1, 2, 1, 2, 2, 1, 2))[:5]
    assert seen == [(o, v.value) for o, v in expected]


async def test_getbulk_interleaves_repeaters_after_non_repeaters(manager: Manager) -> None:
    reply = await manager.request(
        ber.get_bulk_request(
            manager.rid(),
            [(1, 3, 6, 1, 2, 1, 1, 3), IF_DESCR, IF_OPER_STATUS],
            non_repeaters=1,
            max_repetitions=3,
        )
    )
    oids = [oid for oid, _ in reply.varbinds]
    assert oids == [
        SYS_UPTIME_0,
        (*IF_DESCR, 1),
        (*IF_OPER_STATUS, 1),
        (*IF_DESCR, 2),
        (*IF_OPER_STATUS, 2),
        (*IF_DESCR, 3),
        (*IF_OPER_STATUS, 3),
    ]


async def test_getbulk_stops_at_end_of_mib_view(manager: Manager) -> None:
    rec = load_recording("huawei-s5735")
    reply = await manager.request(
        ber.get_bulk_request(manager.rid(), [rec.oids[-3]], max_repetitions=10)
    )
    assert list(reply.varbinds) == [
        (rec.oids[-2], rec.values[-2].value),
        (rec.oids[-1], rec.values[-1].value),
        (rec.oids[-1], NoValue.END_OF_MIB_VIEW),
    ]


async def test_set_is_refused(manager: Manager) -> None:
    pdu = ber.Pdu(ber.PduType.SET, manager.rid(), 0, 0, [(SYS_NAME_0, b"pwned")])
    reply = await manager.request(pdu)
    assert reply.error_status == ber.ErrorStatus.NO_ACCESS
    assert reply.error_index == 1
    assert await manager.get1(SYS_NAME_0) == b"CGXX-JXL-S5735-01"


# --------------------------------------------------------------------------- dynamics


async def test_uptime_wraps_at_2_pow_32(simswitch: StartSwitch, sim_clock: ManualClock) -> None:
    sim = await simswitch("huawei-s5735", clock=sim_clock, uptime_ticks=2**32 - 150)
    async with Manager(sim) as m:
        assert await m.get1(SYS_UPTIME_0) == 2**32 - 150
        sim_clock.advance(1.0)
        assert await m.get1(SYS_UPTIME_0) == 2**32 - 50
        sim_clock.advance(1.0)
        assert await m.get1(SYS_UPTIME_0) == 50


async def test_uptime_follows_real_time(simswitch: StartSwitch) -> None:
    sim = await simswitch("ruijie-s2910", uptime_ticks=0)
    async with Manager(sim) as m:
        first = await m.get1(SYS_UPTIME_0)
        assert isinstance(first, int)
        async with asyncio.timeout(5):
            # Polling the agent is how to see its clock move; the deadline bounds it.
            while (now := await m.get1(SYS_UPTIME_0)) == first:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert isinstance(now, int)
        assert now > first


async def test_set_name_and_alias(simswitch: StartSwitch, sim_clock: ManualClock) -> None:
    sim = await simswitch("h3c-s5130", clock=sim_clock, sys_name="SYXX-CORE")
    sim.model.set_alias(1, "高一(1)班".encode("gbk"))
    async with Manager(sim) as m:
        assert await m.get1(SYS_NAME_0) == b"SYXX-CORE"
        assert await m.get1((*IF_ALIAS, 1)) == "高一(1)班".encode("gbk")
    ruijie = await simswitch("ruijie-s2910")
    with pytest.raises(KeyError):
        ruijie.model.set_alias(1, "no ifAlias here")


async def test_link_down_and_up_at_another_speed(
    manager: Manager, huawei: SimulatedSwitch, sim_clock: ManualClock
) -> None:
    sim_clock.advance(12.34)
    huawei.set_link(HW_GE1, False)
    assert await manager.get(
        (*IF_OPER_STATUS, HW_GE1), (*IF_HIGH_SPEED, HW_GE1), (*IF_SPEED, HW_GE1)
    ) == [2, 0, 0]
    assert await manager.get1((*IF_LAST_CHANGE, HW_GE1)) == await manager.get1(SYS_UPTIME_0)
    huawei.set_link(HW_GE1, True, 100)
    assert await manager.get(
        (*IF_OPER_STATUS, HW_GE1), (*IF_HIGH_SPEED, HW_GE1), (*IF_SPEED, HW_GE1)
    ) == [1, 100, 100_000_000]
    huawei.set_link(HW_GE4, True, 10_000)
    assert await manager.get((*IF_HIGH_SPEED, HW_GE4), (*IF_SPEED, HW_GE4)) == [
        10_000,
        2**32 - 1,  # ifSpeed saturates; ifHighSpeed carries the truth
    ]
    assert huawei.model.is_up(HW_GE4)
    assert huawei.model.port_name(HW_GE4) == "GigabitEthernet0/0/4"
    assert huawei.model.if_index_of("GigabitEthernet0/0/4") == HW_GE4


async def test_vendor_speed_on_down_ports_is_kept(
    simswitch: StartSwitch, sim_clock: ManualClock
) -> None:
    # Comware reports the configured speed on a port that is down; Ruijie has no ifHighSpeed.
    h3c = await simswitch("h3c-s5130", clock=sim_clock)
    ruijie = await simswitch("ruijie-s2910", clock=sim_clock)
    h3c.set_link(1, False)
    ruijie.set_link(1, True, 100)
    async with Manager(h3c) as m:
        assert await m.get((*IF_OPER_STATUS, 1), (*IF_HIGH_SPEED, 1)) == [2, 1000]
    async with Manager(ruijie) as m:
        assert await m.get((*IF_SPEED, 1), (*IF_HIGH_SPEED, 1)) == [
            100_000_000,
            NoValue.NO_SUCH_OBJECT,
        ]


async def test_counters_advance_with_traffic_and_32_bit_ones_wrap(
    simswitch: StartSwitch, sim_clock: ManualClock
) -> None:
    sim = await simswitch("huawei-s5735", clock=sim_clock)
    sim.model.set_counters(HW_GE1, in_octets=2**32 - 1000)
    sim.model.set_rate(HW_GE1, 1000.0, 0.0)
    async with Manager(sim) as m:
        before = await m.get((*IF_IN_OCTETS, HW_GE1), (*IF_HC_IN_OCTETS, HW_GE1))
        assert before == [2**32 - 1000, 2**32 - 1000]
        sim_clock.advance(3.0)
        after = await m.get((*IF_IN_OCTETS, HW_GE1), (*IF_HC_IN_OCTETS, HW_GE1))
        assert after == [2000, 2**32 + 2000]
        # A port that is down carries no traffic.
        sim.set_link(HW_GE1, False)
        sim_clock.advance(10.0)
        assert await m.get1((*IF_HC_IN_OCTETS, HW_GE1)) == 2**32 + 2000


async def test_64_bit_counters_wrap_exactly(simswitch: StartSwitch, sim_clock: ManualClock) -> None:
    sim = await simswitch("h3c-s5130", clock=sim_clock)
    sim.model.set_counters(1, out_octets=2**64 - 100)
    sim.model.set_rate(1, 0.0, 1000.0)
    async with Manager(sim) as m:
        assert await m.get1((*IF_X_ENTRY, 10, 1)) == 2**64 - 100
        sim_clock.advance(1.0)
        assert await m.get((*IF_X_ENTRY, 10, 1), (*IF_OUT_OCTETS, 1)) == [900, 900]


async def test_reboot_resets_uptime_and_counters_after_a_silent_boot(
    simswitch: StartSwitch, sim_clock: ManualClock
) -> None:
    sim = await simswitch("huawei-s5735", clock=sim_clock)
    async with Manager(sim) as m:
        boots = await m.get1(ENGINE_BOOTS_0)
        assert isinstance(boots, int)
        assert await m.get1((*IF_IN_ERRORS, 10)) != 0  # GE0/0/6 has CRC errors on record
        sim.reboot(silent_seconds=30.0)
        m.send(ber.get_request(m.rid(), [SYS_UPTIME_0]))
        async with asyncio.timeout(5):
            await sim.wait_for_requests(3)
        sim_clock.advance(29.0)
        m.send(ber.get_request(m.rid(), [SYS_UPTIME_0]))
        async with asyncio.timeout(5):
            await sim.wait_for_requests(4)
        sim_clock.advance(1.5)
        values = await m.get(
            SYS_UPTIME_0, ENGINE_BOOTS_0, ENGINE_TIME_0, (*IF_IN_ERRORS, 10), (*IF_HC_IN_OCTETS, 10)
        )
        assert m.pending() == 0
        assert sim.stats.silent == 2
        # 0.5 s since the agent came back: 50 ticks, and 125,000 octets at the default rate.
        assert values == [50, boots + 1, 0, 0, 125_000]


# --------------------------------------------------------------------------- quirks


async def test_too_big_above_a_max_repetitions_limit(
    simswitch: StartSwitch,
) -> None:
    sim = await simswitch("huawei-s5735", quirks=Quirks(too_big_above=10))
    async with Manager(sim) as m:
        reply = await m.request(ber.get_bulk_request(m.rid(), [IF_DESCR], max_repetitions=11))
        assert reply.error_status == ber.ErrorStatus.TOO_BIG
        assert list(reply.varbinds) == []
        reply = await m.request(ber.get_bulk_request(m.rid(), [IF_DESCR], max_repetitions=10))
        assert reply.error_status == 0
        assert len(reply.varbinds) == 10
    assert sim.stats.too_big == 1
    assert sim.stats.bulk_max_repetitions == [11, 10]


async def test_drop_above_a_max_repetitions_limit(simswitch: StartSwitch) -> None:
    sim = await simswitch("huawei-s5735", quirks=Quirks(drop_above=5))
    async with Manager(sim) as m:
        m.send(ber.get_bulk_request(m.rid(), [IF_DESCR], max_repetitions=6))
        reply = await m.request(ber.get_bulk_request(m.rid(), [IF_DESCR], max_repetitions=5))
        assert len(reply.varbinds) == 5
        assert m.pending() == 0
    assert sim.stats.dropped == 1


async def test_holes_in_a_column(simswitch: StartSwitch) -> None:
    hole = (*IF_HIGH_SPEED, 7)
    sim = await simswitch("huawei-s5735", quirks=Quirks(holes=frozenset({hole})))
    async with Manager(sim) as m:
        assert await m.get1(hole) is NoValue.NO_SUCH_INSTANCE
        reply = await m.request(ber.get_next_request(m.rid(), [(*IF_HIGH_SPEED, 6)]))
        assert [oid for oid, _ in reply.varbinds] == [(*IF_HIGH_SPEED, 8)]
        reply = await m.request(
            ber.get_bulk_request(m.rid(), [(*IF_HIGH_SPEED, 5)], max_repetitions=3)
        )
        assert [oid for oid, _ in reply.varbinds] == [
            (*IF_HIGH_SPEED, 6),
            (*IF_HIGH_SPEED, 8),
            (*IF_HIGH_SPEED, 9),
        ]


async def test_large_bulk_replies_are_cut_to_the_size_limit(simswitch: StartSwitch) -> None:
    sim = await simswitch("huawei-s5735", quirks=Quirks(max_response_bytes=484))
    async with Manager(sim) as m:
        reply = await m.request(ber.get_bulk_request(m.rid(), [IF_DESCR], max_repetitions=50))
        assert reply.error_status == 0
        assert 1 <= len(reply.varbinds) < 50
        rec = load_recording("huawei-s5735")
        expected = rec.subtree(IF_DESCR)[: len(reply.varbinds)]
        assert list(reply.varbinds) == [(o, v.value) for o, v in expected]
        sim.quirks = Quirks(max_response_bytes=60)
        reply = await m.request(ber.get_bulk_request(m.rid(), [IF_DESCR], max_repetitions=50))
        assert reply.error_status == ber.ErrorStatus.TOO_BIG


async def test_garbage_replies(simswitch: StartSwitch, sim_clock: ManualClock) -> None:
    clean = await simswitch("huawei-s5735", clock=sim_clock)
    dirty = await simswitch(
        "huawei-s5735", clock=sim_clock, quirks=Quirks(garbage_ratio=1.0, seed=7)
    )
    outcomes: set[str] = set()
    async with Manager(clean) as good, Manager(dirty) as bad:
        for _ in range(40):
            pdu = ber.get_bulk_request(good.rid(), [IF_DESCR], max_repetitions=3)
            good.send(pdu)
            bad.send(pdu)
            expected = await good.raw_reply()
            got = await bad.raw_reply()
            assert got != expected
            try:
                message = ber.decode_message(got)
            except SnmpProtocolError:
                outcomes.add("undecodable")
                continue
            if (
                isinstance(message, ber.CommunityMessage)
                and message.pdu.request_id != pdu.request_id
            ):
                outcomes.add("other request-id")
            else:
                outcomes.add("decodable but wrong")
    assert dirty.stats.garbage == 40
    assert {"undecodable", "other request-id"} <= outcomes


async def test_delayed_replies_arrive_and_stop_cancels_pending_ones(
    simswitch: StartSwitch,
) -> None:
    sim = await simswitch("ruijie-s2910", quirks=Quirks(delay_seconds=0.05))
    async with Manager(sim) as m:
        assert await m.get1(SYS_NAME_0) == b"ZX01-SYL-S2910"
        sim.quirks = Quirks(delay_seconds=60.0)
        m.send(ber.get_request(m.rid(), [SYS_NAME_0]))
        async with asyncio.timeout(5):
            await sim.wait_for_requests(2)
        await sim.stop()
        assert not sim.running
        assert m.pending() == 0


# --------------------------------------------------------------------------- lifecycle


async def test_lifecycle_and_repr_hide_the_community(sim_clock: ManualClock) -> None:
    sim = SimulatedSwitch("ruijie-s2910", community="Secret-Comm-1", clock=sim_clock)
    with pytest.raises(RuntimeError, match="not started"):
        _ = sim.port
    async with sim:
        port = sim.port
        assert sim.running
        assert "Secret-Comm-1" not in repr(sim)
        assert str(port) in repr(sim)
    assert not sim.running
    # Restarted, the switch comes back on the same port, as a switch keeps its address.
    async with sim:
        assert sim.port == port


def test_typed_values_map_to_every_ber_tag() -> None:
    from edumon.demo.agent import _encodable

    cases = [
        (Typed(Tag.INTEGER, -5), b"\x02\x01\xfb"),
        (Typed(Tag.OCTET_STRING, b"ab"), b"\x04\x02ab"),
        (Typed(Tag.NULL, None), b"\x05\x00"),
        (Typed(Tag.OBJECT_IDENTIFIER, (1, 3, 6)), b"\x06\x02\x2b\x06"),
        (Typed(Tag.IP_ADDRESS, bytes([10, 0, 0, 1])), b"\x40\x04\x0a\x00\x00\x01"),
        (Typed(Tag.COUNTER32, 2**32 - 1), b"\x41\x05\x00\xff\xff\xff\xff"),
        (Typed(Tag.GAUGE32, 1000), b"\x42\x02\x03\xe8"),
        (Typed(Tag.TIMETICKS, 0), b"\x43\x01\x00"),
        (Typed(Tag.OPAQUE, b"\x9f"), b"\x44\x01\x9f"),
        (Typed(Tag.COUNTER64, 2**64 - 1), b"\x46\x09\x00" + b"\xff" * 8),
        (Typed(Tag.NO_SUCH_OBJECT, None), b"\x80\x00"),
        (Typed(Tag.NO_SUCH_INSTANCE, None), b"\x81\x00"),
        (Typed(Tag.END_OF_MIB_VIEW, None), b"\x82\x00"),
    ]
    for typed, encoded in cases:
        assert ber.encode_value(_encodable(typed)) == encoded, typed
