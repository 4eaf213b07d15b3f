"""The BER codec: round trips, cross-checks against pyasn1/pysnmp, and malformed input."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder as asn1_decoder
from pyasn1.codec.ber import encoder as asn1_encoder
from pysnmp.proto import api, rfc1902, rfc1905
from pysnmp.proto.mpmod.rfc3412 import ScopedPDU, SNMPv3Message
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

from edumon.domain.models import Counter64, NoValue
from edumon.errors import SnmpProtocolError
from edumon.sources.snmp import ber

V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]

IF_HC_IN = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6)

# (our value to encode, what our decoder returns, the pysnmp object with the same encoding)
VALUES: list[tuple[str, ber.EncodableValue, object, Any]] = [
    ("integer-zero", 0, 0, rfc1902.Integer(0)),
    ("integer-negative", -5, -5, rfc1902.Integer(-5)),
    ("integer-127", 127, 127, rfc1902.Integer(127)),
    ("integer-128", 128, 128, rfc1902.Integer(128)),
    ("integer-minus-128", -128, -128, rfc1902.Integer(-128)),
    ("integer-minus-129", -129, -129, rfc1902.Integer(-129)),
    ("integer-max", 2**31 - 1, 2**31 - 1, rfc1902.Integer(2**31 - 1)),
    ("integer-min", -(2**31), -(2**31), rfc1902.Integer(-(2**31))),
    ("octets-empty", b"", b"", rfc1902.OctetString(b"")),
    ("octets-gbk", b"\xd6\xd0\xce\xc4", b"\xd6\xd0\xce\xc4",
     rfc1902.OctetString(b"\xd6\xd0\xce\xc4")),
    ("octets-long", b"x" * 300, b"x" * 300, rfc1902.OctetString(b"x" * 300)),
    ("oid", (1, 3, 6, 1, 4, 1, 2011, 2, 23), (1, 3, 6, 1, 4, 1, 2011, 2, 23),
     rfc1902.ObjectIdentifier((1, 3, 6, 1, 4, 1, 2011, 2, 23))),
    ("oid-big-arc", (1, 3, 6, 1, 4294967295), (1, 3, 6, 1, 4294967295),
     rfc1902.ObjectIdentifier((1, 3, 6, 1, 4294967295))),
    ("ip", ber.ip_address(bytes([10, 0, 0, 254])), bytes([10, 0, 0, 254]),
     rfc1902.IpAddress("10.0.0.254")),
    ("counter32-max", ber.counter32(2**32 - 1), 2**32 - 1, rfc1902.Counter32(2**32 - 1)),
    ("gauge32", ber.gauge32(1_000_000_000), 1_000_000_000, rfc1902.Gauge32(1_000_000_000)),
    ("timeticks", ber.timeticks(123_456), 123_456, rfc1902.TimeTicks(123_456)),
    ("opaque", ber.opaque(b"\x9f\x78\x04"), b"\x9f\x78\x04", rfc1902.Opaque(b"\x9f\x78\x04")),
    ("counter64-max", Counter64(2**64 - 1), Counter64(2**64 - 1), rfc1902.Counter64(2**64 - 1)),
    ("counter64-small", Counter64(7), Counter64(7), rfc1902.Counter64(7)),
    ("null", None, None, rfc1902.Null("")),
    ("no-such-object", NoValue.NO_SUCH_OBJECT, NoValue.NO_SUCH_OBJECT, rfc1905.noSuchObject),
    ("no-such-instance", NoValue.NO_SUCH_INSTANCE, NoValue.NO_SUCH_INSTANCE,
     rfc1905.noSuchInstance),
    ("end-of-mib-view", NoValue.END_OF_MIB_VIEW, NoValue.END_OF_MIB_VIEW, rfc1905.endOfMibView),
]  # fmt: skip

OIDS: list[tuple[int, ...]] = [
    (1, 3, 6, 1, 2, 1, 1, 3, 0),
    (*IF_HC_IN, 10101),
    (0, 0),
    (0, 39),
    (1, 39, 127, 128, 16383, 16384),
    (2, 999, 3),
    (2, 47),
]


def pysnmp_response(varbinds: list[tuple[tuple[int, ...], Any]], request_id: int) -> bytes:
    pdu = V2C.ResponsePDU()
    V2C.apiPDU.set_defaults(pdu)
    V2C.apiPDU.set_request_id(pdu, request_id)
    V2C.apiPDU.set_varbinds(pdu, varbinds)
    msg = V2C.Message()
    V2C.apiMessage.set_defaults(msg)
    V2C.apiMessage.set_community(msg, "s3cret-community")
    V2C.apiMessage.set_pdu(msg, pdu)
    return bytes(asn1_encoder.encode(msg))


# pyasn1 encodes negative powers of two with a redundant leading FF (-128 as FF 80), which
# X.690 forbids (the first nine bits all ones); ours are minimal. pyasn1 still reads ours.
_PYASN1_NOT_MINIMAL = {"integer-minus-128", "integer-min"}


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(v[1], v[3]) for v in VALUES if v[0] not in _PYASN1_NOT_MINIMAL],
    ids=[v[0] for v in VALUES if v[0] not in _PYASN1_NOT_MINIMAL],
)
def test_value_encoding_is_byte_identical_to_pysnmp(ours: ber.EncodableValue, theirs: Any) -> None:
    oid = (*IF_HC_IN, 3)
    pdu = ber.Pdu(ber.PduType.RESPONSE, 77, 0, 0, [(oid, ours)])
    data = ber.encode_community_message(b"s3cret-community", pdu)
    assert data == pysnmp_response([(oid, theirs)], 77)


@pytest.mark.parametrize(
    ("ours", "theirs"), [(v[1], v[3]) for v in VALUES], ids=[v[0] for v in VALUES]
)
def test_pyasn1_reads_our_values_with_their_types(ours: ber.EncodableValue, theirs: Any) -> None:
    data = ber.encode_community_message(
        b"c", ber.Pdu(ber.PduType.RESPONSE, 1, 0, 0, [((1, 3, 6, 1), ours)])
    )
    msg, rest = asn1_decoder.decode(data, asn1Spec=V2C.Message())
    assert rest == b""
    value = V2C.apiPDU.get_varbinds(V2C.apiMessage.get_pdu(msg))[0][1]
    assert value.tagSet == theirs.tagSet
    assert value == theirs


@pytest.mark.parametrize(
    ("ours", "decoded", "theirs"), [v[1:] for v in VALUES], ids=[v[0] for v in VALUES]
)
def test_decoding_pysnmp_messages(ours: ber.EncodableValue, decoded: object, theirs: Any) -> None:
    oid = (*IF_HC_IN, 3)
    msg = ber.decode_message(pysnmp_response([(oid, theirs)], 2**31 - 1))
    assert isinstance(msg, ber.CommunityMessage)
    assert msg.version == ber.VERSION_2C
    assert msg.community == b"s3cret-community"
    assert msg.pdu.type is ber.PduType.RESPONSE
    assert msg.pdu.request_id == 2**31 - 1
    assert list(msg.pdu.varbinds) == [(oid, decoded)]
    assert type(msg.pdu.varbinds[0][1]) is type(decoded)


@pytest.mark.parametrize("oid", OIDS, ids=[".".join(map(str, o)) for o in OIDS])
def test_oid_round_trip_and_oracle(oid: tuple[int, ...]) -> None:
    encoded = ber.encode_oid(oid)
    assert encoded == bytes(asn1_encoder.encode(rfc1902.ObjectIdentifier(oid)))
    pdu = ber.Pdu(ber.PduType.RESPONSE, 1, 0, 0, [(oid, oid)])
    back = ber.decode_message(ber.encode_community_message(b"c", pdu))
    assert isinstance(back, ber.CommunityMessage)
    assert list(back.pdu.varbinds) == [(oid, oid)]


@pytest.mark.parametrize(
    "pdu",
    [
        ber.get_request(1, [(1, 3, 6, 1, 2, 1, 1, 3, 0), (1, 3, 6, 1, 2, 1, 1, 5, 0)]),
        ber.get_next_request(2**31 - 1, [(1, 3, 6, 1, 2, 1, 2, 2, 1, 2)]),
        ber.get_bulk_request(5, [IF_HC_IN, (1, 3, 6, 1, 2, 1, 1)], non_repeaters=1,
                             max_repetitions=25),
        ber.Pdu(ber.PduType.RESPONSE, 9, int(ber.ErrorStatus.TOO_BIG), 0, []),
        ber.Pdu(ber.PduType.REPORT, 0, 0, 0,
                [((1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0), ber.counter32(12))]),
    ],
    ids=["get", "getnext", "getbulk", "response-toobig", "report"],
)  # fmt: skip
def test_pdus_decode_with_pyasn1_and_back(pdu: ber.Pdu) -> None:
    data = ber.encode_community_message(b"public", pdu)
    theirs, rest = asn1_decoder.decode(data, asn1Spec=V2C.Message())
    assert rest == b""
    their_pdu = V2C.apiMessage.get_pdu(theirs)
    assert int(V2C.apiPDU.get_request_id(their_pdu)) == pdu.request_id
    assert [tuple(o) for o, _ in V2C.apiPDU.get_varbinds(their_pdu)] == [o for o, _ in pdu.varbinds]
    if pdu.type is ber.PduType.GET_BULK:
        assert int(V2C.apiBulkPDU.get_non_repeaters(their_pdu)) == pdu.non_repeaters == 1
        assert int(V2C.apiBulkPDU.get_max_repetitions(their_pdu)) == pdu.max_repetitions == 25
    else:
        assert int(V2C.apiPDU.get_error_status(their_pdu)) == pdu.error_status
    # And our decoder reads pyasn1's re-encoding of what it decoded.
    again = ber.decode_message(bytes(asn1_encoder.encode(theirs)))
    assert isinstance(again, ber.CommunityMessage)
    assert again.pdu.type is pdu.type
    assert again.pdu.request_id == pdu.request_id
    assert [o for o, _ in again.pdu.varbinds] == [o for o, _ in pdu.varbinds]


def test_counter_encoded_without_leading_zero_still_decodes_unsigned() -> None:
    # Some agents send Counter32 4294967294 as FF FF FF FE (which reads as -2 signed).
    vb = b"\x30\x0e\x06\x06\x2b\x06\x01\x02\x01\x02" + b"\x41\x04\xff\xff\xff\xfe"
    pdu = b"\xa2" + bytes([9 + 2 + len(vb)]) + b"\x02\x01\x01\x02\x01\x00\x02\x01\x00\x30"
    pdu += bytes([len(vb)]) + vb
    body = b"\x02\x01\x01\x04\x01c" + pdu
    msg = ber.decode_message(b"\x30" + bytes([len(body)]) + body)
    assert isinstance(msg, ber.CommunityMessage)
    assert msg.pdu.varbinds[0] == ((1, 3, 6, 1, 2, 1, 2), 4294967294)


def test_v3_message_cross_checks_with_pysnmp_models() -> None:
    scoped = ber.encode_scoped_pdu(
        ber.ScopedPdu(b"\x80\x00\x1f\x88\x04engine", b"", ber.get_request(4242, [(1, 3, 6, 1)]))
    )
    security = ber.UsmSecurityParameters(
        b"\x80\x00\x1f\x88\x04engine", 7, 123456, b"edu-user", b"\x00" * 12, b"saltsalt"
    )
    data, offset = ber.encode_v3_message(
        msg_id=4242, max_size=65507, flags=ber.FLAG_AUTH | ber.FLAG_REPORTABLE,
        security=security, scoped_pdu=scoped,
    )  # fmt: skip
    theirs, rest = asn1_decoder.decode(data, asn1Spec=SNMPv3Message())
    assert rest == b""
    header = theirs["msgGlobalData"]
    assert int(header["msgID"]) == 4242
    assert int(header["msgMaxSize"]) == 65507
    assert bytes(header["msgFlags"]) == bytes([ber.FLAG_AUTH | ber.FLAG_REPORTABLE])
    assert int(header["msgSecurityModel"]) == 3
    usm, _ = asn1_decoder.decode(
        bytes(theirs["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters()
    )
    assert bytes(usm["msgAuthoritativeEngineId"]) == security.engine_id
    assert int(usm["msgAuthoritativeEngineBoots"]) == 7
    assert int(usm["msgAuthoritativeEngineTime"]) == 123456
    assert bytes(usm["msgUserName"]) == b"edu-user"
    assert bytes(usm["msgPrivacyParameters"]) == b"saltsalt"
    plain = theirs["msgData"]["plaintext"]
    assert bytes(plain["contextEngineId"]) == security.engine_id
    # The offset is where the authentication parameters sit: a marker written there is what
    # pyasn1 reads back as msgAuthenticationParameters.
    marked = data[:offset] + b"M" * 12 + data[offset + 12 :]
    theirs2, _ = asn1_decoder.decode(marked, asn1Spec=SNMPv3Message())
    usm2, _ = asn1_decoder.decode(
        bytes(theirs2["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters()
    )
    assert bytes(usm2["msgAuthenticationParameters"]) == b"M" * 12
    # Our decoder reads pyasn1's own encoding of the same message, offset included.
    ours = ber.decode_message(bytes(asn1_encoder.encode(theirs2)))
    assert isinstance(ours, ber.V3Message)
    assert ours.msg_id == 4242
    assert ours.flags == ber.FLAG_AUTH | ber.FLAG_REPORTABLE
    assert ours.security == ber.UsmSecurityParameters(
        security.engine_id, 7, 123456, b"edu-user", b"M" * 12, b"saltsalt"
    )
    assert ours.raw[ours.auth_params_offset : ours.auth_params_offset + 12] == b"M" * 12
    assert ours.scoped_pdu is not None
    assert ours.scoped_pdu.pdu.request_id == 4242
    assert ours.encrypted_pdu is None


def test_v3_encrypted_message_and_pysnmp_scoped_pdu() -> None:
    data, _ = ber.encode_v3_message(
        msg_id=1, max_size=1500, flags=ber.FLAG_AUTH | ber.FLAG_PRIV,
        security=ber.UsmSecurityParameters(b"e", 0, 0, b"u", b"\x00" * 24, b"12345678"),
        encrypted_pdu=b"\x01\x02ciphertext",
    )  # fmt: skip
    msg = ber.decode_message(data)
    assert isinstance(msg, ber.V3Message)
    assert msg.encrypted_pdu == b"\x01\x02ciphertext"
    assert msg.scoped_pdu is None
    theirs, _ = asn1_decoder.decode(data, asn1Spec=SNMPv3Message())
    assert bytes(theirs["msgData"]["encryptedPDU"]) == b"\x01\x02ciphertext"

    scoped = ScopedPDU()
    scoped["contextEngineId"] = b"ctx-engine"
    scoped["contextName"] = b""
    pdu = V2C.ResponsePDU()
    V2C.apiPDU.set_defaults(pdu)
    V2C.apiPDU.set_request_id(pdu, 99)
    V2C.apiPDU.set_varbinds(pdu, [((1, 3, 6, 1, 2, 1, 1, 3, 0), rfc1902.TimeTicks(5))])
    scoped["data"]["response"] = pdu
    decoded = ber.decode_scoped_pdu(bytes(asn1_encoder.encode(scoped)) + b"\x00\x00padding")
    assert decoded.context_engine_id == b"ctx-engine"
    assert list(decoded.pdu.varbinds) == [((1, 3, 6, 1, 2, 1, 1, 3, 0), 5)]


def test_round_trip_of_a_large_response() -> None:
    varbinds: list[ber.EncodableVarBind] = []
    for i in range(1, 200):
        varbinds.append(((*IF_HC_IN, i * 1000), Counter64(i * 2**40)))
        varbinds.append(((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 18, i), f"教室{i}".encode()))
    pdu = ber.Pdu(ber.PduType.RESPONSE, 31337, 0, 0, varbinds)
    msg = ber.decode_message(ber.encode_community_message(b"public", pdu))
    assert isinstance(msg, ber.CommunityMessage)
    assert list(msg.pdu.varbinds) == varbinds
    assert ber.message_id(msg) == 31337


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (2**31, ValueError),
        (ber.counter32(-1), ValueError),
        (ber.counter32(2**32), ValueError),
        (Counter64(2**64), ValueError),
        (ber.ip_address(b"\x01\x02\x03"), ValueError),
        (True, TypeError),
        (1.5, TypeError),
    ],
)
def test_unencodable_values_raise(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        ber.encode_value(value)


@pytest.mark.parametrize("oid", [(1,), (3, 1), (1, 40), (1, 3, -1)])
def test_unencodable_oids_raise(oid: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="OID"):
        ber.encode_oid(oid)


def test_error_status_names() -> None:
    assert ber.error_status_name(1) == "tooBig"
    assert ber.error_status_name(5) == "genErr"
    assert ber.error_status_name(99) == "error-status 99"


# ------------------------------------------------------------------------- malformed input


def _sample_messages() -> list[bytes]:
    v2 = ber.encode_community_message(
        b"public",
        ber.Pdu(
            ber.PduType.RESPONSE, 1234, 0, 0,
            [((*IF_HC_IN, 1), Counter64(5)), ((1, 3, 6, 1, 2, 1, 1, 5, 0), b"sw-01"),
             ((1, 3, 6, 1, 2, 1, 1, 9, 0), NoValue.END_OF_MIB_VIEW)],
        ),
    )  # fmt: skip
    v3, _ = ber.encode_v3_message(
        msg_id=7, max_size=65507, flags=ber.FLAG_AUTH,
        security=ber.UsmSecurityParameters(b"engine", 1, 2, b"user", b"\x00" * 12, b""),
        scoped_pdu=ber.encode_scoped_pdu(
            ber.ScopedPdu(b"engine", b"", ber.get_request(7, [(1, 3)]))
        ),
    )  # fmt: skip
    return [v2, v3]


@pytest.mark.parametrize("message", _sample_messages(), ids=["v2c", "v3"])
def test_every_truncation_is_a_protocol_error(message: bytes) -> None:
    for cut in range(len(message)):
        with pytest.raises(SnmpProtocolError):
            ber.decode_message(message[:cut])


def _v2c_response_with_varbind_list(content: bytes) -> bytes:
    vb_list = b"\x30" + bytes([len(content)]) + content
    pdu_body = b"\x02\x01\x01\x02\x01\x00\x02\x01\x00" + vb_list
    body = b"\x02\x01\x01\x04\x01c" + b"\xa2" + bytes([len(pdu_body)]) + pdu_body
    return b"\x30" + bytes([len(body)]) + body


def test_varbind_list_helper_builds_valid_messages() -> None:
    msg = ber.decode_message(_v2c_response_with_varbind_list(b"\x30\x05\x06\x01\x2b\x05\x00"))
    assert isinstance(msg, ber.CommunityMessage)
    assert list(msg.pdu.varbinds) == [((1, 3), None)]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30",
        b"\x30\x80\x02\x01\x01\x00\x00",  # indefinite length
        b"\x30\x85\x00\x00\x00\x00\x05",  # five length octets
        b"\x02\x01\x01",  # not a SEQUENCE
        b"\x30\x03\x02\x01\x02",  # version 2 does not exist
        b"\x30\x05\x02\x00\x04\x00\x00",  # empty INTEGER
        b"\x30\x0e\x02\x01\x01\x04\x01c\xa4\x06\x02\x01\x01\x02\x01\x00",  # v1 Trap PDU
        # A varbind list holding a lone SEQUENCE tag at the very end of the datagram.
        _v2c_response_with_varbind_list(b"\x30"),
        # An OID whose last octet says "more follows".
        _v2c_response_with_varbind_list(b"\x30\x05\x06\x01\x81\x05\x00"),
        # A varbind without a value.
        _v2c_response_with_varbind_list(b"\x30\x03\x06\x01\x2b"),
        # A value running past its varbind.
        _v2c_response_with_varbind_list(b"\x30\x05\x06\x01\x2b\x04\x05abc"),
        # An unknown value type.
        _v2c_response_with_varbind_list(b"\x30\x05\x06\x01\x2b\x49\x00"),
    ],
)
def test_malformed_examples(data: bytes) -> None:
    with pytest.raises(SnmpProtocolError):
        ber.decode_message(data)


def _decodes_or_protocol_error(data: bytes) -> None:
    # Any exception but SnmpProtocolError fails the test (hypothesis reports it).
    for decode in (ber.decode_message, ber.decode_scoped_pdu, ber.decode_pdu):
        with contextlib.suppress(SnmpProtocolError):
            decode(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_leak_other_exceptions(data: bytes) -> None:
    _decodes_or_protocol_error(data)
    _decodes_or_protocol_error(b"\x30" + bytes([len(data) & 0x7F]) + data)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(_sample_messages()),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, 10_000),
)
def test_mutated_messages_never_leak_other_exceptions(
    message: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(message)
    for where, value in edits:
        data[where % len(data)] = value
    _decodes_or_protocol_error(bytes(data))
    _decodes_or_protocol_error(bytes(data[: cut % (len(data) + 1)]))
