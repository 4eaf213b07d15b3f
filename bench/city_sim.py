"""The city benchmark's switches: thousands of SNMP v2c agents on one UDP socket, by community.

Run by bench/city.py as its own process (so its CPU is counted apart from edumon's):
``python bench/city_sim.py SPEC.json``. SPEC holds ``switches`` ([id, community] pairs),
``host`` and ``out`` (where the arrival times go on exit). Prints ``READY <port>`` once the
socket is bound; SIGTERM or SIGINT makes it write ``out`` and exit.

Every switch serves the bundled 57-port Huawei S5735 recording (edumon/demo/agent.py's
DeviceModel), with the first nine access ports up at 1000M (classroom ports and trunks). To be
cheap at 5,000 switches it decodes only the envelope of a request (community, PDU type,
request-id) and keys a reply cache on the rest of the request's bytes: all switches serve the
same MIB view, so a GETBULK's reply body is computed once per request shape and reused for
every switch (counters refreshed every ``refresh`` seconds, 30 by default), its request-id and
community patched in. The system GET (sysUpTime, sysName, snmpEngine clocks) is answered live
per switch: each switch has its own sysUpTime, advancing with the clock, and its own sysName.

It records, per switch, the arrival time of every GET whose first object is sysUpTime.0 (the
first request of each edumon poll), so the benchmark measures poll coverage independently of
edumon. It never goes silent and never reboots: every unreachable or reboot edumon reports
about these switches is false.
"""

from __future__ import annotations

import array
import json
import random
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from edumon.demo.agent import DeviceModel, _encodable
from edumon.demo.recording import Tag, Typed, load_recording
from edumon.domain.oids import Oid
from edumon.errors import SnmpProtocolError
from edumon.sources.snmp import ber

RECORDING = "huawei-s5735"
SYS_UPTIME_0: Oid = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SYS_NAME_0: Oid = (1, 3, 6, 1, 2, 1, 1, 5, 0)
UP_PORTS = tuple(f"GigabitEthernet0/0/{n}" for n in range(1, 10))
RECEIVE_BUFFER = 4 * 1024 * 1024
_GET, _BULK, _NEXT = 0xA0, 0xA5, 0xA1
_VERSION_2C = b"\x02\x01\x01"
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux


def _tl(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, length, start of content) of the BER TLV at ``pos``."""
    tag = buf[pos]
    first = buf[pos + 1]
    if first < 0x80:
        return tag, first, pos + 2
    n = first & 0x7F
    return tag, int.from_bytes(buf[pos + 2 : pos + 2 + n], "big"), pos + 2 + n


def _tlv(tag: int, content: bytes) -> bytes:
    return ber.encode_tlv(tag, content)


class _Shape:
    """A request shape (PDU type and everything after the request-id) and its cached reply."""

    __slots__ = ("body", "made", "max_repetitions", "non_repeaters", "oids", "poll_start", "tag")

    def __init__(self, tag: int, pdu: ber.Pdu) -> None:
        self.tag = tag
        self.oids = [oid for oid, _ in pdu.varbinds]
        self.non_repeaters = pdu.non_repeaters if tag == _BULK else 0
        self.max_repetitions = pdu.max_repetitions if tag == _BULK else 0
        self.poll_start = tag == _GET and bool(self.oids) and self.oids[0] == SYS_UPTIME_0
        self.body = b""
        self.made = float("-inf")


class CitySwitches:
    """The agents' shared state and request handling (no socket here: see :func:`serve`)."""

    def __init__(self, switches: list[tuple[str, str]], *, refresh: float = 30.0) -> None:
        self.model = DeviceModel(load_recording(RECORDING))
        for name in UP_PORTS:
            self.model.set_link(self.model.if_index_of(name), True, 1000)
        self.refresh = refresh
        self.ids = [sid for sid, _ in switches]
        self.by_community = {c.encode(): i for i, (_, c) in enumerate(switches)}
        rng = random.Random(8)
        # Each switch booted some days ago, at its own moment.
        self.uptime_base = [rng.randrange(86_400_00, 100 * 86_400_00) for _ in switches]
        self.started = time.monotonic()
        self.arrivals: list[list[float]] = [[] for _ in switches]
        self.shapes: dict[tuple[int, bytes], _Shape] = {}
        self.stats = {
            "requests": 0,
            "replies": 0,
            "wrong_community": 0,
            "undecodable": 0,
            "unsupported": 0,
            "bodies_built": 0,
        }

    def reply(self, data: bytes) -> bytes | None:
        """The reply to one datagram, or None (not ours, or not understood)."""
        self.stats["requests"] += 1
        try:
            tag, _, p = _tl(data, 0)
            if tag != 0x30 or data[p : p + 3] != _VERSION_2C:
                self.stats["unsupported"] += 1
                return None
            p += 3
            _, clen, cstart = _tl(data, p)
            community = data[cstart : cstart + clen]
            community_tlv = data[p : cstart + clen]
            pdu_tag, _, p = _tl(data, cstart + clen)
            _, rlen, rstart = _tl(data, p)
            rid_tlv = data[p : rstart + rlen]
            tail = data[rstart + rlen :]
        except IndexError:
            self.stats["undecodable"] += 1
            return None
        index = self.by_community.get(community)
        if index is None:
            self.stats["wrong_community"] += 1
            return None
        shape = self.shapes.get((pdu_tag, tail))
        if shape is None:
            try:
                message = ber.decode_message(data)
            except SnmpProtocolError:
                self.stats["undecodable"] += 1
                return None
            if pdu_tag not in (_GET, _BULK, _NEXT) or not isinstance(message, ber.CommunityMessage):
                self.stats["unsupported"] += 1
                return None
            shape = _Shape(pdu_tag, message.pdu)
            self.shapes[(pdu_tag, tail)] = shape
        now = time.time()
        if shape.poll_start:
            self.arrivals[index].append(now)
        if shape.tag == _GET:
            body = self._get_body(shape, index)
        else:
            if now - shape.made >= self.refresh:
                shape.body = self._walk_body(shape)
                shape.made = now
                self.stats["bodies_built"] += 1
            body = shape.body
        self.stats["replies"] += 1
        return _tlv(0x30, _VERSION_2C + community_tlv + _tlv(0xA2, rid_tlv + body))

    def _get_body(self, shape: _Shape, index: int) -> bytes:
        varbinds: list[tuple[Oid, ber.EncodableValue]] = []
        for oid in shape.oids:
            if oid == SYS_UPTIME_0:
                elapsed = int((time.monotonic() - self.started) * 100)
                typed = Typed(Tag.TIMETICKS, (self.uptime_base[index] + elapsed) % 2**32)
            elif oid == SYS_NAME_0:
                typed = Typed(Tag.OCTET_STRING, self.ids[index].upper().encode())
            else:
                typed = self.model.get(oid)
            varbinds.append((oid, _encodable(typed)))
        return b"\x02\x01\x00\x02\x01\x00" + ber.encode_varbinds(varbinds)

    def _walk_body(self, shape: _Shape) -> bytes:
        if shape.tag == _BULK:
            found = self.model.bulk(shape.oids, shape.non_repeaters, shape.max_repetitions)
        else:
            found = [self.model.next(oid) for oid in shape.oids]
        varbinds = [(oid, _encodable(typed)) for oid, typed in found]
        return b"\x02\x01\x00\x02\x01\x00" + ber.encode_varbinds(varbinds)


