"""The agent's MQTT sessions: Will, birth, heartbeats, clean shutdown, jittered reconnects."""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import random
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.client import CleanStartOption
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edumon_terminal_agent import __version__, wire
from edumon_terminal_agent.config import AgentConfig
from edumon_terminal_agent.spool import Spool, SpoolError
from edumon_terminal_agent.sysinfo import Snapshot

logger = logging.getLogger(__name__)

# A session that stayed up this long was healthy: the next reconnect starts the backoff afresh.
# Shorter sessions (a broker that accepts then drops us, two agents fighting over one client id)
# keep growing the delay instead of reconnecting every second forever.
STABLE_SESSION_SECONDS: Final = 30.0
# The longest the main thread sleeps before looking at the stop flag again: a signal handler
# sets it, and on Windows a blocked wait is not woken by Ctrl+C.
_TICK: Final = 0.25
_SHUTDOWN_TIMEOUT: Final = 5.0

_UNSUPPORTED_PROTOCOL: Final = 0x84
_BAD_CREDENTIALS: Final = (0x86, 0x87)  # bad user name or password, not authorized
_SESSION_TAKEN_OVER: Final = 0x8E
# Spooled messages published and not yet acknowledged, at most: paho's own in-flight window.
_DRAIN_WINDOW: Final = 20


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]  # paho leaves it untyped


