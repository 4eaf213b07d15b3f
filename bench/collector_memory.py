"""Benchmark: the collector's memory under 20,000 heartbeating terminals, with tracemalloc.

Terminals (``--schools`` × 40) heartbeat every 30 simulated seconds through the real
``Collector`` and ``TerminalsState`` into a real SQLite file, as fast as the machine takes them
(a fake clock: no waiting for real time). Every few simulated minutes it prints the process's
RSS, the Python heap traced by tracemalloc and the rows waiting for the database; at the end,
where the heap grew most since the first minutes. ``--code DIR`` runs another checkout (e.g.
``git archive <commit>`` unpacked) to compare.

What it found on the layout that stored every heartbeat (500 schools, a shared 2-core machine):
rows waited in memory because each write, retried after a timeout with everything that had
arrived meanwhile, grew until it never succeeded — RSS 265 → 542 MiB in 6 simulated minutes,
255,000 rows pending, the heap's growth all in pending heartbeat rows (``TerminalSample`` in
collector.py and the retried batch's tuples in store/writes.py). Now the rows are a heartbeat
per terminal per 5 minutes and a write takes at most 20,000 rows: RSS stayed at 223-225 MiB
and the heap at 12-13 MiB over the same run.

Usage: ``python bench/collector_memory.py [--schools 500] [--minutes 10] [--code DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--schools", type=int, default=500)
    p.add_argument("--minutes", type=int, default=10, help="simulated minutes")
    p.add_argument("--code", type=Path, default=REPO, help="the edumon checkout to run")
    return p.parse_args()


ARGS = parse_args()
sys.path.insert(0, str(ARGS.code.resolve()))

from edumon.collector import Collector  # noqa: E402
from edumon.domain.inventory import ClassroomRef, Inventory, SchoolRef  # noqa: E402
from edumon.domain.state import NetworkState  # noqa: E402
from edumon.domain.terminals import TerminalInventory, TerminalsState  # noqa: E402
from edumon.store import open_store  # noqa: E402
from edumon.wire import Heartbeat  # noqa: E402


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def city(schools: int) -> Inventory:
    refs = {}
    for n in range(schools):
        code = f"33{n:08d}"
        rooms = tuple(ClassroomRef(f"{code}-r{r:02d}", f"{r}班", None, None) for r in range(40))
        refs[code] = SchoolRef(code, code, "primary", f"{code}-core", "Gi0/1", rooms)
    return Inventory(refs, {f"{code}-core": code for code in refs})


def heartbeat(school: str, terminal: str, seq: int, at: float) -> Heartbeat:
    return Heartbeat(
        "d", school, terminal, f"boot-{terminal}", seq, 1, at, 30.0 * seq, "1.4.2", "eth0",
        1000, "full", "10.0.0.2", "02:00:5e:00:00:02", 12.5, 2**31, 2**33, 2**35, 2**37,
    )  # fmt: skip


async def main() -> None:
    args = ARGS
    inventory = city(args.schools)
    terminals = TerminalsState(TerminalInventory.from_inventory(inventory, district="d"))
    refs = list(terminals.inventory)
    now = [1_725_148_800.0]
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(f"sqlite:///{tmp}/edumon.db")
        collector = Collector(
            NetworkState(inventory), store, terminals=terminals, clock=lambda: now[0]
        )
        consumer = asyncio.create_task(collector.run())
        tracemalloc.start(8)
        first: tracemalloc.Snapshot | None = None
        print(f"{len(refs):,} terminals, {args.minutes} simulated minutes; code: {args.code}")
        print(f"{'minute':>6} {'RSS MiB':>8} {'heap MiB':>9} {'pending rows':>13}")
        try:
            for step in range(args.minutes * 2):
                for i, ref in enumerate(refs):
                    at = now[0] + 30.0 * i / len(refs)
                    collector.submit_terminal(heartbeat(ref.school, ref.terminal, step + 1, at), at)
                    if collector.queue_depth > 5_000:
                        while collector.queue_depth:  # noqa: ASYNC110  (no notification)
                            await asyncio.sleep(0.001)
                while collector.queue_depth:  # noqa: ASYNC110
                    await asyncio.sleep(0.001)
                now[0] += 30.0
                collector.expire_terminals()
                if step == 2:
                    gc.collect()
                    first = tracemalloc.take_snapshot()
                if step % 4 == 3:
                    heap = tracemalloc.get_traced_memory()[0] / 2**20
                    pending = collector.stats.pending_rows
                    print(f"{(step + 1) / 2:>6.0f} {rss_mib():>8.1f} {heap:>9.1f} {pending:>13,}")
        finally:
            consumer.cancel()
            await store.aclose()
    gc.collect()
    if first is not None:
        print("largest heap growth since minute 1:")
        for stat in tracemalloc.take_snapshot().compare_to(first, "lineno")[:5]:
            print(f"  {stat}")


if __name__ == "__main__":
    asyncio.run(main())
