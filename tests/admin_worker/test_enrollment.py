"""Enrollment over a real broker: commands, duplicate checks on real photos, replay, audit."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from admin_worker.fingerprint import FingerprintMatcher, UnusableSample
from admin_worker.service import AdminWorker
from config.settings import EnrollSettings
from messaging import IncomingMessage, MqttClient
from schemas import topics
from schemas.admin import AdminReply
from schemas.base import new_id, utc_now
from schemas.events import EnrollEvent
from store.keyed_hash import KeyedHasher
from store.repository import Store
from tests import face_photos as photos
from tests.conftest import BrokerInfo, eventually, make_settings


@dataclass
class Admin:
    client: MqttClient
    store: Store
    worker: AdminWorker
    replies: dict[str, AdminReply] = field(default_factory=dict)
    events: list[EnrollEvent] = field(default_factory=list)

    async def send(self, command: dict[str, Any], command_id: str | None = None) -> AdminReply:
        cid = command_id or new_id()
        payload = {"command_id": cid, "admin_id": "A1", "command": command}
        await self.client.publish(topics.ADMIN_COMMAND, json.dumps(payload).encode())
        await eventually(lambda: cid in self.replies, timeout=30)
        return self.replies.pop(cid)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


class RidgeMatcher:
    """A test matcher: a sample's template is its sorted ridge tokens; score = shared fraction."""

    matcher_id = "test-ridges"
    duplicate_threshold = 0.8

    def extract(self, sample: bytes) -> bytes:
        tokens = sorted(set(sample.decode(errors="replace").split()))
        if len(tokens) < 3:
            raise UnusableSample("fewer than 3 minutiae")
        return " ".join(tokens).encode()

    def score(self, a: bytes, b: bytes) -> float:
        ta, tb = set(a.split()), set(b.split())
        return len(ta & tb) / max(len(ta | tb), 1)


@contextlib.asynccontextmanager
async def running_admin(tmp_path: Path, broker: BrokerInfo, store: Store, hasher: KeyedHasher,
                        matcher: FingerprintMatcher | None = None, **enroll: object) -> AsyncIterator[Admin]:
    settings = make_settings(tmp_path, broker)
    settings = settings.model_copy(update={"enroll": EnrollSettings(**enroll)})  # type: ignore[arg-type]
    worker = AdminWorker(settings, store, hasher, client_id="admin-worker", finger_matcher=matcher)
    client = MqttClient(settings.mqtt, "admin-console")
    a = Admin(client, store, worker)

    async def on_reply(msg: IncomingMessage) -> None:
        reply = AdminReply.model_validate_json(msg.payload)
        a.replies[reply.command_id] = reply

    async def on_event(msg: IncomingMessage) -> None:
        a.events.append(EnrollEvent.model_validate_json(msg.payload))

    client.subscribe(topics.admin_reply("A1"), on_reply)
    client.subscribe("events/enroll/#", on_event)
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(client.run())]
    try:
        await asyncio.wait_for(asyncio.gather(worker.mqtt.wait_connected(), client.wait_connected()), 60)
        yield a
    finally:
        worker.stop()
        client.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)


@pytest.fixture
async def admin(tmp_path: Path, broker: BrokerInfo, embedded_store: Store,
                hasher: KeyedHasher) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path, broker, embedded_store, hasher, matcher=RidgeMatcher()) as a:
        yield a


async def _resident(admin: Admin, user_id: str, name: str) -> None:
    reply = await admin.send({"action": "create_user", "user_id": user_id, "name": name, "building": "A",
                              "unit": "1203"})
    assert reply.ok, reply


