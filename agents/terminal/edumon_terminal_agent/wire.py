"""The MQTT wire protocol (v1) shared by the terminal agent and the collector: topics and payloads.

docs/wire-protocol.md describes it for people; this file is the authority. The agent's
``agents/terminal/edumon_terminal_agent/wire.py`` is a byte-identical copy made by
``agents/terminal/sync_wire.py`` (a test fails when they differ), so that the agent ships without
the edumon package. It therefore imports only the standard library, and orjson when it is there
(the collector's dependency: a faster JSON decoder for its hot path; the results are the same).

Topics::

    edumon/v1/{district}/{school}/terminal/{terminal}/status     retained, QoS 1
    edumon/v1/{district}/{school}/terminal/{terminal}/heartbeat  every 30 s by default
    edumon/v1/{district}/{school}/agent/{agent}/status           retained, QoS 1 (school agent)
    edumon/v1/{district}/{school}/agent/{agent}/poll             QoS 1: one switch poll each

Every payload is a UTF-8 JSON object of at most ``MAX_PAYLOAD_BYTES`` with the schema version
``"v": 1``, its ``"kind"`` (the topic's last level), the sender's ids (equal to the topic's), a
``"boot"`` id, a sequence number ``"seq"``, the birth sequence ``"bd_seq"`` and the observation
time ``"ts"`` (Unix seconds, the sender's clock).

- ``boot`` is random per agent *process* start, not per OS boot: ``seq`` is counted in memory, so
  it restarts whenever the process does, and deduplication by (sender, boot, seq) is only sound
  if the boot id changes at exactly those moments. OS reboots show in ``uptime_s`` instead.
- ``seq`` counts the messages one boot creates (the Will is created at connect time, so its
  ``seq`` is lower than that session's birth).
- ``bd_seq`` (Sparkplug B's bdSeq) is incremented for every MQTT session (every CONNECT) and
  persisted by the agent, so a restarted agent continues it. The birth (status ``online``), the
  heartbeats and the Last Will (status ``offline``, reason ``will``) of one session carry the same
  ``(boot, bd_seq)``: an offline status ends the collector's current session only when that pair
  equals the current one (``offline_ends_session``), so a late Will from an older session never
  marks a reconnected terminal offline.
- ``hist`` (optional, heartbeats only, added within v1): ``true`` on a heartbeat the agent
  observed while it could not reach the broker, kept in its disk spool and sent after the live
  ones once it reconnected. Such a heartbeat says the terminal was up at its ``ts``; it says
  nothing about now (docs/wire-protocol.md, "Historical heartbeats").

The school agent's payloads (role ``agent``) carry the same envelope with ``"agent_id"`` for
the sender's id (``"agent"`` is the software version in every role). A ``poll`` carries one
switch poll's observation in ``"obs"`` (decoded by edumon, not here) at its own time ``"ts"``;
``"hist": true`` marks one replayed from the agent's spool. Poll payloads may be up to
``MAX_POLL_PAYLOAD_BYTES``.

Versioning: within ``v1`` fields are only ever added (parsers ignore unknown keys); removing or
changing a field means ``v2``, in the topic and the payload.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Final, Literal

_fast_loads: Callable[[bytes], Any] | None
try:
    from orjson import loads as _fast_loads
except ImportError:  # the agent's copy, without the collector's dependencies
    _fast_loads = None

SCHEMA_VERSION: Final = 1
TOPIC_ROOT: Final = "edumon"
TOPIC_VERSION: Final = f"v{SCHEMA_VERSION}"
MAX_PAYLOAD_BYTES: Final = 4096
MAX_POLL_PAYLOAD_BYTES: Final = 262144
"""A school agent's poll of a 52-port switch is ~15 KB; a chassis of 400 ports stays below."""

ROLE_TERMINAL: Final = "terminal"
ROLE_AGENT: Final = "agent"
KIND_STATUS: Final = "status"
KIND_HEARTBEAT: Final = "heartbeat"
KIND_POLL: Final = "poll"

