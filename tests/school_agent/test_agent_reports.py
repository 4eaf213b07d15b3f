"""The collector's side of school agents' reports: dedup, loss count, history apart from now."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from edumon.domain import observation_codec as codec
from edumon.domain.models import DeviceUnreachable, Observation
from edumon.sources.agent_reports import AgentReports
from edumon.store.protocol import AgentReportRow
from edumon.wire import (
    KIND_POLL,
    Heartbeat,
    PollReport,
    Status,
    agent_topic,
    encode_poll,
)


class Sink:
    def __init__(self) -> None:
        self.current: list[Observation] = []
        self.history: list[Observation] = []
        self.terminal: list[Heartbeat | Status] = []

    def submit_nowait(self, obs: Observation) -> None:
        self.current.append(obs)

    def submit_history(self, obs: Observation) -> None:
        self.history.append(obs)

    def submit_terminal(self, msg: Heartbeat | Status, received_at: float) -> None:
        self.terminal.append(msg)


class Store:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, int], AgentReportRow] = {}

    async def record_agent_reports(self, rows: Sequence[AgentReportRow]) -> int:
        new = [r for r in rows if (r.agent, r.boot_id, r.seq) not in self.rows]
        self.rows.update({(r.agent, r.boot_id, r.seq): r for r in new})
        return len(new)


def poll(seq: int, at: float, device: str = "sw-a", school: str = "A", hist: bool = False):
    obs = DeviceUnreachable(device, at, "timeout", 1.0)
    report = PollReport(
        "d", school, f"{school}-agent", "boot1", seq, at, "0.1.0", hist, codec.encode(obs)
    )
    return agent_topic("d", school, f"{school}-agent", KIND_POLL), encode_poll(report)


async def test_dedup_gaps_history_and_ack_after_record() -> None:
    sink, store = Sink(), Store()
    reports = AgentReports(
        sink,
        store,
        district="d",
        agent_schools=frozenset({"A"}),
        switch_school={"sw-a": "A", "sw-b": "B"},
    )
    acked: list[int] = []
    task = asyncio.create_task(reports.run())
    # The present first (seq 5), then the backlog 1..4 replayed, one of them twice.
    for seq, at in ((5, 500.0), (1, 100.0), (2, 200.0), (2, 200.0), (3, 300.0)):
        topic, payload = poll(seq, at, hist=seq != 5)
        reports.handle(topic, payload, 1000.0, lambda s=seq: acked.append(s))
    assert [o.at for o in sink.current] == [500.0]
    assert [o.at for o in sink.history] == [100.0, 200.0, 300.0]
    assert reports.stats.duplicates_total == 1
    assert reports.missing == 1  # seq 4 never came: loss, visible
    assert reports.stats.gaps_total == 4
    assert acked == [2]  # the duplicate at once; the others once recorded
    for _ in range(100):
        if len(acked) == 5:
            break
        await asyncio.sleep(0.05)
    assert sorted(acked) == [1, 2, 2, 3, 5]
    assert sorted(k[2] for k in store.rows) == [1, 2, 3, 5]
    # Another school's switch, and a school the district polls itself: refused.
    reports.handle(*poll(6, 600.0, device="sw-b"), 1000.0, lambda: None)
    reports.handle(*poll(1, 600.0, device="sw-b", school="B"), 1000.0, lambda: None)
    assert reports.stats.rejected_total == {"foreign_device": 1, "not_agent_school": 1}
    task.cancel()
