"""A lean BER codec for SNMP v1/v2c/v3 messages, both directions (manager and agent side).

The poller's hot path decodes Response PDUs carrying hundreds of varbinds, so decoding works on
``bytes`` indexing with the common shapes (short lengths, single-byte OID arcs) handled inline.
Every malformed input raises :class:`edumon.errors.SnmpProtocolError`; no IndexError or
ValueError leaks out of :func:`decode_message`, :func:`decode_scoped_pdu` or :func:`decode_pdu`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edumon.domain.models import Counter64, NoValue, SnmpValue
from edumon.errors import SnmpProtocolError

Oid = tuple[int, ...]
VarBind = tuple[Oid, SnmpValue]

# Universal and SNMP application tags.
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
SEQUENCE = 0x30
IP_ADDRESS = 0x40
COUNTER32 = 0x41
GAUGE32 = 0x42
TIMETICKS = 0x43
OPAQUE = 0x44
COUNTER64 = 0x46
NO_SUCH_OBJECT = 0x80
NO_SUCH_INSTANCE = 0x81
END_OF_MIB_VIEW = 0x82

# Tags seen in the wild that we tolerate on decode: BIT STRING, NsapAddress (both as bytes) and
# UInteger32 (as int); they never appear in IF-MIB but must not fail a whole response.
_BIT_STRING = 0x03
_NSAP_ADDRESS = 0x45
_UINTEGER32 = 0x47

# SNMP version field values.
VERSION_1 = 0
VERSION_2C = 1
VERSION_3 = 3

# msgFlags bits (RFC 3412) and the USM security model number (RFC 3414).
FLAG_AUTH = 0x01
FLAG_PRIV = 0x02
FLAG_REPORTABLE = 0x04
SECURITY_MODEL_USM = 3

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1


class PduType(enum.IntEnum):
    """PDU tags (context-specific, constructed)."""

    GET = 0xA0
    GET_NEXT = 0xA1
    RESPONSE = 0xA2
    SET = 0xA3
    GET_BULK = 0xA5
    INFORM = 0xA6
    TRAP = 0xA7
    REPORT = 0xA8


class ErrorStatus(enum.IntEnum):
    """PDU error-status values (RFC 3416)."""

    NO_ERROR = 0
    TOO_BIG = 1
    NO_SUCH_NAME = 2
    BAD_VALUE = 3
    READ_ONLY = 4
    GEN_ERR = 5
    NO_ACCESS = 6
    WRONG_TYPE = 7
    WRONG_LENGTH = 8
    WRONG_ENCODING = 9
    WRONG_VALUE = 10
    NO_CREATION = 11
    INCONSISTENT_VALUE = 12
    RESOURCE_UNAVAILABLE = 13
    COMMIT_FAILED = 14
    UNDO_FAILED = 15
    AUTHORIZATION_ERROR = 16
    NOT_WRITABLE = 17
    INCONSISTENT_NAME = 18


def error_status_name(status: int) -> str:
    """A readable name for an error-status value, e.g. ``tooBig`` (or the number if unknown)."""
    try:
        words = ErrorStatus(status).name.lower().split("_")
    except ValueError:
        return f"error-status {status}"
    return words[0] + "".join(w.capitalize() for w in words[1:])


@dataclass(frozen=True, slots=True)
class Typed:
    """A value with an explicit SNMP type, for encoding (an int alone encodes as INTEGER).

    Use the constructors :func:`counter32`, :func:`gauge32`, :func:`timeticks`,
    :func:`ip_address` and :func:`opaque`, or give the tag directly.
    """

    tag: int
    value: int | bytes


def counter32(value: int) -> Typed:
    """A Counter32 value for encoding."""
    return Typed(COUNTER32, value)


def gauge32(value: int) -> Typed:
    """A Gauge32 (Unsigned32) value for encoding."""
    return Typed(GAUGE32, value)


def timeticks(value: int) -> Typed:
    """A TimeTicks value (hundredths of a second) for encoding."""
    return Typed(TIMETICKS, value)


def ip_address(value: bytes) -> Typed:
    """An IpAddress value (four octets) for encoding."""
    return Typed(IP_ADDRESS, value)


def opaque(value: bytes) -> Typed:
    """An Opaque value for encoding."""
    return Typed(OPAQUE, value)


EncodableValue = SnmpValue | Typed
EncodableVarBind = tuple[Oid, EncodableValue]


@dataclass(frozen=True, slots=True)
class Pdu:
    """A PDU. For GetBulkRequest the error fields carry non-repeaters and max-repetitions."""

    type: PduType
    request_id: int
    error_status: int = 0
    error_index: int = 0
    varbinds: Sequence[EncodableVarBind] = ()

    @property
    def non_repeaters(self) -> int:
        """GetBulkRequest non-repeaters (shares the error-status field)."""
        return self.error_status

    @property
    def max_repetitions(self) -> int:
        """GetBulkRequest max-repetitions (shares the error-index field)."""
        return self.error_index


def get_request(request_id: int, oids: Iterable[Oid]) -> Pdu:
    """A GetRequest PDU for the given OIDs."""
    return Pdu(PduType.GET, request_id, 0, 0, [(o, None) for o in oids])


def get_next_request(request_id: int, oids: Iterable[Oid]) -> Pdu:
    """A GetNextRequest PDU for the given OIDs."""
    return Pdu(PduType.GET_NEXT, request_id, 0, 0, [(o, None) for o in oids])


def get_bulk_request(
    request_id: int, oids: Iterable[Oid], *, non_repeaters: int = 0, max_repetitions: int = 10
) -> Pdu:
    """A GetBulkRequest PDU for the given OIDs."""
    return Pdu(
        PduType.GET_BULK, request_id, non_repeaters, max_repetitions, [(o, None) for o in oids]
    )


@dataclass(frozen=True, slots=True)
class CommunityMessage:
    """An SNMPv1 or v2c message: version, community and PDU."""

    version: int
    community: bytes = field(repr=False)
    pdu: Pdu


@dataclass(frozen=True, slots=True)
class UsmSecurityParameters:
    """The USM msgSecurityParameters (RFC 3414 section 2.4)."""

    engine_id: bytes
    engine_boots: int
    engine_time: int
    user_name: bytes
    auth_params: bytes = field(default=b"", repr=False)
    priv_params: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class ScopedPdu:
    """An SNMPv3 scopedPDU: context engine ID, context name and the PDU."""

    context_engine_id: bytes
    context_name: bytes
    pdu: Pdu


@dataclass(frozen=True, slots=True)
class V3Message:
    """A decoded SNMPv3 message.

    Exactly one of ``scoped_pdu`` (plaintext) and ``encrypted_pdu`` is set. ``raw`` is the whole
    message and ``auth_params_offset`` the offset of the authentication parameters' content
    within it, which is what a digest check needs (the digest covers the message with those
    bytes zeroed).
    """

    msg_id: int
    max_size: int
    flags: int
    security_model: int
    security: UsmSecurityParameters
    scoped_pdu: ScopedPdu | None
    encrypted_pdu: bytes | None = field(repr=False)
    raw: bytes = field(repr=False)
    auth_params_offset: int = field(repr=False)


Message = CommunityMessage | V3Message


# ---------------------------------------------------------------------------------- encoding


def encode_length(n: int) -> bytes:
    """BER definite length octets."""
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def encode_tlv(tag: int, content: bytes) -> bytes:
    """A tag-length-value triple."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    return bytes((tag,)) + encode_length(n) + content


