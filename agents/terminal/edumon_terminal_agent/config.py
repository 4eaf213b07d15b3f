"""The agent's settings: a small TOML file, environment for the password, and flags (flags win)."""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from edumon_terminal_agent import __version__
from edumon_terminal_agent.spool import MIN_MAX_BYTES as MIN_SPOOL_BYTES
from edumon_terminal_agent.wire import is_valid_id

Protocol = Literal["auto", "5", "3.1.1"]
PROTOCOLS: Final[tuple[Protocol, ...]] = ("auto", "5", "3.1.1")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
PASSWORD_ENV: Final = "EDUMON_MQTT_PASSWORD"
DEFAULT_SPOOL_MAX_BYTES: Final = 8 * 1024 * 1024  # about 16,000 heartbeats: 5 days at 30 s


class ConfigError(Exception):
    """The settings are missing, malformed or inconsistent; the message names the key."""


class Secret:
    """A password that never shows in a repr, a log line or an exception message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that sends it (the MQTT CONNECT)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def default_state_dir() -> Path:
    """Where the birth sequence is kept: systemd's StateDirectory, or ProgramData on Windows."""
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "edumon-terminal-agent"
    return Path("/var/lib/edumon-terminal-agent")


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """How to reach the broker."""

    host: str = "127.0.0.1"
    port: int | None = None  # None: 8883 with TLS, else 1883
    username: str | None = None
    password: Secret | None = None
    client_id: str | None = None  # None: derived from the ids (see AgentConfig.client_id)
    tls: bool = False
    ca_file: Path | None = None  # None with TLS: the system's trusted CAs
    cert_file: Path | None = None
    key_file: Path | None = None
    protocol: Protocol = "auto"
    keepalive_seconds: int = 60
    will_delay_seconds: int = 0
    connect_timeout_seconds: float = 10.0
    heartbeat_qos: int = 0

    @property
    def effective_port(self) -> int:
        """The port to connect to."""
        if self.port is not None:
            return self.port
        return 8883 if self.tls else 1883


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Everything the agent needs, validated."""

    district: str
    school: str
    terminal: str
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    heartbeat_seconds: float = 30.0
    nic: str | None = None
    disk_path: str | None = None
    state_dir: Path = field(default_factory=default_state_dir)
    log_level: str = "info"
    reconnect_min_seconds: float = 1.0
    reconnect_max_seconds: float = 60.0
    spool_file: Path | None = None  # None: spool.TERMINAL.sqlite3 in state_dir
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES  # 0: no spool
    spool_drain_per_second: float = 10.0

    @property
    def client_id(self) -> str:
        """The MQTT client id: stable, so a restarted agent takes over its stale session."""
        return self.mqtt.client_id or f"edumon.{self.district}.{self.school}.{self.terminal}"

    @property
    def spool_path(self) -> Path:
        """The SQLite file heartbeats wait in while the broker is out of reach."""
        return self.spool_file or self.state_dir / f"spool.{self.terminal}.sqlite3"


# Every key the file may hold: section -> key -> the AgentConfig/MqttSettings field it sets.
_FILE_KEYS: Final[dict[str, dict[str, str]]] = {
    "terminal": {
        "district": "district",
        "school": "school",
        "id": "terminal",
        "nic": "nic",
    },
    "mqtt": {
        "host": "mqtt.host",
        "port": "mqtt.port",
        "username": "mqtt.username",
        "password": "mqtt.password",
        "password_file": "mqtt.password_file",
        "client_id": "mqtt.client_id",
        "tls": "mqtt.tls",
        "ca_file": "mqtt.ca_file",
        "cert_file": "mqtt.cert_file",
        "key_file": "mqtt.key_file",
        "protocol": "mqtt.protocol",
        "keepalive_seconds": "mqtt.keepalive_seconds",
        "will_delay_seconds": "mqtt.will_delay_seconds",
        "connect_timeout_seconds": "mqtt.connect_timeout_seconds",
        "heartbeat_qos": "mqtt.heartbeat_qos",
    },
    "agent": {
        "heartbeat_seconds": "heartbeat_seconds",
        "state_dir": "state_dir",
        "disk_path": "disk_path",
        "log_level": "log_level",
        "reconnect_min_seconds": "reconnect_min_seconds",
        "reconnect_max_seconds": "reconnect_max_seconds",
        "spool_path": "spool_file",
        "spool_max_bytes": "spool_max_bytes",
        "spool_drain_per_second": "spool_drain_per_second",
    },
}

# Flag destinations (argparse dest) -> setting name; a flag left at None does not override.
_FLAG_KEYS: Final = {
    "district": "district",
    "school": "school",
    "terminal": "terminal",
    "nic": "nic",
    "host": "mqtt.host",
    "port": "mqtt.port",
    "username": "mqtt.username",
    "client_id": "mqtt.client_id",
    "tls": "mqtt.tls",
    "ca_file": "mqtt.ca_file",
    "cert_file": "mqtt.cert_file",
    "key_file": "mqtt.key_file",
    "protocol": "mqtt.protocol",
    "keepalive": "mqtt.keepalive_seconds",
    "will_delay": "mqtt.will_delay_seconds",
    "heartbeat_qos": "mqtt.heartbeat_qos",
    "heartbeat_interval": "heartbeat_seconds",
    "state_dir": "state_dir",
    "disk_path": "disk_path",
    "log_level": "log_level",
    "spool_path": "spool_file",
    "spool_max_bytes": "spool_max_bytes",
    "spool_drain_rate": "spool_drain_per_second",
}


def build_parser() -> argparse.ArgumentParser:
    """The command line; every flag overrides the same setting from the file."""
    parser = argparse.ArgumentParser(
        prog="edumon-terminal-agent",
        description="Publish this terminal's status and heartbeats to the edumon MQTT broker.",
    )
    add = parser.add_argument
    add("-c", "--config", type=Path, help="TOML settings file (see the example)")
    add("--district", help="district id")
    add("--school", help="school id")
    add("--terminal", help="this terminal's id (usually the classroom id)")
    add("--nic", help="network interface to report (default: the one with the default route)")
    add("--host", help="MQTT broker host")
    add("--port", type=int, help="MQTT broker port (default 1883, 8883 with --tls)")
    add("--username", help="MQTT user name")
    add("--password-file", type=Path, help=f"file holding the MQTT password (or ${PASSWORD_ENV})")
    add("--client-id", help="MQTT client id (default: edumon.DISTRICT.SCHOOL.TERMINAL)")
    add("--tls", action=argparse.BooleanOptionalAction, default=None, help="use TLS")
    add("--ca-file", type=Path, help="CA certificate(s) to trust (default: the system's)")
    add("--cert-file", type=Path, help="client certificate (PEM), for certificate auth")
    add("--key-file", type=Path, help="client certificate's private key (PEM)")
    add("--protocol", choices=PROTOCOLS, help="MQTT version (auto: 5, falling back to 3.1.1)")
    add("--keepalive", type=int, help="MQTT keepalive in seconds")
    add("--will-delay", type=int, help="MQTT 5 Will Delay Interval in seconds (0: none)")
    add("--heartbeat-qos", type=int, choices=(0, 1), help="QoS of heartbeats")
    add("--heartbeat-interval", type=float, help="seconds between heartbeats (default 30)")
    add("--state-dir", type=Path, help="directory for the persisted birth sequence")
    add("--disk-path", help="file system to report disk use of (default: / or C:\\)")
    add("--log-level", choices=LOG_LEVELS, help="log verbosity (default info)")
    add("--spool-path", type=Path, help="SQLite file for heartbeats while disconnected")
    add("--spool-max-bytes", type=int, help="spool size bound in bytes (0: no spool)")
    add("--spool-drain-rate", type=float, help="spooled heartbeats sent per second on reconnect")
    add(
        "--print-heartbeat",
        action="store_true",
        help="print one heartbeat payload (checks NIC detection) and exit without connecting",
    )
    add("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _read_file(path: Path) -> dict[str, Any]:
    """Flatten the TOML file to setting names, rejecting unknown sections and keys."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        # Windows Notepad may save "UTF-8 with BOM"; TOML itself does not allow the BOM.
        document = tomllib.loads(data.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 (save the file as UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    settings: dict[str, Any] = {}
    for section, table in document.items():
        keys = _FILE_KEYS.get(section)
        if keys is None or not isinstance(table, dict):
            raise ConfigError(f"{path}: [{section}]: unknown section")
        for key, value in table.items():
            name = keys.get(key)
            if name is None:
                raise ConfigError(f"{path}: {section}.{key}: unknown key")
            settings[name] = (value, f"{section}.{key}")
    return settings


def _check(value: Any, where: str, kind: type | tuple[type, ...], what: str) -> Any:
    # bool is an int: a "port = true" must not pass as port 1.
    if isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{where}: expected {what}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {what}")
    return value


def _range(value: float, where: str, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{where}: must be between {low:g} and {high:g}")


def _read_password(path: Path, where: str) -> Secret:
    try:
        # The first line only: files written by editors end with a newline that is not part of it.
        text = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    return Secret(text[0] if text else "")


def load_config(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[AgentConfig, argparse.Namespace]:
    """Settings from the file named by ``--config``, the environment and the flags.

    Precedence: flags, then the environment (``EDUMON_MQTT_PASSWORD``), then the file. The
    password can come from ``--password-file``, the environment, or the file's
    ``password_file``/``password`` (never a flag: the command line is visible to every user).

    Returns:
        The validated settings and the parsed flags (for the one-shot options).

    Raises:
        ConfigError: Naming the key (``mqtt.port``) or flag that is wrong.
    """
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    raw: dict[str, tuple[Any, str]] = {}
    if args.config is not None:
        raw.update(_read_file(args.config))
    if "mqtt.password" in raw and "mqtt.password_file" in raw:
        raise ConfigError("mqtt.password_file: give either mqtt.password or mqtt.password_file")
    for dest, name in _FLAG_KEYS.items():
        value = getattr(args, dest)
        if value is not None:
            raw[name] = (value, "--" + dest.replace("_", "-"))
    if args.password_file is not None:
        raw.pop("mqtt.password", None)
        raw["mqtt.password_file"] = (args.password_file, "--password-file")
    elif PASSWORD_ENV in environ:
        raw.pop("mqtt.password_file", None)
        raw["mqtt.password"] = (environ[PASSWORD_ENV], PASSWORD_ENV)
    return _build(raw), args


def _build(raw: Mapping[str, tuple[Any, str]]) -> AgentConfig:
    ids: dict[str, str] = {}
    for name in ("district", "school", "terminal"):
        item = raw.get(name)
        if item is None:
            key = "terminal.id" if name == "terminal" else f"terminal.{name}"
            raise ConfigError(f"{key} (or --{name}): required")
        value, where = item
        _check(value, where, str, "a string")
        if not is_valid_id(value):
            raise ConfigError(
                f"{where}: {value!r} is not a valid id (letters, digits, '_.:-', at most 64)"
            )
        ids[name] = value

    mqtt: dict[str, Any] = {}
    config: dict[str, Any] = {}
    for name, (value, where) in raw.items():
        target, key = (mqtt, name[5:]) if name.startswith("mqtt.") else (config, name)
        if name in ("district", "school", "terminal"):
            continue
        if key in ("host", "username", "client_id", "nic", "disk_path"):
            _check(value, where, str, "a string")
            if not value:
                raise ConfigError(f"{where}: must not be empty")
        elif key in ("port", "keepalive_seconds", "will_delay_seconds", "heartbeat_qos"):
            _check(value, where, int, "an integer")
            low, high = {
                "port": (1, 65535),
                "keepalive_seconds": (5, 65535),
                "will_delay_seconds": (0, 86400),
                "heartbeat_qos": (0, 1),
            }[key]
            _range(value, where, low, high)
        elif key == "spool_max_bytes":
            _check(value, where, int, "an integer")
            _range(value, where, 0, 2**40)
            if 0 < value < MIN_SPOOL_BYTES:
                raise ConfigError(f"{where}: 0 (no spool) or at least {MIN_SPOOL_BYTES}")
        elif key in (
            "heartbeat_seconds",
            "spool_drain_per_second",
            "connect_timeout_seconds",
            "reconnect_min_seconds",
            "reconnect_max_seconds",
        ):
            _check(value, where, (int, float), "a number")
            _range(value, where, 0.1, 86400)
            value = float(value)
        elif key == "tls":
            _check(value, where, bool, "true or false")
        elif key == "protocol":
            value = str(value) if isinstance(value, int | float) else value
            if value not in PROTOCOLS:
                raise ConfigError(f"{where}: must be one of {', '.join(PROTOCOLS)}")
        elif key == "log_level":
            if value not in LOG_LEVELS:
                raise ConfigError(f"{where}: must be one of {', '.join(LOG_LEVELS)}")
        elif key in (
            "ca_file",
            "cert_file",
            "key_file",
            "state_dir",
            "password_file",
            "spool_file",
        ):
            path = Path(_check(value, where, (str, Path), "a path"))
            if key not in ("state_dir", "spool_file") and not path.is_file():
                raise ConfigError(f"{where}: {path} is not a readable file")
            value = path
        elif key == "password":
            _check(value, where, str, "a string")
            value = Secret(value)
        target[key] = value

    password_file = mqtt.pop("password_file", None)
    if password_file is not None:
        mqtt["password"] = _read_password(password_file, raw["mqtt.password_file"][1])
    if "password" in mqtt and "username" not in mqtt:
        raise ConfigError("mqtt.password: given without mqtt.username")
    if not mqtt.get("tls", False):
        for key in ("ca_file", "cert_file", "key_file"):
            if key in mqtt:
                raise ConfigError(f"{raw['mqtt.' + key][1]}: needs mqtt.tls = true")
    if "key_file" in mqtt and "cert_file" not in mqtt:
        raise ConfigError(f"{raw['mqtt.key_file'][1]}: given without mqtt.cert_file")
    settings = MqttSettings(**mqtt)
    if settings.will_delay_seconds and settings.protocol == "3.1.1":
        raise ConfigError("mqtt.will_delay_seconds: needs MQTT 5 (protocol auto or 5)")
    result = AgentConfig(
        district=ids["district"],
        school=ids["school"],
        terminal=ids["terminal"],
        mqtt=settings,
        **config,
    )
    if result.reconnect_max_seconds < result.reconnect_min_seconds:
        raise ConfigError("agent.reconnect_max_seconds: must not be below reconnect_min_seconds")
    return result
