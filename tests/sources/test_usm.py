"""SNMPv3 USM: RFC 3414 key vectors, then keys, digests and privacy checked against pysnmp.

pysnmp is the oracle here only: the product localises keys with hashlib and encrypts with
`cryptography` (edumon.sources.snmp.usm_keys, usm).
"""

from __future__ import annotations

import logging
from typing import Any, get_args

import pytest
from pyasn1.type import univ
from pydantic import SecretStr
from pysnmp.proto.secmod.rfc3414 import localkey  # noqa: F401 - must come first, see below

# isort: split
# pysnmp's eso.priv modules import rfc3414 circularly; importing rfc3414 first settles it.
from pysnmp.proto.secmod.eso.priv import aes192, aes256, des3
from pysnmp.proto.secmod.rfc3414.auth import hmacmd5, hmacsha
from pysnmp.proto.secmod.rfc3414.priv import des
from pysnmp.proto.secmod.rfc3826.priv import aes
from pysnmp.proto.secmod.rfc7860.auth import hmacsha2

from edumon.config import SnmpCredentials
from edumon.domain import oids
from edumon.errors import SnmpAuthError
from edumon.sources.snmp import ber, usm, usm_keys

ENGINE = bytes.fromhex("80001f8880e9630000d61ff449")
AUTH_PW = "auth-Secret-9137"
PRIV_PW = "priv-Secret-5521"
SYS_UPTIME_0 = (1, 3, 6, 1, 2, 1, 1, 3, 0)

AUTHS = ["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"]
PRIVS = ["DES", "3DES", "AES-128", "AES-192", "AES-256", "AES-192-C", "AES-256-C"]
MAC_LENGTH = {"MD5": 12, "SHA": 12, "SHA-224": 16, "SHA-256": 24, "SHA-384": 32, "SHA-512": 48}

_AUTH_ORACLES: dict[str, Any] = {
    "MD5": hmacmd5.HmacMd5(),
    "SHA": hmacsha.HmacSha(),
    "SHA-224": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA224_SERVICE_ID),
    "SHA-256": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA256_SERVICE_ID),
    "SHA-384": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SAH384_SERVICE_ID),
    "SHA-512": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA512_SERVICE_ID),
}
_AUTH_IDS = {
    "MD5": hmacmd5.HmacMd5.SERVICE_ID,
    "SHA": hmacsha.HmacSha.SERVICE_ID,
    "SHA-224": hmacsha2.HmacSha2.SHA224_SERVICE_ID,
    "SHA-256": hmacsha2.HmacSha2.SHA256_SERVICE_ID,
    "SHA-384": hmacsha2.HmacSha2.SAH384_SERVICE_ID,
    "SHA-512": hmacsha2.HmacSha2.SHA512_SERVICE_ID,
}
# pysnmp's names: Blumenthal is AesBlumenthal192/256, Reeder (Cisco) is Aes192/Aes256.
_PRIV_ORACLES: dict[str, Any] = {
    "DES": des.Des,
    "3DES": des3.Des3,
    "AES-128": aes.Aes,
    "AES-192": aes192.AesBlumenthal192,
    "AES-256": aes256.AesBlumenthal256,
    "AES-192-C": aes192.Aes192,
    "AES-256-C": aes256.Aes256,
}
# Shared by the tests: the password-to-key step is a megabyte of hashing per password.
KEYS = usm.KeyCache()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def creds(
    auth: str | None = "SHA", priv: str | None = "AES-128", user: str = "edu-user"
) -> SnmpCredentials:
    return SnmpCredentials.model_validate(
        {
            "version": "3",
            "user": user,
            "auth_protocol": auth,
            "auth_password": SecretStr(AUTH_PW) if auth else None,
            "priv_protocol": priv,
            "priv_password": SecretStr(PRIV_PW) if priv else None,
        }
    )


def session(
    credentials: SnmpCredentials, clock: FakeClock, target: str = "127.0.0.1:161"
) -> usm.UsmSession:
    s = usm.UsmSession(credentials, KEYS, target=target, clock=clock)
    s.learn(ber.UsmSecurityParameters(ENGINE, 3, 5000, b""))
    return s


# ------------------------------------------------------------------------------ keys