async def test_duplicate_card_refused_with_owner_and_audited(admin: Admin) -> None:
    await _resident(admin, "U1", "Kim Minsu")
    await _resident(admin, "U2", "Lee Jiwoo")
    assert (await admin.send({"action": "add_card", "user_id": "U1", "acc_id": "CARD-77"})).ok
    # The same user enrolling the same card again is not a duplicate.
    assert (await admin.send({"action": "add_card", "user_id": "U1", "acc_id": "CARD-77"})).ok
    dup = await admin.send({"action": "add_card", "user_id": "U2", "acc_id": "CARD-77"})
    assert not dup.ok and dup.code is not None and dup.code.value == "USER_DUPLICATE_CREDENTIAL"
    assert dup.sub_code == "CARD" and dup.matched_user_id == "U1" and dup.matched_user_name == "Kim Minsu"
    assert dup.error == "Duplicate Card (U1)" and dup.error_ko == "중복된 카드 (U1)"
    records = admin.store.query_audit(code="USER_DUPLICATE_CREDENTIAL")
    assert len(records) == 1 and records[0].actor == "A1" and records[0].target == "U2"
    assert records[0].matched_user_id == "U1" and records[0].sub_code == "CARD"
    assert "CARD-77" not in str(list(admin.store.audit.find()))  # card ids never reach the audit trail
    await eventually(lambda: any(e.sub_code == "CARD" and e.matched_user_id == "U1" for e in admin.events))


async def test_duplicate_face_refused_same_user_allowed_up_to_five(admin: Admin) -> None:
    await _resident(admin, "U1", "Yao")
    await _resident(admin, "U2", "Someone Else")
    yao = photos.load(photos.YAO)
    assert (await admin.send({"action": "add_face", "user_id": "U1", "photo": b64(photos.YAO.read_bytes())})).ok
    mirrored = photos.jpeg(photos.variants(yao)["flip"])
    dup = await admin.send({"action": "add_face", "user_id": "U2", "photo": b64(mirrored)})
    assert not dup.ok and dup.sub_code == "FACE" and dup.matched_user_id == "U1"
    assert dup.error == "Duplicate Face (U1)" and dup.error_ko == "중복된 얼굴 (U1)"
    # Another person's face is no duplicate.
    assert (await admin.send({"action": "add_face", "user_id": "U2",
                              "photo": b64(photos.jpeg(photos.astronaut()))})).ok
    # U1 re-enrolls variants of their own face: allowed up to five templates.
    for name in ("flip", "brighter", "darker", "jpeg_40"):
        assert (await admin.send({"action": "add_face", "user_id": "U1",
                                  "photo": b64(photos.jpeg(photos.variants(yao)[name]))})).ok, name
    sixth = await admin.send({"action": "add_face", "user_id": "U1", "photo": b64(mirrored)})
    assert not sixth.ok and sixth.error is not None and sixth.error.startswith("TEMPLATE_LIMIT")
    assert admin.store.count_face_templates("U1") == 5
    assert admin.store.query_audit(target="U1", code="USER_DUPLICATE_CREDENTIAL")[0].target == "U2"


async def test_bad_commands_get_typed_refusals(admin: Admin) -> None:
    no_face = await admin.send({"action": "create_user", "user_id": "U9", "name": "Park"})
    assert no_face.ok
    coffee = await admin.send({"action": "add_face", "user_id": "U9",
                               "photo": b64(photos.jpeg(photos.no_face_photo()))})
    assert not coffee.ok and coffee.error is not None and coffee.error.startswith("UNUSABLE_PHOTO: NO_FACE_FOUND")
    ghost = await admin.send({"action": "add_card", "user_id": "NOBODY", "acc_id": "C1"})
    assert ghost.error is not None and ghost.error.startswith("USER_NOT_FOUND")
    unknown = await admin.send({"action": "launch_rockets"})
    assert unknown.error is not None and unknown.error.startswith("MALFORMED_COMMAND")
    missing = await admin.send({"action": "create_user", "user_id": "U10"})
    assert missing.error is not None and "name" in missing.error
    huge = await admin.send({"action": "add_face", "user_id": "U9", "photo": b64(b"\xff" * (2 * 1024 * 1024 + 1))})
    assert huge.error is not None and huge.error.startswith("MALFORMED_COMMAND")


