"""The collector's acknowledge-after-store path: commit marks, sender positions, loss counted.

Pure unit tests with a recording store; the end-to-end proof with real processes, a real
Mosquitto and SIGKILL is tests/test_collector_crash.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from edumon.collector import Collector
from edumon.config import Config
from edumon.domain.models import DeviceSample, Event, TerminalSample
from edumon.domain.rollups import InterfaceRollup
from edumon.errors import StoreError
from edumon.store.protocol import SenderPosition
from tests.test_collector import config, heartbeat, terminal_collector

__all__ = ["config"]


class RecordingStore:
    """Keeps every batch; fails while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.terminal_samples: list[TerminalSample] = []
        self.events: list[Event] = []
        self.positions: dict[tuple[str, str, str], SenderPosition] = {}
        self.batches: list[tuple[int, int]] = []  # (samples, positions) per committed write

    async def write(
        self,
        interface_rollups: Sequence[InterfaceRollup] = (),
        device_samples: Sequence[DeviceSample] = (),
        events: Sequence[Event] = (),
        terminal_samples: Sequence[TerminalSample] = (),
        *,
        positions: Sequence[SenderPosition] = (),
        agent_reports: Sequence[object] = (),
    ) -> None:
        if self.down:
            raise StoreError("database unavailable")
        self.terminal_samples += terminal_samples
        self.events += events
        for p in positions:
            self.positions[(p.school, p.role, p.sender)] = p
        self.batches.append((len(terminal_samples), len(positions)))

    async def prune(self, now: float, retention_seconds: float) -> int:
        return 0


def collector_of(config: Config, store: RecordingStore) -> tuple[Collector, list[int]]:
    collector = terminal_collector(config, store, [1000.0])  # type: ignore[arg-type]
    commits: list[int] = []
    collector.on_committed = commits.append
    return collector, commits


async def test_messages_are_committed_only_with_their_rows_and_positions(
    config: Config,
) -> None:
    store = RecordingStore()
    collector, commits = collector_of(config, store)
    collector.submit_terminal(heartbeat(1), 1001.0)
    collector.submit_terminal(heartbeat(2), 1002.0)  # thinned: no row, committed with the next
    store.down = True
    await collector.drain()
    assert commits == []  # nothing stored, nothing may be acknowledged
    store.down = False
    assert await collector.flush()
    assert commits == [2]
    assert [s.seq for s in store.terminal_samples] == [1]
    # The position is that of the newest message that produced rows: a redelivery of the
    # thinned one would store nothing twice.
    position = store.positions[("S1", "terminal", "S1-101")]
    assert (position.boot_id, position.birth_seq, position.seq) == ("b1", 1, 1)
    # A message with no row at all still gets its commit, and no write at all.
    batches = len(store.batches)
    collector.submit_terminal(heartbeat(3), 1003.0)
    await collector.drain()
    assert commits == [2, 3]
    assert len(store.batches) == batches
    assert store.positions[("S1", "terminal", "S1-101")].seq == 1
    # One that produces a row moves it.
    collector.submit_terminal(replace(heartbeat(4), link_speed_mbps=100), 1004.0)
    await collector.drain()
    assert commits == [2, 3, 4]
    assert store.positions[("S1", "terminal", "S1-101")].seq == 4


async def test_a_redelivery_after_a_restart_is_a_duplicate_not_a_row(config: Config) -> None:
    store = RecordingStore()
    collector, _ = collector_of(config, store)
    collector.submit_terminal(replace(heartbeat(1), link_speed_mbps=100), 1001.0)
    collector.submit_terminal(heartbeat(2), 1002.0)  # the speed changed back: a row
    await collector.drain()
    stored = list(store.positions.values())

    restarted, commits = collector_of(config, store)
    assert restarted.restore_positions(stored) == 1
    before = len(store.terminal_samples)
    restarted.submit_terminal(heartbeat(2), 1100.0)  # stored, but its PUBACK never went out
    restarted.submit_terminal(replace(heartbeat(3), link_speed_mbps=100), 1101.0)
    await restarted.drain()
    assert [s.seq for s in store.terminal_samples[before:]] == [3]
    assert restarted.stats.duplicates_total == {"S1": 1}
    assert restarted.stats.lost_messages_total == {}
    assert commits == [2]


