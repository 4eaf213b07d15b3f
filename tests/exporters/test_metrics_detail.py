"""``[metrics] detail``: essential leaves out the diagnostics and keeps every series a rule reads.

The series the shipped rules read are worked out from the rule files themselves (expressions,
and the queries in their annotations), so a new rule cannot lose its series to the budget.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

from edumon.cluster.member import ClusterStats
from edumon.config import MetricsConfig
from edumon.domain.models import DeviceReading, DeviceUnreachable
from edumon.domain.outages import Outage, OutageKind, OutageTracker
from edumon.exporters.metrics import Exposition
from edumon.exporters.metrics import families as f
from edumon.runtime import Runtime
from edumon.sources.snmp.poller import DeviceStats, PollerStats
from edumon.sources.snmp.transport import TransportStats
from tests.exporters.test_metrics import find, one, promtool_check, samples
from tests.fixtures.runtime import (
    Agent,
    Clock,
    build_terminals_runtime,
    feed,
    idle_ingest,
    local,
    port,
)

RULES = sorted((Path(__file__).resolve().parents[2] / "deploy/prometheus/rules").glob("*.yml"))
METRIC = re.compile(r"\bedumon_[a-z0-9_]+")
CACHED = (
    *f.SWITCH,
    *f.SWITCH_COUNTERS,
    *f.POLLED,
    *f.SCHOOL_NAMES,
    *f.COMPLIANCE,
    *f.SCHOOL_LINK,
    *f.CLASSROOM,
    *f.HEARTBEAT,
)
"""Every family rendered per entity (the process's own are rendered apart, always whole)."""


@dataclasses.dataclass
class _Poller:
    """A poller's statistics as /metrics reads them (``PollerView``)."""

    switches: tuple[Any, ...]
    device_stats: dict[str, DeviceStats]
    stats: PollerStats = dataclasses.field(default_factory=PollerStats)
    transport_stats: TransportStats = dataclasses.field(default_factory=TransportStats)


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []


@dataclasses.dataclass
class OneOfACluster:
    """A collector's view of its cluster (``ClusterView``), for the exporter alone."""

    me: str = "c1"
    shards_total: int = 8
    active: frozenset[int] = frozenset({0, 1, 2, 3})
    stats: ClusterStats = dataclasses.field(default_factory=ClusterStats)


def rule_metrics() -> set[str]:
    """Every edumon metric a shipped rule reads: in its expression, or queried by its text."""
    names = set()
    for path in RULES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                names.update(METRIC.findall(" ".join(_strings(rule))))
    return names


def names_of(family: f.Family) -> set[str]:
    """The names a query may use for a family: its own and its samples'."""
    return {family.name, family.sample}


def exported(text: str) -> set[str]:
    """Family and sample names of an exposition, headers included (a family may be empty)."""
    out = set()
    for family in text_string_to_metric_families(text):
        out.add(family.name)
        out.update(s.name for s in family.samples)
    return out


def with_detail(rt: Runtime, detail: str) -> Runtime:
    rt.config = dataclasses.replace(rt.config, metrics=MetricsConfig(detail=detail))  # type: ignore[arg-type]
    return rt


def test_the_rules_read_metrics_and_none_of_them_is_a_diagnostic() -> None:
    used = rule_metrics()
    # The parse finds what the rules are known to read (a broken parse finds nothing).
    assert {"edumon_check_status", "edumon_device_state", "edumon_interface_speed_bytes"} <= used
    dropped = {name for family in f.DIAGNOSTICS for name in names_of(family)}
    assert used.isdisjoint(dropped), used & dropped


def test_the_default_is_full_and_an_unknown_detail_is_refused() -> None:
    assert MetricsConfig().detail == "full"
    assert f.shown(f.SWITCH, "full") == f.SWITCH
    with pytest.raises(ValueError, match="choose one of full, essential"):
        f.shown(f.SWITCH, "minimal")


@pytest.fixture
async def school_day(tmp_path: Path) -> AsyncIterator[tuple[Runtime, Clock, Agent]]:
    """A school day in lesson time with every part /metrics reads: switches polled (and a
    poller's figures), terminals heard from, the MQTT ingest, the schedule and an outage tracker
    with an open outage of each kind."""
    clock = Clock(local(date(2026, 9, 7), "10:30"))  # a Monday, in the third lesson
    rt = await build_terminals_runtime(tmp_path / "t.db", clock, started_at=clock.now)
    for reading in (
        DeviceReading(
            "core",
            clock.now - 30,
            50_000_000,
            "CORE",
            "Huawei S7706",
            (port(1, "ge-0/0/1"), port(2, "ge-0/0/2", speed=100.0), port(3, "ge-0/0/3")),
        ),
        DeviceReading(
            "sw-a",
            clock.now - 20,
            7_000,
            "A-ACCESS-1",
            "H3C S5130",
            (port(1, "Gi0/1", octets=9_000, errors=2), port(2, "Gi0/2"), port(4, "Gi0/4")),
        ),
    ):
        await rt.collector.submit(reading)
    await rt.collector.drain()
    a101, a103 = Agent("jy", "A", "A-101"), Agent("jy", "A", "ops-a103")
    await feed(
        rt,
        [
            (a101.birth(), clock.now - 10),
            (a101.heartbeat(), clock.now - 5),
            (a103.heartbeat(speed=100), clock.now - 5),
        ],
    )
    rt.poller = _Poller(
        tuple(rt.config.switches.values()),
        {"core": DeviceStats(polls_ok=1, requests=3, varbinds=40, last_poll_seconds=0.2)},
    )
    rt.ingest = idle_ingest(rt.config, rt.collector)
    rt.outages = OutageTracker()
    rt.outages.classrooms["A-104"] = Outage(
        OutageKind.CLASSROOM, "A", clock.now - 600, clock.now, classroom="A-104"
    )
    rt.outages.schools["K"] = Outage(OutageKind.SCHOOL, "K", clock.now - 300, clock.now)
    try:
        yield rt, clock, a101
    finally:
        await rt.store.aclose()


async def test_essential_keeps_every_series_a_rule_reads(
    school_day: tuple[Runtime, Clock, Agent],
) -> None:
    rt, clock, _ = school_day
    rt.cluster = OneOfACluster()  # the edumon_cluster_* families exist only in a cluster
    full = exported(Exposition(rt, clock=clock).render().decode())
    essential = exported(Exposition(with_detail(rt, "essential"), clock=clock).render().decode())
    missing = rule_metrics() - essential
    assert not missing, f"read by a shipped rule, not exported with detail = essential: {missing}"
    assert rule_metrics() <= full


async def test_essential_is_full_without_the_diagnostics(
    school_day: tuple[Runtime, Clock, Agent],
) -> None:
    rt, clock, _ = school_day
    full = Exposition(rt, clock=clock).render().decode()
    essential = Exposition(with_detail(rt, "essential"), clock=clock).render().decode()
    dropped = {name for family in f.DIAGNOSTICS for name in names_of(family)}
    # Every diagnostic family was in full detail, and none is in essential, header or sample.
    assert {family.sample for family in f.DIAGNOSTICS} <= exported(full)
    assert exported(essential).isdisjoint(dropped)
    for family in f.DIAGNOSTICS:
        assert f"# HELP {family.sample}" not in essential
        assert f"\n{family.sample}{{" not in essential
    # Every other series is there, with the same value.
    kept = {key: value for key, value in samples(full).items() if key[0] not in dropped}
    cached = {name for family in CACHED for name in names_of(family)}
    assert {k: v for k, v in samples(essential).items() if k[0] in cached} == {
        k: v for k, v in kept.items() if k[0] in cached
    }
    # The process's own families stay whole (the district-wide poll-duration histogram too).
    process = {k[0] for k in samples(full) if k[0] not in cached}
    assert process
    assert process <= {k[0] for k in samples(essential)}
    assert len(samples(essential)) < len(samples(full))


async def test_both_formats_are_clean_with_detail_essential(
    school_day: tuple[Runtime, Clock, Agent],
) -> None:
    rt, clock, _ = school_day
    exposition = Exposition(with_detail(rt, "essential"), clock=clock)
    om = exposition.render(openmetrics=True).decode()
    assert om.endswith("# EOF\n")
    om_names = {
        s.name for fam in openmetrics_parser.text_string_to_metric_families(om) for s in fam.samples
    }
    text = exposition.render().decode()
    assert om_names == {name for name, _ in samples(text)}
    code, report = await promtool_check(text)
    assert (code, report.strip()) == (0, "")


@pytest.mark.parametrize("detail", ["full", "essential"])
async def test_the_cache_is_never_stale(
    school_day: tuple[Runtime, Clock, Agent], detail: str
) -> None:
    """After each change, the cached scrape is what a fresh exposition renders."""
    rt, clock, agent = school_day
    with_detail(rt, detail)
    exposition = Exposition(rt, clock=clock)

    def fresh() -> str:
        return Exposition(rt, clock=clock).render().decode()

    def same() -> str:
        text = exposition.render().decode()
        assert samples(text) == samples(fresh())
        return text

    same()
    # Gi0/2 goes down and Gi0/1 slows to 100M; the core switch answers again.
    await rt.collector.submit(
        DeviceReading(
            "sw-a",
            clock.now + 40,
            13_000,
            "A-ACCESS-1",
            "H3C S5130",
            (port(1, "Gi0/1", speed=100.0, octets=19_000), port(2, "Gi0/2", up=False)),
        )
    )
    await rt.collector.drain()
    text = same()
    assert one(text, "edumon_interface_up", device="sw-a", interface="Gi0/2") == 0
    assert one(text, "edumon_interface_speed_bytes", device="sw-a", interface="Gi0/1") == 12.5e6
    assert find(text, "edumon_check_status", classroom="A-101", verdict="fail")
    # A-101's terminal is lost (Last Will); the school's switch stops answering.
    await feed(rt, [(agent.will(), clock.now + 50)])
    text = same()
    assert find(text, "edumon_terminal_offline_reason", classroom="A-101", reason="will")
    await rt.collector.submit(DeviceUnreachable("sw-a", clock.now + 100, "timeout"))
    await rt.collector.drain()
    text = same()
    assert one(text, "edumon_device_state", device="sw-a", state="unreachable") == 1
    assert find(text, "edumon_interface_up", device="sw-a") == []
    # The outage of K ends, the lesson ends.
    assert rt.outages is not None
    del rt.outages.schools["K"]
    clock.now = local(date(2026, 9, 7), "21:00")
    text = same()
    assert one(text, "edumon_school_outage", school="K") == 0


async def test_essential_renders_no_diagnostic_text(
    school_day: tuple[Runtime, Clock, Agent],
) -> None:
    """Left out, not rendered and dropped: the caches of the poller's and heartbeat figures
    hold no family, and no cached text holds a diagnostic."""
    rt, clock, _ = school_day
    exposition = Exposition(with_detail(rt, "essential"), clock=clock)
    exposition.render()
    assert exposition.detail == "essential"
    assert exposition.polled.kind == ()
    assert exposition.heartbeats.kind == ()
    for cache in (exposition.switches, exposition.counters, exposition.classrooms):
        assert cache.kind
        assert not set(cache.kind) & f.DIAGNOSTICS
        for family, text in cache.families():
            assert all(line.startswith(family.sample.encode()) for line in text.splitlines())