@pytest.mark.parametrize(
    ("auth", "ku", "kul"),
    [
        # RFC 3414 appendix A.3.1 and A.3.2: password "maplesyrup", engine ID 00..02.
        ("MD5", "9faf3283884e92834ebc9847d8edd963", "526f5eed9fcce26f8964c2930787d82b"),
        (
            "SHA",
            "9fb5cc0381497b3793528939ff788d5d79145211",
            "6695febc9288e36282235fc7151f128497b38f3f",
        ),
    ],
)
def test_rfc3414_appendix_a3_vectors(auth: str, ku: str, kul: str) -> None:
    engine = bytes.fromhex("000000000000000000000002")
    master = usm_keys.password_to_key(b"maplesyrup", auth)
    assert master.hex() == ku
    assert usm_keys.localize(master, engine, auth).hex() == kul
    assert usm.localize_auth_key(b"maplesyrup", engine, auth).hex() == kul


@pytest.mark.parametrize("auth", AUTHS)
@pytest.mark.parametrize(
    "password", [b"maplesyrup", b"a-Longer-password-than-64-octets" * 3, b"x7"]
)
def test_auth_keys_match_pysnmp(auth: str, password: bytes) -> None:
    oracle = _AUTH_ORACLES[auth]
    ku = usm_keys.password_to_key(password, auth)
    assert ku == bytes(oracle.hash_passphrase(password))
    assert usm_keys.localize(ku, ENGINE, auth) == bytes(
        oracle.localize_key(univ.OctetString(ku), univ.OctetString(ENGINE))
    )


def test_empty_password_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        usm_keys.password_to_key(b"", "SHA")


@pytest.mark.parametrize("priv", PRIVS)
@pytest.mark.parametrize("auth", AUTHS)
def test_priv_keys_match_pysnmp(auth: str, priv: str) -> None:
    oracle = _PRIV_ORACLES[priv]()
    ku = usm_keys.password_to_key(PRIV_PW.encode(), auth)
    assert ku == bytes(oracle.hash_passphrase(_AUTH_IDS[auth], PRIV_PW.encode()))
    theirs = bytes(
        oracle.localize_key(_AUTH_IDS[auth], univ.OctetString(ku), univ.OctetString(ENGINE))
    )
    ours = usm.localize_priv_key(ku, ENGINE, auth, priv)
    assert ours == theirs
    assert len(ours) == {"DES": 16, "AES-128": 16, "AES-192": 24, "AES-192-C": 24}.get(priv, 32)


@pytest.mark.parametrize(("auth", "differ"), [("MD5", True), ("SHA", True), ("SHA-256", False)])
def test_blumenthal_and_reeder_differ_only_where_the_hash_is_short(auth: str, differ: bool) -> None:
    ku = usm_keys.password_to_key(PRIV_PW.encode(), auth)
    kul = usm_keys.localize(ku, ENGINE, auth)
    blumenthal = usm.localize_priv_key(ku, ENGINE, auth, "AES-256")
    reeder = usm.localize_priv_key(ku, ENGINE, auth, "AES-256-C")
    assert (blumenthal != reeder) is differ
    # Both begin with the plain localized key (cut to 32 octets).
    assert blumenthal[: len(kul)] == reeder[: len(kul)] == kul[:32]
    if differ:
        h = usm_keys.HASHES[auth]
        assert blumenthal == (kul + h(kul).digest())[:32]
        again = usm_keys.localize(usm_keys.password_to_key(kul, auth), ENGINE, auth)
        assert reeder == (kul + again)[:32]


def test_key_cache_reuses_keys_and_prints_no_secret() -> None:
    cache = usm.KeyCache()
    a = cache.keys(creds(), ENGINE)
    assert cache.keys(creds(), ENGINE) is a
    assert cache.keys(creds(), ENGINE + b"x") != a
    assert cache.keys(creds(priv="AES-256-C"), ENGINE) != cache.keys(
        creds("SHA", "AES-256"), ENGINE
    )
    text = repr(cache) + repr(a)
    assert a.auth is not None
    assert a.priv is not None
    assert a.auth.hex() not in text
    assert a.priv.hex() not in text
    assert AUTH_PW not in text


