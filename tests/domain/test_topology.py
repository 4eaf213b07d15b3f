"""Parent failure: one alarm per failure, in both uplink layouts and for access switches."""

from __future__ import annotations

import pytest

from edumon.config import inventory_of, parse_config
from edumon.domain.models import DeviceUnreachable, Observation
from edumon.domain.state import NetworkState
from edumon.domain.topology import Condition, Connectivity, Topology, assess
from edumon.errors import ConfigError
from tests.domain.readings import port, reading

# Two schools, one per layout:
# - OWN: the uplink port is on the school's own core switch (own-core), with two access switches,
#   acc2 hanging off acc1 explicitly (upstream).
# - AGG: the uplink port is on the district aggregation switch (agg), the school's own switch
#   (agg-school) hangs off that port.
TOPOLOGY = """
[district]
code = "t"
name = "测试县"

[credentials.c]
version = "2c"
community = "c0mmunity-secret"

[[switches]]
id = "agg"
host = "127.0.0.1"
credentials = "c"

[[switches]]
id = "own-core"
host = "127.0.0.1"
credentials = "c"

[[switches]]
id = "acc1"
host = "127.0.0.1"
credentials = "c"

[[switches]]
id = "acc2"
host = "127.0.0.1"
credentials = "c"
upstream = { switch = "acc1", port = "Gi0/24" }

[[switches]]
id = "agg-school"
school = "AGG"
host = "127.0.0.1"
credentials = "c"
upstream = { switch = "agg", port = "Gi1/0/5" }

[[switches]]
id = "agg-acc"
school = "AGG"
host = "127.0.0.1"
credentials = "c"

[[schools]]
code = "OWN"
name = "城关小学"
kind = "primary"
uplink = { switch = "own-core", port = "Te1/0/25" }

[[schools.classrooms]]
id = "OWN-1"
name = "一年级(1)班"
switch = "acc1"
port = "Gi0/1"

[[schools.classrooms]]
id = "OWN-2"
name = "一年级(2)班"
switch = "acc2"
port = "Gi0/1"

[[schools]]
code = "AGG"
name = "石桥中学"
kind = "middle"
uplink = { switch = "agg", port = "Gi1/0/5" }

[[schools.classrooms]]
id = "AGG-1"
name = "初一(1)班"
switch = "agg-school"
port = "Gi0/1"

# A second school on the aggregation switch makes it a district switch (it serves two).
[[schools]]
code = "AGG2"
name = "石桥小学"
kind = "primary"
uplink = { switch = "agg", port = "Gi1/0/6" }
"""

UP = "up"
DOWN = "down"
DEAD = "dead"


def polls(**situation: str) -> list[Observation]:
    """One poll per switch: up (answers, every port up), a port name down, or dead."""
    ports = {
        "agg": ["Gi1/0/5", "Gi1/0/6"],
        "own-core": ["Te1/0/25"],
        "acc1": ["Gi0/1", "Gi0/24"],
        "acc2": ["Gi0/1"],
        "agg-school": ["Gi0/1"],
        "agg-acc": ["Gi0/1"],
    }
    out: list[Observation] = []
    for device, names in ports.items():
        what = situation.get(device.replace("-", "_"), UP)
        if what == DEAD:
            out.append(DeviceUnreachable(device, 10.0, "no reply"))
            continue
        out.append(
            reading(
                device,
                10.0,
                1000,
                *(port(i + 1, n, up=what != n) for i, n in enumerate(names)),
            )
        )
    return out


def assessed(**situation: str) -> tuple[NetworkState, Topology]:
    config = parse_config(TOPOLOGY)
    state = NetworkState(inventory_of(config), list(config.switches))
    for obs in polls(**situation):
        state.apply(obs)
    return state, assess(state)


