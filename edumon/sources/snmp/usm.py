"""SNMPv3 User-based Security Model, manager side: keys, digests, privacy and engine time.

RFC 3414 (USM: HMAC-MD5-96, HMAC-SHA-96, DES-CBC), RFC 7860 (HMAC-SHA-2), RFC 3826
(AES-128-CFB), draft-blumenthal-aes-usm (AES-192/256, net-snmp's key extension) and
draft-reeder-snmpv3-usm-3desede (3DES-EDE, and the key extension Cisco uses for AES-192/256).
Keys come from :mod:`edumon.sources.snmp.usm_keys`; messages are built and parsed by
:mod:`edumon.sources.snmp.ber`.

Engine state follows RFC 3414 section 3.2: only an authenticated message moves our notion of
the engine's boots and time, and once one has been accepted, no unauthenticated Report (which
anyone on the path can forge) changes the engine ID or the clock.
"""

from __future__ import annotations

import enum
import hmac
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType

from edumon.config import SnmpCredentials
from edumon.domain import oids
from edumon.errors import SnmpAuthError, SnmpProtocolError
from edumon.sources.snmp import ber, usm_keys
from edumon.sources.snmp.usm_keys import Extension

try:  # cryptography >= 43 keeps CFB and TripleDES here; importing them from the old place warns.
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms
from cryptography.hazmat.primitives.ciphers.modes import CBC

logger = logging.getLogger(__name__)

# RFC 3414 section 2.2.3: outside the time window when more than 150 s apart.
TIME_WINDOW_SECONDS = 150
_BOOTS_MAX = 2**31 - 1
DEFAULT_MAX_SIZE = 65507
FLAG_AUTH = ber.FLAG_AUTH
FLAG_PRIV = ber.FLAG_PRIV


@dataclass(frozen=True, slots=True)
class _AuthAlgorithm:
    digest: str
    """hashlib name: hmac.digest() takes OpenSSL's one-shot path with it."""
    mac_length: int
    weak: bool = False


_AUTH: MappingProxyType[str, _AuthAlgorithm] = MappingProxyType(
    {
        "MD5": _AuthAlgorithm("md5", 12, weak=True),  # RFC 3414 HMAC-MD5-96
        "SHA": _AuthAlgorithm("sha1", 12),  # RFC 3414 HMAC-SHA-96
        "SHA-224": _AuthAlgorithm("sha224", 16),  # RFC 7860 usmHMAC128SHA224AuthProtocol
        "SHA-256": _AuthAlgorithm("sha256", 24),
        "SHA-384": _AuthAlgorithm("sha384", 32),
        "SHA-512": _AuthAlgorithm("sha512", 48),
    }
)


class _Cipher(enum.Enum):
    AES_CFB = "aes-cfb"
    DES_CBC = "des-cbc"
    DES_EDE_CBC = "des-ede-cbc"


@dataclass(frozen=True, slots=True)
class _Privacy:
    cipher: _Cipher
    key_size: int
    """Octets of localized key the protocol takes (DES and 3DES: cipher key then pre-IV)."""
    extension: Extension = "blumenthal"
    """How a localized key shorter than key_size is extended (usm_keys.extend)."""
    weak: bool = False


# Names follow net-snmp's (snmpd.conf createUser, snmpget -x); snmp_exporter's AES, AES192,
# AES256, AES192C, AES256C are AES-128, AES-192, AES-256, AES-192-C, AES-256-C here.
_PRIV: MappingProxyType[str, _Privacy] = MappingProxyType(
    {
        # RFC 3414 section 8: DES key (8) and pre-IV (8); every hash is long enough.
        "DES": _Privacy(_Cipher.DES_CBC, 16, weak=True),
        # draft-reeder-snmpv3-usm-3desede: 3DES key (24) and pre-IV (8), Reeder-extended.
        "3DES": _Privacy(_Cipher.DES_EDE_CBC, 32, "reeder", weak=True),
        "AES-128": _Privacy(_Cipher.AES_CFB, 16),  # RFC 3826
        "AES-192": _Privacy(_Cipher.AES_CFB, 24, "blumenthal"),
        "AES-256": _Privacy(_Cipher.AES_CFB, 32, "blumenthal"),
        "AES-192-C": _Privacy(_Cipher.AES_CFB, 24, "reeder"),
        "AES-256-C": _Privacy(_Cipher.AES_CFB, 32, "reeder"),
    }
)

