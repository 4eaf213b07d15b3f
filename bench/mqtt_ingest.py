"""Benchmark: heartbeats per second through a real Mosquitto into edumon's MQTT ingest.

The same flow of real heartbeats (``edumon.wire`` JSON, ~370 bytes) goes from one publisher
process (``mosquitto_pub -l``, fed line by line) through the broker to one subscriber process,
at QoS 0 and at QoS 1, for each subscriber in turn, in the same run:

* ``mosquitto_sub``: the C client, printing one short line per message (the raw receive rate);
* ``ingest``: ``edumon.sources.mqtt.MqttIngest`` — received, parsed, validated, sink called;
* ``aiomqtt``: the textbook aiomqtt loop (``async for message in client.messages``) with the same
  parsing and sink, for comparison;
* ``paho-thread``: paho-mqtt's own network loop in a thread (``loop_start``), parsing in its
  ``on_message`` and handing batches to the asyncio loop, for comparison.

Two modes, each printed beside ``mosquitto_sub`` on the same broker in the same run:

* ``flood``: the publisher sends all N heartbeats as fast as the broker takes them. Mosquitto
  drops messages for a subscriber more than ``max_queued_messages`` (1000 by default) behind,
  so a subscriber slower than the publisher receives only part of them; the rate is what it
  received per second (its saturated throughput) and the losses are printed.
* ``window``: the publisher is kept at most ``--window`` messages (default 500) ahead of what
  the subscriber has reported receiving, so nothing is dropped: the rate is the sustained,
  loss-free rate of the whole chain (publisher, broker, subscriber and this script sharing the
  machine's cores). Every subscriber reports the same way (newlines on stdout).

The subscriber's sink is ``--sink null`` (count only) or ``--sink collector`` (the daemon's
``Collector.submit_terminal``: queue, terminal state update, batched SQLite writes; its own
queue drops are reported).

Usage: ``python bench/mqtt_ingest.py [-n 100000] [--qos 0 1] [--modes window flood]
[--sink null|collector] [--subscribers mosquitto_sub ingest aiomqtt paho-thread]
[--window 500] [--host 127.0.0.1] [--port 1883]``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
SCHOOL = "sch-1"
TERMINAL = "cls-101"
IDLE_SECONDS = 10.0  # no progress for this long: the run stalled (messages were dropped)
FLOOD_IDLE_SECONDS = 2.0  # after a flood: nothing more is coming
SETTLE_SECONDS = 0.3
PROBE_SEQS = 100_000  # quiet time after the first probe arrives: in-flight probes have landed

Sink = Callable[[Heartbeat | Status, float], None]


# -- the subscriber processes -------------------------------------------------------------------


class Progress:
    """Reports progress to the parent as newlines on stdout, at most one write per loop turn.

    With the null sink a message counts when the sink gets it; with the collector, when the
    collector has applied it (polled every millisecond): then the flow control holds the
    publisher to what the whole chain sustains, and the collector's queue never overflows.
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
            os.write(1, b"\n" * new)

    async def poll(self) -> None:
        """Report the collector's progress until cancelled."""
        while True:
            self._report()
            await asyncio.sleep(0.001)


async def collector_sink(
    district: str, workdir: Path
) -> tuple[Any, Any, Callable[[], dict[str, Any]]]:
    """The daemon's Collector (terminal state, SQLite store) for one school and classroom."""
    from edumon.app import terminals_of
    from edumon.collector import Collector
    from edumon.config import inventory_of, parse_config
    from edumon.domain.state import NetworkState
    from edumon.store.repository import open_store

    config = parse_config(
        f"""
[district]
code = "{district}"
name = "bench"

[targets]
profile = "district-1000m"

[storage]
url = "sqlite:///{workdir / "bench.db"}"

[credentials.c]
version = "2c"
community = "bench"

[[switches]]
id = "sw-1"
school = "{SCHOOL}"
host = "127.0.0.1"
credentials = "c"

[[schools]]
code = "{SCHOOL}"
name = "bench school"
kind = "primary"
uplink = {{ switch = "sw-1", port = "Gi0/1" }}
classrooms = [{{ id = "{TERMINAL}", name = "101" }}]
"""
    )
    store = await open_store(config.storage.url)
    await store.sync_inventory(config)
    collector = Collector(
        NetworkState(inventory_of(config), list(config.switches)),
        store,
        terminals=terminals_of(config),
        batch_size=config.storage.batch_size,
        flush_seconds=config.storage.flush_seconds,
    )

    def stats() -> dict[str, Any]:
        s = collector.stats
        return {
            "collector_messages": s.terminal_messages_total,
            "collector_dropped": dict(s.dropped_total),
            "rows_written": s.rows_written_total,
            "write_seconds": round(s.write_seconds_sum, 3),
        }

    return collector, store, stats


