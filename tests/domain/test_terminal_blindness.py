"""Blindness and bounded sessions: a broker's outage or a forged session never makes terminals
offline (docs/wire-protocol.md, "When the collector is blind" and "Bounds on sessions")."""

from __future__ import annotations

from edumon.domain.models import EventKind
from edumon.domain.terminals import (
    IGNORED_BROKER_WILL,
    IGNORED_CLOCK_SKEW,
    IGNORED_OLD_SESSION,
    MAX_BD_SEQ_JUMP,
    WILL_BURST_SCHOOLS,
    WILL_BURST_TERMINALS,
    TerminalInventory,
    TerminalsState,
)
from edumon.wire import Heartbeat, Status

T0 = 1_780_000_000.0  # the collector's clock in these scenarios
TIMEOUT = 90.0
HOLD = 0.5


def inventory(schools: int = 3, per_school: int = 10) -> TerminalInventory:
    return TerminalInventory(
        {
            (f"S{s}", f"S{s}-{r}"): f"S{s}-{r}"
            for s in range(1, schools + 1)
            for r in range(1, per_school + 1)
        },
        district="t",
    )


def hb(terminal: str, seq: int, at: float, *, boot: str = "b1", bd: int = 1) -> Heartbeat:
    return Heartbeat(
        district="t",
        school=terminal.split("-")[0],
        terminal=terminal,
        boot_id=boot,
        seq=seq,
        birth_seq=bd,
        observed_at=at,
        uptime_seconds=100.0,
        agent_version="1.0.0",
        nic="Ethernet",
        link_speed_mbps=1000,
        duplex="full",
        ip=None,
        mac=None,
        cpu_percent=None,
        memory_used_bytes=None,
        memory_total_bytes=None,
        disk_used_bytes=None,
        disk_total_bytes=None,
    )


def status(
    terminal: str, state: str, reason: str, seq: int, at: float, *, boot: str = "b1", bd: int = 1
) -> Status:
    return Status(
        district="t",
        school=terminal.split("-")[0],
        terminal=terminal,
        state=state,  # type: ignore[arg-type]
        reason=reason,  # type: ignore[arg-type]
        boot_id=boot,
        seq=seq,
        birth_seq=bd,
        observed_at=at,
        agent_version="1.0.0",
    )


def online_state(hold: float = HOLD, **kw: object) -> TerminalsState:
    """Every terminal born (seq 2) and heartbeating (seq 3) at T0."""
    state = TerminalsState(inventory(), will_hold_seconds=hold, **kw)  # type: ignore[arg-type]
    for st in list(state.terminals.values()):
        state.apply(status(st.terminal, "online", "birth", 2, T0), T0)
        state.apply(hb(st.terminal, 3, T0), T0)
    assert all(st.online for st in state.terminals.values())
    return state


def test_wills_held_when_the_link_drops_are_the_brokers_and_nothing_goes_offline() -> None:
    state = online_state()
    # Mosquitto shutting down publishes the Wills of some terminals, then closes our link.
    for st in list(state.terminals.values())[:20]:
        assert state.apply(status(st.terminal, "offline", "will", 1, T0), T0 + 10) == ()
    # (so many Wills across two schools are a burst already: those terminals are unknown)
    state.go_blind(T0 + 10.01)
    assert state.unknown_count() == 30
    assert state.held == {}
    assert state.ignored[IGNORED_BROKER_WILL] == 20
    # No timeout runs while blind, however long.
    assert state.expire(T0 + 1_000, TIMEOUT) == ()
    assert state.release(T0 + 1_000) == ()
    assert all(st.online and st.unknown_since is not None for st in state.terminals.values())
    # The link is back at T0 + 1000: retained Wills of the old sessions are stale knowledge.
    state.regain_sight(T0 + 1_000)
    for st in list(state.terminals.values())[:5]:
        assert state.apply(status(st.terminal, "offline", "will", 1, T0), T0 + 1_000.1) == ()
    assert state.release(T0 + 1_002) == ()
    # Fresh data ends unknown without an event (the terminal never went offline for edumon).
    assert state.apply(hb("S1-1", 4, T0 + 1_005), T0 + 1_005) == ()
    assert state.terminals[("S1", "S1-1")].unknown_since is None
    # A full window after the link returned before a silent terminal can time out.
    assert state.expire(T0 + 1_000 + TIMEOUT, TIMEOUT) == ()
    expired = state.expire(T0 + 1_000 + TIMEOUT + 1, TIMEOUT)
    assert len(expired) == 29  # all but S1-1, which reported
    assert all(e.kind is EventKind.TERMINAL_OFFLINE for e in expired)
    assert {e.details["reason"] for e in expired} == {"timeout"}


