"""SNMPv3 USM: key localisation vectors, digests and privacy checked against pysnmp's services."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pyasn1.type import univ
from pydantic import SecretStr
from pysnmp.proto.secmod.rfc3414.auth import hmacsha
from pysnmp.proto.secmod.rfc3826.priv import aes
from pysnmp.proto.secmod.rfc7860.auth import hmacsha2

from edumon.config import SnmpCredentials
from edumon.domain import oids
from edumon.errors import SnmpAuthError
from edumon.sources.snmp import ber, usm

ENGINE = bytes.fromhex("80001f8880e9630000d61ff449")
AUTH_PW = "auth-Secret-9137"
PRIV_PW = "priv-Secret-5521"
SYS_UPTIME_0 = (1, 3, 6, 1, 2, 1, 1, 3, 0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def creds(auth: str | None = "SHA", priv: str | None = "AES-128") -> SnmpCredentials:
    return SnmpCredentials(
        version="3",
        user="edu-user",
        auth_protocol=auth,
        auth_password=SecretStr(AUTH_PW) if auth else None,
        priv_protocol=priv,
        priv_password=SecretStr(PRIV_PW) if priv else None,
    )


def session(credentials: SnmpCredentials, clock: FakeClock) -> usm.UsmSession:
    s = usm.UsmSession(credentials, usm.KeyCache(), target="127.0.0.1:161", clock=clock)
    s.learn(ber.UsmSecurityParameters(ENGINE, 3, 5000, b""))
    return s


def test_rfc3414_sha_vector() -> None:
    # RFC 3414 appendix A.3.2: password "maplesyrup", engine ID 00..02.
    engine = bytes(11) + b"\x02"
    ku = usm.master_key(b"maplesyrup", "SHA")
    assert ku.hex() == "9fb5cc0381497b3793528939ff788d5d79145211"
    assert usm.localize_auth_key(ku, engine, "SHA").hex() == (
        "6695febc9288e36282235fc7151f128497b38f3f"
    )


@pytest.mark.parametrize(
    ("auth", "priv", "size"),
    [("SHA", "AES-128", 16), ("SHA", "AES-256", 32), ("SHA-256", "AES-256", 32),
     ("SHA-512", "AES-128", 16), ("SHA-512", "AES-256", 32)],
)  # fmt: skip
def test_priv_key_localisation_and_extension(auth: str, priv: str, size: int) -> None:
    h = {"SHA": hashlib.sha1, "SHA-256": hashlib.sha256, "SHA-512": hashlib.sha512}[auth]
    ku = usm.master_key(PRIV_PW.encode(), auth)
    kul = h(ku + ENGINE + ku).digest()
    # Too short for the cipher: append H(Kul) (the extension net-snmp's AES-256 uses).
    while len(kul) < size:
        kul += h(kul).digest()
    assert usm.localize_priv_key(ku, ENGINE, auth, priv) == kul[:size]


def test_key_cache_reuses_keys_and_prints_no_secret() -> None:
    cache = usm.KeyCache()
    a = cache.keys(creds(), ENGINE)
    assert cache.keys(creds(), ENGINE) is a
    assert cache.keys(creds(), ENGINE + b"x") != a
    text = repr(cache) + repr(a)
    assert a.auth is not None
    assert a.priv is not None
    assert a.auth.hex() not in text
    assert a.priv.hex() not in text
    assert AUTH_PW not in text


_AUTH_ORACLES: dict[str, Any] = {
    "SHA": hmacsha.HmacSha(),
    "SHA-256": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA256_SERVICE_ID),
    "SHA-512": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA512_SERVICE_ID),
}


@pytest.mark.parametrize("auth", ["SHA", "SHA-256", "SHA-512"])
def test_outgoing_messages_verify_and_decrypt_with_pysnmp(auth: str) -> None:
    clock = FakeClock()
    s = session(creds(auth, "AES-128"), clock)
    clock.now += 42.7
    pdu = ber.get_request(77, [SYS_UPTIME_0])
    data = s.encode(pdu, 77)
    msg = ber.decode_message(data)
    assert isinstance(msg, ber.V3Message)
    assert msg.flags == ber.FLAG_AUTH | ber.FLAG_PRIV | ber.FLAG_REPORTABLE
    assert msg.security.engine_boots == 3
    assert msg.security.engine_time == 5042
    assert msg.security.user_name == b"edu-user"
    keys = usm.KeyCache().keys(creds(auth, "AES-128"), ENGINE)
    assert keys.auth is not None
    assert keys.priv is not None
    oracle = _AUTH_ORACLES[auth]
    # pysnmp's own check raises if the digest is wrong.
    oracle.authenticate_incoming_message(
        univ.OctetString(keys.auth), univ.OctetString(msg.security.auth_params), data
    )
    plain = aes.Aes().decrypt_data(
        univ.OctetString(keys.priv),
        (msg.security.engine_boots, msg.security.engine_time, list(msg.security.priv_params)),
        univ.OctetString(msg.encrypted_pdu),
    )
    assert ber.decode_scoped_pdu(plain) == ber.ScopedPdu(ENGINE, b"", pdu)
    # A fresh salt per message (RFC 3826).
    again = ber.decode_message(s.encode(pdu, 78))
    assert isinstance(again, ber.V3Message)
    assert again.security.priv_params != msg.security.priv_params


def agent_reply(
    auth: str,
    pdu: ber.Pdu,
    *,
    boots: int = 3,
    engine_time: int = 5100,
    user: bytes = b"edu-user",
    encrypt: bool = True,
    password: str = AUTH_PW,
) -> bytes:
    """A reply as an agent would build it, authenticated and encrypted by pysnmp's services."""
    c = creds(auth, "AES-128")
    if password != AUTH_PW:
        c = c.model_copy(update={"auth_password": SecretStr(password)})
    keys = usm.KeyCache().keys(c, ENGINE)
    assert keys.auth is not None
    assert keys.priv is not None
    scoped = ber.encode_scoped_pdu(ber.ScopedPdu(ENGINE, b"", pdu))
    mac_len = {"SHA": 12, "SHA-256": 24, "SHA-512": 48}[auth]
    flags = ber.FLAG_AUTH
    salt = b""
    encrypted = None
    if encrypt:
        flags |= ber.FLAG_PRIV
        cipher, salt_obj = aes.Aes().encrypt_data(
            univ.OctetString(keys.priv), (boots, engine_time, None), scoped
        )
        encrypted, salt = bytes(cipher), bytes(salt_obj)
    data, _ = ber.encode_v3_message(
        msg_id=pdu.request_id,
        max_size=65507,
        flags=flags,
        security=ber.UsmSecurityParameters(
            ENGINE, boots, engine_time, user, b"\x00" * mac_len, salt
        ),
        scoped_pdu=None if encrypt else scoped,
        encrypted_pdu=encrypted,
    )
    return bytes(
        _AUTH_ORACLES[auth].authenticate_outgoing_message(univ.OctetString(keys.auth), data)
    )


