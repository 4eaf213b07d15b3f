"""The collector's side of school agents' reports: dedup, loss count, history apart from now."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from edumon.domain import observation_codec as codec
from edumon.domain.models import DeviceUnreachable, Observation
from edumon.sources.agent_reports import AgentReports
from edumon.store.protocol import AgentReportRow, AgentReportRun, AgentReportsRecorded
from edumon.wire import (
    KIND_POLL,
    Heartbeat,
    PollReport,
    Status,
    agent_topic,
    encode_poll,
)


class Sink:
    """The collector's side: reports applied, and acknowledged when ``commit`` is called."""

    def __init__(self) -> None:
        self.current: list[Observation] = []
        self.history: list[Observation] = []
        self.terminal: list[Heartbeat | Status] = []
        self.uncommitted: list[tuple[AgentReportRow, Callable[[], None]]] = []
        self.rows: dict[tuple[str, str, int], AgentReportRow] = {}

    def accept_report(
        self,
        obs: Observation | None,
        *,
        historical: bool,
        row: AgentReportRow,
        ack: Callable[[], None],
    ) -> None:
        if obs is not None:
            (self.history if historical else self.current).append(obs)
        self.uncommitted.append((row, ack))

    def submit_terminal(self, msg: Heartbeat | Status, received_at: float) -> None:
        self.terminal.append(msg)

    def submit_nowait(self, obs: Observation) -> None:
        self.current.append(obs)

    def commit(self) -> None:
        for row, ack in self.uncommitted:
            self.rows.setdefault((row.agent, row.boot_id, row.seq), row)
            ack()
        self.uncommitted.clear()


class Store:
    """The record as the store reads it back at start-up."""

    def __init__(self, rows: Iterable[AgentReportRow] = ()) -> None:
        self.rows = list(rows)

    async def agent_reports_recorded(self, since: float) -> AgentReportsRecorded:
        runs: list[AgentReportRun] = []
        newest: dict[str, float] = {}
        for r in sorted(self.rows, key=lambda r: (r.agent, r.boot_id, r.seq)):
            if r.observed_at < since:
                continue
            newest[r.subject] = max(r.observed_at, newest.get(r.subject, r.observed_at))
            last = runs[-1] if runs else None
            if last and (last.agent, last.boot_id, last.last + 1) == (r.agent, r.boot_id, r.seq):
                runs[-1] = AgentReportRun(r.agent, r.boot_id, last.first, r.seq)
            else:
                runs.append(AgentReportRun(r.agent, r.boot_id, r.seq, r.seq))
        return AgentReportsRecorded(tuple(runs), newest)


def poll(
    seq: int,
    at: float,
    device: str = "sw-a",
    school: str = "A",
    hist: bool = False,
    district: str = "d",
) -> tuple[str, bytes]:
    obs = DeviceUnreachable(device, at, "timeout", 1.0)
    report = PollReport(
        district, school, f"{school}-agent", "boot1", seq, at, "0.1.0", hist, codec.encode(obs)
    )
    return agent_topic(district, school, f"{school}-agent", KIND_POLL), encode_poll(report)


def agent_reports(sink: Sink, store: Store, **options: Any) -> AgentReports:
    return AgentReports(
        sink,
        store,
        district="d",
        agent_schools=frozenset({"A"}),
        switch_school={"sw-a": "A", "sw-b": "B"},
        clock=lambda: 1000.0,
        **options,
    )


def test_dedup_gaps_history_and_ack_after_commit() -> None:
    sink = Sink()
    reports = agent_reports(sink, Store())
    acked: list[int] = []
    # The present first (seq 5), then the backlog 1..4 replayed, one of them twice.
    for seq, at in ((5, 500.0), (1, 100.0), (2, 200.0), (2, 200.0), (3, 300.0)):
        topic, payload = poll(seq, at, hist=seq != 5)
        reports.handle(topic, payload, 1000.0, lambda s=seq: acked.append(s))
    assert [o.at for o in sink.current] == [500.0]
    assert [o.at for o in sink.history] == [100.0, 200.0, 300.0]
    assert reports.stats.duplicates_total == 1
    assert reports.missing == 1  # seq 4 never came: loss, visible
    assert reports.stats.gaps_total == 4
    assert acked == [2]  # the duplicate at once; the others once stored with their rows
    sink.commit()
    assert sorted(acked) == [1, 2, 2, 3, 5]
    assert sorted(k[2] for k in sink.rows) == [1, 2, 3, 5]
    assert reports.stats.recorded_total == 4
    # Another school's switch, and a school the district polls itself: refused.
    reports.handle(*poll(6, 600.0, device="sw-b"), 1000.0, lambda: None)
    reports.handle(*poll(1, 600.0, device="sw-b", school="B"), 1000.0, lambda: None)
    assert reports.stats.rejected_total == {"foreign_device": 1, "not_agent_school": 1}