Kind = Literal["status", "heartbeat", "poll"]
TerminalState = Literal["online", "offline"]
StatusReason = Literal["birth", "will", "shutdown"]
Duplex = Literal["full", "half", "unknown"]

# Machine-readable rejection reasons, fixed so that a collector can pre-create metric labels.
REASON_EMPTY: Final = "empty"  # a zero-length payload: how a retained status is cleared
REASON_TOO_LARGE: Final = "too_large"
REASON_BAD_TOPIC: Final = "bad_topic"
REASON_BAD_JSON: Final = "bad_json"
REASON_SCHEMA_VERSION: Final = "schema_version"
REASON_KIND_MISMATCH: Final = "kind_mismatch"
REASON_ID_MISMATCH: Final = "id_mismatch"
REASON_BAD_FIELD: Final = "bad_field"
REASONS: Final = (
    REASON_EMPTY,
    REASON_TOO_LARGE,
    REASON_BAD_TOPIC,
    REASON_BAD_JSON,
    REASON_SCHEMA_VERSION,
    REASON_KIND_MISMATCH,
    REASON_ID_MISMATCH,
    REASON_BAD_FIELD,
)

# The same id rule as edumon's config (edumon.config.Id): safe as an MQTT topic level.
ID_MAX_LENGTH: Final = 64
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]{0,31}")
_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
# Canonical dotted-quad IPv4 (no leading zeros): the common case, 5x faster than ipaddress.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_NIC_MAX_LENGTH: Final = 128
_MAX_INT: Final = 2**53 - 1  # the largest integer every JSON implementation keeps exact
_MAX_TS: Final = 2.0**33  # year 2242: generous, terminals with bad clocks still parse
_MAX_UPTIME: Final = 2.0**32
_MAX_SPEED_MBPS: Final = 10_000_000
_DUPLEXES: Final = frozenset(("full", "half", "unknown"))
_STATES: Final = frozenset(("online", "offline"))
_REASONS_OF_STATE: Final = {
    "online": frozenset(("birth",)),
    "offline": frozenset(("will", "shutdown")),
}


class WireError(ValueError):
    """A topic or payload that does not follow the protocol.

    Attributes:
        reason: One of ``REASONS``, short and fixed: fit for a metric label.
        detail: What exactly was wrong (a field name, a value's type), for logs.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class TopicParts:
    """A parsed topic: who sent it and what kind of message it carries."""

    district: str
    school: str
    role: str
    sender: str
    kind: Kind

    @property
    def terminal(self) -> str:
        """The terminal id (the sender, for the ``terminal`` role)."""
        return self.sender


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A terminal's periodic report. Optional measurements are None when the sender lacks them.

    ``link_speed_mbps`` is None when the NIC reports no speed (Wi-Fi, virtual NICs, a link that
    is not up): a missing speed is not a slow link.
    """

    district: str
    school: str
    terminal: str
    boot_id: str
    seq: int
    birth_seq: int
    observed_at: float
    uptime_seconds: float
    agent_version: str
    nic: str | None
    link_speed_mbps: int | None
    duplex: Duplex
    ip: str | None
    mac: str | None
    cpu_percent: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    disk_used_bytes: int | None
    disk_total_bytes: int | None
    historical: bool = False
    """``"hist": true``: observed while disconnected, sent later from the agent's spool."""

    @property
    def session(self) -> tuple[str, int]:
        """The MQTT session this heartbeat belongs to: ``(boot_id, birth_seq)``."""
        return (self.boot_id, self.birth_seq)


