"""A site PKI for broker security tests: CA, broker certificate, gates and workers with certificates
and passwords, the rendered ACL and password file; and settings to connect as any of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config.settings import MqttSettings
from security.acl import render_acl
from security.identities import Identity, Role, SiteIdentities
from security.passwords import PasswordFile
from security.pki import PkiPaths, init_site, write_issued

GATES = ("gate-1", "gate-2", "lobby", "garage")
WORKERS = (("auth-1", Role.AUTH), ("admin-1", Role.ADMIN), ("console-1", Role.CONSOLE), ("sync-1", Role.SYNC),
           ("ops", Role.OPERATOR))


@dataclass(frozen=True)
class Site:
    paths: PkiPaths
    passwords: dict[str, str]

    def mqtt(self, name: str | None, *, port: int, cert: bool = True, password: str | None = None,
             protocol: str = "3.1.1", host: str = "127.0.0.1", ca_file: Path | None = None) -> MqttSettings:
        """TLS settings for identity `name`: its certificate (`cert`) or its password."""
        fields: dict[str, object] = {"host": host, "port": port, "tls": True,
                                     "ca_file": ca_file or self.paths.ca_cert, "protocol": protocol,
                                     "shared_subscriptions": protocol == "5",
                                     "reconnect_min_s": 0.05, "reconnect_max_s": 0.5}
        if name is not None and cert:
            fields["cert_file"] = self.paths.client_cert(name)
            fields["key_file"] = self.paths.client_key(name)
        elif name is not None:
            fields["username"] = name
            fields["password"] = password if password is not None else self.passwords[name]
        return MqttSettings.model_validate(fields)


def build_site(root: Path) -> Site:
    """CA, broker certificate (localhost / 127.0.0.1), every gate and worker issued, ACL and passwords."""
    paths = PkiPaths(root)
    ca = init_site(paths, "test-site")
    identities = SiteIdentities(site="test-site")
    passwords: dict[str, str] = {}
    pwfile = PasswordFile()
    for name, role in [*((g, Role.GATE) for g in GATES), *WORKERS]:
        write_issued(ca.issue_client(name, role), paths.client_cert(name), paths.client_key(name))
        identities = identities.with_identity(Identity(name=name, role=role))
        passwords[name] = f"pw-{name}-0123456789"
        pwfile.set(name, passwords[name])
    identities.save(paths.identities)
    paths.acl.write_text(render_acl(identities))
    pwfile.save(paths.passwords)
    return Site(paths, passwords)
