"""`edumon agent-config`: one school's agent configuration from the district's, secrets by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from edumon.config import parse_config
from edumon.errors import ConfigError
from edumon.school_agent.config import parse_agent_config
from edumon.school_agent.generate import MQTT_PASSWORD_ENV, agent_config_text
from tests.fixtures.runtime import COMMUNITY, DISTRICT_TOML, SECRETS

AGENT_TOML = DISTRICT_TOML.replace(
    'code = "A"\nname = "第一小学"\nkind = "primary"\n',
    'code = "A"\nname = "第一小学"\nkind = "primary"\nswitches = "agent"\n',
)


def test_agent_schools_are_not_polled_centrally() -> None:
    config = parse_config(AGENT_TOML)
    assert config.agent_schools == frozenset({"A"})
    assert "sw-a" not in {s.id for s in config.centrally_polled()}
    assert {"core", "sw-b", "sw-c"} <= {s.id for s in config.centrally_polled()}


def test_generated_config_names_secrets_and_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config(AGENT_TOML)
    text = agent_config_text(config, "A", broker="mqtt.example:8883")
    for secret in SECRETS:
        assert secret not in text
    assert 'community_env = "EDUMON_SNMP_C1_COMMUNITY"' in text
    assert MQTT_PASSWORD_ENV in text
    monkeypatch.setenv("EDUMON_SNMP_C1_COMMUNITY", COMMUNITY)
    monkeypatch.setenv(MQTT_PASSWORD_ENV, "pw")
    agent = parse_agent_config(text)
    assert [s.id for s in agent.switches] == ["sw-a"]
    assert agent.switches[0].snmp.community is not None
    assert agent.switches[0].snmp.community.get_secret_value() == COMMUNITY
    assert (agent.agent.school, agent.agent.district) == ("A", "demo-county")
    assert (agent.mqtt.host, agent.mqtt.port) == ("mqtt.example", 8883)


def test_with_secrets_writes_them() -> None:
    text = agent_config_text(parse_config(AGENT_TOML), "A", with_secrets=True)
    assert f'community = "{COMMUNITY}"' in text


def test_unknown_school() -> None:
    with pytest.raises(ConfigError, match="no school with code Z"):
        agent_config_text(parse_config(AGENT_TOML), "Z")


def test_shipped_example_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDUMON_SNMP_C1_COMMUNITY", "x")
    monkeypatch.setenv(MQTT_PASSWORD_ENV, "y")
    example = Path(__file__).parents[2] / "agents" / "school" / "agent.example.toml"
    agent = parse_agent_config(example.read_text(encoding="utf-8"))
    assert agent.agent.id == "A-agent"


def test_bad_agent_config_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"agent\.interval_seconds"):
        parse_agent_config(
            '[agent]\nid = "a"\ndistrict = "d"\nschool = "s"\ninterval_seconds = 0\n'
            '[mqtt]\nhost = "h"\n'
        )


def test_a_loopback_broker_is_pointed_out() -> None:
    text = agent_config_text(parse_config(AGENT_TOML), "A")
    assert "give --broker HOST:PORT" in text
