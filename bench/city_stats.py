"""Pure figures for bench/city.py: percentiles, poll coverage and gaps, the verdict table.

No I/O here: the benchmark's processes record raw times, these functions turn them into the
figures it prints (and tests/bench/test_city_stats.py checks them).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation between closest ranks; None if empty."""
    data = sorted(values)
    if not data:
        return None
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    rank = (len(data) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return data[low] + (data[high] - data[low]) * (rank - low)


def poll_starts(arrivals: Iterable[float], same_poll_within: float) -> list[float]:
    """Poll start times from the arrival times of a switch's sysUpTime GETs.

    A GET that arrives within ``same_poll_within`` seconds of the previous one is a retry of
    the same poll (the manager timed out and asked again), not a new poll.
    """
    starts: list[float] = []
    last: float | None = None
    for t in sorted(arrivals):
        if last is None or t - last >= same_poll_within:
            starts.append(t)
        last = t
    return starts


@dataclass(frozen=True, slots=True)
class Gaps:
    """The longest time each switch went without a poll, over a window."""

    worst: float
    """The longest gap of any switch (seconds)."""
    worst_switch: str | None
    over: int
    """Switches whose longest gap exceeded the limit."""
    never_polled: int
    """Switches with no poll at all in the window (nor before it)."""


def poll_gaps(
    polls: Mapping[str, Sequence[float]],
    start: float,
    end: float,
    limit: float,
    switches: Iterable[str] | None = None,
) -> Gaps:
    """The worst gap between consecutive polls of one switch within [start, end].

    The last poll before ``start`` anchors the first gap; the time from a switch's last poll to
    ``end`` counts as a gap too (a switch that stops being polled shows). A switch never polled
    at all counts as one gap of ``end - start``.

    Args:
        polls: poll start times by switch id.
        start: window start (seconds, the same clock as ``polls``).
        end: window end.
        limit: a gap longer than this is counted in ``Gaps.over``.
        switches: every switch that should have been polled (default: the keys of ``polls``).
    """
    worst = 0.0
    worst_switch: str | None = None
    over = 0
    never = 0
    for switch in switches if switches is not None else polls:
        times = sorted(polls.get(switch, ()))
        before = [t for t in times if t <= start]
        inside = [t for t in times if start < t <= end]
        if not before and not inside:
            never += 1
            gap = end - start
        else:
            anchor = [before[-1]] if before else [start]
            points = [*anchor, *inside, end]
            gap = max(b - a for a, b in itertools.pairwise(points))
        if gap > limit:
            over += 1
        if gap > worst:
            worst, worst_switch = gap, switch
    return Gaps(worst, worst_switch, over, never)


def coverage_per_cycle(
    polls: Mapping[str, Sequence[float]],
    start: float,
    end: float,
    interval: float,
    switches: Iterable[str] | None = None,
    tolerance: float = 0.0,
) -> list[float]:
    """For each whole ``interval`` from ``start`` up to ``end``: the fraction of switches polled.

    A poll up to ``tolerance`` seconds after a cycle's end still counts for that cycle: a
    switch polled every 60.5 s would otherwise miss a fixed 60 s window now and then while
    never going longer than the target between polls. A partial interval at the end is left
    out (a switch may rightly not be due in it).
    """
    names = list(switches if switches is not None else polls)
    if not names or interval <= 0:
        return []
    cycles = int((end - start) // interval)
    out = []
    for k in range(cycles):
        lo, hi = start + k * interval, start + (k + 1) * interval + tolerance
        polled = sum(1 for s in names if any(lo <= t < hi for t in polls.get(s, ())))
        out.append(polled / len(names))
    return out


def growth_per_hour(size_start: int, size_end: int, seconds: float) -> float | None:
    """Bytes per hour from two sizes ``seconds`` apart; None without a measurable window."""
    if seconds <= 0:
        return None
    return (size_end - size_start) * 3600 / seconds


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the result table."""

    figure: str
    value: str
    target: str = ""
    verdict: str = ""
    """PASS, FAIL, or "" for a figure without a target."""


def verdict(ok: bool | None) -> str:
    """PASS / FAIL, or n/a when the figure could not be measured."""
    if ok is None:
        return "n/a"
    return "PASS" if ok else "FAIL"


def render_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned plain-text table (wide East Asian characters counted as two)."""

    def width(text: str) -> int:
        return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)

    def pad(text: str, n: int) -> str:
        return text + " " * (n - width(text))

    head = Row("figure", "measured", "target", "verdict")
    table = [head, *rows]
    widths = [max(width(getattr(r, f)) for r in table) for f in Row.__slots__]
    lines = []
    for i, r in enumerate(table):
        cells = [pad(getattr(r, f), w) for f, w in zip(Row.__slots__, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def human_bytes(n: float | None) -> str:
    """1536 -> '1.5 KiB'."""
    if n is None:
        return "n/a"
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
