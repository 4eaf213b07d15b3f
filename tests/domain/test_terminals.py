"""Terminal online/offline state: births, heartbeats, Wills, shutdowns, timeouts, unknowns."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from edumon.config import Config, inventory_of
from edumon.domain.models import Event, EventKind
from edumon.domain.terminals import (
    IGNORED_DUPLICATE,
    IGNORED_OLD_SESSION,
    IGNORED_STALE_OFFLINE,
    IGNORED_UNKNOWN,
    TerminalInventory,
    TerminalsState,
    UnknownTerminals,
    clip_intervals,
    heartbeat_timeout,
    intervals_from_events,
)
from edumon.wire import (
    Heartbeat,
    Status,
    encode_heartbeat,
    encode_status,
    parse_message,
    terminal_topic,
)

TIMEOUT = 100.0  # seconds: the scenarios below are timed against it


def hb(
    seq: int,
    *,
    boot: str = "b1",
    bd: int = 1,
    ts: float | None = None,
    terminal: str = "S1-101",
    school: str = "S1",
    district: str = "t",
    speed: int | None = 1000,
    ip: str | None = "10.1.1.101",
    mac: str | None = "00:11:22:33:44:55",
) -> Heartbeat:
    return Heartbeat(
        district=district,
        school=school,
        terminal=terminal,
        boot_id=boot,
        seq=seq,
        birth_seq=bd,
        observed_at=1_000.0 + seq if ts is None else ts,
        uptime_seconds=600.0 + seq,
        agent_version="1.0.0",
        nic="Ethernet",
        link_speed_mbps=speed,
        duplex="full",
        ip=ip,
        mac=mac,
        cpu_percent=12.5,
        memory_used_bytes=2_000,
        memory_total_bytes=8_000,
        disk_used_bytes=50_000,
        disk_total_bytes=100_000,
    )


def status(
    state: str,
    reason: str,
    seq: int,
    *,
    boot: str = "b1",
    bd: int = 1,
    ts: float | None = None,
    terminal: str = "S1-101",
    school: str = "S1",
) -> Status:
    return Status(
        district="t",
        school=school,
        terminal=terminal,
        state=state,  # type: ignore[arg-type]
        reason=reason,  # type: ignore[arg-type]
        boot_id=boot,
        seq=seq,
        birth_seq=bd,
        observed_at=1_000.0 + seq if ts is None else ts,
        agent_version="1.0.0",
    )


def birth(seq: int, **kw: object) -> Status:
    return status("online", "birth", seq, **kw)  # type: ignore[arg-type]


def will(seq: int, **kw: object) -> Status:
    return status("offline", "will", seq, **kw)  # type: ignore[arg-type]


def shutdown(seq: int, **kw: object) -> Status:
    return status("offline", "shutdown", seq, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Expire:
    timeout: float = TIMEOUT


Step = tuple[float, Heartbeat | Status | Expire]


def run(state: TerminalsState, steps: list[Step]) -> list[list[Event]]:
    out: list[list[Event]] = []
    for now, msg in steps:
        if isinstance(msg, Expire):
            out.append(list(state.expire(now, msg.timeout)))
        else:
            out.append(list(state.apply(msg, now)))
    return out


@pytest.fixture
def state(district: Config) -> TerminalsState:
    return TerminalsState(TerminalInventory.from_inventory(inventory_of(district), district="t"))


ON, OFF = "terminal_online", "terminal_offline"

# name: (steps, event kinds per step, final online, final offline reason, ignored counts)
SCENARIOS: dict[
    str, tuple[list[Step], list[list[str]], bool | None, str | None, dict[str, int]]
] = {
    "birth then heartbeats: one online event": (
        [(0, birth(2)), (30, hb(3)), (60, hb(4))],
        [[ON], [], []],
        True,
        None,
        {},
    ),
    "heartbeat without a birth (collector started later)": (
        [(0, hb(40)), (30, hb(41))],
        [[ON], []],
        True,
        None,
        {},
    ),
    "killed agent: its Will means offline at once": (
        [(0, birth(2)), (30, hb(3)), (31, will(1))],
        [[ON], [], [OFF]],
        False,
        "will",
        {},
    ),
    "clean shutdown": (
        [(0, birth(2)), (30, hb(3)), (40, shutdown(4))],
        [[ON], [], [OFF]],
        False,
        "shutdown",
        {},
    ),
    "quick reconnect, then the old session's Will: still online": (
        [(0, birth(2)), (30, hb(3)), (40, birth(5, bd=2)), (45, will(1)), (60, hb(6, bd=2))],
        [[ON], [], [], [], []],
        True,
        None,
        {IGNORED_STALE_OFFLINE: 1},
    ),
    "agent restarted (new boot), then the old process's Will: still online": (
        [(0, birth(2)), (30, hb(3)), (40, birth(2, boot="b2", bd=2)), (45, will(1))],
        [[ON], [], [], []],
        True,
        None,
        {IGNORED_STALE_OFFLINE: 1},
    ),
    "the new session's own Will does end it": (
        [(0, birth(2)), (40, birth(5, bd=2)), (45, will(1)), (50, will(4, bd=2))],
        [[ON], [], [], [OFF]],
        False,
        "will",
        {IGNORED_STALE_OFFLINE: 1},
    ),
    "silent power loss: offline only after the timeout": (
        [
            (0, birth(2)),
            (30, hb(3)),
            (100, Expire()),
            (130, Expire()),
            (131, Expire()),
            (200, Expire()),
        ],
        [[ON], [], [], [], [OFF], []],
        False,
        "timeout",
        {},
    ),
    "heartbeats resume after a timeout: online again": (
        [(0, birth(2)), (30, hb(3)), (131, Expire()), (150, hb(4))],
        [[ON], [], [OFF], [ON]],
        True,
        None,
        {},
    ),
    "the broker's late Will after a timeout: no second event": (
        [(0, birth(2)), (30, hb(3)), (131, Expire()), (140, will(1))],
        [[ON], [], [OFF], []],
        False,
        "timeout",
        {IGNORED_DUPLICATE: 1},
    ),
    "retained birth redelivered after a timeout does not revive it": (
        [(0, birth(2)), (30, hb(3)), (131, Expire()), (140, birth(2))],
        [[ON], [], [OFF], []],
        False,
        "timeout",
        {IGNORED_DUPLICATE: 1},
    ),
    "duplicate heartbeat ignored": (
        [(0, birth(2)), (30, hb(3)), (31, hb(3))],
        [[ON], [], []],
        True,
        None,
        {IGNORED_DUPLICATE: 1},
    ),
    "out-of-order heartbeat ignored": (
        [(0, birth(2)), (30, hb(4)), (31, hb(3))],
        [[ON], [], []],
        True,
        None,
        {IGNORED_DUPLICATE: 1},
    ),
    "heartbeat from an older session of the same boot ignored": (
        [(0, birth(5, bd=2)), (10, hb(4, bd=1))],
        [[ON], []],
        True,
        None,
        {IGNORED_OLD_SESSION: 1},
    ),
    "stale retained birth of an older boot ignored": (
        [
            (0, hb(10, boot="b2", bd=3, ts=5_000.0)),
            (20, birth(2, bd=2, ts=4_000.0)),
            (30, hb(11, boot="b2", bd=3)),
        ],
        [[ON], [], []],
        True,
        None,
        {IGNORED_OLD_SESSION: 1},
    ),
    "reset bd_seq and clock set back: accepted once the old session is over": (
        [
            (0, birth(2, bd=7, ts=9_000.0)),
            (10, birth(2, boot="b2", bd=0, ts=1_000.0)),  # while b1 is online: looks older
            (20, shutdown(3, bd=7)),
            (30, hb(3, boot="b2", bd=0, ts=1_030.0)),
            (40, hb(4, boot="b2", bd=0, ts=1_040.0)),
        ],
        [[ON], [], [OFF], [ON], []],
        True,
        None,
        {IGNORED_OLD_SESSION: 1},
    ),
    "stale retained Will of an older session does not flip a newer one": (
        [(0, hb(10, boot="b2", bd=3)), (5, will(1, bd=2))],
        [[ON], []],
        True,
        None,
        {IGNORED_STALE_OFFLINE: 1},
    ),
    "retained Will seen at start-up: offline, but no event": (
        [(0, will(1)), (60, birth(2, boot="b2", bd=2))],
        [[], [ON]],
        True,
        None,
        {},
    ),
    "agent lost its bd_seq (reinstalled): a later boot still counts": (
        [
            (0, birth(2, bd=7, ts=1_000.0)),
            (40, birth(2, boot="b2", bd=0, ts=1_040.0)),
            (45, will(1, bd=7)),
        ],
        [[ON], [], []],
        True,
        None,
        {IGNORED_STALE_OFFLINE: 1},
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_transitions(state: TerminalsState, name: str) -> None:
    steps, kinds, online, reason, ignored = SCENARIOS[name]
    events = run(state, steps)
    assert [[e.kind.value for e in step] for step in events] == kinds
    st = state.terminal("S1", "S1-101")
    assert st is not None
    assert (st.online, st.offline_reason) == (online, reason)
    expected_ignored = {k: 0 for k in state.ignored} | ignored
    assert state.ignored == expected_ignored
    for step in events:
        for event in step:
            assert (event.school, event.classroom, event.device_id) == ("S1", "S1-101", "S1-101")
    # Every other terminal was left alone.
    assert state.terminal("S1", "S1-102").online is None  # type: ignore[union-attr]


def test_offline_event_details_and_timeout_dated_at_last_sign_of_life(
    state: TerminalsState,
) -> None:
    state.apply(birth(2), 0.0)
    state.apply(hb(3), 30.0)
    (event,) = state.expire(131.0, TIMEOUT)
    assert event.kind is EventKind.TERMINAL_OFFLINE
    assert event.at == 30.0  # the last heartbeat, not when the silence was noticed
    assert event.details["reason"] == "timeout"
    assert event.details["detected_at"] == 131.0
    assert event.details["online_since"] == 0.0
    st = state.terminal("S1", "S1-101")
    assert st is not None
    assert st.offline_since == 30.0
    (back,) = state.apply(hb(4), 150.0)
    assert back.details["previous_offline_reason"] == "timeout"
    assert back.details["via"] == "heartbeat"


def test_will_is_dated_when_received(state: TerminalsState) -> None:
    state.apply(birth(2), 0.0)
    state.apply(hb(3), 30.0)
    (event,) = state.apply(will(1), 50.0)
    assert event.at == 50.0
    assert event.details["reason"] == "will"
    assert (event.details["boot"], event.details["bd_seq"]) == ("b1", 1)


def test_heartbeat_fields_are_kept(state: TerminalsState) -> None:
    state.apply(birth(2), 0.0)
    state.apply(hb(3), 30.0)
    st = state.terminal("S1", "S1-101")
    assert st is not None
    assert st.session == ("b1", 1)
    assert (st.last_seen, st.last_heartbeat_at, st.online_since) == (30.0, 30.0, 0.0)
    assert (st.uptime_seconds, st.link_speed_mbps, st.duplex, st.nic) == (
        603.0,
        1000,
        "full",
        "Ethernet",
    )
    assert (st.ip, st.mac, st.agent_version) == ("10.1.1.101", "00:11:22:33:44:55", "1.0.0")
    assert (st.cpu_percent, st.memory_used_bytes, st.memory_total_bytes) == (12.5, 2_000, 8_000)
    assert (st.disk_used_bytes, st.disk_total_bytes, st.heartbeats) == (50_000, 100_000, 1)
    # An out-of-order heartbeat must not overwrite newer fields.
    state.apply(hb(5, speed=100), 60.0)
    state.apply(hb(4, speed=10), 61.0)
    assert st.link_speed_mbps == 100
    assert st.last_seen == 60.0


def test_messages_parsed_from_the_wire(state: TerminalsState) -> None:
    b = birth(2)
    h = hb(3)
    topic_status = terminal_topic("t", "S1", "S1-101", "status")
    topic_heartbeat = terminal_topic("t", "S1", "S1-101", "heartbeat")
    first = state.apply(parse_message(topic_status, encode_status(b)), 0.0)
    second = state.apply(parse_message(topic_heartbeat, encode_heartbeat(h)), 30.0)
    last = state.apply(parse_message(topic_status, encode_status(will(1))), 40.0)
    assert [e.kind for e in first + second + last] == [
        EventKind.TERMINAL_ONLINE,
        EventKind.TERMINAL_OFFLINE,
    ]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([], None),  # never heard of
        ([(0.0, hb(3, speed=1000))], 1000.0),
        ([(0.0, hb(3, speed=1000)), (30.0, hb(4, speed=100))], 100.0),  # a bad cable
        ([(0.0, hb(3, speed=1000)), (30.0, hb(4, speed=None))], None),  # on Wi-Fi now
        ([(0.0, hb(3, speed=1000)), (30.0, hb(4, speed=None)), (40.0, shutdown(5))], 1000.0),
        ([(0.0, hb(3, speed=100)), (40.0, shutdown(4))], 100.0),  # switched off: last speed
    ],
)
def test_classroom_link_speed(
    state: TerminalsState, steps: list[tuple[float, Heartbeat | Status]], expected: float | None
) -> None:
    for now, msg in steps:
        state.apply(msg, now)
    assert state.classroom_link_speed("S1-101") == expected
    assert state.classroom_link_speed("S1-102") is None
    assert state.classroom_link_speed("no-such-room") is None


def test_a_configured_terminal_id_replaces_the_classroom_id(district: Config) -> None:
    inventory = TerminalInventory.from_inventory(
        inventory_of(district), {("S1", "OPS-7"): "S1-103"}, district="t"
    )
    assert inventory.lookup("t", "S1", "OPS-7") == inventory.of_classroom("S1-103")
    assert inventory.lookup("t", "S1", "S1-103") is None
    assert inventory.lookup("other", "S1", "OPS-7") is None  # another district
    assert len(inventory) == 3
    assert {r.terminal for r in inventory.of_school("S1")} == {"S1-101", "S1-102", "OPS-7"}
    state = TerminalsState(inventory)
    (event,) = state.apply(hb(3, terminal="OPS-7"), 0.0)
    assert (event.classroom, event.device_id) == ("S1-103", "OPS-7")
    assert state.apply(hb(3, terminal="S1-103"), 0.0) == ()
    assert state.ignored[IGNORED_UNKNOWN] == 1
    assert state.classroom_link_speed("S1-103") == 1000.0


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({("S1", "X"): "S1-999"}, "no classroom S1-999"),
        ({("S9", "X"): "S1-101"}, "school S9 has no classroom"),
        ({("S1", "S1-102"): "S1-101"}, "would serve classrooms"),
        ({("S1", "X"): "S1-101", ("S1", "Y"): "S1-101"}, "has two terminals"),
    ],
)
def test_inventory_rejects_inconsistent_terminal_ids(
    district: Config, mapping: dict[tuple[str, str], str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TerminalInventory.from_inventory(inventory_of(district), mapping)


def test_inventory_rejects_two_terminals_in_one_classroom() -> None:
    with pytest.raises(ValueError, match="two terminals"):
        TerminalInventory({("S1", "a"): "R1", ("S1", "b"): "R1"})


def test_unknown_terminals_are_counted_and_listed(state: TerminalsState) -> None:
    assert state.apply(hb(3, terminal="PC-9", ip="10.1.1.9", mac="aa:bb:cc:dd:ee:01"), 10.0) == ()
    assert state.apply(birth(2, terminal="PC-9"), 20.0) == ()
    assert state.apply(hb(3, school="S7"), 30.0) == ()  # a known id under an unknown school
    assert state.apply(hb(3, district="other"), 40.0) == ()
    assert state.terminal("S1", "PC-9") is None
    assert state.ignored[IGNORED_UNKNOWN] == 4
    assert state.unknown.messages == 4
    entries = {(u.district, u.school, u.terminal): u for u in state.unknown.entries()}
    assert set(entries) == {("t", "S1", "PC-9"), ("t", "S7", "S1-101"), ("other", "S1", "S1-101")}
    pc = entries[("t", "S1", "PC-9")]
    assert (pc.first_seen, pc.last_seen, pc.messages) == (10.0, 20.0, 2)
    assert (pc.ip, pc.mac) == ("10.1.1.9", "aa:bb:cc:dd:ee:01")  # kept through the status message
    # None of them touched the known terminal of the same id.
    assert state.terminal("S1", "S1-101").online is None  # type: ignore[union-attr]


def test_unknown_terminals_are_bounded_least_recently_seen_evicted() -> None:
    unknown = UnknownTerminals(limit=3)
    for i in range(3):
        unknown.note(hb(1, terminal=f"PC-{i}"), float(i))
    unknown.note(hb(2, terminal="PC-0"), 10.0)  # PC-0 is heard again: PC-1 is now the oldest
    unknown.note(hb(1, terminal="PC-3"), 11.0)
    unknown.note(hb(1, terminal="PC-4"), 12.0)
    assert len(unknown) == 3
    assert unknown.evicted == 2
    assert unknown.messages == 6
    assert [u.terminal for u in unknown.entries()] == ["PC-0", "PC-3", "PC-4"]
    with pytest.raises(ValueError, match="at least 1"):
        UnknownTerminals(limit=0)


def test_online_intervals_and_their_rebuild_from_events(state: TerminalsState) -> None:
    steps: list[Step] = [
        (0, birth(2)),
        (30, hb(3)),
        (100, shutdown(4)),
        (200, birth(2, boot="b2", bd=2)),
        (230, hb(3, boot="b2", bd=2)),
        (400, Expire()),  # silent since 230: offline from 230
        (500, hb(4, boot="b2", bd=2)),
        (520, hb(5, boot="b2", bd=2)),
    ]
    events = [e for step in run(state, steps) for e in step]
    assert state.online_intervals("S1", "S1-101", 0.0, 600.0) == (
        (0.0, 100.0),
        (200.0, 230.0),
        (500.0, 600.0),
    )
    assert state.online_intervals("S1", "S1-101", 50.0, 550.0) == (
        (50.0, 100.0),
        (200.0, 230.0),
        (500.0, 550.0),
    )
    assert intervals_from_events(events, until=600.0) == state.online_intervals(
        "S1", "S1-101", 0.0, 600.0
    )
    assert state.online_intervals("S1", "S1-102", 0.0, 600.0) == ()
    with pytest.raises(KeyError):
        state.online_intervals("S1", "PC-9", 0.0, 600.0)


def test_history_is_bounded_by_count_and_age(district: Config) -> None:
    inventory = TerminalInventory.from_inventory(inventory_of(district))
    state = TerminalsState(inventory, history_limit=2, history_seconds=1_000.0)
    seq = 1
    for start in (0.0, 100.0, 200.0):
        state.apply(birth(seq + 1, bd=seq), start)
        state.apply(shutdown(seq + 2, bd=seq), start + 50)
        seq += 3
    st = state.terminal("S1", "S1-101")
    assert st is not None
    assert list(st.history) == [(100.0, 150.0), (200.0, 250.0)]
    assert st.history_dropped == 1
    state.apply(birth(seq + 1, bd=seq), 5_000.0)
    state.apply(shutdown(seq + 2, bd=seq), 5_050.0)
    assert list(st.history) == [(5_000.0, 5_050.0)]  # the others ended too long ago
    assert st.history_dropped == 1  # age pruning is not counted as a drop


def test_intervals_from_events_edge_cases() -> None:
    def ev(at: float, kind: EventKind) -> Event:
        return Event(at, kind, "S1-101", "S1", classroom="S1-101")

    events = [
        ev(300.0, EventKind.TERMINAL_ONLINE),
        ev(0.0, EventKind.TERMINAL_ONLINE),
        ev(50.0, EventKind.TERMINAL_ONLINE),  # the collector restarted: the interval goes on
        ev(100.0, EventKind.TERMINAL_OFFLINE),
        ev(150.0, EventKind.TERMINAL_OFFLINE),  # nothing open: ignored
        ev(120.0, EventKind.LINK_DOWN),
    ]
    assert intervals_from_events(events, until=400.0) == ((0.0, 100.0), (300.0, 400.0))
    assert intervals_from_events(events[:1], until=200.0) == ()


def test_clip_intervals_merges_and_cuts() -> None:
    spans = [(50.0, 80.0), (0.0, 60.0), (90.0, 90.0), (100.0, 200.0)]
    assert clip_intervals(spans, 10.0, 150.0) == ((10.0, 80.0), (100.0, 150.0))


def test_heartbeat_timeout_is_a_number_of_intervals_three_by_default() -> None:
    assert heartbeat_timeout() == 90.0
    assert heartbeat_timeout(30.0) == 90.0
    assert heartbeat_timeout(60.0, 2.5) == 150.0


def test_replace_keeps_helpers_honest() -> None:
    # The helpers above build what the wire parser builds: a round trip changes nothing.
    h = replace(hb(3), ip="10.0.0.1")
    again = parse_message(terminal_topic("t", "S1", "S1-101", "heartbeat"), encode_heartbeat(h))
    assert again == h
