"""The walk-file parser, and what the bundled vendor recordings hold."""

from __future__ import annotations

import pytest

from edumon.demo.recording import (
    Recording,
    Tag,
    Typed,
    WalkSyntaxError,
    load_recording,
    parse_walk,
    recording_names,
)

IF_DESCR = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
IF_SPEED = (1, 3, 6, 1, 2, 1, 2, 2, 1, 5)
IF_OPER_STATUS = (1, 3, 6, 1, 2, 1, 2, 2, 1, 8)
IF_IN_OCTETS = (1, 3, 6, 1, 2, 1, 2, 2, 1, 10)
IF_OUT_OCTETS = (1, 3, 6, 1, 2, 1, 2, 2, 1, 16)
IF_X_ENTRY = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
IF_NAME = (*IF_X_ENTRY, 1)
IF_HC_IN_OCTETS = (*IF_X_ENTRY, 6)
IF_HC_OUT_OCTETS = (*IF_X_ENTRY, 10)
IF_HIGH_SPEED = (*IF_X_ENTRY, 15)
IF_ALIAS = (*IF_X_ENTRY, 18)
SYS_DESCR_0 = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_UPTIME_0 = (1, 3, 6, 1, 2, 1, 1, 3, 0)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # net-snmp with MIBs loaded
        (".1.3.6.1.2.1.2.2.1.8.5 = INTEGER: up(1)", Typed(Tag.INTEGER, 1)),
        (".1.3.6.1.2.1.2.2.1.3.5 = INTEGER: ethernetCsmacd(6)", Typed(Tag.INTEGER, 6)),
        (
            ".1.3.6.1.2.1.31.1.1.1.1.3 = STRING: GigabitEthernet0/0/1",
            Typed(Tag.OCTET_STRING, b"GigabitEthernet0/0/1"),
        ),
        (
            ".1.3.6.1.2.1.31.1.1.1.18.3 = STRING: 三年级2班",
            Typed(Tag.OCTET_STRING, "三年级2班".encode()),
        ),
        (
            ".1.3.6.1.2.1.2.2.1.6.5 = STRING: c4:b8:b4:1a:2b:30",
            Typed(Tag.OCTET_STRING, bytes.fromhex("c4b8b41a2b30")),
        ),
        (
            ".1.3.6.1.2.1.2.2.1.6.5 = STRING: 0:e0:fc:9:a:b",
            Typed(Tag.OCTET_STRING, bytes.fromhex("00e0fc090a0b")),
        ),
        (".1.3.6.1.2.1.2.2.1.6.1 = STRING: ", Typed(Tag.OCTET_STRING, b"")),
        # ... and without (Debian's default)
        ('.1.3.6.1.2.1.1.5.0 = STRING: "vm"', Typed(Tag.OCTET_STRING, b"vm")),
        (
            '.1.3.6.1.2.1.1.4.0 = STRING: "\\"quoted\\" \\\\ thing"',
            Typed(Tag.OCTET_STRING, b'"quoted" \\ thing'),
        ),
        ('.1.3.6.1.2.1.2.2.1.6.1 = ""', Typed(Tag.OCTET_STRING, b"")),
        (".1.3.6.1.2.1.2.2.1.8.5 = INTEGER: 2", Typed(Tag.INTEGER, 2)),
        (
            ".1.3.6.1.2.1.2.2.1.6.2 = Hex-STRING: CA 2C 10 D9 87 15 ",
            Typed(Tag.OCTET_STRING, bytes.fromhex("ca2c10d98715")),
        ),
        (".1.3.6.1.2.1.31.1.1.1.15.5 = Gauge32: 1000", Typed(Tag.GAUGE32, 1000)),
        (".1.3.6.1.2.1.2.2.1.10.5 = Counter32: 4294967295", Typed(Tag.COUNTER32, 2**32 - 1)),
        (
            ".1.3.6.1.2.1.31.1.1.1.6.5 = Counter64: 18446744073709551615",
            Typed(Tag.COUNTER64, 2**64 - 1),
        ),
        (".1.3.6.1.2.1.1.3.0 = Timeticks: (123) 0:00:01.23", Typed(Tag.TIMETICKS, 123)),
        (
            ".1.3.6.1.2.1.1.3.0 = Timeticks: (318276543) 36 days, 20:06:05.43",
            Typed(Tag.TIMETICKS, 318276543),
        ),
        (
            ".1.3.6.1.2.1.1.2.0 = OID: .1.3.6.1.4.1.2011.2.23.615",
            Typed(Tag.OBJECT_IDENTIFIER, (1, 3, 6, 1, 4, 1, 2011, 2, 23, 615)),
        ),
        (".1.3.6.1.2.1.2.2.1.22.1 = OID: .0.0", Typed(Tag.OBJECT_IDENTIFIER, (0, 0))),
        (
            ".1.3.6.1.2.1.4.20.1.1.10.1.1.1 = IpAddress: 10.1.1.1",
            Typed(Tag.IP_ADDRESS, bytes([10, 1, 1, 1])),
        ),
        (
            ".1.3.6.1.2.1.1.3.1 = No Such Instance currently exists at this OID",
            Typed(Tag.NO_SUCH_INSTANCE, None),
        ),
        (
            ".1.3.6.1.2.1.99.1.0 = No Such Object available on this agent at this OID",
            Typed(Tag.NO_SUCH_OBJECT, None),
        ),
    ],
)
def test_parses_each_value_form(line: str, expected: Typed) -> None:
    (entry,) = list(parse_walk(line + "\n"))
    assert entry[1] == expected
    assert entry[0] == tuple(int(p) for p in line.split(" = ")[0].strip(".").split("."))


