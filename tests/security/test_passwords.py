"""Mosquitto `$7$` password hashes written and checked in Python, cross-checked with mosquitto_passwd."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from security.passwords import PasswordFile, PasswordFileError, hash_password, verify_password


def test_hash_has_the_mosquitto_2_format_and_verifies() -> None:
    encoded = hash_password("s3cret", iterations=101)
    _, kind, iterations, salt, digest = encoded.split("$")
    assert (kind, iterations, len(salt), len(digest)) == ("7", "101", 16, 88)  # 12-byte salt, 64-byte hash
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3creT", encoded)
    assert hash_password("s3cret") != hash_password("s3cret")  # salted


@pytest.mark.parametrize("bad", ["", "plain", "$6$abc$def", "$7$x$AAAA$AAAA", "$7$101$!!!$AAAA", "$7$0$AAAA$AAAA",
                                 "$7$101$$", "$7$99999999$AAAA$AAAA"])
def test_malformed_hashes_never_verify(bad: str) -> None:
    assert not verify_password("", bad)


def test_mosquitto_passwd_hashes_verify_here(tmp_path: Path) -> None:
    exe = shutil.which("mosquitto_passwd")
    if exe is None:
        pytest.fail("mosquitto_passwd missing: it ships in Debian's mosquitto package")
    path = tmp_path / "passwd"
    subprocess.run([exe, "-c", "-b", str(path), "gate-1", "open sesame"], check=True, capture_output=True)
    parsed = PasswordFile.load(path)
    assert parsed.verify("gate-1", "open sesame")
    assert not parsed.verify("gate-1", "open sesam")
    assert not parsed.verify("gate-2", "open sesame")


def test_password_file_round_trip_and_mode(tmp_path: Path) -> None:
    pw = PasswordFile()
    pw.set("gate-1", "one")
    pw.set("auth-1", "two")
    path = tmp_path / "passwd"
    pw.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = PasswordFile.load(path)
    assert again.verify("gate-1", "one") and again.verify("auth-1", "two") and not again.verify("auth-1", "one")
    assert "one" not in path.read_text() and "two" not in path.read_text()


def test_unusable_names_and_lines_are_refused() -> None:
    with pytest.raises(PasswordFileError):
        PasswordFile().set("a:b", "x")
    with pytest.raises(PasswordFileError):
        PasswordFile().set("gate/1", "x")
    with pytest.raises(PasswordFileError, match="line 2"):
        PasswordFile.parse("gate-1:$7$1$AAAA$AAAA\nno-colon-here\n")
