"""The MQTT ingest: terminal heartbeats and status messages from the broker into a sink.

The MQTT client is paho-mqtt driven by the running asyncio loop through paho's external-loop
socket callbacks (the technique aiomqtt itself uses), without aiomqtt's per-message layer. That
layer (a ``Message`` and ``Topic`` object, a queue, a task and an ``asyncio.wait`` per message,
and one packet read per loop iteration) cost more than parsing the message, and held the ingest
below 10,000 heartbeats/s on a two-core box; ``bench/mqtt_ingest.py`` measures both. paho's own
read path costs as much again (four ``recv`` calls and a message object per packet), so the
socket is read here, 64 KiB at a time: PUBLISH packets are decoded in place and every message
is parsed and handed to the sink on the loop's thread; paho is handed every other packet whole
and keeps the protocol (connect, subscribe, keepalive, acknowledgements).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import SecretStr

from edumon.errors import ConfigError
from edumon.wire import (
    KIND_HEARTBEAT,
    KIND_STATUS,
    MAX_PAYLOAD_BYTES,
    REASON_BAD_FIELD,
    REASON_BAD_TOPIC,
    REASON_EMPTY,
    REASON_TOO_LARGE,
    REASONS,
    Heartbeat,
    Status,
    WireError,
    is_valid_id,
    parse_message,
    terminal_filter,
)

log = logging.getLogger(__name__)

Sink = Callable[[Heartbeat | Status, float], None]
"""Receives every accepted message and its receive time (Unix seconds); must be cheap.

