"""The daily availability roll-up: written once a day is over, back-filled on start-up.

The daemon records its monitoring run (``monitor_runs``: when it started, and every minute
that it is still running), so that reports know which lesson time was monitored. Once a local
date is over, each classroom's figures for it are computed from the stored events and written
to ``classroom_availability_daily``; monthly reports read those rows instead of recomputing
every day from the events. On start-up every day missing since the first recorded run is
back-filled (days the daemon was down are rolled up too: as "not monitored").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import date, timedelta

from edumon.errors import StoreError
from edumon.reports.availability import (
    ReportError,
    Sources,
    compute_days,
    selected_schools,
    terminal_refs,
    to_row,
)

log = logging.getLogger(__name__)

KEEP_ALIVE_SECONDS = 60.0
"""How often the run's end is moved forward: a crash loses at most this much monitored time
(it then reads "not monitored", never "offline")."""
BACKFILL_CHUNK_DAYS = 14
"""Days computed (and written) together when back-filling: one read of the events each."""


async def roll_up(src: Sources, days: list[date], now: float) -> int:
    """Compute and store the roll-up rows of consecutive local dates that are over.

    Returns:
        How many rows were written.

    Raises:
        ReportError: no schedule or calendar.
        StoreError: the database failed.
    """
    if not days:
        return 0
    schools = selected_schools(src, None)
    refs = terminal_refs(src, schools)
    by_room = await compute_days(src, schools, days, now)
    school_of = {room.id: ref.code for ref in schools for room in ref.classrooms}
    rows = [
        to_row(school_of[room], refs[room].terminal, day, now)
        for room, room_days in by_room.items()
        for day in room_days
    ]
    await src.store.upsert_availability(rows)
    return len(rows)


async def backfill(src: Sources, now: float) -> int:
    """Roll up every day that is over and missing, from the first monitoring run's date.

    Returns:
        How many days were rolled up.

    Raises:
        ReportError: no schedule or calendar.
        StoreError: the database failed.
    """
    first_run = await src.store.first_run_started()
    if first_run is None:
        return 0
    first, today = src.local_date(first_run), src.local_date(now)
    if first >= today:
        return 0
    done = await src.store.rolled_up_days(first, today)
    missing = [
        first + timedelta(days=i)
        for i in range((today - first).days)
        if first + timedelta(days=i) not in done
    ]
    chunk: list[date] = []
    for day in [*missing, None]:
        consecutive = day is not None and (not chunk or day == chunk[-1] + timedelta(days=1))
        if consecutive and len(chunk) < BACKFILL_CHUNK_DAYS:
            assert day is not None
            chunk.append(day)
            continue
        if chunk:
            await roll_up(src, chunk, now)
            log.info("availability roll-up: %s to %s written", chunk[0], chunk[-1])
        chunk = [day] if day is not None else []
    return len(missing)


async def keep_availability(
    src: Sources,
    *,
    clock: Callable[[], float] = time.time,
    every_seconds: float = KEEP_ALIVE_SECONDS,
) -> None:
    """The daemon's task: record the monitoring run and roll up each day once it is over.

    Database failures are logged and retried on the next tick; the task runs until cancelled.
    """
    run: int | None = None
    rolled_until: date | None = None
    try:
        while True:
            now = clock()
            try:
                if run is None:
                    run = await src.store.start_run(now)
                else:
                    await src.store.keep_run(run, now)
                today = src.local_date(now)
                if rolled_until != today:
                    await backfill(src, now)
                    rolled_until = today
            except StoreError as exc:
                log.warning("availability roll-up: %s; retrying in %.0f s", exc, every_seconds)
            except ReportError as exc:
                # No schedule: nothing to roll up, but the run is still worth recording.
                if rolled_until is None:
                    log.info("availability roll-up off: %s", exc)
                rolled_until = src.local_date(now)
            await asyncio.sleep(every_seconds)
    except asyncio.CancelledError:
        # Shutting down: the run's last minute counts as monitored too.
        if run is not None:
            with contextlib.suppress(StoreError):
                await src.store.keep_run(run, clock())
        raise
