"""The daily roll-up's days and the monitoring runs, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

from edumon.store import Store
from edumon.store.protocol import ClassroomAvailability

T0 = 1_725_148_800.0  # 2024-09-01T00:00:00Z


def row(day: date, classroom: str = "a-101") -> ClassroomAvailability:
    return ClassroomAvailability(
        day=day,
        school="s1",
        classroom=classroom,
        terminal=f"t-{classroom}",
        lesson_seconds=100.0,
        monitored_seconds=50.0,
        online_seconds=25.0,
        lessons=2,
        lessons_monitored=1,
        lessons_used=1,
        terminal_days=1,
        terminal_days_monitored=1,
        terminals_on=1,
        switched_on=True,
        computed_at=T0,
    )


async def test_rolled_up_days_are_the_days_with_rows(store: Store) -> None:
    assert await store.rolled_up_days(date(2024, 9, 1), date(2024, 10, 1)) == set()
    await store.upsert_availability(
        [row(date(2024, 9, 2)), row(date(2024, 9, 2), "a-102"), row(date(2024, 9, 5))]
    )
    assert await store.rolled_up_days(date(2024, 9, 1), date(2024, 10, 1)) == {
        date(2024, 9, 2),
        date(2024, 9, 5),
    }
    assert await store.rolled_up_days(date(2024, 9, 3), date(2024, 9, 5)) == set()


async def test_monitoring_runs_are_recorded_and_kept_alive(store: Store) -> None:
    assert await store.first_run_started() is None
    assert await store.monitor_runs(T0 - 1e6, T0 + 1e6) == []
    first = await store.start_run(T0)
    await store.keep_run(first, T0 + 600.5)
    second = await store.start_run(T0 + 3_600)
    assert second != first
    await store.keep_run(second, T0 + 4_200)
    assert await store.first_run_started() == T0
    assert await store.monitor_runs(T0 - 10, T0 + 10_000) == [
        (T0, T0 + 600.5),
        (T0 + 3_600, T0 + 4_200),
    ]
    # Only the runs overlapping the window.
    assert await store.monitor_runs(T0 + 1_000, T0 + 3_000) == []
    assert await store.monitor_runs(T0 + 4_000, T0 + 5_000) == [(T0 + 3_600, T0 + 4_200)]
