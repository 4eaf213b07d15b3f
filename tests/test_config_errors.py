"""Configuration errors point at the right place: file, line, key path, and what is allowed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edumon.config import parse_config
from edumon.errors import ConfigError
from tests.agents.support import make_pki

HEADER = """\
[district]
code = "t"
name = "测试县"

[credentials.v2c]
version = "2c"
community = "s3cret-community"
"""

SCHOOLS = 25
BROKEN = 19  # the 20th [[schools]] entry


def school_block(k: int) -> str:
    return f"""
# 第{k}小学
[[switches]]
id = "S{k:02d}-core"
host = "10.0.{k}.1"
credentials = "v2c"

[[schools]]
code = "S{k:02d}"
name = "第{k}小学"
kind = "primary"
uplink = {{ switch = "S{k:02d}-core", port = "Gi0/1" }}
"""


def district(edit: Callable[[str], str] = lambda block: block, *, extra: str = "") -> str:
    """A county of 25 schools; ``edit`` rewrites the 20th school's block."""
    blocks = [school_block(k) for k in range(SCHOOLS)]
    blocks[BROKEN] = edit(blocks[BROKEN])
    return HEADER + "".join(blocks) + extra


def line_of(text: str, needle: str, *, after: str = f'code = "S{BROKEN:02d}"') -> int:
    """1-based line of the first ``needle`` at or after the line holding ``after``."""
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if after in line)
    # The block's [[schools]] header is just before its code.
    if needle == "[[schools]]":
        return next(n for n in range(start, -1, -1) if lines[n] == needle) + 1
    return next(n for n in range(start, len(lines)) if needle in lines[n]) + 1


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, where="edumon.toml")
    return str(info.value).splitlines()


def test_the_generated_district_is_valid() -> None:
    config = parse_config(district())
    assert len(config.schools) == SCHOOLS


@pytest.mark.parametrize(
    ("edit", "needle", "expected"),
    [
        pytest.param(
            lambda b: b.replace('kind = "primary"', 'kind = "primery"'),
            "kind =",
            'schools[19].kind: "primery" is not allowed; choose one of primary, middle, '
            "nine_year, high, vocational, kindergarten, other",
            id="literal",
        ),
        pytest.param(
            lambda b: b.replace('{ switch = "S19-core"', '{ switch = "S19-cor"'),
            "uplink =",
            "schools[19].uplink.switch: no switch with id S19-cor",
            id="cross-reference-in-inline-table",
        ),
        pytest.param(
            lambda b: b.replace(', port = "Gi0/1" }', " }"),
            "uplink =",
            "schools[19].uplink.port: required key is missing",
            id="missing-key-in-inline-table",
        ),
        pytest.param(
            lambda b: b.replace("kind =", "knid ="),
            "knid =",
            "schools[19].knid: unknown key; did you mean kind? "
            "(allowed here: code, name, kind, uplink, classrooms, switches)",
            id="misspelt-required-key",
        ),
        pytest.param(
            lambda b: b.replace("uplink = {", "uplnk = {"),
            "uplnk =",
            "schools[19].uplnk: unknown key; did you mean uplink?",
            id="misspelt-inline-table",
        ),
        pytest.param(
            lambda b: b.replace('kind = "primary"', 'kind = "primary"\ncolour = "red"'),
            "colour =",
            "schools[19].colour: unknown key "
            "(allowed here: code, name, kind, uplink, classrooms, switches)",
            id="unknown-key-without-suggestion",
        ),
        pytest.param(
            lambda b: b.replace('name = "第19小学"\n', ""),
            "[[schools]]",
            "schools[19].name: required key is missing",
            id="missing-key-at-its-table",
        ),
        pytest.param(
            lambda b: b.replace('code = "S19"', 'code = "S19 east"'),
            'code = "S19 east"',
            "schools[19].code: must be an id",
            id="id-pattern",
        ),
        pytest.param(
            lambda b: (
                b + '\n[[schools.classrooms]]\nid = "S19-1"\nname = "一班"\nswitch = "S19-core"\n'
            ),
            "[[schools.classrooms]]",
            "schools[19].classrooms[0].port: a classroom needs both switch and port, or neither",
            id="array-of-tables-in-array-of-tables",
        ),
        pytest.param(
            lambda b: (
                b + '\n[[schools.classrooms]]\nid = "S19-1"\nname = "一班"\n'
                'switch = "S19-core"\nport = "Gi0/1"\n'
            ),
            'port = "Gi0/1"',
            "schools[19].classrooms[0].port: port Gi0/1 of switch S19-core is already the "
            "uplink of school S19 (edumon.toml line ",
            id="classroom-on-the-uplink-port",
        ),
        pytest.param(
            lambda b: b.replace('credentials = "v2c"', 'credentials = "v2"'),
            'credentials = "v2"',
            "switches[19].credentials: no [credentials.v2] table; did you mean v2c?",
            id="unknown-credentials",
        ),
        pytest.param(
            lambda b: b.replace(
                'credentials = "v2c"', 'snmp = { version = "3", user = "u", auth_protocol = "MD4" }'
            ),
            "snmp =",
            'switches[19].snmp.auth_protocol: "MD4" is not allowed; choose one of MD5, SHA, '
            "SHA-224, SHA-256, SHA-384, SHA-512",
            id="literal-in-inline-table",
        ),
        pytest.param(
            lambda b: b.replace(
                'credentials = "v2c"',
                'snmp = { version = "3", user = "u", auth_protocol = "SHA", auth_password = "x" }',
            ),
            "snmp =",
            "switches[19].snmp.auth_password: auth_password must be at least 8 characters",
            id="model-rule-names-its-key",
        ),
    ],
)
def test_an_error_deep_in_a_long_file(
    edit: Callable[[str], str], needle: str, expected: str
) -> None:
    text = district(edit)
    after = 'code = "S19' if "switches[19]" not in expected else 'id = "S19-core"'
    if "classrooms[0]" in expected:
        after = "[[schools.classrooms]]"
    line = line_of(text, needle, after=after)
    (only,) = problems(text)  # exactly one error: no spurious "missing" for a misspelt key
    assert only.startswith(f"edumon.toml:{line}: {expected}"), only
    assert "s3cret-community" not in only


