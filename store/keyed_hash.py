"""Keyed HMAC-SHA256 of card ids and PINs: what the store keeps instead of the secret."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from config.key_files import secret_text
from schemas.codes import CredentialType


class KeyedHasher:
    """Hashes secrets under a site key; the same input gives the same lookup key."""

    def __init__(self, key: bytes, key_id: str = "k1") -> None:
        if len(key) < 16:
            raise ValueError("hash key must be at least 16 bytes")
        self._key = key
        self.key_id = key_id

    def lookup_key(self, kind: CredentialType, secret: str) -> str:
        """Hex HMAC of `secret`, domain-separated by credential kind."""
        msg = f"{kind.value}\x00{secret}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def derive(self, purpose: str) -> bytes:
        """A key for another purpose (e.g. sealing face templates) from the same site secret."""
        return hmac.new(self._key, f"passage derive\x00{purpose}".encode(), hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"KeyedHasher(key_id={self.key_id!r})"

    @classmethod
    def from_secret(cls, secret: str) -> KeyedHasher:
        """From a configured secret: hex of at least 16 bytes, or any text of 16+ characters."""
        try:
            key = bytes.fromhex(secret)
        except ValueError:
            key = secret.encode()
        return cls(key)

    @classmethod
    def from_key_file(cls, path: Path) -> KeyedHasher:
        """Load the key at `path`, creating it (mode 0600) on first use."""
        return cls.from_secret(secret_text(path))


def pin_secret(unit: str | None, pin: str) -> str:
    """What a PIN is hashed as: scoped by unit code, so two units may share a PIN but one unit may not."""
    return f"{(unit or '').strip().upper()}\x00{pin}"
