"""AES-256-GCM sealing of face templates at rest, bound to the record they belong to."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from store.errors import StoreError

_NONCE = 12


class UnsealError(StoreError):
    """A sealed template failed authentication: tampered, moved to another record, or another key."""


class TemplateSealer:
    """Encrypts with a key derived from the site secret; the associated data names the record, so a
    template copied onto another user or model does not open."""

    def __init__(self, site_key: bytes, key_id: str = "k1") -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=b"passage face templates v1").derive(site_key)
        self._aead = AESGCM(derived)
        self.key_id = key_id

    def seal(self, plaintext: bytes, *context: str) -> bytes:
        """nonce || ciphertext+tag (a fresh random nonce each time)."""
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, _aad(context))

    def open(self, sealed: bytes, *context: str) -> bytes:
        """The plaintext; raises UnsealError if anything about it is not what was sealed."""
        if len(sealed) <= _NONCE:
            raise UnsealError("sealed value too short")
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], _aad(context))
        except InvalidTag:
            raise UnsealError("sealed value does not authenticate") from None

    def __repr__(self) -> str:
        return f"TemplateSealer(key_id={self.key_id!r})"


def _aad(context: tuple[str, ...]) -> bytes:
    return "\x00".join(context).encode()
