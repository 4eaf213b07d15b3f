"""IF-MIB parsing: speeds, names, text decoding, counters and missing values (table-driven)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edumon.domain import oids
from edumon.domain.ifmib import decode_text, parse_interfaces, speed_mbps
from edumon.domain.models import AdminStatus, Counter64, NoValue, OperStatus, SnmpValue

UP, DOWN = OperStatus.UP, OperStatus.DOWN
MISSING = object()  # the cell is absent from the walk altogether


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"GigabitEthernet0/0/1", "GigabitEthernet0/0/1"),
        ("三年级2班 教室".encode(), "三年级2班 教室"),
        ("三年级2班 教室".encode("gbk"), "三年级2班 教室"),
        ("上联 中心机房".encode("gb18030"), "上联 中心机房"),
        ("𠀀 rare".encode("gb18030"), "𠀀 rare"),  # a four-byte GB18030 sequence
        (b"eth0\x00", "eth0"),
        (b"  uplink to district \r\n", "uplink to district"),
        (b"", ""),
        (b"\xff\xfe bad \x80", "\ufffd\ufffd bad \ufffd"),
        # GBK cut in the middle of the last character: keep the readable Chinese.
        ("初二(4)班-希沃一体机".encode("gbk")[:-1], "初二(4)班-希沃一体\ufffd"),
    ],
    ids=[
        "ascii",
        "utf8",
        "gbk",
        "gb18030",
        "gb18030-4byte",
        "nul",
        "spaces",
        "empty",
        "invalid",
        "gbk-cut",
    ],
)
def test_decode_text(raw: bytes, text: str) -> None:
    assert decode_text(raw) == text


@given(st.binary(max_size=64))
def test_decode_text_never_raises(raw: bytes) -> None:
    assert isinstance(decode_text(raw), str)


@pytest.mark.parametrize(
    ("oper", "high", "speed", "expected"),
    [
        (UP, 1000, 1_000_000_000, 1000.0),
        (UP, 10_000, 4_294_967_295, 10_000.0),  # ifSpeed saturated: ifHighSpeed is the truth
        (UP, 100_000, 4_294_967_295, 100_000.0),
        (UP, 0, 100_000_000, 100.0),  # ifHighSpeed 0 on an up port: fall back to ifSpeed
        (UP, None, 10_000_000, 10.0),  # no ifXTable
        (UP, None, 4_294_967_295, 4294.967295),  # saturated and nothing better: a lower bound
        (UP, 0, 0, None),
        (UP, None, None, None),
        (DOWN, 0, 0, None),  # Huawei's down ports
        (DOWN, 1000, 1_000_000_000, None),  # not up: not a measurement
        (OperStatus.LOWER_LAYER_DOWN, 1000, 1_000_000_000, None),
        (OperStatus.DORMANT, 1000, 1_000_000_000, None),
        (OperStatus.UNKNOWN, 1000, 1_000_000_000, None),
    ],
)
def test_speed_rules(
    oper: OperStatus, high: int | None, speed: int | None, expected: float | None
) -> None:
    assert speed_mbps(oper, high, speed) == expected


def table(
    rows: dict[int, dict[tuple[int, ...], object]],
) -> dict[tuple[int, ...], dict[tuple[int, ...], SnmpValue]]:
    """Columns from rows: {ifIndex: {column: value}}; MISSING leaves the cell out."""
    columns: dict[tuple[int, ...], dict[tuple[int, ...], SnmpValue]] = {}
    for index, cells in rows.items():
        for column, value in cells.items():
            if value is not MISSING:
                columns.setdefault(column, {})[(index,)] = value  # type: ignore[assignment]
    return columns


def full_row(**over: object) -> dict[tuple[int, ...], object]:
    row: dict[tuple[int, ...], object] = {
        oids.IF_DESCR: b"GigabitEthernet0/0/1",
        oids.IF_NAME: b"GE0/0/1",
        oids.IF_ALIAS: "三年级2班".encode("gbk"),
        oids.IF_OPER_STATUS: 1,
        oids.IF_ADMIN_STATUS: 1,
        oids.IF_HIGH_SPEED: 1000,
        oids.IF_SPEED: 1_000_000_000,
        oids.IF_HC_IN_OCTETS: Counter64(2**40),
        oids.IF_HC_OUT_OCTETS: Counter64(2**33),
        oids.IF_IN_ERRORS: 3,
        oids.IF_OUT_ERRORS: 0,
    }
    names = {
        "descr": oids.IF_DESCR, "name": oids.IF_NAME, "alias": oids.IF_ALIAS,
        "oper": oids.IF_OPER_STATUS, "admin": oids.IF_ADMIN_STATUS, "high": oids.IF_HIGH_SPEED,
        "speed": oids.IF_SPEED, "hc_in": oids.IF_HC_IN_OCTETS, "hc_out": oids.IF_HC_OUT_OCTETS,
        "in32": oids.IF_IN_OCTETS, "out32": oids.IF_OUT_OCTETS, "in_err": oids.IF_IN_ERRORS,
    }  # fmt: skip
    for key, value in over.items():
        row[names[key]] = value
    return row


def test_full_row() -> None:
    (iface,) = parse_interfaces(table({5: full_row()}))
    assert iface.if_index == 5
    assert iface.name == "GE0/0/1"
    assert iface.descr == "GigabitEthernet0/0/1"
    assert iface.alias == "三年级2班"
    assert iface.oper_status is OperStatus.UP
    assert iface.admin_status is AdminStatus.UP
    assert iface.speed_mbps == 1000.0
    assert (iface.in_octets, iface.out_octets, iface.counter_bits) == (2**40, 2**33, 64)
    assert (iface.in_errors, iface.out_errors) == (3, 0)


@pytest.mark.parametrize(
    ("row", "name"),
    [
        (full_row(), "GE0/0/1"),
        (full_row(name=b""), "GigabitEthernet0/0/1"),
        (full_row(name=MISSING), "GigabitEthernet0/0/1"),
        (full_row(name=NoValue.NO_SUCH_INSTANCE), "GigabitEthernet0/0/1"),
        (full_row(name=MISSING, descr=MISSING), "ifIndex7"),
        (full_row(name=NoValue.NO_SUCH_OBJECT, descr=NoValue.NO_SUCH_OBJECT), "ifIndex7"),
        (full_row(name=b"Gi0/1\x00"), "Gi0/1"),
    ],
    ids=["ifName", "empty-ifName", "no-ifName", "nosuch-ifName", "nothing", "nosuch-both", "nul"],
)
def test_names(row: dict[tuple[int, ...], object], name: str) -> None:
    (iface,) = parse_interfaces(table({7: row}))
    assert iface.name == name


@pytest.mark.parametrize(
    ("row", "speed"),
    [
        (full_row(), 1000.0),
        (full_row(oper=2, high=0, speed=0), None),
        (full_row(oper=2), None),
        (full_row(high=0, speed=100_000_000), 100.0),
        (full_row(high=MISSING, speed=100_000_000), 100.0),
        (full_row(high=NoValue.NO_SUCH_INSTANCE, speed=10_000_000), 10.0),
        (full_row(high=b"1000", speed=10_000_000), 10.0),  # a wrong type is no value
        (full_row(high=10_000, speed=4_294_967_295), 10_000.0),
        (full_row(oper=MISSING), None),
    ],
    ids=["up", "down-huawei", "down", "hs-zero", "hs-missing", "hs-nosuch", "hs-bytes",
         "10g", "oper-missing"],
)  # fmt: skip
def test_speeds_in_rows(row: dict[tuple[int, ...], object], speed: float | None) -> None:
    (iface,) = parse_interfaces(table({1: row}))
    assert iface.speed_mbps == speed


@pytest.mark.parametrize(
    ("oper", "admin", "want_oper", "want_admin"),
    [
        (1, 1, OperStatus.UP, AdminStatus.UP),
        (2, 2, OperStatus.DOWN, AdminStatus.DOWN),
        (7, 1, OperStatus.LOWER_LAYER_DOWN, AdminStatus.UP),
        (99, 3, OperStatus.UNKNOWN, AdminStatus.TESTING),
        (MISSING, MISSING, OperStatus.UNKNOWN, AdminStatus.UP),
        (NoValue.NO_SUCH_INSTANCE, 0, OperStatus.UNKNOWN, AdminStatus.UP),
    ],
)
def test_statuses(
    oper: object, admin: object, want_oper: OperStatus, want_admin: AdminStatus
) -> None:
    (iface,) = parse_interfaces(table({1: full_row(oper=oper, admin=admin)}))
    assert iface.oper_status is want_oper
    assert iface.admin_status is want_admin


@pytest.mark.parametrize(
    ("row", "counters"),
    [
        (full_row(), (2**40, 2**33, 64)),
        (full_row(hc_in=MISSING, hc_out=MISSING, in32=123, out32=456), (123, 456, 32)),
        (full_row(hc_in=NoValue.NO_SUCH_INSTANCE, hc_out=MISSING, in32=1, out32=2), (1, 2, 32)),
        (full_row(hc_in=MISSING, hc_out=MISSING), (None, None, 64)),
        (full_row(hc_out=MISSING, in32=1, out32=2), (2**40, None, 64)),
    ],
    ids=["hc", "32-bit", "hc-nosuch", "none", "hc-half"],
)
def test_counters(row: dict[tuple[int, ...], object], counters: tuple[object, ...]) -> None:
    (iface,) = parse_interfaces(table({1: row}))
    assert (iface.in_octets, iface.out_octets, iface.counter_bits) == counters


def test_old_switch_without_if_x_table() -> None:
    rows: dict[int, dict[tuple[int, ...], object]] = {
        i: {
            oids.IF_DESCR: f"FastEthernet0/{i}".encode(),
            oids.IF_OPER_STATUS: 1 if i % 2 else 2,
            oids.IF_ADMIN_STATUS: 1,
            oids.IF_SPEED: 100_000_000,
            oids.IF_IN_OCTETS: 1000 * i,
            oids.IF_OUT_OCTETS: 2000 * i,
        }
        for i in (3, 1, 2)
    }
    ifaces = parse_interfaces(table(rows))
    assert [i.if_index for i in ifaces] == [1, 2, 3]
    assert [i.name for i in ifaces] == ["FastEthernet0/1", "FastEthernet0/2", "FastEthernet0/3"]
    assert [i.speed_mbps for i in ifaces] == [100.0, None, 100.0]
    assert all(i.counter_bits == 32 for i in ifaces)
    assert [i.in_octets for i in ifaces] == [1000, 2000, 3000]
    assert all(i.alias == "" for i in ifaces)


def test_rows_without_a_defining_column_and_odd_indices_are_ignored() -> None:
    columns = table({1: full_row()})
    columns[oids.IF_HC_IN_OCTETS][(9,)] = Counter64(5)  # a counter alone is no interface
    columns[oids.IF_DESCR][(1, 2)] = b"odd index"  # not an ifIndex
    ifaces = parse_interfaces(columns)
    assert [i.if_index for i in ifaces] == [1]


def test_no_columns_no_interfaces() -> None:
    assert parse_interfaces({}) == ()
    assert parse_interfaces({oids.IF_DESCR: {}, oids.IF_NAME: {}}) == ()