@dataclass(frozen=True, slots=True)
class Status:
    """A retained status: a birth (``online``), a Last Will or a clean shutdown (``offline``).

    A Will's ``observed_at`` is the time it was *created* (at connect), not when the broker
    published it: use the receive time for when the terminal went offline.
    """

    district: str
    school: str
    terminal: str
    state: TerminalState
    reason: StatusReason
    boot_id: str
    seq: int
    birth_seq: int
    observed_at: float
    agent_version: str

    @property
    def online(self) -> bool:
        """True for a birth."""
        return self.state == "online"

    @property
    def session(self) -> tuple[str, int]:
        """The MQTT session this status belongs to: ``(boot_id, birth_seq)``."""
        return (self.boot_id, self.birth_seq)


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """A school agent's retained status: birth (``online``), Last Will or shutdown (``offline``).

    ``spool_pending`` and ``spool_dropped`` say what waits in its spool and what it dropped
    because the spool was full (loss the collector cannot see in sequence numbers once the
    dropped messages' boot is over).
    """

    district: str
    school: str
    agent: str
    state: TerminalState
    reason: StatusReason
    boot_id: str
    seq: int
    birth_seq: int
    observed_at: float
    agent_version: str
    spool_pending: int | None
    spool_dropped: int | None

    @property
    def session(self) -> tuple[str, int]:
        """The MQTT session this status belongs to: ``(boot_id, birth_seq)``."""
        return (self.boot_id, self.birth_seq)


@dataclass(frozen=True, slots=True)
class PollReport:
    """One switch poll reported by a school agent.

    ``observation`` is the encoded observation (``edumon.domain.observation_codec``), checked
    to be a JSON object here and decoded by the collector. ``historical`` marks a report
    replayed from the spool after an outage: older than what the collector may already know.
    """

    district: str
    school: str
    agent: str
    boot_id: str
    seq: int
    observed_at: float
    agent_version: str
    historical: bool
    observation: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, int]:
        """The deduplication key ``(agent, boot, seq)``."""
        return (self.agent, self.boot_id, self.seq)


def is_valid_id(value: str) -> bool:
    """Whether ``value`` may be a district, school or terminal id (a safe topic level)."""
    return _ID.fullmatch(value) is not None


def terminal_topic(district: str, school: str, terminal: str, kind: Kind) -> str:
    """The topic a terminal publishes ``kind`` messages on.

    Raises:
        WireError: ``bad_topic`` if an id is not valid (``is_valid_id``) or the kind unknown.
    """
    for value in (district, school, terminal):
        if not is_valid_id(value):
            raise WireError(REASON_BAD_TOPIC, f"invalid id {value!r}")
    if kind not in (KIND_STATUS, KIND_HEARTBEAT):
        raise WireError(REASON_BAD_TOPIC, f"unknown kind {kind!r}")
    return f"{TOPIC_ROOT}/{TOPIC_VERSION}/{district}/{school}/{ROLE_TERMINAL}/{terminal}/{kind}"


def terminal_filter(kind: Kind, district: str = "+", school: str = "+") -> str:
    """A subscription filter for every terminal's ``kind`` topic (in one district or school).

    Retained status messages are not delivered through ``$share/...`` subscriptions: subscribe to
    the status filter directly.
    """
    return f"{TOPIC_ROOT}/{TOPIC_VERSION}/{district}/{school}/{ROLE_TERMINAL}/+/{kind}"


def agent_topic(district: str, school: str, agent: str, kind: Kind) -> str:
    """The topic a school agent publishes ``kind`` (``status`` or ``poll``) messages on.

    Raises:
        WireError: ``bad_topic`` if an id is not valid or the kind unknown.
    """
    for value in (district, school, agent):
        if not is_valid_id(value):
            raise WireError(REASON_BAD_TOPIC, f"invalid id {value!r}")
    if kind not in (KIND_STATUS, KIND_POLL):
        raise WireError(REASON_BAD_TOPIC, f"unknown kind {kind!r}")
    return f"{TOPIC_ROOT}/{TOPIC_VERSION}/{district}/{school}/{ROLE_AGENT}/{agent}/{kind}"


def agent_filter(kind: Kind, district: str = "+", school: str = "+") -> str:
    """A subscription filter for every school agent's ``kind`` topic."""
    return f"{TOPIC_ROOT}/{TOPIC_VERSION}/{district}/{school}/{ROLE_AGENT}/+/{kind}"


