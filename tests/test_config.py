"""Configuration: strict validation with errors that name the key; secrets stay secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edumon.config import inventory_of, load_config, parse_config
from edumon.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

BASE = """
[district]
code = "t"
name = "测试县"

[[switches]]
id = "core"
host = "127.0.0.1"
snmp = { version = "2c", community = "s3cret-community" }

[[schools]]
code = "S1"
name = "第一小学"
kind = "primary"
uplink = { switch = "core", port = "Gi0/1" }
"""


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, where="edumon.toml")
    return str(info.value)


def test_minimal_config_resolves_defaults() -> None:
    config = parse_config(BASE)
    assert config.targets.profile == "district-1000m"
    assert (config.targets.uplink_mbps, config.targets.classroom_mbps) == (1000, 1000)
    assert config.api.listen == "127.0.0.1:9310"  # loopback unless configured otherwise
    assert config.storage.url.get_secret_value().startswith("sqlite:")
    assert config.switches["core"].school == "S1"
    assert config.switches["core"].max_in_flight == 1
    assert config.metrics.detail == "full"  # a county keeps every series


def test_metrics_detail_is_full_or_essential() -> None:
    assert parse_config(BASE + '\n[metrics]\ndetail = "essential"\n').metrics.detail == "essential"
    assert parse_config(BASE + '\n[metrics]\ndetail = "full"\n').metrics.detail == "full"
    message = error_of(BASE + '\n[metrics]\ndetail = "Essential"\n')
    assert 'metrics.detail: "Essential" is not allowed; choose one of full, essential' in message
    assert "did you mean detail?" in error_of(BASE + '\n[metrics]\ndetails = "full"\n')


def test_heartbeat_timeout_is_three_intervals_by_default_and_configurable() -> None:
    assert parse_config(BASE).mqtt.heartbeat_timeout_seconds == 90.0
    config = parse_config(
        BASE + "\n[mqtt]\nheartbeat_interval_seconds = 20\nheartbeat_timeout_intervals = 4.5\n"
    )
    assert config.mqtt.heartbeat_timeout_seconds == 90.0
    assert (
        parse_config(
            BASE + "\n[mqtt]\nheartbeat_interval_seconds = 1\n"
        ).mqtt.heartbeat_timeout_seconds
        == 3.0
    )


@pytest.mark.parametrize(
    ("intervals", "expected"),
    [
        ("2", "mqtt.heartbeat_timeout_intervals: Input should be greater than 2"),
        ("1.5", "mqtt.heartbeat_timeout_intervals: Input should be greater than 2"),
        ("0", "mqtt.heartbeat_timeout_intervals: Input should be greater than 2"),
        ("10.5", "mqtt.heartbeat_timeout_intervals: Input should be less than or equal to 10"),
        ('"three"', "mqtt.heartbeat_timeout_intervals: Input should be a valid number"),
    ],
)
def test_heartbeat_timeout_intervals_are_validated(intervals: str, expected: str) -> None:
    assert expected in error_of(BASE + f"\n[mqtt]\nheartbeat_timeout_intervals = {intervals}\n")


def test_unknown_key_is_named_with_its_line() -> None:
    text = BASE.replace('kind = "primary"', 'kind = "primary"\nuplnk_speed = 1000')
    message = error_of(text)
    assert "schools[0].uplnk_speed" in message
    assert "unknown key" in message
    assert "edumon.toml:15:" in message


def test_typo_in_a_section_name_is_rejected() -> None:
    message = error_of(BASE + '\n[targts]\nprofile = "national-2021"\n')
    assert "targts" in message
    assert "unknown key" in message


def test_missing_uplink_port_is_named() -> None:
    message = error_of(
        BASE.replace('uplink = { switch = "core", port = "Gi0/1" }', 'uplink = { switch = "core" }')
    )
    assert "schools[0].uplink.port: required key is missing" in message


def test_uplink_on_unknown_switch_is_named() -> None:
    message = error_of(BASE.replace('switch = "core", port', 'switch = "coer", port'))
    assert "schools[0].uplink.switch: no switch with id coer" in message


def test_bad_snmp_version_is_named() -> None:
    message = error_of(BASE.replace('version = "2c"', 'version = "1"'))
    assert "switches[0].snmp.version" in message
    assert '"1" is not allowed; choose one of 2c, 3' in message


@pytest.mark.parametrize(
    ("snmp", "expected"),
    [
        ('{ version = "3", auth_protocol = "SHA", auth_password = "abcdefgh" }', "needs user"),
        (
            '{ version = "3", user = "u", auth_protocol = "MD4", auth_password = "abcdefgh" }',
            "auth_protocol",
        ),
        (
            '{ version = "3", user = "u", priv_protocol = "AES-128", priv_password = "abcdefgh" }',
            "privacy (priv_protocol) needs authentication",
        ),
        (
            '{ version = "3", user = "u", auth_protocol = "SHA", auth_password = "short" }',
            "at least 8 characters",
        ),
        ('{ version = "2c" }', "needs community"),
        ('{ version = "2c", community = "x", community_env = "Y" }', "not both"),
    ],
)
def test_v3_and_v2c_credential_rules(snmp: str, expected: str) -> None:
    text = BASE.replace('{ version = "2c", community = "s3cret-community" }', snmp)
    assert expected in error_of(text)


def test_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_COMMUNITY", "env-community-value")
    config = parse_config(
        BASE.replace('community = "s3cret-community"', 'community_env = "T_COMMUNITY"')
    )
    community = config.switches["core"].snmp.community
    assert community is not None
    assert community.get_secret_value() == "env-community-value"
    assert "env-community-value" not in repr(config)
    assert "env-community-value" not in str(config.switches["core"])


def test_missing_environment_variable_names_it_not_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("T_MISSING", raising=False)
    message = error_of(
        BASE.replace('community = "s3cret-community"', 'community_env = "T_MISSING"')
    )
    assert "T_MISSING" in message
    assert "not set" in message


def test_secret_never_appears_in_an_error() -> None:
    message = error_of(BASE.replace('kind = "primary"', 'kind = "college"'))
    assert "kind" in message
    assert "s3cret-community" not in message
    assert "s3cret-community" not in repr(parse_config(BASE))


def test_duplicate_ids_are_errors() -> None:
    text = (
        BASE
        + '\n[[switches]]\nid = "core"\nhost = "127.0.0.2"\n'
        + 'snmp = { version = "2c", community = "x" }\n'
    )
    assert "switch core is defined twice" in error_of(text)


def test_csv_inventory_import(tmp_path: Path) -> None:
    sheet = tmp_path / "rooms.csv"
    sheet.write_text(
        "school_code,school_name,classroom,switch,port\n"
        "S1,第一小学,一年级(1)班,core,Gi0/2\n"
        "S1,第一小学,一年级(2)班,127.0.0.1,Gi0/3\n",
        encoding="utf-8",
    )
    config_file = tmp_path / "edumon.toml"
    config_file.write_text(BASE + '\n[inventory]\ncsv = "rooms.csv"\n', encoding="utf-8")
    config = load_config(config_file)
    rooms = config.schools["S1"].classrooms
    assert [(r.name, r.switch, r.port) for r in rooms] == [
        ("一年级(1)班", "core", "Gi0/2"),
        ("一年级(2)班", "core", "Gi0/3"),  # switch given by IP address
    ]
    inventory = inventory_of(config)
    assert inventory.owner("core", "Gi0/3") is not None


def test_csv_row_for_unknown_school_names_the_row(tmp_path: Path) -> None:
    (tmp_path / "rooms.csv").write_text(
        "school_code,school_name,classroom,switch,port\nS9,九小,一班,core,Gi0/2\n", encoding="utf-8"
    )
    config_file = tmp_path / "edumon.toml"
    config_file.write_text(BASE + '\n[inventory]\ncsv = "rooms.csv"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rooms.csv:2: column school_code: school S9"):
        load_config(config_file)


def test_csv_missing_column(tmp_path: Path) -> None:
    (tmp_path / "rooms.csv").write_text("school_code,classroom\nS1,一班\n", encoding="utf-8")
    config_file = tmp_path / "edumon.toml"
    config_file.write_text(BASE + '\n[inventory]\ncsv = "rooms.csv"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="lacks column"):
        load_config(config_file)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edumon", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_check_config_accepts_the_example() -> None:
    result = run_cli("check-config", "config.example.toml")
    assert result.returncode == 0, result.stderr
    assert "20 schools, 200 classrooms" in result.stdout


def test_check_config_rejects_a_typo_naming_the_key(tmp_path: Path) -> None:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    bad = tmp_path / "edumon.toml"
    bad.write_text(text.replace("retention_days", "retension_days"), encoding="utf-8")
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "classrooms.example.csv").write_bytes(
        (ROOT / "deploy" / "classrooms.example.csv").read_bytes()
    )
    result = run_cli("check-config", str(bad))
    assert result.returncode != 0
    assert "storage.retension_days: unknown key" in result.stderr
    assert "example-community" not in result.stderr + result.stdout
