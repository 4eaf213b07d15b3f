"""Data-quality checks: contradictions between polls, heartbeats and the inventory, and when
they are transient (not flagged) or held (flagged)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import pytest

from edumon.config import Config, inventory_of, terminal_inventory_of
from edumon.domain.inventory import ClassroomRef, Inventory
from edumon.domain.models import InterfaceReading
from edumon.domain.quality import KINDS, Freshness, QualityWarning, check_quality
from edumon.domain.state import NetworkState
from edumon.domain.terminals import TerminalsState
from edumon.wire import Heartbeat
from tests.domain.readings import port, reading

POLL = 60.0
FRESH = Freshness(poll_interval=POLL, heartbeat_timeout=90.0)


@dataclass
class World:
    """The district of tests/domain/conftest.py with its switches polled and terminals heard."""

    config: Config
    network: NetworkState = field(init=False)
    terminals: TerminalsState = field(init=False)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.network = NetworkState(inventory_of(self.config))
        self.terminals = TerminalsState(terminal_inventory_of(self.config))

    def poll(self, at: float, *ports: InterfaceReading) -> None:
        self.network.apply(reading("acc", at, int(at * 100), *ports))

    def heartbeat(
        self, at: float, terminal: str, *, school: str = "S1", speed: int | None = 1000
    ) -> None:
        self.terminals.apply(
            Heartbeat(
                district="t",
                school=school,
                terminal=terminal,
                boot_id="b" * 32,
                seq=next(self._seq),
                birth_seq=1,
                observed_at=at,
                uptime_seconds=100.0,
                agent_version="1",
                nic="eth0",
                link_speed_mbps=speed,
                duplex="full",
                ip=None,
                mac=None,
                cpu_percent=None,
                memory_used_bytes=None,
                memory_total_bytes=None,
                disk_used_bytes=None,
                disk_total_bytes=None,
            ),
            at,
        )

    def check(self, now: float, **kwargs: object) -> list[QualityWarning]:
        return check_quality(
            self.network,
            self.terminals.terminals,
            self.terminals.unknown.entries(),
            now,
            FRESH,
            district="t",
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture
def world(district: Config) -> World:
    return World(district)


def kinds(warnings: list[QualityWarning]) -> list[tuple[str, str | None]]:
    return [(w.kind, w.classroom) for w in warnings]


# S1-101 is on acc Gi0/2, S1-102 on acc Gi0/3, S1-103 has no port.


@pytest.mark.parametrize(
    ("polls", "beats", "now", "expected"),
    [
        # Down at two polls a cycle apart, heartbeats all along: the terminal is elsewhere.
        (
            [(0, False), (60, False)],
            [0, 30, 60, 90],
            100,
            [("terminal_online_port_down", "S1-101")],
        ),
        # Seen down once only: could be a flap.
        ([(0, True), (60, False)], [0, 30, 60, 90], 100, []),
        # The terminal lost power with its port: its last heartbeat came before the port
        # went down, it is still "online" until the heartbeat timeout.
        ([(0, True), (60, False), (120, False)], [0, 30, 59], 130, []),
        # Its heartbeats went on less than a poll interval past the first down poll.
        ([(0, False), (60, False)], [0, 30, 50], 55, []),
        # The port reading is stale (no poll for over two intervals): nothing said.
        ([(0, False), (60, False)], [0, 30, 60, 90, 180, 200], 200, []),
        # Up: nothing to say.
        ([(0, True), (60, True)], [0, 30, 60, 90], 100, []),
    ],
)
def test_terminal_online_while_its_port_is_down(
    world: World,
    polls: list[tuple[float, bool]],
    beats: list[float],
    now: float,
    expected: list[tuple[str, str]],
) -> None:
    events = sorted([(at, "poll", up) for at, up in polls] + [(at, "beat", True) for at in beats])
    for at, what, up in events:
        if what == "poll":
            world.poll(at, port(2, "Gi0/2", up=up), port(3, "Gi0/3"))
        else:
            world.heartbeat(at, "S1-101")
    warnings = world.check(now)
    assert kinds(warnings) == expected
    for w in warnings:
        assert (w.school, w.switch, w.port, w.terminal) == ("S1", "acc", "Gi0/2", "S1-101")
        assert w.fix == "检查 classrooms.csv 中 第一小学 一年级(1)班 (S1-101) 的 switch/port"
        assert "S1-101" in w.message_en
        assert "第一小学" in w.message


@pytest.mark.parametrize(
    ("port_speed", "nic_speed", "last_beat", "expected"),
    [
        (100.0, 1000, 70, [("speed_mismatch", "S1-102")]),
        (1000.0, 1000, 70, []),
        (1000.0, 100, 70, [("speed_mismatch", "S1-102")]),
        # The NIC reports no speed (Wi-Fi): nothing to compare.
        (100.0, None, 70, []),
        # The heartbeat is older than the poll that read the speed: it may predate a
        # renegotiation the port already shows.
        (100.0, 1000, 50, []),
    ],
)
def test_nic_speed_unlike_its_port(
    world: World, port_speed: float, nic_speed: int | None, last_beat: float, expected: object
) -> None:
    world.heartbeat(0, "S1-102", speed=nic_speed)
    world.poll(0, port(2, "Gi0/2"), port(3, "Gi0/3", speed=port_speed))
    world.poll(60, port(2, "Gi0/2"), port(3, "Gi0/3", speed=port_speed))
    world.heartbeat(last_beat, "S1-102", speed=nic_speed)
    warnings = world.check(75)
    assert kinds(warnings) == expected
    if warnings:
        (w,) = warnings
        assert (w.port_speed_mbps, w.terminal_speed_mbps) == (port_speed, nic_speed)
        assert "S1-102" in w.fix


def test_a_port_that_just_came_up_is_not_judged(world: World) -> None:
    world.heartbeat(0, "S1-102", speed=1000)
    world.poll(0, port(2, "Gi0/2"), port(3, "Gi0/3", up=False))
    world.poll(60, port(2, "Gi0/2"), port(3, "Gi0/3", speed=100.0))
    world.heartbeat(70, "S1-102", speed=1000)
    assert world.check(75) == []


def test_a_port_description_naming_another_classroom(world: World) -> None:
    swapped = replace(port(3, "Gi0/3"), alias="一年级(1)班")
    world.poll(0, replace(port(2, "Gi0/2"), alias="一年级(1)班"), swapped)
    (w,) = world.check(10)
    assert (w.kind, w.classroom, w.other_classroom, w.port) == (
        "two_classrooms_one_port",
        "S1-102",
        "S1-101",
        "Gi0/3",
    )
    assert "一年级(2)班 (S1-102)" in w.fix
    assert "一年级(1)班 (S1-101)" in w.fix


def test_two_inventory_rows_on_one_port(world: World) -> None:
    # edumon's config refuses such rows; an inventory built another way is still checked.
    inv = world.network.inventory
    school = inv.schools["S1"]
    rooms = (*school.classrooms, ClassroomRef("S1-104", "一年级(4)班", "acc", "Gi0/2"))
    shared = Inventory({"S1": replace(school, classrooms=rooms)}, inv.switch_school)
    network = NetworkState(shared)
    warnings = check_quality(network, {}, (), 0.0, FRESH)
    assert kinds(warnings) == [("two_classrooms_one_port", "S1-104")]
    assert warnings[0].other_classroom == "S1-101"


def test_a_terminal_reporting_from_another_school(world: World, district: Config) -> None:
    world.heartbeat(0, "S1-101", school="S2")
    (w,) = world.check(10)
    assert (w.kind, w.school, w.classroom, w.other_school) == (
        "terminal_wrong_school",
        "S1",
        "S1-101",
        "S2",
    )
    assert "S2" in w.fix
    assert "一年级(1)班 (S1-101)" in w.fix
    # Another district's terminal with the same id is not ours; a silent one is not current.
    assert world.check(10 + FRESH.heartbeat_timeout + 1) == []
    world.heartbeat(20, "S1-999", school="S2")
    assert kinds(world.check(30)) == [("terminal_wrong_school", "S1-101")]


def test_school_filter_and_order(world: World) -> None:
    world.heartbeat(0, "S1-101", school="S2")
    assert world.check(10, schools=["S2"]) == []
    assert len(world.check(10, schools=["S1"])) == 1
    assert set(KINDS) == {
        "terminal_online_port_down",
        "speed_mismatch",
        "two_classrooms_one_port",
        "terminal_wrong_school",
    }