class Probe(Protocol):
    """Where heartbeats get their measurements (sysinfo.SystemProbe, or a fake in tests)."""

    def snapshot(self, local_ip: str | None) -> Snapshot:
        """Read the machine; ``local_ip`` is the local address of the broker connection."""
        ...


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based): "full jitter" backoff.

    Uniform in [0, min(maximum, initial * 2**attempt)]: after a broker restart every terminal of
    a city reconnects, and spreading them over the whole window is what keeps the broker up.
    """
    ceiling = min(maximum, initial * 2.0 ** min(attempt, 62))
    return rng.uniform(0.0, ceiling)


class BirthSequence:
    """bdSeq: one more for every MQTT session, kept in a file so that a restart continues it.

    If the file cannot be written (a read-only disk), the count goes on in memory and the
    failure is logged: the collector still tells sessions apart by the random boot id.
    """

    def __init__(self, path: Path) -> None:
        """Read the last value from ``path`` (missing: start at 0; unreadable: logged, 0)."""
        self._path = path
        self._last = -1
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return
        except OSError as exc:
            logger.warning("cannot read birth sequence %s (%s); starting at 0", path, exc)
            return
        try:
            value = int(text)
        except ValueError:
            logger.warning("birth sequence file %s is corrupt; starting at 0", path)
            return
        if 0 <= value < 2**53 - 1:
            self._last = value
        else:
            logger.warning("birth sequence %d in %s out of range; starting at 0", value, path)

    @property
    def last(self) -> int:
        """The value handed out last (-1 before the first)."""
        return self._last

    def next(self) -> int:
        """Advance, persist (atomically: write a temporary file, fsync, rename) and return."""
        self._last += 1
        temporary = self._path.with_name(self._path.name + ".tmp")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("w", encoding="ascii") as handle:
                handle.write(f"{self._last}\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self._path)
        except OSError as exc:
            logger.error("cannot save birth sequence to %s: %s", self._path, exc)
        return self._last


class Outcome(enum.Enum):
    """How one session ended."""

    STOPPED = "stopped"  # asked to stop: nothing more to do
    FAILED = "failed"  # never got a CONNACK: back off
    LOST = "lost"  # was connected, then lost the connection: back off
    DOWNGRADE = "downgrade"  # the broker does not speak MQTT 5: retry at once with 3.1.1


@dataclass
class _SessionEvents:
    """What the network thread tells the main thread (set in paho's callbacks)."""

    connected: threading.Event
    lost: threading.Event
    refused: ReasonCode | None = None
    disconnect_reason: ReasonCode | None = None

    def on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self.refused = reason_code
            self.lost.set()
        else:
            self.connected.set()

    def on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.disconnect_reason = reason_code
        self.lost.set()


class _Drain:
    """Sends the spool's backlog over one session: in order, QoS 1, at most ``rate`` a second.

    An entry leaves the spool when the broker has acknowledged it; whatever is unacknowledged
    when the session ends is sent again on the next one (at least once, in order).
    """

    def __init__(self, spool: Spool, rate: float) -> None:
        self._spool = spool
        self._rate = rate
        self._tokens = 1.0
        self._refilled = time.monotonic()
        self._last_sent = 0
        self._in_flight: list[tuple[int, mqtt.MQTTMessageInfo]] = []
        self.sent = 0
        self._empty_logged = len(spool) == 0
        if not self._empty_logged:
            logger.info("sending %d spooled heartbeats at %g/s", len(spool), rate)

    def acknowledged(self) -> None:
        """Remove what the broker acknowledged from the spool."""
        waiting: list[tuple[int, mqtt.MQTTMessageInfo]] = []
        for entry_id, info in self._in_flight:
            if not info.is_published():
                waiting.append((entry_id, info))
                continue
            try:
                self._spool.ack(entry_id)
            except SpoolError as exc:
                logger.warning("%s (sent again later)", exc)
        self._in_flight = waiting
        if not self._empty_logged and not self._in_flight and len(self._spool) == 0:
            logger.info("spool drained: %d heartbeats sent", self.sent)
            self._empty_logged = True

    def send(self, client: mqtt.Client) -> float:
        """Publish what the rate allows; returns the seconds until more may be sent."""
        now = time.monotonic()
        self._tokens = min(max(1.0, self._rate), self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        room = min(int(self._tokens), _DRAIN_WINDOW - len(self._in_flight))
        if room <= 0:
            return _TICK if self._tokens >= 1.0 else (1.0 - self._tokens) / self._rate
        try:
            entries = self._spool.peek(room, after=self._last_sent)
        except SpoolError as exc:
            logger.warning("%s", exc)
            return _TICK
        for entry in entries:
            info = client.publish(entry.topic, entry.payload, qos=1)
            self._in_flight.append((entry.id, info))
            self._last_sent = entry.id
            self._tokens -= 1.0
            self.sent += 1
        if not entries:
            return _TICK
        return max(0.0, (1.0 - self._tokens) / self._rate)


class TerminalAgent:
    """Publishes one terminal's birth, heartbeats and clean offline; the broker holds its Will."""

    def __init__(
        self,
        config: AgentConfig,
        probe: Probe,
        stop: threading.Event,
        rng: random.Random | None = None,
    ) -> None:
        """Create the agent; ``run`` does the work until ``stop`` is set.

        Args:
            config: Validated settings.
            probe: Source of the heartbeat's measurements.
            stop: Set (by a signal handler) to publish "offline", disconnect and return.
            rng: Randomness for the reconnect jitter (seeded in tests).
        """
        self._config = config
        self._probe = probe
        self._stop = stop
        self._rng = rng or random.Random()
        # Random per process start: seq restarts with the process, so the boot id must too.
        self._boot_id = uuid.uuid4().hex
        self._seq = 0
        self._birth_seq = BirthSequence(config.state_dir / f"birth-seq.{config.terminal}")
        self._protocol = config.mqtt.protocol
        self._status_topic = wire.terminal_topic(
            config.district, config.school, config.terminal, wire.KIND_STATUS
        )
        self._heartbeat_topic = wire.terminal_topic(
            config.district, config.school, config.terminal, wire.KIND_HEARTBEAT
        )
        # Heartbeats go on at this pace whether connected or not (monotonic clock); a connection
        # publishes one at once, so while the first is being made nothing is due yet.
        self._next_heartbeat = time.monotonic() + config.heartbeat_seconds
        self._local_ip: str | None = None
        self._spool: Spool | None = None  # opened by run(): --print-heartbeat writes no file
        self._spool_failed = False
        self.spool_lost = 0
        """Heartbeats neither sent nor spooled (the spool file could not be written)."""

    @property
    def boot_id(self) -> str:
        """This process's boot id."""
        return self._boot_id

    def run(self) -> None:
        """Connect, publish, reconnect with backoff, until the stop event is set."""
        mqtt_settings = self._config.mqtt
        logger.info(
            "terminal %s/%s/%s: broker %s:%d, boot id %s, agent %s",
            self._config.district,
            self._config.school,
            self._config.terminal,
            mqtt_settings.host,
            mqtt_settings.effective_port,
            self._boot_id,
            __version__,
        )
        self._open_spool()
        try:
            self._run()
        finally:
            if self._spool is not None:
                self._spool.close()
        logger.info("stopped")

    def _open_spool(self) -> None:
        path, max_bytes = self._config.spool_path, self._config.spool_max_bytes
        if max_bytes == 0:
            logger.info("spool disabled: heartbeats while disconnected are not kept")
            return
        try:
            self._spool = Spool(path, max_bytes)
        except SpoolError as exc:
            logger.error("%s; heartbeats while disconnected are not kept", exc)
            return
        if len(self._spool) or self._spool.dropped:
            logger.info(
                "spool %s: %d heartbeats waiting (%d bytes of %d), %d dropped when full",
                path,
                len(self._spool),
                self._spool.used_bytes,
                max_bytes,
                self._spool.dropped,
            )

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            outcome, connected_for = self._session()
            if outcome is Outcome.STOPPED or self._stop.is_set():
                break
            if outcome is Outcome.DOWNGRADE:
                continue
            if connected_for >= STABLE_SESSION_SECONDS:
                attempt = 0
            delay = backoff_delay(
                attempt,
                self._config.reconnect_min_seconds,
                self._config.reconnect_max_seconds,
                self._rng,
            )
            attempt += 1
            logger.info("reconnecting in %.1f s", delay)
            self._sleep(delay)

    def _sleep(self, seconds: float) -> None:
        """Wait while disconnected, spooling the heartbeats that fall due meanwhile."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            self._offline_heartbeat()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._stop.wait(
                max(0.0, min(remaining, _TICK, self._next_heartbeat - time.monotonic()))
            )

    def _heartbeat_due(self) -> bool:
        """Whether a heartbeat is due now; if so, schedules the next one."""
        now = time.monotonic()
        if now < self._next_heartbeat:
            return False
        self._next_heartbeat += self._config.heartbeat_seconds
        if self._next_heartbeat <= now:
            # Never catch up in a burst after a stall: the next is an interval from now.
            self._next_heartbeat = now + self._config.heartbeat_seconds
        return True

    def _offline_heartbeat(self) -> None:
        """Spool a heartbeat if one is due: the terminal is up, the broker out of reach.

        It carries the session it was observed in (the last one tried), ``hist`` true, and is
        sent after the live messages once a connection is back (docs/wire-protocol.md).
        """
        if self._spool is None or not self._heartbeat_due():
            return
        heartbeat = self._heartbeat(max(self._birth_seq.last, 0), self._local_ip, historical=True)
        self._spool_put(heartbeat)

    def _spool_put(self, heartbeat: wire.Heartbeat) -> None:
        spool = self._spool
        assert spool is not None
        dropped = spool.dropped
        try:
            spool.put(self._heartbeat_topic, wire.encode_heartbeat(heartbeat))
            logger.debug(
                "spooled heartbeat seq %d (boot %s, bd_seq %d)",
                heartbeat.seq,
                heartbeat.boot_id,
                heartbeat.birth_seq,
            )
        except SpoolError as exc:
            self.spool_lost += 1
            if not self._spool_failed:
                logger.error("%s: heartbeats while disconnected are lost until it works", exc)
            self._spool_failed = True
            return
        if self._spool_failed:
            logger.info("spool %s writable again (%d heartbeats lost)", spool.path, self.spool_lost)
            self._spool_failed = False
        if spool.dropped != dropped:
            logger.warning(
                "spool full (%d bytes): dropped the oldest heartbeat(s); %d dropped in all",
                spool.max_bytes,
                spool.dropped,
            )

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _status(self, state: wire.TerminalState, reason: wire.StatusReason, bd: int) -> bytes:
        return wire.encode_status(
            wire.Status(
                district=self._config.district,
                school=self._config.school,
                terminal=self._config.terminal,
                state=state,
                reason=reason,
                boot_id=self._boot_id,
                seq=self._next_seq(),
                birth_seq=bd,
                observed_at=time.time(),
                agent_version=__version__,
            )
        )

    def heartbeat_payload(self, birth_seq: int, local_ip: str | None) -> bytes:
        """A heartbeat built from a fresh snapshot (also used by ``--print-heartbeat``)."""
        return wire.encode_heartbeat(self._heartbeat(birth_seq, local_ip))

    def _heartbeat(
        self, birth_seq: int, local_ip: str | None, *, historical: bool = False
    ) -> wire.Heartbeat:
        snap = self._probe.snapshot(local_ip)
        link = snap.link
        return wire.Heartbeat(
            district=self._config.district,
            school=self._config.school,
            terminal=self._config.terminal,
            boot_id=self._boot_id,
            seq=self._next_seq(),
            birth_seq=birth_seq,
            observed_at=time.time(),
            uptime_seconds=snap.uptime_seconds,
            agent_version=__version__,
            nic=link.name,
            link_speed_mbps=link.speed_mbps,
            duplex=link.duplex,
            ip=link.ip,
            mac=link.mac,
            cpu_percent=snap.cpu_percent,
            memory_used_bytes=snap.memory_used_bytes,
            memory_total_bytes=snap.memory_total_bytes,
            disk_used_bytes=snap.disk_used_bytes,
            disk_total_bytes=snap.disk_total_bytes,
            historical=historical,
        )

    def _client(self, birth_seq: int) -> mqtt.Client:
        settings = self._config.mqtt
        v5 = self._protocol != "3.1.1"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._config.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else True,
            # One client per session: this agent owns reconnecting (jitter, a new Will each time).
            reconnect_on_failure=False,
        )
        if logger.isEnabledFor(logging.DEBUG):
            client.enable_logger(logging.getLogger(__name__ + ".paho"))
        client.connect_timeout = settings.connect_timeout_seconds
        if settings.username is not None:
            password = settings.password.reveal() if settings.password is not None else None
            client.username_pw_set(settings.username, password)
        if settings.tls:
            client.tls_set_context(self._tls_context())
        will_properties: Properties | None = None
        if v5 and settings.will_delay_seconds > 0:
            will_properties = _properties(PacketTypes.WILLMESSAGE)
            will_properties.WillDelayInterval = settings.will_delay_seconds
        client.will_set(
            self._status_topic,
            self._status("offline", "will", birth_seq),
            qos=1,
            retain=True,
            properties=will_properties,
        )
        return client

    def _tls_context(self) -> ssl.SSLContext:
        settings = self._config.mqtt
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file is not None else None
        )
        if settings.cert_file is not None:
            context.load_cert_chain(
                str(settings.cert_file),
                str(settings.key_file) if settings.key_file is not None else None,
            )
        return context

    def _session(self) -> tuple[Outcome, float]:
        """One MQTT session: connect with a fresh Will, birth, heartbeats until lost or stopped."""
        settings = self._config.mqtt
        birth_seq = self._birth_seq.next()
        v5 = self._protocol != "3.1.1"
        client = self._client(birth_seq)
        events = _SessionEvents(threading.Event(), threading.Event())
        client.on_connect = events.on_connect
        client.on_disconnect = events.on_disconnect
        connect_properties: Properties | None = None
        clean_start: CleanStartOption = mqtt.MQTT_CLEAN_START_FIRST_ONLY
        if v5:
            # A delayed Will is only held while the session lives, so the session must outlive
            # the delay; resuming it (clean start off) within the delay cancels the Will: that is
            # the debounce of a Wi-Fi flap. Without a delay, nothing is worth keeping.
            clean_start = settings.will_delay_seconds == 0
            if settings.will_delay_seconds > 0:
                connect_properties = _properties(PacketTypes.CONNECT)
                connect_properties.SessionExpiryInterval = settings.will_delay_seconds
        try:
            client.connect(
                settings.host,
                settings.effective_port,
                keepalive=settings.keepalive_seconds,
                clean_start=clean_start,
                properties=connect_properties,
            )
        except (OSError, ValueError) as exc:  # ssl.SSLError and socket timeouts are OSErrors
            logger.warning(
                "cannot connect to %s:%d: %s", settings.host, settings.effective_port, exc
            )
            return Outcome.FAILED, 0.0
        client.loop_start()
        try:
            return self._connected_session(client, events, birth_seq, v5)
        finally:
            client.loop_stop()

    def _connected_session(
        self, client: mqtt.Client, events: _SessionEvents, birth_seq: int, v5: bool
    ) -> tuple[Outcome, float]:
        settings = self._config.mqtt
        deadline = time.monotonic() + settings.connect_timeout_seconds
        while not events.connected.is_set():
            self._offline_heartbeat()
            if events.lost.is_set() or self._stop.is_set() or time.monotonic() > deadline:
                return self._not_connected(client, events, v5)
            events.connected.wait(_TICK)
        connected_at = time.monotonic()
        sock = client.socket()
        # The address our broker traffic leaves from: how the NIC is found without a default
        # route table to read (Windows).
        local_ip = str(sock.getsockname()[0]) if isinstance(sock, socket.socket) else None
        self._local_ip = local_ip
        logger.info(
            "connected (MQTT %s) as %s; birth sequence %d",
            "5" if v5 else "3.1.1",
            self._config.client_id,
            birth_seq,
        )
        if v5 and self._protocol == "auto":
            self._protocol = "5"  # it worked: do not fall back to 3.1.1 on a later failure
        # Birth first, then the current heartbeat, then the backlog (docs/wire-protocol.md).
        client.publish(
            self._status_topic, self._status("online", "birth", birth_seq), qos=1, retain=True
        )
        self._next_heartbeat = time.monotonic()
        drain = _Drain(self._spool, self._config.spool_drain_per_second) if self._spool else None
        # Live QoS 1 heartbeats not acknowledged yet: spooled as historical if the session ends.
        live: list[tuple[wire.Heartbeat, mqtt.MQTTMessageInfo]] = []
        qos = settings.heartbeat_qos
        while True:
            if drain is not None:
                drain.acknowledged()
            live = [(hb, info) for hb, info in live if not info.is_published()]
            if self._stop.is_set():
                self._shutdown(client, events, birth_seq, v5)
                if drain is not None:
                    drain.acknowledged()
                return Outcome.STOPPED, time.monotonic() - connected_at
            if events.lost.is_set():
                self._log_loss(events)
                if self._spool is not None:
                    for heartbeat, _info in live:
                        self._spool_put(dataclasses.replace(heartbeat, historical=True))
                return Outcome.LOST, time.monotonic() - connected_at
            if self._heartbeat_due():
                heartbeat = self._heartbeat(birth_seq, local_ip)
                info = client.publish(
                    self._heartbeat_topic, wire.encode_heartbeat(heartbeat), qos=qos
                )
                if qos and self._spool is not None:
                    live.append((heartbeat, info))
            wait = min(_TICK, self._next_heartbeat - time.monotonic())
            if drain is not None:
                wait = min(wait, drain.send(client))
            self._stop.wait(max(0.0, wait))

    def _not_connected(
        self, client: mqtt.Client, events: _SessionEvents, v5: bool
    ) -> tuple[Outcome, float]:
        settings = self._config.mqtt
        where = f"{settings.host}:{settings.effective_port}"
        if self._stop.is_set():
            client.disconnect()
            return Outcome.STOPPED, 0.0
        refused = events.refused
        if refused is None:
            logger.warning("no answer to CONNECT from %s", where)
            client.disconnect()
            return Outcome.FAILED, 0.0
        if refused.value == _UNSUPPORTED_PROTOCOL and v5 and self._protocol == "auto":
            logger.info("%s does not support MQTT 5; using MQTT 3.1.1", where)
            self._protocol = "3.1.1"
            return Outcome.DOWNGRADE, 0.0
        if refused.value in _BAD_CREDENTIALS:
            logger.error(
                "%s refused user %r: %s (check mqtt.username and the password)",
                where,
                settings.username,
                refused,
            )
        else:
            logger.warning("%s refused the connection: %s", where, refused)
        return Outcome.FAILED, 0.0

    def _log_loss(self, events: _SessionEvents) -> None:
        reason = events.disconnect_reason
        if reason is not None and reason.value == _SESSION_TAKEN_OVER:
            logger.warning(
                "another client connected as %s and took over the session: two agents "
                "configured with the same terminal id?",
                self._config.client_id,
            )
        else:
            logger.warning("connection lost (%s)", reason if reason is not None else "unknown")

    def _shutdown(
        self, client: mqtt.Client, events: _SessionEvents, birth_seq: int, v5: bool
    ) -> None:
        """Publish "offline" ourselves and disconnect normally, which discards the Will."""
        info = client.publish(
            self._status_topic, self._status("offline", "shutdown", birth_seq), qos=1, retain=True
        )
        try:
            info.wait_for_publish(timeout=_SHUTDOWN_TIMEOUT)
        except (RuntimeError, ValueError) as exc:
            logger.warning("offline status not acknowledged: %s", exc)
        properties: Properties | None = None
        if v5 and self._config.mqtt.will_delay_seconds > 0:
            # End the kept session now rather than leaving it to expire on the broker.
            properties = _properties(PacketTypes.DISCONNECT)
            properties.SessionExpiryInterval = 0
        result = client.disconnect(properties=properties)
        if result == MQTTErrorCode.MQTT_ERR_SUCCESS:
            events.lost.wait(_SHUTDOWN_TIMEOUT)
        logger.info("published offline; disconnected")