AUTH_PROTOCOLS = tuple(_AUTH)
PRIV_PROTOCOLS = tuple(_PRIV)


def localize_auth_key(password: bytes, engine_id: bytes, auth_protocol: str) -> bytes:
    """The authentication key of ``password`` localized to ``engine_id`` (RFC 3414 A.2)."""
    return usm_keys.localize(
        usm_keys.password_to_key(password, auth_protocol), engine_id, auth_protocol
    )


def localize_priv_key(
    master: bytes, engine_id: bytes, auth_protocol: str, priv_protocol: str
) -> bytes:
    """The privacy key localized to an engine, cut or extended to what the cipher takes.

    ``master`` is the privacy password's Ku, hashed with the *authentication* protocol's hash.
    """
    priv = _PRIV[priv_protocol]
    return usm_keys.localize_priv_key(
        master, engine_id, auth_protocol, priv.key_size, priv.extension
    )


@dataclass(frozen=True, slots=True)
class LocalizedKeys:
    """Keys of one user localized to one engine. Never printed."""

    auth: bytes | None = field(repr=False)
    priv: bytes | None = field(repr=False)


def _fingerprint(*parts: bytes) -> bytes:
    # Cache keys are digests, so the cache never holds a password as a dictionary key.
    h = usm_keys.HASHES["SHA-256"](b"edumon-usm-cache")
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
            key = self._master[fp] = usm_keys.password_to_key(password, auth_protocol)
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
        auth_key = usm_keys.localize(self._master_key(auth_pw, auth_proto), engine_id, auth_proto)
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


class ReportAction(enum.Enum):
    """What a client does about a Report it got instead of a Response."""

    RETRY = "retry"
    """State was corrected (clock resynchronised, or engine to be rediscovered): send again."""
    IGNORE = "ignore"
    """Unauthenticated, so possibly forged, in a session that has authenticated replies: it
    changed nothing; count the attempt as lost."""
    FAIL = "fail"
    """An error to report (see :meth:`UsmSession.report_error`)."""