async def child(args: argparse.Namespace) -> None:
    """One subscriber: runs until stdin closes, then prints its stats (JSON) on stderr."""
    progress = Progress()
    sink: Sink = progress.sink
    extra_stats: Callable[[], dict[str, Any]] = dict
    collector_task = poller = None
    owned: Any = None
    workdir = tempfile.TemporaryDirectory(prefix="edumon-bench-")
    if args.sink == "collector":
        collector, store, extra_stats = await collector_sink(args.district, Path(workdir.name))
        owned = (collector, store)
        collector_task = asyncio.create_task(collector.run(), name="collector")
        progress = Progress(lambda: int(collector.stats.terminal_messages_total))
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
        drain_started = time.perf_counter()
        await collector.drain()
        stats["drain_seconds"] = round(time.perf_counter() - drain_started, 3)
        assert collector_task is not None
        collector_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector_task
        await store.aclose()
    stats.update(extra_stats())
    workdir.cleanup()
    sys.stderr.write(json.dumps(stats) + "\n")


async def run_ingest(
    args: argparse.Namespace, sink: Sink, stop: asyncio.Future[None], stats: dict[str, Any]
) -> None:
    from edumon.sources.mqtt import MqttIngest, MqttSettings

    settings = MqttSettings(host=args.host, port=args.port, district=args.district, qos=args.qos)
    async with MqttIngest(settings, sink) as ingest:
        await stop
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


# -- the parent: publisher, flow control and figures -------------------------------------------


@dataclass
class Result:
    subscriber: str
    mode: str
    qos: int
    messages: int
    seconds: float
    stalled: bool
    child_stats: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


