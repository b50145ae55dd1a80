"""`passage certs`: the site CA, the broker certificate, per-gate / per-worker certificates and
passwords, and the topic ACL that goes with them (files laid out as security/pki.py describes)."""

from __future__ import annotations

from pathlib import Path

import click

from security.acl import render_acl
from security.files import CredentialFileExists, write_file
from security.identities import Identity, IdentityError, Role, SiteIdentities
from security.passwords import PasswordFile, PasswordFileError, new_password
from security.pki import CertificateAuthority, PkiError, PkiPaths, init_site, write_issued
from security.revocation import revoke

_ERRORS = (PkiError, IdentityError, PasswordFileError, CredentialFileExists, OSError)


def _default_dir() -> Path:
    ctx = click.get_current_context(silent=True)
    settings = ctx.find_root().obj if ctx is not None else None
    data_dir: Path = getattr(settings, "data_dir", Path(".passage"))
    return data_dir / "pki"


_OUT = click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
                    help="PKI directory (default: DATA_DIR/pki).")


@click.group("certs")
def certs() -> None:
    """Site CA, broker and per-gate / per-worker certificates, passwords and the topic ACL."""


@certs.command("init")
@click.option("--site", required=True, help="Site name, e.g. sunrise-towers ([A-Za-z0-9_.-]).")
@_OUT
@click.option("--dns", "dns_names", multiple=True, help="Broker DNS name in its certificate (repeatable).")
@click.option("--ip", "ips", multiple=True, help="Broker IP address in its certificate (repeatable).")
@click.option("--force", is_flag=True, help="Replace an existing CA and broker certificate (every issued "
                                            "certificate then stops working).")
def init(site: str, out: Path | None, dns_names: tuple[str, ...], ips: tuple[str, ...], force: bool) -> None:
    """Create the site CA and the broker's certificate (localhost and 127.0.0.1 are always in it)."""
    paths = PkiPaths(out or _default_dir())
    try:
        identities = SiteIdentities(site=site)
    except ValueError:
        raise click.UsageError(f"not a valid site name: {site[:80]!r}") from None
    try:
        init_site(paths, site, dns_names=dns_names, ips=ips, overwrite=force)
        identities.save(paths.identities)
        write_file(paths.acl, render_acl(identities).encode(), mode=0o644, overwrite=True)
        PasswordFile().save(paths.passwords)
    except _ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"site CA and broker certificate for {site} in {paths.root}")
    click.echo(f"  CA: {paths.ca_cert} (key {paths.ca_key}: keep it offline once devices are issued)")
    click.echo(f"  broker: {paths.broker_cert}, {paths.broker_key}")
    click.echo(f"next: `passage certs issue GATE_ID --role gate --out {paths.root}` for each gate and worker;")
    click.echo(f"      `passage broker --mosquitto-config --pki {paths.root}` for the broker "
               "(the mosquitto user must be able to read broker.key, acl and passwd)")


@certs.command("issue")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True,
              help="gate, or the worker role whose topics this identity gets.")
@_OUT
@click.option("--days", type=click.IntRange(1, 3650), default=730, show_default=True)
@click.option("--password", "with_password", is_flag=True,
              help="Also create a password (for brokers without client certificates): written to "
                   "clients/NAME.password (0600), its hash to the password file.")
@click.option("--force", is_flag=True, help="Replace this identity's existing certificate and key.")
def issue(name: str, role: str, out: Path | None, days: int, with_password: bool, force: bool) -> None:
    """Issue a certificate with CN = NAME (the gate id or worker name) and update the ACL."""
    paths = PkiPaths(out or _default_dir())
    try:
        ca = CertificateAuthority.load(paths)
        site = SiteIdentities.load(paths.identities)
        identity = Identity(name=name, role=Role(role)) if _valid_name(name) else None
        if identity is None:
            raise click.UsageError(f"not a valid identity name: {name[:80]!r}")
        site = site.with_identity(identity)  # refuses a name already used with another role
        write_issued(ca.issue_client(name, identity.role, days=days), paths.client_cert(name),
                     paths.client_key(name), overwrite=force)
        if with_password:
            password = new_password()
            write_file(paths.client_password(name), password.encode() + b"\n", mode=0o600, overwrite=force)
            passwords = PasswordFile.load(paths.passwords)
            passwords.set(name, password)
            passwords.save(paths.passwords)
        site.save(paths.identities)
        write_file(paths.acl, render_acl(site).encode(), mode=0o644, overwrite=True)
    except _ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{identity.role.value} {name}: {paths.client_cert(name)}, {paths.client_key(name)}")
    if with_password:
        click.echo(f"  password in {paths.client_password(name)} (hash added to {paths.passwords})")
    click.echo(f"  ACL updated: {paths.acl} (reload Mosquitto: kill -HUP its pid)")
    click.echo("  its settings:")
    click.echo(f'    [mqtt]\n    tls = true\n    port = 8883\n    ca_file = "{paths.ca_cert.resolve()}"')
    click.echo(f'    cert_file = "{paths.client_cert(name).resolve()}"\n'
               f'    key_file = "{paths.client_key(name).resolve()}"')


def _valid_name(name: str) -> bool:
    try:
        PkiPaths(Path(".")).client_cert(name)
    except PkiError:
        return False
    return True


@certs.command("revoke")
@click.argument("name")
@_OUT
def revoke_identity(name: str, out: Path | None) -> None:
    """Revoke NAME (a lost or stolen gate, a retired worker): its certificate goes on the site CRL,
    and it leaves the identity list, the ACL and the password file."""
    paths = PkiPaths(out or _default_dir())
    try:
        site = SiteIdentities.load(paths.identities)
        serial = revoke(paths, name) if paths.client_cert(name).exists() else None
        if serial is None and site.get(name) is None:
            raise click.ClickException(f"no identity or certificate named {name!r} in {paths.root}")
        site = site.without(name)
        site.save(paths.identities)
        write_file(paths.acl, render_acl(site).encode(), mode=0o644, overwrite=True)
        passwords = PasswordFile.load(paths.passwords)
        if passwords.remove(name):
            passwords.save(paths.passwords)
    except _ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    if serial is not None:
        click.echo(f"{name}: certificate {serial:x} revoked ({paths.crl})")
    click.echo(f"  removed from {paths.identities.name}, {paths.acl.name} and {paths.passwords.name}")
    click.echo("  Mosquitto: reload it (kill -HUP its pid); the embedded broker picks it up within a second")
