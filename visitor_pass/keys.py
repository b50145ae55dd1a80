"""The site's pass-signing key (Ed25519, PEM, made once into data_dir/keys) and its public half."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from config.key_files import key_file
from config.settings import Settings
from visitor_pass.token import PassSigner, PassVerifier, public_key_from_hex, raw_public_key


class SigningKeyError(ValueError):
    """The configured signing key file cannot be used (not PEM, not Ed25519, encrypted)."""


def signing_key_path(settings: Settings) -> Path:
    return settings.visitor.signing_key_file or settings.data_dir / "keys" / "pass_signing.pem"


def _new_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def load_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The private key at `visitor.signing_key_file`, else data_dir/keys/pass_signing.pem (generated,
    mode 0600, on first use)."""
    path = signing_key_path(settings)
    # A configured file must exist: generating one there would silently fork the site's key.
    create = _new_pem if settings.visitor.signing_key_file is None else None
    if create is None and not path.is_file():
        raise SigningKeyError(f"visitor.signing_key_file {path} does not exist")
    try:
        key = load_pem_private_key(key_file(path, create=create), password=None)
    except (ValueError, TypeError) as exc:
        # The message names the file, never its content.
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key")
    return key


def signer_for(settings: Settings) -> PassSigner:
    return PassSigner(load_signing_key(settings))


def public_keys_for(settings: Settings) -> list[Ed25519PublicKey]:
    """The keys passes are verified with: `visitor.public_keys` when configured (a host that must not
    hold the private key), else the signing key's public half."""
    if settings.visitor.public_keys:
        return [public_key_from_hex(k) for k in settings.visitor.public_keys]
    return [load_signing_key(settings).public_key()]


def verifier_for(settings: Settings) -> PassVerifier:
    return PassVerifier(public_keys_for(settings))


def public_key_hex(key: Ed25519PublicKey) -> str:
    """64 hex digits: the form gates get in GateSync.pass_public_key and `passage visitor public-key`."""
    return raw_public_key(key).hex()


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")