async def test_a_redelivered_message_that_stored_nothing_stores_no_second_row(
    config: Config,
) -> None:
    store = RecordingStore()
    collector, _ = collector_of(config, store)
    collector.submit_terminal(heartbeat(1), 1001.0)
    collector.submit_terminal(heartbeat(2), 1002.0)  # thinned: no row, no position
    await collector.drain()
    restarted, commits = collector_of(config, store)
    assert restarted.restore_positions(list(store.positions.values())) == 1
    restarted.submit_terminal(heartbeat(1), 1100.0)  # redelivered: a duplicate
    restarted.submit_terminal(heartbeat(2), 1100.0)  # redelivered: new to this process
    restarted.submit_terminal(heartbeat(2), 1100.0)  # and again: now a duplicate
    await restarted.drain()
    keys = [(s.boot_id, s.seq) for s in store.terminal_samples]
    assert len(keys) == len(set(keys))  # each (boot, seq) stored at most once
    assert restarted.stats.duplicates_total == {"S1": 2}
    assert restarted.stats.lost_messages_total == {}
    assert commits == [3]


async def test_the_first_gap_after_a_restart_is_a_resume_gap_later_ones_are_loss(
    config: Config,
) -> None:
    store = RecordingStore()
    collector, _ = collector_of(config, store)
    collector.submit_terminal(heartbeat(1), 1001.0)
    for seq in (2, 3, 4):  # thinned, acknowledged, no position: the stored one stays at 1
        collector.submit_terminal(heartbeat(seq), 1001.0 + seq)
    await collector.drain()
    assert collector.stats.lost_messages_total == {}
    restarted, _ = collector_of(config, store)
    assert restarted.restore_positions(list(store.positions.values())) == 1
    restarted.submit_terminal(heartbeat(5), 1100.0)  # 2 to 4 were stored-nothing, not lost
    restarted.submit_terminal(heartbeat(6), 1101.0)
    restarted.submit_terminal(heartbeat(9), 1102.0)  # 7 and 8 never came: loss
    await restarted.drain()
    assert restarted.stats.resume_gap_messages_total == {"S1": 3}
    assert restarted.stats.lost_messages_total == {"S1": 2}


async def test_a_gap_in_seq_within_a_session_is_counted_as_loss(config: Config) -> None:
    store = RecordingStore()
    collector, _ = collector_of(config, store)
    collector.submit_terminal(heartbeat(1), 1001.0)
    collector.submit_terminal(heartbeat(5), 1002.0)  # 2, 3 and 4 never came
    collector.submit_terminal(replace(heartbeat(7), birth_seq=2), 1003.0)  # new session: the
    # jump of one is its unsent Will, never counted
    await collector.drain()
    assert collector.stats.lost_messages_total == {"S1": 3}
    assert collector.stats.duplicates_total == {}


async def test_late_heartbeats_of_the_brokers_backlog_are_stored_at_their_own_time(
    config: Config,
) -> None:
    store = RecordingStore()
    collector, _ = collector_of(config, store)
    in_backlog = [True]
    collector.backlog = lambda: in_backlog[0]
    collector.submit_terminal(heartbeat(1), 1001.0 + 600)  # queued by the broker 10 minutes
    in_backlog[0] = False
    collector.submit_terminal(replace(heartbeat(2), link_speed_mbps=100), 1002.0 + 600)  # live
    await collector.drain()
    assert [s.at for s in store.terminal_samples] == [1001.0, 1602.0]
    st = collector.terminals.terminal("S1", "S1-101") if collector.terminals else None
    assert st is not None
    assert st.online_since == 1601.0  # the state's "now" is always the receive time
