"""The visitor worker over each real broker with the embedded store: issue, push, list, revoke,
replays, policy refusals and malformed requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from pyzbar.pyzbar import ZBarSymbol
from pyzbar.pyzbar import decode as zbar_decode

from config.settings import Settings, VisitorSettings
from messaging import IncomingMessage, MqttClient
from schemas import topics
from schemas.base import utc_now
from schemas.codes import EventCode
from schemas.documents import AccessGroup, Gate, User, UserKind
from schemas.events import VisitorEvent
from schemas.visitor import (
    ListPasses,
    PassStatus,
    RegisterPass,
    RevokePass,
    VisitorErrorCode,
    VisitorReply,
    VisitorRequest,
)
from store.passes import VisitorPassStore
from store.repository import Store
from tests.conftest import BrokerInfo, eventually, make_settings
from tests.platform_fixture import Probe
from tests.visitor_worker.peers import RecordingChannel, ResidentApp, running_visitor_worker
from visitor_worker.service import VisitorWorker


def seed(store: Store) -> None:
    store.put_gate(Gate(id="lobby", name="Lobby"))
    store.put_gate(Gate(id="garage", name="Garage"))
    store.put_gate(Gate(id="pool", name="Pool"))
    store.put_gate(Gate(id="old-door", name="Old door", active=False))
    store.put_access_group(AccessGroup(id="res-a", name="Building A", gate_ids=["lobby", "garage", "old-door"]))
    store.put_access_group(AccessGroup(id="res-b", name="Lobby only", gate_ids=["lobby"]))
    store.put_access_group(AccessGroup(id="staff", name="Staff", gate_ids=["pool"]))
    for user in (
        User(id="U1", name="Kim", building="A", unit="1203", groups=["res-a"]),
        User(id="U1B", name="Kim Jr", building="A", unit="1203", groups=["res-a"]),
        User(id="U2", name="Lee", building="A", unit="0801", groups=["res-b"]),
        User(id="U3", name="Choi", building="A", unit="0502", groups=["res-a"], active=False),
        User(id="U4", name="Nomad", groups=["res-a"]),
        User(id="U5", name="Nobody's gates", building="A", unit="0101"),
        User(id="S1", name="Guard", kind=UserKind.STAFF, building="A", unit="0000", groups=["staff"]),
    ):
        store.put_user(user)


@dataclass
class Env:
    settings: Settings
    store: Store
    worker: VisitorWorker
    app: ResidentApp
    channel: RecordingChannel
    raw_events: list[IncomingMessage]

    @property
    def events(self) -> list[VisitorEvent]:
        """What was published on events/visitor/+ so far."""
        return [VisitorEvent.model_validate_json(m.payload) for m in self.raw_events]


def _settings(tmp_path: Path, broker: BrokerInfo, **visitor: object) -> Settings:
    base = make_settings(tmp_path, broker)
    policy = VisitorSettings(max_window_s=2 * 24 * 3600, max_active_passes_per_unit=3, max_uses=5, **visitor)
    return base.model_copy(update={"visitor": policy})


@pytest.fixture
async def env(tmp_path: Path, broker: BrokerInfo, embedded_store: Store) -> AsyncIterator[Env]:
    await asyncio.to_thread(seed, embedded_store)
    settings = _settings(tmp_path, broker)
    channel = RecordingChannel()
    probe = Probe(MqttClient(settings.mqtt, "visitor-probe"))
    raw_events = probe.on("events/visitor/+")
    probe_task = asyncio.create_task(probe.client.run())
    try:
        await probe.client.wait_connected(10)
        async with running_visitor_worker(settings, embedded_store, [channel]) as (worker, app):
            yield Env(settings, embedded_store, worker, app, channel, raw_events)
    finally:
        probe.client.stop()
        await asyncio.wait_for(probe_task, 10)


def register(hours: float = 4, start_in: float = 0, **kw: object) -> RegisterPass:
    start = utc_now() + timedelta(hours=start_in)
    return RegisterPass.model_validate({"visitor_name": "Park", "purpose": "dinner", "valid_from": start,
                                        "valid_until": start + timedelta(hours=hours), **kw})


def qr_text(png: bytes) -> str:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    return "".join(s.data.decode() for s in zbar_decode(image, symbols=[ZBarSymbol.QRCODE]))


async def test_register_issues_a_signed_pass_with_its_qr(env: Env) -> None:
    reply = await env.app.send("U1", register(max_uses=2))
    assert reply.ok and reply.code is None and reply.issued is not None
    issued = reply.issued
    assert (issued.resident_id, issued.building, issued.unit) == ("U1", "A", "1203")
    assert issued.status is PassStatus.ACTIVE and issued.max_uses == 2 and issued.uses == 0
    # Empty scope: the resident's active gates, named in the pass (the inactive door is left out).
    assert issued.gate_ids == ["garage", "lobby"]
    assert reply.qr_png is not None and reply.qr_svg is not None and reply.qr_payload is not None
    assert qr_text(reply.qr_png) == reply.qr_payload
    claims = env.worker.signer.verifier().verify(reply.qr_payload)
    assert claims.pass_id == issued.pass_id and claims.gate_ids == ("garage", "lobby") and claims.max_uses == 2
    assert claims.valid_from == issued.valid_from and claims.valid_until == issued.valid_until
    assert not reply.pushed and env.channel.sent == []  # no device token: the resident shares the QR
    stored = await asyncio.to_thread(VisitorPassStore(env.store.db).get, issued.pass_id)
    assert stored is not None and stored.visitor_name == "Park" and stored.key_id == env.worker.signer.key_id
    await eventually(lambda: len(env.events) == 1)
    [event] = env.events
    assert event.code is EventCode.VISITOR_PASS_ISSUED and event.pass_id == issued.pass_id
    assert event.resident_id == "U1"


async def test_named_gates_must_be_the_residents(env: Env) -> None:
    reply = await env.app.send("U1", register(gate_ids=["lobby"]))
    assert reply.ok and reply.issued is not None and reply.issued.gate_ids == ["lobby"]
    refused = await env.app.send("U1", register(gate_ids=["lobby", "pool"]))
    assert not refused.ok and refused.code is VisitorErrorCode.GATE_NOT_PERMITTED and "pool" in (refused.error or "")
    assert refused.qr_payload is None and refused.issued is None


async def test_pass_is_pushed_to_the_visitors_phone(env: Env) -> None:
    reply = await env.app.send("U1", register(fcm_token="visitor-device-token-123"))
    assert reply.ok and reply.pushed and reply.error is None
    assert reply.issued is not None and reply.qr_png is not None  # the resident can still share it
    [sent] = env.channel.sent
    assert sent.fcm_token == "visitor-device-token-123" and sent.recipient_id == reply.issued.pass_id
    assert sent.device_data == {"pass_token": reply.qr_payload}
    assert sent.data["pass_id"] == reply.issued.pass_id
    assert reply.qr_payload not in json.dumps(sent.data)  # the token is device-only data
    stored = await asyncio.to_thread(VisitorPassStore(env.store.db).get, reply.issued.pass_id)
    assert stored is not None and stored.pushed


@pytest.mark.parametrize("fail, delay, says", [(True, 0.0, "push failed"), (False, 2.0, "not confirmed")])
async def test_failed_or_slow_push_still_returns_the_qr(env: Env, fail: bool, delay: float, says: str) -> None:
    env.channel.fail, env.channel.delay_s = fail, delay
    env.worker.pusher._timeout_s = 0.3
    reply = await env.app.send("U1", register(fcm_token="dead-token"))
    assert reply.ok and not reply.pushed and says in (reply.error or "")
    assert reply.qr_payload is not None and qr_text(reply.qr_png or b"") == reply.qr_payload


async def test_replayed_request_gets_the_same_reply_and_no_second_pass(env: Env) -> None:
    action = register(fcm_token="visitor-device-token-123")
    first = await env.app.send("U1", action, request_id="req-replay-1")
    again = await env.app.send("U1", action, request_id="req-replay-1")
    assert again == first
    assert len(env.channel.sent) == 1
    # Even a fresh worker (restart: nothing in memory) answers from the store with the same pass.
    async with running_visitor_worker(env.settings, env.store, [env.channel], client_id="visitor-2") as (_, app2):
        env.worker.stop()
        await asyncio.sleep(0.2)
        third = await app2.send("U1", action, request_id="req-replay-1")
    assert third.ok and third.issued is not None and first.issued is not None
    assert third.issued.pass_id == first.issued.pass_id and third.qr_payload == first.qr_payload
    assert third.pushed and len(env.channel.sent) == 1
    units = await asyncio.to_thread(VisitorPassStore(env.store.db).list_unit, "A", "1203")
    assert len(units) == 1
    # Another resident cannot collect that pass by reusing its request id.
    async with running_visitor_worker(env.settings, env.store, client_id="visitor-3") as (_, app3):
        stolen = await app3.send("U2", action, request_id="req-replay-1")
    assert not stolen.ok and stolen.code is VisitorErrorCode.INVALID_REQUEST and stolen.qr_payload is None


async def test_copies_arriving_together_issue_one_pass(env: Env) -> None:
    # QoS 1 redelivery: copies of one request arrive while the first is still being served.
    request = VisitorRequest(request_id="req-burst", resident_id="U1", action=register(fcm_token="tok"))
    env.channel.delay_s = 0.2
    await asyncio.gather(*(env.app.mqtt.publish(topics.VISITOR_REGISTER, request) for _ in range(3)))
    await env.app.wait_reply("req-burst", count=3)
    replies = env.app.replies["req-burst"]
    assert all(r.ok for r in replies) and len({r.issued.pass_id for r in replies if r.issued}) == 1
    assert len(env.channel.sent) == 1
    units = await asyncio.to_thread(VisitorPassStore(env.store.db).list_unit, "A", "1203")
    assert len(units) == 1


@pytest.mark.parametrize("resident, action, code", [
    ("U404", register(), VisitorErrorCode.UNKNOWN_RESIDENT),
    ("U3", register(), VisitorErrorCode.RESIDENT_INACTIVE),
    ("S1", register(), VisitorErrorCode.UNKNOWN_RESIDENT),
    ("U4", register(), VisitorErrorCode.UNKNOWN_RESIDENT),
    ("U5", register(), VisitorErrorCode.GATE_NOT_PERMITTED),
    ("U1", register(hours=49), VisitorErrorCode.WINDOW_TOO_LONG),
    ("U1", register(hours=1, start_in=-2), VisitorErrorCode.WINDOW_IN_PAST),
    ("U1", register(max_uses=6), VisitorErrorCode.TOO_MANY_USES),
    ("U2", register(gate_ids=["garage"]), VisitorErrorCode.GATE_NOT_PERMITTED),
    ("U404", ListPasses(), VisitorErrorCode.UNKNOWN_RESIDENT),
    ("U3", RevokePass(pass_id="p1"), VisitorErrorCode.RESIDENT_INACTIVE),
])
async def test_policy_refusals_are_typed(env: Env, resident: str, action: RegisterPass, code: VisitorErrorCode) -> None:
    reply = await env.app.send(resident, action)
    assert not reply.ok and reply.code is code and reply.error
    assert reply.qr_payload is None and reply.qr_png is None and reply.issued is None
    units = await asyncio.to_thread(VisitorPassStore(env.store.db).list_unit, "A", "1203")
    assert units == []


async def test_started_window_counts_from_now(env: Env) -> None:
    # Began an hour ago, ends in 47 h: 47 h are left, inside the 48 h limit.
    reply = await env.app.send("U1", register(hours=48, start_in=-1))
    assert reply.ok and reply.issued is not None
    assert abs((reply.issued.valid_from - utc_now()).total_seconds()) < 5


async def test_live_passes_per_unit_are_capped(env: Env) -> None:
    for _ in range(3):
        assert (await env.app.send("U1", register())).ok
    over = await env.app.send("U1B", register())  # same unit, other resident: same cap
    assert not over.ok and over.code is VisitorErrorCode.TOO_MANY_PASSES
    assert (await env.app.send("U2", register())).ok  # another unit is not affected
    listed = await env.app.send("U1", ListPasses())
    assert listed.passes
    revoked = await env.app.send("U1", RevokePass(pass_id=listed.passes[0].pass_id))
    assert revoked.ok
    assert (await env.app.send("U1B", register())).ok  # a revoked pass frees its place


async def test_residents_see_and_revoke_only_their_units_passes(env: Env) -> None:
    mine = await env.app.send("U1", register())
    theirs = await env.app.send("U2", register())
    assert mine.issued is not None and theirs.issued is not None
    listed = await env.app.send("U2", ListPasses())
    assert [p.pass_id for p in listed.passes] == [theirs.issued.pass_id]
    refused = await env.app.send("U2", RevokePass(pass_id=mine.issued.pass_id))
    missing = await env.app.send("U2", RevokePass(pass_id="no-such-pass"))
    # Another unit's pass is answered exactly like one that does not exist.
    assert refused.code is missing.code is VisitorErrorCode.PASS_NOT_FOUND
    assert refused.error == missing.error and refused.issued is None
    stored = await asyncio.to_thread(VisitorPassStore(env.store.db).get, mine.issued.pass_id)
    assert stored is not None and stored.status is PassStatus.ACTIVE
    # Someone else of the same unit may revoke it.
    family = await env.app.send("U1B", ListPasses())
    assert [p.pass_id for p in family.passes] == [mine.issued.pass_id]
    done = await env.app.send("U1B", RevokePass(pass_id=mine.issued.pass_id))
    assert done.ok and done.issued is not None and done.issued.status is PassStatus.REVOKED
    again = await env.app.send("U1B", RevokePass(pass_id=mine.issued.pass_id))
    assert again.ok  # revoking twice is harmless
    assert (await env.app.send("U1", ListPasses())).passes == []
    everything = await env.app.send("U1", ListPasses(include_inactive=True))
    assert [p.status for p in everything.passes] == [PassStatus.REVOKED]
    await eventually(lambda: [e.code for e in env.events if e.pass_id == mine.issued.pass_id]  # type: ignore[union-attr]
                     == [EventCode.VISITOR_PASS_ISSUED, EventCode.VISITOR_PASS_REVOKED])


async def test_malformed_requests_are_answered_when_possible(env: Env) -> None:
    await env.app.send_raw(json.dumps({"request_id": "bad-1", "resident_id": "U1",
                                       "action": {"action": "register", "visitor_name": 5}}).encode())
    await env.app.send_raw(json.dumps({"request_id": "bad-2", "resident_id": "U1",
                                       "action": {"action": "teleport"}}).encode())
    await env.app.send_raw(b"\x00\xffgarbage")
    await env.app.send_raw(json.dumps({"request_id": "../#", "action": {}}).encode())
    await env.app.send_raw(b'{"request_id": "huge", "pad": "' + b"A" * (80 * 1024) + b'"}')
    for rid in ("bad-1", "bad-2"):
        reply: VisitorReply = await env.app.wait_reply(rid)
        assert not reply.ok and reply.code is VisitorErrorCode.INVALID_REQUEST and reply.qr_payload is None
    await asyncio.sleep(0.2)
    assert set(env.app.replies) == {"bad-1", "bad-2"}
    assert (await env.app.send("U1", register())).ok  # still serving
