"""The collector follows its broker link: blind while it is down, with one event per spell.

The link is the ingest's statistics (``IngestStats``, set by hand here: the unit under test is
the collector; tests/test_broker_outage.py runs the real broker, agents and daemon).
"""

from __future__ import annotations

from dataclasses import replace

from edumon.collector import Collector
from edumon.config import Config, inventory_of
from edumon.domain.models import EventKind
from edumon.domain.state import NetworkState
from edumon.domain.terminals import IGNORED_BROKER_WILL, TerminalInventory, TerminalsState
from edumon.sources.mqtt.ingest import IngestStats
from edumon.wire import Status
from tests.test_collector import FlakyStore, config, heartbeat

__all__ = ["config"]  # the fixture, shared


def collector_of(config: Config, now: list[float]) -> Collector:
    inventory = inventory_of(config)
    return Collector(
        NetworkState(inventory),
        FlakyStore(),
        terminals=TerminalsState(TerminalInventory.from_inventory(inventory, district="t")),
        heartbeat_timeout_seconds=30.0,
        clock=lambda: now[0],
        will_hold_seconds=0.5,
        blind_grace_seconds=10.0,
        monotonic=lambda: now[0],
    )


def will() -> Status:
    hb = heartbeat(1)
    return Status(
        district="t",
        school="S1",
        terminal="S1-101",
        state="offline",
        reason="will",
        boot_id=hb.boot_id,
        seq=0,
        birth_seq=hb.birth_seq,
        observed_at=900.0,
        agent_version="1.0",
    )


def kinds(collector: Collector) -> list[str]:
    store = collector.store
    assert isinstance(store, FlakyStore)
    return [e.kind.value for e in store.events]


async def test_a_lost_link_makes_the_collector_blind_and_holds_off_timeouts(
    config: Config,
) -> None:
    now = [1000.0]
    link = IngestStats(connected=True, connects_total=1)
    collector = collector_of(config, now)
    collector.submit_terminal(heartbeat(1), 1000.0)
    collector.expire_terminals(link=link)
    # The broker publishes the terminal's Will and closes our link in the same instant.
    collector.submit_terminal(will(), 1001.0)
    link.connected = False
    now[0] = 1001.2
    collector.expire_terminals(link=link)
    terminals = collector.terminals
    assert terminals is not None
    st = terminals.terminals[("S1", "S1-101")]
    assert st.online is True
    assert st.unknown_since is not None
    assert terminals.ignored[IGNORED_BROKER_WILL] == 1
    assert not collector.blind(now[0])  # within the grace
    now[0] = 1200.0  # long past the heartbeat timeout: nothing times out while blind
    collector.expire_terminals(link=link)
    assert collector.blind(now[0])
    assert collector.blind_seconds(now[0]) > 190
    link.connected, link.connects_total = True, 2
    collector.expire_terminals(link=link)
    assert not collector.blind(now[0])
    now[0] = 1229.0
    collector.expire_terminals(link=link)
    await collector.flush()
    assert kinds(collector) == ["terminal_online", "collector_blind", "collector_sighted"]
    store = collector.store
    assert isinstance(store, FlakyStore)
    blind, sighted = store.events[1], store.events[2]
    assert blind.details["terminals_unknown"] == 1
    assert blind.at == 1001.2
    assert sighted.details["blind_seconds"] == 1200.0 - 1001.2
    # The terminal never reported again: offline a full timeout window after the link returned.
    now[0] = 1231.0
    collector.expire_terminals(link=link)
    await collector.flush()
    assert kinds(collector)[-1] == "terminal_offline"
    assert store.events[-1].details["reason"] == "timeout"


async def test_a_drop_between_two_looks_is_a_blind_spell(config: Config) -> None:
    now = [1000.0]
    link = IngestStats(connected=True, connects_total=1)
    collector = collector_of(config, now)
    collector.submit_terminal(heartbeat(1), 1000.0)
    collector.expire_terminals(link=link)
    collector.submit_terminal(will(), 1000.1)
    link.connects_total = 2  # lost and back before the collector looked
    now[0] = 1000.9
    collector.expire_terminals(link=link)
    await collector.flush()
    assert kinds(collector) == ["terminal_online", "collector_blind", "collector_sighted"]


async def test_a_will_with_the_link_up_counts_after_the_hold(config: Config) -> None:
    now = [1000.0]
    link = IngestStats(connected=True, connects_total=1)
    collector = collector_of(config, now)
    collector.submit_terminal(heartbeat(1), 1000.0)
    collector.submit_terminal(will(), 1001.0)
    now[0] = 1001.2
    collector.expire_terminals(link=link)
    await collector.flush()
    assert kinds(collector) == ["terminal_online"]
    now[0] = 1001.8  # held from when the collector applied it (1001.2), by real time
    collector.expire_terminals(link=link)
    await collector.flush()
    assert kinds(collector) == ["terminal_online", "terminal_offline"]
    store = collector.store
    assert isinstance(store, FlakyStore)
    assert store.events[-1].at == 1001.0


async def test_before_the_first_connection_nothing_is_blind_but_readiness_waits(
    config: Config,
) -> None:
    now = [1000.0]
    link = IngestStats()
    collector = collector_of(config, now)
    collector.expire_terminals(link=link)
    now[0] = 1011.0
    collector.expire_terminals(link=link)
    assert collector.blind(now[0])  # /readyz: never connected past the grace
    assert collector.terminals is not None
    assert collector.terminals.blind_since is None
    collector.expire_terminals(link=replace(link, connected=True, connects_total=1))
    await collector.flush()
    assert kinds(collector) == []
    assert EventKind.COLLECTOR_BLIND.value == "collector_blind"
