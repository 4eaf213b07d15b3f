"""[mqtt] accounts and TLS of the embedded broker: what loads, what is refused and why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from edumon.cli import main
from edumon.config import parse_config
from edumon.errors import ConfigError
from edumon.tokens import digest, hash_token, new_token
from tests.agents.support import make_pki

BASE = """\
[district]
code = "d1"
name = "测试县"

[[switches]]
id = "core"
host = "127.0.0.1"
snmp = { version = "2c", community = "unused" }

[[schools]]
code = "CG01"
name = "城关小学"
kind = "primary"
uplink = { switch = "core", port = "Gi0/1" }

[[schools]]
code = "CG02"
name = "城关中学"
kind = "primary"
uplink = { switch = "core", port = "Gi0/2" }
"""


def account(name: str, extra: str = "", password: str | None = None) -> str:
    secret = hash_token(password or new_token())
    return f'\n[[mqtt.accounts]]\nname = "{name}"\npassword_hash = "{secret}"\n{extra}'


def load(mqtt: str) -> object:
    return parse_config(BASE + "\n[mqtt]\n" + mqtt, where="edumon.toml")


def test_accounts_load_into_a_policy() -> None:
    password = new_token()
    config = parse_config(
        BASE
        + '\n[mqtt]\nlisten = "0.0.0.0:1884"\n'
        + account("CG01", password=password)
        + account("noc", 'role = "collector"\n')
        + account("cg02-agents", 'school = "CG02"\n'),
    )
    policy = config.mqtt.policy(config.district.code)
    assert policy is not None
    cg01 = policy.authenticate("CG01", password.encode())
    assert cg01 is not None
    assert (cg01.role, cg01.school) == ("school", "CG01")
    noc = policy.account("noc")
    assert noc is not None
    assert (noc.role, noc.school) == ("collector", None)
    agents = policy.account("cg02-agents")
    assert agents is not None
    assert agents.school == "CG02"
    assert password not in repr(config.mqtt)
    assert parse_config(BASE).mqtt.policy("d1") is None  # no accounts: anonymous, loopback


def test_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    password = new_token()
    monkeypatch.setenv("T_MQTT_CG01", password)
    config = parse_config(
        BASE + '\n[mqtt]\n[[mqtt.accounts]]\nname = "CG01"\npassword_env = "T_MQTT_CG01"\n'
    )
    policy = config.mqtt.policy("d1")
    assert policy is not None
    assert policy.authenticate("CG01", password.encode()) is not None
    monkeypatch.setenv("T_MQTT_CG01", "short")
    with pytest.raises(ConfigError, match="at least 32"):
        parse_config(
            BASE + '\n[mqtt]\n[[mqtt.accounts]]\nname = "CG01"\npassword_env = "T_MQTT_CG01"\n'
        )


@pytest.mark.parametrize(
    ("mqtt", "expected"),
    [
        pytest.param(
            'listen = "0.0.0.0:1884"\n',
            r"mqtt\.listen: 未配置 MQTT 账号时内置 MQTT 代理只能监听本机回环地址.*"
            r"without \[\[mqtt\.accounts\]\] the embedded MQTT broker listens on loopback only",
            id="exposed-without-accounts",
        ),
        pytest.param(
            'listen = "[::]:1884"\n',
            r"mqtt\.listen: 未配置 MQTT 账号",
            id="exposed-v6-without-accounts",
        ),
        pytest.param(
            account("CG09"),
            r"mqtt\.accounts\[0\]\.name: 没有代码为 CG09 的学校 / no school with code CG09",
            id="unknown-school",
        ),
        pytest.param(
            account("cg01"),
            r"no school with code cg01; did you mean CG01\?",
            id="school-code-case",
        ),
        pytest.param(
            account("CG01") + account("CG01"),
            r"mqtt\.accounts\[1\]\.name: .*already mqtt\.accounts\[0\]",
            id="duplicate-name",
        ),
        pytest.param(
            account("CG01", password="p" * 43) + account("CG02", password="p" * 43),
            r"mqtt\.accounts\[1\]\.password_hash: .*the same password as mqtt\.accounts\[0\]",
            id="shared-password",
        ),
        pytest.param(
            account("noc", 'role = "collector"\nschool = "CG01"\n'),
            r"a collector account reads the whole district",
            id="collector-with-school",
        ),
        pytest.param(
            account("edumon-internal", 'role = "collector"\n'),
            r"edumon-internal is reserved",
            id="internal-name",
        ),
        pytest.param(
            '[[mqtt.accounts]]\nname = "CG01"\npassword_hash = "hunter2"\n',
            r"password_hash must be sha256: and 64 hex digits",
            id="bad-hash",
        ),
        pytest.param(
            '[[mqtt.accounts]]\nname = "CG01"\n',
            r"give either password_hash or password_env",
            id="no-password",
        ),
        pytest.param(
            'broker = "external"\n' + account("CG01"),
            r"mqtt\.accounts: .*are the embedded broker's",
            id="accounts-with-external-broker",
        ),
    ],
)
def test_refused(mqtt: str, expected: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load(mqtt)
    assert re.search(expected, str(refused.value), re.DOTALL), str(refused.value)


def test_tls_of_the_embedded_broker(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    files = f'cert_file = "{pki.server_cert}", key_file = "{pki.server_key}"'
    config = load(f"tls = {{ {files} }}\n")
    assert config.mqtt.tls is not None  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="TLS of the embedded broker takes its certificate"):
        load(f'tls = {{ {files}, ca_file = "{pki.ca}" }}\n')
    with pytest.raises(ConfigError, match="TLS of the embedded broker takes its certificate"):
        load(f'tls = {{ ca_file = "{pki.ca}" }}\n')


def run_edumon(*args: str, stdin: str = "") -> Result:
    return CliRunner().invoke(main, list(args), input=stdin)


def test_mqtt_account_new_prints_a_loadable_entry_and_the_password_once() -> None:
    new = run_edumon("mqtt-account", "new", "CG01")
    assert new.exit_code == 0, new.output
    (password,) = re.findall(r"^password = (\S+)$", new.output, re.MULTILINE)
    assert new.output.count(password) == 1
    entry = new.output[new.output.index("[[mqtt.accounts]]") : new.output.index("\n\n")]
    config = parse_config(BASE + "\n[mqtt]\n" + entry + "\n")
    policy = config.mqtt.policy("d1")
    assert policy is not None
    assert policy.authenticate("CG01", password.encode()) is not None
    collector = run_edumon("mqtt-account", "new", "--collector", "noc")
    assert 'role = "collector"' in collector.output
    hashed = run_edumon("mqtt-account", "hash", stdin=password + "\n")
    assert hashed.output.strip() == f'password_hash = "sha256:{digest(password).hex()}"'
    assert run_edumon("mqtt-account", "hash", stdin="short\n").exit_code == 2
    assert run_edumon("mqtt-account", "new", "../etc").exit_code == 2
