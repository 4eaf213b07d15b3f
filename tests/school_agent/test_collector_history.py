"""Polls replayed from a school agent's spool are stored at their own time, never as "now"."""

from __future__ import annotations

import pytest

from edumon.collector import Collector
from edumon.config import inventory_of, parse_config
from edumon.domain import observation_codec as codec
from edumon.domain.models import DeviceUnreachable, Observation, OperStatus
from edumon.domain.state import NetworkState
from edumon.sources.agent_reports import AgentReports
from edumon.store.protocol import AgentReportRow
from edumon.wire import KIND_POLL, PollReport, agent_topic, encode_poll
from tests.domain.conftest import DISTRICT
from tests.domain.readings import port, reading
from tests.school_agent.test_agent_reports import Store
from tests.test_collector import FlakyStore, terminal_collector


async def test_history_is_stored_without_moving_the_present() -> None:
    store = FlakyStore()
    state = NetworkState(inventory_of(parse_config(DISTRICT)))
    collector = Collector(state, store, clock=lambda: 2000.0)
    gb = 10**9 // 8
    # The present: the switch answers at 1000 s with its port up.
    collector.submit_nowait(reading("acc", 1000.0, 100_000, port(2, "Gi0/2", octets=0)))
    # The past, replayed after an outage: the port went down and the switch was unreachable
    # for a while; and 100 Mbit/s of traffic between two old polls.
    collector.submit_history(reading("acc", 0.0, 0, port(2, "Gi0/2", octets=0)))
    collector.submit_history(reading("acc", 60.0, 6000, port(2, "Gi0/2", octets=6 * gb)))
    collector.submit_history(DeviceUnreachable("acc", 400.0, "timeout"))
    collector.submit_history(reading("acc", 600.0, 60000, port(2, "Gi0/2", up=False)))
    await collector.drain()
    dev = state.devices["acc"]
    assert dev.reachable is True
    assert dev.last_poll_at == 1000.0
    assert state.interface("acc", "Gi0/2").oper_status is OperStatus.UP  # type: ignore[union-attr]
    # No events from the past (no link_down, no unreachable): the present raised none either.
    assert [e.kind.value for e in store.events] == []
    # Device samples at the past's own times (thinned: first of a bucket, and changes).
    assert [(s.at, s.reachable) for s in store.device_samples] == [
        (1000.0, True),
        (0.0, True),
        (400.0, False),
        (600.0, True),
    ]
    # Roll-ups of the past's buckets, with the rate between the two old polls.
    past = sorted(
        (r for r in store.interface_rollups if r.bucket_start < 900), key=lambda r: r.bucket_start
    )
    assert [(r.bucket_start, r.polls) for r in past] == [(0.0, 2), (600.0, 1)]
    assert past[0].in_bps == pytest.approx(1e8)
    assert collector.stats.historical_observations_total == 4


async def test_a_school_agents_report_is_acknowledged_only_with_its_rows_stored() -> None:
    store = FlakyStore()
    state = NetworkState(inventory_of(parse_config(DISTRICT)))
    collector = Collector(state, store, clock=lambda: 2000.0)
    acked: list[int] = []

    def report(seq: int, obs: Observation, historical: bool = False) -> None:
        row = AgentReportRow("agent", "boot", seq, "S1", obs.device_id, obs.at, 2000.0, historical)
        collector.accept_report(obs, historical=historical, row=row, ack=lambda: acked.append(seq))

    report(1, reading("acc", 1000.0, 100_000, port(2, "Gi0/2", octets=0)))
    report(2, DeviceUnreachable("acc", 900.0, "timeout"), historical=True)
    assert state.devices["acc"].reachable is True  # applied at once; the past did not move it
    store.down = True
    assert not await collector.flush()
    assert acked == []  # nothing stored: nothing may be acknowledged
    store.down = False
    assert await collector.flush()
    assert acked == [1, 2]
    # The reports were recorded in the same write as the samples they produced.
    assert [r.seq for r in store.agent_reports] == [1, 2]  # type: ignore[attr-defined]
    assert sorted(s.at for s in store.device_samples) == [900.0, 1000.0]


async def test_probe_answers_are_heartbeats_without_a_loss_count() -> None:
    """A probe's seq is the agent's (it counts every report), and old probes are not passed on:
    the gaps between the probes of one terminal are no lost terminal message."""
    config = parse_config(DISTRICT)
    now = [1000.0]
    collector = terminal_collector(config, FlakyStore(), now)
    reports = AgentReports(
        collector, Store(), district="t", agent_schools=frozenset({"S1"}), switch_school={}
    )
    for seq in (5, 9, 14):
        now[0] = 1000.0 + seq
        probe = codec.TerminalProbe("S1-101", now[0], True, "tcp", 0.001)
        report = PollReport(
            "t", "S1", "S1-agent", "boot1", seq, now[0], "0.1.0", False, codec.encode_probe(probe)
        )
        reports.handle(
            agent_topic("t", "S1", "S1-agent", KIND_POLL), encode_poll(report), now[0], lambda: None
        )
    await collector.drain()
    assert collector.terminals is not None
    st = collector.terminals.terminal("S1", "S1-101")
    assert st is not None
    assert st.online is True
    assert dict(collector.stats.lost_messages_total) == {}
    assert dict(collector.stats.duplicates_total) == {}
