"""The embedded amqtt broker: today's anonymous default is unchanged; its MQTTS listener needs its files."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.embedded import BrokerStartError, EmbeddedBroker
from config.ports import free_port
from config.settings import BrokerSettings, MqttSettings
from tests.conftest import eventually
from tests.security.broker_fixture import connected
from tests.security.site_fixture import build_site


async def test_default_broker_takes_anonymous_local_clients_as_before() -> None:
    broker = EmbeddedBroker.from_settings(BrokerSettings(), port=free_port())
    assert not broker.secured and broker.tls_port is None
    await broker.start()
    try:
        settings = MqttSettings(port=broker.port)
        async with connected(settings, "sub", "any/#") as sub, connected(settings, "pub") as pub:
            await pub.client.publish("any/topic", b"x")
            await eventually(lambda: sub.seen)
            assert sub.payloads() == {b"x"}
    finally:
        await broker.stop()


async def test_tls_listener_from_settings(tmp_path: Path) -> None:
    site = build_site(tmp_path / "pki")
    p = site.paths
    settings = BrokerSettings(port=free_port(), tls_port=free_port(), tls_bind_host="127.0.0.1", ca_file=p.ca_cert,
                              cert_file=p.broker_cert, key_file=p.broker_key, acl_file=p.acl)
    broker = EmbeddedBroker.from_settings(settings)
    assert broker.secured and broker.tls_port == settings.tls_port
    await broker.start()
    try:
        async with connected(site.mqtt("gate-1", port=settings.tls_port or 0), "gate-gate-1") as gate:
            assert gate.client.is_connected
    finally:
        await broker.stop()


def test_unusable_configurations_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BrokerStartError, match="not loopback"):
        EmbeddedBroker("0.0.0.0", free_port())
    with pytest.raises(BrokerStartError, match="ca_file"):
        EmbeddedBroker(tls_port=free_port())
    with pytest.raises(BrokerStartError):
        EmbeddedBroker(port=free_port(), acl_file=tmp_path / "missing-acl")
