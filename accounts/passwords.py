"""Password and API-key hashing: argon2id for passwords, keyed SHA-256 lookups for API keys."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)
# Verifying against this keeps an unknown user as slow as a wrong password (no user probing).
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))

MIN_PASSWORD_LENGTH = 10


class WeakPassword(ValueError):
    """A password too short to set."""


def hash_password(password: str) -> str:
    """The argon2id hash to store for `password`; refuses short ones."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches `stored_hash`; None (no such account) costs the same time."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_api_key() -> str:
    """A fresh API key to hand out once; only its digest is stored."""
    return "psk_" + secrets.token_urlsafe(32)


def api_key_digest(api_key: str) -> str:
    """What the store keeps for an API key (high-entropy keys need no slow hash)."""
    return hashlib.sha256(api_key.encode()).hexdigest()
