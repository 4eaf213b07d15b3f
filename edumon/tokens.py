"""API tokens: making one, and the SHA-256 form the configuration stores (docs/access.md).

Why SHA-256 and not a password hash (argon2, bcrypt): a password hash is slow so that a
guessable secret stolen as a hash takes long to guess. edumon's tokens are not guessable: they
are 256 random bits (``new_token``), and a token given through the environment must be at
least ``MIN_TOKEN_LENGTH`` characters. Reversing SHA-256 of such a value is as hopeless as
guessing the value, so a slow hash adds no protection; it would add its cost (tens of
milliseconds) to every request, or, for a token that matches none, once per configured token,
a lever for anyone who can reach the port. With SHA-256 a request costs one digest and one
dictionary lookup, whatever the number of tokens.
"""

from __future__ import annotations

import hashlib
import re
import secrets

HASH_PREFIX = "sha256:"
MIN_TOKEN_LENGTH = 32
"""Characters; ``new_token`` makes 43 (32 random bytes, URL-safe base64)."""
MAX_TOKEN_LENGTH = 512
"""A longer Authorization header is not a token edumon made; refused before it is hashed."""

_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


def new_token() -> str:
    """A fresh random token: 32 bytes from the OS's CSPRNG, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    """The SHA-256 digest of a token as sent (UTF-8), the key it is looked up by."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def hash_token(token: str) -> str:
    """The form written in the configuration: ``sha256:`` and 64 hex digits."""
    return HASH_PREFIX + digest(token).hex()


def parse_hash(text: str) -> bytes:
    """The digest of a configured ``token_hash``.

    Raises:
        ValueError: not ``sha256:`` and 64 lowercase hex digits.
    """
    text = text.strip()
    if not _HASH.match(text):
        raise ValueError(
            "token_hash 应为 sha256: 加 64 位十六进制数（用 edumon token hash 生成） / "
            "token_hash must be sha256: and 64 hex digits (make one with edumon token hash)"
        )
    return bytes.fromhex(text[len(HASH_PREFIX) :])


def token_problem(token: str) -> str | None:
    """Why a plain token cannot be used (too short, spaces), or None; never repeats it."""
    if len(token) < MIN_TOKEN_LENGTH:
        return (
            f"令牌太短，至少 {MIN_TOKEN_LENGTH} 个字符（用 edumon token new 生成） / "
            f"the token is too short: at least {MIN_TOKEN_LENGTH} characters "
            "(make one with edumon token new)"
        )
    if len(token) > MAX_TOKEN_LENGTH:
        return (
            f"令牌太长，至多 {MAX_TOKEN_LENGTH} 个字符 / "
            f"the token is longer than {MAX_TOKEN_LENGTH} characters"
        )
    if any(c.isspace() or not c.isprintable() for c in token):
        return (
            "令牌不能包含空白或控制字符 / the token must not contain spaces or control characters"
        )
    return None
