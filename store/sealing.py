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
    """A sealed template failed authentication: tampered, moved to another record, or an unknown key."""


class TemplateSealer:
    """Seals under the current key; opens under whichever known key sealed it. The associated data
    names the record, so a template copied onto another user or model does not open."""

    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError("the current key must be among the keys")
        self._aeads = {kid: AESGCM(_derive(k)) for kid, k in keys.items()}
        self.key_id = current

    def seal(self, plaintext: bytes, *context: str) -> bytes:
        """nonce || ciphertext+tag under the current key (a fresh random nonce each time)."""
        nonce = os.urandom(_NONCE)
        return nonce + self._aeads[self.key_id].encrypt(nonce, plaintext, _aad(context))

    def open(self, sealed: bytes, key_id: str, *context: str) -> bytes:
        """The plaintext; raises UnsealError if anything about it is not what was sealed."""
        aead = self._aeads.get(key_id)
        if aead is None:
            raise UnsealError(f"sealed under key {key_id}, which this process does not hold")
        if len(sealed) <= _NONCE:
            raise UnsealError("sealed value too short")
        try:
            return aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], _aad(context))
        except InvalidTag:
            raise UnsealError("sealed value does not authenticate") from None

    def __repr__(self) -> str:
        return f"TemplateSealer(key_id={self.key_id!r})"


def _derive(key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"passage face templates v1").derive(key)


def _aad(context: tuple[str, ...]) -> bytes:
    return "\x00".join(context).encode()