@pytest.mark.parametrize(
    ("situation", "schools", "switches", "unknown_rooms"),
    [
        ({}, {"OWN": "ok", "AGG": "ok"}, {}, set()),
        # Fibre cut, own-core layout: the core and everything behind it stop answering.
        (
            {"own_core": DEAD, "acc1": DEAD, "acc2": DEAD},
            {"OWN": "unreachable", "AGG": "ok"},
            {"own-core": "unknown", "acc1": "unknown", "acc2": "unknown"},
            {"OWN-1", "OWN-2"},
        ),
        # Fibre cut, aggregation layout: the district port goes down, the school goes silent.
        (
            {"agg": "Gi1/0/5", "agg_school": DEAD, "agg_acc": DEAD},
            {"OWN": "ok", "AGG": "uplink_down"},
            {"agg": "up", "agg-school": "unknown", "agg-acc": "unknown"},
            {"AGG-1"},
        ),
        # The school's core dies but the district port stays up (a powered-down core): one
        # alarm, the switch behind the core is unknown.
        (
            {"agg_school": DEAD, "agg_acc": DEAD},
            {"AGG": "ok"},
            {"agg-school": "unreachable", "agg-acc": "unknown"},
            {"AGG-1"},
        ),
        # An access switch dies: one switch alarm; the switch behind it is unknown.
        (
            {"acc1": DEAD, "acc2": DEAD},
            {"OWN": "ok"},
            {"acc1": "unreachable", "acc2": "unknown", "own-core": "up"},
            {"OWN-1", "OWN-2"},
        ),
        # The trunk port to acc2 is down: acc2 is the one alarm, naming the port.
        (
            {"acc1": "Gi0/24", "acc2": DEAD},
            {"OWN": "ok"},
            {"acc1": "up", "acc2": "unreachable"},
            {"OWN-2"},
        ),
        # The district aggregation switch dies: its own alarm; the school behind it is unknown.
        (
            {"agg": DEAD, "agg_school": DEAD, "agg_acc": DEAD},
            {"AGG": "unknown", "OWN": "ok"},
            {"agg": "unreachable", "agg-school": "unknown", "agg-acc": "unknown"},
            {"AGG-1"},
        ),
    ],
)
def test_one_failure_one_alarm(
    situation: dict[str, str],
    schools: dict[str, str],
    switches: dict[str, str],
    unknown_rooms: set[str],
) -> None:
    _, topo = assessed(**situation)
    assert {c: topo.schools[c].connectivity.value for c in schools} == schools
    assert {d: topo.switches[d].condition.value for d in switches} == switches
    rooms = {"OWN-1": ("OWN", "acc1"), "OWN-2": ("OWN", "acc2"), "AGG-1": ("AGG", "agg-school")}
    found = {r for r, (s, sw) in rooms.items() if topo.classroom_unknown(s, sw) is not None}
    assert found == unknown_rooms
    roots = [d for d, v in topo.switches.items() if v.condition is Condition.UNREACHABLE]
    cut = [c for c, link in topo.schools.items() if link.connectivity.cut_off]
    # One alarm per failure: never a school outage and a switch alarm for the same cut.
    assert len(roots) + len(cut) <= 1


def test_every_school_and_switch_has_a_state_before_any_poll() -> None:
    config = parse_config(TOPOLOGY)
    topo = assess(NetworkState(inventory_of(config), list(config.switches)))
    assert {link.connectivity for link in topo.schools.values()} == {Connectivity.UNKNOWN}
    assert {v.condition for v in topo.switches.values()} == {Condition.PENDING}
    # Not polled yet is not a failure: classrooms can still be judged by their terminals.
    assert topo.classroom_unknown("OWN", "acc1") is None


def test_reasons_name_the_switch_in_chinese_first() -> None:
    _, topo = assessed(own_core=DEAD, acc1=DEAD, acc2=DEAD)
    reason = topo.schools["OWN"].reason
    assert reason.startswith("学校与城域网失联")
    assert "own-core" in reason


@pytest.mark.parametrize(
    ("upstream", "message"),
    [
        ('{ switch = "nope", port = "x" }', "no switch with id nope"),
        ('{ switch = "acc2", port = "x" }', "a switch cannot hang off itself"),
    ],
)
def test_upstream_must_name_another_known_switch(upstream: str, message: str) -> None:
    text = TOPOLOGY.replace(
        'upstream = { switch = "acc1", port = "Gi0/24" }', f"upstream = {upstream}"
    )
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_upstream_loops_are_refused() -> None:
    text = TOPOLOGY.replace(
        'id = "acc1"\nhost = "127.0.0.1"\ncredentials = "c"',
        'id = "acc1"\nhost = "127.0.0.1"\ncredentials = "c"\n'
        'upstream = { switch = "acc2", port = "Gi0/24" }',
    )
    with pytest.raises(ConfigError, match="hang off each other"):
        parse_config(text)
