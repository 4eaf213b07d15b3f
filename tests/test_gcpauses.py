"""Garbage-collection pauses are timed per generation while installed, and only then."""

from __future__ import annotations

import gc

from edumon.gcpauses import GcPauses


def test_collections_are_timed_per_generation_while_installed() -> None:
    pauses = GcPauses()
    pauses.install()
    pauses.install()  # idempotent: one callback
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        pauses.uninstall()
    young, _, full = pauses.by_generation
    assert young.total >= 1
    assert full.total >= 1
    assert full.sum > 0.0
    assert pauses.longest_seconds >= max(young.sum / young.total, full.sum / full.total)
    counted = full.total
    gc.collect(2)  # uninstalled: not counted
    assert full.total == counted
    assert pauses._callback not in gc.callbacks