def response(request_id: int = 5) -> ber.Pdu:
    return ber.Pdu(ber.PduType.RESPONSE, request_id, 0, 0, [(SYS_UPTIME_0, ber.timeticks(99))])


def opened(s: usm.UsmSession, data: bytes) -> ber.Pdu:
    msg = ber.decode_message(data)
    assert isinstance(msg, ber.V3Message)
    return s.open_reply(msg)


@pytest.mark.parametrize("auth", ["SHA", "SHA-256", "SHA-512"])
def test_authentic_encrypted_reply_opens_and_advances_the_clock(auth: str) -> None:
    clock = FakeClock()
    s = session(creds(auth, "AES-128"), clock)
    pdu = opened(s, agent_reply(auth, response()))
    assert list(pdu.varbinds) == [(SYS_UPTIME_0, 99)]
    assert s.engine_clock() == (3, 5100)


@pytest.mark.parametrize("where", [30, -5, -40])
def test_tampered_reply_is_an_auth_error_naming_the_user_only(where: int) -> None:
    s = session(creds("SHA-256", "AES-128"), FakeClock())
    data = bytearray(agent_reply("SHA-256", response()))
    data[where] ^= 0x01
    with pytest.raises(SnmpAuthError) as caught:
        opened(s, bytes(data))
    text = str(caught.value)
    assert "edu-user" in text
    assert "127.0.0.1:161" in text
    assert AUTH_PW not in text
    assert PRIV_PW not in text


