"""IF-MIB parsing: walked ifTable/ifXTable columns → normalised InterfaceReadings (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from edumon.domain import oids
from edumon.domain.models import AdminStatus, InterfaceReading, NoValue, OperStatus, SnmpValue

Oid = tuple[int, ...]
Index = tuple[int, ...]
Columns = Mapping[Oid, Mapping[Index, SnmpValue]]

# Columns whose rows define which interfaces exist (counters and speeds alone do not).
_DEFINING = (oids.IF_DESCR, oids.IF_OPER_STATUS, oids.IF_ADMIN_STATUS, oids.IF_NAME)


def decode_text(raw: bytes) -> str:
    """Decode an agent's DisplayString: UTF-8, else GB18030 (GBK), else UTF-8 with replacement.

    Chinese switches commonly return ifAlias in GBK; some return invalid bytes. Trailing NULs
    (C string terminators some agents include) and surrounding whitespace are dropped. Never
    raises.
    """
    data = raw.rstrip(b"\x00")
    for encoding in ("utf-8", "gb18030"):
        try:
            return data.decode(encoding).strip()
        except UnicodeDecodeError:
            continue
    # Invalid in both (an alias cut mid-character): keep whichever reading loses less.
    readings = [data.decode(e, errors="replace") for e in ("utf-8", "gb18030")]
    return min(readings, key=lambda text: text.count("\ufffd")).strip()


def _int(value: SnmpValue) -> int | None:
    # NoValue, bytes, OIDs and NULL are not numbers; bool is never produced but is an int.
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return None


def _text(value: SnmpValue) -> str:
    return decode_text(value) if isinstance(value, bytes) else ""


def _oper(value: SnmpValue) -> OperStatus:
    n = _int(value)
    try:
        return OperStatus(n) if n is not None else OperStatus.UNKNOWN
    except ValueError:
        return OperStatus.UNKNOWN


def _admin(value: SnmpValue) -> AdminStatus:
    # A missing or unreadable admin status is taken as "up": the port then counts as meant to
    # be in service, so a dead link still raises its alert instead of being silenced as disabled.
    n = _int(value)
    try:
        return AdminStatus(n) if n is not None else AdminStatus.UP
    except ValueError:
        return AdminStatus.UP


def speed_mbps(oper: OperStatus, high_speed: int | None, if_speed: int | None) -> float | None:
    """Link speed in Mbit/s from ifHighSpeed (Mbit/s) and ifSpeed (bit/s).

    ifHighSpeed is the truth; ifSpeed counts only where ifHighSpeed is absent or 0 on an up
    port. A port that is not up has no speed (down Huawei ports report ifHighSpeed 0). A
    saturated ifSpeed (4294967295, "4.29 Gbit/s or more") is kept as that lower bound.
    """
    if oper is not OperStatus.UP:
        return None
    if high_speed is not None and high_speed > 0:
        return float(high_speed)
    if if_speed is not None and if_speed > 0:
        return if_speed / 1_000_000
    return None


def parse_interfaces(columns: Columns) -> tuple[InterfaceReading, ...]:
    """Turn walked IF-MIB columns into interface readings, ordered by ifIndex.

    Args:
        columns: ``{column OID: {index: value}}`` as a table walk returns it, for any subset of
            the ifTable/ifXTable columns in :mod:`edumon.domain.oids`. Missing columns, missing
            cells and noSuchObject/noSuchInstance values are missing values, never errors.

    Returns:
        One reading per ifIndex seen in ifDescr, ifOperStatus, ifAdminStatus or ifName. The
        name is ifName, else ifDescr, else ``ifIndex<n>``. Octet counters are the 64-bit HC
        ones where the interface has them (``counter_bits=64``), else ifInOctets/ifOutOctets
        (``counter_bits=32``).
    """
    empty: Mapping[Index, SnmpValue] = {}

    def col(oid: Oid) -> Mapping[Index, SnmpValue]:
        return columns.get(oid, empty)

    descr, oper_c, admin_c = col(oids.IF_DESCR), col(oids.IF_OPER_STATUS), col(oids.IF_ADMIN_STATUS)
    name_c, alias_c = col(oids.IF_NAME), col(oids.IF_ALIAS)
    high_c, speed_c = col(oids.IF_HIGH_SPEED), col(oids.IF_SPEED)
    hc_in, hc_out = col(oids.IF_HC_IN_OCTETS), col(oids.IF_HC_OUT_OCTETS)
    in32, out32 = col(oids.IF_IN_OCTETS), col(oids.IF_OUT_OCTETS)
    in_err, out_err = col(oids.IF_IN_ERRORS), col(oids.IF_OUT_ERRORS)

    indices: set[int] = set()
    for column in _DEFINING:
        for index, value in col(column).items():
            if len(index) == 1 and not isinstance(value, NoValue):
                indices.add(index[0])

    readings = []
    for n in sorted(indices):
        key = (n,)
        oper = _oper(oper_c.get(key))
        descr_text = _text(descr.get(key))
        name = _text(name_c.get(key)) or descr_text or f"ifIndex{n}"
        hc = (_int(hc_in.get(key)), _int(hc_out.get(key)))
        if hc != (None, None):
            in_octets, out_octets, bits = hc[0], hc[1], 64
        else:
            c32 = (_int(in32.get(key)), _int(out32.get(key)))
            in_octets, out_octets = c32
            bits = 32 if c32 != (None, None) else 64
        readings.append(
            InterfaceReading(
                if_index=n,
                name=name,
                alias=_text(alias_c.get(key)),
                descr=descr_text,
                oper_status=oper,
                admin_status=_admin(admin_c.get(key)),
                speed_mbps=speed_mbps(oper, _int(high_c.get(key)), _int(speed_c.get(key))),
                in_octets=in_octets,
                out_octets=out_octets,
                counter_bits=bits,
                in_errors=_int(in_err.get(key)),
                out_errors=_int(out_err.get(key)),
            )
        )
    return tuple(readings)
