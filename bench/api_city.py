"""The status API of a city on one event loop: p50/p99 per endpoint beside the 100 ms target.

In one process: a synthetic city of N schools (``edumon.demo.city``: 10 switches × 57 ports
and 40 classrooms with a terminal each per school), its state built through the real domain
code (NetworkState.apply, TerminalsState.apply), a SQLite store holding some thousands of
events, and the API app. While the clients run, the same event loop applies polls and
heartbeats at the city's real rates (every switch once a minute, every terminal every 30 s),
so per-school caches are invalidated as in production and requests share the loop with the
hot paths. The app is served by uvicorn on a free port of 127.0.0.1; ``--clients`` clients
(20) in a separate process send requests across the endpoints, one after the other on each
connection, for ``--seconds``.

    .venv/bin/python bench/api_city.py --schools 100 500
    .venv/bin/python bench/api_city.py --schools 500 --compare-main   # beside git main

``--compare-main`` runs the same load against ``main`` checked out in a temporary worktree
(its code, this city), in a subprocess. Figures on a shared 2-core machine are noisy: compare
ratios. Not a test: nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

SELF = Path(__file__).resolve()
ROOT = SELF.parent.parent
TARGET_MS = 100.0
T0 = 1_788_573_600.0  # 2026-09-07 10:00 Beijing time, a Monday in term: lessons on
POLL_SECONDS = 60.0
HEARTBEAT_SECONDS = 30.0


def _city_module() -> ModuleType:
    # Loaded by path: when the code under test is another checkout (git main), the city
    # generator still comes from here.
    spec = importlib.util.spec_from_file_location(
        "bench_city", ROOT / "edumon" / "demo" / "city.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _heartbeat(district: str, school: str, terminal: str, seq: int, speed: int | None) -> Any:
    from edumon.wire import Heartbeat

    return Heartbeat(
        district=district,
        school=school,
        terminal=terminal,
        boot_id="boot-1",
        seq=seq,
        birth_seq=1,
        observed_at=T0,
        uptime_seconds=3600.0,
        agent_version="1.2.0",
        nic="以太网",
        link_speed_mbps=speed,
        duplex="full",
        ip="10.99.0.1",
        mac="00:1a:2b:3c:4d:5e",
        cpu_percent=12.5,
        memory_used_bytes=3_000_000_000,
        memory_total_bytes=8_000_000_000,
        disk_used_bytes=60_000_000_000,
        disk_total_bytes=256_000_000_000,
    )


async def _build(schools: int, events: int, db: Path) -> tuple[Any, Any, Any]:
    from edumon.app import terminals_of
    from edumon.collector import Collector
    from edumon.config import inventory_of, parse_config
    from edumon.domain.models import Event, EventKind
    from edumon.domain.state import NetworkState
    from edumon.runtime import Runtime
    from edumon.store.repository import open_store
    from edumon.workcalendar import ChineseWorkingCalendar

    city = _city_module()
    config = parse_config(city.city_toml(city.CityShape(schools)))
    store = await open_store(f"sqlite:///{db}")
    await store.sync_inventory(config)
    state = NetworkState(inventory_of(config))
    terminals = terminals_of(config)
    rng = random.Random(7)
    for at in (T0 - 120, T0 - 60):
        for obs in city.readings(config, at, rng):
            state.apply(obs)
    district = config.district.code
    refs = list(terminals.inventory)
    for i, ref in enumerate(refs):
        if rng.random() < 0.9:  # a tenth never heard from
            terminals.apply(
                _heartbeat(district, ref.school, ref.terminal, 1, rng.choice([1000, 100])),
                T0 - 30 + i * 30 / len(refs),
            )
    kinds = list(EventKind)
    devices = list(config.switches)
    batch = []
    for i in range(events):
        dev = rng.choice(devices)
        # Several events share each timestamp, as a poll cycle's do.
        batch.append(
            Event(
                at=T0 - 86_400 + (i // 4) * 60.0,
                kind=rng.choice(kinds),
                device_id=dev,
                school=config.switches[dev].school,
                message=f"bench event {i}",
            )
        )
    for start in range(0, len(batch), 1000):
        await store.write(events=batch[start : start + 1000])
    collector = Collector(state, store, terminals=terminals)
    runtime = Runtime(
        config,
        state,
        store,
        collector,
        terminals=terminals,
        schedule=config.schedule.schedule(),
        calendar=ChineseWorkingCalendar(),
        started_at=T0 - 3600,
    )
    return runtime, config, city


async def _hot_paths(
    runtime: Any, config: Any, city: Any, clock: list[float], stop: asyncio.Event
) -> dict[str, int]:
    """Apply polls and heartbeats at the city's rates, on this loop, until ``stop``."""
    rng = random.Random(11)
    switches = list(config.switches)
    refs = list(runtime.terminals.inventory)
    district = config.district.code
    polls_per_s = len(switches) / POLL_SECONDS
    beats_per_s = len(refs) / HEARTBEAT_SECONDS
    readings = {
        o.device_id: o for o in city.readings(config, T0, random.Random(3), unreachable=0.0)
    }
    done = {"polls": 0, "heartbeats": 0, "cpu_ms": 0}
    started = time.perf_counter()
    seq = 1
    tick = 0.02
    while not stop.is_set():
        await asyncio.sleep(tick)
        elapsed = time.perf_counter() - started
        work = time.thread_time()
        clock[0] = T0 + elapsed
        from dataclasses import replace

        while done["polls"] < elapsed * polls_per_s:
            sid = switches[done["polls"] % len(switches)]
            runtime.state.apply(replace(readings[sid], at=clock[0]))
            done["polls"] += 1
        while done["heartbeats"] < elapsed * beats_per_s:
            ref = refs[done["heartbeats"] % len(refs)]
            seq += 1
            speed = 100 if rng.random() < 0.001 else 1000
            runtime.terminals.apply(
                _heartbeat(district, ref.school, ref.terminal, seq, speed), clock[0]
            )
            done["heartbeats"] += 1
        done["cpu_ms"] += round((time.thread_time() - work) * 1000)
    return done


