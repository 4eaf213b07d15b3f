"""Benchmark: /metrics for a city of N schools, the cached exposition beside the one it replaced.

The city is synthetic but shaped like the real one: each school has 10 switches of 57
interfaces (48 access ports, 4 uplink ports, Console, NULL0, two Vlanifs, a management port),
one of them the school's core switch with the school's uplink port and the ports the nine access
switches hang off; 40 classrooms spread over the access switches, each with its terminal. State
is built by applying DeviceReadings and heartbeats through the real domain code (NetworkState,
TerminalsState), with a poller's per-switch statistics beside it, a lesson schedule and the
outage tracker, as in the daemon.

For each implementation, in its own process (so that its RSS is its own), the script times:

- the first scrape (everything rendered);
- steady scrapes (nothing changed);
- scrapes after one second of a city's changes: 1/60 of the switches polled again (a 60 s poll
  interval) and 1/30 of the terminals heartbeating (a 30 s interval);
- scrapes after 15 s of them (Prometheus scraping every 15 s, as bench/city.py does).

It prints series, bytes, render time and RSS for each, and for the cached exposition the longest
the event loop would be held between two chunks of the stream. The previous implementation is
the module ``edumon/exporters/metrics.py`` as it was before the package replaced it (read with
``git show``; ``--baseline REF`` for another commit).
Target: a 500-school scrape in at most 100 ms.

Each ``[metrics] detail`` asked for (``--detail full essential``, both by default) is measured
on the same city; the previous exporter knew only full detail.

Usage: ``python bench/metrics_render.py [--schools 100 500] [--detail full essential]
[--scrapes 5] [--no-baseline]``.
The machine is shared and small: read ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edumon.app import terminals_of  # noqa: E402
from edumon.collector import Collector  # noqa: E402
from edumon.config import Config, inventory_of, parse_config  # noqa: E402
from edumon.domain.models import AdminStatus, DeviceReading, InterfaceReading, OperStatus  # noqa: E402
from edumon.domain.outages import OutageTracker  # noqa: E402
from edumon.domain.state import NetworkState  # noqa: E402
from edumon.runtime import Runtime  # noqa: E402
from edumon.sources.snmp.poller import DeviceStats, PollerStats  # noqa: E402
from edumon.sources.snmp.transport import TransportStats  # noqa: E402
from edumon.store.repository import open_store  # noqa: E402
from edumon.wire import Heartbeat  # noqa: E402
from edumon.workcalendar import ChineseWorkingCalendar  # noqa: E402

DISTRICT = "bench-city"
SWITCHES_PER_SCHOOL = 10
CLASSROOMS_PER_SCHOOL = 40
TARGET_MS = 100.0
INTERVAL_SECONDS = 15
# Monday of a school week, in a lesson: expected_online and offline_in_lesson are live.
NOW = datetime(2026, 9, 7, 10, 30, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
ACCESS_PORTS = [f"GE0/0/{i}" for i in range(1, 49)]
UPLINK_PORTS = [f"XGE0/0/{i}" for i in range(1, 5)]
OTHER_PORTS = ["Console0/0/0", "NULL0", "Vlanif1", "Vlanif10", "MEth0/0/1"]
PORTS = ACCESS_PORTS + UPLINK_PORTS + OTHER_PORTS  # 57


def city_toml(schools: int, detail: str = "full") -> str:
    """A district of ``schools`` schools of the shape above, /metrics at ``detail``."""
    out = [
        f'[district]\ncode = "{DISTRICT}"\nname = "基准城市"\n',
        f'[metrics]\ndetail = "{detail}"\n',
        '[targets]\nprofile = "district-1000m"\n',
        '[mqtt]\nbroker = "external"\nhost = "127.0.0.1"\n',
        '[credentials.v2]\nversion = "2c"\ncommunity = "bench-community"\n',
    ]
    for s in range(schools):
        code = f"s{s:04d}"
        core = f"{code}-core"
        out.append(
            f'[[switches]]\nid = "{core}"\nschool = "{code}"\nhost = "10.{s // 250}.{s % 250}.1"\n'
            'credentials = "v2"\n'
        )
        for a in range(1, SWITCHES_PER_SCHOOL):
            out.append(
                f'[[switches]]\nid = "{code}-a{a}"\nschool = "{code}"\n'
                f'host = "10.{s // 250}.{s % 250}.{a + 1}"\ncredentials = "v2"\n'
                f'upstream = {{ switch = "{core}", port = "GE0/0/{a}" }}\n'
            )
        out.append(
            f'[[schools]]\ncode = "{code}"\nname = "第{s + 1}学校"\nkind = "primary"\n'
            f'uplink = {{ switch = "{core}", port = "XGE0/0/1" }}\n'
        )
        for c in range(CLASSROOMS_PER_SCHOOL):
            access = 1 + c % (SWITCHES_PER_SCHOOL - 1)
            port = 1 + c // (SWITCHES_PER_SCHOOL - 1)
            out.append(
                f'[[schools.classrooms]]\nid = "{code}-c{c:02d}"\nname = "{c + 1}班"\n'
                f'switch = "{code}-a{access}"\nport = "GE0/0/{port}"\n'
            )
    return "\n".join(out)


@dataclass(slots=True)
class FakePoller:
    """The poller's statistics as the exporters read them (PollerView), kept by hand."""

    switches: tuple[Any, ...]
    device_stats: dict[str, DeviceStats] = field(default_factory=dict)
    stats: PollerStats = field(default_factory=PollerStats)
    transport_stats: TransportStats = field(default_factory=TransportStats)


