"""The running daemon's data-quality warnings (edumon.domain.quality over its state)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from edumon.domain.quality import Freshness, QualityWarning, check_quality
from edumon.runtime import Runtime


def freshness(runtime: Runtime) -> Freshness:
    """The freshness rules of this daemon: its poll interval and terminal heartbeat timeout."""
    config = runtime.config
    return Freshness(
        poll_interval=config.polling.interval_seconds,
        heartbeat_timeout=config.mqtt.heartbeat_timeout_seconds,
    )


def data_quality(
    runtime: Runtime,
    school: str | Iterable[str] | None = None,
    *,
    now: float | None = None,
) -> list[QualityWarning]:
    """Every current data-quality warning, or one school's; ordered by school then classroom.

    Args:
        runtime: the daemon's parts; read only.
        school: one school's code, several, or None for every school.
        now: the current time (Unix seconds); the wall clock when not given.
    """
    schools = [school] if isinstance(school, str) else school
    terminals = runtime.terminals
    return check_quality(
        runtime.state,
        terminals.terminals if terminals is not None else {},
        terminals.unknown.entries() if terminals is not None else (),
        time.time() if now is None else now,
        freshness(runtime),
        schools=schools,
        district=runtime.config.district.code,
    )