class Received:
    """Counts the newlines a subscriber writes; wakes waiters on progress."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = asyncio.Event()
        self.at = time.perf_counter()

    async def read(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self.count += chunk.count(b"\n")
            self.at = time.perf_counter()
            self.changed.set()

    async def wait_change(self, within: float) -> bool:
        self.changed.clear()
        try:
            async with asyncio.timeout(within):
                await self.changed.wait()
        except TimeoutError:
            return False
        return True


def heartbeat_lines(district: str, first_seq: int, count: int) -> list[bytes]:
    base = Heartbeat(
        district=district,
        school=SCHOOL,
        terminal=TERMINAL,
        boot_id="bench-boot",
        seq=0,
        birth_seq=1,
        observed_at=time.time(),
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
    return [
        encode_heartbeat(dataclasses.replace(base, seq=seq)) + b"\n"
        for seq in range(first_seq, first_seq + count)
    ]


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
        "--qos", str(qos),
        "--sink", args.sink,
    ]  # fmt: skip


async def measure(
    name: str, mode: str, args: argparse.Namespace, qos: int, lines: list[bytes]
) -> Result:
    # Probes come first with lower seqs: the collector would ignore a heartbeat whose seq is
    # not above every one seen from that boot (a redelivery).
    probes = iter(heartbeat_lines(args.district, 1, PROBE_SEQS))
    subscriber = await asyncio.create_subprocess_exec(
        *subscriber_command(name, args, qos),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    publisher = await asyncio.create_subprocess_exec(
        "mosquitto_pub",
        "-h", args.host,
        "-p", str(args.port),
        "-V", "mqttv311",
        "-q", str(qos),
        "-t", terminal_topic(args.district, SCHOOL, TERMINAL, "heartbeat"),
        "-l",
        stdin=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert subscriber.stdout is not None
    assert subscriber.stderr is not None
    assert subscriber.stdin is not None
    assert publisher.stdin is not None
    received = Received()
    reader = asyncio.create_task(received.read(subscriber.stdout), name="read-progress")
    errors = asyncio.create_task(subscriber.stderr.read(), name="read-stats")
    try:
        # Probes until the subscriber is subscribed (messages before that are not delivered),
        # then quiet until the probes in flight have landed.
        async with asyncio.timeout(30):
            while received.count == 0:
                publisher.stdin.write(next(probes))
                await publisher.stdin.drain()
                await received.wait_change(0.1)
            while await received.wait_change(SETTLE_SECONDS):
                pass
        base = received.count
        started = time.perf_counter()
        if mode == "window":
            stalled = await windowed(publisher.stdin, received, base, lines, args.window)
        else:
            stalled = await flood(publisher.stdin, received, base, lines)
        seconds = received.at - started
        got = received.count - base
    finally:
        publisher.stdin.close()
        await publisher.wait()
        if name == "mosquitto_sub":
            subscriber.terminate()
        else:
            subscriber.stdin.close()
        await subscriber.wait()
        await reader
    stats_text = (await errors).decode(errors="replace").strip().splitlines()
    child_stats: dict[str, Any] = {}
    if stats_text and stats_text[-1].startswith("{"):
        child_stats = json.loads(stats_text[-1])
    elif stats_text and name != "mosquitto_sub":
        print("\n".join(stats_text[-20:]), file=sys.stderr)
    return Result(name, mode, qos, got, seconds, stalled, child_stats)


async def windowed(
    stdin: asyncio.StreamWriter, received: Received, base: int, lines: list[bytes], window: int
) -> bool:
    """Publish with at most ``window`` messages unreceived; True if the subscriber stalled."""
    sent = 0
    while received.count - base < len(lines):
        room = min(window - (sent - (received.count - base)), len(lines) - sent, 200)
        if room > 0:
            stdin.write(b"".join(lines[sent : sent + room]))
            sent += room
            await stdin.drain()
        elif not await received.wait_change(IDLE_SECONDS):
            return True
    return False


async def flood(
    stdin: asyncio.StreamWriter, received: Received, base: int, lines: list[bytes]
) -> bool:
    """Publish everything at once; True if messages were lost (the broker dropped them)."""
    for start in range(0, len(lines), 1000):
        stdin.write(b"".join(lines[start : start + 1000]))
        await stdin.drain()
    while received.count - base < len(lines):
        if not await received.wait_change(FLOOD_IDLE_SECONDS):
            return True
    return False


def print_table(results: Sequence[Result], n: int, sink: str) -> None:
    print()
    print(f"{n} heartbeats per run, one publisher (mosquitto_pub), sink={sink}")
    print(
        f"{'mode':<7} {'subscriber':<14} {'QoS':>3} {'received':>9} {'seconds':>8} "
        f"{'msg/s':>9} {'x sub':>6}"
    )
    for result in results:
        reference = next(
            (
                r
                for r in results
                if r.subscriber == "mosquitto_sub" and (r.mode, r.qos) == (result.mode, result.qos)
            ),
            None,
        )
        ratio = f"{result.rate / reference.rate:.2f}" if reference and reference.rate else "-"
        lost = n - result.messages
        flag = ""
        if result.stalled:
            flag = f"  {lost} dropped by the broker" if result.mode == "flood" else "  STALLED"
        print(
            f"{result.mode:<7} {result.subscriber:<14} {result.qos:>3} {result.messages:>9} "
            f"{result.seconds:>8.2f} {result.rate:>9,.0f} {ratio:>6}{flag}"
        )
    for result in results:
        if result.child_stats:
            print(
                f"  {result.mode} {result.subscriber} QoS {result.qos}: "
                f"{json.dumps(result.child_stats)}"
            )


async def parent(args: argparse.Namespace) -> None:
    args.district = f"bench-{uuid.uuid4().hex[:8]}"
    lines = heartbeat_lines(args.district, PROBE_SEQS + 1, args.messages)
    results = []
    for mode in args.modes:
        for qos in args.qos:
            for name in args.subscribers:
                result = await measure(name, mode, args, qos, lines)
                print(
                    f"{mode} {name} QoS {qos}: {result.rate:,.0f} msg/s"
                    + (f" ({args.messages - result.messages} lost)" if result.stalled else ""),
                    flush=True,
                )
                results.append(result)
    print_table(results, args.messages, args.sink)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--messages", type=int, default=100_000)
    parser.add_argument("--qos", type=int, nargs="+", choices=(0, 1), default=[0, 1])
    parser.add_argument("--sink", choices=("null", "collector"), default="null")
    parser.add_argument("--subscribers", nargs="+", choices=SUBSCRIBERS, default=list(SUBSCRIBERS))
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument(
        "--modes", nargs="+", choices=("window", "flood"), default=["window", "flood"]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--child", choices=SUBSCRIBERS[1:], help=argparse.SUPPRESS)
    parser.add_argument("--district", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.qos = args.qos[0]
        asyncio.run(child(args))
    else:
        asyncio.run(parent(args))


if __name__ == "__main__":
    main()
