"""Benchmark: heartbeats per second through a real Mosquitto into edumon's whole ingest path.

One flow of real heartbeats (``edumon.wire`` JSON, ~370 bytes) from 20,000 distinct terminals
(500 schools of 40 classrooms, all in the subscriber's terminal inventory) goes from a publisher
(this script, writing pre-encoded MQTT PUBLISH packets on a raw socket) through the broker to one
subscriber process. Each heartbeat has a new, growing ``seq``, so the collector accepts every one.
Subscribers:

* ``mosquitto_sub``: the C client, printing one short line per message (the raw receive rate);
* ``ingest``: edumon's whole path as the daemon runs it: ``edumon.sources.mqtt.MqttIngest``
  (receive, parse, validate) with its persistent session into the daemon's ``Collector`` (queue,
  terminal state, events, batched SQLite writes), each QoS 1 message acknowledged only once its
  rows are committed (``--ack store``, the default; ``--ack receipt`` acknowledges on arrival);
* ``aiomqtt`` and ``paho-thread``: other ways of driving an MQTT client, with the same parsing and
  sink, for comparison (not run unless named).

Runs are interleaved: every round runs each subscriber in turn (the order alternating between
rounds, so a drift of the shared machine does not favour one), at each QoS, for ``--seconds``.
The publisher is kept at most ``--window`` messages ahead of what the subscriber has reported
(mosquitto_sub: received; edumon: applied by the collector), so the broker never drops one: the
rate is the sustained, loss-free rate of the chain. Before each measured period every terminal
sends one heartbeat (and comes online): what is measured is the steady state.

edumon's rate counts a message when its rows are committed to SQLite (with ``--ack store``; with
``--ack receipt`` when the collector has applied it), over the measured period plus the time the
collector then needs to write out the rows still pending (``drain``): the whole path, broker ->
ingest -> store. The broker is a Mosquitto this script starts on a free port with the shipped
config's session and flow-control settings (``deploy/mosquitto/edumon.conf``:
``max_inflight_messages 0``, without which acknowledging after the commit would be held to 20
messages per commit); ``--port`` uses a running broker instead. The figures printed are the
medians over the rounds, their spread (min-max) and the ratio of the medians, edumon over
``mosquitto_sub``. Two cores are shared by the publisher, the broker and the subscriber: compare
ratios, not absolute rates.

A round that stops making progress is not waited for: a watchdog reports on stderr which round,
which side and what it was waiting for, with the counts so far and where the round's code was
waiting, kills the subscriber's process group and exits with status 3; every wait of the script
has a deadline (``--stall-seconds``, ``--round-timeout``). If the event loop itself is stuck,
``faulthandler`` dumps every thread's stack and exits.

Usage: ``python bench/mqtt_ingest.py [--rounds 5] [--seconds 20] [--terminals 20000]
[--qos 0 1] [--window 1000] [--subscribers mosquitto_sub ingest] [--sink collector|null]
[--ack store|receipt] [--host 127.0.0.1] [--port PORT] [--stall-seconds 30]
[--round-timeout SECONDS]``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import faulthandler
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edumon.wire import (  # noqa: E402
    Heartbeat,
    Status,
    encode_heartbeat,
    parse_message,
    terminal_filter,
    terminal_topic,
)

SUBSCRIBERS = ("mosquitto_sub", "ingest", "aiomqtt", "paho-thread")
CLASSROOMS_PER_SCHOOL = 40
IDLE_SECONDS = 10.0  # no progress for this long: the run stalled
SETTLE_SECONDS = 0.3
CONNECT_SECONDS = 10.0  # the publisher's TCP connect and CONNACK
SUBSCRIBE_SECONDS = 120.0  # until the subscriber receives its first probe message
STOP_SECONDS = 60.0  # a subscriber's exit: edumon's drain of pending rows and its stats
STALLED_EXIT = 3  # the exit status when the watchdog stops a round
FIRST_SEQ = 1_000_000_000  # ten digits until 9,999,999,999: every packet of a terminal is one size
SEQ_MARK = b"9876543210"  # where the seq goes in a pre-encoded payload

Sink = Callable[[Heartbeat | Status, float], None]


def school_code(index: int) -> str:
    return f"s{index:04d}"


def terminal_ids(terminals: int) -> list[tuple[str, str]]:
    """``(school, terminal)`` of every terminal; a terminal's id is its classroom's id."""
    out = []
    for i in range(terminals):
        school = school_code(i // CLASSROOMS_PER_SCHOOL)
        out.append((school, f"{school}-c{i % CLASSROOMS_PER_SCHOOL:02d}"))
    return out


# -- the subscriber processes -------------------------------------------------------------------


class Progress:
    """Reports progress to the parent on stdout, at most one write per loop turn: a line with
    the running count (``#123``), where ``mosquitto_sub`` writes a line per message.

    With the null sink a message counts when the sink gets it; with the collector, when the
    collector has applied it (polled every millisecond).
    """

    def __init__(self, processed: Callable[[], int] | None = None) -> None:
        self.count = 0
        self._reported = 0
        self._scheduled = False
        self._loop = asyncio.get_running_loop()
        self._processed = processed

    def sink(self, message: Heartbeat | Status, received_at: float) -> None:
        self.count += 1
        if self._processed is None and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._report)

    def _report(self) -> None:
        self._scheduled = False
        count = self.count if self._processed is None else self._processed()
        new, self._reported = count - self._reported, count
        if new:
            os.write(1, b"#%d\n" % count)

    async def poll(self) -> None:
        """Report the collector's progress until cancelled."""
        while True:
            self._report()
            await asyncio.sleep(0.002)


def bench_config(district: str, terminals: int, db: Path) -> str:
    """A district of ``terminals`` classrooms, 40 to a school, one switch per school."""
    schools = (terminals + CLASSROOMS_PER_SCHOOL - 1) // CLASSROOMS_PER_SCHOOL
    parts = [
        f'[district]\ncode = "{district}"\nname = "bench"\n',
        f'[storage]\nurl = "sqlite:///{db}"\n',
        '[credentials.c]\nversion = "2c"\ncommunity = "bench"\n',
    ]
    for i in range(schools):
        code = school_code(i)
        rooms = ", ".join(
            f'{{ id = "{code}-c{c:02d}", name = "{c}" }}'
            for c in range(min(CLASSROOMS_PER_SCHOOL, terminals - i * CLASSROOMS_PER_SCHOOL))
        )
        parts.append(
            f'[[switches]]\nid = "sw-{code}"\nschool = "{code}"\nhost = "127.0.0.1"\n'
            f'credentials = "c"\n\n'
            f'[[schools]]\ncode = "{code}"\nname = "school {code}"\nkind = "primary"\n'
            f'uplink = {{ switch = "sw-{code}", port = "Gi0/1" }}\nclassrooms = [{rooms}]\n'
        )
    return "\n".join(parts)


async def collector_sink(
    district: str, terminals: int, workdir: Path
) -> tuple[Any, Any, Callable[[], dict[str, Any]]]:
    """The daemon's Collector (terminal state, SQLite store) for the bench's district."""
    from edumon.app import terminals_of
    from edumon.collector import Collector
    from edumon.config import inventory_of, parse_config
    from edumon.domain.state import NetworkState
    from edumon.store.repository import open_store

    config = parse_config(bench_config(district, terminals, workdir / "bench.db"))
    store = await open_store(config.storage.url)
    await store.sync_inventory(config)
    collector = Collector(
        NetworkState(inventory_of(config), list(config.switches)),
        store,
        terminals=terminals_of(config),
        batch_size=config.storage.batch_size,
        flush_seconds=config.storage.flush_seconds,
    )
    assert collector.terminals is not None
    known = collector.terminals

    def stats() -> dict[str, Any]:
        s = collector.stats
        return {
            "collector_messages": s.terminal_messages_total,
            "committed_messages": s.committed_messages,
            "duplicates": sum(s.duplicates_total.values()),
            "lost": sum(s.lost_messages_total.values()),
            "collector_dropped": dict(s.dropped_total),
            "ignored": {k: v for k, v in known.ignored.items() if v},
            "events": sum(s.events_total.values()),
            "rows_written": s.rows_written_total,
            "write_seconds": round(s.write_seconds_sum, 3),
        }

    return collector, store, stats


async def child(args: argparse.Namespace) -> None:
    """One subscriber: runs until stdin closes, then prints its stats (JSON) on stderr."""
    # The parent's watchdog sends SIGUSR1 before it kills a stalled subscriber: every thread's
    # stack goes to stderr, which the parent prints.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    progress = Progress()
    sink: Sink = progress.sink
    extra_stats: Callable[[], dict[str, Any]] = dict
    collector_task = poller = None
    owned: Any = None
    workdir = tempfile.TemporaryDirectory(prefix="edumon-bench-")
    if args.sink == "collector":
        collector, store, extra_stats = await collector_sink(
            args.district, args.terminals, Path(workdir.name)
        )
        owned = (collector, store)
        collector_task = asyncio.create_task(collector.run(), name="collector")
        if args.ack == "store":
            progress = Progress(lambda: int(collector.stats.committed_messages))
        else:
            progress = Progress(lambda: int(collector.stats.terminal_messages_total))
        args.collector = collector
        poller = asyncio.create_task(progress.poll(), name="progress")
        sink = collector.submit_terminal

    loop = asyncio.get_running_loop()
    stdin_closed = loop.create_future()

    def watch_stdin() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stdin_closed.set_result, None)

    threading.Thread(target=watch_stdin, daemon=True).start()
    stats: dict[str, Any] = {}
    run = {"ingest": run_ingest, "aiomqtt": run_aiomqtt, "paho-thread": run_paho_thread}[args.child]
    await run(args, sink, stdin_closed, stats)
    if poller is not None:
        poller.cancel()
    if owned is not None:
        collector, store = owned
        stats["pending_at_stop"] = len(collector._pending) + collector.queue_depth
        drain_started = time.perf_counter()
        # Within the parent's STOP_SECONDS: a drain that cannot finish fails here, with its
        # traceback on stderr, rather than when the parent kills this process.
        async with asyncio.timeout(STOP_SECONDS / 2):
            await collector.drain()
        stats["drain_seconds"] = round(time.perf_counter() - drain_started, 3)
        assert collector_task is not None
        collector_task.cancel()
        async with asyncio.timeout(STOP_SECONDS / 4):
            with contextlib.suppress(asyncio.CancelledError):
                await collector_task
            await store.aclose()
    stats.update(extra_stats())
    stats["cpu_seconds"] = time.process_time()  # the whole process, every thread
    workdir.cleanup()
    sys.stderr.write(json.dumps(stats) + "\n")