def _socket_drops(port: int) -> int | None:
    """Datagrams the kernel dropped on our socket (receive buffer full), from /proc/net/udp."""
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        local = fields[1]
        if int(local.rsplit(":", 1)[1], 16) == port:
            return int(fields[-1])
    return None


def serve(spec: dict[str, Any]) -> None:
    """Serve until SIGTERM/SIGINT, then write the arrivals to ``spec['out']``."""
    city = CitySwitches(
        [(s[0], s[1]) for s in spec["switches"]], refresh=float(spec.get("refresh", 30.0))
    )
    stop = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RECEIVE_BUFFER)
    sock.bind((spec.get("host", "127.0.0.1"), int(spec.get("port", 0))))
    # The kernel stamps each datagram as it arrives: arrival to reply is the time a request
    # waited for this process plus the time to answer it, so a slow simulator would show.
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.settimeout(0.25)
    port = sock.getsockname()[1]
    print(f"READY {port}", flush=True)
    recv, send, reply = sock.recvmsg, sock.sendto, city.reply
    waits = array.array("d")
    clock = time.time
    while not stop:
        try:
            data, ancillary, _, addr = recv(65535, 64)
        except TimeoutError:
            continue
        except InterruptedError:
            continue
        out = reply(data)
        if out is not None:
            try:
                send(out, addr)
            except OSError:
                city.stats["send_errors"] = city.stats.get("send_errors", 0) + 1
            for level, kind, raw in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(raw) >= 16:
                    sec, nsec = struct.unpack_from("qq", raw)
                    waits.append(clock() - (sec + nsec / 1e9))
    drops = _socket_drops(port)
    sock.close()
    ordered = sorted(waits)

    def at(q: float) -> float | None:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

    result = {
        "arrivals": dict(zip(city.ids, city.arrivals, strict=True)),
        "stats": {
            **city.stats,
            "shapes": len(city.shapes),
            "socket_drops": drops,
            "reply_seconds": {"p50": at(0.5), "p99": at(0.99), "max": at(1.0), "n": len(ordered)},
            "receive_buffer": RECEIVE_BUFFER,
        },
    }
    Path(spec["out"]).write_text(json.dumps(result))


def main() -> None:
    serve(json.loads(Path(sys.argv[1]).read_text()))


if __name__ == "__main__":
    main()