def _int_content(value: int) -> bytes:
    # Minimal two's complement: one more bit than the magnitude needs, rounded up to octets.
    return value.to_bytes((value + (value < 0)).bit_length() // 8 + 1, "big", signed=True)


def encode_integer(value: int, tag: int = INTEGER) -> bytes:
    """An INTEGER (or an application integer type given by ``tag``)."""
    return encode_tlv(tag, _int_content(value))


def encode_octets(value: bytes, tag: int = OCTET_STRING) -> bytes:
    """An OCTET STRING (or IpAddress/Opaque given by ``tag``)."""
    return encode_tlv(tag, value)


def encode_oid(oid: Oid) -> bytes:
    """An OBJECT IDENTIFIER.

    Raises:
        ValueError: fewer than two arcs, or arcs out of range.
    """
    if len(oid) < 2 or oid[0] > 2 or (oid[0] < 2 and oid[1] >= 40):
        raise ValueError(f"not an encodable OID: {oid!r}")
    first = oid[0] * 40 + oid[1]
    out = bytearray()
    for arc in (first, *oid[2:]):
        if arc < 0x80:
            if arc < 0:
                raise ValueError(f"negative OID arc in {oid!r}")
            out.append(arc)
            continue
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return encode_tlv(OBJECT_IDENTIFIER, bytes(out))


_NO_VALUE_TAGS = {
    NoValue.NO_SUCH_OBJECT: NO_SUCH_OBJECT,
    NoValue.NO_SUCH_INSTANCE: NO_SUCH_INSTANCE,
    NoValue.END_OF_MIB_VIEW: END_OF_MIB_VIEW,
}
_UNSIGNED_LIMITS = {
    COUNTER32: _UINT32_MAX,
    GAUGE32: _UINT32_MAX,
    TIMETICKS: _UINT32_MAX,
    _UINTEGER32: _UINT32_MAX,
    COUNTER64: _UINT64_MAX,
}


def encode_value(value: EncodableValue) -> bytes:
    """A varbind value: int → INTEGER, Counter64 → Counter64, bytes → OCTET STRING,
    tuple → OBJECT IDENTIFIER, None → NULL, NoValue → its exception tag, Typed → its tag.

    Raises:
        ValueError: the value is out of range for its type.
        TypeError: the value has no SNMP encoding.
    """
    if value is None:
        return b"\x05\x00"
    if isinstance(value, bool):
        raise TypeError("bool has no SNMP encoding; use an int")
    if isinstance(value, Counter64):
        if not 0 <= value <= _UINT64_MAX:
            raise ValueError(f"Counter64 out of range: {int(value)}")
        return encode_integer(int(value), COUNTER64)
    if isinstance(value, int):
        if not _INT32_MIN <= value <= _INT32_MAX:
            raise ValueError(f"INTEGER out of range: {value} (use Typed for unsigned types)")
        return encode_integer(value)
    if isinstance(value, bytes):
        return encode_tlv(OCTET_STRING, value)
    if isinstance(value, tuple):
        return encode_oid(value)
    if isinstance(value, NoValue):
        return bytes((_NO_VALUE_TAGS[value], 0))
    if isinstance(value, Typed):
        limit = _UNSIGNED_LIMITS.get(value.tag)
        if limit is not None:
            if not isinstance(value.value, int) or not 0 <= value.value <= limit:
                raise ValueError(f"value out of range for tag 0x{value.tag:02x}: {value.value!r}")
            return encode_integer(int(value.value), value.tag)
        if isinstance(value.value, bytes):
            if value.tag == IP_ADDRESS and len(value.value) != 4:
                raise ValueError("IpAddress takes exactly four octets")
            return encode_tlv(value.tag, value.value)
        return encode_integer(value.value, value.tag)
    raise TypeError(f"no SNMP encoding for {type(value).__name__}")


def encode_varbinds(varbinds: Iterable[EncodableVarBind]) -> bytes:
    """The VarBindList SEQUENCE."""
    body = b"".join(encode_tlv(SEQUENCE, encode_oid(o) + encode_value(v)) for o, v in varbinds)
    return encode_tlv(SEQUENCE, body)


def encode_pdu(pdu: Pdu) -> bytes:
    """A PDU (any of the request, response and report types)."""
    body = (
        encode_integer(pdu.request_id)
        + encode_integer(pdu.error_status)
        + encode_integer(pdu.error_index)
        + encode_varbinds(pdu.varbinds)
    )
    return encode_tlv(int(pdu.type), body)


def encode_community_message(community: bytes, pdu: Pdu, *, version: int = VERSION_2C) -> bytes:
    """A whole SNMPv1/v2c message, ready to send."""
    return encode_tlv(
        SEQUENCE, encode_integer(version) + encode_tlv(OCTET_STRING, community) + encode_pdu(pdu)
    )


def encode_scoped_pdu(scoped: ScopedPdu) -> bytes:
    """An SNMPv3 scopedPDU (the plaintext that privacy encrypts)."""
    return encode_tlv(
        SEQUENCE,
        encode_tlv(OCTET_STRING, scoped.context_engine_id)
        + encode_tlv(OCTET_STRING, scoped.context_name)
        + encode_pdu(scoped.pdu),
    )


def encode_v3_message(
    *,
    msg_id: int,
    max_size: int,
    flags: int,
    security: UsmSecurityParameters,
    scoped_pdu: bytes | None = None,
    encrypted_pdu: bytes | None = None,
    security_model: int = SECURITY_MODEL_USM,
) -> tuple[bytes, int]:
    """A whole SNMPv3 message.

    Args:
        msg_id: msgID (the reply carries the same value).
        max_size: msgMaxSize, the largest message we accept.
        flags: msgFlags bits (FLAG_AUTH | FLAG_PRIV | FLAG_REPORTABLE).
        security: USM parameters; for an authenticated message pass ``auth_params`` as zero
            octets of the MAC length and write the MAC at the returned offset afterwards.
        scoped_pdu: the encoded plaintext scopedPDU (see :func:`encode_scoped_pdu`), or
        encrypted_pdu: the ciphertext of it (exactly one of the two).
        security_model: msgSecurityModel, USM unless testing.

    Returns:
        The message and the offset of the authentication parameters' content in it.
    """
    if (scoped_pdu is None) == (encrypted_pdu is None):
        raise ValueError("give exactly one of scoped_pdu and encrypted_pdu")
    head = (
        encode_tlv(OCTET_STRING, security.engine_id)
        + encode_integer(security.engine_boots)
        + encode_integer(security.engine_time)
        + encode_tlv(OCTET_STRING, security.user_name)
    )
    auth_tlv = encode_tlv(OCTET_STRING, security.auth_params)
    auth_header = len(auth_tlv) - len(security.auth_params)
    usm_body = head + auth_tlv + encode_tlv(OCTET_STRING, security.priv_params)
    usm_seq_header = bytes((SEQUENCE,)) + encode_length(len(usm_body))
    usm = usm_seq_header + usm_body
    sec_header = bytes((OCTET_STRING,)) + encode_length(len(usm))
    global_data = encode_tlv(
        SEQUENCE,
        encode_integer(msg_id)
        + encode_integer(max_size)
        + encode_tlv(OCTET_STRING, bytes((flags,)))
        + encode_integer(security_model),
    )
    data = scoped_pdu if scoped_pdu is not None else encode_tlv(OCTET_STRING, encrypted_pdu or b"")
    prefix = encode_integer(VERSION_3) + global_data + sec_header
    body = prefix + usm + data
    outer_header = bytes((SEQUENCE,)) + encode_length(len(body))
    offset = len(outer_header) + len(prefix) + len(usm_seq_header) + len(head) + auth_header
    return outer_header + body, offset


# ---------------------------------------------------------------------------------- decoding


def _fail(what: str) -> SnmpProtocolError:
    return SnmpProtocolError(f"malformed SNMP message: {what}")


def _header(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read a tag and length at ``pos``; return (tag, content start, content end)."""
    if pos + 2 > end:
        raise _fail("truncated header")
    tag = buf[pos]
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4:
            raise _fail("unsupported length form")
        if pos + k > end:
            raise _fail("truncated length")
        n = int.from_bytes(buf[pos : pos + k], "big")
        pos += k
    stop = pos + n
    if stop > end:
        raise _fail("length runs past the end")
    return tag, pos, stop


def _expect(buf: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    t, start, stop = _header(buf, pos, end)
    if t != tag:
        raise _fail(f"expected {what}, found tag 0x{t:02x}")
    return start, stop


def _int_at(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    start, stop = _expect(buf, pos, end, INTEGER, what)
    if not 0 < stop - start <= 9:
        raise _fail(f"bad {what} length")
    return int.from_bytes(buf[start:stop], "big", signed=True), stop


def _octets_at(buf: bytes, pos: int, end: int, what: str) -> tuple[bytes, int, int]:
    start, stop = _expect(buf, pos, end, OCTET_STRING, what)
    return buf[start:stop], start, stop


def _decode_oid(buf: bytes, start: int, stop: int) -> Oid:
    sub = buf[start:stop]
    if not sub:
        raise _fail("empty OBJECT IDENTIFIER")
    first = sub[0]
    if sub.isascii():
        # Every arc fits one octet (the usual case): no base-128 arithmetic needed.
        if first < 80:
            return (first // 40, first % 40, *sub[1:])
        return (2, first - 80, *sub[1:])
    if sub[-1] & 0x80:
        raise _fail("truncated OBJECT IDENTIFIER arc")
    arcs: list[int] = []
    value = 0
    for b in sub:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    if first < 80:
        arcs[0:1] = (first // 40, first % 40)
    else:
        arcs[0:1] = (2, first - 80)
    return tuple(arcs)


def _decode_value(tag: int, buf: bytes, start: int, stop: int) -> SnmpValue:
    if tag == OCTET_STRING:
        return buf[start:stop]
    if tag == INTEGER:
        if not 0 < stop - start <= 9:
            raise _fail("bad INTEGER length")
        return int.from_bytes(buf[start:stop], "big", signed=True)
    if tag in (COUNTER32, GAUGE32, TIMETICKS, _UINTEGER32):
        if not 0 < stop - start <= 5:
            raise _fail("bad 32-bit unsigned length")
        # Unsigned decoding also repairs agents that encode counters above 2^31 without the
        # leading zero octet (they send what looks like a negative number).
        return int.from_bytes(buf[start:stop], "big") & _UINT32_MAX
    if tag == COUNTER64:
        if not 0 < stop - start <= 9:
            raise _fail("bad Counter64 length")
        return Counter64(int.from_bytes(buf[start:stop], "big") & _UINT64_MAX)
    if tag == OBJECT_IDENTIFIER:
        return _decode_oid(buf, start, stop)
    if tag == NULL:
        return None
    if tag == NO_SUCH_OBJECT:
        return NoValue.NO_SUCH_OBJECT
    if tag == NO_SUCH_INSTANCE:
        return NoValue.NO_SUCH_INSTANCE
    if tag == END_OF_MIB_VIEW:
        return NoValue.END_OF_MIB_VIEW
    if tag in (IP_ADDRESS, OPAQUE, _BIT_STRING, _NSAP_ADDRESS):
        return buf[start:stop]
    raise _fail(f"unsupported value type 0x{tag:02x}")


def _decode_varbinds(buf: bytes, pos: int, end: int) -> list[VarBind]:
    # The hot loop: inline the common short-length case of each TLV.
    out: list[VarBind] = []
    append = out.append
    while pos < end:
        if buf[pos] != SEQUENCE:
            raise _fail("varbind is not a SEQUENCE")
        n = buf[pos + 1]
        if n & 0x80:
            _, pos, vb_end = _header(buf, pos, end)
        else:
            pos += 2
            vb_end = pos + n
            if vb_end > end:
                raise _fail("varbind runs past the end")
        if buf[pos] != OBJECT_IDENTIFIER:
            raise _fail("varbind name is not an OBJECT IDENTIFIER")
        n = buf[pos + 1]
        if n & 0x80:
            _, pos, oid_end = _header(buf, pos, vb_end)
        else:
            pos += 2
            oid_end = pos + n
            if oid_end > vb_end:
                raise _fail("OID runs past its varbind")
        oid = _decode_oid(buf, pos, oid_end)
        if oid_end + 2 > vb_end:
            raise _fail("varbind has no value")
        tag = buf[oid_end]
        n = buf[oid_end + 1]
        if n & 0x80:
            tag, pos, val_end = _header(buf, oid_end, vb_end)
        else:
            pos = oid_end + 2
            val_end = pos + n
        if val_end != vb_end:
            raise _fail("varbind length mismatch")
        append((oid, _decode_value(tag, buf, pos, val_end)))
        pos = val_end
    return out


def _decode_pdu_at(buf: bytes, pos: int, end: int) -> tuple[Pdu, int]:
    tag, start, stop = _header(buf, pos, end)
    try:
        pdu_type = PduType(tag)
    except ValueError:
        raise _fail(f"unsupported PDU type 0x{tag:02x}") from None
    request_id, p = _int_at(buf, start, stop, "request-id")
    error_status, p = _int_at(buf, p, stop, "error-status")
    error_index, p = _int_at(buf, p, stop, "error-index")
    vb_start, vb_stop = _expect(buf, p, stop, SEQUENCE, "varbind list")
    varbinds = _decode_varbinds(buf, vb_start, vb_stop)
    return Pdu(pdu_type, request_id, error_status, error_index, varbinds), stop


def _decode_scoped_at(buf: bytes, pos: int, end: int) -> ScopedPdu:
    start, stop = _expect(buf, pos, end, SEQUENCE, "scopedPDU")
    engine_id, _, p = _octets_at(buf, start, stop, "contextEngineID")
    name, _, p = _octets_at(buf, p, stop, "contextName")
    pdu, _ = _decode_pdu_at(buf, p, stop)
    return ScopedPdu(engine_id, name, pdu)


def _decode_v3(buf: bytes, pos: int, end: int) -> V3Message:
    g_start, g_stop = _expect(buf, pos, end, SEQUENCE, "msgGlobalData")
    msg_id, p = _int_at(buf, g_start, g_stop, "msgID")
    max_size, p = _int_at(buf, p, g_stop, "msgMaxSize")
    flag_octets, _, p = _octets_at(buf, p, g_stop, "msgFlags")
    if len(flag_octets) != 1:
        raise _fail("msgFlags is not one octet")
    model, _ = _int_at(buf, p, g_stop, "msgSecurityModel")
    if model != SECURITY_MODEL_USM:
        raise _fail(f"security model {model} is not USM")
    s_start, s_stop = _expect(buf, g_stop, end, OCTET_STRING, "msgSecurityParameters")
    u_start, u_stop = _expect(buf, s_start, s_stop, SEQUENCE, "UsmSecurityParameters")
    engine_id, _, p = _octets_at(buf, u_start, u_stop, "msgAuthoritativeEngineID")
    boots, p = _int_at(buf, p, u_stop, "msgAuthoritativeEngineBoots")
    time, p = _int_at(buf, p, u_stop, "msgAuthoritativeEngineTime")
    user, _, p = _octets_at(buf, p, u_stop, "msgUserName")
    auth_params, auth_offset, p = _octets_at(buf, p, u_stop, "msgAuthenticationParameters")
    priv_params, _, _ = _octets_at(buf, p, u_stop, "msgPrivacyParameters")
    security = UsmSecurityParameters(engine_id, boots, time, user, auth_params, priv_params)
    if s_stop >= end:
        raise _fail("msgData is missing")
    scoped: ScopedPdu | None = None
    encrypted: bytes | None = None
    if buf[s_stop] == OCTET_STRING:
        encrypted, _, _ = _octets_at(buf, s_stop, end, "encryptedPDU")
    else:
        scoped = _decode_scoped_at(buf, s_stop, end)
    return V3Message(
        msg_id, max_size, flag_octets[0], model, security, scoped, encrypted, buf, auth_offset
    )


_DECODE_ERRORS = (IndexError, ValueError, TypeError, OverflowError)


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    return data if type(data) is bytes else bytes(data)


def decode_message(data: bytes | bytearray | memoryview) -> Message:
    """Decode a whole SNMP message (v1, v2c or v3).

    Trailing octets after the outer SEQUENCE are ignored. A v3 message's scopedPDU stays
    encrypted when the privacy flag is set (see :func:`decode_scoped_pdu`).

    Raises:
        SnmpProtocolError: the octets are not a well-formed SNMP message.
    """
    buf = _as_bytes(data)
    try:
        start, stop = _expect(buf, 0, len(buf), SEQUENCE, "message SEQUENCE")
        if stop != len(buf):
            buf = buf[:stop]
        version, p = _int_at(buf, start, stop, "version")
        if version in (VERSION_1, VERSION_2C):
            community, _, p = _octets_at(buf, p, stop, "community")
            pdu, _ = _decode_pdu_at(buf, p, stop)
            return CommunityMessage(version, community, pdu)
        if version == VERSION_3:
            return _decode_v3(buf, p, stop)
        raise _fail(f"unsupported SNMP version field {version}")
    except _DECODE_ERRORS as exc:
        raise _fail(type(exc).__name__) from exc


def decode_scoped_pdu(data: bytes | bytearray | memoryview) -> ScopedPdu:
    """Decode a plaintext scopedPDU (e.g. just decrypted); trailing octets are ignored.

    Raises:
        SnmpProtocolError: the octets are not a well-formed scopedPDU.
    """
    buf = _as_bytes(data)
    try:
        return _decode_scoped_at(buf, 0, len(buf))
    except _DECODE_ERRORS as exc:
        raise _fail(type(exc).__name__) from exc


def decode_pdu(data: bytes | bytearray | memoryview) -> Pdu:
    """Decode a bare PDU.

    Raises:
        SnmpProtocolError: the octets are not a well-formed PDU.
    """
    buf = _as_bytes(data)
    try:
        pdu, _ = _decode_pdu_at(buf, 0, len(buf))
    except _DECODE_ERRORS as exc:
        raise _fail(type(exc).__name__) from exc
    return pdu


def message_id(message: Message) -> int:
    """The number a reply is matched on: request-id for v1/v2c, msgID for v3."""
    if isinstance(message, V3Message):
        return message.msg_id
    return message.pdu.request_id
