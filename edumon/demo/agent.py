"""A simulated switch: an SNMP v2c agent on loopback UDP serving a recording with live behaviour."""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, Self

from edumon.demo.recording import EXCEPTION_TAGS, Recording, Tag, Typed, load_recording
from edumon.domain.models import Counter64, NoValue
from edumon.domain.oids import Oid
from edumon.errors import SnmpProtocolError
from edumon.sources.snmp import ber

logger = logging.getLogger(__name__)

_SYS_NAME_0: Oid = (1, 3, 6, 1, 2, 1, 1, 5, 0)
_SYS_UPTIME_0: Oid = (1, 3, 6, 1, 2, 1, 1, 3, 0)
_ENGINE_BOOTS_0: Oid = (1, 3, 6, 1, 6, 3, 10, 2, 1, 2, 0)
_ENGINE_TIME_0: Oid = (1, 3, 6, 1, 6, 3, 10, 2, 1, 3, 0)
_IF_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 2, 2, 1)
_IF_X_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
_IF_INDEX: Oid = (*_IF_ENTRY, 1)
_IF_DESCR: Oid = (*_IF_ENTRY, 2)
_IF_TYPE: Oid = (*_IF_ENTRY, 3)
_IF_SPEED: Oid = (*_IF_ENTRY, 5)
_IF_OPER_STATUS: Oid = (*_IF_ENTRY, 8)
_IF_LAST_CHANGE: Oid = (*_IF_ENTRY, 9)
_IF_NAME: Oid = (*_IF_X_ENTRY, 1)
_IF_HIGH_SPEED: Oid = (*_IF_X_ENTRY, 15)
_IF_ALIAS: Oid = (*_IF_X_ENTRY, 18)
_IF_COUNTER_DISCONTINUITY: Oid = (*_IF_X_ENTRY, 19)
_ETHERNET_CSMACD = 6
_UP, _DOWN = 1, 2
_UINT32 = 2**32
_UINT64 = 2**64
# Average frame size used to advance packet counters along with octet counters.
_BYTES_PER_PACKET = 800

# Counter columns that advance with traffic: column → (accumulator name, counter width).
_TRAFFIC_COLUMNS: Mapping[Oid, tuple[str, int]] = MappingProxyType(
    {
        (*_IF_ENTRY, 10): ("in_octets", 32),
        (*_IF_ENTRY, 11): ("in_packets", 32),
        (*_IF_ENTRY, 16): ("out_octets", 32),
        (*_IF_ENTRY, 17): ("out_packets", 32),
        (*_IF_X_ENTRY, 6): ("in_octets", 64),
        (*_IF_X_ENTRY, 7): ("in_packets", 64),
        (*_IF_X_ENTRY, 10): ("out_octets", 64),
        (*_IF_X_ENTRY, 11): ("out_packets", 64),
    }
)


@dataclass(frozen=True, slots=True)
class Quirks:
    """Misbehaviour of real switches, switched on for tests.

    Attributes:
        too_big_above: a GETBULK whose max-repetitions exceeds this gets a tooBig error reply.
        drop_above: a GETBULK whose max-repetitions exceeds this gets no reply at all, as a slow
            control plane that lets the manager time out.
        garbage_ratio: the fraction of replies replaced by garbage (random octets, a truncated
            reply, or a reply to another request-id).
        holes: instance OIDs the agent pretends not to have (noSuchInstance on GET, skipped by
            GETNEXT/GETBULK), as agents that leave gaps in a column.
        delay_seconds: every reply is sent this long after the request arrived.
        max_response_bytes: a GETBULK reply is cut to fit this size; a reply that cannot fit
            even its first varbinds is answered with tooBig.
        seed: seeds the choice of which replies become garbage, so a test run is repeatable.
    """

    too_big_above: int | None = None
    drop_above: int | None = None
    garbage_ratio: float = 0.0
    holes: frozenset[Oid] = frozenset()
    delay_seconds: float = 0.0
    max_response_bytes: int = 65507
    seed: int = 0