def test_embedded_broker_reports_are_acknowledged_on_receipt() -> None:
    sink = Sink()
    reports = agent_reports(sink, Store(), ack_after_store=False)
    acked: list[int] = []
    reports.handle(*poll(1, 100.0), 1000.0, lambda: acked.append(1))
    assert acked == [1]
    sink.commit()
    assert acked == [1]  # not twice
    assert reports.stats.recorded_total == 1


async def test_after_a_crash_what_is_recorded_is_a_duplicate_and_the_rest_is_taken() -> None:
    """A collector killed after committing seqs 1-3 and 7 of a boot whose present (7) came
    first: 1-3 and 7 come again (recorded, not acknowledged); 4-6 are still missing."""
    first = Sink()
    before = agent_reports(first, Store())
    for seq in (7, 1, 2, 3):
        before.handle(*poll(seq, seq * 100.0, hist=seq != 7), 1000.0, lambda: None)
    first.commit()
    sink = Sink()
    after = agent_reports(sink, Store(first.rows.values()))
    assert await after.restore() == 1
    assert after.missing == 3  # 4, 5, 6: as before the crash
    acked: list[int] = []
    for seq in (7, 1, 2, 3, 4, 5, 6, 8):
        topic, payload = poll(seq, seq * 100.0, hist=seq not in (7, 8))
        after.handle(topic, payload, 1000.0, lambda s=seq: acked.append(s))
    assert acked == [7, 1, 2, 3]  # duplicates: acknowledged at once
    assert after.stats.duplicates_total == 4
    sink.commit()
    assert sorted(k[2] for k in sink.rows) == [4, 5, 6, 8]
    assert [o.at for o in sink.current] == [800.0]  # the newest known survived the crash
    assert [o.at for o in sink.history] == [400.0, 500.0, 600.0]
    assert after.missing == 0


async def test_a_backlog_below_the_first_recorded_seq_is_taken_once() -> None:
    """Only the present (seq 50) was recorded before the crash: the backlog 1-49 still comes."""
    first = Sink()
    before = agent_reports(first, Store())
    before.handle(*poll(50, 5000.0), 1000.0, lambda: None)
    first.commit()
    sink = Sink()
    after = agent_reports(sink, Store(first.rows.values()))
    await after.restore()
    for seq in (*range(1, 50), 10, 50):
        after.handle(*poll(seq, seq * 100.0, hist=True), 1000.0, lambda: None)
    sink.commit()
    assert sorted(k[2] for k in sink.rows) == list(range(1, 50))
    assert after.stats.duplicates_total == 2  # 10 again, and 50


def test_a_silent_agents_switches_become_unreachable_once_while_the_link_is_up() -> None:
    sink = Sink()
    reports = AgentReports(
        sink,
        Store(),
        district="d",
        agent_schools=frozenset({"A"}),
        switch_school={"sw-a": "A", "sw-a2": "A", "sw-b": "B"},
        silence_seconds=180.0,
    )
    assert reports.silence(0.0) == []  # not connected: nothing can be heard, nothing is silent
    reports.stats.sessions["agents"] = True
    assert reports.silence(1000.0) == []  # connected now: the window starts here
    reports.handle(*poll(1, 1100.0), 1100.0, lambda: None)  # sw-a reports
    declared = reports.silence(1181.0)
    assert [(o.device_id, o.at) for o in declared] == [("sw-a2", 1181.0)]  # never the B switch
    assert "学校代理 181 秒无报告" in declared[0].reason
    assert reports.silence(1190.0) == []  # declared once
    assert [o.device_id for o in reports.silence(1281.0)] == ["sw-a"]
    # The collector's link drops: silence says nothing; back up, every switch gets a new window.
    reports.stats.sessions["agents"] = False
    assert reports.silence(5000.0) == []
    reports.stats.sessions["agents"] = True
    # A poll from before the declaration (sent from the agent's spool) is history: the switch
    # stays unreachable until a newer one comes, and the present never moves back.
    reports.handle(*poll(2, 1200.0, hist=True), 5000.0, lambda: None)
    assert set(reports.silent) == {"sw-a", "sw-a2"}
    assert [o.at for o in sink.history] == [1200.0]
    reports.handle(*poll(3, 5000.0), 5000.0, lambda: None)
    assert set(reports.silent) == {"sw-a2"}  # sw-a reported: it may be declared again
    assert reports.silence(5100.0) == []
    assert reports.silence(5181.0) == []  # the window began when the link was seen back (5100)
    assert [o.device_id for o in reports.silence(5281.0)] == ["sw-a"]