def test_joins_values_continued_over_several_lines() -> None:
    text = (
        ".1.3.6.1.2.1.1.1.0 = STRING: S5735-L48T4S-A1\n"
        "Huawei Versatile Routing Platform Software\n"
        '.1.3.6.1.2.1.1.4.0 = STRING: "first line\n'
        'x = "not an OID line\n'
        'last \\"line\\""\n'
        ".1.3.6.1.2.1.1.6.0 = Hex-STRING: E4 B8 89 E5 B9 B4 E7 BA A7 32 E7 8F AD 20 6D 61 \n"
        "63 68 69 6E 65 \n"
    )
    rec = parse_walk(text)
    assert rec.get(SYS_DESCR_0) == Typed(
        Tag.OCTET_STRING, b"S5735-L48T4S-A1\nHuawei Versatile Routing Platform Software"
    )
    assert rec.get((1, 3, 6, 1, 2, 1, 1, 4, 0)) == Typed(
        Tag.OCTET_STRING, b'first line\nx = "not an OID line\nlast "line"'
    )
    assert rec.get((1, 3, 6, 1, 2, 1, 1, 6, 0)) == Typed(
        Tag.OCTET_STRING, "三年级2班 machine".encode()
    )


def test_sorts_and_ignores_the_end_of_walk_marker() -> None:
    text = (
        ".1.3.6.1.2.1.1.5.0 = STRING: b\n"
        ".1.3.6.1.2.1.1.10.0 = INTEGER: 3\n"
        ".1.3.6.1.2.1.1.1.0 = STRING: a\n"
        ".1.3.6.1.2.1.1.10.0 = No more variables left in this MIB View "
        "(It is past the end of the MIB tree)\n"
    )
    rec = parse_walk(text)
    assert rec.oids == (
        (1, 3, 6, 1, 2, 1, 1, 1, 0),
        (1, 3, 6, 1, 2, 1, 1, 5, 0),
        (1, 3, 6, 1, 2, 1, 1, 10, 0),
    )
    assert rec.get((1, 3, 6, 1, 2, 1, 1, 10, 0)) == Typed(Tag.INTEGER, 3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("garbage before anything\n", "line 1"),
        (
            ".1.3.6.1.2.1.1.7.0 = INTEGER: 1\n.1.3.6.1.2.1.1.7.0 = INTEGER: 2\n",
            ":2: 1.3.6.1.2.1.1.7.0 appears twice",
        ),
        (".1.3.6.1.2.1.1.7.0 = INTEGER: many\n", ":1:"),
        (".1.3.6.1.2.1.1.7.0 = Counter32: 4294967296\n", "out of range"),
        (".1.3.6.1.2.1.1.7.0 = Frobnicator: 1\n", "unknown type"),
        (".1.3.6.1.2.1.1.3.0 = Timeticks: 0:00:01.23\n", "Timeticks"),
        (".1.3.6.1.2.1.4.20.1.1.1 = IpAddress: 10.1.1\n", "IPv4"),
    ],
)
def test_rejects_malformed_walks_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(WalkSyntaxError, match=message):
        parse_walk(text, name="bad.walk")


