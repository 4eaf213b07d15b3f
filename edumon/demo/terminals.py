"""Simulated classroom terminals for the demo: real MQTT clients speaking the wire protocol.

Each terminal is a paho-mqtt client (the library the ingest and the terminal agent use) running
paho's own network loop in a thread: the demo has a few dozen of them, each publishing one
heartbeat every few seconds, so a thread apiece is simple and costs nothing that matters. paho
reconnects by itself (the broker starts with the daemon, a moment after the terminals); each
connection is a new session with a higher birth sequence and a Last Will of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edumon import __version__, wire

logger = logging.getLogger(__name__)

_KEEPALIVE_SECONDS = 60
# Between connection attempts while the broker is not up yet (or gone): quick, but not a spin.
_RECONNECT_MIN_SECONDS = 1
_RECONNECT_MAX_SECONDS = 2


@dataclass(frozen=True, slots=True)
class TerminalPlan:
    """One simulated terminal: where it is and how it behaves."""

    district: str
    school: str
    terminal: str
    link_speed_mbps: int = 1000
    switched_on: bool = True
    """False: the panel stays off all day (never connects)."""
    drops_after_seconds: float | None = None
    """Goes silent (a power cut: no Will, no goodbye) this long after the demo starts."""
    username: str | None = None
    """The broker account (the school's), or None for an anonymous broker."""
    password: str | None = field(default=None, repr=False)


class SimulatedTerminal:
    """A 班班通 terminal: retained birth with a Last Will at each connection, then heartbeats."""

    def __init__(
        self, plan: TerminalPlan, host: str, port: int, *, heartbeat_seconds: float
    ) -> None:
        self.plan = plan
        self._host = host
        self._port = port
        self._heartbeat = heartbeat_seconds
        self._boot = secrets.token_hex(8)
        self._birth_seq = 0
        # Messages are numbered from two threads (paho's, for births; the loop's, for
        # heartbeats): next() on a count is atomic where ``+= 1`` is not.
        self._seq = itertools.count(1)
        self._started = time.monotonic()
        self._mac = "02:00:" + ":".join(f"{random.randrange(256):02x}" for _ in range(4))
        self._connected = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _status(self, online: bool, reason: wire.StatusReason) -> bytes:
        return wire.encode_status(
            wire.Status(
                district=self.plan.district,
                school=self.plan.school,
                terminal=self.plan.terminal,
                state="online" if online else "offline",
                reason=reason,
                boot_id=self._boot,
                seq=next(self._seq),
                birth_seq=self._birth_seq,
                observed_at=time.time(),
                agent_version=__version__,
            )
        )

    def _heartbeat_payload(self) -> bytes:
        uptime = time.monotonic() - self._started
        return wire.encode_heartbeat(
            wire.Heartbeat(
                district=self.plan.district,
                school=self.plan.school,
                terminal=self.plan.terminal,
                boot_id=self._boot,
                seq=next(self._seq),
                birth_seq=self._birth_seq,
                observed_at=time.time(),
                uptime_seconds=round(uptime, 1),
                agent_version=__version__,
                nic="eth0",
                link_speed_mbps=self.plan.link_speed_mbps,
                duplex="full",
                ip="127.0.0.1",
                mac=self._mac,
                cpu_percent=round(random.uniform(3, 25), 1),
                memory_used_bytes=3 * 2**30,
                memory_total_bytes=8 * 2**30,
                disk_used_bytes=60 * 2**30,
                disk_total_bytes=256 * 2**30,
            )
        )

    def _topic(self, kind: wire.Kind) -> str:
        return wire.terminal_topic(self.plan.district, self.plan.school, self.plan.terminal, kind)

    # paho's callbacks run in its network thread.

    def _on_pre_connect(self, client: mqtt.Client, _userdata: Any) -> None:
        # A new session: a higher birth sequence, so the collector can tell this session's
        # Will from an older one's.
        self._birth_seq += 1
        client.will_set(self._topic("status"), self._status(False, "will"), qos=1, retain=True)

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Any,
    ) -> None:
        if reason_code.is_failure:
            logger.debug("simulated terminal %s: refused (%s)", self.plan.terminal, reason_code)
            return
        client.publish(self._topic("status"), self._status(True, "birth"), qos=1, retain=True)
        self._set_connected(True)

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        _properties: Any,
    ) -> None:
        logger.debug("simulated terminal %s: disconnected (%s)", self.plan.terminal, reason_code)
        self._set_connected(False)

    def _set_connected(self, connected: bool) -> None:
        loop = self._loop
        if loop is None:
            return
        action = self._connected.set if connected else self._connected.clear
        # The loop may be closing while paho's thread still reports: nothing left to tell.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(action)

    def _client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"demo-{self.plan.school}-{self.plan.terminal}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        # No enable_logger(): paho logs every failed reconnect attempt at ERROR, noise for a
        # demo whose broker stops before its terminals; on_connect/on_disconnect say enough.
        client.reconnect_delay_set(_RECONNECT_MIN_SECONDS, _RECONNECT_MAX_SECONDS)
        if self.plan.username is not None:
            client.username_pw_set(self.plan.username, self.plan.password)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        return client

    async def run(self) -> None:
        """Publish until cancelled, or go silent when the plan says the power goes."""
        if not self.plan.switched_on:
            return
        self._loop = asyncio.get_running_loop()
        client = self._client()
        # Connects (and reconnects) in paho's network thread: never blocks the event loop.
        client.connect_async(self._host, self._port, keepalive=_KEEPALIVE_SECONDS)
        client.loop_start()
        try:
            deadline = (
                None
                if self.plan.drops_after_seconds is None
                else self._started + self.plan.drops_after_seconds
            )
            while deadline is None or time.monotonic() < deadline:
                await self._connected.wait()
                # Not connected any more (a broker restart): the next session's birth follows.
                if client.is_connected():
                    client.publish(self._topic("heartbeat"), self._heartbeat_payload(), qos=0)
                await asyncio.sleep(self._heartbeat)
            logger.info(
                "simulated terminal %s/%s lost power (it sends nothing more)",
                self.plan.school,
                self.plan.terminal,
            )
            # A terminal without power sends nothing; the collector must notice by the
            # missing heartbeats (paho's loop keeps the connection itself alive).
            await asyncio.Event().wait()
        finally:
            # A clean disconnect: the broker drops the Will, as when the demo is stopped.
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
            self._loop = None


class SimulatedTerminals:
    """All the demo's terminals, each its own MQTT connection, in named tasks."""

    def __init__(
        self, plans: list[TerminalPlan], host: str, port: int, *, heartbeat_seconds: float
    ) -> None:
        self._terminals = [
            SimulatedTerminal(p, host, port, heartbeat_seconds=heartbeat_seconds) for p in plans
        ]
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start every switched-on terminal; each connects as soon as the broker is up."""
        self._tasks = [
            asyncio.create_task(t.run(), name=f"demo-terminal:{t.plan.school}:{t.plan.terminal}")
            for t in self._terminals
        ]

    async def stop(self) -> None:
        """Disconnect every terminal cleanly and stop their network threads."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
