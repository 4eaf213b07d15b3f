"""Secrets stay secret: the storage URL's password never reaches repr, logs or error messages."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from edumon.config import load_config, parse_config, redact_url, redacted
from edumon.errors import ConfigError, StoreError
from edumon.store.repository import open_store
from tests.fixtures.databases import PostgresServer

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Db-s3cret@pw"  # an "@" inside: redaction must hide all of it

BASE = """\
[district]
code = "t"
name = "测试县"

[api]
listen = "127.0.0.1:0"

[mqtt]
listen = "127.0.0.1:0"
"""


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"postgresql://edumon:{PASSWORD}@db.example:5432/edumon",
            "postgresql://edumon:***@db.example:5432/edumon",
        ),
        (
            f"postgresql+asyncpg://edumon:{PASSWORD}@10.0.0.5/edumon?sslmode=require",
            "postgresql+asyncpg://edumon:***@10.0.0.5/edumon?sslmode=require",
        ),
        (
            f"postgresql://edumon@db/edumon?password={PASSWORD}&sslmode=require",
            "postgresql://edumon@db/edumon?password=***&sslmode=require",
        ),
        ("postgresql://edumon@db:5432/edumon", "postgresql://edumon@db:5432/edumon"),
        ("sqlite:///var/lib/edumon/edumon.db", "sqlite:///var/lib/edumon/edumon.db"),
        (f"mysql://root:{PASSWORD}@db/x", "mysql://root:***@db/x"),
    ],
)
def test_redact_url_keeps_host_and_database(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def pg_config(url: str = f"postgresql://edumon:{PASSWORD}@127.0.0.1:5432/edumon") -> str:
    return BASE + f'\n[storage]\nurl = "{url}"\n'


def test_the_url_is_a_secret_in_repr_and_str() -> None:
    config = parse_config(pg_config())
    assert isinstance(config.storage.url, SecretStr)
    assert config.storage.url.get_secret_value().endswith("@127.0.0.1:5432/edumon")
    assert config.storage.display_url == "postgresql://edumon:***@127.0.0.1:5432/edumon"
    for text in (repr(config), str(config), repr(config.storage), str(config.storage)):
        assert PASSWORD not in text
    assert PASSWORD not in str(redacted({"storage": {"url": config.storage.display_url}}))
    assert PASSWORD not in str(
        redacted({"storage": {"url": config.storage.url.get_secret_value()}})
    )


def test_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_DB_URL", f"postgresql://edumon:{PASSWORD}@127.0.0.1/edumon")
    config = parse_config(BASE + '\n[storage]\nurl_env = "T_DB_URL"\n')
    assert config.storage.url.get_secret_value().startswith("postgresql://edumon:")
    assert PASSWORD not in repr(config)


@pytest.mark.parametrize(
    ("storage", "env", "expected"),
    [
        ('url_env = "T_DB_UNSET"', None, "url_env: environment variable T_DB_UNSET"),
        (
            'url = "sqlite:///x.db"\nurl_env = "T_DB_URL"',
            "sqlite:///y.db",
            "url_env: give either url or url_env, not both",
        ),
        (
            'url_env = "T_DB_URL"',
            f"mysql://edumon:{PASSWORD}@127.0.0.1/edumon",
            "url_env: 'mysql://edumon:***@127.0.0.1/edumon': the database must be sqlite or "
            "postgresql",
        ),
        (
            'url = "postgresql://edumon:Db-s3cret-pw@/edumon"',
            None,
            "url: 'postgresql://edumon:***@/edumon' names no host",
        ),
    ],
)
def test_storage_errors_hide_the_password(
    monkeypatch: pytest.MonkeyPatch, storage: str, env: str | None, expected: str
) -> None:
    monkeypatch.delenv("T_DB_UNSET", raising=False)
    if env is not None:
        monkeypatch.setenv("T_DB_URL", env)
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + "\n[storage]\n" + storage + "\n", where="edumon.toml")
    message = str(info.value)
    assert f": storage.{expected}" in message
    for secret in (PASSWORD, "Db-s3cret-pw"):
        assert secret not in message
        assert secret not in repr(info.value)


async def test_open_store_failure_hides_the_password(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    missing = f"edumon_missing_{uuid.uuid4().hex[:8]}"
    url = SecretStr(postgres_server.url(missing, password=PASSWORD))
    with pytest.raises(StoreError) as info:
        await open_store(url, timeout_seconds=5)
    message = str(info.value)
    assert missing in message  # host and database stay visible
    assert "127.0.0.1" in message
    assert ":***@" in message
    assert PASSWORD not in message
    assert PASSWORD not in caplog.text


def test_edumon_run_logs_never_show_the_password(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    missing = f"edumon_missing_{uuid.uuid4().hex[:8]}"
    config = tmp_path / "edumon.toml"
    config.write_text(pg_config(postgres_server.url(missing, password=PASSWORD)), "utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "edumon", "--log-level", "debug", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    output = result.stdout + result.stderr
    user = postgres_server.admin.username
    host, port = postgres_server.admin.host, postgres_server.admin.port
    assert f"storage: postgresql://{user}:***@{host}:{port}/{missing}" in output
    assert f'database "{missing}" does not exist' in output
    assert PASSWORD not in output


def test_check_config_shows_the_url_without_its_password(tmp_path: Path) -> None:
    config = tmp_path / "edumon.toml"
    config.write_text(pg_config(), "utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "edumon", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "storage postgresql://edumon:***@127.0.0.1:5432/edumon" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    assert load_config(config).storage.display_url.endswith("@127.0.0.1:5432/edumon")