# Valid topics already parsed: every terminal sends on the same two topics all day. Bounded (a
# publisher inventing topics only empties it); about 25 MB when full.
_TOPICS: dict[str, TopicParts] = {}
_TOPICS_LIMIT: Final = 100_000


def parse_topic(topic: str) -> TopicParts:
    """Split and check a topic.

    Raises:
        WireError: ``schema_version`` for another protocol version, else ``bad_topic``.
    """
    parts = _TOPICS.get(topic)
    if parts is None:
        parts = _parse_topic(topic)
        if len(_TOPICS) >= _TOPICS_LIMIT:
            _TOPICS.clear()
        _TOPICS[topic] = parts
    return parts


def _parse_topic(topic: str) -> TopicParts:
    parts = topic.split("/")
    if len(parts) != 7 or parts[0] != TOPIC_ROOT:
        raise WireError(REASON_BAD_TOPIC, "not an edumon topic")
    _root, version, district, school, role, sender, kind = parts
    if version != TOPIC_VERSION:
        raise WireError(REASON_SCHEMA_VERSION, f"topic version {version!r}")
    checked_kind: Kind
    if role == ROLE_TERMINAL and kind == KIND_HEARTBEAT:
        checked_kind = KIND_HEARTBEAT
    elif kind == KIND_STATUS and role in (ROLE_TERMINAL, ROLE_AGENT):
        checked_kind = KIND_STATUS
    elif role == ROLE_AGENT and kind == KIND_POLL:
        checked_kind = KIND_POLL
    elif role not in (ROLE_TERMINAL, ROLE_AGENT):
        raise WireError(REASON_BAD_TOPIC, f"unknown role {role!r}")
    else:
        raise WireError(REASON_BAD_TOPIC, f"unknown kind {kind!r}")
    match = _ID.fullmatch
    if match(district) is None or match(school) is None or match(sender) is None:
        raise WireError(REASON_BAD_TOPIC, "invalid id")
    return TopicParts(district, school, role, sender, checked_kind)


def _reject_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity by default; they are not JSON and not a measurement.
    raise ValueError(f"non-JSON constant {name}")


# Built once: json.loads with any keyword argument builds a new decoder per call (slow), and
# the decoder holds no state between calls.
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)


