"""A synthetic city for benchmarks and tests: N schools of the shape a county runs, no SNMP.

Each school has a core switch and ``access`` access switches (57 ports each, as a 48-port
switch with uplinks and stack ports reads), ``classrooms`` classrooms spread over the access
switches, and a 班班通 terminal per classroom. Every second school's uplink is a port of a
district aggregation switch (one per 50 schools), the others' a port of their own core; the
last classroom of every school has no switch port (judged by its terminal's NIC speed).

``readings`` gives one poll of every switch as the SNMP source would hand it to the collector,
with some ports down, some classrooms at 100 Mbit/s and some switches unreachable, drawn from
a seeded random generator: the state is built through the real domain code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from edumon.config import Config
from edumon.domain.models import (
    AdminStatus,
    DeviceReading,
    DeviceUnreachable,
    InterfaceReading,
    Observation,
    OperStatus,
)

PORTS_PER_SWITCH = 57
SCHOOLS_PER_AGGREGATION = 50


@dataclass(frozen=True, slots=True)
class CityShape:
    """How big the city is."""

    schools: int
    access: int = 9
    classrooms: int = 40


def school_code(i: int) -> str:
    return f"S{i:04d}"


def _port(n: int) -> str:
    return f"Gi0/0/{n}"


def city_toml(shape: CityShape, *, district: str = "city") -> str:
    """The configuration of the city, as an operator would write it."""
    out = [
        f'[district]\ncode = "{district}"\nname = "示范市"\n',
        '[targets]\nprofile = "district-1000m"\n',
        '[mqtt]\nbroker = "external"\nhost = "127.0.0.1"\n',
        '[credentials.v2]\nversion = "2c"\ncommunity = "city-bench-community"\n',
    ]
    aggregations = (shape.schools + SCHOOLS_PER_AGGREGATION - 1) // SCHOOLS_PER_AGGREGATION
    for a in range(aggregations):
        out.append(f'[[switches]]\nid = "agg-{a:02d}"\nhost = "10.0.{a}.1"\ncredentials = "v2"\n')
    per_access = -(-(shape.classrooms - 1) // shape.access)
    for i in range(shape.schools):
        code = school_code(i)
        net = f"10.{1 + i // 250}.{i % 250}"
        agg_uplink = i % 2 == 0
        agg = f"agg-{i // SCHOOLS_PER_AGGREGATION:02d}"
        agg_port = f"ge-0/0/{i % SCHOOLS_PER_AGGREGATION + 1}"
        core = f"{code}-core"
        upstream = f'upstream = {{ switch = "{agg}", port = "{agg_port}" }}\n' if agg_uplink else ""
        out.append(
            f'[[switches]]\nid = "{core}"\nschool = "{code}"\nhost = "{net}.1"\n'
            f'credentials = "v2"\n{upstream}'
        )
        for k in range(1, shape.access + 1):
            out.append(
                f'[[switches]]\nid = "{code}-a{k}"\nschool = "{code}"\nhost = "{net}.{1 + k}"\n'
                f'credentials = "v2"\nupstream = {{ switch = "{core}", port = "{_port(1 + k)}" }}\n'
            )
        uplink = (
            f'{{ switch = "{agg}", port = "{agg_port}" }}'
            if agg_uplink
            else f'{{ switch = "{core}", port = "{_port(1)}" }}'
        )
        kind = "primary" if i % 3 else "middle"
        out.append(
            f'[[schools]]\ncode = "{code}"\nname = "第{i + 1}学校"\nkind = "{kind}"\n'
            f"uplink = {uplink}\n"
        )
        for r in range(shape.classrooms):
            room = f"{code}-{r + 1:03d}"
            line = f'[[schools.classrooms]]\nid = "{room}"\nname = "{r + 1}班"\n'
            if r < shape.classrooms - 1:
                access = 1 + r // per_access
                line += f'switch = "{code}-a{access}"\nport = "{_port(11 + r % per_access)}"\n'
            out.append(line)
    return "\n".join(out)


def _ports(speeds: dict[str, float | None]) -> tuple[InterfaceReading, ...]:
    out = []
    for n in range(1, PORTS_PER_SWITCH + 1):
        name = _port(n)
        speed = speeds.get(name, 1000.0)
        up = speed is not None
        out.append(
            InterfaceReading(
                if_index=n,
                name=name,
                alias="",
                descr=f"GigabitEthernet{name}",
                oper_status=OperStatus.UP if up else OperStatus.DOWN,
                admin_status=AdminStatus.UP,
                speed_mbps=speed,
                in_octets=n * 1000,
                out_octets=n * 2000,
                in_errors=0,
                out_errors=0,
            )
        )
    return tuple(out)


def readings(
    config: Config, at: float, rng: random.Random, *, unreachable: float = 0.01
) -> list[Observation]:
    """One poll of every switch of ``config`` at ``at``.

    Classroom ports run at 1000 Mbit/s, 100 Mbit/s or are down; a share ``unreachable`` of
    switches does not answer.
    """
    classroom_ports: dict[str, list[str]] = {}
    for school in config.schools.values():
        for room in school.classrooms:
            if room.switch is not None and room.port is not None:
                classroom_ports.setdefault(room.switch, []).append(room.port)
    out: list[Observation] = []
    for sid in config.switches:
        if rng.random() < unreachable:
            out.append(DeviceUnreachable(sid, at, "no reply within 2 s (3 tries)", 6.0))
            continue
        speeds: dict[str, float | None] = {}
        for port in classroom_ports.get(sid, ()):
            roll = rng.random()
            speeds[port] = None if roll < 0.1 else (100.0 if roll < 0.2 else 1000.0)
        if sid.startswith("agg-") and rng.random() < 0.2:
            speeds[f"ge-0/0/{rng.randint(1, SCHOOLS_PER_AGGREGATION)}"] = None
        interfaces = _ports(speeds)
        if sid.startswith("agg-"):
            interfaces = tuple(
                InterfaceReading(
                    i.if_index,
                    f"ge-0/0/{i.if_index}",
                    i.alias,
                    i.descr,
                    i.oper_status
                    if speeds.get(f"ge-0/0/{i.if_index}", 1.0) is not None
                    else OperStatus.DOWN,
                    i.admin_status,
                    speeds.get(f"ge-0/0/{i.if_index}", 1000.0),
                    i.in_octets,
                    i.out_octets,
                )
                for i in interfaces
            )
        out.append(
            DeviceReading(
                sid,
                at,
                int(at * 100) % 2**31,
                sid.upper(),
                "Huawei S5735",
                interfaces,
                poll_seconds=0.2,
            )
        )
    return out
