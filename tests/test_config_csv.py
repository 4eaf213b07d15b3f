"""The classroom sheet is validated like the TOML: each defect names the sheet, row and column."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from edumon.cli import main
from edumon.config import load_config
from edumon.errors import ConfigError

TOML = """\
[district]
code = "t"
name = "测试县"

[inventory]
csv = "rooms.csv"

[credentials.v2c]
version = "2c"
community = "s3cret-community"

[[switches]]
id = "core"
host = "127.0.0.1"
credentials = "v2c"

[[switches]]
id = "acc1"
host = "127.0.0.2"
credentials = "v2c"

# Two simulated switches on one address, told apart by their SNMP port.
[[switches]]
id = "sim1"
host = "127.0.0.9"
port = 16101
credentials = "v2c"

[[switches]]
id = "sim2"
host = "127.0.0.9"
port = 16102
credentials = "v2c"

[[schools]]
code = "S1"
name = "第一小学"
kind = "primary"
uplink = { switch = "core", port = "Gi0/1" }

[[schools.classrooms]]
id = "S1-900"
name = "录播教室"
switch = "acc1"
port = "Gi0/24"
"""

HEADER = "school_code,school_name,classroom,switch,port,classroom_id\n"
GOOD = "S1,第一小学,一年级(1)班,acc1,Gi0/2,\n"  # row 2


def write(tmp_path: Path, rows: str, *, toml: str = TOML, header: str = HEADER) -> Path:
    (tmp_path / "rooms.csv").write_text(header + rows, encoding="utf-8")
    config = tmp_path / "edumon.toml"
    config.write_text(toml, encoding="utf-8")
    return config


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def problems(config: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(config)
    return str(info.value).splitlines()


def test_a_good_sheet_imports(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            GOOD
            + "S1,第一小学,一年级(2)班,127.0.0.2,Gi0/3,\n"  # the switch by its host
            + "S1,第一小学,图书室,,,S1-lib\n"  # no switch port: a terminal-only classroom
            + ",,,,,\n",  # a blank row Excel leaves behind
        )
    )
    rooms = config.schools["S1"].classrooms
    assert [(r.id, r.name, r.switch, r.port) for r in rooms] == [
        ("S1-900", "录播教室", "acc1", "Gi0/24"),
        ("S1-002", "一年级(1)班", "acc1", "Gi0/2"),
        ("S1-003", "一年级(2)班", "acc1", "Gi0/3"),
        ("S1-lib", "图书室", None, None),
    ]
    assert config.warnings == ()


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(
            GOOD + GOOD,
            "3: column classroom: duplicate row: classroom 一年级(1)班 of school S1 is already "
            "on row 2",
            id="duplicate-row",
        ),
        pytest.param(
            GOOD + "S1,第一小学,一年级(2)班,acc1,Gi0/2,\n",
            "3: column port: port Gi0/2 of switch acc1 is already the port of classroom S1-002 "
            "({csv} row 2); a port serves one classroom",
            id="two-classrooms-on-one-port",
        ),
        pytest.param(
            GOOD + "S1,第一小学,一年级(2)班,127.0.0.2,Gi0/2,\n",
            "3: column port: port Gi0/2 of switch acc1 is already the port of classroom S1-002",
            id="same-port-by-host",
        ),
        pytest.param(
            GOOD + "S1,第一小学,一年级(2)班,acc1,Gi0/24,\n",
            "3: column port: port Gi0/24 of switch acc1 is already the port of classroom S1-900 "
            "({toml} line {room_line})",
            id="port-of-a-toml-classroom",
        ),
        pytest.param(
            GOOD + "S1,第一小学,一年级(2)班,core,Gi0/1,\n",
            "3: column port: port Gi0/1 of switch core is already the uplink of school S1",
            id="classroom-on-the-uplink-port",
        ),
        pytest.param(
            GOOD + "S1,第一小学,一年级(2)班,acc1,,\n",
            "3: column port: port is empty: write the port on switch acc1",
            id="empty-port",
        ),
        pytest.param(
            GOOD + "S1,第一小学,一年级(2)班,,Gi0/3,\n",
            "3: column switch: switch is empty but port is Gi0/3",
            id="empty-switch-with-a-port",
        ),
        pytest.param(
            GOOD + "S1,第一小学,一年级(2)班,acc2,Gi0/3,\n",
            "3: column switch: acc2 is neither the id nor the host of a switch in the TOML "
            "file; did you mean acc1?",
            id="unknown-switch",
        ),
        pytest.param(
            GOOD + "S1,第一小学,一年级(2)班,10.99.0.1,Gi0/3,\n",
            "3: column switch: 10.99.0.1 is neither the id nor the host of a switch",
            id="unknown-switch-host",
        ),
        pytest.param(
            GOOD + "S1,第一小学,一年级(2)班,127.0.0.9,Gi0/3,\n",
            "3: column switch: 127.0.0.9 is the host of switches sim1, sim2; write the switch id",
            id="ambiguous-host",
        ),
        pytest.param(
            GOOD + "S9,第九小学,一年级(1)班,acc1,Gi0/3,\n",
            "3: column school_code: school S9 (第九小学) is not in the TOML file",
            id="unknown-school",
        ),
        pytest.param(
            GOOD + ",第一小学,一年级(2)班,acc1,Gi0/3,\n",
            "3: column school_code: school_code is empty",
            id="empty-school-code",
        ),
        pytest.param(
            GOOD + "S1,第一小学,,acc1,Gi0/3,\n",
            "3: column classroom: classroom (the classroom's name) is empty",
            id="empty-classroom",
        ),
        pytest.param(
            "S1,第一小学,一年级(1)班,acc1,Gi0/2,R1\nS1,第一小学,一年级(2)班,acc1,Gi0/3,R1\n",
            "3: column classroom_id: duplicate: classroom id R1 is already on row 2",
            id="duplicate-classroom-id",
        ),
        pytest.param(
            GOOD + "S1,第一小学,一年级(2)班,acc1,Gi0/3,S1-900\n",
            "3: column classroom_id: classroom S1-900 is defined twice "
            "(first at {toml} line {room_line})",
            id="classroom-id-of-a-toml-classroom",
        ),
        pytest.param(
            GOOD + "S1,第一小学,一年级(2)班,acc1,Gi0/3,一年级二班\n",
            "3: column classroom_id: must be an id",
            id="classroom-id-not-an-id",
        ),
    ],
)
def test_each_defect_names_sheet_row_and_column(tmp_path: Path, rows: str, expected: str) -> None:
    config = write(tmp_path, rows)
    csv, toml = tmp_path / "rooms.csv", tmp_path / "edumon.toml"
    (only,) = problems(config)
    room_line = line_of(TOML, "[[schools.classrooms]]")
    assert only.startswith(f"{csv}:" + expected.format(csv=csv, toml=toml, room_line=room_line))
    assert "s3cret-community" not in only


def test_every_bad_row_is_reported(tmp_path: Path) -> None:
    found = problems(
        write(
            tmp_path,
            GOOD
            + "S1,第一小学,一年级(2)班,acc9,Gi0/3,\n"
            + "S1,第一小学,一年级(3)班,acc1,,\n"
            + "S1,第一小学,一年级(4)班,acc1,Gi0/2,\n",
        )
    )
    csv = tmp_path / "rooms.csv"
    assert [line.split(": ")[0:2] for line in found] == [
        [f"{csv}:3", "column switch"],
        [f"{csv}:4", "column port"],
        [f"{csv}:5", "column port"],
    ]


def test_toml_and_sheet_problems_come_together(tmp_path: Path) -> None:
    toml = TOML.replace('kind = "primary"', 'kind = "primery"')
    found = problems(write(tmp_path, GOOD + "S1,第一小学,一年级(2)班,acc9,Gi0/3,\n", toml=toml))
    kind_line = line_of(TOML, "kind =")
    assert found[0].startswith(f"{tmp_path / 'edumon.toml'}:{kind_line}: schools[0].kind: ")
    assert found[1].startswith(f"{tmp_path / 'rooms.csv'}:3: column switch: ")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            "school_code,school_name,classroom,switch\nS1,第一小学,一班,acc1\n".encode(),
            "{csv}:1: the sheet lacks column(s) port",
            id="missing-column",
        ),
        pytest.param(
            (HEADER + "S1,第一小学,一年级(1)班,acc1,Gi0/2,\n").encode("gbk"),
            "{toml}:6: inventory.csv: {csv} is not UTF-8 (save the sheet as CSV UTF-8)",
            id="gbk",
        ),
        pytest.param(b"", "{csv}:1: the sheet lacks column(s) school_code", id="empty-file"),
    ],
)
def test_sheet_level_problems(tmp_path: Path, content: bytes, expected: str) -> None:
    config = write(tmp_path, "")
    (tmp_path / "rooms.csv").write_bytes(content)
    (only,) = problems(config)
    csv, toml = tmp_path / "rooms.csv", tmp_path / "edumon.toml"
    assert only.startswith(expected.format(csv=csv, toml=toml)), only


def test_a_missing_sheet_is_an_error_at_the_inventory_line(tmp_path: Path) -> None:
    config = write(tmp_path, "")
    (tmp_path / "rooms.csv").unlink()
    (only,) = problems(config)
    assert only.startswith(f"{config}:6: inventory.csv: cannot read {tmp_path / 'rooms.csv'}")


def test_excel_sheet_with_bom_and_crlf(tmp_path: Path) -> None:
    config = write(tmp_path, "")
    (tmp_path / "rooms.csv").write_bytes(
        ("\ufeff" + HEADER + GOOD).replace("\n", "\r\n").encode("utf-8")
    )
    assert [r.name for r in load_config(config).schools["S1"].classrooms][-1] == "一年级(1)班"


def test_a_differing_school_name_is_a_warning(tmp_path: Path) -> None:
    config_file = write(tmp_path, "S1,城关一小,一年级(1)班,acc1,Gi0/2,\n")
    config = load_config(config_file)
    assert [r.name for r in config.schools["S1"].classrooms][-1] == "一年级(1)班"
    (warning,) = config.warnings
    assert warning == (
        f'{tmp_path / "rooms.csv"}:2: column school_name: "城关一小" differs from the name of '
        'school S1 in the TOML file, "第一小学"; the TOML name is used'
    )
    result = CliRunner().invoke(main, ["check-config", str(config_file)])
    assert result.exit_code == 0, result.output
    assert f"warning: {warning}" in result.stderr
    assert "OK" in result.stdout
