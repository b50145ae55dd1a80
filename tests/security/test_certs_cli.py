"""`passage certs` (the click group, run as the CLI runs it): files, refusals, the ACL it keeps."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import NameOID

from cli.certs_cli import certs
from security.acl import AclFile
from security.identities import Role, SiteIdentities
from security.passwords import PasswordFile
from security.pki import PkiPaths


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(certs, list(args))
    return result.exit_code, result.output


def test_init_then_issue_gate_and_worker(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    code, text = _run("init", "--site", "sunrise", "--out", str(out), "--dns", "mqtt.sunrise.example")
    assert code == 0, text
    paths = PkiPaths(out)
    assert paths.ca_cert.exists() and stat.S_IMODE(paths.ca_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.broker_key.stat().st_mode) == 0o600

    code, text = _run("issue", "gate-7", "--role", "gate", "--out", str(out))
    assert code == 0, text
    cert = x509.load_pem_x509_certificate(paths.client_cert("gate-7").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gate-7"
    assert stat.S_IMODE(paths.client_key("gate-7").stat().st_mode) == 0o600
    assert 'cert_file = "' in text and "BEGIN" not in text  # settings shown, never key material

    code, text = _run("issue", "auth-1", "--role", "auth", "--out", str(out), "--password")
    assert code == 0, text
    password = paths.client_password("auth-1").read_text().strip()
    assert stat.S_IMODE(paths.client_password("auth-1").stat().st_mode) == 0o600
    assert password not in text  # the password goes to its file only
    assert PasswordFile.load(paths.passwords).verify("auth-1", password)

    site = SiteIdentities.load(paths.identities)
    assert [(i.name, i.role) for i in site.identities] == [("gate-7", Role.GATE), ("auth-1", Role.AUTH)]
    acl = AclFile.parse(paths.acl.read_text())
    assert acl.may_subscribe("auth-1", "x", "$share/auth/access/request/+")
    assert acl.may_publish("gate-7", "x", "access/request/gate-7")
    assert not acl.may_publish("gate-7", "x", "access/request/gate-8")


def test_refusals_leave_files_alone(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    assert _run("init", "--site", "sunrise", "--out", str(out))[0] == 0
    paths = PkiPaths(out)
    ca = paths.ca_key.read_bytes()
    code, text = _run("init", "--site", "sunrise", "--out", str(out))
    assert code != 0 and "refusing to overwrite" in text and paths.ca_key.read_bytes() == ca

    assert _run("issue", "lobby", "--role", "gate", "--out", str(out))[0] == 0
    key = paths.client_key("lobby").read_bytes()
    code, text = _run("issue", "lobby", "--role", "gate", "--out", str(out))
    assert code != 0 and "refusing to overwrite" in text and paths.client_key("lobby").read_bytes() == key
    code, text = _run("issue", "lobby", "--role", "auth", "--out", str(out), "--force")
    assert code != 0 and "already a gate" in text and paths.client_key("lobby").read_bytes() == key
    assert _run("issue", "lobby", "--role", "gate", "--out", str(out), "--force")[0] == 0
    assert paths.client_key("lobby").read_bytes() != key

    code, text = _run("issue", "gate/9", "--role", "gate", "--out", str(out))
    assert code != 0 and "not a valid identity name" in text
    code, _ = _run("issue", "x", "--role", "root", "--out", str(out))
    assert code != 0
    code, text = _run("issue", "gate-1", "--role", "gate", "--out", str(tmp_path / "nowhere"))
    assert code != 0 and "passage certs init" in text