def test_protocol_names_are_the_configurations() -> None:
    # Every name the configuration accepts has an implementation, and no more.
    def names(field: str) -> set[str]:
        literal = next(a for a in get_args(SnmpCredentials.model_fields[field].annotation) if a)
        return set(get_args(literal))

    assert names("auth_protocol") == set(usm.AUTH_PROTOCOLS) == set(AUTHS)
    assert names("priv_protocol") == set(usm.PRIV_PROTOCOLS) == set(PRIVS)


# ------------------------------------------------------------------------------ messages

PAIRS = [(auth, "AES-128") for auth in AUTHS] + [
    (auth, priv) for auth in ("MD5", "SHA", "SHA-512") for priv in PRIVS if priv != "AES-128"
]


def _oracle_decrypt(priv: str, key: bytes, sec: ber.UsmSecurityParameters, data: bytes) -> bytes:
    salt: Any = univ.OctetString(sec.priv_params)
    if priv.startswith("AES"):
        salt = list(sec.priv_params)  # pysnmp's AES services take the salt as a list
    return bytes(
        _PRIV_ORACLES[priv]().decrypt_data(
            univ.OctetString(key), (sec.engine_boots, sec.engine_time, salt), univ.OctetString(data)
        )
    )


@pytest.mark.parametrize(("auth", "priv"), PAIRS)
def test_outgoing_messages_verify_and_decrypt_with_pysnmp(auth: str, priv: str) -> None:
    clock = FakeClock()
    s = session(creds(auth, priv), clock)
    clock.now += 42.7
    pdu = ber.get_request(77, [SYS_UPTIME_0])
    data = s.encode(pdu, 77)
    msg = ber.decode_message(data)
    assert isinstance(msg, ber.V3Message)
    assert msg.flags == ber.FLAG_AUTH | ber.FLAG_PRIV | ber.FLAG_REPORTABLE
    assert msg.security.engine_boots == 3
    assert msg.security.engine_time == 5042
    assert msg.security.user_name == b"edu-user"
    assert len(msg.security.auth_params) == MAC_LENGTH[auth]
    assert len(msg.security.priv_params) == 8
    if priv in ("DES", "3DES"):
        # RFC 3414 section 8.1.1.1: the salt begins with engineBoots.
        assert msg.security.priv_params[:4] == (3).to_bytes(4, "big")
    keys = KEYS.keys(creds(auth, priv), ENGINE)
    assert keys.auth is not None
    assert keys.priv is not None
    assert msg.encrypted_pdu is not None
    # pysnmp's own check raises if the digest is wrong.
    _AUTH_ORACLES[auth].authenticate_incoming_message(
        univ.OctetString(keys.auth), univ.OctetString(msg.security.auth_params), data
    )
    scoped = ber.encode_scoped_pdu(ber.ScopedPdu(ENGINE, b"", pdu))
    plain = _oracle_decrypt(priv, keys.priv, msg.security, msg.encrypted_pdu)
    # Byte for byte: our plaintext, then (DES, 3DES) the zero padding to whole blocks.
    assert plain[: len(scoped)] == scoped
    assert plain[len(scoped) :] == b"\x00" * (len(plain) - len(scoped))
    assert len(plain) - len(scoped) < 8
    # A fresh salt per message (RFC 3826, RFC 3414 section 8.1.1.1).
    again = ber.decode_message(s.encode(pdu, 78))
    assert isinstance(again, ber.V3Message)
    assert again.security.priv_params != msg.security.priv_params