With ``ack_after_store`` the ingest numbers the accepted messages 1, 2, ... in the order they
reach the sink, and the sink's owner calls ``MqttIngest.committed(n)`` once the rows of the
first ``n`` are committed (docs/wire-protocol.md, "Collector session")."""

# Bytes read per readable event before yielding to the loop (about 170 heartbeats): large
# enough to amortise the loop iteration, small enough that a flood cannot starve other tasks.
_READ_BYTES: Final = 65536
# paho needs loop_misc() about once a second to send PINGREQs and notice a dead broker.
_MISC_INTERVAL_SECONDS: Final = 1.0
# A rejection reason is logged at WARNING at most this often; the rest go to DEBUG.
_WARN_EVERY_SECONDS: Final = 60.0
_LOG_TOPIC_CHARS: Final = 160
_LOG_PAYLOAD_BYTES: Final = 32
_DISCONNECT_GRACE_SECONDS: Final = 2.0
# A connection that lasted this long counts as stable: the next reconnect does not back off.
_STABLE_SECONDS: Final = 30.0
# While the sink's owner says it is full, reading the socket waits this long between checks.
_PAUSE_SECONDS: Final = 0.005
# Received and not yet acknowledged (the store is slow or down): past this many the ingest stops
# reading, and the broker keeps the rest (up to its own max_queued_messages).
MAX_UNACKED: Final = 100_000
# A PUBACK's fixed header (type 4, remaining length 2), its packet id after it.
_PUBACK_HEAD: Final = bytes([mqtt.PUBACK, 2])


@dataclass(frozen=True, slots=True)
class MqttTls:
    """TLS to the broker.

    Attributes:
        ca_file: CA bundle that signed the broker's certificate; None uses the system's CAs.
        cert_file: Client certificate (PEM) for certificate authentication, with ``key_file``.
        key_file: The client certificate's private key (PEM).
        insecure: Skip the check that the certificate names ``host``. For test set-ups only.
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("mqtt.tls: cert_file and key_file must be given together")


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Where the broker is and how to subscribe.

    ``password`` accepts a pydantic ``SecretStr`` or a plain ``str`` (kept as a ``SecretStr``);
    it is left out of ``repr``/``str`` and never logged.

    Attributes:
        host: Broker host name or address.
        port: Broker TCP port.
        district: Only this district's topics, or ``"+"`` for all.
        username: MQTT user name, or None for an anonymous connection.
        password: MQTT password (needs ``username``).
        tls: TLS settings, or None for plain TCP.
        client_id: MQTT client id, fixed across restarts so the broker keeps the session (and
            queues QoS 1 messages) while the collector is down; None derives
            ``edumon-collector-{district}``. Two collectors must not share one: the broker
            would disconnect each in turn, and each would take the other's queued messages.
        clean_session: False (the default) keeps a persistent session at the broker; the
            broker's ``persistent_client_expiration`` bounds how long it waits for us.
        keepalive: Seconds between PINGREQs; a silent broker is noticed after 1.5 times this.
        qos: Subscription QoS (0 or 1).
        max_payload_bytes: Larger payloads are rejected as ``too_large`` before parsing; at
            most ``wire.MAX_PAYLOAD_BYTES``.
        connect_timeout: Seconds for TCP, TLS, CONNACK and SUBACK together.
        reconnect_min_seconds: First retry delay after a failure (before jitter).
        reconnect_max_seconds: Cap of the exponentially growing retry delay.
        schools: Only these schools' topics; None for every school of ``district``.
    """

    host: str = "127.0.0.1"
    port: int = 1883
    district: str = "+"
    username: str | None = None
    password: SecretStr | str | None = field(default=None, repr=False)
    tls: MqttTls | None = None
    client_id: str | None = None
    clean_session: bool = False
    keepalive: int = 30
    qos: int = 1
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    connect_timeout: float = 10.0
    reconnect_min_seconds: float = 1.0
    reconnect_max_seconds: float = 5.0
    schools: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.password, str):
            object.__setattr__(self, "password", SecretStr(self.password))
        if not self.host:
            raise ConfigError("mqtt.host must not be empty")
        if not 0 < self.port < 65536:
            raise ConfigError(f"mqtt.port must be 1..65535, not {self.port}")
        if self.district != "+" and not is_valid_id(self.district):
            raise ConfigError(f"mqtt.district {self.district!r} is not a valid id")
        if self.password is not None and self.username is None:
            raise ConfigError("mqtt.password needs mqtt.username")
        if not 5 <= self.keepalive <= 65535:
            raise ConfigError(f"mqtt.keepalive must be 5..65535 seconds, not {self.keepalive}")
        if self.qos not in (0, 1):
            raise ConfigError(f"mqtt.qos must be 0 or 1, not {self.qos}")
        if not 0 < self.max_payload_bytes <= MAX_PAYLOAD_BYTES:
            raise ConfigError(f"mqtt.max_payload_bytes must be 1..{MAX_PAYLOAD_BYTES}")
        if not self.connect_timeout > 0:
            raise ConfigError("mqtt.connect_timeout must be positive")
        if not 0 < self.reconnect_min_seconds <= self.reconnect_max_seconds:
            raise ConfigError("mqtt.reconnect_min_seconds must be in (0, reconnect_max_seconds]")
        for school in self.schools or ():
            if not is_valid_id(school):
                raise ConfigError(f"mqtt.schools: {school!r} is not a valid id")

    @property
    def address(self) -> str:
        """``host:port``, for logs."""
        return f"{self.host}:{self.port}"


@dataclass(slots=True)
class IngestStats:
    """The ingest's own health, read by the metrics exporter at scrape time.

    ``received_total == accepted_total + sum(rejected_total.values())`` always holds.
    """

    received_total: int = 0
    accepted_total: int = 0
    accepted_by_kind: dict[str, int] = field(
        default_factory=lambda: {KIND_HEARTBEAT: 0, KIND_STATUS: 0}
    )
    rejected_total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    connected: bool = False
    connects_total: int = 0
    reconnects_total: int = 0
    connect_failures_total: int = 0
    last_message_at: float | None = None
    sessions_resumed_total: int = 0
    """Connections on which the broker still had our session (and its queued messages)."""
    acks_pending: int = 0
    """QoS 1 messages received and not yet acknowledged (waiting for the store's commit)."""


def default_client_id(district: str) -> str:
    """``edumon-collector-{district}`` (``all`` for every district): fixed, so the broker keeps
    the session across restarts. Two collectors of one district must be given distinct ids."""
    return f"edumon-collector-{district if district != '+' else 'all'}"


class _ConnectionLost(Exception):
    """The broker connection failed or ended: retried after a backoff.

    Attributes:
        up_seconds: How long the connection had been up; None if it was never established.
        refused: The broker refused us (credentials, ACL): an operator has to act.
    """

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.up_seconds: float | None = None
        self.refused = refused


def _escape_topic(topic: str | bytes) -> str:
    # repr() escapes control characters: a hostile topic cannot forge log lines.
    shown = topic[:_LOG_TOPIC_CHARS]
    suffix = "..." if len(topic) > _LOG_TOPIC_CHARS else ""
    return f"{shown!r}{suffix}"


def _topic_field(topic: str | bytes) -> str:
    # For a structured log field: JSON escapes control characters itself, so no repr() quotes.
    shown = topic[:_LOG_TOPIC_CHARS]
    return shown if isinstance(shown, str) else shown.decode("utf-8", "backslashreplace")


class _TrackingContext(ssl.SSLContext):
    """An SSLContext that remembers the sockets it wraps (to close what paho leaks)."""

    opened: list[ssl.SSLSocket]

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        wrapped = super().wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=server_hostname,
            session=session,
        )
        self.opened.append(wrapped)
        return wrapped


