"""Classroom terminals speaking the wire protocol over a real broker, each its own MQTT session.

Each terminal connects with its Last Will set (the retained offline status of its session), so
killing it (the TCP connection drops without DISCONNECT) makes the broker publish the Will, as
for a real agent killed or a panel unplugged from the LAN. Losing power silently keeps the TCP
session at the broker: only the missing heartbeats tell.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edumon.wire import Heartbeat, Status, encode_heartbeat, encode_status, terminal_topic

CONNECT_DEADLINE = 20.0


@dataclass
class WireTerminal:
    """One terminal's agent: on (connected, heartbeating), killed, or without power."""

    district: str
    school: str
    terminal: str
    host: str
    port: int
    clock: Callable[[], float] = time.time
    """The terminal's clock (``ts``): the week's, as the daemon's is; a terminal months ahead
    of the collector would be ignored as clock skew (docs/wire-protocol.md)."""
    boot: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    bd_seq: int = 0
    seq: int = 0
    sent: int = 0
    """Messages published that reach the collector (births and heartbeats)."""
    heartbeating: bool = False
    _client: mqtt.Client | None = None

    def _status(self, state: str, reason: str) -> bytes:
        self.seq += 1
        return encode_status(
            Status(
                district=self.district,
                school=self.school,
                terminal=self.terminal,
                state=state,  # type: ignore[arg-type]
                reason=reason,  # type: ignore[arg-type]
                boot_id=self.boot,
                seq=self.seq,
                birth_seq=self.bd_seq,
                observed_at=self.clock(),
                agent_version="week-1.0",
            )
        )

    def _topic(self, kind: str) -> str:
        return terminal_topic(self.district, self.school, self.terminal, kind)  # type: ignore[arg-type]

    def switch_on(self) -> None:
        """Boot: a new session with its Will, the retained birth, then heartbeats."""
        self.drop()
        self.boot = uuid.uuid4().hex[:12]
        self.bd_seq += 1
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{self.district}-{self.terminal}",
            protocol=mqtt.MQTTv311,
        )
        client.will_set(self._topic("status"), self._status("offline", "will"), qos=1, retain=True)
        client.connect(self.host, self.port, keepalive=600)
        client.loop_start()
        deadline = time.monotonic() + CONNECT_DEADLINE
        while not client.is_connected():
            if time.monotonic() > deadline:
                raise TimeoutError(f"terminal {self.terminal} could not connect")
            time.sleep(0.01)
        self._client = client
        info = client.publish(self._topic("status"), self._status("online", "birth"), 1, True)
        info.wait_for_publish(CONNECT_DEADLINE)
        self.sent += 1
        self.heartbeating = True

    def heartbeat(self) -> None:
        if not self.heartbeating or self._client is None:
            return
        self.seq += 1
        payload = encode_heartbeat(
            Heartbeat(
                district=self.district,
                school=self.school,
                terminal=self.terminal,
                boot_id=self.boot,
                seq=self.seq,
                birth_seq=self.bd_seq,
                observed_at=self.clock(),
                uptime_seconds=600.0,
                agent_version="week-1.0",
                nic="eth0",
                link_speed_mbps=1000,
                duplex="full",
                ip=None,
                mac=None,
                cpu_percent=None,
                memory_used_bytes=None,
                memory_total_bytes=None,
                disk_used_bytes=None,
                disk_total_bytes=None,
            )
        )
        self._client.publish(self._topic("heartbeat"), payload, 1).wait_for_publish(
            CONNECT_DEADLINE
        )
        self.sent += 1

    def lose_power(self) -> None:
        """No more heartbeats; the broker keeps the TCP session (no Will yet)."""
        self.heartbeating = False

    def kill(self) -> None:
        """The connection drops without DISCONNECT: the broker publishes the Will."""
        self.heartbeating = False
        self.drop()

    def drop(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        client.loop_stop()
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.close()

    def clear(self) -> None:
        """Remove the retained status from the shared broker (after the test)."""
        self.drop()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        client.connect(self.host, self.port)
        client.loop_start()
        client.publish(self._topic("status"), b"", 1, True).wait_for_publish(CONNECT_DEADLINE)
        client.disconnect()
        client.loop_stop()