@pytest.mark.parametrize("priv", PRIVS)
def test_ciphertext_equals_pysnmps_for_the_same_salt(priv: str) -> None:
    s = session(creds("SHA", priv), FakeClock())
    counter = 0x0123456789ABCDEF
    s._salt = counter
    data = s.encode(ber.get_request(5, [SYS_UPTIME_0] * 3), 5)
    msg = ber.decode_message(data)
    assert isinstance(msg, ber.V3Message)
    assert msg.encrypted_pdu is not None
    oracle = _PRIV_ORACLES[priv]()
    oracle.local_int = counter if priv.startswith("AES") else counter & 0xFFFFFFFF
    keys = KEYS.keys(creds("SHA", priv), ENGINE)
    assert keys.priv is not None
    scoped = ber.encode_scoped_pdu(
        ber.ScopedPdu(ENGINE, b"", ber.get_request(5, [SYS_UPTIME_0] * 3))
    )
    cipher, salt = oracle.encrypt_data(univ.OctetString(keys.priv), (3, 5000, None), scoped)
    assert bytes(salt) == msg.security.priv_params
    # pysnmp pads a whole extra block when the plaintext is already whole blocks; CBC keeps
    # the common prefix identical.
    assert bytes(cipher)[: len(msg.encrypted_pdu)] == msg.encrypted_pdu
    assert len(bytes(cipher)) - len(msg.encrypted_pdu) in (
        (0,) if priv.startswith("AES") else (0, 8)
    )


def agent_reply(
    auth: str,
    pdu: ber.Pdu,
    *,
    priv: str = "AES-128",
    boots: int = 3,
    engine_time: int = 5100,
    user: bytes = b"edu-user",
    encrypt: bool = True,
    password: str = AUTH_PW,
    cut: int = 0,
) -> bytes:
    """A reply as an agent would build it, authenticated and encrypted by pysnmp's services."""
    c = creds(auth, priv)
    if password != AUTH_PW:
        c = c.model_copy(update={"auth_password": SecretStr(password)})
    keys = KEYS.keys(c, ENGINE)
    assert keys.auth is not None
    assert keys.priv is not None
    scoped = ber.encode_scoped_pdu(ber.ScopedPdu(ENGINE, b"", pdu))
    flags = ber.FLAG_AUTH
    salt = b""
    encrypted = None
    if encrypt:
        flags |= ber.FLAG_PRIV
        cipher, salt_obj = _PRIV_ORACLES[priv]().encrypt_data(
            univ.OctetString(keys.priv), (boots, engine_time, None), scoped
        )
        encrypted, salt = bytes(cipher)[: len(cipher) - cut], bytes(salt_obj)
    data, _ = ber.encode_v3_message(
        msg_id=pdu.request_id,
        max_size=65507,
        flags=flags,
        security=ber.UsmSecurityParameters(
            ENGINE, boots, engine_time, user, b"\x00" * MAC_LENGTH[auth], salt
        ),
        scoped_pdu=None if encrypt else scoped,
        encrypted_pdu=encrypted,
    )
    return bytes(
        _AUTH_ORACLES[auth].authenticate_outgoing_message(univ.OctetString(keys.auth), data)
    )


def response(request_id: int = 5) -> ber.Pdu:
    return ber.Pdu(ber.PduType.RESPONSE, request_id, 0, 0, [(SYS_UPTIME_0, ber.timeticks(99))])


def report(oid: tuple[int, ...], request_id: int = 5) -> ber.Pdu:
    return ber.Pdu(ber.PduType.REPORT, request_id, 0, 0, [(oid, ber.counter32(1))])


def unauthenticated(
    pdu: ber.Pdu, *, engine: bytes = ENGINE, boots: int = 3, engine_time: int = 5100
) -> bytes:
    data, _ = ber.encode_v3_message(
        msg_id=pdu.request_id, max_size=65507, flags=0,
        security=ber.UsmSecurityParameters(engine, boots, engine_time, b"edu-user"),
        scoped_pdu=ber.encode_scoped_pdu(ber.ScopedPdu(engine, b"", pdu)),
    )  # fmt: skip
    return data


def decoded(data: bytes) -> ber.V3Message:
    msg = ber.decode_message(data)
    assert isinstance(msg, ber.V3Message)
    return msg


def opened(s: usm.UsmSession, data: bytes) -> ber.Pdu:
    return s.open_reply(decoded(data))


@pytest.mark.parametrize(("auth", "priv"), PAIRS)
def test_authentic_encrypted_reply_opens_and_advances_the_clock(auth: str, priv: str) -> None:
    clock = FakeClock()
    s = session(creds(auth, priv), clock)
    assert s.engine_boots is None  # discovery is not authenticated
    pdu = opened(s, agent_reply(auth, response(), priv=priv))
    assert list(pdu.varbinds) == [(SYS_UPTIME_0, 99)]
    assert s.engine_clock() == (3, 5100)
    assert (s.engine_boots, s.engine_time) == (3, 5100)