def test_typed_rejects_a_value_of_the_wrong_kind() -> None:
    with pytest.raises(TypeError):
        Typed(Tag.COUNTER32, b"1")
    with pytest.raises(TypeError):
        Typed(Tag.OCTET_STRING, 1)


def test_recording_lookups() -> None:
    rec = parse_walk(
        ".1.3.6.1.2.1.2.2.1.2.1 = STRING: a\n.1.3.6.1.2.1.2.2.1.2.3 = STRING: c\n"
        ".1.3.6.1.2.1.2.2.1.3.1 = INTEGER: 6\n"
    )
    assert rec.get(IF_DESCR) is None
    assert rec.column(IF_DESCR) == {
        1: Typed(Tag.OCTET_STRING, b"a"),
        3: Typed(Tag.OCTET_STRING, b"c"),
    }
    assert [oid for oid, _ in rec.subtree((1, 3, 6, 1, 2, 1, 2, 2, 1))] == list(rec.oids)
    assert len(rec) == 3
    with pytest.raises(ValueError, match="increasing"):
        Recording("x", (IF_DESCR, IF_DESCR), (Typed(Tag.INTEGER, 1), Typed(Tag.INTEGER, 1)))


def test_bundled_recordings_are_listed_and_an_unknown_name_says_which_exist() -> None:
    assert recording_names() == ["h3c-s5130", "huawei-s5735", "ruijie-s2910"]
    with pytest.raises(FileNotFoundError, match="huawei-s5735"):
        load_recording("cisco-9300")


@pytest.mark.parametrize("name", ["h3c-s5130", "huawei-s5735", "ruijie-s2910"])
def test_recordings_are_self_consistent(name: str) -> None:
    rec = load_recording(name)
    assert rec.get(SYS_UPTIME_0) is not None
    descr = rec.column(IF_DESCR)
    assert len(descr) >= 28
    # The 32-bit octet counters are the 64-bit ones modulo 2^32, as on the real switch.
    for low, high in ((IF_IN_OCTETS, IF_HC_IN_OCTETS), (IF_OUT_OCTETS, IF_HC_OUT_OCTETS)):
        for if_index, wide in rec.column(high).items():
            assert isinstance(wide.value, int)
            assert rec.column(low)[if_index].value == wide.value % 2**32


def test_huawei_reports_speed_zero_on_down_ports_and_utf8_aliases() -> None:
    rec = load_recording("huawei-s5735")
    assert b"Huawei Versatile Routing Platform" in _bytes(rec.get(SYS_DESCR_0))
    oper = rec.column(IF_OPER_STATUS)
    high = rec.column(IF_HIGH_SPEED)
    down = [
        i
        for i, v in oper.items()
        if v.value == 2 and _bytes(rec.column(IF_NAME)[i]).startswith(b"Gig")
    ]
    assert down
    assert all(high[i].value == 0 for i in down)
    aliases = {_bytes(v).decode("utf-8") for v in rec.column(IF_ALIAS).values()}
    assert "三年级2班" in aliases
    assert {v.value for i, v in high.items() if oper[i].value == 1} >= {100, 1000, 10000}


def test_h3c_stores_gbk_aliases_one_of_them_cut_mid_character() -> None:
    rec = load_recording("h3c-s5130")
    raw = [_bytes(v) for v in rec.column(IF_ALIAS).values()]
    gbk = []
    broken = []
    for alias in raw:
        try:
            alias.decode("utf-8")
        except UnicodeDecodeError:
            try:
                gbk.append(alias.decode("gbk"))
            except UnicodeDecodeError:
                broken.append(alias)
    assert "初一(1)班" in gbk
    assert len(broken) == 1
    assert broken[0].decode("gbk", errors="replace").startswith("初二(4)班-希沃一体")


def test_ruijie_has_no_ifxtable_and_names_ports_in_ifdescr() -> None:
    rec = load_recording("ruijie-s2910")
    assert rec.subtree(IF_X_ENTRY) == []
    names = {_bytes(v).decode() for v in rec.column(IF_DESCR).values()}
    assert "GigabitEthernet 0/25" in names
    speeds = {v.value for v in rec.column(IF_SPEED).values()}
    assert {10_000_000, 100_000_000, 1_000_000_000} <= speeds
    assert all(v.tag is Tag.COUNTER32 for v in rec.column(IF_IN_OCTETS).values())


def _bytes(typed: Typed | None) -> bytes:
    assert typed is not None
    assert isinstance(typed.value, bytes)
    return typed.value
