"""Recorded switch data: net-snmp ``snmpwalk -On`` output parsed into a sorted, typed OID view."""

from __future__ import annotations

import bisect
import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

from edumon.domain.oids import Oid, format_oid, parse_oid


class Tag(enum.IntEnum):
    """The SNMP value types a walk can show, numbered by their BER tag on the wire."""

    INTEGER = 0x02
    OCTET_STRING = 0x04
    NULL = 0x05
    OBJECT_IDENTIFIER = 0x06
    IP_ADDRESS = 0x40
    COUNTER32 = 0x41
    GAUGE32 = 0x42
    TIMETICKS = 0x43
    OPAQUE = 0x44
    COUNTER64 = 0x46
    NO_SUCH_OBJECT = 0x80
    NO_SUCH_INSTANCE = 0x81
    END_OF_MIB_VIEW = 0x82


EXCEPTION_TAGS = frozenset({Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE, Tag.END_OF_MIB_VIEW})


@dataclass(frozen=True, slots=True)
class Typed:
    """A value with its SNMP type.

    ``value`` is an int for INTEGER/Counter32/Gauge32/TimeTicks/Counter64, bytes for
    OCTET STRING/IpAddress/Opaque, a tuple of ints for an OID and None for NULL and the
    SNMPv2 exception values.
    """

    tag: Tag
    value: int | bytes | tuple[int, ...] | None

    def __post_init__(self) -> None:
        expected: type | tuple[type, ...]
        if self.tag in (Tag.OCTET_STRING, Tag.IP_ADDRESS, Tag.OPAQUE):
            expected = bytes
        elif self.tag is Tag.OBJECT_IDENTIFIER:
            expected = tuple
        elif self.tag is Tag.NULL or self.tag in EXCEPTION_TAGS:
            expected = type(None)
        else:
            expected = int
        if not isinstance(self.value, expected) or isinstance(self.value, bool):
            raise TypeError(f"{self.tag.name} cannot hold {self.value!r}")


class WalkSyntaxError(ValueError):
    """A line of a walk file is not in net-snmp's output format."""


# OCTET STRING columns whose MIB display hint is not plain text: net-snmp prints them with the
# hint when MIBs are loaded, so the parser needs the hint to get the bytes back.
_PHYS_ADDRESS_COLUMNS: tuple[Oid, ...] = (
    (1, 3, 6, 1, 2, 1, 2, 2, 1, 6),  # IF-MIB ifPhysAddress (PhysAddress, "1x:")
)

_LINE = re.compile(r"^(\.?\d+(?:\.\d+)*) = (.*)$")
_TYPED = re.compile(r"^([A-Za-z][A-Za-z0-9 -]*?): ?(.*)$", re.DOTALL)
_ENUM = re.compile(r"^[A-Za-z][\w-]*\((-?\d+)\)$")
_TICKS = re.compile(r"^\((\d+)\)")
_NO_VALUES = {
    "No Such Object available on this agent at this OID": Tag.NO_SUCH_OBJECT,
    "No Such Instance currently exists at this OID": Tag.NO_SUCH_INSTANCE,
    "No more variables left in this MIB View (It is past the end of the MIB tree)": (
        Tag.END_OF_MIB_VIEW
    ),
}
_INTEGER_TAGS = {
    "INTEGER": Tag.INTEGER,
    "Counter32": Tag.COUNTER32,
    "Gauge32": Tag.GAUGE32,
    "Counter64": Tag.COUNTER64,
    "UInteger32": Tag.GAUGE32,
}
_INTEGER_RANGE = {
    Tag.INTEGER: (-(2**31), 2**31 - 1),
    Tag.COUNTER32: (0, 2**32 - 1),
    Tag.GAUGE32: (0, 2**32 - 1),
    Tag.TIMETICKS: (0, 2**32 - 1),
    Tag.COUNTER64: (0, 2**64 - 1),
}


def _unescape_quoted(body: str) -> str:
    # net-snmp escapes only the quote and the backslash inside a quoted string.
    return re.sub(r'\\(["\\])', r"\1", body)


