"""The site PKI: what the CA, broker and client certificates say, and how their files are written."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from security.files import CredentialFileExists
from security.identities import Role
from security.pki import CertificateAuthority, PkiError, PkiPaths, create_ca, init_site, write_issued


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_a_ca_and_a_broker_certificate_it_signed(tmp_path: Path) -> None:
    paths = PkiPaths(tmp_path / "pki")
    init_site(paths, "sunrise", dns_names=("mqtt.sunrise.example",), ips=("10.0.0.5",))
    ca, broker = _cert(paths.ca_cert), _cert(paths.broker_cert)

    assert ca.subject == ca.issuer
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Passage sunrise CA"
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey) and ca.public_key().curve.name == "secp256r1"
    assert ca.not_valid_after_utc - ca.not_valid_before_utc > timedelta(days=9 * 365)

    broker.verify_directly_issued_by(ca)
    san = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"mqtt.sunrise.example", "localhost"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address(a)
                                                            for a in ("10.0.0.5", "127.0.0.1", "::1")}
    assert broker.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH])
    assert not broker.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert broker.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    now = datetime.now(UTC)
    assert broker.not_valid_before_utc <= now < broker.not_valid_after_utc
    assert timedelta(days=729) < broker.not_valid_after_utc - now <= timedelta(days=730)

    assert _mode(paths.ca_key) == 0o600 and _mode(paths.broker_key) == 0o600
    assert _mode(paths.ca_cert) == 0o644 and _mode(paths.broker_cert) == 0o644
    # The pair is usable by a TLS server as written.
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(paths.broker_cert, paths.broker_key)


def test_client_certificate_names_the_identity_and_is_for_clients_only(tmp_path: Path) -> None:
    paths = PkiPaths(tmp_path)
    ca = init_site(paths, "sunrise")
    write_issued(ca.issue_client("gate-7", Role.GATE, days=30), paths.client_cert("gate-7"),
                 paths.client_key("gate-7"))
    cert = _cert(paths.client_cert("gate-7"))
    cert.verify_directly_issued_by(ca.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gate-7"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "gate"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert timedelta(days=29) < cert.not_valid_after_utc - datetime.now(UTC) <= timedelta(days=30)
    assert _mode(paths.client_key("gate-7")) == 0o600
    ssl.create_default_context().load_cert_chain(paths.client_cert("gate-7"), paths.client_key("gate-7"))


def test_nothing_is_overwritten_without_asking(tmp_path: Path) -> None:
    paths = PkiPaths(tmp_path)
    init_site(paths, "sunrise")
    ca_before, key_before = paths.ca_cert.read_bytes(), paths.ca_key.read_bytes()
    with pytest.raises(CredentialFileExists, match=r"ca\.crt"):
        init_site(paths, "sunrise")
    assert paths.ca_cert.read_bytes() == ca_before and paths.ca_key.read_bytes() == key_before

    ca = CertificateAuthority.load(paths)
    write_issued(ca.issue_client("gate-1", Role.GATE), paths.client_cert("gate-1"), paths.client_key("gate-1"))
    first = paths.client_key("gate-1").read_bytes()
    with pytest.raises(CredentialFileExists):
        write_issued(ca.issue_client("gate-1", Role.GATE), paths.client_cert("gate-1"), paths.client_key("gate-1"))
    assert paths.client_key("gate-1").read_bytes() == first
    write_issued(ca.issue_client("gate-1", Role.GATE), paths.client_cert("gate-1"), paths.client_key("gate-1"),
                 overwrite=True)
    assert paths.client_key("gate-1").read_bytes() != first
    assert _mode(paths.client_key("gate-1")) == 0o600


@pytest.mark.parametrize("name", ["gate/1", "gate+", "#", "a:b", "", "x" * 65, ".hidden", "gate 1"])
def test_names_that_could_escape_a_topic_or_a_path_are_refused(tmp_path: Path, name: str) -> None:
    issued = create_ca("sunrise")
    ca = CertificateAuthority.from_pem(issued.cert_pem, issued.key_pem)
    with pytest.raises(PkiError):
        ca.issue_client(name, Role.GATE)


def test_a_key_that_is_not_the_cas_is_refused() -> None:
    one, other = create_ca("a"), create_ca("b")
    with pytest.raises(PkiError, match="does not belong"):
        CertificateAuthority.from_pem(one.cert_pem, other.key_pem)


def test_issuing_without_a_ca_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="passage certs init"):
        CertificateAuthority.load(PkiPaths(tmp_path / "empty"))
