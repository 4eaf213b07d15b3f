"""One UDP socket per address family shared by all SNMP requests of a poller, replies demultiplexed.

Replies are matched to outstanding requests by request-id (v1/v2c) or msgID (v3) and by the
address the request went to. A datagram that does not decode, or matches nothing (a late reply
to a request that already timed out, a stray packet), is counted and dropped.

A busy event loop must not turn a reply that came in time into a timeout (docs/architecture.md,
"Hot paths and readers"): the socket is read by the transport itself, every datagram waiting
at once, and a request's deadline first reads whatever is waiting before it gives up. Each
reply carries how long ago the kernel received it (``SO_TIMESTAMPNS``), so a poll is dated by
when its reply arrived, not by when a stalled loop got round to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import secrets
import socket
import struct
import sys
import time
from dataclasses import dataclass

from edumon.errors import SnmpError, SnmpProtocolError
from edumon.sources.snmp import ber

logger = logging.getLogger(__name__)

DEFAULT_RECEIVE_BUFFER = 4 * 1024 * 1024
_ID_LIMIT = 2**31 - 1
_MAX_DATAGRAM = 65535
# Datagrams read per wake-up before other callbacks get their turn.
_READ_BURST = 256
# Python before 3.14 lacks the constant; 35 is Linux's value on the common architectures.
_SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", None)
if (
    _SO_TIMESTAMPNS is None
    and sys.platform == "linux"
    and platform.machine() in ("x86_64", "aarch64", "armv7l", "riscv64", "i686")
):
    _SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size) if _SO_TIMESTAMPNS is not None else 0

Address = tuple[str, int]


@dataclass(slots=True)
class TransportStats:
    """Counters an exporter can read."""

    sent: int = 0
    received: int = 0
    matched: int = 0
    undecodable: int = 0
    unmatched: int = 0
    socket_errors: int = 0


@dataclass(frozen=True, slots=True)
class Reply:
    """A decoded reply and when it arrived."""

    message: ber.Message
    arrived: float
    """``time.monotonic()`` when the kernel received the datagram (when it was read, where
    the kernel gives no timestamp)."""


def _arrival(ancillary: list[tuple[int, int, bytes]], now_wall: float, now_mono: float) -> float:
    """The monotonic time a datagram arrived, from its kernel timestamp (realtime)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            waited = now_wall - (int(sec) + int(nsec) / 1e9)
            # A clock step between the two readings must not date a reply in the future.
            return now_mono - min(max(waited, 0.0), 3600.0)
    return now_mono