def _tls_context(tls: MqttTls) -> _TrackingContext:
    """The client TLS context: the broker's certificate verified, and its name unless insecure.

    Raises:
        OSError: A file cannot be read (``ssl.SSLError`` for one that is not PEM).
    """
    context = _TrackingContext(ssl.PROTOCOL_TLS_CLIENT)
    context.opened = []
    if tls.ca_file is not None:
        context.load_verify_locations(cafile=tls.ca_file)
    else:
        context.load_default_certs()
    if tls.cert_file is not None and tls.key_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.insecure:
        context.check_hostname = False
    return context


class _Link:
    """One MQTT connection: a paho client whose socket the running asyncio loop services.

    paho calls the socket callbacks from the thread that runs ``connect()`` (a worker thread:
    DNS, TCP and TLS block) and later from the loop's thread; loop calls are made thread-safe.
    """

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        deliver: Callable[[_Link, str | bytes, bytes, int | None], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self.read_at = clock()
        """When the current read began: the receive time of every message it reads."""
        self.caught_up_at = self.read_at
        """Every message that reached the socket before this time has gone to the sink."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.connack: asyncio.Future[None] = self._loop.create_future()
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self._subacks: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._fd: int | None = None
        self._abandoned = False
        self._deliver = deliver
        self._inbox = bytearray()
        self._for_paho = b""
        self._eof = False
        self._read_error: OSError | None = None
        self.messages = 0
        """PUBLISH packets received: how ``_on_readable`` tells progress from a drained socket."""
        self.session_present = False
        """Whether the broker had kept our session (CONNACK's flag)."""
        self.backlog = False
        """True from a resumed session's CONNACK until the socket is first read empty: the
        messages read meanwhile are (mostly) what the broker queued while we were away."""
        self.paused: Callable[[], bool] | None = None
        """While this says True, the socket is not read (the sink's owner is full)."""
        self._pausing = False
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            # A persistent session (docs/wire-protocol.md, "Collector session"): QoS 1
            # messages published while the collector is down are queued by the broker and
            # delivered when it returns; status topics are retained and come again with
            # every SUBSCRIBE.
            clean_session=settings.clean_session,
            reconnect_on_failure=False,
        )
        client.connect_timeout = settings.connect_timeout
        if settings.username is not None:
            password = settings.password
            client.username_pw_set(
                settings.username,
                password.get_secret_value() if isinstance(password, SecretStr) else password,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        # The socket is read here (see _on_readable); paho reads only what it is handed.
        setattr(client, "_sock_recv", self._paho_recv)  # noqa: B010 - replaces a method
        self.client = client

    # -- connection set-up (runs in a worker thread) ---------------------------------------

    def blocking_connect(self) -> None:
        """Load TLS files, resolve, connect and send CONNECT (blocking: run in a thread)."""
        settings = self._settings
        context = None
        if settings.tls is not None:
            context = _tls_context(settings.tls)
            self.client.tls_set_context(context)
        try:
            self.client.connect(settings.host, settings.port, keepalive=settings.keepalive)
        except BaseException:
            # paho leaves the socket of a failed TLS handshake open; close it here.
            for sock in context.opened if context is not None else ():
                sock.close()
            raise

    def _in_loop(self, callback: Callable[..., object], *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            callback(*args)
        else:
            self._loop.call_soon_threadsafe(callback, *args)

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._attach, sock.fileno())

    def _attach(self, fd: int) -> None:
        if self._abandoned:  # connect() finished after the attempt timed out or was cancelled
            sock = self.client.socket()
            if sock is not None:
                sock.close()
            return
        self._fd = fd
        self._loop.add_reader(fd, self._on_readable)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._detach)

    def _detach(self) -> None:
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._fd = None

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._want_write, sock.fileno())

    def _want_write(self, fd: int) -> None:
        if not self._abandoned:
            self._loop.add_writer(fd, self._on_writable)

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        fd = sock.fileno()
        if fd >= 0:
            self._in_loop(self._loop.remove_writer, fd)

    # -- socket events (loop thread) -------------------------------------------------------

    def _on_readable(self) -> None:
        client = self.client
        sock = client.socket()
        if sock is None or self.lost.done():
            return
        paused = self.paused
        if paused is not None and paused():
            # Back-pressure: the broker keeps what we do not read (and TCP slows it down);
            # nothing is dropped here.
            if self._fd is not None and not self._pausing:
                self._pausing = True
                self._loop.remove_reader(self._fd)
                self._loop.call_later(_PAUSE_SECONDS, self._resume)
            return
        # One receive time for what this read gets, taken before reading: a message that
        # waited in the socket while the loop was busy is dated as early as we can know.
        self.read_at = read_at = self._clock()
        try:
            data = sock.recv(_READ_BYTES)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return  # nothing yet (or a TLS record is incomplete): the selector calls again
        except OSError as exc:
            self._read_error = exc  # paho reports it, as if it had read the socket itself
            data = b""
        else:
            if data:
                self._inbox += data
                with client._msgtime_mutex:  # what paho's keepalive check measures
                    client._last_bytes_received = mqtt.time_func()
            else:
                self._eof = True
        if not self._consume():
            return
        if self._read_error is not None or self._eof:
            self._hand_to_paho(b"")  # paho notices the lost connection and calls on_disconnect
            return
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            # TLS may hold decrypted bytes the selector cannot see: come back for them.
            self._loop.call_soon(self._on_readable)
        elif len(data) < _READ_BYTES and not self._input_waiting():
            self.caught_up_at = read_at
            self.backlog = False
        # PUBACKs go out from the writer callback, on a later loop turn: amqtt (the embedded
        # broker, in this very loop) registers its wait for a PUBACK only after sending the
        # PUBLISH, and drops an acknowledgement that comes sooner.

    def _resume(self) -> None:
        self._pausing = False
        if self._fd is None or self._abandoned or self.lost.done():
            return
        paused = self.paused
        if paused is not None and paused():
            self._pausing = True
            self._loop.call_later(_PAUSE_SECONDS, self._resume)
            return
        self._loop.add_reader(self._fd, self._on_readable)
        self._on_readable()

    def send_puback(self, mid: int) -> None:
        """Acknowledge one QoS 1 PUBLISH (ignored once the link is lost: the broker resends)."""
        if not self.lost.done() and self._fd is not None:
            self.client._send_puback(mid)

    def send_pubacks(self, mids: list[int]) -> None:
        """Acknowledge QoS 1 PUBLISHes, in this order, as one write (``send_puback`` each).

        A commit releases thousands at once: one queued buffer of PUBACK packets (4 bytes
        each, as paho builds them) is one socket write instead of one per message.
        """
        if not mids or self.lost.done() or self._fd is None:
            return
        if len(mids) == 1:
            self.client._send_puback(mids[0])
            return
        packet = b"".join([_PUBACK_HEAD + mid.to_bytes(2, "big") for mid in mids])
        self.client._packet_queue(mqtt.PUBACK, packet, 0, 0)

    def _consume(self) -> bool:
        """Handle every complete packet read so far; False once the link is lost.

        PUBLISH packets at QoS 0 and 1 (all but a few packets) are decoded here, without
        paho's per-message objects and one-byte reads; every other packet is handed to paho
        whole, and paho keeps the protocol state (CONNACK, SUBACK, PINGRESP, errors).
        """
        inbox = self._inbox
        end = len(inbox)
        pos = 0
        try:
            while pos < end:
                first = inbox[pos]
                length = 0
                shift = 0
                i = pos + 1
                while True:
                    if i >= end:
                        return True
                    byte = inbox[i]
                    i += 1
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                    if shift > 21:
                        self.fail(_ConnectionLost("malformed packet length from the broker"))
                        return False
                stop = i + length
                if stop > end:
                    return True  # the rest of the packet has not arrived yet
                if first & 0xF4 != 0x30 or length < 2:
                    # Not a QoS 0/1 PUBLISH (or a malformed one): paho's to handle.
                    packet = bytes(inbox[pos:stop])
                    pos = stop
                    if not self._hand_to_paho(packet):
                        return False
                    continue
                topic_end = i + 2 + (inbox[i] << 8 | inbox[i + 1])
                start = topic_end + 2 if first & 0x02 else topic_end
                if start > stop:
                    self.fail(_ConnectionLost("malformed PUBLISH from the broker"))
                    return False
                raw_topic = bytes(inbox[i + 2 : topic_end])
                try:
                    topic: str | bytes = raw_topic.decode()
                except UnicodeDecodeError:
                    topic = raw_topic
                payload = bytes(inbox[start:stop])
                pos = stop
                self.messages += 1
                mid = inbox[topic_end] << 8 | inbox[topic_end + 1] if first & 0x02 else None
                self._deliver(self, topic, payload, mid)
                if self.lost.done():  # after a sink bug, nothing more reaches the sink
                    return False
            return True
        finally:
            del inbox[:pos]

    def _hand_to_paho(self, packet: bytes) -> bool:
        """Let paho read one whole packet (b"": the end of the stream); False if the link ends."""
        self._for_paho = packet
        result = self.client.loop_read()
        self._for_paho = b""
        return result == MQTTErrorCode.MQTT_ERR_SUCCESS and not self.lost.done()

    def _paho_recv(self, bufsize: int) -> bytes:
        """paho's socket read (it reads one packet at a time), served from ``_for_paho``."""
        if self._for_paho:
            data, self._for_paho = self._for_paho[:bufsize], self._for_paho[bufsize:]
            return data
        if self._read_error is not None:
            raise self._read_error
        if self._eof:
            return b""
        raise BlockingIOError

    def _input_waiting(self) -> bool:
        """Whether bytes wait unread in the socket (or decrypted in its TLS layer)."""
        sock = self.client.socket()
        if sock is None:
            return False
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):  # closed under us: nothing more will be read
            return False
        return bool(readable)

    def received_until(self) -> float:
        """A time before which every message that reached this process has gone to the sink.

        Now, when nothing waits in the socket; else the start of the last read that left it
        empty. A busy loop delays reading, never the answer's truth: a heartbeat that arrived
        while the loop was blocked is still in the socket, and the time returned is older than it.
        """
        now = self._clock()
        if not self._input_waiting():
            self.caught_up_at = now
        return self.caught_up_at

    def _on_writable(self) -> None:
        self.client.loop_write()

    # -- paho protocol callbacks (loop thread) ---------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason: ReasonCode,
        properties: Any = None,
    ) -> None:
        if self.connack.done():
            return
        self.session_present = self.backlog = bool(getattr(flags, "session_present", False))
        if reason.is_failure:
            self.connack.set_exception(
                _ConnectionLost(f"broker refused the connection: {reason}", refused=True)
            )
        else:
            self.connack.set_result(None)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason: ReasonCode,
        properties: Any = None,
    ) -> None:
        self.fail(_ConnectionLost("connection lost"))

    def fail(self, exc: BaseException) -> None:
        """End the link with ``exc`` (a lost connection, or a bug to propagate)."""
        if not self.connack.done():
            self.connack.set_exception(exc)
            # The attempt may already have failed elsewhere, so that nobody awaits connack:
            # mark the exception retrieved, or asyncio logs it as never retrieved.
            self.connack.exception()
        if not self.lost.done():
            self.lost.set_exception(exc)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # Only for a PUBLISH _consume leaves to paho (QoS 2: never subscribed to).
        self.messages += 1
        try:
            topic: str | bytes = message.topic
        except UnicodeDecodeError:
            # paho exposes a non-UTF-8 topic only as the raw bytes behind the property.
            topic = message._topic
        if not self.lost.done():  # after a sink bug, nothing more reaches the sink
            # paho acknowledges what it handles itself (QoS 2: never subscribed to).
            self._deliver(self, topic, bytes(message.payload), None)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Any = None,
    ) -> None:
        waiter = self._subacks.pop(mid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(reasons)

    # -- requests ---------------------------------------------------------------------------

    async def subscribe(self, filters: list[tuple[str, int]]) -> None:
        """Subscribe to every filter in one SUBSCRIBE and wait for the SUBACK."""
        result, mid = self.client.subscribe(filters)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise _ConnectionLost(f"could not send SUBSCRIBE: {mqtt.error_string(result)}")
        waiter: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        self._subacks[mid] = waiter
        done, _ = await asyncio.wait((waiter, self.lost), return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            self.lost.result()  # raises why the link was lost
        refused = [
            f for (f, _), code in zip(filters, waiter.result(), strict=False) if code.is_failure
        ]
        if refused:
            raise _ConnectionLost(
                f"broker refused the subscription to {', '.join(refused)}", refused=True
            )

    async def keepalive(self) -> None:
        """Let paho send PINGREQs and notice a silent broker, until the link is lost."""
        while not self.lost.done():
            if self.client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            await asyncio.sleep(_MISC_INTERVAL_SECONDS)

    async def close(self) -> None:
        """Send DISCONNECT (when still connected) and release the socket."""
        connack = self.connack
        if (
            not self.lost.done()
            and connack.done()
            and not connack.cancelled()
            and connack.exception() is None
        ):
            self.client.disconnect()  # flushed by the writer callback, then paho closes
            try:
                async with asyncio.timeout(_DISCONNECT_GRACE_SECONDS):
                    await asyncio.wait((self.lost,))
            except TimeoutError:
                pass
        self._abandoned = True
        sock = self.client.socket()
        self._detach()
        if sock is not None:
            sock.close()
        if not self.lost.done():
            self.lost.set_result(None)
        elif not self.lost.cancelled():
            self.lost.exception()  # retrieved: the owner has already acted on it


class MqttIngest:
    """Subscribes to terminal status and heartbeat topics and feeds parsed messages to a sink.

    ``run()`` keeps a connection up (reconnecting with jittered exponential backoff), and for
    every message calls :meth:`handle`: malformed messages are counted in ``stats`` by reason
    and logged (rate-limited, never more than a short escaped payload prefix); accepted ones go
    to ``sink(message, receive_time)``. An exception from the sink is a bug: it ends ``run()``.

    Use ``await ingest.run()`` inside the application's TaskGroup and ``aclose()`` (or cancel)
    to stop; or ``async with MqttIngest(...) as ingest:`` to run it in a background task.

    Acknowledgements: a QoS 1 message is acknowledged once the sink has taken it, or, with
    ``ack_after_store``, only once :meth:`committed` says the rows of every accepted message up
    to it are stored; PUBACKs always go out in the order the messages came (MQTT requires it),
    so a rejected message or one that produced no row is acknowledged with the next commit.
    ``paused`` (when given) is asked before each read of the socket: while it says True the
    ingest reads nothing, and the broker holds the rest.
    """

    def __init__(
        self,
        settings: MqttSettings,
        sink: Sink,
        *,
        clock: Callable[[], float] = time.time,
        ack_after_store: bool = False,
        paused: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.stats = IngestStats()
        self._sink = sink
        self._clock = clock
        self._max_payload = settings.max_payload_bytes
        self._client_id = settings.client_id or default_client_id(settings.district)
        self._ack_after_store = ack_after_store
        self._paused = paused
        self._committed = 0
        # (accepted messages that must be committed first, packet id), in arrival order.
        self._acks: collections.deque[tuple[int, int]] = collections.deque()
        self._filters = [
            # Status topics are subscribed directly, never through $share: shared subscriptions
            # do not deliver retained messages.
            (terminal_filter(kind, settings.district, school), settings.qos)
            for school in (settings.schools if settings.schools is not None else ("+",))
            for kind in (KIND_STATUS, KIND_HEARTBEAT)
        ]
        self._closing = asyncio.Event()
        self._link: _Link | None = None
        self._active: _Link | None = None  # the link being set up or connected
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._last_warned: dict[str, float] = {}
        self._suppressed: dict[str, int] = dict.fromkeys(REASONS, 0)

    # -- the per-message path ----------------------------------------------------------------

    def handle(self, topic: str | bytes, payload: bytes, received_at: float | None = None) -> None:
        """Validate one received message and pass it to the sink, or count why it was rejected.

        This is exactly what ``run()`` does for every message. ``topic`` is bytes only when
        it is not valid UTF-8 (then it is rejected as ``bad_topic``). ``received_at`` is when
        the read that got it began (the clock's time now when not given).

        Raises:
            Exception: Whatever the sink raises (a bug); never for a malformed message.
        """
        stats = self.stats
        stats.received_total += 1
        now = self._clock() if received_at is None else received_at
        stats.last_message_at = now
        try:
            if len(payload) > self._max_payload:
                raise WireError(REASON_TOO_LARGE, f"{len(payload)} bytes")
            if type(topic) is not str:
                raise WireError(REASON_BAD_TOPIC, "topic is not UTF-8")
            message = parse_message(topic, payload)
        except WireError as exc:
            self._reject(topic, payload, exc)
            return
        except Exception as exc:
            # The parser promises WireError for any input; if it breaks that promise, the
            # message is still the sender's fault, and one terminal (or anyone allowed to
            # publish in the district) must not be able to stop the ingest for everyone.
            self._parser_bug(topic, payload, exc)
            return
        stats.accepted_total += 1
        stats.accepted_by_kind[KIND_HEARTBEAT if type(message) is Heartbeat else KIND_STATUS] += 1
        self._sink(message, now)

    def _parser_bug(self, topic: str | bytes, payload: bytes, exc: Exception) -> None:
        now = time.monotonic()
        last = self._last_warned.get("parser_bug")
        if last is None or now - last >= _WARN_EVERY_SECONDS:
            self._last_warned["parser_bug"] = now
            log.error(
                "edumon.wire raised %s instead of WireError for a message on %s (a parser bug; "
                "the message is rejected as bad_field); payload starts %r",
                type(exc).__name__,
                _escape_topic(topic),
                payload[:_LOG_PAYLOAD_BYTES],
                exc_info=exc,
            )
        self._reject(topic, payload, WireError(REASON_BAD_FIELD, f"parser {type(exc).__name__}"))

    def _reject(self, topic: str | bytes, payload: bytes, exc: WireError) -> None:
        reason = exc.reason
        self.stats.rejected_total[reason] += 1
        if reason == REASON_EMPTY:
            # An empty retained message is how a status topic is cleared: expected, not noise.
            log.debug("empty MQTT message on %s (a cleared retained status)", _escape_topic(topic))
            return
        now = time.monotonic()
        last = self._last_warned.get(reason)
        if last is not None and now - last < _WARN_EVERY_SECONDS:
            self._suppressed[reason] += 1
            log.debug("rejected MQTT message on %s: %s", _escape_topic(topic), exc)
            return
        self._last_warned[reason] = now
        suppressed, self._suppressed[reason] = self._suppressed[reason], 0
        log.warning(
            "rejected MQTT message on %s: %s; payload starts %r (%d bytes)%s",
            _escape_topic(topic),
            exc,
            payload[:_LOG_PAYLOAD_BYTES],
            len(payload),
            f"; {suppressed} more {reason!r} rejections since the last warning"
            if suppressed
            else "",
            extra={"reason": reason, "topic": _topic_field(topic)},
        )

    def _deliver(self, link: _Link, topic: str | bytes, payload: bytes, mid: int | None) -> None:
        try:
            self.handle(topic, payload, link.read_at)
        except Exception as exc:
            # Raising into paho would leave its packet state half-updated; end the link with
            # the exception instead, and run() re-raises it.
            link.fail(exc)
            return
        if mid is None:
            return
        needed = self.stats.accepted_total
        if not self._acks and needed <= self._committed:
            link.send_puback(mid)  # nothing earlier waits, and everything up to it is stored
            return
        self._acks.append((needed, mid))
        self.stats.acks_pending = len(self._acks)

    def _full(self) -> bool:
        paused = self._paused
        return len(self._acks) >= MAX_UNACKED or (paused is not None and paused())

    def committed(self, accepted: int) -> None:
        """The rows of the first ``accepted`` accepted messages are stored: acknowledge them.

        Called by the sink's owner after each commit (``ack_after_store``), in order, with
        the number of accepted messages its commit covers (every one before is covered too);
        the messages that came between them and produced no row go with them.
        """
        if accepted <= self._committed:
            return
        self._committed = accepted
        acks = self._acks
        mids: list[int] = []
        while acks and acks[0][0] <= accepted:
            mids.append(acks.popleft()[1])
        link = self._active
        if link is not None:
            link.send_pubacks(mids)
        self.stats.acks_pending = len(acks)

    def in_backlog(self) -> bool:
        """Whether the message being handled came in the backlog of a resumed session: what
        the broker queued while we were away (until the socket is first read empty)."""
        link = self._active
        return link is not None and link.backlog

    def received_until(self) -> float:
        """A time before which every message that reached this process has gone to the sink.

        What the collector judges silent terminals against (``Collector.expire_terminals``):
        the clock's time now, unless messages still wait in the socket (the loop was busy and
        has not read them yet); then the start of the last read that emptied it. Without a
        connection nothing is waiting: now.
        """
        link = self._link
        return self._clock() if link is None else link.received_until()

    # -- connection management -----------------------------------------------------------------

    async def run(self) -> None:
        """Connect, subscribe and feed the sink until ``aclose()`` (or cancellation).

        A failed or lost connection is logged (with ``host:port``, never credentials) and
        retried after a jittered, exponentially growing delay.

        Raises:
            Exception: What the sink raised (a bug).
            RuntimeError: Already running (an ingest runs once; after ``aclose()`` it returns
                at once).
        """
        if self._running:
            raise RuntimeError("MqttIngest.run() is already running")
        self._running = True
        failures = 0
        while not self._closing.is_set():
            try:
                await self._connection()
                return  # closed
            except _ConnectionLost as exc:
                lost = exc
            if lost.up_seconds is None:
                self.stats.connect_failures_total += 1
            elif lost.up_seconds >= _STABLE_SECONDS:
                # A stable connection reconnects after the shortest delay; one that keeps
                # dropping right away (say, another client with the same id) backs off like
                # a failed attempt.
                failures = 0
            base = min(
                self.settings.reconnect_max_seconds,
                self.settings.reconnect_min_seconds * 2.0**failures,
            )
            failures += 1
            # Jitter spreads out the reconnects of many collectors after a broker restart.
            delay = base * random.uniform(0.5, 1.0)
            log.log(
                logging.ERROR if lost.refused else logging.WARNING,
                "MQTT broker %s: %s%s; reconnecting in %.1f s",
                self.settings.address,
                lost,
                "" if lost.up_seconds is None else f" after {lost.up_seconds:.0f} s",
                delay,
            )
            try:
                async with asyncio.timeout(delay):
                    await self._closing.wait()
            except TimeoutError:
                pass

    async def _connection(self) -> None:
        """One connection: connect, subscribe, then serve until it is lost or closed.

        Returns when ``aclose()`` is called.

        Raises:
            _ConnectionLost: The connection could not be established, or was lost.
            Exception: What the sink raised (a bug).
        """
        link = _Link(self.settings, self._client_id, self._deliver, self._clock)
        link.paused = self._full
        # Messages come from CONNACK on (a resumed session's queue before our SUBSCRIBE).
        self._active = link
        if not self._ack_after_store:
            # Every accepted message counts as stored once the sink has it.
            self._committed = 1 << 62
        try:
            try:
                async with asyncio.timeout(self.settings.connect_timeout):
                    await asyncio.to_thread(link.blocking_connect)
                    await link.connack
                    await link.subscribe(self._filters)
            except TimeoutError:
                raise _ConnectionLost(
                    f"no answer within {self.settings.connect_timeout:g} s"
                ) from None
            except (OSError, ValueError) as exc:  # refused, unreachable, DNS, TLS, bad cert file
                raise _ConnectionLost(f"cannot connect: {exc}") from None
            up_since = time.monotonic()
            self._link = link
            self.stats.connected = True
            self.stats.connects_total += 1
            if self.stats.connects_total > 1:
                self.stats.reconnects_total += 1
            if link.session_present:
                self.stats.sessions_resumed_total += 1
            log.info(
                "MQTT ingest connected to %s as %s (%s)",
                self.settings.address,
                self._client_id,
                "session resumed"
                if link.session_present
                else ("new session" if not self.settings.clean_session else "clean session"),
            )
            async with asyncio.TaskGroup() as tasks:
                keepalive = tasks.create_task(link.keepalive(), name="mqtt-ingest-keepalive")
                closing = tasks.create_task(self._closing.wait(), name="mqtt-ingest-closing")
                await asyncio.wait((link.lost, closing), return_when=asyncio.FIRST_COMPLETED)
                keepalive.cancel()
                closing.cancel()
            if link.lost.done():
                try:
                    link.lost.result()
                except _ConnectionLost as exc:
                    exc.up_seconds = time.monotonic() - up_since
                    raise
        finally:
            self._link = self._active = None
            self.stats.connected = False
            # What this link did not acknowledge the broker sends again on the next one.
            self._acks.clear()
            self.stats.acks_pending = 0
            await link.close()

    async def aclose(self) -> None:
        """Disconnect cleanly and make ``run()`` return; waits for the background task."""
        self._closing.set()
        task, self._task = self._task, None
        if task is not None:
            await task

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self.run(), name="mqtt-ingest")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
