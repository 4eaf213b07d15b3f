"""Configuration: one TOML file, validated strictly; inventory may also come from a CSV file."""

from __future__ import annotations

import csv
import difflib
import ipaddress
import os
import re
import ssl
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from edumon.cluster.settings import ClusterConfig
from edumon.domain.inventory import ClassroomRef, Inventory, SchoolRef, SwitchLink
from edumon.domain.targets import Targets, resolve_targets
from edumon.domain.terminals import TerminalInventory, heartbeat_timeout
from edumon.errors import ConfigError
from edumon.notify_config import NotifyConfig
from edumon.schedule_config import ScheduleConfig, SchoolKind
from edumon.sources.mqtt.accounts import (
    INTERNAL_ACCOUNT,
    AccessPolicy,
    Account,
    exposure_problem,
)
from edumon.tokens import digest as token_digest
from edumon.tokens import parse_hash, token_problem
from edumon.toml_positions import Loc, TomlPositions

DEFAULT_LISTEN = "127.0.0.1:9310"
DEFAULT_STORAGE_URL = "sqlite:///edumon.db"

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=_ID_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyProblem(ValueError):
    """A model validator's complaint about one key of its table.

    Raised inside a validator, pydantic reports it at the table; the error report moves it to
    ``key`` so that the message names (and points at the line of) the key itself.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _secret_from(value: SecretStr | None, env: str | None, what: str) -> SecretStr | None:
    """Resolve a secret given inline or by environment variable name (never echoing the value)."""
    if env is None:
        return value
    if value is not None:
        raise KeyProblem(f"{what}_env", f"give either {what} or {what}_env, not both")
    if env not in os.environ:
        raise KeyProblem(
            f"{what}_env", f"environment variable {env} (named by {what}_env) is not set"
        )
    return SecretStr(os.environ[env])


class SnmpCredentials(_Strict):
    """How to authenticate to a switch: v2c community or v3 USM user."""

    version: Literal["2c", "3"]
    community: SecretStr | None = None
    community_env: str | None = None
    user: str | None = None
    auth_protocol: Literal["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"] | None = None
    auth_password: SecretStr | None = None
    auth_password_env: str | None = None
    priv_protocol: (
        Literal["DES", "3DES", "AES-128", "AES-192", "AES-256", "AES-192-C", "AES-256-C"] | None
    ) = None
    priv_password: SecretStr | None = None
    priv_password_env: str | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v: object) -> object:
        # "version = 3" and "version = '3'" are both natural to write.
        return str(v) if isinstance(v, int) else v

    @model_validator(mode="after")
    def _complete(self) -> SnmpCredentials:
        community = _secret_from(self.community, self.community_env, "community")
        auth = _secret_from(self.auth_password, self.auth_password_env, "auth_password")
        priv = _secret_from(self.priv_password, self.priv_password_env, "priv_password")
        if self.version == "2c":
            if community is None:
                raise KeyProblem("community", "SNMP v2c needs community (or community_env)")
            if self.user is not None:
                raise KeyProblem("user", 'user is for SNMP v3; this entry says version = "2c"')
        else:
            if not self.user:
                raise KeyProblem("user", "SNMP v3 needs user")
            if community is not None:
                raise KeyProblem(
                    "community", 'community is for SNMP v2c; this entry says version = "3"'
                )
            if (self.auth_protocol is None) != (auth is None):
                missing = "auth_password" if auth is None else "auth_protocol"
                raise KeyProblem(missing, "auth_protocol and auth_password go together")
            if (self.priv_protocol is None) != (priv is None):
                missing = "priv_password" if priv is None else "priv_protocol"
                raise KeyProblem(missing, "priv_protocol and priv_password go together")
            if priv is not None and auth is None:
                raise KeyProblem(
                    "priv_protocol", "privacy (priv_protocol) needs authentication (auth_protocol)"
                )
            for secret, name in ((auth, "auth_password"), (priv, "priv_password")):
                if secret is not None and len(secret.get_secret_value()) < 8:
                    raise KeyProblem(name, f"{name} must be at least 8 characters (RFC 3414)")
        object.__setattr__(self, "community", community)
        object.__setattr__(self, "auth_password", auth)
        object.__setattr__(self, "priv_password", priv)
        return self


class PortRef(_Strict):
    """A switch port, named by ifName (ifDescr where the switch has no ifName)."""

    switch: Id
    port: str = Field(min_length=1)


class SwitchConfig(_Strict):
    """A switch polled over SNMP."""

    id: Id
    school: Id | None = None
    host: str
    port: int = Field(161, ge=1, le=65535)
    credentials: str | None = None
    snmp: SnmpCredentials | None = None
    timeout_seconds: float = Field(2.0, gt=0, le=60)
    retries: int = Field(2, ge=0, le=10)
    max_repetitions: int = Field(10, ge=1, le=200)
    max_in_flight: int = Field(1, ge=1, le=8)
    max_walk_rows: int | None = Field(None, ge=1, le=1_000_000)
    """Rows one table walk may return before the agent is taken as broken; [polling]'s if unset."""
    max_walk_requests: int | None = Field(None, ge=1, le=100_000)
    """GETBULK requests one table walk may take; [polling]'s if unset."""
    export_all_ports: bool | None = None
    """Export every port of this switch on /metrics, not only the inventory's ([polling]'s)."""
    upstream: PortRef | None = None
    """The port of another switch this switch hangs off (docs/topology.md)."""
    name: str | None = Field(None, min_length=1, max_length=100)
    """A name people know the switch by (e.g. 教学楼三层); the API shows it beside the id."""


SwitchConfig.model_rebuild()


class ClassroomConfig(_Strict):
    """A classroom, the access switch port its 班班通 terminal hangs off, and the terminal's id."""

    id: Id
    name: str
    switch: Id | None = None
    port: str | None = None
    terminal: Id | None = None
    """The id the classroom's terminal agent reports; the classroom id when not given."""

    @property
    def terminal_id(self) -> str:
        return self.terminal or self.id

    @model_validator(mode="after")
    def _both_or_neither(self) -> ClassroomConfig:
        if (self.switch is None) != (self.port is None):
            raise KeyProblem(
                "port" if self.port is None else "switch",
                "a classroom needs both switch and port, or neither",
            )
        return self


class SchoolConfig(_Strict):
    """A school: its uplink to the district and its classrooms."""

    code: Id
    name: str
    kind: SchoolKind
    uplink: PortRef
    classrooms: list[ClassroomConfig] = Field(default_factory=list)
    switches: Literal["central", "agent"] = "central"
    """Who polls the school's switches: the district's collector (``central``) or the school's
    own agent (``agent``: it reports them over MQTT, agents/school/README.md)."""


