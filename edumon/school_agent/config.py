"""The school agent's configuration file (``edumon agent-config`` writes one from the district's).

Switches and credentials take the district configuration's own tables (``[[switches]]``,
``[credentials.NAME]``), so the agent resolves them with the same code; secrets are named by
environment variable (``community_env``, ``auth_password_env``, ``password_env``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from edumon.config import (
    DEFAULT_MAX_WALK_REQUESTS,
    DEFAULT_MAX_WALK_ROWS,
    Id,
    MqttTlsConfig,
    SnmpCredentials,
    Switch,
    SwitchConfig,
    _secret_from,
)
from edumon.errors import ConfigError

DEFAULT_SPOOL_MAX_BYTES = 64 * 1024 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentSection(_Strict):
    """Who the agent is and how it polls and spools."""

    id: Id
    district: Id
    school: Id
    interval_seconds: float = Field(60, ge=1, le=3600)
    max_in_flight: int = Field(8, ge=1, le=256)
    spool_path: Path = Path("/var/lib/edumon-school-agent/spool.db")
    spool_max_bytes: int = Field(DEFAULT_SPOOL_MAX_BYTES, ge=65536)
    """The spool's bound; when full the oldest polls are dropped (and counted)."""
    drain_per_second: float = Field(20, gt=0, le=10000)
    """Spooled polls sent per second after an outage (the live ones are not held back)."""
    max_inflight_messages: int = Field(20, ge=1, le=1000)
    """Messages sent and not yet acknowledged by the broker."""


class AgentMqtt(_Strict):
    """The district's broker, as this school's account."""

    host: str = Field(min_length=1)
    port: int | None = Field(None, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    tls: MqttTlsConfig | None = None
    keepalive: int = Field(30, ge=5, le=3600)
    reconnect_max_seconds: float = Field(5, gt=0, le=300)

    @model_validator(mode="after")
    def _password(self) -> AgentMqtt:
        object.__setattr__(
            self, "password", _secret_from(self.password, self.password_env, "password")
        )
        return self


class ProbeConfig(_Strict):
    """A terminal without an agent, probed for reachability (ICMP where allowed, else TCP)."""

    terminal: Id
    host: str = Field(min_length=1)
    method: Literal["auto", "icmp", "tcp"] = "auto"
    tcp_port: int = Field(445, ge=1, le=65535)
    """Windows OPS modules listen on 445 (SMB) or 3389 (RDP); Android panels rarely on any."""


class AgentFile(_Strict):
    """The TOML file's top level."""

    agent: AgentSection
    mqtt: AgentMqtt
    credentials: dict[str, SnmpCredentials] = Field(default_factory=dict)
    switches: list[SwitchConfig] = Field(default_factory=list)
    probes: list[ProbeConfig] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The validated agent configuration."""

    agent: AgentSection
    mqtt: AgentMqtt
    switches: tuple[Switch, ...]
    probes: tuple[ProbeConfig, ...]


def parse_agent_config(text: str, where: str = "<agent config>") -> AgentConfig:
    """Validate an agent configuration.

    Raises:
        ConfigError: naming the key that is wrong (never a secret's value).
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc
    try:
        parsed = AgentFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from None
    switches: list[Switch] = []
    for i, sw in enumerate(parsed.switches):
        creds = sw.snmp
        if sw.credentials is not None:
            creds = parsed.credentials.get(sw.credentials)
            if creds is None:
                raise ConfigError(
                    f"{where}: switches.{i}.credentials: no [credentials.{sw.credentials}]"
                )
        if creds is None:
            raise ConfigError(f'{where}: switches.{i}: give snmp = {{...}} or credentials = "NAME"')
        switches.append(
            Switch(
                sw.id,
                parsed.agent.school,
                sw.host,
                sw.port,
                creds,
                sw.timeout_seconds,
                sw.retries,
                sw.max_repetitions,
                sw.max_in_flight,
                max_walk_rows=sw.max_walk_rows or DEFAULT_MAX_WALK_ROWS,
                max_walk_requests=sw.max_walk_requests or DEFAULT_MAX_WALK_REQUESTS,
                name=sw.name,
            )
        )
    return AgentConfig(parsed.agent, parsed.mqtt, tuple(switches), tuple(parsed.probes))


def load_agent_config(path: Path | str) -> AgentConfig:
    """Read and validate an agent configuration file.

    Raises:
        ConfigError: the file cannot be read or is invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the agent configuration: {exc.strerror}") from exc
    return parse_agent_config(text, str(path))
