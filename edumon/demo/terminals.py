"""Simulated classroom terminals for the demo: real MQTT clients speaking the wire protocol."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from dataclasses import dataclass

import aiomqtt

from edumon import __version__, wire

logger = logging.getLogger(__name__)

_CONNECT_TIMEOUT = 10.0


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


class SimulatedTerminal:
    """A 班班通 terminal: retained birth with a Last Will, then heartbeats."""

    def __init__(
        self, plan: TerminalPlan, host: str, port: int, *, heartbeat_seconds: float
    ) -> None:
        self.plan = plan
        self._host = host
        self._port = port
        self._heartbeat = heartbeat_seconds
        self._boot = secrets.token_hex(8)
        self._birth_seq = 0
        self._seq = 0
        self._started = time.monotonic()
        self._mac = "02:00:" + ":".join(f"{random.randrange(256):02x}" for _ in range(4))

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _status(self, online: bool, reason: wire.StatusReason) -> bytes:
        return wire.encode_status(
            wire.Status(
                district=self.plan.district,
                school=self.plan.school,
                terminal=self.plan.terminal,
                state="online" if online else "offline",
                reason=reason,
                boot_id=self._boot,
                seq=self._next_seq(),
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
                seq=self._next_seq(),
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

    async def run(self) -> None:
        """Publish until cancelled, or go silent when the plan says the power goes."""
        if not self.plan.switched_on:
            return
        self._birth_seq += 1
        will = aiomqtt.Will(self._topic("status"), self._status(False, "will"), qos=1, retain=True)
        async with aiomqtt.Client(
            self._host,
            self._port,
            identifier=f"demo-{self.plan.school}-{self.plan.terminal}",
            will=will,
            keepalive=60,
            timeout=_CONNECT_TIMEOUT,
        ) as client:
            await client.publish(
                self._topic("status"), self._status(True, "birth"), qos=1, retain=True
            )
            deadline = (
                None
                if self.plan.drops_after_seconds is None
                else self._started + self.plan.drops_after_seconds
            )
            while deadline is None or time.monotonic() < deadline:
                await client.publish(self._topic("heartbeat"), self._heartbeat_payload(), qos=0)
                await asyncio.sleep(self._heartbeat)
            logger.info(
                "simulated terminal %s/%s lost power (it sends nothing more)",
                self.plan.school,
                self.plan.terminal,
            )
            # A terminal without power sends nothing; the broker keeps its session until its
            # keepalive runs out, so the collector must notice by the missing heartbeats.
            await asyncio.Event().wait()


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
        self._tasks = [
            asyncio.create_task(
                self._keep_running(t), name=f"demo-terminal:{t.plan.school}:{t.plan.terminal}"
            )
            for t in self._terminals
        ]

    @staticmethod
    async def _keep_running(terminal: SimulatedTerminal) -> None:
        # The broker starts with the daemon, a moment after the terminals: retry until it is up.
        while True:
            try:
                await terminal.run()
                return
            except aiomqtt.MqttError as exc:
                logger.debug("simulated terminal %s: %s; retrying", terminal.plan.terminal, exc)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task
