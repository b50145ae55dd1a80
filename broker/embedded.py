"""The embedded amqtt broker, run inside a Passage process (MQTT 3.1.1, no shared subscriptions)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from broker.amqtt_access import PassageAccessPlugin, PassageBroker
from config.ports import free_port, is_loopback
from config.settings import BrokerSettings

log = logging.getLogger(__name__)

_ACCESS_PLUGIN = f"{PassageAccessPlugin.__module__}.{PassageAccessPlugin.__qualname__}"


class BrokerStartError(RuntimeError):
    """The embedded broker could not listen (port taken, bad address, unreadable TLS or ACL files)."""


class EmbeddedBroker:
    """An amqtt broker: a plain listener on `host:port` (anonymous clients trusted, as before), and
    optionally an MQTTS listener whose clients authenticate and obey the site ACL."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        plain: bool = True,
        allow_anonymous: bool = True,
        allow_remote_plain: bool = False,
        tls_port: int | None = None,
        tls_host: str = "0.0.0.0",
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        require_certificate: bool = True,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        crl_file: Path | None = None,
    ) -> None:
        if plain and not allow_remote_plain and not is_loopback(host):
            raise BrokerStartError(f"plain MQTT on {host} is not loopback; use the TLS listener")
        if not plain and tls_port is None:
            raise BrokerStartError("no listener: enable the plain listener or give a TLS port")
        self.host = host
        self.port = port
        self.tls_host = tls_host
        self.tls_port = (tls_port or free_port(tls_host)) if tls_port is not None else None
        listeners: dict[str, Any] = {}
        if plain:
            listeners["default"] = {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}
        if self.tls_port is not None:
            if not (ca_file and cert_file and key_file):
                raise BrokerStartError("the TLS listener needs ca_file, cert_file and key_file")
            listeners["tls" if plain else "default"] = {
                "type": "tcp", "bind": f"{tls_host}:{self.tls_port}", "max_connections": 0, "ssl": True,
                "cafile": str(ca_file), "certfile": str(cert_file), "keyfile": str(key_file)}
        self.secured = self.tls_port is not None or not allow_anonymous or bool(password_file or acl_file)
        plugins: dict[str, Any]
        if self.secured:
            plugins = {_ACCESS_PLUGIN: {
                "plain_allow_anonymous": allow_anonymous, "require_certificate": require_certificate,
                "password_file": str(password_file) if password_file else None,
                "acl_file": str(acl_file) if acl_file else None,
                "crl_file": str(crl_file) if crl_file else None,
                "ca_file": str(ca_file) if ca_file else None}}
        else:
            # Today's one-machine default: no topic plugin, so no per-message check on the hot path.
            plugins = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
        config: dict[str, Any] = {"listeners": listeners, "plugins": plugins}
        try:
            self._broker = PassageBroker(config)
        except Exception as exc:  # amqtt raises its own errors (and OSError) for unreadable files
            raise BrokerStartError(f"embedded broker configuration refused: {exc}") from exc

    @classmethod
    def from_settings(cls, broker: BrokerSettings, *, port: int | None = None) -> EmbeddedBroker:
        """The broker [broker] describes (`port` overrides the plain listener's)."""
        return cls(broker.bind_host, port if port is not None else broker.port, plain=broker.plain_listener,
                   allow_anonymous=broker.allow_anonymous, allow_remote_plain=broker.allow_remote_plain,
                   tls_port=broker.tls_port, tls_host=broker.tls_bind_host, ca_file=broker.ca_file,
                   cert_file=broker.cert_file, key_file=broker.key_file,
                   require_certificate=broker.require_certificate, password_file=broker.password_file,
                   acl_file=broker.acl_file, crl_file=broker.crl_file)

    async def start(self) -> None:
        try:
            await self._broker.start()
        except Exception as exc:  # amqtt wraps OSError in its own BrokerError
            raise BrokerStartError(f"embedded broker cannot listen on {self.host}:{self.port}: {exc}") from exc
        log.info("embedded amqtt broker listening on %s:%s%s", self.host, self.port,
                 f" and MQTTS {self.tls_host}:{self.tls_port}" if self.tls_port else "")

    async def stop(self) -> None:
        await self._broker.shutdown()
