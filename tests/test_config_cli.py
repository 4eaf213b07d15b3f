"""check-config refuses whatever run would refuse; run refuses it before touching the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from edumon.cli import main

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
[district]
code = "t"
name = "测试县"

[storage]
url = "sqlite:///{db}"

[api]
listen = "127.0.0.1:0"

[mqtt]
listen = "127.0.0.1:0"
"""


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        pytest.param("", None, id="valid"),
        pytest.param("[polling]\ninterval_secs = 5\n", "did you mean interval_seconds?", id="typo"),
        pytest.param(
            '[mqtt.tls]\nca_file = "/nonexistent/ca.pem"\n',
            "mqtt.tls.ca_file: cannot read /nonexistent/ca.pem",
            id="unreadable-tls-file",
        ),
        pytest.param('[metrics]\ndetail = "essential"\n', None, id="metrics-essential"),
        pytest.param(
            '[metrics]\ndetail = "all"\n',
            'metrics.detail: "all" is not allowed; choose one of full, essential',
            id="metrics-detail",
        ),
        pytest.param(
            '[targets]\nprofile = "custom"\n',
            'targets: profile = "custom" needs both uplink_mbps and classroom_mbps',
            id="custom-targets",
        ),
        pytest.param(
            "heartbeat_timeout_intervals = 1.5\n",
            "mqtt.heartbeat_timeout_intervals: Input should be greater than 2",
            id="heartbeat-timeout-below-two-intervals",
        ),
    ],
)
def test_check_config_exit_codes(tmp_path: Path, extra: str, fragment: str | None) -> None:
    config = tmp_path / "edumon.toml"
    config.write_text(GOOD.format(db=tmp_path / "edumon.db") + extra, encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config", str(config)])
    if fragment is None:
        assert result.exit_code == 0, result.output
        assert "OK" in result.stdout
    else:
        assert result.exit_code == 2, result.output
        assert fragment in result.stderr
        assert str(config) in result.stderr


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(None, "cannot read the configuration", id="missing-file"),
        pytest.param(b"[district\n", "edumon.toml:1: not valid TOML", id="not-toml"),
        pytest.param("[district]\nname = '县'\n".encode("gbk"), "not UTF-8", id="gbk"),
    ],
)
def test_check_config_unreadable_files(
    tmp_path: Path, content: bytes | None, fragment: str
) -> None:
    config = tmp_path / "edumon.toml"
    if content is not None:
        config.write_bytes(content)
    result = CliRunner().invoke(main, ["check-config", str(config)])
    assert result.exit_code == 2
    assert fragment in result.stderr


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param('[mqtt]\nbroker = "external"\npassword = "x-s3cret"\n', id="mqtt-password"),
        pytest.param('[api]\nlisten = "nowhere"\n', id="api-listen"),
        pytest.param('[storage]\nurl = "mysql://u@127.0.0.1/x"\n', id="storage-scheme"),
    ],
)
def test_run_refuses_before_touching_the_database(tmp_path: Path, extra: str) -> None:
    # The defect replaces a section of GOOD (TOML forbids defining a table twice).
    section = extra.split("\n", 1)[0]
    base = GOOD.format(db=tmp_path / "data" / "edumon.db")
    if section in base:
        start = base.index(section)
        end = base.find("\n[", start + 1)
        base = base[:start] + (base[end + 1 :] if end >= 0 else "")
    config = tmp_path / "edumon.toml"
    config.write_text(base + "\n" + extra, encoding="utf-8")
    for command in (["check-config", str(config)], ["run", "-c", str(config)]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        assert str(config) in result.stderr
        assert "x-s3cret" not in result.output
    assert not (tmp_path / "data").exists()  # open_store would have created it


def test_the_example_configuration_is_valid() -> None:
    result = CliRunner().invoke(main, ["check-config", str(ROOT / "config.example.toml")])
    assert result.exit_code == 0, result.output
    assert "20 schools, 200 classrooms" in result.stdout
    # Warnings about the configuration itself are printed as "warning: ..." (the working
    # calendar's notice about next year is logged, and depends on today's date).
    assert "warning: " not in result.output
