"""Pass tokens: a genuine token verifies to its claims; anything altered, forged or broken is refused
with a typed error."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.settings import Settings, VisitorSettings
from schemas.codes import ReasonCode
from visitor_pass.keys import SigningKeyError, load_signing_key, public_key_hex, signer_for, verifier_for
from visitor_pass.token import (
    MAX_TOKEN_CHARS,
    BadSignature,
    MalformedToken,
    PassClaims,
    PassSigner,
    PassVerifier,
    UnknownKey,
    public_key_from_hex,
)
from visitor_pass.validity import check_claims

START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
CLAIMS = PassClaims("0123456789abcdef0123456789abcdef", START, START + timedelta(hours=6), ("lobby", "garage"), 3)


@pytest.fixture
def signer() -> PassSigner:
    return PassSigner(Ed25519PrivateKey.generate())


def test_round_trip_gives_back_the_claims(signer: PassSigner) -> None:
    token = signer.sign(CLAIMS)
    assert token.startswith("PV1.") and len(token) < 200
    # QR alphanumeric mode: upper case, digits and '.' only.
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567PV1.")
    claims = signer.verifier().verify(token)
    assert claims.pass_id == CLAIMS.pass_id and claims.gate_ids == ("lobby", "garage")
    assert claims.valid_from == START and claims.valid_until == START + timedelta(hours=6)
    assert claims.max_uses == 3 and claims.key_id == signer.key_id
    assert signer.sign(CLAIMS) == token  # deterministic: a replayed registration gets the same QR


def _flip_char(text: str, index: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return text[:index] + alphabet[(alphabet.index(text[index]) + 1) % 32] + text[index + 1:]


def test_altered_body_is_a_bad_signature(signer: PassSigner) -> None:
    prefix, body, sig = signer.sign(CLAIMS).split(".")
    # Re-encode a body with one more use: well-formed, but not what the key signed.
    raw = bytearray(base64.b32decode(body + "=" * (-len(body) % 8)))
    raw[29] = 200  # max_uses
    forged_body = base64.b32encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(BadSignature):
        signer.verifier().verify(f"{prefix}.{forged_body}.{sig}")
    with pytest.raises(BadSignature):
        signer.verifier().verify(f"{prefix}.{_flip_char(body, 12)}.{sig}")


def test_altered_signature_is_a_bad_signature(signer: PassSigner) -> None:
    prefix, body, sig = signer.sign(CLAIMS).split(".")
    with pytest.raises(BadSignature):
        signer.verifier().verify(f"{prefix}.{body}.{_flip_char(sig, 5)}")


def test_other_key_is_refused(signer: PassSigner) -> None:
    other = PassSigner(Ed25519PrivateKey.generate())
    with pytest.raises(UnknownKey):
        signer.verifier().verify(other.sign(CLAIMS))
    # Even when the forger copies our key id into the body, the signature does not verify.
    prefix, body, sig = other.sign(CLAIMS).split(".")
    raw = bytearray(base64.b32decode(body + "=" * (-len(body) % 8)))
    raw[1:5] = bytes.fromhex(signer.key_id)
    spoofed = base64.b32encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(BadSignature) as info:
        signer.verifier().verify(f"{prefix}.{spoofed}.{sig}")
    assert not isinstance(info.value, UnknownKey)


def test_a_verifier_with_several_keys_accepts_each(signer: PassSigner) -> None:
    old = PassSigner(Ed25519PrivateKey.generate())
    verifier = PassVerifier([signer.public_key, old.public_key])
    assert verifier.verify(old.sign(CLAIMS)).key_id == old.key_id
    assert verifier.verify(signer.sign(CLAIMS)).key_id == signer.key_id


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-10],  # truncated signature
    lambda t: t[: t.index(".", 4) - 8] + t[t.index(".", 4):],  # truncated body
    lambda t: t.split(".")[0] + "." + t.split(".")[1],  # signature missing
    lambda t: t.lower(),
    lambda t: "PV2" + t[3:],
    lambda t: t + ".AAAA",
    lambda t: t.replace(".", ".=", 1),
])
def test_truncated_or_mangled_tokens_are_malformed(signer: PassSigner, mangle: object) -> None:
    with pytest.raises(MalformedToken):
        signer.verifier().verify(mangle(signer.sign(CLAIMS)))  # type: ignore[operator]


@pytest.mark.parametrize("garbage", ["", "hello", "https://example.com/?q=1", "PV1..", "PV1.AAAA.BBBB",
                                     "\x00\xff" * 10, "P" * (MAX_TOKEN_CHARS + 1), "PV1." + "A" * 3000])
def test_garbage_is_malformed(signer: PassSigner, garbage: str) -> None:
    with pytest.raises(MalformedToken):
        signer.verifier().verify(garbage)


def test_non_canonical_base32_is_refused(signer: PassSigner) -> None:
    # The last character of the body carries spare bits: setting them must not give a second valid text.
    prefix, body, sig = signer.sign(CLAIMS).split(".")
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".index(body[-1])
    twins = [c for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") if i != last and i >> 2 == last >> 2]
    assert twins, "this body length has spare bits in its last character"
    with pytest.raises(MalformedToken):
        signer.verifier().verify(f"{prefix}.{body[:-1]}{twins[0]}.{sig}")


def test_claims_refuse_what_a_gate_could_not_check() -> None:
    with pytest.raises(ValueError):
        PassClaims(CLAIMS.pass_id, START, START + timedelta(hours=1), (), 1)  # no gate: never "anywhere"
    with pytest.raises(ValueError):
        PassClaims(CLAIMS.pass_id, START, START, ("lobby",), 1)
    with pytest.raises(ValueError):
        PassClaims("not-hex", START, START + timedelta(hours=1), ("lobby",), 1)
    with pytest.raises(ValueError):
        PassClaims(CLAIMS.pass_id, START, START + timedelta(hours=1), ("a/b",), 1)


def test_too_many_gates_do_not_fit(signer: PassSigner) -> None:
    gates = tuple(f"gate-{i:02d}-" + "x" * 55 for i in range(40))
    with pytest.raises(ValueError):
        signer.sign(PassClaims(CLAIMS.pass_id, START, START + timedelta(hours=1), gates, 1))


@pytest.mark.parametrize("offset, gate, skew, reason", [
    (timedelta(minutes=-1), "lobby", 0, ReasonCode.PASS_NOT_YET_VALID),
    (timedelta(seconds=-20), "lobby", 30, None),  # within the clock skew
    (timedelta(hours=6), "lobby", 0, ReasonCode.PASS_EXPIRED),
    (timedelta(hours=6, seconds=20), "lobby", 30, None),
    (timedelta(hours=6, seconds=31), "lobby", 30, ReasonCode.PASS_EXPIRED),
    (timedelta(hours=1), "pool", 30, ReasonCode.NOT_PERMITTED_AT_GATE),
    (timedelta(hours=1), "garage", 0, None),
])
def test_window_and_gate_rules(offset: timedelta, gate: str, skew: float, reason: ReasonCode | None) -> None:
    assert check_claims(CLAIMS, gate, START + offset, skew) is reason


def test_site_key_is_made_once_and_exported(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first, again = signer_for(settings), signer_for(settings)
    assert first.key_id == again.key_id
    key_path = tmp_path / "keys" / "pass_signing.pem"
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in key_path.read_bytes()
    hex_key = public_key_hex(load_signing_key(settings).public_key())
    # A host given only the public key verifies what the signer issued.
    remote = Settings(data_dir=tmp_path / "elsewhere", visitor=VisitorSettings(public_keys=[hex_key]))
    assert verifier_for(remote).verify(first.sign(CLAIMS)).pass_id == CLAIMS.pass_id
    assert not (tmp_path / "elsewhere" / "keys").exists()  # and never made a private key of its own
    with pytest.raises(ValueError):
        public_key_from_hex("ab" * 31)


def test_unusable_key_files_are_refused(tmp_path: Path) -> None:
    missing = Settings(data_dir=tmp_path, visitor=VisitorSettings(signing_key_file=tmp_path / "nope.pem"))
    with pytest.raises(SigningKeyError):
        load_signing_key(missing)
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SigningKeyError):
        load_signing_key(Settings(data_dir=tmp_path, visitor=VisitorSettings(signing_key_file=junk)))
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    with pytest.raises(SigningKeyError, match="not an Ed25519"):
        load_signing_key(Settings(data_dir=tmp_path, visitor=VisitorSettings(signing_key_file=ec_key)))
