"""The week's district: two schools, one per uplink layout, on simulated switches over real UDP.

- 城关小学 (OWN): its uplink is a port of its own core switch ``own-core``; classrooms hang off
  ``acc1``, and ``acc2`` hangs off ``acc1`` (``upstream``).
- 石桥中学 (AGG): its uplink is a port of the district aggregation switch ``agg`` (which also
  serves 石桥小学, AGG2); the school's own switch ``agg-acc`` hangs off that port.

Lessons (both schools): 08:00-08:45, 08:55-09:40, 大课间, 10:00-10:45, 10:55-11:40, lunch,
14:00-14:45, 14:55-15:40, 15:50-16:35. Heartbeats every 300 s (the test moves its clock five
minutes a step), so a terminal that loses power is offline 3 intervals + 10 s after its last one.
"""

from __future__ import annotations

from dataclasses import dataclass

HEARTBEAT_SECONDS = 300
PERIODS = (
    ("08:00", "08:45"),
    ("08:55", "09:40"),
    ("10:00", "10:45"),
    ("10:55", "11:40"),
    ("14:00", "14:45"),
    ("14:55", "15:40"),
    ("15:50", "16:35"),
)


@dataclass(frozen=True)
class SwitchPlan:
    id: str
    school: str | None
    ports: tuple[str, ...]
    upstream: tuple[str, str] | None = None


SWITCHES = (
    SwitchPlan("own-core", "OWN", ("XGigabitEthernet0/0/1", "GigabitEthernet0/0/24")),
    SwitchPlan(
        "acc1", "OWN", ("GigabitEthernet0/0/1", "GigabitEthernet0/0/2", "GigabitEthernet0/0/24")
    ),
    SwitchPlan("acc2", "OWN", ("GigabitEthernet0/0/1",), ("acc1", "GigabitEthernet0/0/24")),
    SwitchPlan("agg", None, ("GigabitEthernet0/0/5", "GigabitEthernet0/0/6")),
    SwitchPlan(
        "agg-acc",
        "AGG",
        ("GigabitEthernet0/0/1", "GigabitEthernet0/0/2"),
        ("agg", "GigabitEthernet0/0/5"),
    ),
)
# terminal id (= classroom id) -> (school, classroom name, switch, port)
CLASSROOMS = {
    "OWN-1": ("OWN", "一年级(1)班", "acc1", "GigabitEthernet0/0/1"),
    "OWN-2": ("OWN", "一年级(2)班", "acc1", "GigabitEthernet0/0/2"),
    "OWN-3": ("OWN", "一年级(3)班", "acc2", "GigabitEthernet0/0/1"),
    "AGG-1": ("AGG", "初一(1)班", "agg-acc", "GigabitEthernet0/0/1"),
    "AGG-2": ("AGG", "初一(2)班", "agg-acc", "GigabitEthernet0/0/2"),
}


def config_text(
    *, district: str, storage_url: str, community: str, ports: dict[str, int], mqtt_port: int
) -> str:
    periods = ", ".join(f'{{ start = "{s}", end = "{e}" }}' for s, e in PERIODS)
    lines = [
        "[district]",
        f'code = "{district}"',
        'name = "周测县"',
        "[storage]",
        f'url = "{storage_url}"',
        "[polling]",
        "interval_seconds = 1",
        # A step scrapes right after its changes: each scrape renders them itself.
        "[metrics]",
        "refresh_seconds = 0",
        "[mqtt]",
        'broker = "external"',
        'host = "127.0.0.1"',
        f"port = {mqtt_port}",
        f"heartbeat_interval_seconds = {HEARTBEAT_SECONDS}",
        "[alerting]",
        "classroom_offline_minutes = 5",
        "school_cut_off_seconds = 120",
        "[schedule]",
        'timezone = "Asia/Shanghai"',
        "[schedule.timetables.week]",
        f"periods = [{periods}]",
        "[schedule.defaults]",
        'primary = "week"',
        'middle = "week"',
        "[[schedule.terms]]",
        'name = "2026秋季学期"',
        "start = 2026-09-01",
        "end = 2027-01-22",
        "[[schedule.terms]]",
        'name = "2027春季学期"',
        "start = 2027-02-22",
        "end = 2027-07-09",
        "[credentials.sim]",
        'version = "2c"',
        f'community = "{community}"',
    ]
    for sw in SWITCHES:
        lines += [
            "[[switches]]",
            f'id = "{sw.id}"',
            'host = "127.0.0.1"',
            f"port = {ports[sw.id]}",
            'credentials = "sim"',
            "timeout_seconds = 0.3",
            "retries = 0",
        ]
        if sw.school is not None:
            lines.append(f'school = "{sw.school}"')
        if sw.upstream is not None:
            lines.append(f'upstream = {{ switch = "{sw.upstream[0]}", port = "{sw.upstream[1]}" }}')
    schools = (
        ("OWN", "城关小学", "primary", "own-core", "XGigabitEthernet0/0/1"),
        ("AGG", "石桥中学", "middle", "agg", "GigabitEthernet0/0/5"),
        ("AGG2", "石桥小学", "primary", "agg", "GigabitEthernet0/0/6"),
    )
    for code, name, kind, switch, port in schools:
        lines += [
            "[[schools]]",
            f'code = "{code}"',
            f'name = "{name}"',
            f'kind = "{kind}"',
            f'uplink = {{ switch = "{switch}", port = "{port}" }}',
        ]
        for room, (school, room_name, room_switch, room_port) in CLASSROOMS.items():
            if school == code:
                lines += [
                    "[[schools.classrooms]]",
                    f'id = "{room}"',
                    f'name = "{room_name}"',
                    f'switch = "{room_switch}"',
                    f'port = "{room_port}"',
                ]
    return "\n".join(lines) + "\n"