@pytest.mark.parametrize("priv", ["DES", "3DES"])
def test_des_reply_of_partial_blocks_is_a_decryption_error(priv: str) -> None:
    s = session(creds("SHA", priv), FakeClock())
    with pytest.raises(SnmpAuthError, match="did not decrypt"):
        opened(s, agent_reply("SHA", response(), priv=priv, cut=3))


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


def test_reeder_keys_do_not_open_a_blumenthal_reply() -> None:
    s = session(creds("SHA", "AES-256-C"), FakeClock())
    with pytest.raises(SnmpAuthError, match="did not decrypt"):
        opened(s, agent_reply("SHA", response(), priv="AES-256"))


def test_unauthenticated_response_is_rejected_but_a_report_is_returned() -> None:
    s = session(creds("SHA", None), FakeClock())
    with pytest.raises(SnmpAuthError, match="not authenticated"):
        opened(s, unauthenticated(response()))
    got = opened(s, unauthenticated(report(oids.USM_STATS_UNKNOWN_USER_NAMES)))
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
    assert (s.engine_boots, s.engine_time) == (3, 6000)


# ------------------------------------------------------------------------------ engine state


def test_first_authenticated_reply_replaces_an_unauthenticated_discovery_clock() -> None:
    # A forged discovery reply claiming boots at the maximum would otherwise make every real
    # reply look replayed.
    clock = FakeClock()
    s = usm.UsmSession(creds(), KEYS, target="t", clock=clock)
    s.learn(ber.UsmSecurityParameters(ENGINE, 2**31 - 1, 9_999_999, b""))
    opened(s, agent_reply("SHA", response(), boots=3, engine_time=5100))
    assert s.engine_clock() == (3, 5100)
    assert s.authenticated


@pytest.mark.parametrize(
    ("oid", "engine", "boots", "engine_time"),
    [
        (oids.USM_STATS_NOT_IN_TIME_WINDOWS, ENGINE, 0, 1),
        (oids.USM_STATS_NOT_IN_TIME_WINDOWS, ENGINE, 2**31 - 1, 2**31 - 1),
        (oids.USM_STATS_UNKNOWN_ENGINE_IDS, b"\x80\x00\x00\x00\x01forged", 0, 0),
        (oids.USM_STATS_UNKNOWN_USER_NAMES, b"\x80\x00\x00\x00\x01forged", 9, 9),
    ],
    ids=["clock-back", "clock-max", "engine-id", "unknown-user"],
)
def test_unauthenticated_report_changes_nothing_once_authenticated(
    oid: tuple[int, ...], engine: bytes, boots: int, engine_time: int
) -> None:
    clock = FakeClock()
    s = session(creds(), clock)
    opened(s, agent_reply("SHA", response(), boots=3, engine_time=5100))
    before = (s.engine_id, s.engine_clock(), s.engine_boots, s.engine_time)
    forged = decoded(
        unauthenticated(report(oid), engine=engine, boots=boots, engine_time=engine_time)
    )
    pdu = s.open_reply(forged)
    assert s.handle_report(forged, usm.report_reason(pdu)) is usm.ReportAction.IGNORE
    s.learn(forged.security)  # even handed to discovery, it is refused
    assert (s.engine_id, s.engine_clock(), s.engine_boots, s.engine_time) == before
    assert s.ignored_reports == 1
    # The real agent's next reply is still accepted.
    opened(s, agent_reply("SHA", response(), boots=3, engine_time=5101))
    assert s.engine_time == 5101


def test_before_authentication_reports_correct_engine_and_clock() -> None:
    clock = FakeClock()
    s = session(creds(), clock)
    late = decoded(unauthenticated(report(oids.USM_STATS_NOT_IN_TIME_WINDOWS), engine_time=7000))
    assert s.handle_report(late, "notInTimeWindow") is usm.ReportAction.RETRY
    assert s.engine_clock() == (3, 7000)
    assert s.engine_boots is None  # still not authenticated
    unknown = decoded(unauthenticated(report(oids.USM_STATS_UNKNOWN_ENGINE_IDS)))
    assert s.handle_report(unknown, "unknownEngineID") is usm.ReportAction.RETRY
    assert not s.discovered
    wrong = decoded(unauthenticated(report(oids.USM_STATS_WRONG_DIGESTS)))
    assert s.handle_report(wrong, "wrongDigest") is usm.ReportAction.FAIL