@dataclass(slots=True)
class SwitchStats:
    """What the simulated switch has seen, for tests to check how a manager behaved."""

    requests: int = 0
    responses: int = 0
    wrong_community: int = 0
    undecodable: int = 0
    unsupported: int = 0
    silent: int = 0
    dropped: int = 0
    too_big: int = 0
    garbage: int = 0
    bulk_max_repetitions: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Port:
    oper: int
    speed_mbps: float
    # Totals since the mark, kept as ints so Counter64 values near 2^64 stay exact.
    totals: dict[str, int]
    in_rate: float
    out_rate: float
    mark: float

    def _flowed(self, name: str, now: float) -> int:
        if self.oper != _UP or now <= self.mark:
            return 0
        rate = self.in_rate if name.startswith("in_") else self.out_rate
        if name.endswith("_packets"):
            rate /= _BYTES_PER_PACKET
        return int(rate * (now - self.mark))

    def advance(self, now: float) -> None:
        """Fold the traffic since the mark into the totals and move the mark to ``now``."""
        if now <= self.mark:
            # Still before the mark (a switch that is booting): nothing has flowed yet.
            return
        for name in self.totals:
            self.totals[name] += self._flowed(name, now)
        self.mark = now

    def total(self, name: str, now: float) -> int:
        """A counter's value at ``now`` without moving the mark."""
        return self.totals[name] + self._flowed(name, now)


def _int_value(typed: Typed | None, default: int = 0) -> int:
    if typed is None or not isinstance(typed.value, int):
        return default
    return typed.value


