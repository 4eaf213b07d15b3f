"""The embedded MQTT broker (amqtt) of the single-box set-up: no Mosquitto to install."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

# amqtt ships no type information (no py.typed).
from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter  # type: ignore[import-untyped]
from amqtt.broker import Broker  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

# amqtt logs every connection at INFO and its state machine (transitions) every state change.
_CHATTY_LOGGERS: Final = ("amqtt", "transitions")
_LISTENER: Final = "default"
# A client must send CONNECT promptly; one that does not is dropped.
_CONNECT_READ_TIMEOUT: Final = 10.0
# MQTT protocol levels amqtt speaks: 3 (MQTT 3.1, "MQIsdp") and 4 (3.1.1).
_SUPPORTED_LEVELS: Final = (3, 4)
# CONNACK for an MQTT 5 client: reason 0x84 "Unsupported Protocol Version", no properties.
_CONNACK_UNSUPPORTED_V5: Final = b"\x20\x03\x00\x84\x00"
# CONNACK return code 0x01 "unacceptable protocol level" (MQTT 3.1.1 §3.2.2.3).
_CONNACK_UNSUPPORTED_V311: Final = b"\x20\x02\x00\x01"


class _PeekedReader(StreamReaderAdapter):  # type: ignore[misc]
    """Hands amqtt the bytes already read to learn the protocol level, then the stream."""

    def __init__(self, prefix: bytes, reader: asyncio.StreamReader) -> None:
        super().__init__(reader)
        self._prefix = prefix

    async def read(self, n: int = -1) -> bytes:
        if not self._prefix:
            data: bytes = await super().read(n)
            return data
        if n == -1 or n >= len(self._prefix):
            head, self._prefix = self._prefix, b""
            rest = b"" if n == len(head) else await super().read(-1 if n == -1 else n - len(head))
            return head + rest
        head, self._prefix = self._prefix[:n], self._prefix[n:]
        return head


async def _read_connect_head(reader: asyncio.StreamReader) -> tuple[bytes, int | None]:
    """Read a CONNECT packet up to its protocol level byte: (bytes read, level or None)."""
    data = await reader.readexactly(1)
    if data[0] != 0x10:  # not CONNECT: let amqtt refuse it its own way
        return data, None
    for _ in range(4):  # remaining length: up to four varint bytes
        byte = await reader.readexactly(1)
        data += byte
        if not byte[0] & 0x80:
            break
    name_length = await reader.readexactly(2)
    data += name_length
    length = int.from_bytes(name_length, "big")
    if length > 6:  # "MQTT" or "MQIsdp"
        return data, None
    data += await reader.readexactly(length)
    level = await reader.readexactly(1)
    return data + level, level[0]


class EmbeddedBroker:
    """An MQTT 3.1.1 broker in this process, listening on ``host:port`` (loopback by default).

    Retained messages and Last Wills work as with Mosquitto; sessions and retained messages
    live in memory only (a restart loses them, and agents re-publish their retained birth on
    reconnecting). ``port=0`` picks a free port, readable as ``.port`` once started.

    The listening socket is opened here and each connection handed to amqtt (its "external"
    listener): so the bound port is known without reaching into amqtt.

    Args:
        host: Address to listen on.
        port: TCP port; 0 for a free one.
        password_file: A ``user:hash`` file, one user a line, argon2 hashes (for instance
            ``pwdlib.PasswordHash.recommended().hash(password)``); then every client must
            log in. None allows anonymous clients.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, password_file: Path | None = None
    ) -> None:
        self.host = host
        self._requested_port = port
        self._password_file = password_file
        self._broker: Broker | None = None
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        """The bound TCP port.

        Raises:
            RuntimeError: The broker is not running.
        """
        if self._port is None:
            raise RuntimeError("the embedded MQTT broker is not running")
        return self._port

    def _config(self) -> dict[str, Any]:
        if self._password_file is None:
            auth: dict[str, Any] = {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            }
        else:
            auth = {
                "amqtt.plugins.authentication.FileAuthPlugin": {
                    "password_file": str(self._password_file)
                }
            }
        # Only authentication: amqtt's default plugins include a packet logger (it would log
        # CONNECT packets, passwords included, at DEBUG) and $SYS topics nobody reads here.
        return {"listeners": {_LISTENER: {"type": "external"}}, "plugins": auth}

    async def start(self) -> None:
        """Start amqtt and listen.

        Raises:
            OSError: The address cannot be bound (e.g. the port is taken).
            RuntimeError: Already running.
        """
        if self._broker is not None:
            raise RuntimeError("the embedded MQTT broker is already running")
        for name in _CHATTY_LOGGERS:
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:  # an explicit setting by the application wins
                logger.setLevel(logging.WARNING)
        broker = Broker(self._config())
        await broker.start()
        try:
            server = await asyncio.start_server(self._connected, self.host, self._requested_port)
        except BaseException:
            await broker.shutdown()
            raise
        self._broker = broker
        self._server = server
        self._port = server.sockets[0].getsockname()[1]
        log.debug("embedded MQTT broker listening on %s:%d", self.host, self._port)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        broker = self._broker
        task = asyncio.current_task()
        if broker is None or task is None:  # stopping: refuse new clients
            writer.close()
            return
        self._connections.add(task)
        try:
            try:
                async with asyncio.timeout(_CONNECT_READ_TIMEOUT):
                    head, level = await _read_connect_head(reader)
            except (TimeoutError, asyncio.IncompleteReadError):
                return
            if level is not None and level not in _SUPPORTED_LEVELS:
                # amqtt leaves an MQTT 5 CONNECT unanswered until the client times out; answer
                # as the specification asks, so clients fall back to 3.1.1 at once.
                writer.write(_CONNACK_UNSUPPORTED_V5 if level == 5 else _CONNACK_UNSUPPORTED_V311)
                await writer.drain()
                return
            await broker.external_connected(
                _PeekedReader(head, reader), StreamWriterAdapter(writer), _LISTENER
            )
        finally:
            self._connections.discard(task)
            writer.close()

    async def stop(self) -> None:
        """Stop listening, close every client connection and stop amqtt (idempotent)."""
        server, self._server = self._server, None
        broker, self._broker = self._broker, None
        self._port = None
        if server is not None:
            server.close()
        if broker is not None:
            # Closes every session (clients see their connection drop) and the broadcast loop.
            await broker.shutdown()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

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
