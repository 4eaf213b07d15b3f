"""SNMPv3 User-based Security Model, manager side: keys, digests, privacy and engine time.

RFC 3414 (USM, HMAC-SHA-96), RFC 7860 (HMAC-SHA-2), RFC 3826 (AES-128-CFB) and the AES-256
key extension net-snmp uses. pysnmp is used only for the password-to-key and key localisation
algorithms; messages are built and parsed by :mod:`edumon.sources.snmp.ber`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pyasn1.type import univ
from pysnmp.proto.secmod.rfc3414 import localkey

# isort: split
# pysnmp's eso.priv modules import rfc3414 circularly; importing rfc3414 first settles it.
from pysnmp.proto.secmod.eso.priv import aes256
from pysnmp.proto.secmod.rfc3414.auth import hmacsha
from pysnmp.proto.secmod.rfc3826.priv import aes
from pysnmp.proto.secmod.rfc7860.auth import hmacsha2

from edumon.config import SnmpCredentials
from edumon.domain import oids
from edumon.errors import SnmpAuthError, SnmpProtocolError
from edumon.sources.snmp import ber

try:  # cryptography >= 43 keeps CFB here; importing it from the old place warns.
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

logger = logging.getLogger(__name__)

# RFC 3414 section 2.2.3: outside the time window when more than 150 s apart.
TIME_WINDOW_SECONDS = 150
_BOOTS_MAX = 2**31 - 1
DEFAULT_MAX_SIZE = 65507
FLAG_AUTH = ber.FLAG_AUTH
FLAG_PRIV = ber.FLAG_PRIV


@dataclass(frozen=True, slots=True)
class _AuthAlgorithm:
    hash: Callable[..., Any]
    mac_length: int
    service_id: tuple[int, ...]


_AUTH: MappingProxyType[str, _AuthAlgorithm] = MappingProxyType(
    {
        "SHA": _AuthAlgorithm(hashlib.sha1, 12, hmacsha.HmacSha.SERVICE_ID),
        "SHA-256": _AuthAlgorithm(hashlib.sha256, 24, hmacsha2.HmacSha2.SHA256_SERVICE_ID),
        "SHA-512": _AuthAlgorithm(hashlib.sha512, 48, hmacsha2.HmacSha2.SHA512_SERVICE_ID),
    }
)

# AES-128 is RFC 3826. For AES-256, net-snmp 5.9's "AES-256" (usmAES256PrivProtocol) extends
# the localized key the Blumenthal way, Kul || H(Kul); the Reeder extension (re-running the
# password-to-key step, aes256.Aes256) is Cisco's "AES-256-C" and does not interoperate with it.
_PRIV: MappingProxyType[str, aes.Aes] = MappingProxyType(
    {"AES-128": aes.Aes(), "AES-256": aes256.AesBlumenthal256()}
)


def master_key(password: bytes, auth_protocol: str) -> bytes:
    """RFC 3414 password-to-key (Ku): the password hashed over one megabyte of repetitions."""
    return bytes(localkey.hash_passphrase(password, _AUTH[auth_protocol].hash))


def localize_auth_key(master: bytes, engine_id: bytes, auth_protocol: str) -> bytes:
    """The authentication key localized to an engine: H(Ku || engineID || Ku)."""
    algo = _AUTH[auth_protocol]
    return bytes(localkey.localize_key(master, univ.OctetString(engine_id), algo.hash))


def localize_priv_key(
    master: bytes, engine_id: bytes, auth_protocol: str, priv_protocol: str
) -> bytes:
    """The privacy key localized to an engine, cut or extended to the cipher's key size.

    ``master`` is the privacy password hashed with the *authentication* protocol's hash.
    """
    service = _PRIV[priv_protocol]
    key = service.localize_key(
        _AUTH[auth_protocol].service_id, univ.OctetString(master), univ.OctetString(engine_id)
    )
    return bytes(key)


@dataclass(frozen=True, slots=True)
class LocalizedKeys:
    """Keys of one user localized to one engine. Never printed."""

    auth: bytes | None = field(repr=False)
    priv: bytes | None = field(repr=False)


def _fingerprint(*parts: bytes) -> bytes:
    # Cache keys are digests, so the cache never holds a password as a dictionary key.
    h = hashlib.sha256(b"edumon-usm-cache")
    for part in parts:
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.digest()


class KeyCache:
    """Localized keys per (credentials, engine ID).

    The password-to-key step hashes a megabyte per password, so it runs once per distinct
    password however many switches share it; localisation is cheap but cached per engine too.
    """

    def __init__(self) -> None:
        self._master: dict[bytes, bytes] = {}
        self._local: dict[bytes, LocalizedKeys] = {}

    def __repr__(self) -> str:
        return f"KeyCache(<{len(self._local)} localized>)"

    def _master_key(self, password: bytes, auth_protocol: str) -> bytes:
        fp = _fingerprint(auth_protocol.encode(), password)
        key = self._master.get(fp)
        if key is None:
            key = self._master[fp] = master_key(password, auth_protocol)
        return key

    def keys(self, credentials: SnmpCredentials, engine_id: bytes) -> LocalizedKeys:
        """The keys of ``credentials`` localized to ``engine_id``."""
        auth_proto = credentials.auth_protocol
        if auth_proto is None or credentials.auth_password is None:
            return LocalizedKeys(None, None)
        auth_pw = credentials.auth_password.get_secret_value().encode()
        priv_proto = credentials.priv_protocol
        priv_pw = (
            credentials.priv_password.get_secret_value().encode()
            if credentials.priv_password is not None
            else b""
        )
        fp = _fingerprint(
            auth_proto.encode(), auth_pw, (priv_proto or "").encode(), priv_pw, engine_id
        )
        found = self._local.get(fp)
        if found is not None:
            return found
        auth_key = localize_auth_key(self._master_key(auth_pw, auth_proto), engine_id, auth_proto)
        priv_key = None
        if priv_proto is not None:
            priv_key = localize_priv_key(
                self._master_key(priv_pw, auth_proto), engine_id, auth_proto, priv_proto
            )
        found = self._local[fp] = LocalizedKeys(auth_key, priv_key)
        return found


_REPORT_REASONS: MappingProxyType[tuple[int, ...], str] = MappingProxyType(
    {
        oids.USM_STATS_UNSUPPORTED_SEC_LEVELS: "unsupportedSecLevel",
        oids.USM_STATS_NOT_IN_TIME_WINDOWS: "notInTimeWindow",
        oids.USM_STATS_UNKNOWN_USER_NAMES: "unknownUserName",
        oids.USM_STATS_UNKNOWN_ENGINE_IDS: "unknownEngineID",
        oids.USM_STATS_WRONG_DIGESTS: "wrongDigest",
        oids.USM_STATS_DECRYPTION_ERRORS: "decryptionError",
    }
)


def report_reason(pdu: ber.Pdu) -> str:
    """Why an agent sent a Report PDU: the usmStats counter it names, e.g. ``wrongDigest``."""
    for oid, _ in pdu.varbinds:
        reason = _REPORT_REASONS.get(oid)
        if reason is not None:
            return reason
    if pdu.varbinds:
        return "report " + oids.format_oid(pdu.varbinds[0][0])
    return "report without varbinds"


class UsmSession:
    """USM state for one user at one authoritative engine (one switch).

    Holds the discovered engine ID, the engine's boots/time (advanced by a monotonic clock),
    the localized keys, and the running salt for privacy. Not shared between switches.
    """

    def __init__(
        self,
        credentials: SnmpCredentials,
        keys: KeyCache,
        *,
        target: str,
        max_size: int = DEFAULT_MAX_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if credentials.version != "3" or not credentials.user:
            raise ValueError("UsmSession needs SNMPv3 credentials with a user")
        self._credentials = credentials
        self._key_cache = keys
        self._target = target
        self._clock = clock
        self._max_size = max_size
        self.user = credentials.user.encode()
        self._auth = _AUTH[credentials.auth_protocol] if credentials.auth_protocol else None
        self._priv = credentials.priv_protocol is not None
        self._level = (FLAG_AUTH if self._auth else 0) | (FLAG_PRIV if self._priv else 0)
        self.engine_id: bytes | None = None
        self._boots = 0
        self._time = 0
        self._time_at = 0.0
        self._keys = LocalizedKeys(None, None)
        # RFC 3826 section 3.1.2.1: a 64-bit integer, random at start, incremented per message.
        self._salt = int.from_bytes(os.urandom(8), "big")

    def __repr__(self) -> str:
        return f"UsmSession(target={self._target!r}, user={self.user.decode(errors='replace')!r})"

    def _who(self) -> str:
        return f"{self._target}: SNMPv3 user {self.user.decode(errors='replace')!r}"

    @property
    def discovered(self) -> bool:
        """Whether the authoritative engine ID (and, with auth, its time) is known."""
        return self.engine_id is not None

    def forget_engine(self) -> None:
        """Drop the engine ID (the switch answered unknownEngineID: replaced or reset)."""
        self.engine_id = None

    def engine_clock(self) -> tuple[int, int]:
        """Our estimate of the engine's (boots, time) now."""
        if self._time_at == 0.0:
            return self._boots, self._time
        elapsed = int(self._clock() - self._time_at)
        return self._boots, min(self._time + elapsed, _BOOTS_MAX)

    def discovery_message(self, msg_id: int) -> bytes:
        """An unauthenticated, empty GetRequest that makes the agent report its engine ID."""
        scoped = ber.encode_scoped_pdu(ber.ScopedPdu(b"", b"", ber.get_request(msg_id, ())))
        msg, _ = ber.encode_v3_message(
            msg_id=msg_id,
            max_size=self._max_size,
            flags=ber.FLAG_REPORTABLE,
            security=ber.UsmSecurityParameters(b"", 0, 0, b""),
            scoped_pdu=scoped,
        )
        return msg

    def learn(self, security: ber.UsmSecurityParameters) -> None:
        """Take engine ID, boots and time from a discovery or notInTimeWindow report."""
        if not security.engine_id:
            raise SnmpProtocolError(f"{self._target}: SNMPv3 discovery reply has no engine ID")
        if not (
            0 <= security.engine_boots <= _BOOTS_MAX and 0 <= security.engine_time <= _BOOTS_MAX
        ):
            raise SnmpProtocolError(f"{self._target}: SNMPv3 report has an impossible engine clock")
        if security.engine_id != self.engine_id:
            self.engine_id = security.engine_id
            self._keys = self._key_cache.keys(self._credentials, security.engine_id)
        self._set_clock(security.engine_boots, security.engine_time)

    def _set_clock(self, boots: int, engine_time: int) -> None:
        self._boots = boots
        self._time = engine_time
        self._time_at = self._clock()

    def _next_salt(self) -> bytes:
        salt = self._salt
        self._salt = (salt + 1) & 0xFFFFFFFFFFFFFFFF
        return salt.to_bytes(8, "big")

    def encode(self, pdu: ber.Pdu, msg_id: int) -> bytes:
        """A whole v3 message carrying ``pdu``, authenticated and encrypted per the credentials.

        Raises:
            RuntimeError: called before discovery.
        """
        engine_id = self.engine_id
        if engine_id is None:
            raise RuntimeError("SNMPv3 engine not discovered yet")
        boots, engine_time = self.engine_clock()
        scoped = ber.encode_scoped_pdu(ber.ScopedPdu(engine_id, b"", pdu))
        auth = self._auth
        priv_params = b""
        encrypted: bytes | None = None
        if self._priv:
            priv_params = self._next_salt()
            assert self._keys.priv is not None
            encrypted = _aes_cfb(self._keys.priv, boots, engine_time, priv_params, scoped, True)
        security = ber.UsmSecurityParameters(
            engine_id,
            boots,
            engine_time,
            self.user,
            b"\x00" * auth.mac_length if auth else b"",
            priv_params,
        )
        msg, offset = ber.encode_v3_message(
            msg_id=msg_id,
            max_size=self._max_size,
            flags=self._level | ber.FLAG_REPORTABLE,
            security=security,
            scoped_pdu=None if encrypted is not None else scoped,
            encrypted_pdu=encrypted,
        )
        if auth is None:
            return msg
        assert self._keys.auth is not None
        mac = hmac.new(self._keys.auth, msg, auth.hash).digest()[: auth.mac_length]
        return msg[:offset] + mac + msg[offset + auth.mac_length :]

    def open_reply(self, msg: ber.V3Message) -> ber.Pdu:
        """Verify, decrypt and return the PDU of a reply to one of our requests.

        An unauthenticated Report is returned as is (agents send most reports without
        authentication, since the problem may be our keys); callers look at
        :func:`report_reason`. An authenticated reply updates our notion of the engine clock.

        Raises:
            SnmpAuthError: the digest is wrong, the reply is not protected as asked, the user or
                engine does not match, or the reply is outside the time window.
            SnmpProtocolError: the decrypted data is not a scopedPDU.
        """
        flags = msg.flags
        sec = msg.security
        if not flags & FLAG_AUTH:
            pdu = self._plain_pdu(msg)
            if pdu.type == ber.PduType.REPORT or self._auth is None:
                return pdu
            raise SnmpAuthError(f"{self._who()}: reply was not authenticated; ignoring it")
        auth = self._auth
        if auth is None:
            raise SnmpAuthError(f"{self._who()}: unexpected authenticated reply")
        if sec.user_name != self.user:
            raise SnmpAuthError(f"{self._who()}: reply names a different user")
        if self.engine_id is not None and sec.engine_id != self.engine_id:
            raise SnmpAuthError(f"{self._who()}: reply comes from a different SNMP engine")
        if not self._digest_ok(msg, auth):
            raise SnmpAuthError(
                f"{self._who()}: reply failed authentication (wrong digest): check that "
                "auth_protocol and auth_password match the switch"
            )
        if flags & FLAG_PRIV:
            pdu = self._decrypt(msg)
        else:
            pdu = self._plain_pdu(msg)
            if self._priv and pdu.type != ber.PduType.REPORT:
                raise SnmpAuthError(f"{self._who()}: reply was not encrypted; ignoring it")
        if pdu.type != ber.PduType.REPORT:
            # A notInTimeWindow report carries the clock to resynchronise to (see learn()).
            self._check_time(sec.engine_boots, sec.engine_time)
        return pdu

    def _decrypt(self, msg: ber.V3Message) -> ber.Pdu:
        sec = msg.security
        if msg.encrypted_pdu is None or self._keys.priv is None:
            raise SnmpAuthError(f"{self._who()}: reply privacy does not match ours")
        if len(sec.priv_params) != 8 or not (
            0 <= sec.engine_boots <= _BOOTS_MAX and 0 <= sec.engine_time <= _BOOTS_MAX
        ):
            raise SnmpAuthError(f"{self._who()}: reply has bad privacy parameters")
        plain = _aes_cfb(
            self._keys.priv,
            sec.engine_boots,
            sec.engine_time,
            sec.priv_params,
            msg.encrypted_pdu,
            False,
        )
        try:
            return ber.decode_scoped_pdu(plain).pdu
        except SnmpProtocolError:
            raise SnmpAuthError(
                f"{self._who()}: reply did not decrypt: check that priv_protocol and "
                "priv_password match the switch"
            ) from None

    def _plain_pdu(self, msg: ber.V3Message) -> ber.Pdu:
        if msg.scoped_pdu is None:
            raise SnmpProtocolError(f"{self._who()}: encrypted reply without the privacy flag")
        return msg.scoped_pdu.pdu

    def _digest_ok(self, msg: ber.V3Message, auth: _AuthAlgorithm) -> bool:
        key = self._keys.auth
        got = msg.security.auth_params
        if key is None or len(got) != auth.mac_length:
            return False
        off = msg.auth_params_offset
        raw = msg.raw
        whole = raw[:off] + b"\x00" * auth.mac_length + raw[off + auth.mac_length :]
        expected = hmac.new(key, whole, auth.hash).digest()[: auth.mac_length]
        return hmac.compare_digest(expected, got)

    def _check_time(self, boots: int, engine_time: int) -> None:
        # RFC 3414 section 3.2.7 b): a non-authoritative engine accepts the newer clock and
        # refuses one from the past (a replayed message).
        if not (0 <= boots <= _BOOTS_MAX and 0 <= engine_time <= _BOOTS_MAX):
            raise SnmpProtocolError(f"{self._who()}: reply has an impossible engine clock")
        local_boots, local_time = self.engine_clock()
        if boots > local_boots or (boots == local_boots and engine_time > local_time):
            self._set_clock(boots, engine_time)
            return
        if (
            local_boots == _BOOTS_MAX
            or boots < local_boots
            or engine_time < local_time - TIME_WINDOW_SECONDS
        ):
            raise SnmpAuthError(f"{self._who()}: reply is outside the time window (replayed?)")

    def report_error(self, reason: str) -> SnmpAuthError:
        """An error a school admin can act on, for a Report the agent sent instead of a reply."""
        hints = {
            "unknownUserName": "the switch does not know this user: check user",
            "wrongDigest": "wrong digest: check auth_protocol and auth_password",
            "decryptionError": "the switch could not decrypt: check priv_protocol and "
            "priv_password",
            "unsupportedSecLevel": "the switch refuses this security level: check which of "
            "auth/priv the user is configured for",
            "notInTimeWindow": "engine time out of sync even after resynchronising",
            "unknownEngineID": "engine ID unknown even after rediscovery",
        }
        return SnmpAuthError(f"{self._who()}: {hints.get(reason, reason)}")


def _aes_cfb(
    key: bytes, boots: int, engine_time: int, salt: bytes, data: bytes, encrypt: bool
) -> bytes:
    # RFC 3826 section 3.1.2.1: IV = engineBoots (4) || engineTime (4) || salt (8).
    iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + salt
    cipher = Cipher(algorithms.AES(key), CFB(iv))
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()
