"""How long the garbage collector holds the process, per generation (``edumon_gc_pause_seconds``).

Every part of the daemon shares one event loop, so a collection is a pause of polling, ingest
and the API alike. ``GcPauses.install`` hooks ``gc.callbacks``; ``app.run`` installs one for
the daemon's lifetime and the exporter reads it at scrape time (docs/architecture.md, "Hot
paths and readers").
"""

from __future__ import annotations

import gc
import time
from typing import Any

from edumon.domain.counters import DurationHistogram

GC_PAUSE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""A young collection is well under a millisecond; a full one over a city's heap is tenths."""


class GcPauses:
    """Durations of garbage collections, one histogram per generation (0, 1, 2)."""

    def __init__(self) -> None:
        self.by_generation = tuple(DurationHistogram(GC_PAUSE_BUCKETS) for _ in range(3))
        self.longest_seconds = 0.0
        self._started: float | None = None

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        if self._started is None:
            return
        took = time.perf_counter() - self._started
        self._started = None
        generation = int(info.get("generation", 2))
        self.by_generation[min(max(generation, 0), 2)].observe(took)
        self.longest_seconds = max(self.longest_seconds, took)

    def install(self) -> None:
        """Start timing collections (idempotent)."""
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        """Stop timing collections."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
