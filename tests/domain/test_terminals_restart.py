"""Terminals the last run left online: the interval is closed when they are not online now.

Availability is rebuilt from stored TERMINAL_ONLINE/OFFLINE events (``intervals_from_events``);
a collector stopped or killed while a terminal was online left that interval open. After the
restart, a Will or shutdown (queued by the broker, or retained) or a timeout with nothing heard
closes it; a heartbeat continues it.
"""

from __future__ import annotations

import pytest

from edumon.config import Config, inventory_of
from edumon.domain.event_text import Names, describe
from edumon.domain.models import Event, EventKind
from edumon.domain.terminals import TerminalInventory, TerminalsState, intervals_from_events
from tests.domain.test_terminals import hb, shutdown, will

TIMEOUT = 100.0
START = 10_000.0  # the restart
BEFORE = Event(
    at=1_000.0,
    kind=EventKind.TERMINAL_ONLINE,
    device_id="S1-101",
    school="S1",
    classroom="S1-101",
    message="terminal S1-101 of classroom S1-101 is online",
)


@pytest.fixture
def restarted(district: Config) -> TerminalsState:
    state = TerminalsState(TerminalInventory.from_inventory(inventory_of(district), district="t"))
    assert state.restore_online("S1", "S1-101", START)
    assert not state.restore_online("S1", "nope", START)
    return state


def only(events: tuple[Event, ...]) -> Event:
    (event,) = events
    return event


def test_a_will_after_the_restart_closes_the_interval(restarted: TerminalsState) -> None:
    offline = only(restarted.apply(will(7), START + 2))
    assert offline.kind is EventKind.TERMINAL_OFFLINE
    assert (offline.at, offline.details["reason"], offline.details["after_restart"]) == (
        START + 2,
        "will",
        True,
    )
    assert intervals_from_events([BEFORE, offline], until=START + 500) == ((1_000.0, START + 2),)
    st = restarted.terminal("S1", "S1-101")
    assert st is not None
    assert (st.online, st.offline_reason, st.left_online) == (False, "will", False)
    zh, en = describe(offline, Names())
    assert "离线" in zh
    assert "重启后" in zh
    assert "after the collector restarted" in en
    assert restarted.expire(START + 1_000, TIMEOUT) == ()  # closed once


def test_a_shutdown_closes_it_too(restarted: TerminalsState) -> None:
    assert only(restarted.apply(shutdown(7), START + 1)).details["reason"] == "shutdown"


def test_nothing_heard_closes_it_at_the_start_after_a_timeout(restarted: TerminalsState) -> None:
    assert restarted.expire(START + TIMEOUT, TIMEOUT) == ()  # a full window first
    offline = only(restarted.expire(START + TIMEOUT + 1, TIMEOUT))
    assert (offline.at, offline.details["reason"]) == (START, "timeout")
    assert intervals_from_events([BEFORE, offline], until=START + 500) == ((1_000.0, START),)
    assert restarted.expire(START + 1_000, TIMEOUT) == ()


def test_a_heartbeat_continues_it(restarted: TerminalsState) -> None:
    online = only(restarted.apply(hb(7), START + 5))
    assert online.kind is EventKind.TERMINAL_ONLINE
    assert restarted.expire(START + 50, TIMEOUT) == ()
    # Later silence is an ordinary timeout, dated at the last heartbeat.
    offline = only(restarted.expire(START + 5 + TIMEOUT + 1, TIMEOUT))
    assert (offline.at, offline.details.get("after_restart")) == (START + 5, None)
    assert intervals_from_events([BEFORE, online, offline], until=START + 500) == (
        (1_000.0, START + 5),
    )


def test_a_terminal_left_offline_gets_no_event_for_its_retained_will(district: Config) -> None:
    state = TerminalsState(TerminalInventory.from_inventory(inventory_of(district), district="t"))
    assert state.apply(will(7), START + 2) == ()  # the retained Will seen at a night start
    assert state.expire(START + 1_000, TIMEOUT) == ()


def test_no_timeout_while_blind_and_a_full_window_after(restarted: TerminalsState) -> None:
    restarted.go_blind(START + 10)
    assert restarted.expire(START + 500, TIMEOUT) == ()
    restarted.regain_sight(START + 600)
    assert restarted.expire(START + 600 + TIMEOUT, TIMEOUT) == ()
    assert only(restarted.expire(START + 601 + TIMEOUT, TIMEOUT)).at == START + 600
