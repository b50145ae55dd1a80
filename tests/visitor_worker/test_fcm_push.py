"""The visitor worker wired to the real FCM channel (firebase-admin), against the local stand-in for
Google's token and FCM v1 endpoints that the notifier tests use."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from notifier.fcm import FcmChannel
from schemas.base import utc_now
from schemas.documents import AccessGroup, Gate, User
from schemas.visitor import RegisterPass
from store.repository import Store
from tests.conftest import BrokerInfo, make_settings
from tests.notifier.test_fcm import SEND_PATH, FakeGoogle, fake_google  # noqa: F401 - the fixture
from tests.visitor_worker.peers import running_visitor_worker


def _seed(store: Store) -> None:
    store.put_gate(Gate(id="lobby", name="Lobby"))
    store.put_access_group(AccessGroup(id="res", name="Residents", gate_ids=["lobby"]))
    store.put_user(User(id="U1", name="Kim", building="A", unit="1203", groups=["res"]))


async def test_visitor_gets_the_pass_through_fcm(tmp_path: Path, amqtt_broker: BrokerInfo, embedded_store: Store,
                                                 fake_google: FakeGoogle) -> None:  # noqa: F811
    await asyncio.to_thread(_seed, embedded_store)
    settings = make_settings(tmp_path, amqtt_broker)
    # firebase-admin's first send includes the OAuth exchange: give it more than the default budget.
    settings = settings.model_copy(update={"visitor": settings.visitor.model_copy(update={"push_timeout_s": 10})})
    channel = FcmChannel(fake_google.key_file, timeout_s=5)
    try:
        async with running_visitor_worker(settings, embedded_store, [channel]) as (_, app):
            start = utc_now()
            reply = await app.send("U1", RegisterPass(visitor_name="Park", valid_from=start,
                                                      valid_until=start + timedelta(hours=2),
                                                      fcm_token="visitor-phone-token"))
    finally:
        await channel.aclose()
    assert reply.ok and reply.pushed and reply.issued is not None
    [send] = fake_google.sends()
    assert send.path == SEND_PATH
    message = send.json()["message"]
    assert message["token"] == "visitor-phone-token"
    assert message["notification"]["title"] == "Your visitor pass"
    assert message["data"]["pass_token"] == reply.qr_payload
    assert message["data"]["pass_id"] == reply.issued.pass_id
