"""Revoking a gate's or worker's certificate (a stolen gate): the site CRL, `crl.pem`.

Mosquitto reads it as `crlfile` (again on SIGHUP); the embedded broker's access plugin re-reads it
when it changes. Revoking also takes the identity out of the ACL and the password file, so a
revoked client that is still connected can neither publish nor receive once the broker reloads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from security.files import write_file
from security.pki import CertificateAuthority, PkiError, PkiPaths


class RevocationError(PkiError):
    """A CRL that cannot be used (not the site CA's, unreadable) or a certificate that is not there."""


def load_crl(crl_file: Path, ca_file: Path) -> dict[int, datetime]:
    """The revoked serials of a CRL signed by the CA in `ca_file` (raises RevocationError otherwise)."""
    try:
        crl = x509.load_pem_x509_crl(crl_file.read_bytes())
        ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise RevocationError(f"{crl_file}: not a readable CRL: {exc}") from exc
    key = ca.public_key()
    if crl.issuer != ca.subject or not isinstance(key, ec.EllipticCurvePublicKey):
        raise RevocationError(f"{crl_file} is not this site CA's")
    try:
        key.verify(crl.signature, crl.tbs_certlist_bytes, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise RevocationError(f"{crl_file}: bad signature") from None
    return {r.serial_number: r.revocation_date_utc for r in crl}


def revoke(paths: PkiPaths, name: str) -> int:
    """Add `name`'s certificate to the site CRL; returns its serial number."""
    ca = CertificateAuthority.load(paths)
    try:
        cert = x509.load_pem_x509_certificate(paths.client_cert(name).read_bytes())
    except FileNotFoundError:
        raise RevocationError(f"no certificate for {name!r} in {paths.root / 'clients'}") from None
    revoked = load_crl(paths.crl, paths.ca_cert) if paths.crl.exists() else {}
    revoked.setdefault(cert.serial_number, datetime.now(UTC))
    write_file(paths.crl, ca.sign_crl(revoked), mode=0o644, overwrite=True)
    return cert.serial_number
