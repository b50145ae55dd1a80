"""A site's certificate authority and the certificates it issues (EC P-256, `cryptography`).

Layout of a site's PKI directory (`passage certs init --out DIR`):

    ca.crt  ca.key                       the site CA (keep ca.key offline once devices are issued)
    broker.crt  broker.key               the broker's server certificate (SAN: its names and IPs)
    clients/{name}.crt  clients/{name}.key   one per gate / worker; CN = the identity's name
    identities.json  acl  passwd          who may connect, the topic ACL, the password file
    crl.pem                              revoked gate / worker certificates (security/revocation.py)

Keys are written mode 0600 and never over an existing file unless asked.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from schemas.base import is_identifier
from security.files import CredentialFileExists, write_file
from security.identities import Role

CA_DAYS = 10 * 365
LEAF_DAYS = 2 * 365
# Always in the broker's SAN: local clients connect by these names.
LOCAL_NAMES = ("localhost",)
LOCAL_IPS = ("127.0.0.1", "::1")
# Certificates start this long before "now", so a device whose clock is a little behind accepts them.
_BACKDATE = timedelta(minutes=5)


class PkiError(ValueError):
    """A certificate request that cannot be honoured (bad name, missing CA, CA files that do not match)."""


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, PEM-encoded."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


@dataclass(frozen=True)
class PkiPaths:
    """Where a site's PKI files live under one directory."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def broker_cert(self) -> Path:
        return self.root / "broker.crt"

    @property
    def broker_key(self) -> Path:
        return self.root / "broker.key"

    @property
    def identities(self) -> Path:
        return self.root / "identities.json"

    @property
    def acl(self) -> Path:
        return self.root / "acl"

    @property
    def passwords(self) -> Path:
        return self.root / "passwd"

    @property
    def crl(self) -> Path:
        return self.root / "crl.pem"

    def client_cert(self, name: str) -> Path:
        return self.root / "clients" / f"{_checked_name(name)}.crt"

    def client_key(self, name: str) -> Path:
        return self.root / "clients" / f"{_checked_name(name)}.key"

    def client_password(self, name: str) -> Path:
        return self.root / "clients" / f"{_checked_name(name)}.password"


def _checked_name(name: str) -> str:
    # The name becomes a file name and the MQTT username that ACL patterns substitute.
    if not is_identifier(name) or ":" in name or name.startswith("."):
        raise PkiError(f"not a valid identity name: {name[:80]!r}")
    return name


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _window(days: int, valid_from: datetime | None) -> tuple[datetime, datetime]:
    start = valid_from if valid_from is not None else datetime.now(UTC) - _BACKDATE
    return start, start + timedelta(days=days)


def create_ca(site: str, *, days: int = CA_DAYS, valid_from: datetime | None = None) -> Issued:
    """A self-signed site CA that may sign leaf certificates only (path length 0)."""
    _checked_name(site)
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"Passage site {site}"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"Passage {site} CA")])
    start, end = _window(days, valid_from)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclass(frozen=True)
class CertificateAuthority:
    """A loaded CA that issues leaf certificates."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes) -> CertificateAuthority:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError("the CA key is not an EC key")
        cert_key = cert.public_key()
        if (not isinstance(cert_key, ec.EllipticCurvePublicKey)
                or cert_key.public_numbers() != key.public_key().public_numbers()):
            raise PkiError("the CA key does not belong to the CA certificate")
        return cls(cert, key)

    @classmethod
    def load(cls, paths: PkiPaths) -> CertificateAuthority:
        if not paths.ca_cert.exists() or not paths.ca_key.exists():
            raise PkiError(f"no site CA in {paths.root}: run `passage certs init` first")
        return cls.from_pem(paths.ca_cert.read_bytes(), paths.ca_key.read_bytes())

    @property
    def site_org(self) -> str:
        attrs = self.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(attrs[0].value) if attrs else "Passage site"

    def _leaf(self, subject: x509.Name, key: ec.EllipticCurvePrivateKey, usage: x509.ObjectIdentifier,
              days: int, valid_from: datetime | None, san: x509.SubjectAlternativeName | None) -> Issued:
        start, end = _window(days, valid_from)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def issue_server(self, name: str = "broker", *, dns_names: tuple[str, ...] = (), ips: tuple[str, ...] = (),
                     days: int = LEAF_DAYS, valid_from: datetime | None = None) -> Issued:
        """The broker's certificate; clients check the host they dial against its SAN."""
        dns = list(dict.fromkeys((*dns_names, *LOCAL_NAMES)))
        try:
            addresses = [ipaddress.ip_address(ip) for ip in dict.fromkeys((*ips, *LOCAL_IPS))]
        except ValueError as exc:
            raise PkiError(str(exc)) from None
        san = x509.SubjectAlternativeName([*(x509.DNSName(d) for d in dns), *(x509.IPAddress(a) for a in addresses)])
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.site_org),
                             x509.NameAttribute(NameOID.COMMON_NAME, dns[0])])
        return self._leaf(subject, _new_key(), ExtendedKeyUsageOID.SERVER_AUTH, days, valid_from, san)

    def sign_crl(self, revoked: dict[int, datetime]) -> bytes:
        """A PEM CRL listing `revoked` (serial -> when).

        It stays valid as long as the CA: OpenSSL refuses every client once a CRL is past its
        next-update time, and the CRL is re-signed on each revocation anyway."""
        now = datetime.now(UTC)
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(self.cert.subject)
                   .last_update(now - _BACKDATE)
                   .next_update(self.cert.not_valid_after_utc)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False)
                   .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False))
        for serial, when in sorted(revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def issue_client(self, name: str, role: Role, *, days: int = LEAF_DAYS,
                     valid_from: datetime | None = None) -> Issued:
        """A gate's or worker's certificate: CN = `name`, which the broker takes as the username."""
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.site_org),
                             x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
                             x509.NameAttribute(NameOID.COMMON_NAME, _checked_name(name))])
        return self._leaf(subject, _new_key(), ExtendedKeyUsageOID.CLIENT_AUTH, days, valid_from, None)


def write_issued(issued: Issued, cert_path: Path, key_path: Path, *, overwrite: bool = False) -> None:
    """Write a certificate (0644) and its key (0600); refuses to replace either unless `overwrite`."""
    if not overwrite:
        # Check both first, so a refusal leaves neither file half-replaced.
        for path in (cert_path, key_path):
            if path.exists():
                raise CredentialFileExists(f"{path} exists; refusing to overwrite it")
    write_file(key_path, issued.key_pem, mode=0o600, overwrite=overwrite)
    write_file(cert_path, issued.cert_pem, mode=0o644, overwrite=overwrite)


def init_site(paths: PkiPaths, site: str, *, dns_names: tuple[str, ...] = (), ips: tuple[str, ...] = (),
              overwrite: bool = False) -> CertificateAuthority:
    """Create the site CA and the broker certificate under `paths.root`."""
    ca_issued = create_ca(site)
    write_issued(ca_issued, paths.ca_cert, paths.ca_key, overwrite=overwrite)
    ca = CertificateAuthority.from_pem(ca_issued.cert_pem, ca_issued.key_pem)
    write_issued(ca.issue_server(dns_names=dns_names, ips=ips), paths.broker_cert, paths.broker_key,
                 overwrite=overwrite)
    # An empty CRL from the start, so the broker configs can always name one.
    write_file(paths.crl, ca.sign_crl({}), mode=0o644, overwrite=True)
    return ca
