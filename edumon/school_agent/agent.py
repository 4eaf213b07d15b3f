"""The school agent: the collector's SNMP poller, a disk spool, and an MQTT link that drains it.

Every poll (and terminal probe) becomes one ``poll`` message that is written to the spool
before anything is sent, and leaves the spool only when the broker acknowledges it (PUBACK,
QoS 1). While the broker is unreachable polling goes on into the spool. On every (re)connect
the agent publishes its birth, then the newest poll of each switch (current state), then the
backlog in order, rate-limited and marked ``"hist": true`` (docs/wire-protocol.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edumon import __version__
from edumon.domain import observation_codec as codec
from edumon.domain.models import Observation
from edumon.school_agent.config import AgentConfig
from edumon.school_agent.probes import probe
from edumon.sources.snmp.poller import SnmpPoller
from edumon.spool import Spool, SpoolError
from edumon.wire import (
    KIND_POLL,
    KIND_STATUS,
    AgentStatus,
    PollReport,
    StatusReason,
    TerminalState,
    agent_topic,
    encode_agent_status,
    encode_poll,
)

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_SECONDS = 10.0
_PEEK = 50


class _LinkLost(Exception):
    """The broker connection failed or ended (retried after a backoff)."""


@dataclass(slots=True)
class AgentStats:
    """The agent's own counts (logged; its status payload carries the spool's)."""

    polls_spooled: int = 0
    spool_errors: int = 0
    """Polls the spool could not keep (disk full, read-only): lost, and logged."""
    published: int = 0
    acked: int = 0
    historical_sent: int = 0
    connects: int = 0


class SchoolAgent:
    """Polls one school's switches and reports them over MQTT through a disk spool.

    Args:
        config: the validated agent configuration.
        clock: wall clock (Unix seconds) for observation times.
    """

    def __init__(self, config: AgentConfig, *, clock: Any = time.time) -> None:
        self.config = config
        a = config.agent
        self.boot_id = uuid.uuid4().hex[:16]
        self._clock = clock
        self._seq = 0
        """Poll reports of this process: the collector counts a gap in them as loss."""
        self._status_seq = 0
        """Status messages (births, Wills, shutdowns) of this process: counted apart, since a
        Will is created at every connect but only published when a connection dies."""
        self._bd_seq = 0
        self.spool = Spool(a.spool_path, a.spool_max_bytes)
        self.stats = AgentStats()
        self._poll_topic = agent_topic(a.district, a.school, a.id, KIND_POLL)
        self._status_topic = agent_topic(a.district, a.school, a.id, KIND_STATUS)
        # The newest spool entry of each switch (and probed terminal) of this process: the
        # "current state" sent first after a reconnect.
        self._latest: dict[str, int] = {}
        self._last_put = 0
        self._wake = asyncio.Event()
        self._stopping = False

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _next_status_seq(self) -> int:
        self._status_seq += 1
        return self._status_seq

    # --- spooling ----------------------------------------------------------------------------

    def _spool(self, key: str, observed_at: float, obs: dict[str, Any]) -> None:
        a = self.config.agent
        report = PollReport(
            district=a.district,
            school=a.school,
            agent=a.id,
            boot_id=self.boot_id,
            seq=self._next_seq(),
            observed_at=observed_at,
            agent_version=__version__,
            historical=False,
            observation=obs,
        )
        try:
            spool_id = self.spool.put(self._poll_topic, encode_poll(report))
        except SpoolError as exc:
            # The poll is lost, and said so: the collector sees the gap in seq as loss too.
            self.stats.spool_errors += 1
            log.error(
                "轮询结果无法写入缓存，已丢失 / poll %d not spooled, lost: %s", report.seq, exc
            )
            return
        self._latest[key] = self._last_put = spool_id
        self.stats.polls_spooled += 1
        self._wake.set()
        log.debug("spooled poll seq %d of %s as %d", report.seq, key, spool_id)

    async def _observation(self, obs: Observation) -> None:
        self._spool(f"switch:{obs.device_id}", obs.at, codec.encode(obs))

    async def _probe_forever(self) -> None:
        probes = self.config.probes
        if not probes:
            return
        interval = min(30.0, self.config.agent.interval_seconds)
        while True:
            for p in probes:
                result = await probe(p.host, p.method, p.tcp_port)
                at = self._clock()
                terminal_probe = codec.TerminalProbe(
                    p.terminal, at, result.up, result.method, result.rtt_seconds
                )
                self._spool(f"terminal:{p.terminal}", at, codec.encode_probe(terminal_probe))
            await asyncio.sleep(interval)

    # --- the MQTT link -----------------------------------------------------------------------

    def _status(self, state: TerminalState, reason: StatusReason) -> bytes:
        a = self.config.agent
        return encode_agent_status(
            AgentStatus(
                district=a.district,
                school=a.school,
                agent=a.id,
                state=state,
                reason=reason,
                boot_id=self.boot_id,
                seq=self._next_status_seq(),
                birth_seq=self._bd_seq,
                observed_at=self._clock(),
                agent_version=__version__,
                spool_pending=self.spool.pending,
                spool_dropped=self.spool.dropped,
            )
        )

    def _client(self, loop: asyncio.AbstractEventLoop, link: _Link) -> mqtt.Client:
        m = self.config.mqtt
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"edumon-agent-{self.config.agent.id}",
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=True,
        )
        client.max_inflight_messages_set(self.config.agent.max_inflight_messages)
        client.will_set(self._status_topic, self._status("offline", "will"), qos=1, retain=True)
        if m.username is not None:
            password = m.password.get_secret_value() if m.password is not None else None
            client.username_pw_set(m.username, password)
        if m.tls is not None:
            context = ssl.create_default_context(
                cafile=str(m.tls.ca_file) if m.tls.ca_file else None
            )
            if m.tls.cert_file is not None and m.tls.key_file is not None:
                context.load_cert_chain(m.tls.cert_file, m.tls.key_file)
            client.tls_set_context(context)

        def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
            loop.call_soon_threadsafe(link.connected, not rc.is_failure, str(rc))

        def on_disconnect(
            _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
        ) -> None:
            loop.call_soon_threadsafe(link.lost, str(rc))

        def on_publish(_c: mqtt.Client, _u: object, mid: int, _rc: ReasonCode, _p: object) -> None:
            # PUBACK arrived (paho's network thread): handled on the loop, after publish()
            # has returned and the mid is known there.
            loop.call_soon_threadsafe(link.acked, mid)

        def on_connect_fail(_c: mqtt.Client, _u: object) -> None:
            loop.call_soon_threadsafe(link.lost, "connection refused or unreachable")

        client.on_connect = on_connect
        client.on_connect_fail = on_connect_fail
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        return client

    async def _session(self) -> None:
        """One MQTT connection: birth, current state, then the spool, until it fails."""
        loop = asyncio.get_running_loop()
        m = self.config.mqtt
        self._bd_seq += 1
        link = _Link(self.spool)
        client = self._client(loop, link)
        port = m.port or (8883 if m.tls is not None else 1883)
        client.reconnect_delay_set(1, 1)
        try:
            client.connect_async(m.host, port, keepalive=m.keepalive)
            client.loop_start()
            try:
                async with asyncio.timeout(_CONNECT_TIMEOUT_SECONDS):
                    await link.ready.wait()
            except TimeoutError:
                raise _LinkLost(f"no CONNACK from {m.host}:{port}") from None
            if not link.ok:
                raise _LinkLost(f"broker {m.host}:{port} refused the connection: {link.reason}")
            self.stats.connects += 1
            log.info(
                "connected to %s:%d; %d polls waiting in the spool (%d dropped so far)",
                m.host,
                port,
                self.spool.pending,
                self.spool.dropped,
            )
            client.publish(self._status_topic, self._status("online", "birth"), qos=1, retain=True)
            await self._send_all(client, link)
        finally:
            client.loop_stop()
            with contextlib.suppress(Exception):
                client.disconnect()

    def _publish(self, client: mqtt.Client, link: _Link, spool_id: int, payload: bytes) -> None:
        info = client.publish(self._poll_topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise _LinkLost(f"publish failed: {mqtt.error_string(info.rc)}")
        link.inflight[info.mid] = spool_id
        self.stats.published += 1

    async def _send_all(self, client: mqtt.Client, link: _Link) -> None:
        sent: set[int] = set()
        current = set(self._latest.values())
        # Current state first: the newest poll of each switch, as it was spooled (not history).
        for spool_id in sorted(current):
            entry = self.spool.get(spool_id)
            if entry is not None:
                await link.room(self.config.agent.max_inflight_messages)
                self._publish(client, link, spool_id, entry.payload)
                sent.add(spool_id)
        backlog_end = self._last_put
        gap = 1.0 / self.config.agent.drain_per_second
        cursor = 0
        while True:
            link.check()
            entries = [e for e in self.spool.peek(_PEEK, after=cursor) if e.id not in sent]
            if not entries:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
                # Drop ids the spool no longer holds from the sent set (bounded memory).
                sent = {i for i in sent if i > cursor}
                continue
            for entry in entries:
                cursor = entry.id
                await link.room(self.config.agent.max_inflight_messages)
                link.check()
                historical = entry.id <= backlog_end and entry.id not in current
                payload = _historical(entry.payload) if historical else entry.payload
                self._publish(client, link, entry.id, payload)
                if historical:
                    self.stats.historical_sent += 1
                    await asyncio.sleep(gap)  # rate limit: the uplink just came back

    async def _link_forever(self) -> None:
        attempt = 0
        cap = self.config.mqtt.reconnect_max_seconds
        rng = random.Random()
        while True:
            started = time.monotonic()
            try:
                await self._session()
            except _LinkLost as exc:
                log.warning("MQTT link: %s; polling goes on into the spool", exc)
            except OSError as exc:
                log.warning("MQTT link: %s; polling goes on into the spool", exc)
            if time.monotonic() - started > 30:
                attempt = 0
            delay = min(cap, 0.5 * 2**attempt) * rng.uniform(0.8, 1.0)
            attempt += 1
            await asyncio.sleep(delay)

    # --- running -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll, probe and publish until ``stop`` is set."""
        a = self.config.agent
        log.info(
            "school agent %s (school %s, boot %s): %d switches every %g s, %d probes",
            a.id,
            a.school,
            self.boot_id,
            len(self.config.switches),
            a.interval_seconds,
            len(self.config.probes),
        )
        async with (
            SnmpPoller(
                self.config.switches, max_in_flight=a.max_in_flight, clock=self._clock
            ) as poller,
            asyncio.TaskGroup() as tg,
        ):
            tasks = [
                tg.create_task(poller.run(a.interval_seconds, self._observation), name="poll"),
                tg.create_task(self._probe_forever(), name="probes"),
                tg.create_task(self._link_forever(), name="mqtt-link"),
            ]
            await stop.wait()
            for task in tasks:
                task.cancel()
        await self._goodbye()
        self.spool.close()

    async def _goodbye(self) -> None:
        """A clean shutdown's retained ``offline`` status (best effort, within 3 s)."""
        m = self.config.mqtt
        loop = asyncio.get_running_loop()
        link = _Link(self.spool)
        client = self._client(loop, link)
        try:
            client.connect_async(m.host, m.port or 1883, keepalive=m.keepalive)
            client.loop_start()
            async with asyncio.timeout(3.0):
                await link.ready.wait()
                if link.ok:
                    info = client.publish(
                        self._status_topic, self._status("offline", "shutdown"), qos=1, retain=True
                    )
                    link.inflight[info.mid] = 0
                    await link.room(1)
        except (TimeoutError, OSError, _LinkLost):
            log.info("could not publish the shutdown status; the broker publishes the Will")
        finally:
            client.loop_stop()
            with contextlib.suppress(Exception):
                client.disconnect()


class _Link:
    """One connection's state, updated on the loop from paho's thread."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.ready = asyncio.Event()
        self.ok = False
        self.reason = ""
        self.down = False
        self.inflight: dict[int, int] = {}
        self._room = asyncio.Event()

    def connected(self, ok: bool, reason: str) -> None:
        self.ok = ok
        self.reason = reason
        self.ready.set()
        if not ok:
            self.down = True

    def lost(self, reason: str) -> None:
        self.down = True
        self.reason = reason
        self.ready.set()
        self._room.set()

    def acked(self, mid: int) -> None:
        spool_id = self.inflight.pop(mid, None)
        if spool_id:
            try:
                self.spool.ack(spool_id)
            except SpoolError as exc:  # it stays spooled and is sent again; the collector dedups
                log.warning("acknowledged poll not removed from the spool: %s", exc)
        self._room.set()

    def check(self) -> None:
        if self.down:
            raise _LinkLost(f"connection lost ({self.reason})")

    async def room(self, limit: int) -> None:
        """Wait until fewer than ``limit`` messages await their PUBACK."""
        while len(self.inflight) >= limit:
            self.check()
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._room.wait()
        self.check()


def _historical(payload: bytes) -> bytes:
    data = json.loads(payload)
    data["hist"] = True
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