def test_a_will_counts_after_the_hold_dated_when_it_arrived() -> None:
    state = online_state()
    assert state.apply(status("S1-1", "offline", "will", 1, T0), T0 + 10) == ()
    assert state.release(T0 + 10 + HOLD / 2) == ()
    events = state.release(T0 + 10 + HOLD)
    assert [e.kind for e in events] == [EventKind.TERMINAL_OFFLINE]
    assert events[0].at == T0 + 10
    assert events[0].details["reason"] == "will"


def test_a_held_will_counts_before_a_newer_message_of_its_terminal() -> None:
    state = online_state()
    state.apply(status("S1-1", "offline", "will", 1, T0), T0 + 10)
    events = state.apply(status("S1-1", "online", "birth", 5, T0 + 10.2, bd=2), T0 + 10.2)
    assert [e.kind for e in events] == [EventKind.TERMINAL_OFFLINE, EventKind.TERMINAL_ONLINE]


def test_a_burst_of_wills_across_schools_is_the_brokers() -> None:
    assert WILL_BURST_SCHOOLS <= 3
    assert WILL_BURST_TERMINALS <= 30
    state = online_state()
    for st in list(state.terminals.values()):
        state.apply(status(st.terminal, "offline", "will", 1, T0), T0 + 10.001)
    assert state.release(T0 + 20) == ()
    assert state.ignored[IGNORED_BROKER_WILL] == 30
    assert all(st.online and st.unknown_since is not None for st in state.terminals.values())
    # A full window from the burst before a silent one is timed out.
    assert state.expire(T0 + 10 + TIMEOUT - 1, TIMEOUT) == ()
    assert len(state.expire(T0 + 10.001 + TIMEOUT + 1, TIMEOUT)) == 30


def test_wills_of_one_school_are_not_a_burst() -> None:
    state = online_state()
    for r in range(1, 11):
        state.apply(status(f"S2-{r}", "offline", "will", 1, T0), T0 + 10)
    events = state.release(T0 + 11)
    assert len(events) == 10
    assert state.ignored[IGNORED_BROKER_WILL] == 0


def test_a_clean_shutdown_is_the_terminals_even_after_a_blind_spell() -> None:
    state = online_state()
    state.go_blind(T0 + 5)
    state.regain_sight(T0 + 50)
    events = state.apply(status("S1-2", "offline", "shutdown", 4, T0 + 40), T0 + 50.1)
    assert [e.details["reason"] for e in events] == ["shutdown"]


def test_a_terminal_offline_before_a_blind_spell_is_unknown_then_offline_again() -> None:
    state = online_state()
    state.apply(status("S1-3", "offline", "shutdown", 4, T0), T0 + 1)
    state.go_blind(T0 + 5)
    st = state.terminals[("S1", "S1-3")]
    assert st.online is False
    assert st.unknown_since == T0 + 5
    state.regain_sight(T0 + 50)
    state.apply(status("S1-3", "offline", "shutdown", 4, T0), T0 + 50.1)  # retained again
    state.expire(T0 + 50 + TIMEOUT + 1, TIMEOUT)
    assert st.online is False
    assert st.unknown_since is None