def test_every_problem_is_reported_in_file_order() -> None:
    text = district(
        lambda b: b.replace('kind = "primary"', 'kind = "college"').replace(
            'switch = "S19-core"', 'switch = "nowhere"'
        ),
        extra="\n[storage]\nretension_days = 7\n",
    )
    found = problems(text)
    assert [p.split(": ")[1] for p in found] == ["schools[19].kind", "storage.retension_days"]
    lines = [int(p.split(":")[1]) for p in found]
    assert lines == sorted(lines)


TOP = HEADER + school_block(0)


@pytest.mark.parametrize(
    ("extra", "needle", "expected"),
    [
        pytest.param(
            '[targts]\nprofile = "national-2021"\n',
            "[targts]",
            "targts: unknown key; did you mean targets?",
            id="misspelt-section",
        ),
        pytest.param(
            '[targets]\nprofile = "custom"\nuplink_mbps = 1000\n',
            "[targets]",
            'targets: profile = "custom" needs both uplink_mbps and classroom_mbps',
            id="custom-targets-incomplete",
        ),
        pytest.param(
            '[metrics]\ndetail = "minimal"\n',
            "detail =",
            'metrics.detail: "minimal" is not allowed; choose one of full, essential',
            id="metrics-detail",
        ),
        pytest.param(
            "[metrics]\nrefresh_seconds = -1\n",
            "refresh_seconds =",
            "metrics.refresh_seconds: ",
            id="metrics-refresh-negative",
        ),
        pytest.param(
            '[targets]\nprofile = "gigabit"\n',
            "profile =",
            'targets.profile: "gigabit" is not allowed; choose one of district-1000m, '
            "national-2021, legacy-2012, custom",
            id="unknown-profile",
        ),
        pytest.param(
            '[credentials]\nv3.version = "3"\nv3.user = "u"\nv3.auth_protocol = "SHA"\n',
            "v3.version",
            "credentials.v3.auth_password: auth_protocol and auth_password go together",
            id="dotted-keys",
        ),
        pytest.param(
            '[api]\nlisten = "9310"\n',
            "listen =",
            "api.listen: '9310' is not HOST:PORT; write e.g. 127.0.0.1:9310",
            id="api-listen-without-host",
        ),
        pytest.param(
            '[api]\nlisten = "127.0.0.1:http"\n',
            "listen =",
            "api.listen: '127.0.0.1:http' is not HOST:PORT",
            id="api-listen-port-name",
        ),
        pytest.param(
            '[mqtt]\nlisten = "localhost"\n',
            "listen =",
            "mqtt.listen: 'localhost' is not HOST:PORT; write e.g. 127.0.0.1:1884",
            id="mqtt-listen",
        ),
        pytest.param(
            '[mqtt]\nbroker = "external"\npassword = "mqtt-s3cret"\n',
            "password =",
            "mqtt.password: password needs username",
            id="mqtt-password-without-user",
        ),
        pytest.param(
            '[mqtt]\nusername = "u"\n',
            "username =",
            "mqtt.username: username 和 password 用于外部代理；内置代理的账号写在 "
            "[[mqtt.accounts]] / username and password are the collector's account on an "
            'external broker (broker = "external")',
            id="mqtt-user-for-embedded-broker",
        ),
        pytest.param(
            '[mqtt]\nbroker = "external"\nhost = ""\n',
            "host =",
            "mqtt.host: String should have at least 1 character",
            id="mqtt-empty-host",
        ),
        pytest.param(
            "[mqtt]\nheartbeat_timeout_intervals = 2\n",
            "heartbeat_timeout_intervals =",
            "mqtt.heartbeat_timeout_intervals: Input should be greater than 2",
            id="mqtt-timeout-flaps-on-one-lost-heartbeat",
        ),
        pytest.param(
            "[mqtt]\nheartbeat_timeout_intervals = 11\n",
            "heartbeat_timeout_intervals =",
            "mqtt.heartbeat_timeout_intervals: Input should be less than or equal to 10",
            id="mqtt-timeout-too-long",
        ),
        pytest.param(
            "[mqtt]\nheartbeat_timeout_seconds = 60\n",
            "heartbeat_timeout_seconds =",
            "mqtt.heartbeat_timeout_seconds:",
            id="mqtt-timeout-is-in-intervals",
        ),
        pytest.param(
            '[storage]\nurl = "mysql://edumon:db-s3cret@127.0.0.1/edumon"\n',
            "url =",
            "storage.url: 'mysql://edumon:***@127.0.0.1/edumon': the database must be sqlite or "
            "postgresql, not 'mysql'",
            id="storage-scheme",
        ),
        pytest.param(
            '[storage]\nurl = "edumon.db"\n',
            "url =",
            "storage.url: 'edumon.db' is not a database URL; use sqlite:///PATH",
            id="storage-not-a-url",
        ),
        pytest.param(
            '[storage]\nurl = "postgresql://edumon:db-s3cret@127.0.0.1:port/edumon"\n',
            "url =",
            "storage.url: 'postgresql://edumon:***@127.0.0.1:port/edumon' is not a database URL",
            id="storage-bad-port",
        ),
        pytest.param(
            '[[schedule.overrides]]\nschool = "S9"\ntimetable = "middle"\n',
            "school =",
            "schedule.overrides[0].school: no school with code S9",
            id="schedule-reference",
        ),
        pytest.param(
            '[schedule.defaults]\nhigh = "senior"\n',
            "high =",
            "schedule.defaults.high: no timetable 'senior' (defined: middle, none, primary)",
            id="rule-naming-its-key",
        ),
        pytest.param(
            "[schedule.timetables.senior]\nperiods = [\n"
            '  { start = "07:40", end = "08:25" },\n'
            '  { start = "09:40", end = "08:25" },\n]\n',
            '{ start = "09:40"',
            "schedule.timetables.senior.periods[1]: end 08:25 must be after start 09:40",
            id="inline-table-in-an-array",
        ),
    ],
)
def test_section_errors(extra: str, needle: str, expected: str) -> None:
    text = TOP + "\n" + extra
    line = line_of(text, needle, after=extra.splitlines()[0])
    (only,) = problems(text)
    assert only.startswith(f"edumon.toml:{line}: {expected}"), only
    for secret in ("s3cret-community", "db-s3cret", "mqtt-s3cret"):
        assert secret not in only