async def run_ingest(
    args: argparse.Namespace, sink: Sink, stop: asyncio.Future[None], stats: dict[str, Any]
) -> None:
    from edumon.sources.mqtt import MqttIngest, MqttSettings

    # A persistent session of its own for each run (a session left from an earlier run would
    # hand this one what was published meanwhile), removed at the end.
    client_id = f"bench-collector-{uuid.uuid4().hex[:8]}"
    settings = MqttSettings(
        host=args.host, port=args.port, district=args.district, qos=args.qos, client_id=client_id
    )
    collector = getattr(args, "collector", None)
    after_store = collector is not None and args.ack == "store"
    # As the daemon wires it (edumon/app.py): persistent session, acknowledged after the commit.
    ingest = MqttIngest(
        settings,
        sink,
        ack_after_store=after_store,
        paused=collector.paused if collector is not None else None,
    )
    if after_store:
        collector.on_committed = ingest.committed
        collector.backlog = ingest.in_backlog
    async with ingest:
        await stop
    forget = dataclasses.replace(settings, clean_session=True)
    async with MqttIngest(forget, lambda message, received_at: None) as cleaner:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                # The ingest has no connection notification: poll its stats.
                while not cleaner.stats.connected:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
    stats.update(
        received=ingest.stats.received_total,
        accepted=ingest.stats.accepted_total,
        rejected=sum(ingest.stats.rejected_total.values()),
    )


