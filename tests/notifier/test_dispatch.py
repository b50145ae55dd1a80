"""The local channel over a real broker, the Notifier's fan-out, and the channel factory."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from config.ports import free_port
from config.settings import MqttSettings, NotifyRecipient, NotifySettings
from messaging import IncomingMessage, MqttClient
from notifier.base import Notification, NotifyConfigError
from notifier.dispatch import ADMINS_ROOM, Notifier
from notifier.factory import build_channels, build_notifier
from notifier.local import LocalChannel
from notifier.slack import SlackChannel
from notifier.sms import SmsChannel
from schemas import topics
from schemas.events import NotificationEvent
from tests.conftest import BrokerInfo, eventually, make_settings
from tests.notifier.standins import HttpStandIn, Reply


@pytest.fixture
async def bus(tmp_path: Path, broker: BrokerInfo) -> AsyncIterator[tuple[MqttClient, list[IncomingMessage]]]:
    """A client for the local channel, and what a watcher sees on events/notify/+."""
    settings = make_settings(tmp_path, broker)
    publisher = MqttClient(settings.mqtt, "notify-pub")
    watcher = MqttClient(settings.mqtt, "notify-watch")
    seen: list[IncomingMessage] = []

    async def record(msg: IncomingMessage) -> None:
        seen.append(msg)

    watcher.subscribe(topics.notify_event("x").rsplit("/", 1)[0] + "/+", record)
    tasks = [asyncio.create_task(publisher.run()), asyncio.create_task(watcher.run())]
    try:
        await publisher.wait_connected(10)
        await watcher.wait_connected(10)
        yield publisher, seen
    finally:
        publisher.stop()
        watcher.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


@pytest.fixture
def failing_gateway() -> Iterator[HttpStandIn]:
    with HttpStandIn(lambda _req: Reply(500, b"down")) as standin:
        yield standin


@pytest.fixture
def slack() -> Iterator[HttpStandIn]:
    with HttpStandIn(lambda _req: Reply(200, b"ok", {"Content-Type": "text/plain"})) as standin:
        yield standin


async def test_local_channel_publishes_without_device_data(bus: tuple[MqttClient, list[IncomingMessage]]) -> None:
    client, seen = bus
    note = Notification(recipient_id="U1", title="Your visitor has arrived", body="Park entered at lobby.",
                        data={"pass_id": "P-1"}, device_data={"qr": "SECRET-PASS"}, fcm_token="device-xyz")
    await LocalChannel(client).send(note)
    await eventually(lambda: seen)
    [msg] = seen
    assert msg.topic == topics.notify_event("U1")
    event = NotificationEvent.model_validate_json(msg.payload)
    assert (event.recipient_id, event.title, event.body, event.data) == (
        "U1", "Your visitor has arrived", "Park entered at lobby.", {"pass_id": "P-1"})
    assert b"SECRET-PASS" not in msg.payload and b"device-xyz" not in msg.payload


async def test_admin_alert_fans_out_and_failures_never_raise(
        bus: tuple[MqttClient, list[IncomingMessage]], failing_gateway: HttpStandIn, slack: HttpStandIn) -> None:
    client, seen = bus
    sms = SmsChannel(failing_gateway.url, SecretStr("t0k3n"), attempts=2, backoff_s=0.01)
    room = SlackChannel(SecretStr(slack.url + "/hook"), attempts=1)
    admins = [NotifyRecipient(id="admin-1", phone="+821011112222"), NotifyRecipient(id="admin-2")]
    notifier = Notifier([LocalChannel(client), sms], rooms=[room], admins=admins)
    try:
        deliveries = await notifier.notify_admins("Gate lobby offline", "No heartbeat for 10 s.", {"gate_id": "lobby"})
    finally:
        await notifier.aclose()
    outcomes = {(d.channel, d.recipient_id): d.outcome for d in deliveries}
    assert outcomes == {("local", "admin-1"): "sent", ("local", "admin-2"): "sent",
                        ("sms", "admin-1"): "failed", ("sms", "admin-2"): "skipped",
                        ("slack", ADMINS_ROOM): "sent"}
    await eventually(lambda: len(seen) == 2)
    assert sorted(m.topic for m in seen) == [topics.notify_event("admin-1"), topics.notify_event("admin-2")]
    # The gateway was tried (and retried) for the admin with a phone; the room got one post, not two.
    assert len(failing_gateway.requests) == 2 and len(slack.requests) == 1
    assert "t0k3n" not in json.dumps([d.detail for d in deliveries])


async def test_unreachable_broker_is_a_failed_delivery_not_an_exception(tmp_path: Path) -> None:
    cut_off = MqttClient(MqttSettings(port=free_port()), "never-connected")  # not running: never connects
    notifier = Notifier([LocalChannel(cut_off, publish_timeout_s=0.2)])
    [delivery] = await notifier.send(Notification(recipient_id="U1", title="t", body="b"))
    assert delivery.outcome == "failed" and delivery.channel == "local"


async def test_factory_builds_each_configured_channel(tmp_path: Path) -> None:
    from tests.notifier.test_fcm import PROJECT

    key_file = tmp_path / "sa.json"
    _write_service_account(key_file, PROJECT)
    settings = NotifySettings(channels=["local", "fcm", "email", "sms", "slack"], fcm_service_account_file=key_file,
                              smtp_from="passage@building.example", sms_webhook_url="http://127.0.0.1:9/sms",
                              slack_webhook_url=SecretStr("http://127.0.0.1:9/hook"),
                              admins=[NotifyRecipient(id="admin-1", fcm_token=SecretStr("device-secret-777"))])
    client = MqttClient(settings_mqtt(), "factory")
    people, rooms = build_channels(settings, client)
    assert [c.name for c in people] == ["local", "fcm", "email", "sms"] and [c.name for c in rooms] == ["slack"]
    notifier = build_notifier(settings, client)
    assert [a.id for a in notifier.admins] == ["admin-1"]
    assert "device-secret-777" not in repr(settings) and "127.0.0.1:9/hook" not in repr(settings)
    await notifier.aclose()
    await _close(people, rooms)


async def _close(*groups: Sequence[object]) -> None:
    for group in groups:
        for channel in group:
            close = getattr(channel, "aclose", None)
            if close is not None:
                await close()


def settings_mqtt() -> MqttSettings:
    return MqttSettings(port=free_port())


def _write_service_account(path: Path, project: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({"type": "service_account", "project_id": project, "private_key_id": "k1",
                                "private_key": pem, "client_email": f"n@{project}.iam.gserviceaccount.com",
                                "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}))


def test_channels_without_their_addresses_are_refused_at_load(tmp_path: Path) -> None:
    for channel, missing in (("fcm", "fcm_service_account_file"), ("slack", "slack_webhook_url"),
                             ("email", "smtp_from"), ("sms", "sms_webhook_url")):
        with pytest.raises(ValidationError, match=missing):
            NotifySettings(channels=[channel])
    with pytest.raises(NotifyConfigError):
        build_channels(NotifySettings(channels=["fcm"], fcm_service_account_file=tmp_path / "nope.json"), None)
    with pytest.raises(NotifyConfigError):
        build_channels(NotifySettings(channels=["local"]), None)