def test_a_top_level_key_that_is_missing_names_the_file() -> None:
    (only,) = problems(
        '[[schools]]\ncode = "S1"\nname = "x"\nkind = "primary"\n'
        'uplink = { switch = "core", port = "Gi0/1" }\n'
    )
    assert only == "edumon.toml: district: required key is missing"


def test_invalid_toml_names_its_line() -> None:
    (only,) = problems(TOP + "\n[api]\nlisten = 127.0.0.1:9310\n")
    assert only.startswith(f"edumon.toml:{len(TOP.splitlines()) + 3}: not valid TOML")


@pytest.mark.parametrize(
    ("tls", "key", "expected"),
    [
        ('ca_file = "{d}/missing.pem"', "ca_file", "cannot read {d}/missing.pem"),
        ('ca_file = "{d}/junk.pem"', "ca_file", "{d}/junk.pem holds no PEM certificate"),
        (
            'cert_file = "{d}/client.pem"',
            "key_file",
            "cert_file and key_file must be given together",
        ),
        (
            'cert_file = "{d}/client.pem"\nkey_file = "{d}/unreadable.pem"',
            "key_file",
            "cannot read {d}/unreadable.pem",
        ),
        (
            'cert_file = "{d}/client.pem"\nkey_file = "{d}/server.key"',
            "key_file",
            "are not a PEM certificate and its unencrypted private key",
        ),
    ],
)
def test_mqtt_tls_files_are_checked_before_anything_runs(
    tmp_path: Path, tls: str, key: str, expected: str
) -> None:
    make_pki(tmp_path)
    (tmp_path / "junk.pem").write_text("not a certificate\n", encoding="utf-8")
    (tmp_path / "unreadable.pem").mkdir()  # a directory: reading it fails even for root
    d = str(tmp_path)
    text = TOP + '\n[mqtt]\nbroker = "external"\nusername = "u"\n\n[mqtt.tls]\n' + tls.format(d=d)
    (only,) = problems(text)
    # The key's own line, or the [mqtt.tls] line when the key is missing.
    needle = f"{key} =" if f"{key} =" in text else "[mqtt.tls]"
    at = line_of(text, needle, after="[mqtt.tls]")
    assert only.startswith(f"edumon.toml:{at}: mqtt.tls.{key}: "), only
    assert expected.format(d=d) in only


def test_good_tls_files_pass(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    config = parse_config(
        TOP
        + '\n[mqtt]\nbroker = "external"\n\n[mqtt.tls]\n'
        + f'ca_file = "{pki.ca}"\ncert_file = "{pki.client_cert}"\nkey_file = "{pki.client_key}"\n'
    )
    assert config.mqtt.tls is not None