class UdpTransport:
    """The shared SNMP socket(s): send a request, await the matching reply.

    Args:
        local_host_v4: address the IPv4 socket binds to (port is ephemeral).
        local_host_v6: address the IPv6 socket binds to.
        receive_buffer_bytes: SO_RCVBUF to ask for; with many requests in flight the default
            (~200 KiB) overflows and replies are dropped by the kernel.
    """

    def __init__(
        self,
        *,
        local_host_v4: str = "0.0.0.0",
        local_host_v6: str = "::",
        receive_buffer_bytes: int = DEFAULT_RECEIVE_BUFFER,
    ) -> None:
        self.stats = TransportStats()
        self._local: dict[int, str] = {
            socket.AF_INET: local_host_v4,
            socket.AF_INET6: local_host_v6,
        }
        self._rcvbuf = receive_buffer_bytes
        self._sockets: dict[int, socket.socket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, tuple[Address, asyncio.Future[Reply]]] = {}
        self._next_id = 1 + secrets.randbelow(_ID_LIMIT - 1)
        self._closed = False

    def __repr__(self) -> str:
        return f"UdpTransport(pending={len(self._pending)}, {self.stats})"

    @property
    def pending(self) -> int:
        """Requests awaiting a reply right now."""
        return len(self._pending)

    def local_address(self, family: int = socket.AF_INET) -> Address | None:
        """The bound (host, port) of the socket for ``family``, if open."""
        sock = self._sockets.get(family)
        if sock is None:
            return None
        name = sock.getsockname()
        return (str(name[0]), int(name[1]))

    def next_id(self) -> int:
        """A request-id/msgID not used by any outstanding request."""
        while True:
            rid = self._next_id
            self._next_id = rid + 1 if rid < _ID_LIMIT else 1
            if rid not in self._pending:
                return rid

    def _socket(self, family: int) -> socket.socket:
        sock = self._sockets.get(family)
        if sock is not None:
            return sock
        if self._closed:
            raise SnmpError("the SNMP transport is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("an SNMP transport serves one event loop")
        sock = self._make_socket(family)
        loop.add_reader(sock.fileno(), self._read_ready, sock)
        self._sockets[family] = sock
        logger.debug("SNMP socket bound to %s", sock.getsockname())
        return sock

    def _make_socket(self, family: int) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if _SO_TIMESTAMPNS is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            self._size_receive_buffer(sock)
            sock.bind((self._local[family], 0))
        except BaseException:
            sock.close()
            raise
        return sock

    def _size_receive_buffer(self, sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
        except OSError as exc:
            logger.debug("cannot set SO_RCVBUF: %s", exc)
        # Linux caps SO_RCVBUF at net.core.rmem_max; with CAP_NET_ADMIN the cap can be lifted.
        force = getattr(socket, "SO_RCVBUFFORCE", None)
        if (
            force is not None
            and sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < self._rcvbuf
        ):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, force, self._rcvbuf)
        got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if got < self._rcvbuf:
            logger.info(
                "SNMP receive buffer is %d bytes (asked for %d; raise net.core.rmem_max)",
                got,
                self._rcvbuf,
            )

    async def request(
        self,
        address: Address,
        family: int,
        data: bytes,
        request_id: int,
        *,
        deadline: float | None = None,
    ) -> Reply:
        """Send ``data`` to ``address`` and return the reply whose id is ``request_id``.

        Args:
            deadline: seconds to wait; at the deadline every datagram already received is read
                first, so a reply that came in time is never lost to a busy event loop. None
                waits until the reply comes (cancelling forgets the request, so a late reply
                is counted as unmatched).

        Raises:
            TimeoutError: no reply within ``deadline`` seconds.
            SnmpError: the transport is closed.
        """
        if self._closed:
            raise SnmpError("the SNMP transport is closed")
        sock = self._socket(family)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Reply] = loop.create_future()
        self._pending[request_id] = (address, fut)
        expiry = None if deadline is None else loop.call_later(deadline, self._expire, fut)
        try:
            try:
                sock.sendto(data, address)
            except OSError as exc:
                # A full send buffer or an unreachable route: the request is lost like a
                # dropped datagram, and times out (then is retried) like one.
                self.stats.socket_errors += 1
                logger.debug("SNMP send to %s failed: %s", address[0], exc)
            else:
                self.stats.sent += 1
            return await fut
        finally:
            if expiry is not None:
                expiry.cancel()
            entry = self._pending.get(request_id)
            if entry is not None and entry[1] is fut:
                del self._pending[request_id]

    def _expire(self, fut: asyncio.Future[Reply]) -> None:
        # The deadline may come due in the same loop iteration as the reply: read what the
        # kernel holds before calling the request lost.
        for sock in tuple(self._sockets.values()):
            self._read_ready(sock, limit=None)
        if not fut.done():
            fut.set_exception(TimeoutError())

    def _read_ready(self, sock: socket.socket, limit: int | None = _READ_BURST) -> None:
        read = 0
        while limit is None or read < limit:
            try:
                data, ancillary, _flags, addr = sock.recvmsg(_MAX_DATAGRAM, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Unconnected UDP sockets rarely see ICMP errors, and when they do the error
                # cannot be tied to a request; the request simply times out.
                self.stats.socket_errors += 1
                logger.debug("SNMP socket error: %s", exc)
                return
            read += 1
            self._on_datagram(data, addr, _arrival(ancillary, time.time(), time.monotonic()))

    def _on_datagram(self, data: bytes, addr: tuple[str | int, ...], arrived: float) -> None:
        self.stats.received += 1
        try:
            msg = ber.decode_message(data)
        except SnmpProtocolError as exc:
            self.stats.undecodable += 1
            logger.debug("dropped an undecodable datagram from %s: %s", addr[0], exc)
            return
        entry = self._pending.get(ber.message_id(msg))
        if entry is None or entry[1].done() or (addr[0], addr[1]) != entry[0]:
            self.stats.unmatched += 1
            logger.debug("dropped a datagram from %s matching no request", addr[0])
            return
        self.stats.matched += 1
        entry[1].set_result(Reply(msg, arrived))

    async def aclose(self) -> None:
        """Close the sockets; outstanding requests fail with SnmpError."""
        self._closed = True
        sockets = list(self._sockets.values())
        self._sockets.clear()
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(SnmpError("the SNMP transport was closed"))
        self._pending.clear()
        for sock in sockets:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()

    async def __aenter__(self) -> UdpTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
