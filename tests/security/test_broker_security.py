"""MQTTS and the topic ACL on real brokers (a Mosquitto process and the embedded amqtt broker):
who may connect, and what the broker lets each identity publish and read."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config.settings import MqttSettings
from security.identities import Role
from security.pki import CertificateAuthority, PkiPaths, create_ca, write_issued
from tests.conftest import eventually
from tests.security.broker_fixture import SecureBroker, connected, refused, running_secure_broker
from tests.security.site_fixture import Site


def _with(settings: MqttSettings, **changes: object) -> MqttSettings:
    return MqttSettings.model_validate({**settings.model_dump(), **changes})


# --- who may connect ------------------------------------------------------------------------------


async def test_gate_with_its_certificate_connects(secure: SecureBroker) -> None:
    async with connected(secure.as_identity("gate-1"), "gate-gate-1") as gate:
        assert gate.client.is_connected


async def test_no_client_certificate_is_refused(secure: SecureBroker) -> None:
    assert await refused(secure.as_identity(None), "nobody")
    # A username and password do not stand in for the certificate on this listener.
    assert await refused(secure.as_identity("gate-1", cert=False), "gate-gate-1")


async def test_certificate_from_another_ca_is_refused(secure: SecureBroker, tmp_path: Path) -> None:
    other = PkiPaths(tmp_path / "other")
    issued = create_ca("impostor")
    ca = CertificateAuthority.from_pem(issued.cert_pem, issued.key_pem)
    write_issued(ca.issue_client("gate-1", Role.GATE), other.client_cert("gate-1"), other.client_key("gate-1"))
    settings = _with(secure.as_identity("gate-1"), cert_file=other.client_cert("gate-1"),
                     key_file=other.client_key("gate-1"))
    assert await refused(settings, "gate-gate-1")


async def test_expired_certificate_is_refused(secure: SecureBroker, tmp_path: Path) -> None:
    paths = secure.site.paths
    ca = CertificateAuthority.load(paths)
    old = PkiPaths(tmp_path / "old")
    write_issued(ca.issue_client("gate-1", Role.GATE, days=1, valid_from=datetime.now(UTC) - timedelta(days=3)),
                 old.client_cert("gate-1"), old.client_key("gate-1"))
    settings = _with(secure.as_identity("gate-1"), cert_file=old.client_cert("gate-1"),
                     key_file=old.client_key("gate-1"))
    assert await refused(settings, "gate-gate-1")


async def test_client_refuses_a_broker_it_cannot_verify(secure: SecureBroker, tmp_path: Path) -> None:
    stranger_ca = tmp_path / "stranger-ca.crt"
    stranger_ca.write_bytes(create_ca("stranger").cert_pem)
    assert await refused(secure.as_identity("gate-1", ca_file=stranger_ca), "gate-gate-1")


@pytest.mark.parametrize("kind", ["mosquitto", "amqtt"])
async def test_password_listener(kind: str, site: Site) -> None:
    async with running_secure_broker(kind, site, require_certificate=False) as b:
        async with connected(b.as_identity("gate-1", cert=False), "gate-gate-1") as gate:
            assert gate.client.is_connected
        assert await refused(b.as_identity("gate-1", cert=False, password="wrong"), "gate-gate-1")
        assert await refused(b.as_identity("gate-1", cert=False, password=site.passwords["gate-2"]), "gate-gate-1")
        assert await refused(b.as_identity("nobody", cert=False, password="x"), "nobody")
        assert await refused(b.as_identity(None), "anonymous")


@pytest.mark.parametrize("kind", ["mosquitto", "amqtt"])
async def test_loopback_listener_can_require_passwords_too(kind: str, site: Site) -> None:
    async with running_secure_broker(kind, site, plain_anonymous=False) as b:
        assert await refused(b.trusted(), "anonymous-local")
        local_auth = _with(b.trusted(), username="auth-1", password=site.passwords["auth-1"])
        local_gate = _with(b.trusted(), username="gate-1", password=site.passwords["gate-1"])
        async with connected(local_auth, "auth-local", "access/request/+") as auth, \
                connected(local_gate, "gate-local") as gate:
            await asyncio.sleep(0.1)
            await gate.client.publish("access/request/gate-2", b"spoof")
            await gate.client.publish("access/request/gate-1", b"own")
            await eventually(lambda: b"own" in auth.payloads())
            await asyncio.sleep(0.2)
            assert auth.payloads() == {b"own"}  # the ACL holds on the loopback listener as well


# --- what each identity may publish ---------------------------------------------------------------

# (identity, forbidden topic, a topic it may publish, sent after the forbidden one)
PUBLISH_DENIED = [
    ("gate-1", "access/request/gate-2", "access/request/gate-1"),
    ("gate-1", "gates/gate-2/status", "gates/gate-1/status"),
    ("gate-1", "access/response/gate-1", "gates/gate-1/heartbeat"),  # no forging its own grant
    ("gate-1", "events/access/gate-1", "gates/gate-1/logs"),
    ("gate-1", "gates/gate-2/logs", "gates/gate-1/logs"),
    ("auth-1", "access/request/gate-1", "access/response/gate-1"),
    ("auth-1", "admin/reply/console-1", "events/access/gate-1"),
    ("admin-1", "admin/command", "admin/reply/console-1"),
    ("console-1", "events/enroll/U1", "admin/command"),
    ("sync-1", "gates/gate-1/status", "gates/gate-1/sync"),
    ("sync-1", "access/response/gate-1", "gates/gate-1/ping"),
    ("ops", "events/alert/fake", None),
]


@pytest.mark.parametrize("identity, forbidden, allowed", PUBLISH_DENIED)
async def test_publish_outside_the_acl_never_reaches_anyone(secure: SecureBroker, identity: str, forbidden: str,
                                                             allowed: str | None) -> None:
    async with connected(secure.trusted(), "observer", "#") as observer, \
            connected(secure.as_identity(identity), f"c-{identity}") as client:
        await asyncio.sleep(0.1)
        await client.client.publish(forbidden, b"forbidden", retain=True)
        if allowed is not None:
            await client.client.publish(allowed, b"allowed")
            await eventually(lambda: b"allowed" in observer.payloads())
        await asyncio.sleep(0.3)
        assert [m.topic for m in observer.seen if m.payload == b"forbidden"] == []
    # Nor was it retained for a later subscriber.
    async with connected(secure.trusted(), "late-observer", "#") as late:
        await asyncio.sleep(0.3)
        assert b"forbidden" not in late.payloads()


# --- what each identity may read ------------------------------------------------------------------

# (identity, filter it tries, topic published there, its own topic as the marker)
READ_DENIED = [
    ("gate-1", "access/response/gate-2", "access/response/gate-2", "access/response/gate-1"),
    ("gate-1", "access/response/+", "access/response/gate-2", "access/response/gate-1"),
    ("gate-1", "#", "access/request/gate-2", "access/response/gate-1"),
    ("gate-1", "gates/gate-2/sync", "gates/gate-2/sync", "gates/gate-1/sync"),
    ("gate-1", "events/#", "events/access/gate-1", "gates/gate-1/ping"),
    ("console-1", "access/response/+", "access/response/gate-1", "admin/reply/console-1"),
    ("ops", "access/request/+", "access/request/gate-1", "events/access/gate-1"),
    ("sync-1", "access/response/+", "access/response/gate-1", "gates/gate-1/status"),
]


@pytest.mark.parametrize("identity, topic_filter, topic, marker", READ_DENIED)
async def test_reading_outside_the_acl_delivers_nothing(secure: SecureBroker, identity: str, topic_filter: str,
                                                        topic: str, marker: str) -> None:
    async with connected(secure.as_identity(identity), f"c-{identity}", topic_filter, marker) as reader, \
            connected(secure.trusted(), "publisher") as publisher:
        await asyncio.sleep(0.1)
        await publisher.client.publish(topic, b"secret")
        await publisher.client.publish(marker, b"marker")
        await eventually(lambda: b"marker" in reader.payloads())
        await asyncio.sleep(0.2)
        assert b"secret" not in reader.payloads()


async def test_workers_do_their_jobs(secure: SecureBroker) -> None:
    """Each role's own traffic flows: gate -> auth -> gate, console -> admin -> console, sync <-> gate."""
    shared = "$share/auth/access/request/+" if secure.kind == "mosquitto" else "access/request/+"
    admin_filter = "$share/admin/admin/command" if secure.kind == "mosquitto" else "admin/command"
    async with connected(secure.as_identity("gate-1"), "gate-gate-1", "access/response/gate-1",
                         "gates/gate-1/sync") as gate, \
            connected(secure.as_identity("auth-1"), "auth-1", shared) as auth, \
            connected(secure.as_identity("admin-1"), "admin-1", admin_filter) as admin, \
            connected(secure.as_identity("console-1"), "console-1", "admin/reply/console-1", "events/#",
                      "gates/+/status") as console, \
            connected(secure.as_identity("sync-1"), "sync-1", "gates/+/status", "gates/+/logs") as sync, \
            connected(secure.as_identity("ops"), "ops", "events/#") as ops:
        await asyncio.sleep(0.2)
        await gate.client.publish("access/request/gate-1", b"req")
        await gate.client.publish("gates/gate-1/status", b"online", retain=True)
        await gate.client.publish("gates/gate-1/logs", b"log")
        await eventually(lambda: b"req" in auth.payloads())
        await auth.client.publish("access/response/gate-1", b"resp")
        await auth.client.publish("events/access/gate-1", b"event")
        await console.client.publish("admin/command", b"cmd")
        await eventually(lambda: b"cmd" in admin.payloads())
        await admin.client.publish("admin/reply/console-1", b"reply")
        await sync.client.publish("gates/gate-1/sync", b"snapshot", retain=True)
        await eventually(lambda: {b"resp", b"snapshot"} <= gate.payloads())
        await eventually(lambda: {b"reply", b"event", b"online"} <= console.payloads())
        await eventually(lambda: {b"online", b"log"} <= sync.payloads())
        await eventually(lambda: b"event" in ops.payloads())
