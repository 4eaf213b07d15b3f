"""OID constants (tuples of ints) for what edumon reads: SNMPv2-MIB system, IF-MIB, USM stats."""

from __future__ import annotations

Oid = tuple[int, ...]

# SNMPv2-MIB system group (scalars: the instance is ".0").
SYSTEM: Oid = (1, 3, 6, 1, 2, 1, 1)
SYS_DESCR: Oid = (*SYSTEM, 1)
SYS_OBJECT_ID: Oid = (*SYSTEM, 2)
SYS_UPTIME: Oid = (*SYSTEM, 3)
SYS_NAME: Oid = (*SYSTEM, 5)
SYS_DESCR_0: Oid = (*SYS_DESCR, 0)
SYS_UPTIME_0: Oid = (*SYS_UPTIME, 0)
SYS_NAME_0: Oid = (*SYS_NAME, 0)

# Optional clocks that tell a reboot from an agent restart or a misbehaving sysUpTime.
# SNMP-FRAMEWORK-MIB snmpEngine group, and HOST-RESOURCES-MIB hrSystemUptime.
SNMP_ENGINE_BOOTS_0: Oid = (1, 3, 6, 1, 6, 3, 10, 2, 1, 2, 0)
SNMP_ENGINE_TIME_0: Oid = (1, 3, 6, 1, 6, 3, 10, 2, 1, 3, 0)
HR_SYSTEM_UPTIME_0: Oid = (1, 3, 6, 1, 2, 1, 25, 1, 1, 0)

# IF-MIB ifTable (ifEntry columns; the index is ifIndex).
IF_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IF_INDEX: Oid = (*IF_ENTRY, 1)
IF_DESCR: Oid = (*IF_ENTRY, 2)
IF_TYPE: Oid = (*IF_ENTRY, 3)
IF_SPEED: Oid = (*IF_ENTRY, 5)
IF_ADMIN_STATUS: Oid = (*IF_ENTRY, 7)
IF_OPER_STATUS: Oid = (*IF_ENTRY, 8)
IF_IN_OCTETS: Oid = (*IF_ENTRY, 10)
IF_IN_ERRORS: Oid = (*IF_ENTRY, 14)
IF_OUT_OCTETS: Oid = (*IF_ENTRY, 16)
IF_OUT_ERRORS: Oid = (*IF_ENTRY, 20)

# IF-MIB ifXTable (ifXEntry columns; same ifIndex). Old switches lack this table.
IF_X_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
IF_NAME: Oid = (*IF_X_ENTRY, 1)
IF_HC_IN_OCTETS: Oid = (*IF_X_ENTRY, 6)
IF_HC_OUT_OCTETS: Oid = (*IF_X_ENTRY, 10)
IF_HIGH_SPEED: Oid = (*IF_X_ENTRY, 15)
IF_ALIAS: Oid = (*IF_X_ENTRY, 18)

# Column sets the poller walks.
IF_TABLE_COLUMNS: tuple[Oid, ...] = (
    IF_DESCR,
    IF_OPER_STATUS,
    IF_ADMIN_STATUS,
    IF_SPEED,
    IF_IN_ERRORS,
    IF_OUT_ERRORS,
)
IF_X_COLUMNS: tuple[Oid, ...] = (IF_NAME, IF_ALIAS, IF_HIGH_SPEED)
HC_COUNTER_COLUMNS: tuple[Oid, ...] = (IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS)
COUNTER32_COLUMNS: tuple[Oid, ...] = (IF_IN_OCTETS, IF_OUT_OCTETS)

# SNMP-USER-BASED-SM-MIB usmStats: the OIDs an agent's Report PDU names to say why it refused.
USM_STATS: Oid = (1, 3, 6, 1, 6, 3, 15, 1, 1)
USM_STATS_UNSUPPORTED_SEC_LEVELS: Oid = (*USM_STATS, 1, 0)
USM_STATS_NOT_IN_TIME_WINDOWS: Oid = (*USM_STATS, 2, 0)
USM_STATS_UNKNOWN_USER_NAMES: Oid = (*USM_STATS, 3, 0)
USM_STATS_UNKNOWN_ENGINE_IDS: Oid = (*USM_STATS, 4, 0)
USM_STATS_WRONG_DIGESTS: Oid = (*USM_STATS, 5, 0)
USM_STATS_DECRYPTION_ERRORS: Oid = (*USM_STATS, 6, 0)


_TABLES: tuple[tuple[Oid, str], ...] = ((IF_ENTRY, "ifTable"), (IF_X_ENTRY, "ifXTable"))


def table_name(column: Oid) -> str:
    """The MIB table a column belongs to (``ifTable``, ``ifXTable``), else the dotted OID."""
    for entry, name in _TABLES:
        if column[: len(entry)] == entry:
            return name
    return format_oid(column)


def format_oid(oid: Oid) -> str:
    """Render an OID in dotted form, e.g. ``1.3.6.1.2.1.1.3.0``."""
    return ".".join(map(str, oid))


def parse_oid(text: str) -> Oid:
    """Parse a dotted OID (a leading dot is allowed).

    Raises:
        ValueError: the text is not a dotted sequence of non-negative integers.
    """
    parts = text.strip().lstrip(".").split(".")
    if not parts or any(not p.isdigit() for p in parts):
        raise ValueError(f"not a dotted OID: {text!r}")
    return tuple(int(p) for p in parts)