@dataclass(slots=True)
class City:
    runtime: Runtime
    poller: FakePoller
    switch_ids: list[str]
    terminals: list[tuple[str, str]]
    rounds: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    now: float = NOW

    def poll(self, device: str, at: float) -> None:
        """One successful poll of ``device``: a reading through the state, stats beside it."""
        n = self.rounds[device] = self.rounds.get(device, 0) + 1
        ifaces = tuple(
            InterfaceReading(
                if_index=i + 1,
                name=name,
                alias="",
                descr=name,
                oper_status=OperStatus.UP if i < 52 else OperStatus.DOWN,
                admin_status=AdminStatus.UP,
                speed_mbps=(10_000.0 if name.startswith("XGE") else 1000.0) if i < 52 else None,
                in_octets=n * 1_000_000 + i,
                out_octets=n * 2_000_000 + i,
                in_errors=0,
                out_errors=0,
            )
            for i, name in enumerate(PORTS)
        )
        reading = DeviceReading(
            device, at, 8_640_000 + n * 6000, device.upper(), "Huawei S5735", ifaces, 0.3, 700
        )
        self.runtime.state.apply(reading)
        st = self.poller.device_stats.setdefault(device, DeviceStats(max_repetitions=10))
        st.polls_ok += 1
        st.requests += 8
        st.varbinds += 700
        st.last_poll_seconds = 0.3
        st.last_varbinds = 700
        st.last_success_at = at
        st.poll_seconds.observe(0.3)

    def heartbeat(self, school: str, terminal: str, at: float) -> None:
        self.seq += 1
        hb = Heartbeat(
            district=DISTRICT,
            school=school,
            terminal=terminal,
            boot_id="boot-1",
            seq=self.seq,
            birth_seq=1,
            observed_at=at,
            uptime_seconds=at - NOW + 3600,
            agent_version="1.4.0",
            nic="eth0",
            link_speed_mbps=1000,
            duplex="full",
            ip="10.99.0.1",
            mac="00:1a:2b:3c:4d:5e",
            cpu_percent=12.5,
            memory_used_bytes=2_000_000_000,
            memory_total_bytes=8_000_000_000,
            disk_used_bytes=50_000_000_000,
            disk_total_bytes=250_000_000_000,
        )
        assert self.runtime.terminals is not None
        self.runtime.terminals.apply(hb, at)

    def one_second(self, step: int) -> None:
        """What a city changes in one second: 1/60 of the switches, 1/30 of the terminals."""
        self.now += 1
        per_s = max(1, len(self.switch_ids) // 60)
        for i in range(step * per_s, (step + 1) * per_s):
            self.poll(self.switch_ids[i % len(self.switch_ids)], self.now)
        per_t = max(1, len(self.terminals) // 30)
        for i in range(step * per_t, (step + 1) * per_t):
            school, terminal = self.terminals[i % len(self.terminals)]
            self.heartbeat(school, terminal, self.now)


async def build_city(schools: int, db: Path, detail: str = "full") -> City:
    config: Config = parse_config(city_toml(schools, detail))
    store = await open_store(f"sqlite:///{db}")
    state = NetworkState(inventory_of(config))
    terminals = terminals_of(config)
    collector = Collector(state, store, terminals=terminals)
    poller = FakePoller(tuple(config.switches.values()))
    runtime = Runtime(
        config,
        state,
        store,
        collector,
        poller=poller,
        started_at=NOW - 3600,
        terminals=terminals,
        schedule=config.schedule.schedule(),
        calendar=ChineseWorkingCalendar(),
        outages=OutageTracker(),
    )
    ids = list(config.switches)
    pairs = [(t.school, t.terminal) for t in terminals.inventory]
    city = City(runtime, poller, ids, pairs)
    for device in ids:
        city.poll(device, NOW - 120)
        city.poll(device, NOW - 60)
    for i, (school, terminal) in enumerate(pairs):
        if i % 50 == 7:
            continue  # a few terminals never heard from: offline, never_seen
        city.heartbeat(school, terminal, NOW - 30)
    await store.aclose()
    return city


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


Render = Callable[[], tuple[list[bytes], float]]
"""One scrape: the body's parts, and the longest the event loop would wait (CPU seconds)."""


def old_renderer(runtime: Runtime, source: Path) -> Render:
    spec = importlib.util.spec_from_file_location("edumon_metrics_baseline", source)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    from prometheus_client import generate_latest

    registry = module.create_registry(runtime, clock=lambda: NOW)

    def render() -> tuple[list[bytes], float]:
        t = time.process_time()
        body = generate_latest(registry)  # one piece: the loop waits for all of it
        return [body], time.process_time() - t

    return render


def new_renderer(runtime: Runtime, clock: Callable[[], float]) -> Render:
    from edumon.exporters.metrics import Exposition

    exposition = Exposition(runtime, clock=clock)

    def render() -> tuple[list[bytes], float]:
        # As the app streams it (each chunk sent as it comes, never joined): the loop runs
        # between two chunks, so the longest it waits is the slowest chunk.
        parts = []
        longest = 0.0
        chunks: Iterator[bytes] = exposition.chunks()
        while True:
            t = time.process_time()
            chunk = next(chunks, None)
            longest = max(longest, time.process_time() - t)
            if chunk is None:
                break
            parts.append(chunk)
        return parts, longest

    return render


def measure(
    impl: str, schools: int, scrapes: int, baseline: str | None, detail: str = "full"
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        city = asyncio.run(build_city(schools, Path(tmp) / "bench.db", detail))
        built = time.perf_counter() - t
        if impl == "old":
            assert baseline is not None
            render = old_renderer(city.runtime, Path(baseline))
        else:
            render = new_renderer(city.runtime, lambda: city.now)
        gc.collect()
        rss_before = rss_mib()

        def scrape() -> tuple[float, float, float, list[bytes]]:
            wall, cpu = time.perf_counter(), time.process_time()
            parts, longest = render()
            cpu = time.process_time() - cpu
            return (time.perf_counter() - wall) * 1000, cpu * 1000, longest * 1000, parts

        first = scrape()
        series = sum(
            1
            for part in first[3]
            for line in part.splitlines()
            if line and not line.startswith(b"#")
        )
        size = sum(len(part) for part in first[3])
        rss_first = rss_mib()
        del first[3][:]
        steady = [scrape()[:3] for _ in range(scrapes)]
        changed = []
        rss_after = []
        for step in range(scrapes):
            city.one_second(step)
            changed.append(scrape()[:3])
            rss_after.append(rss_mib())
        # A scrape every 15 s, as Prometheus' default and bench/city.py's: 15 s of changes.
        interval = []
        for n in range(scrapes):
            for step in range(INTERVAL_SECONDS):
                city.one_second(scrapes + n * INTERVAL_SECONDS + step)
            interval.append(scrape()[:3])
            rss_after.append(rss_mib())
        return {
            "impl": impl,
            "detail": detail,
            "schools": schools,
            "build_s": built,
            "series": series,
            "bytes": size,
            "first_ms": first[0],
            "first_cpu_ms": first[1],
            "steady_ms": statistics.median(s[0] for s in steady),
            "steady_cpu_ms": statistics.median(s[1] for s in steady),
            "changed_ms": statistics.median(c[0] for c in changed),
            "changed_cpu_ms": statistics.median(c[1] for c in changed),
            "changed_best_ms": min(c[0] for c in changed),
            "changed_block_ms": max(c[2] for c in changed),
            "interval_ms": statistics.median(c[0] for c in interval),
            "interval_cpu_ms": statistics.median(c[1] for c in interval),
            "interval_block_ms": max(c[2] for c in interval),
            "rss_before_mib": rss_before,
            "rss_first_mib": rss_first,
            "rss_after_mib": rss_after,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


BASELINE_PATH = "edumon/exporters/metrics.py"


def baseline_ref(ref: str | None) -> str:
    """The commit of the previous exporter: ``ref``, or the last one that had the old module."""
    if ref is not None:
        return ref
    last = subprocess.run(
        ["git", "-C", str(REPO), "rev-list", "-1", "HEAD", "--", BASELINE_PATH],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The commit that last touched the module is the one that replaced it by the package.
    return f"{last}^"


def baseline_source(ref: str, tmp: Path) -> Path:
    text = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{ref}:{BASELINE_PATH}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = tmp / "metrics_baseline.py"
    path.write_text(text)
    return path


def run_child(
    impl: str, schools: int, scrapes: int, baseline: Path | None, detail: str = "full"
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", impl, "--schools", str(schools)]
    cmd += ["--scrapes", str(scrapes), "--detail", detail]
    if baseline is not None:
        cmd += ["--baseline-file", str(baseline)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def report(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'schools':>7} {'impl':<8} {'detail':<9} {'series':>8} {'per sch':>7} {'MB':>5} "
        f"{'first':>7} {'steady':>7} "
        f"{'1 s':>7} {'CPU':>6} {'15 s':>7} {'CPU':>6} {'held':>6}  RSS MiB: city, 1st, scrapes"
    )
    for r in rows:
        print(
            f"{r['schools']:>7} {r['impl']:<8} {r['detail']:<9} {r['series']:>8,} "
            f"{r['series'] / r['schools']:>7.0f} {r['bytes'] / 1e6:>5.1f} "
            f"{r['first_ms']:>7.0f} {r['steady_ms']:>7.1f} {r['changed_ms']:>7.1f} "
            f"{r['changed_cpu_ms']:>6.1f} {r['interval_ms']:>7.1f} {r['interval_cpu_ms']:>6.1f} "
            f"{max(r['changed_block_ms'], r['interval_block_ms']):>6.1f}  "
            f"{r['rss_before_mib']:.0f}, {r['rss_first_mib']:.0f}, "
            + " ".join(f"{x:.0f}" for x in r["rss_after_mib"])
        )
    print(
        "Milliseconds per scrape (medians). first: everything rendered; steady: nothing changed; "
        "1 s: after a second of a city's changes (1/60 of the switches polled, 1/30 of the "
        "terminals heartbeating); 15 s: after 15 s of them (a scrape every 15 s). CPU: the "
        "process's CPU time for it, what a scrape costs whatever else the machine runs; held: "
        "the longest CPU time between two chunks of the stream, how long the event loop waits "
        "(the previous exporter renders in one piece)."
    )
    print()
    for schools in sorted({r["schools"] for r in rows}):
        old = next((r for r in rows if r["schools"] == schools and r["impl"] == "old"), None)
        for new in rows:
            if new["schools"] != schools or new["impl"] != "cached":
                continue
            line = f"{schools} schools, {new['detail']}, target ≤ {TARGET_MS:.0f} ms: "
            for what, key in (("1 s", "changed"), ("15 s", "interval")):
                ms, cpu = new[f"{key}_ms"], new[f"{key}_cpu_ms"]
                verdict = "meets" if ms <= TARGET_MS else "misses"
                line += f"after {what} of changes {ms:.0f} ms ({cpu:.0f} ms CPU) {verdict}; "
            if old is not None:
                ratio = old["interval_cpu_ms"] / new["interval_cpu_ms"]
                line += f"the previous exporter {old['interval_ms']:.0f} ms "
                line += f"({ratio:.0f}× the CPU at 15 s)"
            print(line)
    print("(a shared 2-core machine: wall-clock figures vary with its load; CPU ones less)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schools", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument(
        "--baseline",
        help="git ref of the previous exporter (default: the last commit with the old module)",
    )
    parser.add_argument(
        "--detail",
        nargs="+",
        choices=["full", "essential"],
        default=["full", "essential"],
        help="[metrics] detail to measure (both by default)",
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--child", choices=["old", "cached"], help=argparse.SUPPRESS)
    parser.add_argument("--baseline-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        detail = args.detail[0]
        result = measure(args.child, args.schools[0], args.scrapes, args.baseline_file, detail)
        print(json.dumps(result))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        baseline = None
        if not args.no_baseline:
            baseline = baseline_source(baseline_ref(args.baseline), Path(tmp))
        for schools in args.schools:
            for detail in args.detail:
                rows.append(run_child("cached", schools, args.scrapes, None, detail))
                print(f"  {schools} schools, cached, {detail}: done", file=sys.stderr)
            if baseline is not None:
                # the previous exporter takes seconds a scrape at city scale: fewer scrapes.
                rows.append(run_child("old", schools, min(args.scrapes, 1), baseline))
                print(f"  {schools} schools, previous: done", file=sys.stderr)
    report(rows)


if __name__ == "__main__":
    main()