def test_reply_signed_with_another_password_is_rejected() -> None:
    s = session(creds("SHA", "AES-128"), FakeClock())
    with pytest.raises(SnmpAuthError, match="wrong digest"):
        opened(s, agent_reply("SHA", response(), password="another-Password-1"))


def test_unauthenticated_response_is_rejected_but_a_report_is_returned() -> None:
    s = session(creds("SHA", None), FakeClock())
    plain_response, _ = ber.encode_v3_message(
        msg_id=5, max_size=65507, flags=0,
        security=ber.UsmSecurityParameters(ENGINE, 3, 5100, b"edu-user"),
        scoped_pdu=ber.encode_scoped_pdu(ber.ScopedPdu(ENGINE, b"", response())),
    )  # fmt: skip
    with pytest.raises(SnmpAuthError, match="not authenticated"):
        opened(s, plain_response)
    report = ber.Pdu(
        ber.PduType.REPORT, 5, 0, 0, [(oids.USM_STATS_UNKNOWN_USER_NAMES, ber.counter32(1))]
    )
    plain_report, _ = ber.encode_v3_message(
        msg_id=5, max_size=65507, flags=0,
        security=ber.UsmSecurityParameters(ENGINE, 3, 5100, b"edu-user"),
        scoped_pdu=ber.encode_scoped_pdu(ber.ScopedPdu(ENGINE, b"", report)),
    )  # fmt: skip
    got = opened(s, plain_report)
    assert usm.report_reason(got) == "unknownUserName"
    assert "does not know this user" in str(s.report_error("unknownUserName"))


def test_unencrypted_response_is_rejected_when_privacy_is_configured() -> None:
    s = session(creds("SHA", "AES-128"), FakeClock())
    with pytest.raises(SnmpAuthError, match="not encrypted"):
        opened(s, agent_reply("SHA", response(), encrypt=False))


def test_reply_for_another_user_is_rejected() -> None:
    s = session(creds("SHA", "AES-128"), FakeClock())
    with pytest.raises(SnmpAuthError, match="different user"):
        opened(s, agent_reply("SHA", response(), user=b"someone-else"))


def test_replayed_reply_from_the_past_is_rejected() -> None:
    clock = FakeClock()
    s = session(creds("SHA", "AES-128"), clock)
    opened(s, agent_reply("SHA", response(), engine_time=5100))
    clock.now += 1000  # our notion of the engine clock is now ~6100
    with pytest.raises(SnmpAuthError, match="time window"):
        opened(s, agent_reply("SHA", response(), engine_time=5100))
    with pytest.raises(SnmpAuthError, match="time window"):
        opened(s, agent_reply("SHA", response(), boots=2, engine_time=9000))
    # Within 150 s of our notion is fine.
    opened(s, agent_reply("SHA", response(), engine_time=6000))


@pytest.mark.parametrize(
    ("oid", "reason"),
    [
        (oids.USM_STATS_NOT_IN_TIME_WINDOWS, "notInTimeWindow"),
        (oids.USM_STATS_UNKNOWN_ENGINE_IDS, "unknownEngineID"),
        (oids.USM_STATS_WRONG_DIGESTS, "wrongDigest"),
        (oids.USM_STATS_DECRYPTION_ERRORS, "decryptionError"),
        (oids.USM_STATS_UNSUPPORTED_SEC_LEVELS, "unsupportedSecLevel"),
        ((1, 3, 6, 1, 6, 3, 11, 2, 1, 3, 0), "report 1.3.6.1.6.3.11.2.1.3.0"),
    ],
)
def test_report_reasons(oid: tuple[int, ...], reason: str) -> None:
    pdu = ber.Pdu(ber.PduType.REPORT, 0, 0, 0, [(oid, ber.counter32(3))])
    assert usm.report_reason(pdu) == reason


def test_discovery_message_is_unauthenticated_and_reportable() -> None:
    s = usm.UsmSession(creds(), usm.KeyCache(), target="t")
    assert not s.discovered
    msg = ber.decode_message(s.discovery_message(9))
    assert isinstance(msg, ber.V3Message)
    assert msg.flags == ber.FLAG_REPORTABLE
    assert msg.security.engine_id == b""
    assert msg.security.user_name == b""
    assert msg.scoped_pdu is not None
    assert list(msg.scoped_pdu.pdu.varbinds) == []
    assert AUTH_PW not in repr(s)
