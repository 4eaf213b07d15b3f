"""Configuration: one TOML file, validated strictly; inventory may also come from a CSV file."""

from __future__ import annotations

import csv
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
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

from edumon.domain.inventory import ClassroomRef, Inventory, SchoolRef, SwitchLink
from edumon.domain.targets import PROFILES, Targets, resolve_targets
from edumon.errors import ConfigError
from edumon.schedule_config import ScheduleConfig, SchoolKind

DEFAULT_LISTEN = "127.0.0.1:9310"
DEFAULT_STORAGE_URL = "sqlite:///edumon.db"

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _secret_from(value: SecretStr | None, env: str | None, what: str) -> SecretStr | None:
    """Resolve a secret given inline or by environment variable name (never echoing the value)."""
    if env is None:
        return value
    if value is not None:
        raise ValueError(f"give either {what} or {what}_env, not both")
    if env not in os.environ:
        raise ValueError(f"environment variable {env} (named by {what}_env) is not set")
    return SecretStr(os.environ[env])


class SnmpCredentials(_Strict):
    """How to authenticate to a switch: v2c community or v3 USM user."""

    version: Literal["2c", "3"]
    community: SecretStr | None = None
    community_env: str | None = None
    user: str | None = None
    auth_protocol: Literal["SHA", "SHA-256", "SHA-512"] | None = None
    auth_password: SecretStr | None = None
    auth_password_env: str | None = None
    priv_protocol: Literal["AES-128", "AES-256"] | None = None
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
                raise ValueError("SNMP v2c needs community (or community_env)")
            if self.user is not None:
                raise ValueError('user is for SNMP v3; this entry says version = "2c"')
        else:
            if not self.user:
                raise ValueError("SNMP v3 needs user")
            if community is not None:
                raise ValueError('community is for SNMP v2c; this entry says version = "3"')
            if (self.auth_protocol is None) != (auth is None):
                raise ValueError("auth_protocol and auth_password go together")
            if (self.priv_protocol is None) != (priv is None):
                raise ValueError("priv_protocol and priv_password go together")
            if priv is not None and auth is None:
                raise ValueError("privacy (priv_protocol) needs authentication (auth_protocol)")
            for secret, name in ((auth, "auth_password"), (priv, "priv_password")):
                if secret is not None and len(secret.get_secret_value()) < 8:
                    raise ValueError(f"{name} must be at least 8 characters (RFC 3414)")
        object.__setattr__(self, "community", community)
        object.__setattr__(self, "auth_password", auth)
        object.__setattr__(self, "priv_password", priv)
        return self


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
    """The port of another switch this switch hangs off (an inter-switch link)."""


class PortRef(_Strict):
    """A switch port, named by ifName (ifDescr where the switch has no ifName)."""

    switch: Id
    port: str = Field(min_length=1)


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
            raise ValueError("a classroom needs both switch and port, or neither")
        return self


class SchoolConfig(_Strict):
    """A school: its uplink to the district and its classrooms."""

    code: Id
    name: str
    kind: SchoolKind
    uplink: PortRef
    classrooms: list[ClassroomConfig] = Field(default_factory=list)


class DistrictConfig(_Strict):
    code: Id
    name: str


class TargetsConfig(_Strict):
    profile: Literal["district-1000m", "national-2021", "legacy-2012", "custom"] = "district-1000m"
    uplink_mbps: float | None = Field(None, gt=0)
    classroom_mbps: float | None = Field(None, gt=0)


class StorageConfig(_Strict):
    url: str = DEFAULT_STORAGE_URL
    retention_days: float = Field(30, gt=0)
    batch_size: int = Field(500, ge=1, le=100_000)
    flush_seconds: float = Field(2.0, gt=0, le=300)


def _check_listen(v: str) -> str:
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("listen must be HOST:PORT, e.g. 127.0.0.1:9310")
    return v


class ApiConfig(_Strict):
    listen: str = DEFAULT_LISTEN

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


class MqttTlsConfig(_Strict):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


class MqttConfig(_Strict):
    """Where terminal heartbeats arrive: an external broker, or the embedded one (the default)."""

    broker: Literal["embedded", "external"] = "embedded"
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535)
    """External broker port (default 1883, 8883 with TLS)."""
    listen: str = "127.0.0.1:1884"
    """Where the embedded broker listens (loopback unless configured otherwise)."""
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    tls: MqttTlsConfig | None = None
    client_id: str | None = None
    heartbeat_interval_seconds: float = Field(30, gt=0, le=3600)
    """The agents' heartbeat interval; a terminal silent for 3 intervals + 10 s is offline."""

    @model_validator(mode="after")
    def _password(self) -> MqttConfig:
        object.__setattr__(
            self, "password", _secret_from(self.password, self.password_env, "password")
        )
        if self.broker == "embedded" and (self.username or self.password or self.tls):
            raise ValueError(
                'username, password and tls are for an external broker (broker = "external")'
            )
        _check_listen(self.listen)
        return self

    @property
    def heartbeat_timeout_seconds(self) -> float:
        return 3 * self.heartbeat_interval_seconds + 10


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
    """The port of another switch this one hangs off, if configured."""


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

    def school_of_switch(self, switch_id: str) -> str | None:
        return self.switches[switch_id].school


