"""The city benchmark's terminals: N×40 heartbeating 班班通 terminals, and the Will→offline probe.

Run by bench/city.py as its own process (its CPU is counted apart from edumon's):
``python bench/city_mqtt.py SPEC.json``. Prints ``READY`` once every terminal's birth is out;
SIGUSR1 starts the Will probes; SIGTERM clears the retained statuses it left on the broker,
writes ``out`` and exits.

20,000 MQTT connections from Python would cost more than the edumon being measured, so most
terminals publish over a few shared connections (``connections``): each terminal still has its
own boot id, sequence numbers and birth (a retained ``online`` status, QoS 1), then a heartbeat
(QoS 0) every ``heartbeat_seconds``, the terminals' heartbeats evenly spread over the interval.
The wire format is edumon/wire.py's (docs/wire-protocol.md).

A few probe terminals (``probes``) have a connection of their own with a Last Will. Every
``will_every`` seconds one of them is killed (the socket aborted, no DISCONNECT, so Mosquitto
publishes the Will) and edumon's API (``/api/v1/terminals?school=...``) is polled until it shows
the terminal offline: that is the Will→offline latency under load. The terminal then comes back
with a new session (birth sequence + 1), as a restarted panel would.

The MQTT client is a minimal MQTT 3.1.1 one written here (CONNECT with Will, PUBLISH QoS 0/1,
PINGREQ): it costs a fraction of a general-purpose client and can drop a connection abruptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from edumon import __version__, wire

KEEPALIVE_SECONDS = 60
CONNECT_TIMEOUT = 10.0
PROBE_POLL_SECONDS = 0.1
PROBE_DEADLINE_SECONDS = 120.0


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


class MqttLink:
    """One MQTT 3.1.1 connection: publish, keep alive, and close cleanly or abruptly."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._next_id = 0
        self.lost: asyncio.Event = asyncio.Event()
        self.error = ""

    async def connect(self, will: tuple[str, bytes] | None = None) -> None:
        flags = 0x02  # clean session
        payload = _str(self.client_id)
        if will is not None:
            flags |= 0x04 | 0x08 | 0x20  # Will, Will QoS 1, Will retained
            payload += _str(will[0]) + _str(will[1])
        variable = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", KEEPALIVE_SECONDS)
        async with asyncio.timeout(CONNECT_TIMEOUT):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(_packet(0x10, variable + payload))
            connack = await reader.readexactly(4)
        if connack[0] != 0x20 or connack[3] != 0:
            writer.close()
            raise ConnectionError(f"MQTT broker refused {self.client_id}: {connack!r}")
        self._writer = writer
        self.lost.clear()
        self._tasks = [
            asyncio.create_task(self._read(reader), name=f"mqtt-read:{self.client_id}"),
            asyncio.create_task(self._ping(), name=f"mqtt-ping:{self.client_id}"),
        ]

    async def _read(self, reader: asyncio.StreamReader) -> None:
        # PUBACKs and PINGRESPs: read and dropped, so the broker's side never backs up.
        try:
            while True:
                head = await reader.readexactly(1)
                n, shift = 0, 0
                while True:
                    b = (await reader.readexactly(1))[0]
                    n |= (b & 0x7F) << shift
                    shift += 7
                    if not b & 0x80:
                        break
                if n:
                    await reader.readexactly(n)
                del head
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            self.error = self.error or f"connection lost: {exc!r}"
            self.lost.set()

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS / 2)
            if self._writer is not None:
                self._writer.write(b"\xc0\x00")

    def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        if self._writer is None:
            raise ConnectionError("not connected")
        body = _str(topic)
        if qos:
            self._next_id = self._next_id % 65535 + 1
            body += struct.pack("!H", self._next_id)
        self._writer.write(_packet(0x30 | (qos << 1) | int(retain), body + payload))

    async def drain(self) -> None:
        if self._writer is not None:
            await self._writer.drain()

    def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT: the broker publishes the Will."""
        self._stop_tasks()
        if self._writer is not None:
            self._writer.transport.abort()
            self._writer = None

    async def disconnect(self) -> None:
        """A clean DISCONNECT: the broker discards the Will."""
        self._stop_tasks()
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(OSError):
                writer.write(b"\xe0\x00")
                async with asyncio.timeout(5):
                    await writer.drain()
            writer.close()


@dataclass(slots=True)
class Terminal:
    """One simulated terminal's identity and counters."""

    district: str
    school: str
    terminal: str
    boot: str = field(default_factory=lambda: secrets.token_hex(16))
    seq: int = 0
    bd_seq: int = 0
    mac: str = field(
        default_factory=lambda: (
            "02:00:" + ":".join(secrets.token_hex(4)[i : i + 2] for i in range(0, 8, 2))
        )
    )
    started: float = field(default_factory=time.monotonic)

    def topic(self, kind: wire.Kind) -> str:
        return wire.terminal_topic(self.district, self.school, self.terminal, kind)

    def status(self, online: bool, reason: wire.StatusReason) -> bytes:
        self.seq += 1
        return wire.encode_status(
            wire.Status(
                district=self.district,
                school=self.school,
                terminal=self.terminal,
                state="online" if online else "offline",
                reason=reason,
                boot_id=self.boot,
                seq=self.seq,
                birth_seq=self.bd_seq,
                observed_at=time.time(),
                agent_version=__version__,
            )
        )

    def heartbeat(self) -> bytes:
        self.seq += 1
        return wire.encode_heartbeat(
            wire.Heartbeat(
                district=self.district,
                school=self.school,
                terminal=self.terminal,
                boot_id=self.boot,
                seq=self.seq,
                birth_seq=self.bd_seq,
                observed_at=time.time(),
                uptime_seconds=round(time.monotonic() - self.started + 3600, 1),
                agent_version=__version__,
                nic="eth0",
                link_speed_mbps=1000,
                duplex="full",
                ip="127.0.0.1",
                mac=self.mac,
                cpu_percent=12.5,
                memory_used_bytes=3 * 2**30,
                memory_total_bytes=8 * 2**30,
                disk_used_bytes=60 * 2**30,
                disk_total_bytes=256 * 2**30,
            )
        )


