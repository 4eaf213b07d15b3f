"""A scripted school week: the real daemon under a controllable clock, the shipped alert rules.

Simulated switches answer real SNMP over UDP; classroom terminals speak the wire protocol over
the real Mosquitto, each its own MQTT session with its Last Will; edumon runs as ``edumon run``
does, its clock moved five minutes a step through nights, a Sunday, a 调休 working Saturday,
国庆, 寒假, lunch, a terminal killed, one losing power, a school cut off in both uplink layouts,
an access switch down, a whole-day outage and 2027-01-01 without an arrangement file. Every
scrape is kept; promtool then evaluates deploy/prometheus/rules/ on them, minute by minute, and
the test fails on any false, missed or repeated alert. The table printed is case, expected,
produced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.week import promtool
from tests.week.district import CLASSROOMS
from tests.week.harness import Week, running_week

ZONE = ZoneInfo("Asia/Shanghai")
STEP = 5 * 60
ALL = frozenset({"OWN-1", "OWN-2", "OWN-3", "AGG-1", "AGG-2"})
OWN_SWITCHES = ("own-core", "acc1", "acc2")
OWN_TERMINALS = ("OWN-1", "OWN-2", "OWN-3")
AGG_TERMINALS = ("AGG-1", "AGG-2")

pytestmark = [pytest.mark.timeout(600)]


@dataclass(frozen=True)
class Truth:
    """An outage as it really is: what must alert, from when (local HH:MM) until when."""

    kind: str  # classroom | school | switch | calendar
    start: str
    end: str | None = None  # None: still going at the window's end
    school: str = ""
    classroom: str = ""
    device: str = ""


@dataclass(frozen=True)
class Case:
    name: str
    day: str
    start: str
    end: str
    on: frozenset[str] = frozenset()
    actions: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    truth: tuple[Truth, ...] = ()


def at(day: str, hhmm: str) -> float:
    h, m = map(int, hhmm.split(":"))
    return datetime.fromisoformat(day).replace(hour=h, minute=m, tzinfo=ZONE).timestamp()


CASES = (
    Case("国庆 National Day (Fri 2026-10-02), terminals off", "2026-10-02", "07:40", "09:30"),
    Case(
        "调休 working Saturday in term (2026-10-10), OWN-2 left off",
        "2026-10-10",
        "07:40",
        "09:00",
        on=ALL - {"OWN-2"},
        truth=(Truth("classroom", "08:05", school="OWN", classroom="OWN-2"),),
    ),
    Case(
        "school cut off, uplink on its own core switch (fibre cut 08:40-10:00)",
        "2026-11-23",
        "07:40",
        "10:30",
        on=ALL,
        actions={
            "08:40": (("cut", *OWN_SWITCHES), *(("power", t) for t in OWN_TERMINALS)),
            "10:00": (("restore", *OWN_SWITCHES), *(("on", t) for t in OWN_TERMINALS)),
        },
        truth=(Truth("school", "08:45", "10:00", school="OWN"),),
    ),
    Case("weekday night (Tue 00:30), terminals off", "2026-11-24", "00:30", "02:00"),
    Case(
        "school cut off, uplink on a district switch (port down 08:40-10:00)",
        "2026-11-24",
        "07:40",
        "10:30",
        on=ALL,
        actions={
            "08:40": (
                ("port_down", "agg", "GigabitEthernet0/0/5"),
                ("cut", "agg-acc"),
                *(("power", t) for t in AGG_TERMINALS),
            ),
            "10:00": (
                ("port_up", "agg", "GigabitEthernet0/0/5"),
                ("restore", "agg-acc"),
                *(("on", t) for t in AGG_TERMINALS),
            ),
        },
        truth=(Truth("school", "08:45", "10:00", school="AGG"),),
    ),
    Case(
        "access switch acc2 down 08:40-09:40 (its classroom unknown)",
        "2026-11-25",
        "07:40",
        "10:00",
        on=ALL,
        actions={
            "08:40": (("cut", "acc2"), ("power", "OWN-3")),
            "09:40": (("restore", "acc2"), ("on", "OWN-3")),
        },
        truth=(Truth("switch", "08:40", "09:40", school="OWN", device="acc2"),),
    ),
    Case(
        "terminal killed 11:20 (Will), off across lunch, back 14:10",
        "2026-11-25",
        "10:50",
        "14:30",
        on=ALL,
        actions={"11:20": (("kill", "OWN-1"),), "14:10": (("on", "OWN-1"),)},
        truth=(Truth("classroom", "11:25", "14:10", school="OWN", classroom="OWN-1"),),
    ),
    Case(
        "terminal loses power silently 09:00, across 大课间",
        "2026-11-26",
        "08:40",
        "10:30",
        on=ALL,
        actions={"09:00": (("power", "OWN-3"),)},
        truth=(Truth("classroom", "09:15", school="OWN", classroom="OWN-3"),),
    ),
    Case(
        "whole-day outage: AGG-2 off all school day",
        "2026-11-27",
        "07:30",
        "17:00",
        on=ALL - {"AGG-2"},
        truth=(Truth("classroom", "08:05", "16:35", school="AGG", classroom="AGG-2"),),
    ),
    Case("Sunday (2026-11-29) morning, terminals off", "2026-11-29", "08:00", "10:00"),
    Case(
        "元旦 2027-01-01 with no 2027 arrangement file, terminals off",
        "2027-01-01",
        "07:40",
        "09:30",
        truth=(Truth("calendar", "07:40"),),
    ),
    Case(
        "寒假 (Mon 2027-02-01), terminals off",
        "2027-02-01",
        "07:40",
        "09:30",
        truth=(Truth("calendar", "07:40"),),
    ),
)


async def play(week: Week, case: Case) -> None:
    start, end = at(case.day, case.start), at(case.day, case.end)
    week.clock.now = start
    for sw in week.switches:
        week.restore(sw)
    await week.polled(*week.switches)
    for terminal in sorted(week.terminals):
        term = week.terminals[terminal]
        if terminal in case.on and not term.heartbeating:
            await week.set_terminal(terminal, "on")
        elif terminal not in case.on and term.heartbeating:
            await week.set_terminal(terminal, "kill")
    t = start
    while t <= end:
        hhmm = datetime.fromtimestamp(t, ZONE).strftime("%H:%M")
        touched: list[str] = []
        for action in case.actions.get(hhmm, ()):
            verb, *args = action
            if verb == "cut":
                week.clock.now = t
                week.cut(*args)
                touched += args
            elif verb == "restore":
                week.clock.now = t
                week.restore(*args)
                touched += args
            elif verb in ("port_down", "port_up"):
                week.port(args[0], args[1], verb == "port_up")
                touched.append(args[0])
            else:
                week.clock.now = t
                await week.set_terminal(args[0], verb)
        if touched:
            week.clock.now = t
            await week.polled(*touched)
        await week.step(t)
        t += STEP


def expected_minutes(case: Case) -> list[set[promtool.AlertKey]]:
    """The alerts that must fire each minute: each true outage from start + the rule's ``for``."""
    rules = {
        "classroom": promtool.rule_named("EdumonClassroomTerminalOffline"),
        "school": promtool.rule_named("EdumonSchoolDown"),
        "switch": promtool.rule_named("EdumonSwitchUnreachable"),
        "calendar": promtool.rule_named("EdumonCalendarNotCovered"),
    }
    start = at(case.day, case.start)
    minutes = int((at(case.day, case.end) - start) // 60) + 1
    out: list[set[promtool.AlertKey]] = [set() for _ in range(minutes)]
    for truth in case.truth:
        rule = rules[truth.kind]
        first = int((at(case.day, truth.start) - start) // 60) + rule.for_minutes
        last = minutes if truth.end is None else int((at(case.day, truth.end) - start) // 60)
        device = truth.device
        if truth.kind == "classroom" and not device:
            device = CLASSROOMS[truth.classroom][2]  # the alert names the classroom's switch
        key = promtool.alert_key(
            alertname=rule.name,
            school=truth.school,
            classroom=truth.classroom,
            device=device,
        )
        for minute in range(max(first, 0), last):
            out[minute].add(key)
    return out


def episodes(minutes: Sequence[set[promtool.AlertKey]]) -> dict[promtool.AlertKey, int]:
    """How many times each alert started firing."""
    count: dict[promtool.AlertKey, int] = {}
    before: set[promtool.AlertKey] = set()
    for now in minutes:
        for key in now - before:
            count[key] = count.get(key, 0) + 1
        before = now
    return count


def describe(counts: dict[promtool.AlertKey, int]) -> str:
    if not counts:
        return "none"
    return "; ".join(
        f"{dict(key).get('alertname')}[{','.join(v for k, v in key if k != 'alertname')}]×{n}"
        for key, n in sorted(counts.items())
    )


async def test_a_school_week_gives_one_true_alert_per_outage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    windows = []
    async with running_week(tmp_path, at(CASES[0].day, CASES[0].start)) as week:
        wanted = promtool.metric_names()
        for case in CASES:
            first = len(week.scrapes)
            await play(week, case)
            scrapes = [(t, promtool.parse_scrape(text, wanted)) for t, text in week.scrapes[first:]]
            expected = expected_minutes(case)
            windows.append(
                promtool.Window(
                    case.name, at(case.day, case.start), len(expected), scrapes, expected
                )
            )
    rows = []
    failures = []
    for case, window in zip(CASES, windows, strict=True):
        produced = promtool.run_promtool(window, tmp_path)
        exp, got = episodes(window.expected), episodes(produced)
        false = sum(len(p - e) for p, e in zip(produced, window.expected, strict=True))
        missed = sum(len(e - p) for p, e in zip(produced, window.expected, strict=True))
        rows.append((case.name, describe(exp), describe(got), false, missed))
        if false or missed or exp != got:
            failures.append(case.name)
    width = max(len(r[0]) for r in rows)
    with capsys.disabled():  # the table is the test's report: shown whether it passes or not
        print(f"\n{'case':<{width}} | expected | produced | false-minutes | missed-minutes")
        for name, exp_text, got_text, false, missed in rows:
            print(f"{name:<{width}} | {exp_text} | {got_text} | {false} | {missed}")
    assert not failures, f"false, missed or repeated alerts in: {failures}"