def _hex_bytes(text: str, sep: str | None = None) -> bytes:
    parts = text.split(sep) if sep else text.split()
    return bytes(int(p, 16) for p in parts if p)


def _parse_value(oid: Oid, text: str) -> Typed:
    """Parse the right-hand side of ``OID = ...`` (continuation lines joined with newlines)."""
    if text == '""':
        return Typed(Tag.OCTET_STRING, b"")
    if text in _NO_VALUES:
        return Typed(_NO_VALUES[text], None)
    if text == "NULL":
        return Typed(Tag.NULL, None)
    match = _TYPED.match(text)
    if match is None:
        raise ValueError(f"unrecognised value {text[:40]!r}")
    kind, rest = match.group(1), match.group(2)
    if kind == "STRING":
        if len(rest) >= 2 and rest.startswith('"') and rest.endswith('"'):
            return Typed(Tag.OCTET_STRING, _unescape_quoted(rest[1:-1]).encode("utf-8"))
        if oid[:-1] in _PHYS_ADDRESS_COLUMNS and re.fullmatch(
            r"[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2})*", rest
        ):
            return Typed(Tag.OCTET_STRING, _hex_bytes(rest, ":"))
        # MIB-hinted DisplayString: printed raw, without quotes or escapes.
        return Typed(Tag.OCTET_STRING, rest.encode("utf-8"))
    if kind in ("Hex-STRING", "Opaque"):
        tag = Tag.OCTET_STRING if kind == "Hex-STRING" else Tag.OPAQUE
        return Typed(tag, _hex_bytes(rest))
    if kind in _INTEGER_TAGS:
        tag = _INTEGER_TAGS[kind]
        rest = rest.strip()
        enum_match = _ENUM.match(rest)
        number = int(enum_match.group(1) if enum_match else rest)
        low, high = _INTEGER_RANGE[tag]
        if not low <= number <= high:
            raise ValueError(f"{kind} value {number} is out of range")
        return Typed(tag, number)
    if kind == "Timeticks":
        ticks = _TICKS.match(rest.strip())
        if ticks is None:
            raise ValueError(f"Timeticks without (ticks): {rest[:40]!r}")
        return Typed(Tag.TIMETICKS, int(ticks.group(1)))
    if kind == "OID":
        return Typed(Tag.OBJECT_IDENTIFIER, parse_oid(rest))
    if kind == "IpAddress":
        octets = rest.strip().split(".")
        if len(octets) != 4:
            raise ValueError(f"not an IPv4 address: {rest!r}")
        return Typed(Tag.IP_ADDRESS, bytes(int(o) for o in octets))
    if kind == "Network Address":
        return Typed(Tag.IP_ADDRESS, _hex_bytes(rest, ":"))
    raise ValueError(f"unknown type {kind!r}")


def _records(text: str) -> Iterator[tuple[int, str, str]]:
    """Yield (line number, OID text, value text) with continuation lines folded in."""
    current: tuple[int, str, list[str]] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _LINE.match(line)
        # A quoted string that has not been closed swallows the next line whatever it holds.
        if match is not None and not (current is not None and _open_quote("\n".join(current[2]))):
            if current is not None:
                yield current[0], current[1], "\n".join(current[2])
            current = (number, match.group(1), [match.group(2)])
        elif current is None:
            if line.strip():
                raise WalkSyntaxError(f"line {number}: expected 'OID = TYPE: value'")
        else:
            current[2].append(line)
    if current is not None:
        yield current[0], current[1], "\n".join(current[2])


def _open_quote(value: str) -> bool:
    """True if a STRING value began with a quote that has not been closed yet."""
    if not value.startswith('STRING: "'):
        return False
    body = value[len('STRING: "') :]
    body = re.sub(r"\\.", "", body, flags=re.DOTALL)
    return '"' not in body