async def run_aiomqtt(
    args: argparse.Namespace, sink: Sink, stop: asyncio.Future[None], stats: dict[str, Any]
) -> None:
    import aiomqtt

    async def consume(client: aiomqtt.Client) -> None:
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            sink(parse_message(message.topic.value, message.payload), time.time())

    async with aiomqtt.Client(args.host, args.port) as client:
        await client.subscribe(terminal_filter("heartbeat", args.district), qos=args.qos)
        task = asyncio.create_task(consume(client), name="consume")
        await stop
        task.cancel()


async def run_paho_thread(
    args: argparse.Namespace, sink: Sink, stop: asyncio.Future[None], stats: dict[str, Any]
) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    loop = asyncio.get_running_loop()
    batch: collections.deque[tuple[Heartbeat | Status, float]] = collections.deque()
    subscribed = threading.Event()

    def drain() -> None:
        while batch:
            sink(*batch.popleft())

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # Parsed in the network thread; the sink runs on the loop, woken once per batch.
        wake = not batch
        batch.append((parse_message(message.topic, message.payload), time.time()))
        if wake:
            loop.call_soon_threadsafe(drain)

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(args.host, args.port)
    client.subscribe(terminal_filter("heartbeat", args.district), qos=args.qos)
    client.loop_start()
    await asyncio.to_thread(subscribed.wait, 10)
    await stop
    client.disconnect()
    client.loop_stop()


# -- the publisher: pre-encoded MQTT 3.1.1 packets on a raw socket -----------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return len(data).to_bytes(2, "big") + data