class DistrictConfig(_Strict):
    code: Id
    name: str


class TargetsConfig(_Strict):
    profile: Literal["district-1000m", "national-2021", "legacy-2012", "custom"] = "district-1000m"
    uplink_mbps: float | None = Field(None, gt=0)
    classroom_mbps: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _custom_is_complete(self) -> TargetsConfig:
        if self.profile == "custom" and (self.uplink_mbps is None or self.classroom_mbps is None):
            raise ValueError('profile = "custom" needs both uplink_mbps and classroom_mbps')
        return self


# What open_store can open: backend -> the driver suffixes it accepts ("postgresql+asyncpg").
_STORAGE_BACKENDS: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {
        "sqlite": ("", "aiosqlite", "pysqlite"),
        "postgresql": ("", "asyncpg", "psycopg", "psycopg2"),
        "postgres": ("", "asyncpg", "psycopg", "psycopg2"),
    }
)
_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*:)(.*)@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """A database URL with its password hidden, host and database kept.

    ``postgresql://edumon:s3cret@db:5432/edumon`` becomes ``postgresql://edumon:***@db:5432/edumon``;
    a ``password=`` query parameter is hidden too. Works on URLs that do not parse.
    """
    # Greedy up to the last "@": a password may contain an unescaped "@".
    url = _URL_PASSWORD.sub(r"\1***@", url.strip(), count=1)
    return _QUERY_PASSWORD.sub(r"\1***", url)