def _load(
    parts: TopicParts,
    payload: bytes,
    kind: Kind,
    *,
    id_key: str = ROLE_TERMINAL,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> dict[str, Any]:
    """Size, JSON, version, kind and id checks common to every payload."""
    if parts.kind != kind:
        raise WireError(REASON_KIND_MISMATCH, f"topic kind {parts.kind!r}, expected {kind!r}")
    size = len(payload)
    if size == 0:
        raise WireError(REASON_EMPTY)
    if size > max_bytes:
        raise WireError(REASON_TOO_LARGE, f"{size} bytes")
    data = None
    if _fast_loads is not None:
        # orjson accepts a subset of what the standard decoder does (never NaN, a lone
        # surrogate or an overflowing float), with the same result; whatever it refuses is
        # judged by the standard decoder below, so the verdicts are the same.
        try:
            data = _fast_loads(payload)
        except ValueError:
            data = None
    if data is None:
        try:
            data = _DECODER.decode(payload.decode())
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise WireError(REASON_BAD_JSON, type(exc).__name__) from None
    if type(data) is not dict:
        raise WireError(REASON_BAD_JSON, "not an object")
    version = data.get("v")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise WireError(REASON_SCHEMA_VERSION, f"v={version!r}")
    if data.get("kind") != kind:
        raise WireError(REASON_KIND_MISMATCH, f"payload kind {data.get('kind')!r}")
    if (
        data.get(id_key) != parts.sender
        or data.get("school") != parts.school
        or data.get("district") != parts.district
    ):
        raise WireError(REASON_ID_MISMATCH)
    return data


def _one_of(value: object, allowed: Collection[str]) -> bool:
    # A JSON list or object is unhashable: "in" on a set or dict would raise TypeError.
    return type(value) is str and value in allowed


def _bad(key: str, value: object) -> WireError:
    return WireError(REASON_BAD_FIELD, f"{key}={type(value).__name__}")


def _int(data: dict[str, Any], key: str, high: int = _MAX_INT) -> int:
    value = data.get(key)
    # type() rather than isinstance(): a JSON true must not count as the integer 1.
    if type(value) is not int or not 0 <= value <= high:
        raise _bad(key, value)
    return value


def _opt_int(data: dict[str, Any], key: str, low: int = 0, high: int = _MAX_INT) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if type(value) is not int or not low <= value <= high:
        raise _bad(key, value)
    return value


def _float(data: dict[str, Any], key: str, high: float) -> float:
    value: Any = data.get(key)
    kind = type(value)
    # json.loads never yields nan/inf here (see _reject_constant), but 1e400 overflows to inf.
    if (kind is not float and kind is not int) or not 0.0 <= value <= high:
        raise _bad(key, value)
    return float(value)


def _opt_float(data: dict[str, Any], key: str, high: float) -> float | None:
    if data.get(key) is None:
        return None
    return _float(data, key, high)


def _str(data: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    value = data.get(key)
    if type(value) is not str or pattern.fullmatch(value) is None:
        raise _bad(key, value)
    return value


def _used_total(
    data: dict[str, Any], used_key: str, total_key: str
) -> tuple[int | None, int | None]:
    used = _opt_int(data, used_key)
    total = _opt_int(data, total_key)
    if used is not None and total is not None and used > total:
        raise WireError(REASON_BAD_FIELD, f"{used_key}>{total_key}")
    return used, total


def parse_heartbeat(parts: TopicParts, payload: bytes) -> Heartbeat:
    """Validate a heartbeat payload received on the topic ``parts``.

    Raises:
        WireError: With one of ``REASONS``; nothing else for any input.
    """
    data = _load(parts, payload, KIND_HEARTBEAT)
    common = _common_heartbeat(parts, data)
    if common is not None:
        return common
    # Something is off (or an IPv6 address): the checks one by one, naming what is wrong.
    nic = data.get("nic")
    if nic is not None and (
        type(nic) is not str or not 0 < len(nic) <= _NIC_MAX_LENGTH or not nic.isprintable()
    ):
        raise _bad("nic", nic)
    duplex = data.get("duplex", "unknown")
    if not _one_of(duplex, _DUPLEXES):
        raise _bad("duplex", duplex)
    ip = data.get("ip")
    if ip is not None:
        if type(ip) is not str or len(ip) > 64:
            raise _bad("ip", ip)
        if _IPV4.fullmatch(ip) is None:
            try:
                ip = ipaddress.ip_address(ip).compressed
            except ValueError:
                raise _bad("ip", ip) from None
    mac = data.get("mac")
    if mac is not None and (type(mac) is not str or _MAC.fullmatch(mac) is None):
        raise _bad("mac", mac)
    memory_used, memory_total = _used_total(data, "mem_used", "mem_total")
    disk_used, disk_total = _used_total(data, "disk_used", "disk_total")
    historical = data.get("hist", False)
    if type(historical) is not bool:
        raise _bad("hist", historical)
    return Heartbeat(
        district=parts.district,
        school=parts.school,
        terminal=parts.sender,
        boot_id=_str(data, "boot", _ID),
        seq=_int(data, "seq"),
        birth_seq=_int(data, "bd_seq"),
        observed_at=_float(data, "ts", _MAX_TS),
        uptime_seconds=_float(data, "uptime_s", _MAX_UPTIME),
        agent_version=_str(data, "agent", _VERSION),
        nic=nic,
        link_speed_mbps=_opt_int(data, "speed_mbps", 1, _MAX_SPEED_MBPS),
        duplex=duplex,
        ip=ip,
        mac=mac,
        cpu_percent=_opt_float(data, "cpu_pct", 100.0),
        memory_used_bytes=memory_used,
        memory_total_bytes=memory_total,
        disk_used_bytes=disk_used,
        disk_total_bytes=disk_total,
        historical=historical,
    )


def _common_heartbeat(parts: TopicParts, data: dict[str, Any]) -> Heartbeat | None:
    """A heartbeat as the checks of ``parse_heartbeat`` make it, in one expression; None when
    any of them fails (or the address is IPv6), for the checks one by one to say which.

    The hot path: the collector parses thousands of heartbeats a second, nearly all valid.
    """
    get = data.get
    nic = get("nic")
    duplex: Any = get("duplex", "unknown")
    ip = get("ip")
    mac = get("mac")
    boot = get("boot")
    seq = get("seq")
    birth_seq = get("bd_seq")
    ts = get("ts")
    uptime = get("uptime_s")
    agent = get("agent")
    speed = get("speed_mbps")
    cpu = get("cpu_pct")
    mem_used = get("mem_used")
    mem_total = get("mem_total")
    disk_used = get("disk_used")
    disk_total = get("disk_total")
    historical = get("hist", False)
    if not (
        (
            nic is None
            or (type(nic) is str and 0 < len(nic) <= _NIC_MAX_LENGTH and nic.isprintable())
        )
        and _one_of(duplex, _DUPLEXES)
        and (ip is None or (type(ip) is str and len(ip) <= 64 and _IPV4.fullmatch(ip) is not None))
        and (mac is None or (type(mac) is str and _MAC.fullmatch(mac) is not None))
        and type(boot) is str
        and _ID.fullmatch(boot) is not None
        and type(seq) is int
        and 0 <= seq <= _MAX_INT
        and type(birth_seq) is int
        and 0 <= birth_seq <= _MAX_INT
        and (type(ts) is float or type(ts) is int)
        and 0.0 <= ts <= _MAX_TS
        and (type(uptime) is float or type(uptime) is int)
        and 0.0 <= uptime <= _MAX_UPTIME
        and type(agent) is str
        and _VERSION.fullmatch(agent) is not None
        and (speed is None or (type(speed) is int and 1 <= speed <= _MAX_SPEED_MBPS))
        and (cpu is None or ((type(cpu) is float or type(cpu) is int) and 0.0 <= cpu <= 100.0))
        and (mem_used is None or (type(mem_used) is int and 0 <= mem_used <= _MAX_INT))
        and (mem_total is None or (type(mem_total) is int and 0 <= mem_total <= _MAX_INT))
        and (mem_used is None or mem_total is None or mem_used <= mem_total)
        and (disk_used is None or (type(disk_used) is int and 0 <= disk_used <= _MAX_INT))
        and (disk_total is None or (type(disk_total) is int and 0 <= disk_total <= _MAX_INT))
        and (disk_used is None or disk_total is None or disk_used <= disk_total)
        and type(historical) is bool
    ):
        return None
    return Heartbeat(
        district=parts.district,
        school=parts.school,
        terminal=parts.sender,
        boot_id=boot,
        seq=seq,
        birth_seq=birth_seq,
        observed_at=float(ts),
        uptime_seconds=float(uptime),
        agent_version=agent,
        nic=nic,
        link_speed_mbps=speed,
        duplex=duplex,
        ip=ip,
        mac=mac,
        cpu_percent=None if cpu is None else float(cpu),
        memory_used_bytes=mem_used,
        memory_total_bytes=mem_total,
        disk_used_bytes=disk_used,
        disk_total_bytes=disk_total,
        historical=historical,
    )


def parse_status(parts: TopicParts, payload: bytes) -> Status:
    """Validate a status payload (birth, Will or shutdown) received on the topic ``parts``.

    An empty payload (``empty``) is how a retained status is cleared; a collector may ignore it
    without counting it as an error.

    Raises:
        WireError: With one of ``REASONS``; nothing else for any input.
    """
    data = _load(parts, payload, KIND_STATUS)
    state, reason = _state_and_reason(data)
    return Status(
        district=parts.district,
        school=parts.school,
        terminal=parts.sender,
        state=state,
        reason=reason,
        boot_id=_str(data, "boot", _ID),
        seq=_int(data, "seq"),
        birth_seq=_int(data, "bd_seq"),
        observed_at=_float(data, "ts", _MAX_TS),
        agent_version=_str(data, "agent", _VERSION),
    )


def _state_and_reason(data: dict[str, Any]) -> tuple[Any, Any]:
    """A status payload's ``state`` and the ``reason`` that state allows (any role).

    Raises:
        WireError: ``bad_field`` for either.
    """
    state: Any = data.get("state")
    if not _one_of(state, _STATES):
        raise _bad("state", state)
    reason: Any = data.get("reason")
    if not _one_of(reason, _REASONS_OF_STATE[state]):
        raise _bad("reason", reason)
    return state, reason


def parse_message(topic: str, payload: bytes) -> Heartbeat | Status:
    """Parse a topic and its payload in one call (the collector's hot path).

    Raises:
        WireError: With one of ``REASONS``.
    """
    parts = parse_topic(topic)
    if parts.role != ROLE_TERMINAL:
        raise WireError(REASON_BAD_TOPIC, f"not a terminal topic: role {parts.role!r}")
    if parts.kind == KIND_HEARTBEAT:
        return parse_heartbeat(parts, payload)
    return parse_status(parts, payload)


_AGENT_ID_KEY: Final = "agent_id"


def _require_agent(parts: TopicParts, kind: Kind) -> None:
    if parts.role != ROLE_AGENT:
        raise WireError(REASON_BAD_TOPIC, f"not an agent topic: role {parts.role!r}")
    if parts.kind != kind:
        raise WireError(REASON_KIND_MISMATCH, f"topic kind {parts.kind!r}, expected {kind!r}")


def parse_agent_status(parts: TopicParts, payload: bytes) -> AgentStatus:
    """Validate a school agent's status payload received on the topic ``parts``.

    Raises:
        WireError: With one of ``REASONS``; nothing else for any input.
    """
    _require_agent(parts, KIND_STATUS)
    data = _load(parts, payload, KIND_STATUS, id_key=_AGENT_ID_KEY)
    state, reason = _state_and_reason(data)
    return AgentStatus(
        district=parts.district,
        school=parts.school,
        agent=parts.sender,
        state=state,
        reason=reason,
        boot_id=_str(data, "boot", _ID),
        seq=_int(data, "seq"),
        birth_seq=_int(data, "bd_seq"),
        observed_at=_float(data, "ts", _MAX_TS),
        agent_version=_str(data, "agent", _VERSION),
        spool_pending=_opt_int(data, "spool_pending"),
        spool_dropped=_opt_int(data, "spool_dropped"),
    )


def parse_poll(parts: TopicParts, payload: bytes) -> PollReport:
    """Validate a school agent's poll report (the envelope; ``obs`` is only checked to be an
    object).

    Raises:
        WireError: With one of ``REASONS``; nothing else for any input.
    """
    _require_agent(parts, KIND_POLL)
    data = _load(parts, payload, KIND_POLL, id_key=_AGENT_ID_KEY, max_bytes=MAX_POLL_PAYLOAD_BYTES)
    hist = data.get("hist", False)
    if type(hist) is not bool:
        raise _bad("hist", hist)
    obs = data.get("obs")
    if type(obs) is not dict:
        raise _bad("obs", obs)
    return PollReport(
        district=parts.district,
        school=parts.school,
        agent=parts.sender,
        boot_id=_str(data, "boot", _ID),
        seq=_int(data, "seq"),
        observed_at=_float(data, "ts", _MAX_TS),
        agent_version=_str(data, "agent", _VERSION),
        historical=hist,
        observation=obs,
    )


def parse_agent_message(topic: str, payload: bytes) -> AgentStatus | PollReport:
    """Parse a school agent's topic and payload in one call.

    Raises:
        WireError: With one of ``REASONS``.
    """
    parts = parse_topic(topic)
    if parts.role != ROLE_AGENT:
        raise WireError(REASON_BAD_TOPIC, f"not an agent topic: role {parts.role!r}")
    if parts.kind == KIND_POLL:
        return parse_poll(parts, payload)
    return parse_agent_status(parts, payload)


def offline_ends_session(offline: Status, current: tuple[str, int] | None) -> bool:
    """Whether an offline status ends the session the collector believes current.

    ``current`` is the ``session`` of the latest birth or heartbeat received from the terminal
    (None if none yet). A Will from an older session (the broker publishes it late, e.g. after a
    session takeover by the restarted agent) carries another ``(boot, bd_seq)`` and is ignored.
    """
    return current is None or offline.session == current


def _dumps(data: dict[str, Any]) -> bytes:
    # allow_nan=False: a NaN from a broken sensor read must fail at the sender, not the collector.
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def encode_heartbeat(heartbeat: Heartbeat) -> bytes:
    """The JSON payload of a heartbeat (what ``parse_heartbeat`` reads back).

    ``"hist"`` is written only when true: a live heartbeat's payload is what it was before the
    field existed.
    """
    data: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "kind": KIND_HEARTBEAT,
        "district": heartbeat.district,
        "school": heartbeat.school,
        "terminal": heartbeat.terminal,
        "boot": heartbeat.boot_id,
        "seq": heartbeat.seq,
        "bd_seq": heartbeat.birth_seq,
        "ts": heartbeat.observed_at,
        "uptime_s": heartbeat.uptime_seconds,
        "agent": heartbeat.agent_version,
        "nic": heartbeat.nic,
        "speed_mbps": heartbeat.link_speed_mbps,
        "duplex": heartbeat.duplex,
        "ip": heartbeat.ip,
        "mac": heartbeat.mac,
        "cpu_pct": heartbeat.cpu_percent,
        "mem_used": heartbeat.memory_used_bytes,
        "mem_total": heartbeat.memory_total_bytes,
        "disk_used": heartbeat.disk_used_bytes,
        "disk_total": heartbeat.disk_total_bytes,
    }
    if heartbeat.historical:
        data["hist"] = True
    return _dumps(data)


def encode_status(status: Status) -> bytes:
    """The JSON payload of a status message (what ``parse_status`` reads back)."""
    return _dumps(
        {
            "v": SCHEMA_VERSION,
            "kind": KIND_STATUS,
            "district": status.district,
            "school": status.school,
            "terminal": status.terminal,
            "state": status.state,
            "reason": status.reason,
            "boot": status.boot_id,
            "seq": status.seq,
            "bd_seq": status.birth_seq,
            "ts": status.observed_at,
            "agent": status.agent_version,
        }
    )


def encode_agent_status(status: AgentStatus) -> bytes:
    """The JSON payload of a school agent's status (what ``parse_agent_status`` reads back)."""
    data: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "kind": KIND_STATUS,
        "district": status.district,
        "school": status.school,
        _AGENT_ID_KEY: status.agent,
        "state": status.state,
        "reason": status.reason,
        "boot": status.boot_id,
        "seq": status.seq,
        "bd_seq": status.birth_seq,
        "ts": status.observed_at,
        "agent": status.agent_version,
    }
    if status.spool_pending is not None:
        data["spool_pending"] = status.spool_pending
    if status.spool_dropped is not None:
        data["spool_dropped"] = status.spool_dropped
    return _dumps(data)


def encode_poll(report: PollReport) -> bytes:
    """The JSON payload of a poll report (what ``parse_poll`` reads back)."""
    return _dumps(
        {
            "v": SCHEMA_VERSION,
            "kind": KIND_POLL,
            "district": report.district,
            "school": report.school,
            _AGENT_ID_KEY: report.agent,
            "boot": report.boot_id,
            "seq": report.seq,
            "ts": report.observed_at,
            "agent": report.agent_version,
            "hist": report.historical,
            "obs": report.observation,
        }
    )
