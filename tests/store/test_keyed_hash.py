import stat
from pathlib import Path

import pytest

from schemas.codes import CredentialType
from store.keyed_hash import KeyedHasher


def test_deterministic_keyed_and_domain_separated() -> None:
    a = KeyedHasher(b"k" * 32)
    b = KeyedHasher(b"j" * 32)
    h = a.lookup_key(CredentialType.CARD, "1234")
    assert h == a.lookup_key(CredentialType.CARD, "1234")
    assert len(h) == 64 and "1234" not in h
    assert h != b.lookup_key(CredentialType.CARD, "1234")  # another site's key
    assert h != a.lookup_key(CredentialType.PIN, "1234")  # a PIN equal to a card id differs


def test_short_keys_refused() -> None:
    with pytest.raises(ValueError):
        KeyedHasher(b"short")


def test_key_file_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "hash.key"
    first = KeyedHasher.from_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = KeyedHasher.from_key_file(path)
    assert first.lookup_key(CredentialType.CARD, "x") == again.lookup_key(CredentialType.CARD, "x")