def check_storage_url(url: str) -> None:
    """Check that ``url`` names a database edumon can open, without opening it.

    Raises:
        ValueError: naming the URL with its password hidden.
    """
    # Imported here: the rest of the configuration does not need SQLAlchemy loaded.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = redact_url(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError(
            f"{shown!r} is not a database URL; use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if driver not in _STORAGE_BACKENDS.get(backend, ()):
        raise ValueError(
            f"{shown!r}: the database must be sqlite or postgresql, not {parsed.drivername!r}; "
            "use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        )
    if backend != "sqlite" and not parsed.host:
        raise ValueError(f"{shown!r} names no host; use postgresql://USER@HOST:PORT/DB")


class StorageConfig(_Strict):
    url: SecretStr = SecretStr(DEFAULT_STORAGE_URL)
    """sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST:PORT/DB; secret for its password."""
    url_env: str | None = None
    """The environment variable holding the URL (keeps a PostgreSQL password out of the file)."""
    retention_days: float = Field(30, gt=0)
    batch_size: int = Field(500, ge=1, le=100_000)
    flush_seconds: float = Field(2.0, gt=0, le=300)

    @model_validator(mode="after")
    def _resolve_url(self) -> StorageConfig:
        if self.url_env is not None:
            url = _secret_from(
                self.url if "url" in self.model_fields_set else None, self.url_env, "url"
            )
            assert url is not None
            object.__setattr__(self, "url", url)
        try:
            check_storage_url(self.url.get_secret_value())
        except ValueError as exc:
            raise KeyProblem("url_env" if self.url_env else "url", str(exc)) from None
        return self

    @property
    def display_url(self) -> str:
        """The URL for logs and messages: its password hidden."""
        return redact_url(self.url.get_secret_value())


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\.?$")


def _check_listen(v: str, example: str = DEFAULT_LISTEN) -> str:
    host, sep, port = v.rpartition(":")
    ok = bool(sep and host and port.isdigit() and int(port) <= 65535)
    if ok and host.startswith("["):
        ok = host.endswith("]") and _is_ip(host[1:-1], version=6)
    elif ok and ":" in host:  # an IPv6 address without brackets: "::1:9310" still binds
        ok = _is_ip(host, version=6)
    elif ok:
        ok = _is_ip(host, version=4) or _HOSTNAME.match(host) is not None
    if not ok:
        raise ValueError(f"{v!r} is not HOST:PORT; write e.g. {example}")
    return v


def _is_ip(text: str, *, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _token_digest(token_hash: SecretStr | None, token_env: str | None) -> bytes:
    """The SHA-256 digest of a token given hashed or by environment variable (docs/access.md)."""
    if (token_hash is None) == (token_env is None):
        raise KeyProblem(
            "token_hash",
            "请给出 token_hash 或 token_env 之一 / give either token_hash or token_env",
        )
    if token_hash is not None:
        try:
            return parse_hash(token_hash.get_secret_value())
        except ValueError as exc:
            raise KeyProblem("token_hash", str(exc)) from None
    assert token_env is not None
    if token_env not in os.environ:
        raise KeyProblem(
            "token_env",
            f"环境变量 {token_env} 未设置 / environment variable {token_env} "
            "(named by token_env) is not set",
        )
    token = os.environ[token_env].strip()
    problem = token_problem(token)
    if problem is not None:
        raise KeyProblem("token_env", f"{token_env}: {problem}")
    return token_digest(token)


class ApiToken(_Strict):
    """One API token (``[[api.tokens]]``): who it is, what it may see, and its secret."""

    name: Id
    """Shown in logs and the page's header, never the token itself."""
    role: Literal["district", "school"]
    """district: every school; school: only ``school`` (or ``schools``)."""
    school: Id | None = None
    schools: list[Id] = Field(default_factory=list)
    """For one person in charge of several schools (a 中心校 and its 村小); or ``school``."""
    token_hash: SecretStr | None = None
    """``sha256:`` and 64 hex digits, from ``edumon token hash`` or ``edumon token new``."""
    token_env: str | None = None
    """An environment variable holding the token itself (hashed in memory at start)."""

    @model_validator(mode="after")
    def _complete(self) -> ApiToken:
        if self.role == "district" and (self.school is not None or self.schools):
            key = "school" if self.school is not None else "schools"
            raise KeyProblem(
                key,
                "区县角色可见所有学校，不能指定学校 / a district role sees every school; "
                'remove it, or use role = "school"',
            )
        if self.role == "school" and (self.school is None) == (not self.schools):
            raise KeyProblem(
                "school" if self.school is not None else "role",
                '学校角色需要 school = "代码"（或 schools = [...]）之一 / a school role needs '
                'school = "CODE" (or schools = [...]), one of them',
            )
        _token_digest(self.token_hash, self.token_env)  # refuses a bad one at load time
        return self

    @property
    def school_codes(self) -> frozenset[str] | None:
        """The schools this token sees; None for all (the district role)."""
        if self.role == "district":
            return None
        return frozenset(self.schools or ([self.school] if self.school else []))

    def digest(self) -> bytes:
        """The SHA-256 digest requests are checked against (read from the environment anew)."""
        return _token_digest(self.token_hash, self.token_env)


class ApiConfig(_Strict):
    listen: str = DEFAULT_LISTEN
    tokens: list[ApiToken] = Field(default_factory=list)
    """Without tokens the API answers anyone, so ``listen`` must then be a loopback address."""
    session_hours: float = Field(12.0, gt=0, le=24 * 90)
    """A status-page login lasts this long after its last request (an open page that refreshes
    itself stays logged in); a restart of edumon ends every login."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        return _check_listen(v)


DEFAULT_MAX_WALK_ROWS = 4096
"""Rows of one table (interfaces) a walk accepts: more than the largest chassis has."""
DEFAULT_MAX_WALK_REQUESTS = 512
"""GETBULK requests a walk may take: 4096 rows at max-repetitions 8, with room for back-offs."""


class PollingConfig(_Strict):
    interval_seconds: float = Field(60, ge=1, le=3600)
    max_in_flight: int = Field(64, ge=1, le=4096)
    """Global limit on switches polled at once."""
    max_walk_rows: int = Field(DEFAULT_MAX_WALK_ROWS, ge=1, le=1_000_000)
    max_walk_requests: int = Field(DEFAULT_MAX_WALK_REQUESTS, ge=1, le=100_000)
    export_all_ports: bool = False
    """Export every port on /metrics; by default only the inventory's (uplinks, classrooms,
    inter-switch links)."""


def _readable(path: Path, key: str) -> None:
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise KeyProblem(key, f"cannot read {path}: {exc.strerror or exc}") from None


class MqttTlsConfig(_Strict):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _files_load(self) -> MqttTlsConfig:
        # The ingest loads these when it first connects; a typo must not wait until then.
        if (self.cert_file is None) != (self.key_file is None):
            raise KeyProblem(
                "key_file" if self.key_file is None else "cert_file",
                "cert_file and key_file must be given together",
            )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.ca_file is not None:
            _readable(self.ca_file, "ca_file")
            try:
                context.load_verify_locations(cafile=self.ca_file)
            except ssl.SSLError as exc:
                raise KeyProblem(
                    "ca_file", f"{self.ca_file} holds no PEM certificate ({exc.reason})"
                ) from None
        if self.cert_file is not None and self.key_file is not None:
            _readable(self.cert_file, "cert_file")
            _readable(self.key_file, "key_file")
            try:
                # An empty password: an encrypted key fails here instead of prompting.
                context.load_cert_chain(self.cert_file, self.key_file, password="")
            except ssl.SSLError as exc:
                raise KeyProblem(
                    "key_file",
                    f"{self.cert_file} and {self.key_file} are not a PEM certificate and its "
                    f"unencrypted private key ({exc.reason})",
                ) from None
        return self


class MqttAccount(_Strict):
    """One account on the embedded broker (``[[mqtt.accounts]]``; docs/mqtt-security.md)."""

    name: Id
    """The MQTT user name; for a school, its code by default."""
    role: Literal["school", "collector"] = "school"
    """school: publishes only its school's terminal and agent topics; collector: reads the
    district (another collector or a tool connecting to this broker)."""
    school: Id | None = None
    """The school of a school account (default: ``name``)."""
    password_hash: SecretStr | None = None
    """``sha256:`` and 64 hex digits, from ``edumon mqtt-account new``."""
    password_env: str | None = None
    """An environment variable holding the password itself (hashed in memory at start)."""

    @model_validator(mode="after")
    def _complete(self) -> MqttAccount:
        if self.role == "collector" and self.school is not None:
            raise KeyProblem(
                "school",
                "采集端账号可读全区县，不能指定学校 / a collector account reads the whole "
                'district; remove school, or use role = "school"',
            )
        if self.name == INTERNAL_ACCOUNT:
            raise KeyProblem(
                "name",
                f"{INTERNAL_ACCOUNT} 是保留的内部账号名 / {INTERNAL_ACCOUNT} is reserved for "
                "the collector's own connection",
            )
        self.digest()  # refuses a bad hash or an unset variable at load time
        return self

    @property
    def school_code(self) -> str | None:
        """The school of a school account, None for a collector."""
        return (self.school or self.name) if self.role == "school" else None

    def digest(self) -> bytes:
        """The SHA-256 digest of the password."""
        if (self.password_hash is None) == (self.password_env is None):
            raise KeyProblem(
                "password_hash",
                "请给出 password_hash 或 password_env 之一（用 edumon mqtt-account new 生成）/ "
                "give either password_hash or password_env (make one with edumon mqtt-account new)",
            )
        if self.password_hash is not None:
            try:
                return parse_hash(self.password_hash.get_secret_value())
            except ValueError:
                raise KeyProblem(
                    "password_hash",
                    "password_hash 应为 sha256: 加 64 位十六进制数（用 edumon mqtt-account new "
                    "或 edumon mqtt-account hash 生成） / password_hash must be sha256: and 64 hex "
                    "digits (make one with edumon mqtt-account new or edumon mqtt-account hash)",
                ) from None
        assert self.password_env is not None
        if self.password_env not in os.environ:
            raise KeyProblem(
                "password_env",
                f"环境变量 {self.password_env} 未设置 / environment variable "
                f"{self.password_env} (named by password_env) is not set",
            )
        password = os.environ[self.password_env].strip()
        problem = token_problem(password)
        if problem is not None:
            raise KeyProblem("password_env", f"{self.password_env}: {problem}")
        return token_digest(password)

    def account(self) -> Account:
        """The broker's view of this account."""
        return Account(self.name, self.role, self.school_code, self.digest())


class MqttConfig(_Strict):
    """Where terminal heartbeats arrive: an external broker, or the embedded one (the default)."""

    broker: Literal["embedded", "external"] = "embedded"
    host: str = Field("127.0.0.1", min_length=1)
    port: int | None = Field(None, ge=1, le=65535)
    """External broker port (default 1883, 8883 with TLS)."""
    listen: str = "127.0.0.1:1884"
    """Where the embedded broker listens (loopback unless configured otherwise; another
    address needs ``[[mqtt.accounts]]``)."""
    accounts: list[MqttAccount] = Field(default_factory=list)
    """The embedded broker's accounts: one per school, and any extra collectors. None: anonymous
    clients, on loopback only."""
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    tls: MqttTlsConfig | None = None
    """External broker: TLS to it (``ca_file``, client certificate optional). Embedded broker:
    its listener's certificate (``cert_file`` and ``key_file``)."""
    client_id: str | None = None
    heartbeat_interval_seconds: float = Field(30, gt=0, le=3600)
    """The agents' heartbeat interval (their ``agent.heartbeat_seconds``)."""
    heartbeat_timeout_intervals: float = Field(3, gt=2, le=10)
    """A terminal silent for this many heartbeat intervals is offline (reason ``timeout``).
    More than 2, so that one lost heartbeat never flaps a classroom."""
    max_clock_skew_seconds: float = Field(86_400, ge=60, le=31 * 86_400)
    """A terminal message dated further ahead of the collector's clock is ignored and counted
    (``clock_skew``): one forged far-future timestamp cannot silence a terminal
    (docs/wire-protocol.md, "Bounds on sessions")."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        return _check_listen(v, "127.0.0.1:1884")

    @model_validator(mode="after")
    def _password(self) -> MqttConfig:
        object.__setattr__(
            self, "password", _secret_from(self.password, self.password_env, "password")
        )
        if self.broker == "embedded":
            for key in ("username", "password"):
                if getattr(self, key) is not None:
                    raise KeyProblem(
                        key,
                        "username 和 password 用于外部代理；内置代理的账号写在 [[mqtt.accounts]] / "
                        "username and password are the collector's account on an external broker "
                        '(broker = "external"); the embedded broker\'s accounts are '
                        "[[mqtt.accounts]]",
                    )
            if self.tls is not None and (self.tls.cert_file is None or self.tls.ca_file):
                raise KeyProblem(
                    "tls",
                    "内置代理的 TLS 需要 cert_file 和 key_file（不用 ca_file） / TLS of the "
                    "embedded broker takes its certificate: cert_file and key_file (no ca_file; "
                    "clients verify it with their own ca_file)",
                )
            host = self.listen.rpartition(":")[0]
            problem = exposure_problem(host, anonymous=not self.accounts)
            if problem is not None:
                raise KeyProblem("listen", problem)
        elif self.accounts:
            raise KeyProblem(
                "accounts",
                "[[mqtt.accounts]] 只用于内置代理；外部代理（如 Mosquitto）用它自己的密码文件 / "
                "[[mqtt.accounts]] are the embedded broker's; an external broker (Mosquitto) "
                "has its own password file (deploy/mosquitto/)",
            )
        if self.password is not None and not self.username:
            raise KeyProblem(
                "password_env" if self.password_env else "password", "password needs username"
            )
        return self

    def policy(self, district: str) -> AccessPolicy | None:
        """The embedded broker's accounts and rights; None without accounts (anonymous)."""
        if not self.accounts:
            return None
        return AccessPolicy(district, [a.account() for a in self.accounts])

    @property
    def heartbeat_timeout_seconds(self) -> float:
        """How long a terminal may stay silent before it is offline."""
        return heartbeat_timeout(self.heartbeat_interval_seconds, self.heartbeat_timeout_intervals)


class AlertingConfig(_Strict):
    """When a failure becomes an outage (one alert each; docs/alerting.md)."""

    classroom_offline_minutes: float = Field(5, ge=0, le=120)
    """Lesson time a terminal must be offline before its classroom is in an outage."""
    school_cut_off_seconds: float = Field(120, ge=0, le=3600)
    """How long a school must be cut off before it is in an outage (a lost poll is not one)."""


class MetricsConfig(_Strict):
    """What /metrics exports (README "Series budget")."""

    detail: Literal["full", "essential"] = "full"
    """full: every series; essential: what the shipped rules and a NOC overview read, without
    the per-switch SNMP figures and per-port, per-terminal diagnostics the API shows."""
    refresh_seconds: float = Field(1.0, ge=0, le=60)
    """How often the exposition is rendered in the background; a scrape serves that rendering
    while it is at most twice this old. 0: each scrape renders what changed itself."""
    token_hash: SecretStr | None = None
    """/metrics wants ``Authorization: Bearer`` with this token (or a district API token);
    ``sha256:`` and 64 hex digits, as for ``[[api.tokens]]``. Neither key: /metrics is open."""
    token_env: str | None = None
    """An environment variable holding the /metrics token itself."""

    @model_validator(mode="after")
    def _token(self) -> MetricsConfig:
        if self.token_hash is not None or self.token_env is not None:
            _token_digest(self.token_hash, self.token_env)
        return self

    def token_digest(self) -> bytes | None:
        """The /metrics token's SHA-256 digest, or None when /metrics is open."""
        if self.token_hash is None and self.token_env is None:
            return None
        return _token_digest(self.token_hash, self.token_env)


class InventoryConfig(_Strict):
    csv: Path | None = None


class ConfigFile(_Strict):
    """The TOML file's top level."""

    district: DistrictConfig
    targets: TargetsConfig = TargetsConfig()
    storage: StorageConfig = StorageConfig()
    api: ApiConfig = ApiConfig()
    polling: PollingConfig = PollingConfig()
    inventory: InventoryConfig = InventoryConfig()
    mqtt: MqttConfig = MqttConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    notify: NotifyConfig = NotifyConfig()
    alerting: AlertingConfig = AlertingConfig()
    metrics: MetricsConfig = MetricsConfig()
    cluster: ClusterConfig | None = None
    credentials: dict[str, SnmpCredentials] = Field(default_factory=dict)
    switches: list[SwitchConfig] = Field(default_factory=list)
    schools: list[SchoolConfig] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Switch:
    """A switch with its credentials resolved."""

    id: str
    school: str | None
    host: str
    port: int
    snmp: SnmpCredentials
    timeout_seconds: float
    retries: int
    max_repetitions: int
    max_in_flight: int
    max_walk_rows: int = DEFAULT_MAX_WALK_ROWS
    max_walk_requests: int = DEFAULT_MAX_WALK_REQUESTS
    export_all_ports: bool = False
    upstream: PortRef | None = None
    """The port of another switch this one hangs off, if configured (docs/topology.md)."""
    name: str | None = None
    """The configured display name; the API shows the id where there is none."""


@dataclass(frozen=True, slots=True)
class Config:
    """The validated configuration the daemon runs on."""

    district: DistrictConfig
    targets: Targets
    storage: StorageConfig
    api: ApiConfig
    polling: PollingConfig
    switches: dict[str, Switch]
    schools: dict[str, SchoolConfig]
    mqtt: MqttConfig
    schedule: ScheduleConfig
    source: Path | None = None
    warnings: tuple[str, ...] = ()
    """Worth fixing, not worth refusing to run (e.g. a school name in the CSV that differs)."""
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    alerting: AlertingConfig = field(default_factory=AlertingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    cluster: ClusterConfig | None = None
    """Scale-out (docs/city-deployment.md); None: one collector runs every school."""

    def school_of_switch(self, switch_id: str) -> str | None:
        return self.switches[switch_id].school

    @property
    def agent_schools(self) -> frozenset[str]:
        """Schools whose switches their school agent reports (``switches = "agent"``)."""
        return frozenset(code for code, s in self.schools.items() if s.switches == "agent")

    def centrally_polled(self) -> list[Switch]:
        """The switches the collector polls itself: all but those of agent-reported schools."""
        agents = self.agent_schools
        return [s for s in self.switches.values() if s.school not in agents]


def key_path(loc: Loc) -> str:
    """``("schools", 19, "kind")`` as written in messages: ``schools[19].kind``."""
    out = ""
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
            continue
        name = p if p and all(c.isalnum() or c in "_-" for c in p) else f'"{p}"'
        out += f".{name}" if out else name
    return out


def _parse_key_path(text: str) -> Loc:
    """The inverse of ``key_path`` for plain keys: ``schedule.overrides[0].school``."""
    loc: list[str | int] = []
    for part in text.split("."):
        name, *indexes = part.split("[")
        loc.append(name)
        loc.extend(int(i.rstrip("]")) for i in indexes if i.rstrip("]").isdigit())
    return tuple(loc)


@dataclass(frozen=True, slots=True)
class _CsvRow:
    """Where an imported classroom came from: the sheet, its row, its columns by field."""

    file: str
    row: int
    columns: Mapping[str, str]


@dataclass(slots=True)
class _Report:
    """Problems found while validating, each placed at a TOML line or a CSV row and column."""

    where: str
    positions: TomlPositions
    csv_rows: dict[Loc, _CsvRow] = field(default_factory=dict)
    errors: list[tuple[int, int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def csv_row_of(self, loc: Loc) -> _CsvRow | None:
        return self.csv_rows.get(loc[:4]) if loc[:1] == ("schools",) else None

    def error(self, loc: Loc, message: str) -> None:
        """An error at a key path; imported classrooms are placed at their CSV row."""
        row = self.csv_row_of(loc)
        if row is not None:
            column = row.columns.get(loc[4]) if len(loc) > 4 and isinstance(loc[4], str) else None
            self.csv_error(row.file, row.row, column, message)
            return
        line = self.positions.line_of(loc)
        at = f"{self.where}:{line}" if line else self.where
        self.errors.append((0, line or 0, f"{at}: {key_path(loc) or '(top level)'}: {message}"))

    def csv_error(self, file: str, row: int, column: str | None, message: str) -> None:
        self.errors.append((1, row, _csv_line(file, row, column, message)))

    def csv_warning(self, file: str, row: int, column: str | None, message: str) -> None:
        self.warnings.append(_csv_line(file, row, column, message))

    def place(self, loc: Loc) -> str:
        """Where ``loc`` is written: ``edumon.toml line 12`` or ``rooms.csv row 3``."""
        row = self.csv_row_of(loc)
        if row is not None:
            return f"{row.file} row {row.row}"
        line = self.positions.line_of(loc)
        return f"{self.where} line {line}" if line else self.where

    def text(self) -> str:
        # Stable sort: TOML lines first, in file order, then the CSV's rows.
        return "\n".join(text for _, _, text in sorted(self.errors, key=lambda e: e[:2]))


def _csv_line(file: str, row: int, column: str | None, message: str) -> str:
    return f"{file}:{row}: column {column}: {message}" if column else f"{file}:{row}: {message}"


# -- pydantic's errors, placed and phrased for the person editing the file -------------------

_ID_HELP = "must be an id: 1-64 letters, digits or _ . : -, starting with a letter or digit"
_NAMED_KEY = re.compile(r"^([A-Za-z_][\w-]*(?:\[\d+\]|\.[A-Za-z_][\w-]*)*): (.+)$", re.DOTALL)
_TAG = re.compile(r"^[a-z][a-z-]*\[.*\]$")  # union member tags pydantic puts in a location


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) == 1:
                annotation = args[0]
                continue
        return annotation


def _annotation_at(loc: Loc) -> Any:
    """The declared type of the value at ``loc`` (None when the path leaves the models)."""
    annotation: Any = ConfigFile
    for part in loc:
        annotation = _unwrap(annotation)
        origin = typing.get_origin(annotation)
        if isinstance(part, str) and isinstance(annotation, type):
            if not issubclass(annotation, BaseModel) or part not in annotation.model_fields:
                return None
            annotation = annotation.model_fields[part].annotation
        elif isinstance(part, int) and origin in (list, tuple):
            annotation = typing.get_args(annotation)[0]
        elif isinstance(part, str) and origin in (dict, Mapping):
            annotation = typing.get_args(annotation)[1]
        else:
            return None
    return _unwrap(annotation)


def _keys_at(loc: Loc) -> list[str]:
    model = _annotation_at(loc)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _shown(value: object) -> str:
    text = f'"{value}"' if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _report_validation(exc: ValidationError, report: _Report) -> None:
    """Add pydantic's errors to ``report``: one per problem, at its line, saying what is allowed.

    A misspelt key is one problem, not two: when an unknown key is close to a required key
    that is missing from the same table, only the unknown key is reported, with the suggestion.
    """
    errors: list[tuple[Loc, dict[str, Any]]] = []
    for detail in exc.errors():
        loc: Loc = tuple(
            p
            for p in detail["loc"]
            if not (isinstance(p, str) and (p.startswith("function-") or _TAG.match(p)))
        )
        problem = (detail.get("ctx") or {}).get("error")
        if isinstance(problem, KeyProblem):
            loc = (*loc, problem.key)
        elif detail["type"] == "value_error":
            # A table's rule may name the key it is about ("defaults.high: no timetable ..."):
            # when that key is written there, the error moves to it.
            named = _NAMED_KEY.match(str(problem))
            if named is not None:
                inner = (*loc, *_parse_key_path(named[1]))
                if report.positions.has(inner[: len(loc) + 1]):
                    loc = inner
                    detail = {**detail, "msg": named[2]}
        errors.append((loc, dict(detail)))
    missing = {loc for loc, err in errors if err["type"] == "missing"}
    meant: dict[Loc, str] = {}  # unknown key -> the key it probably is
    for loc, err in errors:
        if err["type"] != "extra_forbidden" or not loc or not isinstance(loc[-1], str):
            continue
        parent, name = loc[:-1], loc[-1]
        absent = [str(m[-1]) for m in missing if m[:-1] == parent]
        close = difflib.get_close_matches(name, absent, n=1, cutoff=0.6)
        if close:
            missing.discard((*parent, close[0]))
        else:
            close = difflib.get_close_matches(name, _keys_at(parent), n=1, cutoff=0.6)
        if close:
            meant[loc] = close[0]
    for loc, err in errors:
        kind = err["type"]
        if kind == "missing" and loc not in missing:
            continue  # the misspelt key reports it
        report.error(loc, _message(loc, err, meant.get(loc)))


def _message(loc: Loc, err: Mapping[str, Any], meant: str | None) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(_keys_at(loc[:-1]))
        hint = f"; did you mean {meant}?" if meant else ""
        return f"unknown key{hint} (allowed here: {allowed})" if allowed else f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        annotation = _annotation_at(loc)
        if typing.get_origin(annotation) is Literal:
            choices = ", ".join(str(a) for a in typing.get_args(annotation))
        else:
            choices = str((err.get("ctx") or {}).get("expected", ""))
        # Only choices are echoed back: a value that is not one of a few words is no secret.
        return f"{_shown(err['input'])} is not allowed; choose one of {choices}"
    if kind == "string_pattern_mismatch" and (err.get("ctx") or {}).get("pattern") == _ID_PATTERN:
        return _ID_HELP
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a table: a [section] or { key = value, ... }"
    if kind == "list_type":
        return "must be an array: [ ... ] or [[...]] tables"
    message = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


# -- the classroom sheet -----------------------------------------------------------------------

CSV_COLUMNS = ("school_code", "school_name", "classroom", "switch", "port")


def _import_csv(path: Path, raw: dict[str, Any], report: _Report) -> None:
    """Check the classroom sheet row by row and merge its good rows into the raw TOML data.

    Each defect is an error at its row and column; a row with an error is not imported (so it
    is reported once, here, and not again by the checks that follow).
    """
    shown = str(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            records = list(csv.reader(fh))
    except OSError as exc:
        report.error(("inventory", "csv"), f"cannot read {shown}: {exc.strerror or exc}")
        return
    except UnicodeDecodeError:
        report.error(("inventory", "csv"), f"{shown} is not UTF-8 (save the sheet as CSV UTF-8)")
        return
    except csv.Error as exc:
        report.error(("inventory", "csv"), f"{shown} is not a CSV file: {exc}")
        return
    header = [h.strip() for h in records[0]] if records else []
    absent = [c for c in CSV_COLUMNS if c not in header]
    if absent:
        report.csv_error(
            shown,
            1,
            None,
            f"the sheet lacks column(s) {', '.join(absent)}; the first row must name the "
            f"columns {', '.join(CSV_COLUMNS)} (optional: classroom_id)",
        )
        return
    raw_schools = raw.get("schools", [])
    raw_switches = raw.get("switches", [])
    if not isinstance(raw_schools, list) or not isinstance(raw_switches, list):
        return  # not arrays of tables: validation says so
    schools: dict[str, tuple[int, dict[str, Any]]] = {
        s["code"]: (i, s)
        for i, s in enumerate(raw_schools)
        if isinstance(s, dict) and isinstance(s.get("code"), str)
    }
    switch_ids = [
        sw["id"] for sw in raw_switches if isinstance(sw, dict) and isinstance(sw.get("id"), str)
    ]
    by_host: dict[str, list[str]] = {}
    for sw in raw_switches:
        if isinstance(sw, dict) and isinstance(sw.get("host"), str) and "id" in sw:
            by_host.setdefault(sw["host"], []).append(str(sw["id"]))
    columns = {
        "id": "classroom_id" if "classroom_id" in header else "classroom",
        "name": "classroom",
        "switch": "switch",
        "port": "port",
    }
    names: dict[tuple[str, str], int] = {}
    ids: dict[str, int] = {}
    for number, cells in enumerate(records[1:], start=2):
        row = {h: (cells[k].strip() if k < len(cells) else "") for k, h in enumerate(header)}
        if not any(row.values()):
            continue  # an empty line Excel left at the end

        errors: list[tuple[str, str]] = []
        code = row["school_code"]
        entry = schools.get(code)
        if not code:
            errors.append(("school_code", "school_code is empty"))
        elif entry is None:
            errors.append(
                (
                    "school_code",
                    f"school {code} ({row['school_name']}) is not in the TOML file; "
                    "add it under [[schools]] with its kind and uplink",
                )
            )
        elif row["school_name"] and row["school_name"] != str(entry[1].get("name", "")).strip():
            report.csv_warning(
                shown,
                number,
                "school_name",
                f'"{row["school_name"]}" differs from the name of school {code} in the TOML '
                f'file, "{entry[1].get("name")}"; the TOML name is used',
            )
        name = row["classroom"]
        if not name:
            errors.append(("classroom", "classroom (the classroom's name) is empty"))
        elif code and (code, name) in names:
            errors.append(
                (
                    "classroom",
                    f"duplicate row: classroom {name} of school {code} is already on row "
                    f"{names[(code, name)]}",
                )
            )
        room_id = row.get("classroom_id", "")
        if room_id and room_id in ids:
            errors.append(
                (
                    "classroom_id",
                    f"duplicate: classroom id {room_id} is already on row {ids[room_id]}",
                )
            )
        switch, port = row["switch"], row["port"]
        if switch and switch not in switch_ids:
            hosts = by_host.get(switch, [])
            if len(hosts) == 1:
                switch = hosts[0]
            elif hosts:
                errors.append(
                    (
                        "switch",
                        f"{switch} is the host of switches {', '.join(hosts)}; write the switch id",
                    )
                )
            else:
                close = difflib.get_close_matches(switch, switch_ids, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]}?" if close else ""
                errors.append(
                    (
                        "switch",
                        f"{switch} is neither the id nor the host of a switch in the TOML "
                        f"file{hint}",
                    )
                )
        if switch and not port:
            errors.append(
                (
                    "port",
                    f"port is empty: write the port on switch {row['switch']} (its ifName), "
                    "or leave both switch and port empty",
                )
            )
        elif port and not switch:
            errors.append(
                (
                    "switch",
                    f"switch is empty but port is {port}: write the switch's id or host, or "
                    "leave both empty",
                )
            )
        names.setdefault((code, name), number)
        if room_id:
            ids.setdefault(room_id, number)
        for column, message in errors:
            report.csv_error(shown, number, column, message)
        if errors or entry is None:
            continue
        i, school = entry
        rooms = school.setdefault("classrooms", [])
        if not isinstance(rooms, list):
            continue  # validation reports the TOML's own mistake
        report.csv_rows[("schools", i, "classrooms", len(rooms))] = _CsvRow(shown, number, columns)
        room: dict[str, Any] = {"id": room_id or f"{code}-{len(rooms) + 1:03d}", "name": name}
        if switch:
            room |= {"switch": switch, "port": port}
        rooms.append(room)


def parse_config(text: str, *, where: str = "<config>", base_dir: Path | None = None) -> Config:
    """Validate configuration text and return the resolved Config.

    Raises:
        ConfigError: with one line per problem, each naming the file and line (or the CSV
            sheet, row and column), the key and what is allowed.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"at line (\d+)", str(exc))
        at = f"{where}:{line[1]}" if line else where
        raise ConfigError(f"{at}: not valid TOML: {exc}") from exc
    report = _Report(where, TomlPositions.scan(text))
    inventory = raw.get("inventory")
    csv_path = inventory.get("csv") if isinstance(inventory, dict) else None
    if isinstance(csv_path, str) and csv_path:
        path = Path(csv_path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        _import_csv(path, raw, report)
    try:
        parsed = ConfigFile.model_validate(raw)
    except ValidationError as exc:
        _report_validation(exc, report)
        raise ConfigError(report.text()) from exc
    config = _resolve(parsed, report)
    if report.errors:
        raise ConfigError(report.text())
    return config


def _resolve(parsed: ConfigFile, report: _Report) -> Config:
    switches: dict[str, Switch] = {}
    # References are checked against every switch written, resolved or not: one mistake in a
    # switch entry must not also make each port on that switch an error.
    switch_ids = {sw.id for sw in parsed.switches}
    school_codes = {s.code for s in parsed.schools}
    # A switch without `school = ...` belongs to the school whose ports it serves; one that
    # serves several schools (a district core switch) belongs to none.
    serves: dict[str, set[str]] = {}
    for school in parsed.schools:
        serves.setdefault(school.uplink.switch, set()).add(school.code)
        for room in school.classrooms:
            if room.switch is not None:
                serves.setdefault(room.switch, set()).add(school.code)
    # A switch that a school's own switch is cabled to, at that school's uplink port, is on the
    # district's side of the uplink (a town's aggregation switch): it belongs to no school.
    uplinks = {(s.uplink.switch, s.uplink.port) for s in parsed.schools}
    district_side = {
        sw.upstream.switch
        for sw in parsed.switches
        if sw.upstream is not None and (sw.upstream.switch, sw.upstream.port) in uplinks
    }
    used_by = {
        sw: next(iter(codes))
        for sw, codes in serves.items()
        if len(codes) == 1 and sw not in district_side
    }
    for i, sw in enumerate(parsed.switches):
        key: Loc = ("switches", i)
        if sw.id in switches:
            report.error((*key, "id"), f"switch {sw.id} is defined twice")
        if sw.school is not None and sw.school not in school_codes:
            report.error((*key, "school"), f"no school with code {sw.school}")
        if (sw.snmp is None) == (sw.credentials is None):
            report.error(key, 'give either snmp = {...} or credentials = "NAME"')
            continue
        creds = sw.snmp
        if sw.credentials is not None:
            creds = parsed.credentials.get(sw.credentials)
            if creds is None:
                close = difflib.get_close_matches(sw.credentials, list(parsed.credentials), n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                report.error(
                    (*key, "credentials"), f"no [credentials.{sw.credentials}] table{hint}"
                )
                continue
        assert creds is not None
        polling = parsed.polling
        switches[sw.id] = Switch(
            sw.id,
            sw.school or used_by.get(sw.id),
            sw.host,
            sw.port,
            creds,
            sw.timeout_seconds,
            sw.retries,
            sw.max_repetitions,
            sw.max_in_flight,
            max_walk_rows=sw.max_walk_rows or polling.max_walk_rows,
            max_walk_requests=sw.max_walk_requests or polling.max_walk_requests,
            export_all_ports=(
                sw.export_all_ports if sw.export_all_ports is not None else polling.export_all_ports
            ),
            upstream=sw.upstream,
            name=sw.name,
        )
    for problem in _upstream_problems(parsed.switches, switches):
        path, _, message = problem.partition(": ")
        report.error(_parse_key_path(path), message)
    schools: dict[str, SchoolConfig] = {}
    room_ids: dict[str, Loc] = {}
    terminal_ids: dict[tuple[str, str], str] = {}
    # Which switch port serves what: a port serves one classroom (or is a school's uplink).
    ports: dict[tuple[str, str], tuple[str, Loc]] = {
        (s.uplink.switch, s.uplink.port): (f"uplink of school {s.code}", ("schools", i, "uplink"))
        for i, s in enumerate(parsed.schools)
    }
    for i, school in enumerate(parsed.schools):
        key = ("schools", i)
        if school.code in schools:
            report.error((*key, "code"), f"school {school.code} is defined twice")
        schools[school.code] = school
        if school.uplink.switch not in switch_ids:
            report.error((*key, "uplink", "switch"), f"no switch with id {school.uplink.switch}")
        for j, room in enumerate(school.classrooms):
            at: Loc = (*key, "classrooms", j)
            if room.id in room_ids:
                report.error(
                    (*at, "id"),
                    f"classroom {room.id} is defined twice (first at "
                    f"{report.place(room_ids[room.id])})",
                )
            room_ids.setdefault(room.id, at)
            other = terminal_ids.setdefault((school.code, room.terminal_id), room.id)
            if other != room.id:
                report.error(
                    (*at, "terminal"),
                    f"terminal {room.terminal_id} is already the terminal of classroom {other}",
                )
            if room.switch is None or room.port is None:
                continue
            if room.switch not in switch_ids:
                report.error((*at, "switch"), f"no switch with id {room.switch}")
                continue
            what, first = ports.setdefault(
                (room.switch, room.port), (f"port of classroom {room.id}", at)
            )
            if first != at:
                report.error(
                    (*at, "port"),
                    f"port {room.port} of switch {room.switch} is already the {what} "
                    f"({report.place(first)}); a port serves one classroom",
                )
    targets = resolve_targets(
        parsed.targets.profile, parsed.targets.uplink_mbps, parsed.targets.classroom_mbps
    )
    for problem in parsed.schedule.unknown_references(
        {code: [r.id for r in s.classrooms] for code, s in schools.items()}
    ) + parsed.notify.unknown_references(schools):
        path, _, message = problem.partition(": ")
        report.error(_parse_key_path(path), message)
    _check_tokens(parsed, schools, report)
    _check_mqtt_accounts(parsed, schools, report)
    if parsed.cluster is not None and parsed.mqtt.broker != "external":
        report.error(
            ("cluster",),
            '多个采集器须共用一个外部 MQTT 代理：请设置 [mqtt] broker = "external" / several '
            'collectors share one external broker: set [mqtt] broker = "external" '
            "(docs/city-deployment.md)",
        )
    return Config(
        parsed.district,
        targets,
        parsed.storage,
        parsed.api,
        parsed.polling,
        switches,
        schools,
        parsed.mqtt,
        parsed.schedule,
        warnings=tuple(report.warnings),
        notify=parsed.notify,
        alerting=parsed.alerting,
        metrics=parsed.metrics,
        cluster=parsed.cluster,
    )


def _check_tokens(parsed: ConfigFile, schools: Mapping[str, SchoolConfig], report: _Report) -> None:
    """Token names are unique, each token is given once, and names configured schools."""
    names: dict[str, int] = {}
    digests: dict[bytes, str] = {}
    metrics = parsed.metrics.token_digest()
    if metrics is not None:
        digests[metrics] = "metrics.token"
    for i, token in enumerate(parsed.api.tokens):
        key: Loc = ("api", "tokens", i)
        first = names.setdefault(token.name, i)
        if first != i:
            report.error(
                (*key, "name"),
                f"令牌名 {token.name} 重复（api.tokens[{first}]） / "
                f"token name {token.name} is already used by api.tokens[{first}]",
            )
        other = digests.setdefault(token.digest(), f"api.tokens[{i}]")
        if other != f"api.tokens[{i}]":
            secret_key = "token_hash" if token.token_hash is not None else "token_env"
            report.error(
                (*key, secret_key),
                f"与 {other} 是同一个令牌；每个角色用自己的令牌 / the same token as {other}; "
                "give each its own (edumon token new)",
            )
        for j, code in enumerate([token.school] if token.school else token.schools):
            if code not in schools:
                where: Loc = (*key, "school") if token.school else (*key, "schools", j)
                # Codes differ by case more often than by letters ("cgzx" for "CGZX").
                by_lower = {c.lower(): c for c in schools}
                close = difflib.get_close_matches(code.lower(), list(by_lower), n=1)
                hint = f"; did you mean {by_lower[close[0]]}?" if close else ""
                report.error(where, f"没有代码为 {code} 的学校 / no school with code {code}{hint}")


def _check_mqtt_accounts(
    parsed: ConfigFile, schools: Mapping[str, SchoolConfig], report: _Report
) -> None:
    """Account names are unique, each password is given once, and schools are configured."""
    names: dict[str, int] = {}
    digests: dict[bytes, int] = {}
    for i, account in enumerate(parsed.mqtt.accounts):
        key: Loc = ("mqtt", "accounts", i)
        first = names.setdefault(account.name, i)
        if first != i:
            report.error(
                (*key, "name"),
                f"MQTT 账号名 {account.name} 重复（mqtt.accounts[{first}]） / "
                f"MQTT account {account.name} is already mqtt.accounts[{first}]",
            )
        other = digests.setdefault(account.digest(), i)
        if other != i:
            secret_key = "password_hash" if account.password_hash is not None else "password_env"
            report.error(
                (*key, secret_key),
                f"与 mqtt.accounts[{other}] 密码相同；每个账号用自己的密码 / the same password "
                f"as mqtt.accounts[{other}]; give each account its own (edumon mqtt-account new)",
            )
        code = account.school_code
        if code is not None and code not in schools:
            by_lower = {c.lower(): c for c in schools}
            close = difflib.get_close_matches(code.lower(), list(by_lower), n=1)
            hint = f"; did you mean {by_lower[close[0]]}?" if close else ""
            report.error(
                (*key, "school" if account.school else "name"),
                f"没有代码为 {code} 的学校 / no school with code {code}{hint}",
            )


def _upstream_problems(configured: list[SwitchConfig], switches: dict[str, Switch]) -> list[str]:
    """An upstream names another configured switch, and following upstreams never loops."""
    problems = []
    for i, sw in enumerate(configured):
        up = sw.upstream
        if up is None:
            continue
        if up.switch == sw.id:
            problems.append(f"switches[{i}].upstream.switch: a switch cannot hang off itself")
        elif up.switch not in switches:
            problems.append(f"switches[{i}].upstream.switch: no switch with id {up.switch}")
    for i, sw in enumerate(configured):
        seen = [sw.id]
        current = switches.get(sw.id)
        while current is not None and current.upstream is not None:
            nxt = current.upstream.switch
            if nxt in seen:
                if nxt == sw.id and len(seen) > 1:
                    chain = " → ".join([*seen, nxt])
                    problems.append(
                        f"switches[{i}].upstream: switches hang off each other ({chain})"
                    )
                break
            seen.append(nxt)
            current = switches.get(nxt)
    return problems


def load_config(path: Path | str) -> Config:
    """Read and validate a configuration file.

    Raises:
        ConfigError: the file cannot be read or is invalid; the message names the key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (save the file as UTF-8)") from exc
    config = parse_config(text, where=str(path), base_dir=path.parent)
    object.__setattr__(config, "source", path)
    return config


def redacted(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a mapping with every secret-looking value replaced, for logs and the API."""
    out: dict[str, Any] = {}
    for k, v in mapping.items():
        if isinstance(v, Mapping):
            out[k] = redacted(v)
        elif isinstance(v, SecretStr) or any(s in k for s in ("community", "password", "token")):
            out[k] = "**********"
        elif isinstance(v, str) and k.endswith("url"):
            out[k] = redact_url(v)
        else:
            out[k] = v
    return out


def inventory_of(config: Config) -> Inventory:
    """The pure port map the domain works on, from a validated Config."""
    schools = {
        code: SchoolRef(
            code,
            s.name,
            s.kind,
            s.uplink.switch,
            s.uplink.port,
            tuple(ClassroomRef(r.id, r.name, r.switch, r.port) for r in s.classrooms),
        )
        for code, s in config.schools.items()
    }
    upstream = {
        sid: SwitchLink(sid, sw.upstream.switch, sw.upstream.port)
        for sid, sw in config.switches.items()
        if sw.upstream is not None
    }
    return Inventory(schools, {sid: sw.school for sid, sw in config.switches.items()}, upstream)


def terminal_inventory_of(config: Config) -> TerminalInventory:
    """The classroom terminals of a validated Config: one per classroom, ids from ``terminal``."""
    named = {
        (code, room.terminal): room.id
        for code, school in config.schools.items()
        for room in school.classrooms
        if room.terminal is not None
    }
    return TerminalInventory.from_inventory(
        inventory_of(config), named, district=config.district.code
    )
