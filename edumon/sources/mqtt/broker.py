"""The embedded MQTT broker (amqtt) of the single-box set-up: no Mosquitto to install.

Locked down as the shipped Mosquitto configuration is (docs/mqtt-security.md): per-school
accounts with the ACL of ``accounts.AccessPolicy``, TLS, a packet size limit, and no
anonymous listener anywhere but on loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

# amqtt ships no type information (no py.typed).
from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter  # type: ignore[import-untyped]
from amqtt.broker import Broker  # type: ignore[import-untyped]
from amqtt.contexts import Action  # type: ignore[import-untyped]
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin  # type: ignore[import-untyped]

from edumon.errors import ConfigError
from edumon.sources.mqtt.accounts import (
    INTERNAL_ACCOUNT,
    AccessPolicy,
    Account,
    exposure_problem,
)
from edumon.tokens import digest, new_token

log = logging.getLogger(__name__)

# amqtt logs every connection at INFO and its state machine (transitions) every state change.
_CHATTY_LOGGERS: Final = ("amqtt", "transitions")
_LISTENER: Final = "default"
# A client must send CONNECT promptly (and finish a TLS handshake); one that does not is dropped.
_CONNECT_READ_TIMEOUT: Final = 10.0
# MQTT protocol levels amqtt speaks: 3 (MQTT 3.1, "MQIsdp") and 4 (3.1.1).
_SUPPORTED_LEVELS: Final = (3, 4)
# CONNACK for an MQTT 5 client: reason 0x84 "Unsupported Protocol Version", no properties.
_CONNACK_UNSUPPORTED_V5: Final = b"\x20\x03\x00\x84\x00"
# CONNACK return codes of MQTT 3.1.1 §3.2.2.3.
_UNACCEPTABLE_LEVEL: Final = 0x01
_BAD_CREDENTIALS: Final = 0x04
_NOT_AUTHORIZED: Final = 0x05
_REFUSAL_LOG_SECONDS: Final = 60.0
"""A refused login is logged once a minute per reason at most (the rest at DEBUG, counted)."""

RefusalReason = Literal[
    "credentials", "not_authorized", "will", "client_id", "too_large", "protocol"
]
REFUSAL_REASONS: Final[tuple[RefusalReason, ...]] = (
    "credentials",
    "not_authorized",
    "will",
    "client_id",
    "too_large",
    "protocol",
)
"""Why a connection was refused or ended: a fixed set, so a label value never carries what a
client sent (``edumon_mqtt_broker_refused_total{reason}``)."""

MAX_MESSAGE_BYTES: Final = 256 * 1024
"""The largest payload a broker of edumon's should accept: the wire protocol's messages are at
most 4096 bytes; the margin is for a school agent's poll batches (docs/mqtt-security.md).
The shipped Mosquitto configuration's ``message_size_limit``."""
MAX_PACKET_BYTES: Final = MAX_MESSAGE_BYTES + 1024
"""The largest packet (payload, topic and headers): larger ones end the connection. The
shipped Mosquitto configuration's ``max_packet_size``."""


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The embedded broker's TLS certificate.

    Attributes:
        cert_file: PEM certificate chain (the server's certificate first).
        key_file: Its unencrypted private key (PEM).
    """

    cert_file: Path
    key_file: Path

    def context(self) -> ssl.SSLContext:
        """A server-side TLS context (TLS 1.2 at least).

        Raises:
            OSError: A file cannot be read (``ssl.SSLError`` if it is not PEM).
        """
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file, password="")
        return context


class EdumonAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """amqtt's own check of a login, after the broker's admission (see ``_admission``)."""

    @dataclass
    class Config:
        policy: Any = None

    async def authenticate(self, *, session: Any) -> bool:
        policy: AccessPolicy | None = self.config.policy
        if policy is None:  # anonymous on loopback: everyone (and never "anonymous" for amqtt,
            return True  # which would then queue nothing for a persistent session)
        password = session.password
        if isinstance(password, str):
            password = password.encode("utf-8")
        return policy.authenticate(session.username, password) is not None


class EdumonAclPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """Topic rights: publish, subscribe and receive per ``AccessPolicy``."""

    @dataclass
    class Config:
        policy: Any = None

    async def topic_filtering(
        self, *, session: Any = None, topic: str | None = None, action: Any = None
    ) -> bool:
        policy: AccessPolicy | None = self.config.policy
        if policy is None:
            return True
        account = policy.account(session.username) if session is not None else None
        if account is None or topic is None:
            return False
        if action == Action.PUBLISH:
            return policy.may_publish(account, topic)
        if action == Action.SUBSCRIBE:
            return policy.may_subscribe(account, topic)
        if action == Action.RECEIVE:
            return policy.may_receive(account, topic)
        return False


def check_exposure(host: str, policy: AccessPolicy | None) -> None:
    """Refuse a listener without accounts anywhere but on loopback.

    Args:
        host: The address the listening socket is bound to.
        policy: The accounts, or None for anonymous clients.

    Raises:
        ConfigError: anonymous and not loopback.
    """
    problem = exposure_problem(host, anonymous=policy is None)
    if problem is not None:
        raise ConfigError(f"mqtt.listen: {problem}")


class _Refused(Exception):
    """The client's bytes are not what this broker accepts: drop the connection."""


async def _read_packet(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    """One whole MQTT packet (fixed header included), refused before it is read if too large.

    Raises:
        asyncio.IncompleteReadError: the connection ended.
        _Refused: a malformed length, or a packet longer than ``max_bytes``.
    """
    head = await reader.readexactly(1)
    length = 0
    for shift in range(0, 28, 7):  # remaining length: up to four varint bytes
        byte = await reader.readexactly(1)
        head += byte
        length |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            break
    else:
        raise _Refused("malformed remaining length")
    if len(head) + length > max_bytes:
        raise _Refused(f"a {len(head) + length}-byte packet, over the limit of {max_bytes}")
    return head + (await reader.readexactly(length) if length else b"")


def _publish_payload_size(packet: bytes) -> int | None:
    """The payload size of a PUBLISH packet (whole, as ``_read_packet`` returns it), else None."""
    if packet[0] >> 4 != 3:
        return None
    at = 1
    while packet[at] & 0x80:
        at += 1
    at += 1
    topic_length = int.from_bytes(packet[at : at + 2], "big")
    packet_id = 2 if (packet[0] >> 1) & 0x03 else 0
    return len(packet) - at - 2 - topic_length - packet_id


class _FramedReader(StreamReaderAdapter):  # type: ignore[misc]
    """Hands amqtt whole packets, each checked against the size limits before it is read.

    amqtt reads a packet's body in one piece, whatever its announced length; without this a
    client could make the broker hold 256 MiB. A packet over the limit ends the connection
    (as Mosquitto's ``max_packet_size`` does), and so does a PUBLISH whose payload is over
    ``max_message_bytes`` (Mosquitto's ``message_size_limit`` drops it instead): amqtt sees the
    end of the stream and, the disconnection being abnormal, publishes the client's Will.
    """

    def __init__(
        self,
        first: bytes,
        reader: asyncio.StreamReader,
        max_bytes: int,
        max_message_bytes: int,
        on_refused: Callable[[str], None],
    ) -> None:
        super().__init__(reader)
        self._stream = reader
        self._buffer = bytearray(first)
        self._max_bytes = max_bytes
        self._max_message_bytes = max_message_bytes
        self._on_refused = on_refused

    async def read(self, n: int = -1) -> bytes:
        try:
            while not self._buffer or (n > 0 and len(self._buffer) < n):
                packet = await _read_packet(self._stream, self._max_bytes)
                size = _publish_payload_size(packet)
                if size is not None and size > self._max_message_bytes:
                    raise _Refused(
                        f"a {size}-byte message, over the limit of {self._max_message_bytes}"
                    )
                self._buffer += packet
        except _Refused as exc:
            self._on_refused(str(exc))
            raise asyncio.IncompleteReadError(bytes(self._buffer), n if n > 0 else None) from None
        if n < 0 or n >= len(self._buffer):
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data


@dataclass(frozen=True, slots=True)
class _Connect:
    """What admission needs of a CONNECT packet."""

    level: int
    client_id: str
    will_topic: str | None
    username: str | None
    password: bytes | None


def _parse_connect(packet: bytes) -> _Connect | None:
    """The fields of a CONNECT packet (MQTT 3.1, 3.1.1, 5), or None if it is not one."""
    if not packet or packet[0] != 0x10:
        return None
    at = 1
    while packet[at] & 0x80:
        at += 1
    at += 1
    view = memoryview(packet)

    def field() -> bytes:
        nonlocal at
        if at + 2 > len(packet):
            raise _Refused("truncated CONNECT")
        size = int.from_bytes(view[at : at + 2], "big")
        value = bytes(view[at + 2 : at + 2 + size])
        if len(value) != size:
            raise _Refused("truncated CONNECT")
        at += 2 + size
        return value

    try:
        name = field()
        if name not in (b"MQTT", b"MQIsdp") or at + 4 > len(packet):
            return None
        level, flags = packet[at], packet[at + 1]
        at += 4  # level, flags, keep-alive
        if level == 5:  # refused before its properties matter
            return _Connect(level, "", None, None, None)
        client_id = field().decode("utf-8")
        will_topic = None
        if flags & 0x04:
            will_topic = field().decode("utf-8")
            field()  # the Will's message
        username = field().decode("utf-8") if flags & 0x80 else None
        password = field() if flags & 0x40 else None
    except (_Refused, UnicodeDecodeError):
        return None
    return _Connect(level, client_id, will_topic, username, password)


class EmbeddedBroker:
    """An MQTT 3.1.1 broker in this process, listening on ``host:port`` (loopback by default).

    Retained messages and Last Wills work as with Mosquitto; sessions and retained messages
    live in memory only (a restart loses them, and agents re-publish their retained birth on
    reconnecting). ``port=0`` picks a free port, readable as ``.port`` once started.

    The listening socket is opened here and each connection handed to amqtt (its "external"
    listener) once its CONNECT has been admitted: credentials, the Will's topic and the client
    id are checked before amqtt sees the client, so a refused client can neither take over a
    session nor have a Will published.

    Args:
        host: Address to listen on.
        port: TCP port; 0 for a free one.
        policy: The accounts and their rights; then every client must log in, and the
            collector of this process uses the internal account (``internal_credentials``).
            None allows anonymous clients with every right, on loopback only.
        tls: The listener's certificate; then clients speak TLS, and the collector of this
            process connects to a second, plain listener on 127.0.0.1 that admits only the
            internal account (``client_endpoint``).
        max_packet_bytes: Larger packets end the connection.
        max_message_bytes: A PUBLISH with a larger payload ends the connection.

    Raises:
        ValueError: ``policy`` has an account named ``INTERNAL_ACCOUNT``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        policy: AccessPolicy | None = None,
        tls: ServerTls | None = None,
        max_packet_bytes: int = MAX_PACKET_BYTES,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.host = host.strip("[]")
        self._requested_port = port
        self._tls = tls
        self._max_packet_bytes = max_packet_bytes
        self._max_message_bytes = max_message_bytes
        self._internal_password: str | None = None
        if policy is not None:
            if policy.account(INTERNAL_ACCOUNT) is not None:
                raise ValueError(f"the MQTT account name {INTERNAL_ACCOUNT!r} is reserved")
            self._internal_password = new_token()
            internal = Account(INTERNAL_ACCOUNT, "collector", None, digest(self._internal_password))
            policy = AccessPolicy(policy.district, [*policy.accounts(), internal])
        self._policy = policy
        self._broker: Broker | None = None
        self._server: asyncio.Server | None = None
        self._internal_server: asyncio.Server | None = None
        self._port: int | None = None
        self._internal_port: int | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        # Every reason from 0, so that increase() in Prometheus sees the first refusal.
        self.refused: Counter[str] = Counter(dict.fromkeys(REFUSAL_REASONS, 0))
        """Connections refused or ended, by reason (``REFUSAL_REASONS``); exported as
        ``edumon_mqtt_broker_refused_total``."""
        self._refusal_logged: dict[str, float] = {}

    @property
    def port(self) -> int:
        """The bound TCP port.

        Raises:
            RuntimeError: The broker is not running.
        """
        if self._port is None:
            raise RuntimeError("the embedded MQTT broker is not running")
        return self._port

    def client_endpoint(self) -> tuple[str, int]:
        """Where the collector of this process connects: plain TCP on loopback.

        Raises:
            RuntimeError: The broker is not running.
        """
        port = self.port
        if self._internal_port is not None:
            return "127.0.0.1", self._internal_port
        host = self.host
        if ipaddress.ip_address(host.split("%")[0]).is_unspecified:
            host = "::1" if ":" in host else "127.0.0.1"
        return host, port

    def internal_credentials(self) -> tuple[str, str] | None:
        """The collector's user name and password on this broker; None without accounts."""
        if self._internal_password is None:
            return None
        return INTERNAL_ACCOUNT, self._internal_password

    def _config(self) -> dict[str, Any]:
        # Only edumon's plugins: amqtt's defaults include a packet logger (it would log
        # CONNECT packets, passwords included, at DEBUG) and $SYS topics nobody reads here.
        plugin = {"policy": self._policy}
        return {
            "listeners": {_LISTENER: {"type": "external"}},
            "plugins": {
                f"{__name__}.EdumonAuthPlugin": plugin,
                f"{__name__}.EdumonAclPlugin": plugin,
            },
        }

    async def start(self) -> None:
        """Start amqtt and listen.

        Raises:
            OSError: The address cannot be bound (e.g. the port is taken), or the TLS files
                cannot be read.
            ConfigError: No accounts, and the address is not loopback.
            RuntimeError: Already running.
        """
        if self._broker is not None:
            raise RuntimeError("the embedded MQTT broker is already running")
        for name in _CHATTY_LOGGERS:
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:  # an explicit setting by the application wins
                logger.setLevel(logging.WARNING)
        context = self._tls.context() if self._tls is not None else None
        server = await asyncio.start_server(
            self._public,
            self.host,
            self._requested_port,
            ssl=context,
            ssl_handshake_timeout=_CONNECT_READ_TIMEOUT if context is not None else None,
        )
        internal: asyncio.Server | None = None
        try:
            for sock in server.sockets:
                check_exposure(sock.getsockname()[0], self._policy)
            if context is not None:
                internal = await asyncio.start_server(self._internal, "127.0.0.1", 0)
            broker = Broker(self._config())
            await broker.start()
        except BaseException:
            server.close()
            if internal is not None:
                internal.close()
            raise
        self._broker = broker
        self._server = server
        self._internal_server = internal
        self._port = server.sockets[0].getsockname()[1]
        if internal is not None:
            self._internal_port = internal.sockets[0].getsockname()[1]
        log.debug("embedded MQTT broker listening on %s:%d", self.host, self._port)

    async def _public(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._connected(reader, writer, internal=False)

    async def _internal(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._connected(reader, writer, internal=True)

    def _refuse(self, reason: RefusalReason, detail: str) -> None:
        self.refused[reason] += 1
        now = time.monotonic()
        if now - self._refusal_logged.get(reason, -_REFUSAL_LOG_SECONDS) >= _REFUSAL_LOG_SECONDS:
            self._refusal_logged[reason] = now
            log.warning(
                "内置 MQTT 代理拒绝了一个客户端 / embedded MQTT broker refused a client: %s "
                "(%s; %d so far)",
                detail,
                reason,
                self.refused[reason],
            )
        else:
            log.debug("embedded MQTT broker refused a client: %s (%s)", detail, reason)

    def _admission(self, connect: _Connect, internal: bool) -> int | None:
        """The CONNACK return code refusing this CONNECT, or None to admit it."""
        policy = self._policy
        if policy is None:
            return None
        who = f"user {connect.username!r}, client id {connect.client_id!r}"
        account = policy.authenticate(connect.username, connect.password)
        if account is None:
            self._refuse("credentials", f"bad user name or password ({who})")
            return _BAD_CREDENTIALS if connect.username is not None else _NOT_AUTHORIZED
        if internal and account.name != INTERNAL_ACCOUNT:
            self._refuse("not_authorized", f"the internal listener is the collector's ({who})")
            return _NOT_AUTHORIZED
        if connect.will_topic is not None and not policy.may_publish(account, connect.will_topic):
            self._refuse("will", f"a Will on {connect.will_topic!r}, not this account's ({who})")
            return _NOT_AUTHORIZED
        broker = self._broker
        held = broker.sessions.get(connect.client_id) if broker is not None else None
        holder = held[0].username if held is not None else None
        if connect.client_id and not policy.may_take_over(account, holder):
            self._refuse("client_id", f"the client id is another account's session ({who})")
            return _NOT_AUTHORIZED
        return None

    async def _connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, internal: bool
    ) -> None:
        broker = self._broker
        task = asyncio.current_task()
        if broker is None or task is None:  # stopping: refuse new clients
            writer.close()
            return
        self._connections.add(task)
        try:
            try:
                async with asyncio.timeout(_CONNECT_READ_TIMEOUT):
                    packet = await _read_packet(reader, self._max_packet_bytes)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            except _Refused as exc:
                self._refuse("too_large", f"CONNECT: {exc}")
                return
            connect = _parse_connect(packet)
            if connect is None:
                self._refuse("protocol", "the first packet is not a valid CONNECT")
                return
            if connect.level not in _SUPPORTED_LEVELS:
                # amqtt leaves an MQTT 5 CONNECT unanswered until the client times out; answer
                # as the specification asks, so clients fall back to 3.1.1 at once.
                writer.write(
                    _CONNACK_UNSUPPORTED_V5
                    if connect.level == 5
                    else bytes((0x20, 0x02, 0x00, _UNACCEPTABLE_LEVEL))
                )
                await writer.drain()
                return
            refusal = self._admission(connect, internal)
            if refusal is not None:
                writer.write(bytes((0x20, 0x02, 0x00, refusal)))
                await writer.drain()
                return
            who = connect.username or "anonymous"

            def too_large(detail: str) -> None:
                self._refuse("too_large", f"{detail} from user {who!r}; disconnected")

            await broker.external_connected(
                _FramedReader(
                    packet, reader, self._max_packet_bytes, self._max_message_bytes, too_large
                ),
                StreamWriterAdapter(writer),
                _LISTENER,
            )
        except ConnectionError:
            return
        finally:
            self._connections.discard(task)
            writer.close()

    async def stop(self) -> None:
        """Stop listening, close every client connection and stop amqtt (idempotent)."""
        servers = [s for s in (self._server, self._internal_server) if s is not None]
        self._server = self._internal_server = None
        broker, self._broker = self._broker, None
        self._port = self._internal_port = None
        for server in servers:
            server.close()
        if broker is not None:
            # Closes every session (clients see their connection drop) and the broadcast loop.
            await broker.shutdown()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        for server in servers:
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
