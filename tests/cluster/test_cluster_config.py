"""The ``[cluster]`` table: defaults, and what it refuses."""

from __future__ import annotations

import dataclasses

import pytest

from edumon.cluster.run import restrict, school_of_switch
from edumon.config import inventory_of, parse_config
from edumon.errors import ConfigError

BASE = """
[district]
code = "t"
name = "测试市"

[mqtt]
broker = "external"

[[switches]]
id = "agg"
host = "127.0.0.1"
snmp = { version = "2c", community = "s3cret-community" }

[[switches]]
id = "S1-core"
host = "127.0.0.2"
snmp = { version = "2c", community = "s3cret-community" }
upstream = { switch = "agg", port = "Gi0/1" }

[[switches]]
id = "S2-core"
host = "127.0.0.3"
snmp = { version = "2c", community = "s3cret-community" }
upstream = { switch = "agg", port = "Gi0/2" }

[[schools]]
code = "S1"
name = "第一小学"
kind = "primary"
uplink = { switch = "agg", port = "Gi0/1" }

[[schools]]
code = "S2"
name = "第二小学"
kind = "primary"
uplink = { switch = "agg", port = "Gi0/2" }
"""


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, where="edumon.toml")
    return str(info.value)


def test_no_cluster_table_means_one_collector() -> None:
    assert parse_config(BASE).cluster is None


def test_cluster_defaults() -> None:
    cluster = parse_config(BASE + '\n[cluster]\ncollector_id = "c1"\n').cluster
    assert cluster is not None
    assert (cluster.collector_id, cluster.shards, cluster.lease_seconds) == ("c1", 16, 30)
    assert cluster.renew_every == 10


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("shards = 16", "collector_id"),
        ('collector_id = "c 1"', "collector_id"),
        ('collector_id = "c1"\nshards = 0', "shards"),
        ('collector_id = "c1"\nlease_seconds = 1', "lease_seconds"),
        ('collector_id = "c1"\nlease_seconds = 10\nrenew_seconds = 6', "renew_seconds"),
        ('collector_id = "c1"\nleases = 3', "leases"),
    ],
)
def test_cluster_refuses(table: str, expected: str) -> None:
    assert expected in error_of(BASE + f"\n[cluster]\n{table}\n")


def test_cluster_needs_an_external_broker() -> None:
    text = BASE.replace('broker = "external"', 'broker = "embedded"')
    message = error_of(text + '\n[cluster]\ncollector_id = "c1"\n')
    assert "cluster" in message
    assert 'broker = "external"' in message


def test_a_school_core_under_a_district_switch_is_the_schools() -> None:
    config = parse_config(BASE + '\n[cluster]\ncollector_id = "c1"\n')
    assert config.switches["S1-core"].school is None  # it serves no port of its own
    assert school_of_switch(config, "S1-core") == "S1"
    assert school_of_switch(config, "agg") is None


def test_restrict_keeps_the_schools_their_switches_and_the_district_switches() -> None:
    config = parse_config(BASE + '\n[cluster]\ncollector_id = "c1"\n')
    mine = restrict(config, ["S2"])
    assert list(mine.schools) == ["S2"]
    assert sorted(mine.switches) == ["S2-core", "agg"]
    # The district switch stays: S2's uplink is on it, and S2's state depends on its polls.
    assert inventory_of(mine).schools["S2"].uplink_switch == "agg"
    assert dataclasses.replace(mine, schools=config.schools).switches == mine.switches