class Publisher:
    """Publishes heartbeats of every terminal in turn, each with the next ``seq``.

    Every packet is built from a per-terminal template (fixed header, topic, payload split
    around a ten-digit seq), so publishing costs no JSON encoding.
    """

    def __init__(self, district: str, terminals: Sequence[tuple[str, str]], qos: int) -> None:
        self.qos = qos
        self.seq = FIRST_SEQ
        self._rounds = 0
        self.next_terminal = 0
        self.sent = 0
        self._pid = 0
        self._templates: list[tuple[bytes, bytes, bytes]] = []
        now = time.time()
        for school, terminal in terminals:
            payload = encode_heartbeat(
                Heartbeat(
                    district=district,
                    school=school,
                    terminal=terminal,
                    boot_id="bench-boot",
                    seq=int(SEQ_MARK),
                    birth_seq=1,
                    observed_at=now,
                    uptime_seconds=86_400.0,
                    agent_version="0.1.0",
                    nic="eth0",
                    link_speed_mbps=1000,
                    duplex="full",
                    ip="10.20.30.40",
                    mac="aa:bb:cc:dd:ee:ff",
                    cpu_percent=12.5,
                    memory_used_bytes=2_000_000_000,
                    memory_total_bytes=8_000_000_000,
                    disk_used_bytes=50_000_000_000,
                    disk_total_bytes=250_000_000_000,
                )
            )
            assert payload.count(SEQ_MARK) == 1
            before, after = payload.split(SEQ_MARK)
            topic = _string(terminal_topic(district, school, terminal, "heartbeat"))
            remaining = len(topic) + (2 if qos else 0) + len(payload)
            head = bytes([0x32 if qos else 0x30]) + _varint(remaining) + topic
            if qos:
                self._templates.append((head, before, after))
            else:
                self._templates.append((head + before, b"", after))
        self._writer: asyncio.StreamWriter | None = None
        self._acks: asyncio.Task[None] | None = None

    async def connect(self, host: str, port: int) -> None:
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                reader, writer = await asyncio.open_connection(host, port)
                client_id = _string(f"bench-pub-{uuid.uuid4().hex[:8]}")
                # MQTT 3.1.1, clean session, keepalive off (the publisher may idle while a
                # subscriber starts).
                variable = _string("MQTT") + bytes([4, 0x02]) + (0).to_bytes(2, "big")
                writer.write(
                    bytes([0x10]) + _varint(len(variable) + len(client_id)) + variable + client_id
                )
                connack = await reader.readexactly(4)
        except TimeoutError:
            raise RuntimeError(
                f"the publisher got no CONNACK from {host}:{port} within {CONNECT_SECONDS:g} s"
            ) from None
        if connack[0] != 0x20 or connack[3] != 0:
            raise RuntimeError(f"broker refused the publisher: {connack!r}")
        self._writer = writer
        # PUBACKs (QoS 1) are read and dropped, so the socket never fills.
        self._acks = asyncio.create_task(self._discard(reader), name="publisher-acks")

    @staticmethod
    async def _discard(reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass

    def packets(self, count: int) -> bytes:
        out = []
        templates = self._templates
        n = len(templates)
        for _ in range(count):
            head, before, after = templates[self.next_terminal]
            # Each terminal's own seq grows by one a message, as a real agent's: the collector
            # counts a gap as loss.
            seq = b"%d" % (self.seq + self._rounds)
            if self.qos:
                self._pid = self._pid % 65535 + 1
                out.append(head + self._pid.to_bytes(2, "big") + before + seq + after)
            else:
                out.append(head + seq + after)
            self.next_terminal = (self.next_terminal + 1) % n
            if self.next_terminal == 0:
                self._rounds += 1
        self.sent += count
        return b"".join(out)

    async def publish(self, count: int) -> None:
        assert self._writer is not None
        self._writer.write(self.packets(count))
        try:
            async with asyncio.timeout(IDLE_SECONDS):
                await self._writer.drain()
        except TimeoutError:
            raise RuntimeError(
                f"the broker read none of the publisher's packets for {IDLE_SECONDS:g} s"
            ) from None

    async def aclose(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.write(b"\xe0\x00")  # DISCONNECT
            try:
                # A broker that stopped reading would hold drain() and, with data unsent,
                # wait_closed() for ever: abort instead.
                async with asyncio.timeout(CONNECT_SECONDS):
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
                    writer.close()
                    with contextlib.suppress(ConnectionError):
                        await writer.wait_closed()
            except TimeoutError:
                writer.transport.abort()
        if self._acks is not None:
            self._acks.cancel()
            await asyncio.wait({self._acks}, timeout=CONNECT_SECONDS)
            if self._acks.done() and not self._acks.cancelled():
                self._acks.exception()  # a reset connection at the end: nothing to report


# -- the parent: flow control and figures ---------------------------------------------------------


@dataclass
class Result:
    subscriber: str
    qos: int
    round: int
    messages: int
    seconds: float
    cpu_seconds: float
    child_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_us(self) -> float:
        """The subscriber's CPU time per message (user and system, all its threads)."""
        return self.cpu_seconds / self.messages * 1e6 if self.messages else 0.0

    @property
    def whole_seconds(self) -> float:
        """The measured period plus the collector's drain of the rows still pending."""
        return self.seconds + float(self.child_stats.get("drain_seconds", 0.0))

    @property
    def rate(self) -> float:
        return self.messages / self.whole_seconds if self.whole_seconds > 0 else 0.0


class Received:
    """Counts what a subscriber received (its lines, or the last ``#count`` it wrote); wakes
    waiters on progress."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = asyncio.Event()

    async def read(self, stream: asyncio.StreamReader) -> None:
        partial = b""
        while chunk := await stream.read(65536):
            if chunk.startswith(b"#") or partial:
                lines = (partial + chunk).split(b"\n")
                partial = lines.pop()
                if lines:
                    self.count = int(lines[-1][1:])
            else:
                self.count += chunk.count(b"\n")
            self.changed.set()

    async def wait_change(self, within: float) -> bool:
        self.changed.clear()
        try:
            async with asyncio.timeout(within):
                await self.changed.wait()
        except TimeoutError:
            return False
        return True


def subscriber_command(name: str, args: argparse.Namespace, qos: int) -> list[str]:
    if name == "mosquitto_sub":
        return [
            "mosquitto_sub",
            "-h", args.host,
            "-p", str(args.port),
            "-V", "mqttv311",
            "-q", str(qos),
            "-t", terminal_filter("heartbeat", args.district),
            "-F", "%l",  # one short line per message: the payload's length
        ]  # fmt: skip
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child", name,
        "--host", args.host,
        "--port", str(args.port),
        "--district", args.district,
        "--terminals", str(args.terminals),
        "--qos", str(qos),
        "--sink", args.sink,
        "--ack", args.ack,
        *(["--profile", args.profile] if args.profile else []),
    ]  # fmt: skip


async def windowed(
    publisher: Publisher,
    received: Received,
    base: int,
    window: int,
    until: Callable[[], bool],
    watch: Watch,
) -> None:
    """Publish, at most ``window`` messages ahead of the subscriber, until ``until()``."""
    while not until():
        outstanding = publisher.sent - (received.count - base)
        room = min(window - outstanding, 200)
        if room > 0:
            watch.waiting_for = "the publisher: the broker to take its packets (drain)"
            await publisher.publish(room)
        else:
            watch.waiting_for = (
                f"the subscriber to report messages (through the broker; {outstanding} "
                f"outstanding, window {window})"
            )
            if not await received.wait_change(IDLE_SECONDS):
                raise RuntimeError(f"no progress for {IDLE_SECONDS:g} s: messages were lost")


class Stalled(Exception):
    """The watchdog stopped a round (its report is on stderr already)."""


class Watch:
    """What a round is doing, for its watchdog: the phase, what it waits for, the counts.

    Progress is a change of the subscriber's count; each phase has a limit on how long it may
    go without (``enter``), and the whole round has a budget.
    """

    def __init__(self, what: str, stall_seconds: float, budget: float) -> None:
        self.what = what
        self.stall_seconds = stall_seconds
        self.budget = budget
        self.started = self.last_progress = time.monotonic()
        self.phase = "starting the subscriber"
        self.waiting_for = "the subscriber's process to start"
        self.limit = stall_seconds
        self.base = 0
        self.last_count = 0
        self.stopping = False
        self.subscriber: asyncio.subprocess.Process | None = None
        self.received = Received()
        self.publisher: Publisher | None = None
        self.stderr = bytearray()
        self.stderr_changed = asyncio.Event()

    def enter(self, phase: str, waiting_for: str, limit: float | None = None) -> None:
        self.phase, self.waiting_for = phase, waiting_for
        self.limit = self.stall_seconds if limit is None else limit
        self.base = self.received.count
        self.last_progress = time.monotonic()

    def problem(self, now: float) -> str | None:
        """Why the round should be stopped now, or None."""
        if self.received.count != self.last_count:
            self.last_count, self.last_progress = self.received.count, now
        subscriber = self.subscriber
        if subscriber is not None and subscriber.returncode is not None and not self.stopping:
            return f"the subscriber exited with status {subscriber.returncode}"
        if now - self.last_progress > self.limit:
            return f"no messages counted for {now - self.last_progress:.0f} s"
        if now - self.started > self.budget:
            return (
                f"the round has run {now - self.started:.1f} s, over its budget of "
                f"{self.budget:.0f} s (--round-timeout)"
            )
        return None

    def report(self, problem: str) -> str:
        count = self.received.count
        sent = self.publisher.sent if self.publisher is not None else 0
        subscriber = self.subscriber
        pid = subscriber.pid if subscriber is not None else None
        status = (
            "running"
            if subscriber is None or subscriber.returncode is None
            else (f"exited with status {subscriber.returncode}")
        )
        return "\n".join(
            [
                f"watchdog: {self.what}: {problem}",
                f"  phase: {self.phase}, {time.monotonic() - self.started:.0f} s into the round",
                f"  waiting for {self.waiting_for}",
                f"  subscriber (pid {pid}, {status}): counted {count} in all, "
                f"{count - self.base} in this phase",
                f"  publisher: sent {sent} since its count was last reset (at the start of the "
                "warm-up and of the measured period)",
            ]
        )


def kill_group(process: asyncio.subprocess.Process, sig: int = signal.SIGKILL) -> None:
    """Signal the process group a subscriber leads (it was started in a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


async def read_into(stream: asyncio.StreamReader, sink: bytearray, changed: asyncio.Event) -> None:
    while chunk := await stream.read(65536):
        sink += chunk
        changed.set()


async def quiet(changed: asyncio.Event, first: float, then: float) -> None:
    """Wait up to ``first`` seconds for output, then until none has come for ``then``."""
    within = first
    while True:
        changed.clear()
        try:
            async with asyncio.timeout(within):
                await changed.wait()
        except TimeoutError:
            return
        within = then


def awaiting(task: asyncio.Task[Any]) -> list[str]:
    """Where a task is suspended, outermost first: each coroutine it awaits, down to a future."""
    where = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        code = frame.f_code
        where.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return where


async def guarded(watch: Watch, body: Coroutine[Any, Any, Result], python_child: bool) -> Result:
    """Run a round under its watchdog; on a stall, report, kill the subscriber, raise Stalled."""
    task = asyncio.create_task(body, name=watch.what)
    # The last resort, for an event loop that stopped turning (then the watchdog below cannot
    # run): every thread's stack on stderr, and exit. Children are left behind in that case.
    faulthandler.dump_traceback_later(watch.budget + 2 * STOP_SECONDS, exit=True)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.5)
            if done:
                try:
                    return task.result()
                except Exception as exc:
                    print(watch.report(f"the round failed: {exc!r}"), file=sys.stderr)
                    print_stderr_tail(watch)
                    raise
            problem = watch.problem(time.monotonic())
            if problem is not None:
                break
        print(watch.report(problem), file=sys.stderr)
        print("  the round is waiting at:", file=sys.stderr)
        for line in awaiting(task):
            print(f"    {line}", file=sys.stderr)
        sys.stderr.flush()
        subscriber = watch.subscriber
        if subscriber is not None and subscriber.returncode is None:
            if python_child:
                # Its stacks first (faulthandler, registered in child()): what it waits for.
                watch.stderr_changed.clear()
                kill_group(subscriber, signal.SIGUSR1)
                await quiet(watch.stderr_changed, first=3.0, then=0.5)
            kill_group(subscriber)
            print(
                f"watchdog: killed the subscriber's process group {subscriber.pid}", file=sys.stderr
            )
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=STOP_SECONDS)
        if not done:
            print("watchdog: the round did not end after being cancelled", file=sys.stderr)
        elif not task.cancelled() and task.exception() is not None:
            print(f"watchdog: the round ended with {task.exception()!r}", file=sys.stderr)
        print_stderr_tail(watch)
        raise Stalled(f"{watch.what}: {problem}")
    finally:
        faulthandler.cancel_dump_traceback_later()


def print_stderr_tail(watch: Watch) -> None:
    tail = watch.stderr.decode(errors="replace").strip().splitlines()[-60:]
    if tail:
        print("  the subscriber's stderr (last lines):", file=sys.stderr)
        print("\n".join(f"    {line}" for line in tail), file=sys.stderr)
    sys.stderr.flush()


def round_budget(args: argparse.Namespace) -> float:
    """How long a round may take in all: subscribing, warm-up at a slow 1,000 msg/s, the
    measured period three times over, and stopping."""
    if args.round_timeout is not None:
        return float(args.round_timeout)
    return (
        SUBSCRIBE_SECONDS + STOP_SECONDS + 3 * (float(args.seconds) + float(args.terminals) / 1000)
    )


async def measure(name: str, args: argparse.Namespace, qos: int, round_: int) -> Result:
    watch = Watch(f"round {round_ + 1} QoS {qos} {name}", args.stall_seconds, round_budget(args))
    return await guarded(
        watch, _measure(name, args, qos, round_, watch), python_child=name != "mosquitto_sub"
    )


async def stop_subscriber(name: str, subscriber: asyncio.subprocess.Process) -> None:
    """Stop a subscriber and wait for its exit, killing its process group if it lingers."""
    assert subscriber.stdin is not None
    if subscriber.returncode is None:
        if name == "mosquitto_sub":
            # Killed, not terminated: mosquitto_sub's SIGTERM handler calls
            # mosquitto_disconnect_v5(), which takes libmosquitto's mutexes and allocates, in the
            # signal handler; a SIGTERM landing while a message is being handled can deadlock it
            # (seen: once in 300 stops during a stream of messages, asleep in a futex for good),
            # and the wait for it had no end. Its count is taken already and it has nothing to
            # flush (it flushes every line).
            kill_group(subscriber)
        else:
            subscriber.stdin.close()  # edumon's subscriber drains, prints its stats and exits
    try:
        async with asyncio.timeout(STOP_SECONDS):
            await subscriber.wait()
    except TimeoutError:
        print(
            f"{name} (pid {subscriber.pid}) did not exit within {STOP_SECONDS:g} s of being "
            "stopped: killing its process group",
            file=sys.stderr,
            flush=True,
        )
        kill_group(subscriber)
        async with asyncio.timeout(CONNECT_SECONDS):
            await subscriber.wait()


async def _measure(
    name: str, args: argparse.Namespace, qos: int, round_: int, watch: Watch
) -> Result:
    publisher = Publisher(args.district, args.ids, qos)
    watch.publisher = publisher
    # A process group of its own, so that the watchdog can kill it and whatever it started.
    subscriber = await asyncio.create_subprocess_exec(
        *subscriber_command(name, args, qos),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    watch.subscriber = subscriber
    assert subscriber.stdout is not None
    assert subscriber.stderr is not None
    received = watch.received
    reader = asyncio.create_task(received.read(subscriber.stdout), name="read-progress")
    errors = asyncio.create_task(
        read_into(subscriber.stderr, watch.stderr, watch.stderr_changed), name="read-stats"
    )
    try:
        watch.enter("connecting", "the broker's CONNACK to the publisher")
        await publisher.connect(args.host, args.port)
        # Probes until the subscriber is subscribed (messages before that are not delivered).
        watch.enter(
            "subscribing",
            "the subscriber to receive a first probe (one published every 0.2 s)",
            limit=SUBSCRIBE_SECONDS + IDLE_SECONDS,
        )
        try:
            async with asyncio.timeout(SUBSCRIBE_SECONDS):
                while received.count == 0:
                    await publisher.publish(1)
                    await received.wait_change(0.2)
        except TimeoutError:
            raise RuntimeError(
                f"the subscriber received none of {publisher.sent} probes in "
                f"{SUBSCRIBE_SECONDS:g} s"
            ) from None
        # Warm-up: every terminal heartbeats once (and comes online); then quiet until the
        # messages in flight have landed. Counted from here: the probes published before the
        # subscription were never delivered, and would otherwise stay "outstanding" in the
        # window for good (with a small --window, a stall although nothing was lost).
        base = received.count
        publisher.sent = 0
        watch.enter("warm-up", "the subscriber")
        await windowed(
            publisher,
            received,
            base,
            args.window,
            lambda: publisher.sent >= len(args.ids),
            watch,
        )
        watch.enter("settling", "the messages in flight to land")
        while await received.wait_change(SETTLE_SECONDS):
            pass
        base = received.count
        publisher.sent = 0
        watch.enter("measuring", "the subscriber")
        process = psutil.Process(subscriber.pid)
        cpu_started = sum(process.cpu_times()[:2])
        started = time.perf_counter()
        end = started + args.seconds
        await windowed(
            publisher, received, base, args.window, lambda: time.perf_counter() >= end, watch
        )
        seconds = time.perf_counter() - started
        got = received.count - base
        cpu_stopped = sum(process.cpu_times()[:2])
    finally:
        watch.stopping = True
        # The stop's own deadlines come first; the watchdog's limit is beyond them.
        watch.enter(
            "stopping",
            f"{name} to exit (and, for edumon, to drain and print its stats)",
            limit=STOP_SECONDS + 5 * CONNECT_SECONDS,
        )
        await publisher.aclose()
        await stop_subscriber(name, subscriber)
        # The process is gone: its pipes end (asyncio's wait() has waited for them already).
        await asyncio.wait({reader, errors}, timeout=CONNECT_SECONDS)
    if reader.done():
        reader.result()  # re-raises a failure to parse its progress
    stats_text = watch.stderr.decode(errors="replace").strip().splitlines()
    child_stats: dict[str, Any] = {}
    if stats_text and stats_text[-1].startswith("{"):
        child_stats = json.loads(stats_text[-1])
    elif stats_text and name != "mosquitto_sub":
        print("\n".join(stats_text[-20:]), file=sys.stderr)
    # edumon's CPU includes its drain (it reports its total when done).
    cpu = float(child_stats.get("cpu_seconds", cpu_stopped)) - cpu_started
    return Result(name, qos, round_, got, seconds, cpu, child_stats)


def spread(rates: Sequence[float]) -> str:
    return f"{min(rates):>9,.0f} - {max(rates):>9,.0f}"


def print_table(results: Sequence[Result], args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.rounds} interleaved rounds of {args.seconds:g} s, {args.terminals} terminals, "
        f"window {args.window}, sink={args.sink}, ack={args.ack}; msg/s (edumon: "
        f"{'committed to SQLite' if args.ack == 'store' else 'applied, then stored'})"
    )
    print(
        f"{'QoS':>3} {'subscriber':<14} {'median':>9} {'min - max':>21} {'x sub (median)':>15}"
        f" {'CPU us/msg (median)':>20}"
    )
    for qos in args.qos:
        reference = [r.rate for r in results if r.qos == qos and r.subscriber == "mosquitto_sub"]
        for name in args.subscribers:
            rates = [r.rate for r in results if r.qos == qos and r.subscriber == name]
            if not rates:
                continue
            median = statistics.median(rates)
            ratio = f"{median / statistics.median(reference):.2f}" if reference else "-"
            cpu = statistics.median(
                r.cpu_us for r in results if r.qos == qos and r.subscriber == name
            )
            print(
                f"{qos:>3} {name:<14} {median:>9,.0f} {spread(rates):>21} {ratio:>15} {cpu:>20.1f}"
            )
        if reference:
            for name in args.subscribers:
                if name == "mosquitto_sub":
                    continue
                paired = [
                    r.rate / s.rate
                    for r in results
                    for s in results
                    if r.qos == s.qos == qos
                    and r.round == s.round
                    and r.subscriber == name
                    and s.subscriber == "mosquitto_sub"
                    and s.rate
                ]
                if paired:
                    print(
                        f"    {name} / mosquitto_sub per round: median "
                        f"{statistics.median(paired):.2f}, {min(paired):.2f} - {max(paired):.2f}"
                    )


SHIPPED_CONF = REPO / "deploy" / "mosquitto" / "edumon.conf"
# What the bench's broker takes over from the shipped config: the collector's session and flow
# control (docs/wire-protocol.md, "Collector session").
BROKER_SETTINGS = (
    "max_inflight_messages",
    "max_queued_messages",
    "persistent_client_expiration",
    "message_size_limit",
)


@contextlib.contextmanager
def own_broker(workdir: Path) -> Any:
    """A Mosquitto on a free loopback port with the shipped config's session settings."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    settings = [
        " ".join(line.split())
        for line in SHIPPED_CONF.read_text(encoding="utf-8").splitlines()
        if line.split() and line.split()[0] in BROKER_SETTINGS
    ]
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false", *settings]
        )
        + "\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + CONNECT_SECONDS
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the bench's Mosquitto did not start") from None
                time.sleep(0.05)
        print(f"Mosquitto on 127.0.0.1:{port} with: {'; '.join(settings)}", flush=True)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(CONNECT_SECONDS)
        except subprocess.TimeoutExpired:
            print(
                f"the bench's Mosquitto (pid {proc.pid}) ignored SIGTERM: killed", file=sys.stderr
            )
            proc.kill()
            proc.wait(CONNECT_SECONDS)


async def parent(args: argparse.Namespace) -> None:
    if args.port is None:
        with (
            tempfile.TemporaryDirectory(prefix="edumon-bench-broker-") as workdir,
            own_broker(Path(workdir)) as port,
        ):
            args.port = port
            await _parent(args)
        return
    await _parent(args)


async def _parent(args: argparse.Namespace) -> None:
    args.district = f"bench-{uuid.uuid4().hex[:8]}"
    args.ids = terminal_ids(args.terminals)
    results = []
    for round_ in range(args.rounds):
        order = args.subscribers if round_ % 2 == 0 else list(reversed(args.subscribers))
        for qos in args.qos:
            for name in order:
                result = await measure(name, args, qos, round_)
                extra = ""
                if result.child_stats:
                    extra = " " + json.dumps(result.child_stats)
                print(
                    f"round {round_ + 1} QoS {qos} {name}: {result.rate:,.0f} msg/s "
                    f"({result.messages} in {result.whole_seconds:.1f} s, "
                    f"CPU {result.cpu_us:.1f} us/msg){extra}",
                    flush=True,
                )
                results.append(result)
    print_table(results, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured period per run")
    parser.add_argument("--terminals", type=int, default=20_000)
    parser.add_argument("--qos", type=int, nargs="+", choices=(0, 1), default=[0, 1])
    parser.add_argument("--sink", choices=("collector", "null"), default="collector")
    parser.add_argument(
        "--subscribers", nargs="+", choices=SUBSCRIBERS, default=["mosquitto_sub", "ingest"]
    )
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=None, help="a running broker's (default: start our own)"
    )
    parser.add_argument(
        "--ack",
        choices=("store", "receipt"),
        default="store",
        help="acknowledge QoS 1 after the commit (the daemon's way) or on arrival",
    )
    parser.add_argument(
        "--profile", help="edumon's subscriber writes cProfile stats to PROFILE.<qos>.<pid>"
    )
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=30.0,
        help="stop a round whose subscriber counts no message for this long (default 30)",
    )
    parser.add_argument(
        "--round-timeout",
        type=float,
        default=None,
        help="stop a round that runs longer than this (default: 180 s plus three times the "
        "measured period and the warm-up at 1,000 msg/s)",
    )
    parser.add_argument("--child", choices=SUBSCRIBERS[1:], help=argparse.SUPPRESS)
    parser.add_argument("--district", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.qos = args.qos[0]
        if args.profile:
            import cProfile

            with cProfile.Profile() as profile:
                asyncio.run(child(args))
            profile.dump_stats(f"{args.profile}.{args.qos}.{os.getpid()}")
        else:
            asyncio.run(child(args))
    else:
        try:
            asyncio.run(parent(args))
        except Stalled as stalled:
            print(f"stopped by the watchdog: {stalled}", file=sys.stderr)
            sys.exit(STALLED_EXIT)


if __name__ == "__main__":
    main()
