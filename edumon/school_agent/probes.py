"""Reachability of classroom terminals that have no agent: ICMP echo where permitted, else TCP.

ICMP uses the kernel's unprivileged ping sockets (Linux ``net.ipv4.ping_group_range``), so the
agent needs no root and no raw socket; where they are not permitted, a TCP connect to the
terminal's port says the same (an answer, even a refusal, means the host is up).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from dataclasses import dataclass
from typing import Literal

Method = Literal["icmp", "tcp"]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe: whether the host answered, how, and how fast."""

    up: bool
    method: Method
    rtt_seconds: float | None


def icmp_permitted() -> bool:
    """Whether this process may open an unprivileged ICMP socket."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()
    except OSError:
        return False
    return True


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return int(~total & 0xFFFF)


async def _icmp(host: str, wait_seconds: float) -> ProbeResult:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, family=socket.AF_INET)
    address = infos[0][4][0]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    sock.setblocking(False)
    try:
        body = struct.pack("!d", time.monotonic())
        header = struct.pack("!BBHHH", 8, 0, 0, 0, 1)  # the kernel sets the identifier
        packet = struct.pack("!BBHHH", 8, 0, _checksum(header + body), 0, 1) + body
        started = time.monotonic()
        await loop.sock_sendto(sock, packet, (address, 0))
        async with asyncio.timeout(wait_seconds):
            while True:
                reply = await loop.sock_recv(sock, 1024)
                if reply and reply[0] == 0:  # echo reply
                    return ProbeResult(True, "icmp", time.monotonic() - started)
    except (TimeoutError, OSError):
        return ProbeResult(False, "icmp", None)
    finally:
        sock.close()


async def _tcp(host: str, port: int, wait_seconds: float) -> ProbeResult:
    started = time.monotonic()
    try:
        async with asyncio.timeout(wait_seconds):
            _reader, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        return ProbeResult(True, "tcp", time.monotonic() - started)  # the host answered
    except (TimeoutError, OSError):
        return ProbeResult(False, "tcp", None)
    writer.close()
    with contextlib.suppress(TimeoutError, OSError):
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    return ProbeResult(True, "tcp", time.monotonic() - started)


async def probe(
    host: str, method: Literal["auto", "icmp", "tcp"], tcp_port: int, wait_seconds: float = 2.0
) -> ProbeResult:
    """Probe one host. ``auto`` uses ICMP where permitted, else TCP."""
    if method == "icmp" or (method == "auto" and icmp_permitted()):
        return await _icmp(host, wait_seconds)
    return await _tcp(host, tcp_port, wait_seconds)