async def test_replayed_command_id_is_applied_once(admin: Admin) -> None:
    first = await admin.send({"action": "create_user", "user_id": "U5", "name": "Choi"}, command_id="cmd-1")
    again = await admin.send({"action": "create_user", "user_id": "U5", "name": "Choi"}, command_id="cmd-1")
    assert first.ok and again.ok and again.msg_id == first.msg_id  # the recorded reply, not USER_EXISTS
    other = await admin.send({"action": "create_user", "user_id": "U5", "name": "Choi"}, command_id="cmd-2")
    assert other.error is not None and other.error.startswith("USER_EXISTS")
    assert len(admin.store.query_audit(target="U5")) == 2
    recent = admin.store.query_audit(since=utc_now() - timedelta(minutes=5), until=utc_now() + timedelta(minutes=1))
    assert {r.id for r in recent} >= {"cmd-1", "cmd-2"}


async def test_fingerprint_duplicates_through_the_matcher_interface(admin: Admin) -> None:
    await _resident(admin, "U1", "Kang")
    await _resident(admin, "U2", "Yoon")
    finger = b"r1 r2 r3 r4 r5 r6 r7 r8 r9 r10"
    assert (await admin.send({"action": "add_finger", "user_id": "U1", "sample": b64(finger)})).ok
    # The same finger read again, one minutia missed: still the same finger.
    again = b"r1 r2 r3 r4 r5 r6 r7 r8 r9"
    dup = await admin.send({"action": "add_finger", "user_id": "U2", "sample": b64(again)})
    assert not dup.ok and dup.sub_code == "FINGER" and dup.matched_user_id == "U1"
    assert dup.error == "Duplicate Fingerprint (U1)" and dup.error_ko == "중복된 지문 (U1)"
    assert (await admin.send({"action": "add_finger", "user_id": "U2", "sample": b64(b"x1 x2 x3 x4")})).ok
    # The same user re-enrolling is fine, up to ten fingerprints.
    for i in range(9):
        assert (await admin.send({"action": "add_finger", "user_id": "U1", "sample": b64(again)})).ok, i
    eleventh = await admin.send({"action": "add_finger", "user_id": "U1", "sample": b64(again)})
    assert eleventh.error is not None and eleventh.error.startswith("TEMPLATE_LIMIT")
    smudge = await admin.send({"action": "add_finger", "user_id": "U2", "sample": b64(b"r1")})
    assert smudge.error is not None and smudge.error.startswith("UNUSABLE_FINGERPRINT")
    assert admin.store.query_audit(code="USER_DUPLICATE_CREDENTIAL")[0].sub_code == "FINGER"


async def test_duplicate_checks_can_be_turned_off_except_for_cards(tmp_path: Path, amqtt_broker: BrokerInfo,
                                                                   embedded_store: Store,
                                                                   hasher: KeyedHasher) -> None:
    async with running_admin(tmp_path, amqtt_broker, embedded_store, hasher, face_duplicate_check=False) as admin:
        await _resident(admin, "U1", "Twin A")
        await _resident(admin, "U2", "Twin B")
        yao = photos.load(photos.YAO)
        assert (await admin.send({"action": "add_face", "user_id": "U1", "photo": b64(photos.jpeg(yao))})).ok
        same_face = b64(photos.jpeg(photos.variants(yao)["flip"]))
        assert (await admin.send({"action": "add_face", "user_id": "U2", "photo": same_face})).ok
        assert (await admin.send({"action": "add_card", "user_id": "U1", "acc_id": "C-9"})).ok
        card = await admin.send({"action": "add_card", "user_id": "U2", "acc_id": "C-9"})
        assert card.sub_code == "CARD"  # there is no setting that turns the card check off
        no_reader = await admin.send({"action": "add_finger", "user_id": "U1", "sample": b64(b"a b c d")})
        assert no_reader.error is not None and no_reader.error.startswith("NO_FINGERPRINT_MATCHER")
