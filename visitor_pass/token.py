"""The compact signed token a visitor QR code carries: `PV1.<body>.<signature>`.

The body is binary (version, key id, pass id, window, max uses, gate scope) and the signature is
Ed25519 over it, so a gate holding only the site's public key can check a pass offline. Both parts
are RFC 4648 base32 without padding: upper-case letters, digits and `.` are QR "alphanumeric" mode
(5.5 bits a character instead of 8), which keeps the code at a low-density version (about 180
characters for a pass valid at two gates: QR version 8 at error correction M).

Body layout (big-endian): version u8 (=1) | key id 4 bytes | pass id 16 bytes | valid_from u32 |
valid_until u32 (epoch seconds) | max_uses u8 | gate count u8 | per gate: length u8 + ASCII id.
The gate scope is never empty: a pass names the gates it opens, so a gate can decide alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from schemas.base import is_identifier

PREFIX = "PV1"
VERSION = 1
# QrCredential.payload and VisitorReply.qr_payload accept at most this many characters.
MAX_TOKEN_CHARS = 2048
MAX_GATES = 64
MAX_USES = 255
_HEADER = struct.Struct(">B4s16sIIBB")
_SIGNATURE_BYTES = 64
# Signatures are domain-separated: no other Passage signature can be replayed as a pass.
_CONTEXT = b"passage visitor pass v1\x00"
_PASS_ID = re.compile(r"[0-9a-f]{32}")
_B32 = re.compile(r"[A-Z2-7]+")


class TokenError(Exception):
    """A pass token that must be refused."""


class MalformedToken(TokenError):
    """Not a pass token at all: wrong prefix, bad encoding, truncated, impossible fields."""


class BadSignature(TokenError):
    """The signature does not verify: forged, altered, or signed by a key this site does not trust."""


class UnknownKey(BadSignature):
    """Signed under a key id this verifier does not hold."""


@dataclass(frozen=True, slots=True)
class PassClaims:
    """What a pass token asserts (and, once verified, what the site's key vouches for)."""

    pass_id: str  # 32 lower-case hex digits
    valid_from: datetime
    valid_until: datetime
    gate_ids: tuple[str, ...]
    max_uses: int
    key_id: str = ""  # 8 hex digits; set by sign() and verify()

    def __post_init__(self) -> None:
        if not _PASS_ID.fullmatch(self.pass_id):
            raise ValueError("a pass id in a token is 32 lower-case hex digits")
        if not 1 <= self.max_uses <= MAX_USES:
            raise ValueError(f"max_uses must be 1..{MAX_USES}")
        if not 1 <= len(self.gate_ids) <= MAX_GATES:
            raise ValueError(f"a pass names 1..{MAX_GATES} gates")
        if any(not is_identifier(g) for g in self.gate_ids):
            raise ValueError("gate ids must be Passage identifiers")
        if self.valid_from.tzinfo is None or self.valid_until.tzinfo is None:
            raise ValueError("pass times must be timezone-aware")
        if _epoch(self.valid_until) <= _epoch(self.valid_from):
            raise ValueError("valid_until must be after valid_from (whole seconds)")

    def allows_gate(self, gate_id: str) -> bool:
        return gate_id in self.gate_ids


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """A short public name for a signing key (8 hex digits) carried in every token."""
    return hashlib.sha256(raw_public_key(public_key)).hexdigest()[:8]


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key_from_hex(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from its 64 hex digits; raises ValueError."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError("an Ed25519 public key is 64 hex digits") from None
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 64 hex digits")
    return Ed25519PublicKey.from_public_bytes(raw)


class PassSigner:
    """Signs pass claims with the site's private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)

    def sign(self, claims: PassClaims) -> str:
        """The token for `claims` (deterministic: the same claims always give the same token)."""
        gates = b"".join(struct.pack(">B", len(g)) + g.encode("ascii") for g in claims.gate_ids)
        body = _HEADER.pack(VERSION, bytes.fromhex(self.key_id), bytes.fromhex(claims.pass_id),
                            _epoch(claims.valid_from), _epoch(claims.valid_until), claims.max_uses,
                            len(claims.gate_ids)) + gates
        signature = self._key.sign(_CONTEXT + body)
        token = f"{PREFIX}.{_b32(body)}.{_b32(signature)}"
        if len(token) > MAX_TOKEN_CHARS:
            raise ValueError(f"token of {len(token)} characters is over {MAX_TOKEN_CHARS}: name fewer gates")
        return token

    def verifier(self) -> PassVerifier:
        return PassVerifier([self.public_key])


class PassVerifier:
    """Verifies tokens against the public keys a site trusts (the current one and rotated-out ones)."""

    def __init__(self, public_keys: Iterable[Ed25519PublicKey]) -> None:
        self._keys: Mapping[str, Ed25519PublicKey] = {key_id_of(k): k for k in public_keys}
        if not self._keys:
            raise ValueError("a verifier needs at least one public key")

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def verify(self, token: str) -> PassClaims:
        """The claims of a genuine token; raises MalformedToken or BadSignature (never anything else)."""
        body, signature = _split(token)
        if len(body) < _HEADER.size:
            raise MalformedToken("token body too short")
        key_id = body[1:5].hex()
        key = self._keys.get(key_id)
        if key is None:
            raise UnknownKey(f"signed by an unknown key ({key_id})")
        try:
            key.verify(signature, _CONTEXT + body)
        except InvalidSignature:
            raise BadSignature("signature does not verify") from None
        return _parse(body, key_id)


def _split(token: str) -> tuple[bytes, bytes]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise MalformedToken("not a pass token (type or length)")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise MalformedToken("not a pass token (prefix or parts)")
    body, signature = _unb32(parts[1]), _unb32(parts[2])
    if len(signature) != _SIGNATURE_BYTES:
        raise MalformedToken("signature has the wrong length")
    return body, signature


def _parse(body: bytes, key_id: str) -> PassClaims:
    version, _, pass_id, valid_from, valid_until, max_uses, count = _HEADER.unpack_from(body)
    if version != VERSION:
        raise MalformedToken(f"unsupported token version {version}")
    gates: list[str] = []
    offset = _HEADER.size
    for _ in range(count):
        if offset >= len(body):
            raise MalformedToken("gate list truncated")
        size = body[offset]
        raw = body[offset + 1:offset + 1 + size]
        if len(raw) != size:
            raise MalformedToken("gate list truncated")
        gates.append(raw.decode("ascii", errors="replace"))
        offset += 1 + size
    if offset != len(body):
        raise MalformedToken("trailing bytes after the gate list")
    try:
        return PassClaims(pass_id.hex(), datetime.fromtimestamp(valid_from, UTC),
                          datetime.fromtimestamp(valid_until, UTC), tuple(gates), max_uses, key_id)
    except ValueError as exc:
        raise MalformedToken(f"impossible claims: {exc}") from None


def _epoch(moment: datetime) -> int:
    seconds = int(moment.timestamp())
    if not 0 <= seconds < 2**32:
        raise ValueError("pass times must fall between 1970 and 2106")
    return seconds


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=")


def _unb32(text: str) -> bytes:
    if not _B32.fullmatch(text):
        raise MalformedToken("not base32")
    try:
        data = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        raise MalformedToken("not base32") from None
    # One text per byte string: spare bits in the last character must be zero, so no two QR
    # codes carry the same signed bytes.
    if _b32(data) != text:
        raise MalformedToken("non-canonical base32")
    return data
