"""The agent_reports table on both backends: each (agent, boot, seq) recorded once."""

from __future__ import annotations

from edumon.store.protocol import AgentReportRow
from edumon.store.repository import Store

T0 = 1_725_148_800.0


def row(seq: int, hist: bool = False) -> AgentReportRow:
    return AgentReportRow("A-agent", "boot1", seq, "A", "sw-a", T0 + seq + 0.123456, T0 + 99, hist)


async def test_recorded_once_at_the_poll_time(store: Store) -> None:
    assert await store.record_agent_reports([row(1), row(2, hist=True)]) == 2
    # A batch redelivered (and one new report): only the new one is added.
    assert await store.record_agent_reports([row(1), row(2, hist=True), row(3)]) == 1
    assert await store.record_agent_reports([]) == 0
    assert await store.prune(T0 + 2.5 + 86400, 86400) >= 2  # pruned with the samples
    assert await store.record_agent_reports([row(3)]) == 0
