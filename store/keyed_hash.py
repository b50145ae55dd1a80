"""Keyed HMAC-SHA256 of card ids and PINs: what the store keeps instead of the secret.

Keys rotate: the current key hashes and seals everything new; previous keys still match what was
stored under them until it is migrated (cards and PINs when next presented, templates by
`passage keys migrate`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from pathlib import Path

from config.key_files import secret_text
from schemas.codes import CredentialType


def _key_bytes(secret: str) -> bytes:
    """A configured secret: hex of at least 16 bytes, or any text of 16+ characters."""
    try:
        key = bytes.fromhex(secret)
    except ValueError:
        key = secret.encode()
    if len(key) < 16:
        raise ValueError("hash key must be at least 16 bytes")
    return key


def key_fingerprint(key: bytes) -> str:
    """A short public name for a key (stored next to what it hashed or sealed)."""
    return "k" + hmac.new(key, b"passage key id", hashlib.sha256).hexdigest()[:12]


class KeyedHasher:
    """Hashes secrets under the site's current key; knows the previous keys for lookups."""

    def __init__(self, key: bytes, previous: Sequence[bytes] = ()) -> None:
        if len(key) < 16 or any(len(k) < 16 for k in previous):
            raise ValueError("hash key must be at least 16 bytes")
        self._key = key
        self.key_id = key_fingerprint(key)
        self._keys = {self.key_id: key} | {key_fingerprint(k): k for k in previous if k != key}

    @property
    def key_ids(self) -> list[str]:
        """The current key's id first, then the previous keys'."""
        return list(self._keys)

    def lookup_key(self, kind: CredentialType, secret: str) -> str:
        """Hex HMAC of `secret` under the current key, domain-separated by credential kind."""
        return _hmac_hex(self._key, kind, secret)

    def lookup_keys(self, kind: CredentialType, secret: str) -> list[tuple[str, str]]:
        """(key id, lookup key) under every known key, current first: for finding old records."""
        return [(kid, _hmac_hex(key, kind, secret)) for kid, key in self._keys.items()]

    def derive(self, purpose: str, key_id: str | None = None) -> bytes:
        """A key for another purpose (e.g. sealing face templates) from the current (or a named) key."""
        key = self._keys[key_id or self.key_id]
        return hmac.new(key, f"passage derive\x00{purpose}".encode(), hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"KeyedHasher(key_id={self.key_id!r}, previous={len(self._keys) - 1})"

    @classmethod
    def from_secret(cls, secret: str, previous: Sequence[str] = ()) -> KeyedHasher:
        """From configured secrets (see _key_bytes)."""
        return cls(_key_bytes(secret), [_key_bytes(p) for p in previous])

    @classmethod
    def from_key_file(cls, path: Path, previous_dir: Path | None = None,
                      previous: Sequence[str] = ()) -> KeyedHasher:
        """Load the key at `path` (created, mode 0600, on first use), the previous keys kept in
        `previous_dir` by `passage keys rotate`, and any configured `previous` ones."""
        files = sorted(previous_dir.glob("*.key")) if previous_dir is not None and previous_dir.is_dir() else []
        return cls.from_secret(secret_text(path), [*previous, *(p.read_text().strip() for p in files)])


def _hmac_hex(key: bytes, kind: CredentialType, secret: str) -> str:
    return hmac.new(key, f"{kind.value}\x00{secret}".encode(), hashlib.sha256).hexdigest()


def pin_secret(unit: str | None, pin: str) -> str:
    """What a PIN is hashed as: scoped by unit code, so two units may share a PIN but one unit may not."""
    return f"{(unit or '').strip().upper()}\x00{pin}"