def test_a_future_timestamp_is_ignored_as_clock_skew() -> None:
    state = online_state(max_clock_skew_seconds=3_600)
    forged = hb("S1-1", 1, 8_520_000_000.0, boot="forged", bd=1_000_000)  # the year 2240
    assert state.apply(forged, T0 + 5) == ()
    assert state.ignored[IGNORED_CLOCK_SKEW] == 1
    assert state.terminals[("S1", "S1-1")].session == ("b1", 1)
    # Within the window a clock ahead still counts.
    assert state.apply(hb("S1-2", 4, T0 + 3_000), T0 + 5) == ()
    assert state.terminals[("S1", "S1-2")].last_seq == 4


def test_a_bd_seq_beyond_the_jump_bound_does_not_replace_a_live_session() -> None:
    state = online_state()
    forged = hb("S1-1", 1, T0 - 100, boot="forged", bd=1 + MAX_BD_SEQ_JUMP + 1)
    assert state.apply(forged, T0 + 5) == ()
    assert state.ignored[IGNORED_OLD_SESSION] == 1
    # Within the bound, a reconnect of a restarted agent replaces it as before.
    assert state.apply(hb("S1-1", 1, T0 - 100, boot="b2", bd=2), T0 + 6) == ()
    assert state.terminals[("S1", "S1-1")].session == ("b2", 2)


def test_a_forged_session_that_slipped_through_loses_to_the_real_heartbeats() -> None:
    state = online_state()
    st = state.terminals[("S1", "S1-1")]
    # Plausible in every bound: a small bd_seq jump, a clock a minute ahead.
    state.apply(hb("S1-1", 1, T0 + 70, boot="forged", bd=5), T0 + 10)
    assert st.session == ("forged", 5)
    # The real terminal keeps heartbeating in its session; the forged one says nothing more.
    assert state.apply(hb("S1-1", 4, T0 + 30), T0 + 30) == ()
    assert st.session == ("forged", 5)
    assert state.apply(hb("S1-1", 5, T0 + 60), T0 + 60) == ()
    assert st.session == ("b1", 1)
    assert st.last_seen == T0 + 60
    assert state.takeovers == 1
    # It never went offline: the next timeout counts from the real heartbeat.
    expired = state.expire(T0 + 60 + TIMEOUT, TIMEOUT)
    assert "S1-1" not in {e.device_id for e in expired}
    assert st.online


def test_two_live_sessions_do_not_take_each_other_over() -> None:
    state = online_state()
    st = state.terminals[("S1", "S1-1")]
    # The current session keeps talking: an older one's messages stay ignored.
    for i in range(5):
        state.apply(hb("S1-1", 10 + i, T0 + 30 * i), T0 + 30 * i)
        state.apply(hb("S1-1", 100 + i, T0 - 900 + i, boot="b0", bd=0), T0 + 30 * i + 1)
    assert st.session == ("b1", 1)
    assert state.takeovers == 0


def test_a_session_that_goes_silent_later_is_taken_over() -> None:
    state = online_state()
    st = state.terminals[("S1", "S1-1")]
    state.apply(hb("S1-1", 100, T0 - 900, boot="b0", bd=0), T0 + 1)
    state.apply(hb("S1-1", 4, T0 + 30), T0 + 30)  # the current session still speaks
    state.apply(hb("S1-1", 101, T0 - 899, boot="b0", bd=0), T0 + 31)
    assert st.session == ("b1", 1)
    # Now only the other one speaks: it is the terminal.
    state.apply(hb("S1-1", 102, T0 - 898, boot="b0", bd=0), T0 + 61)
    assert st.session == ("b0", 0)


def test_a_terminal_known_only_by_a_retained_will_is_not_unknown_for_ever() -> None:
    state = TerminalsState(inventory(), will_hold_seconds=HOLD)
    state.apply(status("S1-1", "offline", "will", 1, T0), T0)  # retained, at start
    state.release(T0 + 1)
    st = state.terminals[("S1", "S1-1")]
    assert st.online is False
    assert st.last_seen is None
    state.go_blind(T0 + 5)
    state.regain_sight(T0 + 10)
    assert st.unknown_since is not None
    state.expire(T0 + 10 + TIMEOUT + 1, TIMEOUT)
    assert st.unknown_since is None