def _loc(parts: tuple[int | str, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*(\"{re.escape(key)}\"|{re.escape(key)})\s*=", re.MULTILINE)
    match = pattern.search(text)
    if match is None:  # an inline table: { key = ... }
        match = re.search(rf"[{{,]\s*{re.escape(key)}\s*=", text)
    return None if match is None else text.count("\n", 0, match.start()) + 1


def _describe(exc: ValidationError, text: str, where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = _loc(loc) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see config.example.toml)"
        elif err["type"] == "missing":
            message = "required key is missing"
        last = next((p for p in reversed(loc) if isinstance(p, str)), None)
        line = _line_of(text, last) if last else None
        at = f"{where}:{line}" if line else where
        lines.append(f"{at}: {key}: {message}")
    return "\n".join(lines)


CSV_COLUMNS = ("school_code", "school_name", "classroom", "switch", "port")


def _import_csv(path: Path, raw: dict[str, Any]) -> None:
    """Merge classrooms from a CSV sheet (one row per classroom) into the raw TOML data."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
            header = rows[0].keys() if rows else []
    except OSError as exc:
        raise ConfigError(f"inventory.csv: cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"inventory.csv: {path} is not UTF-8 (save the sheet as CSV UTF-8)"
        ) from exc
    missing = [c for c in CSV_COLUMNS if c not in header]
    if rows and missing:
        raise ConfigError(f"inventory.csv: {path} lacks column(s) {', '.join(missing)}")
    schools = {s["code"]: s for s in raw.setdefault("schools", []) if isinstance(s, dict)}
    switch_ids = {
        sw.get("host"): sw.get("id") for sw in raw.get("switches", []) if isinstance(sw, dict)
    }
    for number, row in enumerate(rows, start=2):
        code = (row["school_code"] or "").strip()
        if not code:
            raise ConfigError(f"{path}:{number}: school_code is empty")
        school = schools.get(code)
        if school is None:
            raise ConfigError(
                f"{path}:{number}: school {code} ({row['school_name']}) is not in the TOML file; "
                "add it under [[schools]] with its kind and uplink"
            )
        switch = (row["switch"] or "").strip()
        switch = switch_ids.get(switch, switch)
        classroom = (row["classroom"] or "").strip()
        room_id = (
            row.get("classroom_id") or ""
        ).strip() or f"{code}-{len(school.get('classrooms', [])) + 1:03d}"
        school.setdefault("classrooms", []).append(
            {
                "id": room_id,
                "name": classroom,
                "switch": switch,
                "port": (row["port"] or "").strip(),
            }
        )


def parse_config(text: str, *, where: str = "<config>", base_dir: Path | None = None) -> Config:
    """Validate configuration text and return the resolved Config.

    Raises:
        ConfigError: with one line per problem, each naming the key (and the line where found).
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc
    csv_path = (
        raw.get("inventory", {}).get("csv") if isinstance(raw.get("inventory"), dict) else None
    )
    if isinstance(csv_path, str):
        path = Path(csv_path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        _import_csv(path, raw)
    try:
        parsed = ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, text, where)) from exc
    return _resolve(parsed, where)


def _resolve(parsed: ConfigFile, where: str) -> Config:
    problems: list[str] = []
    switches: dict[str, Switch] = {}
    school_codes = {s.code for s in parsed.schools}
    # A switch without `school = ...` belongs to the school whose ports it serves; one that
    # serves several schools (a district core switch) belongs to none.
    serves: dict[str, set[str]] = {}
    for school in parsed.schools:
        serves.setdefault(school.uplink.switch, set()).add(school.code)
        for room in school.classrooms:
            if room.switch is not None:
                serves.setdefault(room.switch, set()).add(school.code)
    used_by = {sw: next(iter(codes)) for sw, codes in serves.items() if len(codes) == 1}
    for i, sw in enumerate(parsed.switches):
        key = f"switches[{i}]"
        if sw.id in switches:
            problems.append(f"{key}.id: switch {sw.id} is defined twice")
        if sw.school is not None and sw.school not in school_codes:
            problems.append(f"{key}.school: no school with code {sw.school}")
        if (sw.snmp is None) == (sw.credentials is None):
            problems.append(f'{key}: give either snmp = {{...}} or credentials = "NAME"')
            continue
        creds = sw.snmp
        if sw.credentials is not None:
            creds = parsed.credentials.get(sw.credentials)
            if creds is None:
                problems.append(f"{key}.credentials: no [credentials.{sw.credentials}] table")
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
        )
    problems += _upstream_problems(parsed.switches, switches)
    schools: dict[str, SchoolConfig] = {}
    room_ids: set[str] = set()
    terminal_ids: dict[tuple[str, str], str] = {}
    for i, school in enumerate(parsed.schools):
        key = f"schools[{i}]"
        if school.code in schools:
            problems.append(f"{key}.code: school {school.code} is defined twice")
        schools[school.code] = school
        if school.uplink.switch not in switches:
            problems.append(f"{key}.uplink.switch: no switch with id {school.uplink.switch}")
        for j, room in enumerate(school.classrooms):
            if room.id in room_ids:
                problems.append(f"{key}.classrooms[{j}].id: classroom {room.id} is defined twice")
            room_ids.add(room.id)
            other = terminal_ids.setdefault((school.code, room.terminal_id), room.id)
            if other != room.id:
                problems.append(
                    f"{key}.classrooms[{j}].terminal: terminal {room.terminal_id} is already "
                    f"the terminal of classroom {other}"
                )
            if room.switch is not None and room.switch not in switches:
                problems.append(f"{key}.classrooms[{j}].switch: no switch with id {room.switch}")
    try:
        targets = resolve_targets(
            parsed.targets.profile, parsed.targets.uplink_mbps, parsed.targets.classroom_mbps
        )
    except KeyError:  # pragma: no cover - Literal already restricts the names
        problems.append(f"targets.profile: choose one of {', '.join(PROFILES)} or custom")
        targets = PROFILES["district-1000m"]
    problems += parsed.schedule.unknown_references(
        {code: [r.id for r in s.classrooms] for code, s in schools.items()}
    )
    if problems:
        raise ConfigError("\n".join(f"{where}: {p}" for p in problems))
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
