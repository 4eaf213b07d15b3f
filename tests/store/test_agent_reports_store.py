"""The agent_reports table on both backends: recorded with the batch's rows, each (agent, boot,
seq) once, and read back at start-up as runs of consecutive seqs."""

from __future__ import annotations

from edumon.domain.models import DeviceSample
from edumon.store.protocol import AgentReportRow, AgentReportRun
from edumon.store.repository import Store

T0 = 1_725_148_800.0


def row(seq: int, hist: bool = False, boot: str = "boot1", subject: str = "sw-a") -> AgentReportRow:
    return AgentReportRow("A-agent", boot, seq, "A", subject, T0 + seq + 0.123456, T0 + 99, hist)


def sample(at: float) -> DeviceSample:
    return DeviceSample(at, "sw-a", True, 100.0, 0.1)


async def test_recorded_once_with_the_batch_and_read_back_as_runs(store: Store) -> None:
    await store.write([], [sample(T0 + 1)], [], agent_reports=[row(1), row(2, hist=True)])
    # A batch written again (a retry after an ambiguous failure) and more: each report once.
    await store.write([], [sample(T0 + 1)], [], agent_reports=[row(1), row(2), row(3), row(7)])
    await store.write([], [], [], agent_reports=[row(9, boot="boot2", subject="sw-b")])
    recorded = await store.agent_reports_recorded(T0)
    assert sorted(recorded.runs, key=lambda r: (r.boot_id, r.first)) == [
        AgentReportRun("A-agent", "boot1", 1, 3),
        AgentReportRun("A-agent", "boot1", 7, 7),
        AgentReportRun("A-agent", "boot2", 9, 9),
    ]
    assert recorded.newest == {"sw-a": T0 + 7.123456, "sw-b": T0 + 9.123456}
    # Only polls from `since` on are read.
    later = await store.agent_reports_recorded(T0 + 3)
    assert sorted((r.boot_id, r.first, r.last) for r in later.runs) == [
        ("boot1", 3, 3),
        ("boot1", 7, 7),
        ("boot2", 9, 9),
    ]
    assert await store.prune(T0 + 7.5 + 86400, 86400) >= 4  # pruned with the samples
    assert [(r.first, r.last) for r in (await store.agent_reports_recorded(T0)).runs] == [(9, 9)]