class DeviceModel:
    """The state of one simulated switch: a recording plus what has happened to it since.

    Time-dependent values (sysUpTime, snmpEngineTime, traffic counters) are computed from the
    clock when read; events (link changes, reboots) rewrite the affected values. Pure: no I/O.

    Args:
        recording: the MIB view to start from.
        clock: seconds, monotonic; inject a manual clock to control time in tests.
        uptime_ticks: sysUpTime at start (default: the recorded value). Values near 2^32 let a
            test watch the wrap.
        octets_per_second: traffic per direction on every up Ethernet port (0 freezes the
            counters at their recorded values).
        sys_name: overrides the recorded sysName.
    """

    def __init__(
        self,
        recording: Recording,
        *,
        clock: Callable[[], float] = time.monotonic,
        uptime_ticks: int | None = None,
        octets_per_second: float = 250_000.0,
        sys_name: str | None = None,
    ) -> None:
        self.recording = recording
        self._clock = clock
        self._oids: list[Oid] = list(recording.oids)
        self._values: dict[Oid, Typed] = dict(zip(recording.oids, recording.values, strict=True))
        for oid in [o for o, v in self._values.items() if v.tag in EXCEPTION_TAGS]:
            # A recording may hold "No Such Instance" lines; they are absences, not values.
            del self._values[oid]
            self._oids.remove(oid)
        # An OID is an instance of a known object when some recorded OID of the same length
        # shares everything but the last arc; that decides noSuchInstance vs noSuchObject.
        self._objects = {oid[:-1] for oid in self._oids}
        if sys_name is not None and _SYS_NAME_0 in self._values:
            self._values[_SYS_NAME_0] = Typed(Tag.OCTET_STRING, sys_name.encode("utf-8"))
        now = clock()
        self._uptime_base = (
            uptime_ticks
            if uptime_ticks is not None
            else _int_value(self._values.get(_SYS_UPTIME_0))
        ) % _UINT32
        self._engine_base = _int_value(self._values.get(_ENGINE_TIME_0), self._uptime_base // 100)
        self._boot_mark = now
        self._silent_until = float("-inf")
        self._ports: dict[int, _Port] = {}
        self._zero_speed_when_down = False
        for if_index in recording.column(_IF_INDEX):
            self._add_port(if_index, now, octets_per_second)

    def _add_port(self, if_index: int, now: float, rate: float) -> None:
        def recorded(column: Oid) -> int:
            return _int_value(self._values.get((*column, if_index)))

        ethernet = recorded(_IF_TYPE) == _ETHERNET_CSMACD
        oper = recorded(_IF_OPER_STATUS) or _DOWN
        high = self._values.get((*_IF_HIGH_SPEED, if_index))
        speed = float(_int_value(high)) if high is not None else recorded(_IF_SPEED) / 1e6
        if ethernet and oper != _UP and speed == 0:
            # This vendor reports speed 0 on a port that is down: keep doing so after changes.
            self._zero_speed_when_down = True

        totals: dict[str, int] = {}
        for column, (name, bits) in _TRAFFIC_COLUMNS.items():
            # Start from the 64-bit counter where the switch has one, else the 32-bit one.
            typed = self._values.get((*column, if_index))
            if typed is not None and (bits == 64 or name not in totals):
                totals[name] = _int_value(typed)
        self._ports[if_index] = _Port(
            oper=oper,
            speed_mbps=speed,
            totals={name: totals.get(name, 0) for name, _ in _TRAFFIC_COLUMNS.values()},
            in_rate=rate if ethernet else 0.0,
            out_rate=rate if ethernet else 0.0,
            mark=now,
        )

    # ------------------------------------------------------------------ state and events

    @property
    def if_indexes(self) -> list[int]:
        """Every ifIndex in the recording, in order."""
        return sorted(self._ports)

    def port_name(self, if_index: int) -> str:
        """ifName where the switch has ifXTable, else ifDescr (what a config names a port by)."""
        for column in (_IF_NAME, _IF_DESCR):
            typed = self._values.get((*column, if_index))
            if typed is not None and isinstance(typed.value, bytes):
                return typed.value.decode("utf-8", errors="replace")
        raise KeyError(if_index)

    def if_index_of(self, port_name: str) -> int:
        """The ifIndex of the port named ``port_name`` (ifName, or ifDescr without ifXTable).

        Raises:
            KeyError: no port has that name.
        """
        for if_index in self._ports:
            if self.port_name(if_index) == port_name:
                return if_index
        raise KeyError(port_name)

    def is_up(self, if_index: int) -> bool:
        """Whether the port is operationally up."""
        return self._ports[if_index].oper == _UP

    def speed_mbps(self, if_index: int) -> float:
        """The port's link speed (its last speed while up)."""
        return self._ports[if_index].speed_mbps

    def uptime_ticks(self) -> int:
        """sysUpTime now, wrapping at 2^32 like the real TimeTicks."""
        elapsed = max(0, int((self._clock() - self._boot_mark) * 100))
        return (self._uptime_base + elapsed) % _UINT32

    def silent(self) -> bool:
        """Whether the switch answers nothing (rebooting, or cut off by ``set_reachable``)."""
        return self._clock() < self._silent_until

    def set_reachable(self, reachable: bool) -> None:
        """Cut the switch off (a fibre cut, a power loss: it answers nothing) or bring it back."""
        self._silent_until = 0.0 if reachable else math.inf

    def set_link(self, if_index: int, up: bool, speed_mbps: float | None = None) -> None:
        """Bring a port up (at ``speed_mbps``, default its last speed) or down.

        Raises:
            KeyError: no such ifIndex.
        """
        port = self._ports[if_index]
        now = self._clock()
        port.advance(now)
        if speed_mbps is not None:
            port.speed_mbps = float(speed_mbps)
        elif up and port.speed_mbps == 0:
            port.speed_mbps = 1000.0
        changed = port.oper != (_UP if up else _DOWN)
        port.oper = _UP if up else _DOWN
        reported = port.speed_mbps if up or not self._zero_speed_when_down else 0.0
        self._set_int((*_IF_OPER_STATUS, if_index), Tag.INTEGER, port.oper)
        self._set_int((*_IF_SPEED, if_index), Tag.GAUGE32, min(int(reported * 1e6), _UINT32 - 1))
        self._set_int((*_IF_HIGH_SPEED, if_index), Tag.GAUGE32, int(reported))
        if changed:
            self._set_int((*_IF_LAST_CHANGE, if_index), Tag.TIMETICKS, self.uptime_ticks())

    def set_rate(
        self, if_index: int, in_octets_per_second: float, out_octets_per_second: float
    ) -> None:
        """Set a port's traffic (octets per second each way while it is up)."""
        port = self._ports[if_index]
        port.advance(self._clock())
        port.in_rate = in_octets_per_second
        port.out_rate = out_octets_per_second

    def set_counters(
        self, if_index: int, *, in_octets: int | None = None, out_octets: int | None = None
    ) -> None:
        """Jump a port's octet counters (e.g. close to 2^32 to watch the 32-bit ones wrap)."""
        port = self._ports[if_index]
        port.advance(self._clock())
        if in_octets is not None:
            port.totals["in_octets"] = in_octets
        if out_octets is not None:
            port.totals["out_octets"] = out_octets

    def set_alias(self, if_index: int, alias: str | bytes) -> None:
        """Set ifAlias (a str is stored as UTF-8; pass bytes for another encoding).

        Raises:
            KeyError: the recording has no ifAlias for this port (no ifXTable).
        """
        oid = (*_IF_ALIAS, if_index)
        if oid not in self._values:
            raise KeyError(if_index)
        raw = alias.encode("utf-8") if isinstance(alias, str) else alias
        self._values[oid] = Typed(Tag.OCTET_STRING, raw)

    def reboot(self, *, uptime_ticks: int = 0, silent_seconds: float = 0.0) -> None:
        """Restart the switch: sysUpTime from ``uptime_ticks``, counters from zero.

        Args:
            uptime_ticks: sysUpTime when the agent answers again.
            silent_seconds: how long the switch answers nothing (booting).
        """
        now = self._clock()
        self._boot_mark = now + silent_seconds
        self._uptime_base = uptime_ticks % _UINT32
        self._engine_base = uptime_ticks // 100
        self._silent_until = now + silent_seconds
        boots = self._values.get(_ENGINE_BOOTS_0)
        if boots is not None:
            self._set_int(_ENGINE_BOOTS_0, Tag.INTEGER, _int_value(boots) + 1)
        for oid, typed in self._values.items():
            in_table = oid[: len(_IF_ENTRY)] == _IF_ENTRY or oid[: len(_IF_X_ENTRY)] == _IF_X_ENTRY
            if in_table and typed.tag in (Tag.COUNTER32, Tag.COUNTER64):
                self._values[oid] = Typed(typed.tag, 0)
            elif in_table and oid[:-1] in (_IF_LAST_CHANGE, _IF_COUNTER_DISCONTINUITY):
                self._values[oid] = Typed(Tag.TIMETICKS, self._uptime_base)
        for port in self._ports.values():
            port.totals = dict.fromkeys(port.totals, 0)
            port.mark = self._boot_mark

    def _set_int(self, oid: Oid, tag: Tag, value: int) -> None:
        # Only values the recording has: an old switch without ifHighSpeed keeps lacking it.
        if oid in self._values:
            self._values[oid] = Typed(tag, value)

    # ------------------------------------------------------------------ the MIB view

    def _read(self, oid: Oid, holes: frozenset[Oid]) -> Typed | None:
        if oid in holes:
            return None
        typed = self._values.get(oid)
        if typed is None:
            return None
        if oid == _SYS_UPTIME_0:
            return Typed(Tag.TIMETICKS, self.uptime_ticks())
        if oid == _ENGINE_TIME_0:
            seconds = self._engine_base + max(0.0, self._clock() - self._boot_mark)
            return Typed(Tag.INTEGER, int(seconds) % 2**31)
        traffic = _TRAFFIC_COLUMNS.get(oid[:-1])
        if traffic is not None and oid[-1] in self._ports:
            name, bits = traffic
            total = self._ports[oid[-1]].total(name, self._clock())
            return Typed(typed.tag, total % (_UINT32 if bits == 32 else _UINT64))
        return typed

    def get(self, oid: Oid, holes: frozenset[Oid] = frozenset()) -> Typed:
        """GET semantics: the value, or noSuchInstance / noSuchObject."""
        typed = self._read(oid, holes)
        if typed is not None:
            return typed
        if oid[:-1] in self._objects:
            return Typed(Tag.NO_SUCH_INSTANCE, None)
        return Typed(Tag.NO_SUCH_OBJECT, None)

    def next(self, oid: Oid, holes: frozenset[Oid] = frozenset()) -> tuple[Oid, Typed]:
        """GETNEXT semantics: the first OID after ``oid`` with its value, or endOfMibView."""
        i = bisect.bisect_right(self._oids, oid)
        while i < len(self._oids):
            candidate = self._oids[i]
            typed = self._read(candidate, holes)
            if typed is not None:
                return candidate, typed
            i += 1
        return oid, Typed(Tag.END_OF_MIB_VIEW, None)

    def bulk(
        self,
        oids: Iterable[Oid],
        non_repeaters: int,
        max_repetitions: int,
        holes: frozenset[Oid] = frozenset(),
    ) -> list[tuple[Oid, Typed]]:
        """GETBULK semantics (RFC 3416 4.2.3), stopping once every repeater is past the end."""
        requested = list(oids)
        non_repeaters = max(0, min(non_repeaters, len(requested)))
        out = [self.next(oid, holes) for oid in requested[:non_repeaters]]
        cursors = requested[non_repeaters:]
        for _ in range(max(0, max_repetitions) if cursors else 0):
            row = [self.next(oid, holes) for oid in cursors]
            out.extend(row)
            if all(typed.tag is Tag.END_OF_MIB_VIEW for _, typed in row):
                break
            cursors = [oid for oid, _ in row]
        return out


def _encodable(typed: Typed) -> ber.EncodableValue:
    """A recording value in the form ber.py encodes."""
    value = typed.value
    match typed.tag:
        case Tag.INTEGER | Tag.OCTET_STRING | Tag.OBJECT_IDENTIFIER | Tag.NULL:
            return value
        case Tag.COUNTER64:
            assert isinstance(value, int)
            return Counter64(value)
        case Tag.NO_SUCH_OBJECT:
            return NoValue.NO_SUCH_OBJECT
        case Tag.NO_SUCH_INSTANCE:
            return NoValue.NO_SUCH_INSTANCE
        case Tag.END_OF_MIB_VIEW:
            return NoValue.END_OF_MIB_VIEW
        case _:
            assert isinstance(value, int | bytes)
            return ber.Typed(int(typed.tag), value)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, switch: SimulatedSwitch) -> None:
        self._switch = switch
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._switch._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a manager that has gone away: nothing to do.
        logger.debug("simulated switch %s: %s", self._switch.name, exc)


