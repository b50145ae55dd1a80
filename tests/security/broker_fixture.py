"""Secure brokers for tests: Mosquitto (a process) or amqtt (in this event loop) with an MQTTS
listener that authenticates and applies the site ACL, plus a plain loopback listener whose
anonymous clients are trusted (the observer a test uses to see what the broker really let through)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from broker.embedded import EmbeddedBroker
from broker.mosquitto import MosquittoProcess, TlsListener
from config.ports import free_port
from config.settings import MqttSettings
from messaging import IncomingMessage, MqttClient
from tests.security.site_fixture import Site


@dataclass(frozen=True)
class SecureBroker:
    kind: str
    plain_port: int
    tls_port: int
    site: Site
    process: MosquittoProcess | None = None

    @property
    def protocol(self) -> str:
        return "5" if self.kind == "mosquitto" else "3.1.1"

    def as_identity(self, name: str | None, **kw: object) -> MqttSettings:
        return self.site.mqtt(name, port=self.tls_port, protocol=self.protocol, **kw)  # type: ignore[arg-type]

    def trusted(self) -> MqttSettings:
        return MqttSettings(host="127.0.0.1", port=self.plain_port, reconnect_min_s=0.05, reconnect_max_s=0.5)


@contextlib.asynccontextmanager
async def running_secure_broker(kind: str, site: Site, *, require_certificate: bool = True,
                                plain_anonymous: bool = True) -> AsyncIterator[SecureBroker]:
    paths = site.paths
    if kind == "mosquitto":
        tls = TlsListener(paths.ca_cert, paths.broker_cert, paths.broker_key, port=0, bind="127.0.0.1",
                          require_certificate=require_certificate, crl_file=paths.crl)
        proc = MosquittoProcess(tls=tls, acl_file=paths.acl, password_file=paths.passwords,
                                allow_anonymous=plain_anonymous)
        proc.start()
        try:
            assert proc.tls_port is not None
            yield SecureBroker(kind, proc.port, proc.tls_port, site, proc)
        finally:
            proc.close()
        return
    embedded = EmbeddedBroker("127.0.0.1", free_port(), tls_port=0, tls_host="127.0.0.1", ca_file=paths.ca_cert,
                              cert_file=paths.broker_cert, key_file=paths.broker_key,
                              require_certificate=require_certificate, password_file=paths.passwords,
                              acl_file=paths.acl, crl_file=paths.crl, allow_anonymous=plain_anonymous)
    await embedded.start()
    try:
        assert embedded.tls_port is not None
        yield SecureBroker(kind, embedded.port, embedded.tls_port, site)
    finally:
        await embedded.stop()


@dataclass
class Running:
    """A connected MqttClient that records what arrives per subscription."""

    client: MqttClient
    seen: list[IncomingMessage] = field(default_factory=list)

    def payloads(self) -> set[bytes]:
        return {m.payload for m in self.seen}


@contextlib.asynccontextmanager
async def connected(settings: MqttSettings, client_id: str, *filters: str,
                    timeout: float = 5.0) -> AsyncIterator[Running]:
    client = MqttClient(settings, client_id)
    running = Running(client)

    async def record(msg: IncomingMessage) -> None:
        running.seen.append(msg)

    for f in filters:
        client.subscribe(f, record)
    task = asyncio.create_task(client.run())
    try:
        await client.wait_connected(timeout)
        yield running
    finally:
        client.stop()
        await asyncio.wait_for(task, 10)


async def refused(settings: MqttSettings, client_id: str, wait: float = 1.5) -> bool:
    """True if the client never gets connected within `wait` seconds (it keeps retrying meanwhile)."""
    client = MqttClient(settings, client_id)
    task = asyncio.create_task(client.run())
    try:
        await client.wait_connected(wait)
    except TimeoutError:
        return client.connections == 0
    finally:
        # Cancelled, not stopped: a refused TLS attempt can sit in its 5 s connect timeout.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return False
