"""The terminals the last run left online, read from the stored events on both backends."""

from __future__ import annotations

from edumon.domain.models import Event, EventKind
from edumon.store.repository import Store

T0 = 1_725_148_800.0


def event(kind: EventKind, terminal: str, at: float, school: str = "S1") -> Event:
    return Event(
        at=T0 + at,
        kind=kind,
        device_id=terminal,
        school=school,
        classroom=terminal,
        message=f"terminal {terminal} {kind.value}",
    )


ON, OFF = EventKind.TERMINAL_ONLINE, EventKind.TERMINAL_OFFLINE


async def test_the_newest_terminal_event_decides(store: Store) -> None:
    await store.write(
        [],
        [],
        [
            event(ON, "T1", 10),
            event(OFF, "T1", 20),
            event(ON, "T1", 30),  # left online
            event(ON, "T2", 10),
            event(OFF, "T2", 20),  # left offline
            event(ON, "T3", 5),  # left online, long ago
            event(ON, "T1", 40, school="S2"),  # another school's terminal of the same id
            event(OFF, "T1", 40),  # S1's T1 went offline after all (same instant, later id)
            event(EventKind.LINK_DOWN, "T4", 50),  # not a terminal event
        ],
    )
    left = await store.terminals_left_online(T0)
    assert sorted((school, terminal, at - T0) for school, terminal, at in left) == [
        ("S1", "T3", 5.0),
        ("S2", "T1", 40.0),
    ]
    # Only events from `since` on: T3's is older.
    assert [(s, t) for s, t, _ in await store.terminals_left_online(T0 + 6)] == [("S2", "T1")]