@dataclass(frozen=True)
class Recording:
    """A device's recorded MIB view: OIDs in SNMP order with their typed values."""

    name: str
    oids: tuple[Oid, ...]
    values: tuple[Typed, ...]

    def __post_init__(self) -> None:
        if len(self.oids) != len(self.values):
            raise ValueError("oids and values differ in length")
        if any(a >= b for a, b in zip(self.oids, self.oids[1:], strict=False)):
            raise ValueError("oids must be strictly increasing")

    def __len__(self) -> int:
        return len(self.oids)

    def __iter__(self) -> Iterator[tuple[Oid, Typed]]:
        return iter(zip(self.oids, self.values, strict=True))

    def get(self, oid: Oid) -> Typed | None:
        """The value recorded at exactly ``oid``, or None."""
        i = bisect.bisect_left(self.oids, oid)
        if i < len(self.oids) and self.oids[i] == oid:
            return self.values[i]
        return None

    def subtree(self, prefix: Oid) -> list[tuple[Oid, Typed]]:
        """Every recorded OID under ``prefix`` (not ``prefix`` itself), in order."""
        start = bisect.bisect_right(self.oids, prefix)
        out: list[tuple[Oid, Typed]] = []
        for i in range(start, len(self.oids)):
            if self.oids[i][: len(prefix)] != prefix:
                break
            out.append((self.oids[i], self.values[i]))
        return out

    def column(self, column: Oid) -> dict[int, Typed]:
        """A table column keyed by its single-integer index (e.g. ifIndex)."""
        return {
            oid[-1]: value for oid, value in self.subtree(column) if len(oid) == len(column) + 1
        }


def parse_walk(text: str, *, name: str = "<walk>") -> Recording:
    """Parse ``snmpwalk -On`` output into a Recording.

    Both ways net-snmp prints values are understood: with MIBs loaded (``INTEGER: up(1)``,
    unquoted strings, ``STRING: c4:b8:...`` for ifPhysAddress) and without (``INTEGER: 1``,
    ``STRING: "quoted"``, ``Hex-STRING: ...`` for anything not printable ASCII).
    Values continued over several lines (Hex-STRING wrapped at 16 bytes, strings holding line
    breaks) are joined. Entries carrying an exception (``No Such Instance ...``) are kept,
    except the ``No more variables ...`` line snmpwalk prints after the last OID.

    Raises:
        WalkSyntaxError: a line is malformed or an OID appears twice; the message names the line.
    """
    entries: dict[Oid, Typed] = {}
    for number, oid_text, value_text in _records(text):
        try:
            oid = parse_oid(oid_text)
            value = _parse_value(oid, value_text)
        except ValueError as exc:
            raise WalkSyntaxError(f"{name}:{number}: {exc}") from exc
        if oid in entries:
            # snmpwalk ends a v2c walk by repeating the last OID with "No more variables left
            # in this MIB View"; that line says where the walk stopped, not what the OID holds.
            if value.tag in EXCEPTION_TAGS:
                continue
            if entries[oid].tag not in EXCEPTION_TAGS:
                raise WalkSyntaxError(f"{name}:{number}: {format_oid(oid)} appears twice")
        entries[oid] = value
    oids = tuple(sorted(entries))
    return Recording(name, oids, tuple(entries[o] for o in oids))


def recording_names() -> list[str]:
    """Names of the recordings bundled with edumon (file names without ``.walk``)."""
    folder = resources.files("edumon.demo").joinpath("recordings")
    return sorted(
        p.name.removesuffix(".walk") for p in folder.iterdir() if p.name.endswith(".walk")
    )


def load_recording(name: str) -> Recording:
    """Load a bundled recording, e.g. ``load_recording("huawei-s5735")``.

    Raises:
        FileNotFoundError: no bundled recording has that name.
        WalkSyntaxError: the file is malformed.
    """
    path = resources.files("edumon.demo").joinpath("recordings", f"{name}.walk")
    if not path.is_file():
        raise FileNotFoundError(
            f"no recording named {name!r}; bundled: {', '.join(recording_names())}"
        )
    return parse_walk(path.read_text(encoding="utf-8"), name=name)