@dataclass(slots=True)
class Probe:
    """One Will→offline measurement."""

    terminal: str
    school: str
    killed_at: float
    seen_offline_at: float | None = None
    offline_since: float | None = None
    """When edumon says the terminal went offline (the API's ``since``)."""
    requests: int = 0
    error: str = ""
    waited: float | None = None
    """Seconds waited when the run ended before the API showed the terminal offline."""

    @property
    def latency(self) -> float | None:
        return None if self.seen_offline_at is None else self.seen_offline_at - self.killed_at


class Publisher:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.host: str = spec.get("host", "127.0.0.1")
        self.port = int(spec.get("port", 1883))
        self.interval = float(spec.get("heartbeat_seconds", 30.0))
        district = spec["district"]
        probe_ids = {tuple(p) for p in spec["probes"]}
        self.shared = [
            Terminal(district, s, t) for s, t in spec["terminals"] if (s, t) not in probe_ids
        ]
        self.probes = [Terminal(district, s, t) for s, t in spec["probes"]]
        for t in (*self.shared, *self.probes):
            t.bd_seq = 1
        self.links: list[MqttLink] = []
        self.probe_links: dict[str, MqttLink] = {}
        self.heartbeats = 0
        self.births = 0
        self.late_ticks = 0
        self.results: list[Probe] = []
        self.current: Probe | None = None
        """The probe under way (cancelled mid-request when the run ends: recorded as cut)."""
        self.errors: list[str] = []
        self.stop = asyncio.Event()
        self.start_probes = asyncio.Event()
        self.tag = secrets.token_hex(4)

    async def _connect_probe(self, t: Terminal) -> MqttLink:
        link = MqttLink(self.host, self.port, f"citybench-{self.tag}-{t.terminal}")
        will = t.status(False, "will")
        await link.connect(will=(t.topic("status"), will))
        link.publish(t.topic("status"), t.status(True, "birth"), qos=1, retain=True)
        self.births += 1
        self.probe_links[t.terminal] = link
        return link

    async def start(self) -> None:
        count = max(1, int(self.spec.get("connections", 4)))
        self.links = [
            MqttLink(self.host, self.port, f"citybench-{self.tag}-shared-{i}") for i in range(count)
        ]
        for link in self.links:
            await link.connect()
        for i, t in enumerate(self.shared):
            link = self.links[i % count]
            link.publish(t.topic("status"), t.status(True, "birth"), qos=1, retain=True)
            self.births += 1
            if i % 500 == 0:
                await link.drain()
        for link in self.links:
            await link.drain()
        for t in self.probes:
            await self._connect_probe(t)

    async def heartbeats_loop(self, terminals: list[Terminal], link: MqttLink, phase: int) -> None:
        """Each terminal of ``terminals`` heartbeats once per interval, evenly spread."""
        total = len(terminals)
        if total == 0:
            return
        base = time.monotonic() + phase * 0.01
        step = self.interval / total
        k = 0
        while not self.stop.is_set():
            due = base + k * step
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                self.late_ticks += 1
            t = terminals[k % total]
            try:
                link.publish(t.topic("heartbeat"), t.heartbeat())
            except ConnectionError as exc:
                self.errors.append(f"{link.client_id}: {exc}")
                return
            self.heartbeats += 1
            k += 1
            if k % 200 == 0:
                await link.drain()

    async def probe_heartbeats(self, t: Terminal) -> None:
        while not self.stop.is_set():
            link = self.probe_links.get(t.terminal)
            if link is not None:
                with contextlib.suppress(ConnectionError):
                    link.publish(t.topic("heartbeat"), t.heartbeat())
                    self.heartbeats += 1
            await asyncio.sleep(self.interval)

    async def _status_now(
        self, http: httpx.AsyncClient, t: Terminal
    ) -> tuple[str | None, float | None]:
        r = await http.get("/api/v1/terminals", params={"school": t.school})
        if r.status_code != 200:
            return None, None
        for row in r.json().get("terminals", []):
            if row.get("terminal") == t.terminal:
                since = row.get("since")
                at = None
                if since:
                    from datetime import datetime

                    at = datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
                return str(row.get("status")), at
        return None, None

    async def probe_once(self, http: httpx.AsyncClient, t: Terminal) -> Probe:
        link = self.probe_links.pop(t.terminal)
        probe = Probe(t.terminal, t.school, time.time())
        self.current = probe
        link.abort()
        deadline = time.monotonic() + PROBE_DEADLINE_SECONDS
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                probe.requests += 1
                status, since = await self._status_now(http, t)
            except (httpx.HTTPError, ValueError) as exc:
                probe.error = f"{type(exc).__name__}: {exc}"
                status, since = None, None
            if status == "offline":
                probe.seen_offline_at = time.time()
                probe.offline_since = since
                probe.error = ""
                break
            await asyncio.sleep(PROBE_POLL_SECONDS)
        else:
            if self.stop.is_set():
                # The run ended first: how long it had waited is a lower bound, kept as such.
                probe.error = "the run ended first"
                probe.waited = time.time() - probe.killed_at
            elif not probe.error:
                probe.error = "not shown offline before the deadline"
        # Back with a new session, as a restarted panel.
        t.bd_seq += 1
        try:
            await self._connect_probe(t)
        except (OSError, TimeoutError, ConnectionError) as exc:
            self.errors.append(f"probe {t.terminal} could not reconnect: {exc!r}")
        return probe

    async def probes_loop(self) -> None:
        await self.start_probes.wait()
        every = float(self.spec.get("will_every", 30.0))
        timeout = httpx.Timeout(PROBE_DEADLINE_SECONDS)
        async with httpx.AsyncClient(base_url=self.spec["api"], timeout=timeout) as http:
            k = 0
            # Let the first heartbeats of a reconnected probe arrive before it is killed again.
            await asyncio.sleep(min(5.0, every))
            while not self.stop.is_set() and self.probes:
                started = time.monotonic()
                t = self.probes[k % len(self.probes)]
                k += 1
                if t.terminal not in self.probe_links:
                    await asyncio.sleep(1)
                    continue
                self.results.append(await self.probe_once(http, t))
                self.current = None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, every - (time.monotonic() - started))):
                        await self.stop.wait()

    async def clear_retained(self) -> None:
        """Remove the retained statuses this run left on the broker (an empty retained message)."""
        link = MqttLink(self.host, self.port, f"citybench-{self.tag}-cleanup")
        await link.connect()
        for i, t in enumerate((*self.shared, *self.probes)):
            link.publish(t.topic("status"), b"", retain=True)
            if i % 500 == 0:
                await link.drain()
        await link.disconnect()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        loop.add_signal_handler(signal.SIGINT, self.stop.set)
        loop.add_signal_handler(signal.SIGUSR1, self.start_probes.set)
        try:
            await self.start()
            print("READY", flush=True)
            count = len(self.links)
            tasks = [
                asyncio.create_task(
                    self.heartbeats_loop(self.shared[i::count], self.links[i], i),
                    name=f"heartbeats-{i}",
                )
                for i in range(count)
            ]
            tasks += [asyncio.create_task(self.probe_heartbeats(t)) for t in self.probes]
            tasks.append(asyncio.create_task(self.probes_loop(), name="will-probes"))
            lost = [asyncio.create_task(link.lost.wait()) for link in self.links]
            stop = asyncio.create_task(self.stop.wait())
            done, _ = await asyncio.wait([stop, *lost], return_when=asyncio.FIRST_COMPLETED)
            if stop not in done:
                self.errors.extend(link.error for link in self.links if link.error)
            for task in [*tasks, *lost, stop]:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        except (OSError, TimeoutError, ConnectionError) as exc:
            self.errors.append(f"MQTT: {exc!r}")
        finally:
            for link in [*self.links, *self.probe_links.values()]:
                with contextlib.suppress(Exception):
                    await link.disconnect()
            try:
                async with asyncio.timeout(30):
                    await self.clear_retained()
            except (OSError, TimeoutError, ConnectionError) as exc:
                self.errors.append(f"clearing retained statuses: {exc!r}")
            probe, self.current = self.current, None
            if probe is not None and probe not in self.results:
                if probe.seen_offline_at is None:
                    probe.error = "the run ended first"
                    probe.waited = time.time() - probe.killed_at
                self.results.append(probe)
            self.write()

    def write(self) -> None:
        out = {
            "heartbeats": self.heartbeats,
            "births": self.births,
            "late_ticks": self.late_ticks,
            "errors": self.errors,
            "probes": [
                {
                    "terminal": p.terminal,
                    "school": p.school,
                    "killed_at": p.killed_at,
                    "seen_offline_at": p.seen_offline_at,
                    "offline_since": p.offline_since,
                    "latency": p.latency,
                    "requests": p.requests,
                    "waited": p.waited,
                    "error": p.error,
                }
                for p in self.results
            ],
        }
        Path(self.spec["out"]).write_text(json.dumps(out))


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    asyncio.run(Publisher(spec).run())


if __name__ == "__main__":
    main()