class SimulatedSwitch:
    """An SNMP v2c agent on loopback UDP serving a recorded switch, with live behaviour.

    Use as ``async with SimulatedSwitch("huawei-s5735") as sw: ... sw.port ...``.

    Args:
        recording: a Recording or the name of a bundled one.
        community: the read community; requests with any other community get no reply.
        host: the address to listen on (loopback).
        port: the UDP port, 0 for an ephemeral one (see :attr:`port` after start).
        quirks: misbehaviour to simulate; may be replaced at run time via :attr:`quirks`.
        name: a label for logs (default: ``sys_name`` or the recording's name).
        clock, uptime_ticks, octets_per_second, sys_name: see :class:`DeviceModel`.
    """

    def __init__(
        self,
        recording: Recording | str,
        *,
        community: str = "public",
        host: str = "127.0.0.1",
        port: int = 0,
        quirks: Quirks | None = None,
        name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        uptime_ticks: int | None = None,
        octets_per_second: float = 250_000.0,
        sys_name: str | None = None,
    ) -> None:
        if isinstance(recording, str):
            recording = load_recording(recording)
        self.model = DeviceModel(
            recording,
            clock=clock,
            uptime_ticks=uptime_ticks,
            octets_per_second=octets_per_second,
            sys_name=sys_name,
        )
        self.quirks = quirks or Quirks()
        self.stats = SwitchStats()
        self.name = name or sys_name or recording.name
        self._community = community.encode("utf-8")
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _Protocol | None = None
        self._pending: set[asyncio.TimerHandle] = set()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._rng = random.Random(self.quirks.seed)

    def __repr__(self) -> str:
        # The community is a secret: never part of the repr.
        where = f"{self._host}:{self._port}" if self._port is not None else "not started"
        return f"SimulatedSwitch({self.name!r}, {self.model.recording.name!r}, {where})"

    @property
    def host(self) -> str:
        """The address the agent listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The UDP port the agent listens on.

        Raises:
            RuntimeError: the agent has not been started.
        """
        if self._port is None:
            raise RuntimeError(f"{self!r} is not started")
        return self._port

    @property
    def running(self) -> bool:
        """Whether the agent's socket is open."""
        return self._transport is not None

    async def start(self) -> None:
        """Open the UDP socket."""
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(5):
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _Protocol(self), local_addr=(self._host, self._requested_port)
            )
        self._transport = transport
        self._protocol = protocol
        self._port = int(transport.get_extra_info("sockname")[1])
        # A restarted agent keeps its port, as a switch keeps its address.
        self._requested_port = self._port
        logger.debug("simulated switch %s listening on %s:%d", self.name, self._host, self._port)

    async def stop(self) -> None:
        """Close the socket; replies still waiting on a quirk delay are dropped."""
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        if self._transport is not None and self._protocol is not None:
            self._transport.close()
            self._transport = None
            # The socket is released a loop iteration later; wait, so a restart can rebind it.
            async with asyncio.timeout(5):
                await self._protocol.closed
            self._protocol = None
            logger.debug("simulated switch %s stopped", self.name)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # Convenience for the device model's most used events.

    def set_link(self, if_index: int, up: bool, speed_mbps: float | None = None) -> None:
        """See :meth:`DeviceModel.set_link`."""
        self.model.set_link(if_index, up, speed_mbps)

    def set_reachable(self, reachable: bool) -> None:
        """See :meth:`DeviceModel.set_reachable`."""
        self.model.set_reachable(reachable)

    def reboot(self, *, uptime_ticks: int = 0, silent_seconds: float = 0.0) -> None:
        """See :meth:`DeviceModel.reboot`."""
        self.model.reboot(uptime_ticks=uptime_ticks, silent_seconds=silent_seconds)

    async def wait_for_requests(self, count: int) -> None:
        """Wait until the agent has handled ``count`` datagrams in all (for tests).

        Wrap it in ``asyncio.timeout(...)``: it waits as long as it takes.
        """
        if self.stats.requests >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (count, future)
        self._waiters.append(waiter)
        try:
            await future
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    # ------------------------------------------------------------------ request handling

    def _on_datagram(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.stats.requests += 1
        try:
            self._handle(data, addr)
        finally:
            for count, future in list(self._waiters):
                if self.stats.requests >= count and not future.done():
                    future.set_result(None)

    def _handle(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = self._reply_to(data)
        if reply is None or self._transport is None:
            return
        quirks = self.quirks
        if quirks.garbage_ratio > 0 and self._rng.random() < quirks.garbage_ratio:
            self.stats.garbage += 1
            reply = self._garbage(reply)
        self.stats.responses += 1
        if quirks.delay_seconds > 0:
            self._send_later(quirks.delay_seconds, reply, addr)
        else:
            self._transport.sendto(reply, addr)

    def _send_later(self, delay: float, reply: bytes, addr: tuple[str | Any, int]) -> None:
        def send() -> None:
            self._pending.discard(handle)
            if self._transport is not None:
                self._transport.sendto(reply, addr)

        handle = asyncio.get_running_loop().call_later(delay, send)
        self._pending.add(handle)

    def _reply_to(self, data: bytes) -> bytes | None:
        """The reply to one datagram, or None when a real agent would stay silent."""
        if self.model.silent():
            self.stats.silent += 1
            return None
        try:
            message = ber.decode_message(data)
        except SnmpProtocolError:
            self.stats.undecodable += 1
            return None
        if not isinstance(message, ber.CommunityMessage) or message.version != ber.VERSION_2C:
            self.stats.unsupported += 1
            return None
        if message.community != self._community:
            # Real agents ignore a wrong community (and may count snmpInBadCommunityNames).
            self.stats.wrong_community += 1
            return None
        pdu = message.pdu
        quirks = self.quirks
        holes = quirks.holes
        if pdu.type == ber.PduType.GET:
            varbinds = [(oid, self.model.get(oid, holes)) for oid, _ in pdu.varbinds]
        elif pdu.type == ber.PduType.GET_NEXT:
            varbinds = [self.model.next(oid, holes) for oid, _ in pdu.varbinds]
        elif pdu.type == ber.PduType.GET_BULK:
            self.stats.bulk_max_repetitions.append(pdu.max_repetitions)
            if quirks.drop_above is not None and pdu.max_repetitions > quirks.drop_above:
                self.stats.dropped += 1
                return None
            if quirks.too_big_above is not None and pdu.max_repetitions > quirks.too_big_above:
                self.stats.too_big += 1
                return self._error(pdu, ber.ErrorStatus.TOO_BIG, 0, ())
            oids = [oid for oid, _ in pdu.varbinds]
            varbinds = self.model.bulk(oids, pdu.non_repeaters, pdu.max_repetitions, holes)
            # RFC 3416 4.2.3: an oversized GETBULK reply loses trailing varbinds, not all.
            return self._fit(pdu, varbinds, minimum=1)
        elif pdu.type == ber.PduType.SET:
            # A read-only community: the agent refuses every write.
            return self._error(pdu, ber.ErrorStatus.NO_ACCESS, 1, pdu.varbinds)
        else:
            self.stats.unsupported += 1
            return None
        return self._fit(pdu, varbinds, minimum=len(varbinds))

    def _response(self, pdu: ber.Pdu, varbinds: list[tuple[Oid, Typed]]) -> bytes:
        encodable = [(oid, _encodable(typed)) for oid, typed in varbinds]
        response = ber.Pdu(ber.PduType.RESPONSE, pdu.request_id, 0, 0, encodable)
        return ber.encode_community_message(self._community, response)

    def _error(
        self,
        pdu: ber.Pdu,
        status: ber.ErrorStatus,
        index: int,
        varbinds: Iterable[ber.EncodableVarBind],
    ) -> bytes:
        response = ber.Pdu(ber.PduType.RESPONSE, pdu.request_id, int(status), index, list(varbinds))
        return ber.encode_community_message(self._community, response)

    def _fit(self, pdu: ber.Pdu, varbinds: list[tuple[Oid, Typed]], *, minimum: int) -> bytes:
        """Encode the reply, dropping trailing GETBULK repetitions until it fits the size limit."""
        limit = self.quirks.max_response_bytes
        reply = self._response(pdu, varbinds)
        if len(reply) <= limit:
            return reply
        keep = len(varbinds)
        while keep > minimum:
            # Shrink in proportion to the excess, at least one varbind per step.
            keep = max(minimum, min(keep - 1, keep * limit // len(reply)))
            reply = self._response(pdu, varbinds[:keep])
            if len(reply) <= limit:
                return reply
        self.stats.too_big += 1
        return self._error(pdu, ber.ErrorStatus.TOO_BIG, 0, ())

    def _garbage(self, reply: bytes) -> bytes:
        """Something a broken agent or a bad network could deliver instead of ``reply``."""
        kind = self._rng.randrange(4)
        if kind == 0:
            return self._rng.randbytes(self._rng.randrange(1, 64))
        if kind == 1:
            return reply[: self._rng.randrange(1, max(2, len(reply) - 1))]
        if kind == 2:
            # A well-formed reply to a request the manager never sent.
            message = ber.decode_message(reply)
            assert isinstance(message, ber.CommunityMessage)
            pdu = message.pdu
            stale = ber.Pdu(
                pdu.type,
                (pdu.request_id + 1 + self._rng.randrange(1000)) % 2**31,
                pdu.error_status,
                pdu.error_index,
                pdu.varbinds,
            )
            return ber.encode_community_message(self._community, stale)
        # Flip a few octets in the middle: the framing may survive while the content does not.
        mangled = bytearray(reply)
        for _ in range(3):
            i = self._rng.randrange(len(mangled))
            mangled[i] ^= 0xFF
        return bytes(mangled)