def _endpoints(schools: int, rng: random.Random) -> list[tuple[str, Any]]:
    city = _city_module()
    codes = [city.school_code(i) for i in range(schools)]
    switches = [f"{code}-a{k}" for code in codes for k in (1, 2)]
    return [
        ("/summary", lambda: "/api/v1/summary"),
        ("/schools", lambda: "/api/v1/schools"),
        ("/schools/{code}", lambda: f"/api/v1/schools/{rng.choice(codes)}"),
        ("/switches", lambda: "/api/v1/switches"),
        (
            "/switches/{id}/interfaces",
            lambda: f"/api/v1/switches/{rng.choice(switches)}/interfaces",
        ),
        ("/events", lambda: "/api/v1/events"),
        ("/events?school=", lambda: f"/api/v1/events?school={rng.choice(codes)}"),
        ("/events?offset=500", lambda: "/api/v1/events?offset=500"),
        ("/compliance", lambda: "/api/v1/compliance"),
        ("/compliance?school=", lambda: f"/api/v1/compliance?school={rng.choice(codes)}"),
        ("/terminals", lambda: "/api/v1/terminals"),
        ("/terminals?school=", lambda: f"/api/v1/terminals?school={rng.choice(codes)}"),
        ("/terminals?status=offline", lambda: "/api/v1/terminals?status=offline"),
        ("/terminals/unknown", lambda: "/api/v1/terminals/unknown"),
        ("/classrooms/offline", lambda: "/api/v1/classrooms/offline"),
        ("/outages", lambda: "/api/v1/outages"),
    ]


async def _clients(base: str, schools: int, clients: int, seconds: float) -> dict[str, Any]:
    """The load: ``clients`` connections each sending one request after the other."""
    import httpx

    rng = random.Random(5)
    endpoints = _endpoints(schools, rng)
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        for _name, url in endpoints:  # warm-up: first-use imports, caches filled once
            await client.get(url())
        deadline = time.perf_counter() + seconds

        async def one_client(k: int) -> None:
            order = list(range(len(endpoints)))
            random.Random(k).shuffle(order)
            i = k
            while time.perf_counter() < deadline:
                name, url = endpoints[order[i % len(order)]]
                i += 1
                start = time.perf_counter()
                try:
                    response = await client.get(url())
                except httpx.TransportError:
                    errors[name] += 1  # a dropped connection; the next request opens another
                    continue
                latencies[name].append((time.perf_counter() - start) * 1000)
                if response.status_code != 200:
                    errors[name] += 1

        await asyncio.gather(*(one_client(k) for k in range(clients)))
    rows = {}
    for name, _ in endpoints:
        xs = sorted(latencies[name])
        rows[name] = (
            {
                "n": len(xs),
                "p50": statistics.median(xs),
                "p99": xs[min(len(xs) - 1, int(0.99 * len(xs)))],
                "errors": errors[name],
            }
            if xs
            else {"n": 0}
        )
    return rows


