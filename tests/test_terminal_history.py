"""Historical heartbeats (``"hist": true``, or late ones the session rules would ignore): stored
at their own time, never a sign of life now (docs/wire-protocol.md, "Historical heartbeats")."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edumon.config import Config, parse_config
from edumon.domain.models import EventKind
from edumon.domain.terminals import (
    HISTORICAL_LAG_SECONDS,
    HISTORICAL_MAX_AHEAD_SECONDS,
    IGNORED_DUPLICATE,
    IGNORED_HISTORICAL_AHEAD,
    TerminalsState,
)
from edumon.wire import Heartbeat, WireError, encode_heartbeat, parse_heartbeat, parse_topic
from tests.domain.conftest import DISTRICT
from tests.test_collector import FlakyStore, heartbeat, terminal_collector

TOPIC = "edumon/v1/t/S1/terminal/S1-101/heartbeat"


@pytest.fixture
def config() -> Config:
    return parse_config(DISTRICT)


def hist(seq: int, observed_at: float, *, boot: str = "b1", birth_seq: int = 1) -> Heartbeat:
    return replace(
        heartbeat(seq, boot=boot),
        observed_at=observed_at,
        birth_seq=birth_seq,
        historical=True,
    )


def terminals_of(collector: object) -> TerminalsState:
    terminals = collector.terminals  # type: ignore[attr-defined]
    assert isinstance(terminals, TerminalsState)
    return terminals


def test_hist_field_round_trips_and_is_absent_from_live_payloads() -> None:
    live = heartbeat(1)
    payload = encode_heartbeat(live)
    assert b'"hist"' not in payload  # a live heartbeat is what it was before the field
    assert parse_heartbeat(parse_topic(TOPIC), payload).historical is False
    late = encode_heartbeat(replace(live, historical=True))
    assert late.endswith(b',"hist":true}')
    assert parse_heartbeat(parse_topic(TOPIC), late).historical is True
    for bad in (b'"yes"', b"1", b"null"):
        with pytest.raises(WireError, match="bad_field: hist"):
            parse_heartbeat(parse_topic(TOPIC), late.replace(b"true", bad))


async def test_historical_heartbeats_are_samples_at_their_own_time_changing_nothing_now(
    config: Config,
) -> None:
    now = [2000.0]
    store = FlakyStore()
    collector = terminal_collector(config, store, now)
    terminals = terminals_of(collector)
    # Online at 2000, then silent: offline at its last sign of life after 30 s.
    collector.submit_terminal(replace(heartbeat(10), observed_at=2000.0), 2000.0)
    await collector.drain()
    now[0] = 2031.0
    collector.expire_terminals()
    st = terminals.terminal("S1", "S1-101")
    assert st is not None
    assert st.online is False
    before = (st.online, st.session, st.last_seq, st.last_seen, st.offline_since)
    # The spool's backlog arrives while the collector still sees it offline.
    for i, seq in enumerate((11, 12, 13)):
        collector.submit_terminal(hist(seq, 2000.0 + 400.0 * (i + 1)), 3300.0 + i)
    await collector.drain()
    assert (st.online, st.session, st.last_seq, st.last_seen, st.offline_since) == before
    assert [e.kind for e in store.events] == [
        EventKind.TERMINAL_ONLINE,
        EventKind.TERMINAL_OFFLINE,
    ]
    samples = {s.seq: s.at for s in store.terminal_samples}
    assert samples == {10: 2000.0, 11: 2400.0, 12: 2800.0, 13: 3200.0}
    assert terminals.historical == 3
    # Once online again, history does not extend the timeout: it counts from the live one.
    collector.submit_terminal(replace(heartbeat(20, boot="b2"), birth_seq=2), 4000.0)
    collector.submit_terminal(hist(21, 3990.0, boot="b2", birth_seq=1), 4020.0)
    await collector.drain()
    assert st.last_seen == 4000.0
    now[0] = 4031.0
    collector.expire_terminals()
    assert st.online is False
    assert st.offline_since == 4000.0


async def test_a_late_heartbeat_without_the_flag_is_history_when_old_enough(
    config: Config,
) -> None:
    now = [5000.0]
    store = FlakyStore()
    collector = terminal_collector(config, store, now)
    terminals = terminals_of(collector)
    collector.submit_terminal(replace(heartbeat(50), observed_at=5000.0), 5000.0)
    # seq below the newest, observed long before it: history (an older spool, a late queue).
    old = replace(heartbeat(40), observed_at=5000.0 - HISTORICAL_LAG_SECONDS - 300.0)
    collector.submit_terminal(old, 5001.0)
    # seq below the newest, observed just before it: a redelivery, ignored as before.
    collector.submit_terminal(replace(heartbeat(49), observed_at=4999.0), 5002.0)
    await collector.drain()
    assert terminals.historical == 1
    assert terminals.ignored[IGNORED_DUPLICATE] == 1
    assert {s.seq: s.at for s in store.terminal_samples} == {50: 5000.0, 40: old.observed_at}


async def test_history_dated_in_the_future_is_not_stored(config: Config) -> None:
    now = [6000.0]
    store = FlakyStore()
    collector = terminal_collector(config, store, now)
    terminals = terminals_of(collector)
    collector.submit_terminal(hist(1, 6000.0 + HISTORICAL_MAX_AHEAD_SECONDS + 1.0), 6000.0)
    collector.submit_terminal(hist(2, 5990.0), 6000.0)
    await collector.drain()
    assert terminals.ignored[IGNORED_HISTORICAL_AHEAD] == 1
    assert [s.seq for s in store.terminal_samples] == [2]
    st = terminals.terminal("S1", "S1-101")
    assert st is not None
    assert st.online is None  # history alone never makes a terminal known to be online
    assert store.events == []


async def test_history_of_an_unknown_terminal_counts_as_unknown(config: Config) -> None:
    store = FlakyStore()
    collector = terminal_collector(config, store, [0.0])
    collector.submit_terminal(replace(hist(1, 100.0), terminal="T-nobody"), 200.0)
    await collector.drain()
    assert [u.terminal for u in terminals_of(collector).unknown.entries()] == ["T-nobody"]
    assert store.terminal_samples == []


def test_example_agent_config_documents_the_spool_keys() -> None:
    example = Path(__file__).resolve().parents[1] / "agents/terminal/agent.example.toml"
    text = example.read_text(encoding="utf-8")
    for key in ("spool_path", "spool_max_bytes", "spool_drain_per_second"):
        assert f"# {key} = " in text
