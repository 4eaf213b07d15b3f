"""One switch poll (an ``Observation``) as the JSON object a school agent's ``poll`` carries.

The school agent encodes what the shared SNMP poller returned; the collector decodes it back
into the very same ``Observation`` (docs/wire-protocol.md, "School agent"). Pure: no I/O.
Decoding checks types and ranges, so a school's agent cannot hand the collector a value the
poller could never have produced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from edumon.domain.models import (
    AdminStatus,
    Counter64,
    DeviceReading,
    DeviceUnreachable,
    InterfaceReading,
    Observation,
    OperStatus,
)

_MAX_U64: Final = 2**64 - 1
_MAX_TEXT: Final = 1024
_MAX_INTERFACES: Final = 4096
_MAX_TS: Final = 2.0**33


@dataclass(frozen=True, slots=True)
class TerminalProbe:
    """A school agent's probe of a terminal that has no agent of its own."""

    terminal: str
    at: float
    up: bool
    method: str
    rtt_seconds: float | None


def encode_probe(probe: TerminalProbe) -> dict[str, Any]:
    """The JSON-ready form of a probe result."""
    return {
        "type": "probe",
        "terminal": probe.terminal,
        "at": probe.at,
        "up": probe.up,
        "method": probe.method,
        "rtt": probe.rtt_seconds,
    }


class ObservationFormatError(ValueError):
    """The ``obs`` object of a poll report is not an observation (names the field)."""


def encode(obs: Observation) -> dict[str, Any]:
    """The JSON-ready form of a poll result."""
    if isinstance(obs, DeviceUnreachable):
        return {
            "type": "unreachable",
            "device": obs.device_id,
            "at": obs.at,
            "reason": obs.reason,
            "poll_seconds": obs.poll_seconds,
        }
    return {
        "type": "reading",
        "device": obs.device_id,
        "at": obs.at,
        "uptime": obs.sys_uptime_ticks,
        "name": obs.sys_name,
        "descr": obs.sys_descr,
        "poll_seconds": obs.poll_seconds,
        "varbinds": obs.varbinds,
        "hr_uptime": obs.hr_uptime_ticks,
        "engine_boots": obs.engine_boots,
        "engine_time": obs.engine_time,
        # Positional rows: a 48-port switch is ~5 KB rather than ~12 KB with keys.
        "ifs": [
            [
                i.if_index,
                i.name,
                i.alias,
                i.descr,
                int(i.oper_status),
                int(i.admin_status),
                i.speed_mbps,
                i.in_octets,
                i.out_octets,
                i.counter_bits,
                i.in_errors,
                i.out_errors,
            ]
            for i in obs.interfaces
        ],
    }


def _bad(field: str) -> ObservationFormatError:
    return ObservationFormatError(f"obs.{field}")


def _text(data: dict[str, Any], key: str, *, empty: bool = True) -> str:
    value = data.get(key)
    if type(value) is not str or len(value) > _MAX_TEXT or (not empty and not value):
        raise _bad(key)
    return value


def _number(value: object, field: str, high: float = _MAX_TS) -> float:
    if type(value) not in (int, float):
        raise _bad(field)
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number) or not 0.0 <= number <= high:
        raise _bad(field)
    return number


def _opt_uint(value: object, field: str, high: int = _MAX_U64) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= high:
        raise _bad(field)
    return value


def _interface(row: object, n: int) -> InterfaceReading:
    if type(row) is not list or len(row) != 12:
        raise _bad(f"ifs[{n}]")
    index, name, alias, descr, oper, admin, speed, in_o, out_o, bits, in_e, out_e = row
    for value, what in ((name, "name"), (alias, "alias"), (descr, "descr")):
        if type(value) is not str or len(value) > _MAX_TEXT:
            raise _bad(f"ifs[{n}].{what}")
    if bits not in (32, 64) or type(bits) is not int:
        raise _bad(f"ifs[{n}].bits")
    try:
        oper_status = OperStatus(oper)
        admin_status = AdminStatus(admin)
    except ValueError:
        raise _bad(f"ifs[{n}].status") from None
    in_octets = _opt_uint(in_o, f"ifs[{n}].in_octets")
    out_octets = _opt_uint(out_o, f"ifs[{n}].out_octets")
    if bits == 64:
        # The poller keeps 64-bit counters as Counter64 so that 32-bit wrap rules skip them.
        in_octets = None if in_octets is None else Counter64(in_octets)
        out_octets = None if out_octets is None else Counter64(out_octets)
    return InterfaceReading(
        if_index=int(_number(index, f"ifs[{n}].index", 2**31)),
        name=name,
        alias=alias,
        descr=descr,
        oper_status=oper_status,
        admin_status=admin_status,
        speed_mbps=None if speed is None else _number(speed, f"ifs[{n}].speed", 1e9),
        in_octets=in_octets,
        out_octets=out_octets,
        counter_bits=bits,
        in_errors=_opt_uint(in_e, f"ifs[{n}].in_errors"),
        out_errors=_opt_uint(out_e, f"ifs[{n}].out_errors"),
    )


def decode(data: dict[str, Any]) -> Observation | TerminalProbe:
    """The observation (or terminal probe) an agent encoded.

    Raises:
        ObservationFormatError: naming the first field that is wrong.
    """
    kind = data.get("type")
    if kind == "probe":
        up = data.get("up")
        method = data.get("method")
        rtt = data.get("rtt")
        if type(up) is not bool:
            raise _bad("up")
        if method not in ("icmp", "tcp"):
            raise _bad("method")
        return TerminalProbe(
            terminal=_text(data, "terminal", empty=False),
            at=_number(data.get("at"), "at"),
            up=up,
            method=str(method),
            rtt_seconds=None if rtt is None else _number(rtt, "rtt", 3600.0),
        )
    device = _text(data, "device", empty=False)
    at = _number(data.get("at"), "at")
    poll_seconds = _number(data.get("poll_seconds", 0.0), "poll_seconds", 3600.0)
    if kind == "unreachable":
        return DeviceUnreachable(device, at, _text(data, "reason"), poll_seconds)
    if kind != "reading":
        raise _bad("type")
    rows = data.get("ifs")
    if type(rows) is not list or len(rows) > _MAX_INTERFACES:
        raise _bad("ifs")
    return DeviceReading(
        device_id=device,
        at=at,
        sys_uptime_ticks=_opt_uint(data.get("uptime"), "uptime", 2**32 - 1),
        sys_name=_text(data, "name"),
        sys_descr=_text(data, "descr"),
        interfaces=tuple(_interface(row, n) for n, row in enumerate(rows)),
        poll_seconds=poll_seconds,
        varbinds=_opt_uint(data.get("varbinds", 0), "varbinds") or 0,
        hr_uptime_ticks=_opt_uint(data.get("hr_uptime"), "hr_uptime", 2**32 - 1),
        engine_boots=_opt_uint(data.get("engine_boots"), "engine_boots", 2**31 - 1),
        engine_time=_opt_uint(data.get("engine_time"), "engine_time", 2**31 - 1),
    )
