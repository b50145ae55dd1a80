"""Mosquitto password files: `name:$7$iterations$salt$hash`, PBKDF2-HMAC-SHA512 (as mosquitto_passwd
writes them for Mosquitto 2.0); read by Mosquitto and by the embedded broker's auth plugin."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from pathlib import Path

from schemas.base import is_identifier
from security.files import write_file

# Mosquitto's default is 101. Passage passwords are 256-bit random tokens, so the count guards
# nothing a brute force could reach; it only costs the broker CPU at every CONNECT.
ITERATIONS = 1000
_SALT_BYTES = 12
_MAX_ITERATIONS = 1_000_000


class PasswordFileError(ValueError):
    """A password file line that cannot be read (the whole file is refused)."""


def new_password() -> str:
    """A random password for a device or worker (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """True if `password` matches the `$7$` hash; any other or malformed hash is a refusal."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except (ValueError, binascii.Error):
        return False
    if not 1 <= iterations <= _MAX_ITERATIONS or not salt or not expected:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return hmac.compare_digest(digest, expected)


class PasswordFile:
    """Names and their hashes, in file order."""

    def __init__(self, entries: dict[str, str] | None = None) -> None:
        self.entries: dict[str, str] = dict(entries or {})

    @classmethod
    def parse(cls, text: str) -> PasswordFile:
        entries: dict[str, str] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, encoded = line.partition(":")
            if not sep or not name or not encoded:
                raise PasswordFileError(f"line {number}: not name:hash")
            entries[name] = encoded
        return cls(entries)

    @classmethod
    def load(cls, path: Path) -> PasswordFile:
        return cls.parse(path.read_text()) if path.exists() else cls()

    def set(self, name: str, password: str, *, iterations: int = ITERATIONS) -> None:
        if not is_identifier(name) or ":" in name:
            raise PasswordFileError(f"not a usable name for a password file: {name[:80]!r}")
        self.entries[name] = hash_password(password, iterations=iterations)

    def remove(self, name: str) -> bool:
        """Drop `name`'s entry; False if it had none."""
        return self.entries.pop(name, None) is not None

    def verify(self, name: str, password: str) -> bool:
        encoded = self.entries.get(name)
        return encoded is not None and verify_password(password, encoded)

    def render(self) -> str:
        return "".join(f"{name}:{encoded}\n" for name, encoded in self.entries.items())

    def save(self, path: Path) -> None:
        # Hashes only, but nobody else needs to read them; Mosquitto 2 warns about wider modes.
        write_file(path, self.render().encode(), mode=0o600, overwrite=True)