def test_authenticated_not_in_time_window_report_resynchronises_even_backwards() -> None:
    clock = FakeClock()
    s = session(creds(), clock)
    opened(s, agent_reply("SHA", response(), boots=3, engine_time=5100))
    # The switch's boots counter was reset (e.g. a factory reset that kept the engine ID).
    data = agent_reply(
        "SHA", report(oids.USM_STATS_NOT_IN_TIME_WINDOWS), boots=1, engine_time=20, encrypt=False
    )
    msg = decoded(data)
    pdu = s.open_reply(msg)
    assert s.handle_report(msg, usm.report_reason(pdu)) is usm.ReportAction.RETRY
    assert (s.engine_boots, s.engine_time) == (1, 20)
    assert s.engine_clock() == (1, 20)


def test_reset_forgets_the_engine() -> None:
    s = session(creds(), FakeClock())
    opened(s, agent_reply("SHA", response()))
    s.reset()
    assert not s.discovered
    assert s.engine_boots is None
    with pytest.raises(RuntimeError):
        s.encode(response(), 1)


def test_no_auth_user_follows_reports() -> None:
    s = session(creds(None, None), FakeClock())
    unknown = decoded(unauthenticated(report(oids.USM_STATS_UNKNOWN_ENGINE_IDS)))
    assert s.handle_report(unknown, "unknownEngineID") is usm.ReportAction.RETRY
    assert not s.discovered
    assert s.engine_boots is None


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
    s = usm.UsmSession(creds(), KEYS, target="t")
    assert not s.discovered
    msg = ber.decode_message(s.discovery_message(9))
    assert isinstance(msg, ber.V3Message)
    assert msg.flags == ber.FLAG_REPORTABLE
    assert msg.security.engine_id == b""
    assert msg.security.user_name == b""
    assert msg.scoped_pdu is not None
    assert list(msg.scoped_pdu.pdu.varbinds) == []
    assert AUTH_PW not in repr(s)


@pytest.mark.parametrize(
    ("host", "auth", "priv", "weak"),
    [
        (1, "MD5", "AES-128", "MD5"),
        (2, "SHA", "DES", "DES"),
        (3, "MD5", "3DES", "MD5/3DES"),
        (4, "SHA", "AES-256-C", None),
        (5, "SHA-256", None, None),
    ],
)
def test_weak_algorithms_are_warned_about_once_per_switch(
    caplog: pytest.LogCaptureFixture, host: int, auth: str, priv: str | None, weak: str | None
) -> None:
    # Addresses no other test uses: the warning is once per process and switch.
    target = f"192.0.2.{host}:161"
    caplog.set_level(logging.WARNING, logger="edumon.sources.snmp.usm")
    for _ in range(3):
        usm.UsmSession(creds(auth, priv, user="weak-user"), KEYS, target=target)
    warnings = [r.getMessage() for r in caplog.records]
    if weak is None:
        assert warnings == []
        return
    assert len(warnings) == 1
    assert weak in warnings[0]
    assert target in warnings[0]
    assert "弱" in warnings[0]
    assert AUTH_PW not in warnings[0]
    assert PRIV_PW not in warnings[0]
    usm.UsmSession(creds(auth, priv, user="weak-user"), KEYS, target=f"192.0.2.{host}:1161")
    assert len(caplog.records) == 2  # another switch is warned about too


def test_late_authenticated_reply_after_reset_syncs_nothing() -> None:
    # A reply to a request sent before the reset (another walk stream) arrives afterwards.
    s = session(creds(), FakeClock())
    late = agent_reply("SHA", response())
    s.reset()
    with pytest.raises(SnmpAuthError, match="different SNMP engine"):
        opened(s, late)
    assert not s.authenticated
    s.learn(ber.UsmSecurityParameters(ENGINE, 4, 10, b""))
    assert s.discovered
    assert s.engine_clock() == (4, 10)
