"""Tokens in the configuration ([[api.tokens]], [metrics]), `edumon token`, the loopback rule."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from edumon.app import check_exposure
from edumon.cli import main
from edumon.config import parse_config
from edumon.errors import ConfigError
from edumon.exporters.api.access import Access, Principal
from edumon.tokens import MIN_TOKEN_LENGTH, digest, hash_token, new_token, parse_hash
from tests.exporters.access_server import DISTRICT_TOKEN, SCHOOL_A_TOKEN, TOKENS_TOML
from tests.fixtures.ports import free_tcp_port
from tests.fixtures.runtime import DISTRICT_TOML

HASH = hash_token(DISTRICT_TOKEN)


def problems(extra: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(DISTRICT_TOML + extra, where="edumon.toml")
    return str(info.value).splitlines()


def line_of(text: str, needle: str) -> int:
    """The line of ``needle`` (``needle#2``: its second occurrence) in ``text``."""
    needle, _, nth = needle.partition("#")
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[int(nth or 1) - 1]


def test_tokens_load_with_their_roles(monkeypatch: pytest.MonkeyPatch) -> None:
    token = new_token()
    monkeypatch.setenv("EDUMON_TEST_TOKEN_TOWN", token)
    config = parse_config(
        DISTRICT_TOML
        + TOKENS_TOML
        + '\n[[api.tokens]]\nname = "town"\nrole = "school"\nschools = ["A", "C"]\n'
        'token_env = "EDUMON_TEST_TOKEN_TOWN"\n'
    )
    access = Access.from_config(config)
    assert access.principal_for(DISTRICT_TOKEN) == Principal("noc", "district", None)
    assert access.principal_for(SCHOOL_A_TOKEN) == Principal("school-a", "school", frozenset("A"))
    assert access.principal_for(token) == Principal("town", "school", frozenset({"A", "C"}))
    assert access.principal_for(token[:-1]) is None
    assert access.principal_for("") is None
    assert access.open_to_schools  # school tokens, and /metrics has none
    # The configuration never shows a token: the hash and the env token stay hidden.
    assert hash_token(DISTRICT_TOKEN)[7:] not in repr(config.api)
    assert token not in repr(config.api)


@pytest.mark.parametrize(
    ("extra", "needle", "expected"),
    [
        pytest.param(
            f'[[api.tokens]]\nname = "x"\nrole = "school"\nschool = "Q"\ntoken_hash = "{HASH}"\n',
            'school = "Q"',
            "api.tokens[0].school: 没有代码为 Q 的学校 / no school with code Q",
            id="unknown-school",
        ),
        pytest.param(
            f'[[api.tokens]]\nname = "x"\nrole = "school"\nschools = ["A", "b"]\n'
            f'token_hash = "{HASH}"\n',
            'schools = ["A", "b"]',
            "api.tokens[0].schools[1]: 没有代码为 b 的学校 / no school with code b; "
            "did you mean B?",
            id="unknown-school-in-list",
        ),
        pytest.param(
            f'[[api.tokens]]\nname = "x"\nrole = "school"\ntoken_hash = "{HASH}"\n',
            'role = "school"',
            'api.tokens[0].role: 学校角色需要 school = "代码"',
            id="school-role-without-school",
        ),
        pytest.param(
            f'[[api.tokens]]\nname = "x"\nrole = "district"\nschools = ["A"]\n'
            f'token_hash = "{HASH}"\n',
            'schools = ["A"]',
            "api.tokens[0].schools: 区县角色可见所有学校",
            id="district-role-with-school",
        ),
        pytest.param(
            '[[api.tokens]]\nname = "x"\nrole = "district"\ntoken_hash = "5e884898da28"\n',
            "token_hash =",
            "api.tokens[0].token_hash: token_hash 应为 sha256: 加 64 位十六进制数",
            id="not-a-hash",
        ),
        pytest.param(
            '[[api.tokens]]\nname = "x"\nrole = "district"\n',
            "[[api.tokens]]",
            "api.tokens[0].token_hash: 请给出 token_hash 或 token_env 之一",
            id="no-secret",
        ),
        pytest.param(
            '[[api.tokens]]\nname = "x"\nrole = "district"\ntoken_env = "EDUMON_TEST_UNSET"\n',
            "token_env =",
            "api.tokens[0].token_env: 环境变量 EDUMON_TEST_UNSET 未设置",
            id="unset-env",
        ),
        pytest.param(
            '[[api.tokens]]\nname = "x"\nrole = "district"\ntoken_env = "EDUMON_TEST_SHORT"\n',
            "token_env =",
            f"api.tokens[0].token_env: EDUMON_TEST_SHORT: 令牌太短，至少 {MIN_TOKEN_LENGTH} 个字符",
            id="short-env-token",
        ),
        pytest.param(
            f'[[api.tokens]]\nname = "x"\nrole = "admin"\ntoken_hash = "{HASH}"\n',
            'role = "admin"',
            'api.tokens[0].role: "admin" is not allowed; choose one of district, school',
            id="unknown-role",
        ),
        pytest.param(
            f'[[api.tokens]]\nname = "x"\nrole = "district"\ntoken_hash = "{HASH}"\n'
            f'[[api.tokens]]\nname = "x"\nrole = "school"\nschool = "A"\n'
            f'token_hash = "{hash_token(SCHOOL_A_TOKEN)}"\n',
            'name = "x"#2',
            "api.tokens[1].name: 令牌名 x 重复（api.tokens[0]）",
            id="duplicate-name",
        ),
        pytest.param(
            f'[metrics]\ntoken_hash = "{HASH}"\n'
            f'[[api.tokens]]\nname = "x"\nrole = "district"\ntoken_hash = "{HASH}"\n',
            "token_hash#2",
            "api.tokens[0].token_hash: 与 metrics.token 是同一个令牌",
            id="token-shared-with-metrics",
        ),
        pytest.param(
            '[metrics]\ntoken_hash = "sha256:xyz"\n',
            'token_hash = "sha256:xyz"',
            "metrics.token_hash: token_hash 应为 sha256:",
            id="metrics-not-a-hash",
        ),
    ],
)
def test_token_errors_name_the_key_and_line(
    monkeypatch: pytest.MonkeyPatch, extra: str, needle: str, expected: str
) -> None:
    monkeypatch.delenv("EDUMON_TEST_UNSET", raising=False)
    monkeypatch.setenv("EDUMON_TEST_SHORT", "short-token")
    (only,) = problems(extra)
    line = line_of(DISTRICT_TOML + extra, needle)
    assert only.startswith(f"edumon.toml:{line}: {expected}"), only
    assert "short-token" not in only


def test_token_new_prints_a_token_and_its_hash() -> None:
    result = CliRunner().invoke(main, ["token", "new"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(" = ", 1) for line in result.stdout.splitlines())
    token, hashed = lines["token     "], lines["token_hash"].strip('"')
    assert len(token) >= MIN_TOKEN_LENGTH
    assert parse_hash(hashed) == digest(token)
    again = CliRunner().invoke(main, ["token", "new"])
    assert token not in again.stdout  # a new one each time


def test_token_hash_reads_the_token_from_stdin() -> None:
    result = CliRunner().invoke(main, ["token", "hash"], input=DISTRICT_TOKEN + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f'token_hash = "{HASH}"'
    assert DISTRICT_TOKEN not in result.output
    short = CliRunner().invoke(main, ["token", "hash"], input="guessable\n")
    assert short.exit_code == 2
    assert "令牌太短" in short.stderr
    assert "guessable" not in short.output


def test_sessions_end_after_their_idle_time() -> None:
    now = [1000.0]
    access = Access(
        {digest(DISTRICT_TOKEN): Principal("noc", "district", None)},
        session_seconds=60,
        clock=lambda: now[0],
    )
    session = access.login(Principal("noc", "district", None))
    now[0] += 59
    assert access.session(session) is not None  # and it lasts on from now
    now[0] += 59
    assert access.session(session) is not None
    now[0] += 61
    assert access.session(session) is None
    other = access.login(Principal("noc", "district", None))
    access.logout(other)
    assert access.session(other) is None
    assert access.session("made-up") is None


@pytest.fixture
def bound() -> Iterator[Callable[[str], socket.socket]]:
    socks: list[socket.socket] = []

    def bind(host: str) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        socks.append(sock)
        sock.bind((host, 0))  # bound, never listening: nothing is served
        return sock

    yield bind
    for sock in socks:
        sock.close()


@pytest.mark.parametrize(
    ("host", "tokens", "allowed"),
    [
        ("127.0.0.1", False, True),
        ("127.0.0.2", False, True),
        ("::1", False, True),
        ("0.0.0.0", False, False),
        ("::", False, False),
        ("0.0.0.0", True, True),
    ],
)
def test_only_loopback_without_tokens(
    bound: Callable[[str], socket.socket], host: str, tokens: bool, allowed: bool
) -> None:
    config = parse_config(DISTRICT_TOML + (TOKENS_TOML if tokens else ""))
    try:
        sock = bound(host)
    except OSError as exc:  # no IPv6 on this host
        pytest.fail(f"cannot bind {host}: {exc}")
    if allowed:
        check_exposure(config, sock)
        return
    with pytest.raises(ConfigError) as info:
        check_exposure(config, sock)
    message = str(info.value)
    assert message.startswith("api.listen: 未配置访问令牌时只能监听本机回环地址")
    assert "configure tokens (docs/access.md) or listen on 127.0.0.1" in message


def test_run_refuses_to_serve_the_network_without_tokens(tmp_path: Path) -> None:
    config = tmp_path / "edumon.toml"
    config.write_text(
        f'[district]\ncode = "t"\nname = "测试县"\n'
        f'[storage]\nurl = "sqlite:///{tmp_path / "data" / "edumon.db"}"\n'
        f'[api]\nlisten = "0.0.0.0:{free_tcp_port()}"\n'
        f'[mqtt]\nlisten = "127.0.0.1:0"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["run", "-c", str(config)])
    assert result.exit_code != 0
    assert "未配置访问令牌时只能监听本机回环地址" in result.output
    assert "without [[api.tokens]] edumon serves its API on loopback only" in result.output
    assert not (tmp_path / "data").exists()  # refused before the database was opened
