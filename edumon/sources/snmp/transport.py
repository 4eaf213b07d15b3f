"""One UDP socket per address family shared by all SNMP requests of a poller, replies demultiplexed.

Replies are matched to outstanding requests by request-id (v1/v2c) or msgID (v3) and by the
address the request went to. A datagram that does not decode, or matches nothing (a late reply
to a request that already timed out, a stray packet), is counted and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from dataclasses import dataclass

from edumon.errors import SnmpError, SnmpProtocolError
from edumon.sources.snmp import ber

logger = logging.getLogger(__name__)

DEFAULT_RECEIVE_BUFFER = 4 * 1024 * 1024
_ID_LIMIT = 2**31 - 1

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


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._owner._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        self._owner._on_error(exc)


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
        self._endpoints: dict[int, asyncio.DatagramTransport] = {}
        self._pending: dict[int, tuple[Address, asyncio.Future[ber.Message]]] = {}
        self._next_id = 1 + secrets.randbelow(_ID_LIMIT - 1)
        self._open_lock = asyncio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"UdpTransport(pending={len(self._pending)}, {self.stats})"

    @property
    def pending(self) -> int:
        """Requests awaiting a reply right now."""
        return len(self._pending)

    def local_address(self, family: int = socket.AF_INET) -> Address | None:
        """The bound (host, port) of the socket for ``family``, if open."""
        ep = self._endpoints.get(family)
        if ep is None:
            return None
        name = ep.get_extra_info("sockname")
        return (str(name[0]), int(name[1]))

    def next_id(self) -> int:
        """A request-id/msgID not used by any outstanding request."""
        while True:
            rid = self._next_id
            self._next_id = rid + 1 if rid < _ID_LIMIT else 1
            if rid not in self._pending:
                return rid

    async def _endpoint(self, family: int) -> asyncio.DatagramTransport:
        ep = self._endpoints.get(family)
        if ep is not None:
            return ep
        async with self._open_lock:
            if self._closed:
                raise SnmpError("the SNMP transport is closed")
            ep = self._endpoints.get(family)
            if ep is None:
                sock = self._make_socket(family)
                loop = asyncio.get_running_loop()
                ep, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
                self._endpoints[family] = ep
                logger.debug("SNMP socket bound to %s", ep.get_extra_info("sockname"))
        return ep

    def _make_socket(self, family: int) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
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
        self, address: Address, family: int, data: bytes, request_id: int
    ) -> ber.Message:
        """Send ``data`` to ``address`` and return the reply whose id is ``request_id``.

        Waits until the reply comes: callers bound it with ``asyncio.timeout`` (cancelling
        forgets the request, so a late reply is counted as unmatched).

        Raises:
            SnmpError: the transport is closed.
        """
        if self._closed:
            raise SnmpError("the SNMP transport is closed")
        ep = await self._endpoint(family)
        fut: asyncio.Future[ber.Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (address, fut)
        try:
            ep.sendto(data, address)
            self.stats.sent += 1
            return await fut
        finally:
            entry = self._pending.get(request_id)
            if entry is not None and entry[1] is fut:
                del self._pending[request_id]

    def _on_datagram(self, data: bytes, addr: tuple[str | int, ...]) -> None:
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
        entry[1].set_result(msg)

    def _on_error(self, exc: Exception) -> None:
        # Unconnected UDP sockets rarely see ICMP errors, and when they do the error cannot be
        # tied to a request; the request simply times out.
        self.stats.socket_errors += 1
        logger.debug("SNMP socket error: %s", exc)

    async def aclose(self) -> None:
        """Close the sockets; outstanding requests fail with SnmpError."""
        async with self._open_lock:
            self._closed = True
            endpoints = list(self._endpoints.values())
            self._endpoints.clear()
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(SnmpError("the SNMP transport was closed"))
        self._pending.clear()
        for ep in endpoints:
            ep.close()

    async def __aenter__(self) -> UdpTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