async def _load(
    schools: int, clients: int, seconds: float, events: int, *, gc_freeze: bool = False
) -> dict[str, Any]:
    """The city served by uvicorn on a free port; the clients in another process."""
    import socket

    import uvicorn

    from edumon.exporters.api import create_app

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        runtime, config, city = await _build(schools, events, Path(tmp) / "edumon.db")
        built = time.perf_counter() - t
        clock = [T0]
        app = create_app(runtime, clock=lambda: clock[0])
        if gc_freeze:
            # What start-up built (inventory, state, caches) is never garbage: moved out of
            # the collector's reach, a full collection scans only what came after.
            gc.collect()
            gc.freeze()
        # IPPROTO_TCP, as the daemon's listener: asyncio then sets TCP_NODELAY (without it a
        # keep-alive reply waits ~40 ms for a delayed ACK; git main binds with proto 0).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                lifespan="off",
                # Slow pages leave pooled connections idle; none is closed under a request.
                timeout_keep_alive=300,
            )
        )
        server.config.load()
        server.lifespan = server.config.lifespan_class(server.config)
        await server.startup(sockets=[sock])
        serving = asyncio.create_task(server.main_loop())
        stop = asyncio.Event()
        hot = asyncio.create_task(_hot_paths(runtime, config, city, clock, stop))
        cmd = [
            sys.executable,
            str(SELF),
            "--client",
            f"http://127.0.0.1:{port}",
        ]
        cmd += ["--schools", str(schools), "--clients", str(clients), "--seconds", str(seconds)]
        cpu = time.thread_time()
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, env={**os.environ}
        )
        out, _ = await proc.communicate()
        stop.set()
        applied = await hot
        cpu_ms = (time.thread_time() - cpu) * 1000
        server.should_exit = True
        await serving
        await server.shutdown(sockets=[sock])
        await runtime.store.aclose()
    rows = json.loads(out.decode().strip().splitlines()[-1])
    requests = sum(r["n"] for r in rows.values())
    api_cpu = (cpu_ms - applied["cpu_ms"]) / max(1, requests)
    return {
        "schools": schools,
        "built_s": built,
        "applied": applied,
        "endpoints": rows,
        "requests": requests,
        "seconds": seconds,
        "loop_cpu_ms": cpu_ms,
        "api_cpu_ms_per_request": api_cpu,
    }


def _print(result: dict[str, Any], main: dict[str, Any] | None) -> None:
    print(
        f"\n== {result['schools']} schools: {result['schools'] * 10} switches, "
        f"{result['schools'] * 40} terminals; hot paths applied {result['applied']} "
        f"during the run (built in {result['built_s']:.1f} s)"
    )
    print(
        f"{result['requests']} requests in {result['seconds']:g} s; the loop's thread used "
        f"{result['loop_cpu_ms'] / 1000:.1f} s CPU, polls and heartbeats "
        f"{result['applied']['cpu_ms'] / 1000:.1f} s of it; API CPU per request "
        f"{result['api_cpu_ms_per_request']:.2f} ms"
    )
    head = f"{'endpoint':28} {'n':>5} {'p50 ms':>8} {'p99 ms':>8}  target"
    if main is not None:
        head += f"  {'main n':>6} {'main p50':>9} {'main p99':>9}"
    print(head)
    for name, row in result["endpoints"].items():
        if not row.get("n"):
            continue
        ok = "ok" if row["p99"] <= TARGET_MS else "OVER"
        line = f"{name:28} {row['n']:5d} {row['p50']:8.1f} {row['p99']:8.1f}  {ok:6}"
        if row.get("errors"):
            line += f" ({row['errors']} non-200)"
        if main is not None:
            other = main["endpoints"].get(name, {})
            if other.get("n"):
                line += f"  {other['n']:6d} {other['p50']:9.1f} {other['p99']:9.1f}"
        print(line)


def _main_worktree() -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="edumon-main-"))
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tmp / "main"), "main"],
        check=True,
        capture_output=True,
    )
    return tmp / "main"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schools", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--compare-main", action="store_true")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() after start-up: full collections then skip the city's objects",
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        rows = asyncio.run(_clients(args.client, args.schools[0], args.clients, args.seconds))
        print(json.dumps(rows))
        return
    for n in args.schools:
        result = asyncio.run(
            _load(n, args.clients, args.seconds, args.events, gc_freeze=args.gc_freeze)
        )
        if args.json:
            print(json.dumps(result))
            continue
        other = None
        if args.compare_main:
            tree = _main_worktree()
            try:
                env = {**os.environ, "PYTHONPATH": str(tree)}
                cmd = [sys.executable, str(Path(__file__).resolve()), "--json"]
                cmd += ["--schools", str(n), "--clients", str(args.clients)]
                cmd += ["--seconds", str(args.seconds), "--events", str(args.events)]
                if args.gc_freeze:
                    cmd.append("--gc-freeze")
                out = subprocess.run(cmd, env=env, check=False, capture_output=True, text=True)
                if out.returncode == 0:
                    other = json.loads(out.stdout.strip().splitlines()[-1])
                else:
                    print(f"main failed at {n} schools:\n{out.stderr[-2000:]}")
            finally:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    check=False,
                    capture_output=True,
                )
        _print(result, other)


if __name__ == "__main__":
    main()
