"""Revoking a gate (`passage certs revoke`): the CRL, the files it updates, and both real brokers
cutting the gate off, for new connections and for the one it still holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from cli.certs_cli import certs
from config.settings import MqttSettings
from security.acl import AclFile
from security.identities import SiteIdentities
from security.passwords import PasswordFile
from security.pki import PkiPaths, init_site
from security.revocation import RevocationError, load_crl, revoke
from tests.conftest import eventually
from tests.security.broker_fixture import SecureBroker, connected, refused, running_secure_broker
from tests.security.site_fixture import Site


def _serial(paths: PkiPaths, name: str) -> int:
    return x509.load_pem_x509_certificate(paths.client_cert(name).read_bytes()).serial_number


def test_a_new_site_has_an_empty_signed_crl(site: Site) -> None:
    assert load_crl(site.paths.crl, site.paths.ca_cert) == {}


def test_revoke_lists_the_certificate_once(site: Site) -> None:
    serial = revoke(site.paths, "gate-1")
    assert serial == _serial(site.paths, "gate-1")
    again = revoke(site.paths, "gate-1")
    revoke(site.paths, "gate-2")
    assert again == serial
    assert set(load_crl(site.paths.crl, site.paths.ca_cert)) == {serial, _serial(site.paths, "gate-2")}


def test_a_crl_from_another_ca_is_refused(site: Site, tmp_path: Path) -> None:
    other = PkiPaths(tmp_path / "other")
    init_site(other, "other-site")
    with pytest.raises(RevocationError, match="not this site CA's"):
        load_crl(other.crl, site.paths.ca_cert)
    site.paths.crl.write_text("not a CRL")
    with pytest.raises(RevocationError, match="not a readable CRL"):
        load_crl(site.paths.crl, site.paths.ca_cert)


def test_revoking_an_unknown_name_is_refused(site: Site) -> None:
    with pytest.raises(RevocationError, match="no certificate"):
        revoke(site.paths, "gate-99")
    result = CliRunner().invoke(certs, ["revoke", "gate-99", "--out", str(site.paths.root)])
    assert result.exit_code != 0 and "no identity or certificate" in result.output


def test_the_cli_updates_crl_identities_acl_and_passwords(site: Site) -> None:
    result = CliRunner().invoke(certs, ["revoke", "gate-1", "--out", str(site.paths.root)])
    assert result.exit_code == 0, result.output
    assert _serial(site.paths, "gate-1") in load_crl(site.paths.crl, site.paths.ca_cert)
    assert SiteIdentities.load(site.paths.identities).get("gate-1") is None
    acl = AclFile.parse(site.paths.acl.read_text())
    assert not acl.may_publish("gate-1", "gate-1", "access/request/gate-1")
    assert acl.may_publish("gate-2", "gate-2", "access/request/gate-2")
    passwords = PasswordFile.load(site.paths.passwords)
    assert "gate-1" not in passwords.entries and passwords.verify("gate-2", site.passwords["gate-2"])


async def test_a_revoked_gate_is_cut_off(secure: SecureBroker, site: Site) -> None:
    async with connected(secure.trusted(), "observer", "access/request/+") as observer, \
            connected(secure.trusted(), "server") as server, \
            connected(secure.as_identity("gate-1"), "gate-gate-1", "access/response/gate-1") as stolen, \
            connected(secure.as_identity("gate-2"), "gate-gate-2") as honest:
        await asyncio.sleep(0.1)
        await stolen.client.publish("access/request/gate-1", b"before")
        await eventually(lambda: b"before" in observer.payloads())

        result = CliRunner().invoke(certs, ["revoke", "gate-1", "--out", str(site.paths.root)])
        assert result.exit_code == 0, result.output
        if secure.process is not None:
            secure.process.reload()  # what the CLI tells the admin to do for Mosquitto
        await asyncio.sleep(1.5)  # the embedded broker re-reads changed files within a second

        # The connection the stolen gate still holds carries nothing, either way.
        await stolen.client.publish("access/request/gate-1", b"after")
        await server.client.publish("access/response/gate-1", b"forged-door-open")
        await honest.client.publish("access/request/gate-2", b"marker")
        await eventually(lambda: b"marker" in observer.payloads())
        await asyncio.sleep(0.3)
        assert b"after" not in observer.payloads()
        assert b"forged-door-open" not in stolen.payloads()
    # And it cannot come back; the other gate can.
    assert await refused(secure.as_identity("gate-1"), "gate-gate-1-again")
    async with connected(secure.as_identity("gate-2"), "gate-gate-2-again"):
        pass


@pytest.mark.parametrize("kind", ["mosquitto", "amqtt"])
async def test_a_revoked_gates_password_stops_working(kind: str, site: Site) -> None:
    async with running_secure_broker(kind, site, require_certificate=False) as broker:
        def by_password(name: str) -> MqttSettings:
            return broker.as_identity(name, cert=False, password=site.passwords[name])

        async with connected(by_password("gate-1"), "gate-gate-1"):
            pass
        result = CliRunner().invoke(certs, ["revoke", "gate-1", "--out", str(site.paths.root)])
        assert result.exit_code == 0, result.output
        if broker.process is not None:
            broker.process.reload()
        await asyncio.sleep(1.5)
        assert await refused(by_password("gate-1"), "gate-gate-1-again")
        async with connected(by_password("gate-2"), "gate-gate-2"):
            pass