# Switches already warned about weak algorithms: once per process, not once per poll.
_warned_weak: set[tuple[str, str]] = set()


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
        self._priv = _PRIV[credentials.priv_protocol] if credentials.priv_protocol else None
        self._level = (FLAG_AUTH if self._auth else 0) | (FLAG_PRIV if self._priv else 0)
        self.engine_id: bytes | None = None
        # Our estimate of the engine clock is (_boots, _time) at monotonic _time_at, advanced
        # by the elapsed time. _latest_time is RFC 3414's latestReceivedEngineTime. Until
        # _synced, the clock is the unauthenticated one from discovery: good enough to send
        # with (the agent corrects us with an authenticated notInTimeWindow), never trusted.
        self._boots = 0
        self._time = 0
        self._time_at = 0.0
        self._latest_time = 0
        self._synced = False
        self._keys = LocalizedKeys(None, None)
        # RFC 3826 section 3.1.2.1: a 64-bit integer, random at start, incremented per message.
        # DES and 3DES use its low 32 bits after engineBoots (RFC 3414 section 8.1.1.1).
        self._salt = int.from_bytes(os.urandom(8), "big")
        self.ignored_reports = 0
        """Unauthenticated Reports ignored because the session has authenticated replies."""
        self._warn_if_weak()

    def __repr__(self) -> str:
        return f"UsmSession(target={self._target!r}, user={self.user.decode(errors='replace')!r})"

    def _who(self) -> str:
        return f"{self._target}: SNMPv3 user {self.user.decode(errors='replace')!r}"

    def _warn_if_weak(self) -> None:
        creds = self._credentials
        weak = []
        if self._auth is not None and self._auth.weak:
            weak.append(str(creds.auth_protocol))
        if self._priv is not None and self._priv.weak:
            weak.append(str(creds.priv_protocol))
        key = (self._target, self.user.decode(errors="replace"))
        if not weak or key in _warned_weak:
            return
        _warned_weak.add(key)
        logger.warning(
            "%s 使用了弱算法 %s，建议在交换机上改用 SHA-256 与 AES-128 及以上 / "
            "uses weak algorithms (%s): prefer SHA-2 and AES where the switch supports them",
            self._who(),
            "/".join(weak),
            "/".join(weak),
        )

    @property
    def discovered(self) -> bool:
        """Whether the authoritative engine ID (and, with auth, its time) is known."""
        return self.engine_id is not None

    @property
    def authenticated(self) -> bool:
        """Whether an authenticated message from the current engine has been accepted."""
        return self._synced

    @property
    def engine_boots(self) -> int | None:
        """snmpEngineBoots from the last authenticated message; None before one arrived."""
        return self._boots if self._synced else None

    @property
    def engine_time(self) -> int | None:
        """snmpEngineTime (seconds since engine_boots last changed) from the newest
        authenticated message; None before one arrived."""
        return self._latest_time if self._synced else None

    def reset(self) -> None:
        """Forget the engine ID and its clock: the next request starts with discovery.

        For a real failure only (every attempt of a request refused, e.g. a replaced switch
        with a new engine ID), never on the word of a single unauthenticated Report.
        """
        self.engine_id = None
        self._keys = LocalizedKeys(None, None)
        self._boots = self._time = self._latest_time = 0
        self._time_at = 0.0
        self._synced = False

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
        """Take engine ID, boots and time from an unauthenticated discovery report.

        Does nothing once an authenticated message has been accepted: then only another
        authenticated message moves the clock, and only :meth:`reset` drops the engine ID.
        """
        if self._synced:
            logger.debug("%s: unauthenticated engine parameters ignored", self._target)
            return
        if not security.engine_id:
            raise SnmpProtocolError(f"{self._target}: SNMPv3 discovery reply has no engine ID")
        _check_clock_range(self._target, security.engine_boots, security.engine_time)
        if security.engine_id != self.engine_id:
            self.engine_id = security.engine_id
            self._keys = self._key_cache.keys(self._credentials, security.engine_id)
        self._set_clock(security.engine_boots, security.engine_time)

    def _set_clock(self, boots: int, engine_time: int) -> None:
        self._boots = boots
        self._time = self._latest_time = engine_time
        self._time_at = self._clock()

    def _next_salt(self, boots: int) -> bytes:
        salt = self._salt
        self._salt = (salt + 1) & 0xFFFFFFFFFFFFFFFF
        assert self._priv is not None
        if self._priv.cipher is _Cipher.AES_CFB:
            return salt.to_bytes(8, "big")
        return boots.to_bytes(4, "big") + (salt & 0xFFFFFFFF).to_bytes(4, "big")

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
        priv = self._priv
        priv_params = b""
        encrypted: bytes | None = None
        if priv is not None:
            priv_params = self._next_salt(boots)
            assert self._keys.priv is not None
            encrypted = _crypt(priv, self._keys.priv, boots, engine_time, priv_params, scoped, True)
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
        mac = hmac.digest(self._keys.auth, msg, auth.digest)[: auth.mac_length]
        return msg[:offset] + mac + msg[offset + auth.mac_length :]

    def open_reply(self, msg: ber.V3Message) -> ber.Pdu:
        """Verify, decrypt and return the PDU of a reply to one of our requests.

        An unauthenticated Report is returned as is (agents send most reports without
        authentication, since the problem may be our keys); callers pass it to
        :meth:`handle_report`. An authenticated message moves our notion of the engine clock
        forward (RFC 3414 section 3.2 step 7 b); an authenticated notInTimeWindow Report sets
        it to the agent's.

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
        if sec.engine_id != self.engine_id:
            # Also after reset(): a late reply to a request sent before cannot sync the clock
            # of an engine not yet rediscovered.
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
            if self._priv is not None and pdu.type != ber.PduType.REPORT:
                raise SnmpAuthError(f"{self._who()}: reply was not encrypted; ignoring it")
        if pdu.type != ber.PduType.REPORT:
            self._check_time(sec.engine_boots, sec.engine_time)
        elif report_reason(pdu) == "notInTimeWindow":
            # Authenticated, and the transport matched it to our request's msgID: the agent's
            # own clock, even if older than ours (a switch whose boots counter was reset).
            _check_clock_range(self._who(), sec.engine_boots, sec.engine_time)
            if sec.engine_boots < self._boots:
                logger.info("%s: engine boots went back; resynchronising", self._who())
            self._set_clock(sec.engine_boots, sec.engine_time)
            self._synced = True
        return pdu

    def handle_report(self, msg: ber.V3Message, reason: str) -> ReportAction:
        """Decide about a Report that :meth:`open_reply` returned for one of our requests.

        Authenticated reports were acted on in :meth:`open_reply`. An unauthenticated one may
        correct the engine ID or clock only while nothing authenticated is known (discovery,
        or a noAuthNoPriv user); afterwards it is ignored (RFC 3414 section 3.2).
        """
        if msg.flags & FLAG_AUTH:
            return ReportAction.RETRY if reason == "notInTimeWindow" else ReportAction.FAIL
        if self._synced:
            self.ignored_reports += 1
            log = logger.warning if self.ignored_reports == 1 else logger.debug
            log(
                "%s: 忽略未经认证的 Report (%s) / ignoring an unauthenticated %s Report: "
                "the session has authenticated replies",
                self._who(),
                reason,
                reason,
            )
            return ReportAction.IGNORE
        if reason == "notInTimeWindow":
            self.learn(msg.security)
            return ReportAction.RETRY
        if reason == "unknownEngineID":
            self.reset()
            return ReportAction.RETRY
        return ReportAction.FAIL

    def _decrypt(self, msg: ber.V3Message) -> ber.Pdu:
        sec = msg.security
        priv = self._priv
        if msg.encrypted_pdu is None or self._keys.priv is None or priv is None:
            raise SnmpAuthError(f"{self._who()}: reply privacy does not match ours")
        if len(sec.priv_params) != 8 or not (
            0 <= sec.engine_boots <= _BOOTS_MAX and 0 <= sec.engine_time <= _BOOTS_MAX
        ):
            raise SnmpAuthError(f"{self._who()}: reply has bad privacy parameters")
        failed = SnmpAuthError(
            f"{self._who()}: reply did not decrypt: check that priv_protocol and "
            "priv_password match the switch"
        )
        if priv.cipher is not _Cipher.AES_CFB and len(msg.encrypted_pdu) % 8:
            raise failed  # CBC takes whole blocks (RFC 3414 section 8.1.1.3)
        plain = _crypt(
            priv,
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
            raise failed from None

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
        expected = hmac.digest(key, whole, auth.digest)[: auth.mac_length]
        return hmac.compare_digest(expected, got)

    def _check_time(self, boots: int, engine_time: int) -> None:
        # RFC 3414 section 3.2 step 7 b), as a non-authoritative engine: take a newer clock,
        # refuse one from the past (a replayed message).
        _check_clock_range(self._who(), boots, engine_time)
        if not self._synced:
            # The first authenticated message replaces what unauthenticated discovery said.
            self._set_clock(boots, engine_time)
            self._synced = True
            return
        local_boots, local_time = self.engine_clock()
        if boots > local_boots or (boots == local_boots and engine_time > self._latest_time):
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


def _check_clock_range(who: str, boots: int, engine_time: int) -> None:
    if not (0 <= boots <= _BOOTS_MAX and 0 <= engine_time <= _BOOTS_MAX):
        raise SnmpProtocolError(f"{who}: SNMPv3 message has an impossible engine clock")


def _crypt(
    priv: _Privacy,
    key: bytes,
    boots: int,
    engine_time: int,
    salt: bytes,
    data: bytes,
    encrypt: bool,
) -> bytes:
    cipher = priv.cipher
    if cipher is _Cipher.AES_CFB:
        # RFC 3826 section 3.1.2.1: IV = engineBoots (4) || engineTime (4) || salt (8).
        iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + salt
        aes = Cipher(algorithms.AES(key), CFB(iv))
        op: CipherContext = aes.encryptor() if encrypt else aes.decryptor()
    else:
        # RFC 3414 section 8.1.1.1 (DES) and the Reeder draft (3DES): the localized key is
        # the cipher key then a pre-IV; IV = pre-IV XOR salt. Single DES is 3DES with the
        # same key thrice (cryptography no longer takes 8-octet keys).
        if cipher is _Cipher.DES_CBC:
            des_key, pre_iv = key[:8] * 3, key[8:16]
        else:
            des_key, pre_iv = key[:24], key[24:32]
        iv = (int.from_bytes(pre_iv, "big") ^ int.from_bytes(salt, "big")).to_bytes(8, "big")
        des = Cipher(TripleDES(des_key), CBC(iv))
        op = des.encryptor() if encrypt else des.decryptor()
        if encrypt and len(data) % 8:
            # RFC 3414 section 8.1.1.2: pad to whole blocks; the pad's value is irrelevant
            # (the scopedPDU's own length tells the receiver where it ends).
            data += b"\x00" * (8 - len(data) % 8)
    return op.update(data) + op.finalize()
