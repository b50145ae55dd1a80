"""Visitor passes end to end over each real broker with the embedded store: a resident registers a
visitor (visitor worker), the QR code from the reply's PNG is shown to a gate (GateAgent), the auth
worker decides. Every denial has its own reason; racing gates admit the last use exactly once."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyzbar.pyzbar import ZBarSymbol
from pyzbar.pyzbar import decode as zbar_decode

from edge_agent.agent import GateDecision
from edge_agent.qr_reader import credential_from_frame
from messaging import IncomingMessage
from schemas.access import QrCredential
from schemas.base import new_id, utc_now
from schemas.codes import CredentialType, EventCode, ReasonCode
from schemas.documents import AccessGroup, User
from schemas.events import AccessEvent, VisitorEvent
from schemas.visitor import RegisterPass, RevokePass, VisitorReply
from store.keyed_hash import KeyedHasher
from store.passes import VisitorPass, VisitorPassStore
from store.repository import Store
from tests.conftest import BrokerInfo, eventually
from tests.platform_fixture import Platform, running_platform
from tests.visitor_pass.frames import phone_frame
from tests.visitor_worker.peers import ResidentApp, running_visitor_worker
from visitor_pass.token import PassClaims, PassSigner
from visitor_worker.service import VisitorWorker


@dataclass
class Site:
    platform: Platform
    visitor: VisitorWorker
    app: ResidentApp
    visitor_events: list[IncomingMessage]
    access_events: list[IncomingMessage]

    @property
    def passes(self) -> VisitorPassStore:
        return VisitorPassStore(self.platform.store.db)

    async def stored(self, pass_id: str) -> VisitorPass:
        vp = await asyncio.to_thread(self.passes.get, pass_id)
        assert vp is not None
        return vp


def seed_residents(store: Store) -> None:
    """U7 may use both gates, so their visitors can race from lobby and garage."""
    store.put_access_group(AccessGroup(id="res-all", name="All doors", gate_ids=["lobby", "garage"]))
    store.put_user(User(id="U7", name="Han", building="A", unit="1501", groups=["res-all"]))


@pytest.fixture
async def site(tmp_path: Path, broker: BrokerInfo, embedded_store: Store, hasher: KeyedHasher) -> AsyncIterator[Site]:
    async with running_platform(tmp_path, broker, embedded_store, hasher) as platform:
        await asyncio.to_thread(seed_residents, embedded_store)
        await platform.worker.refresher.reload()
        visitor_events = platform.probe.on("events/visitor/+")
        access_events = platform.probe.on("events/access/+")
        async with running_visitor_worker(platform.settings, embedded_store) as (visitor, app):
            await asyncio.sleep(0.1)  # the probe's late subscriptions
            yield Site(platform, visitor, app, visitor_events, access_events)


def register(hours: float = 4, start_in: float = 0, **kw: object) -> RegisterPass:
    start = utc_now() + timedelta(hours=start_in)
    return RegisterPass.model_validate({"visitor_name": "Park", "valid_from": start,
                                        "valid_until": start + timedelta(hours=hours), **kw})


async def issue(site: Site, resident: str = "U7", **kw: object) -> tuple[VisitorReply, QrCredential]:
    """Register a visitor; the credential is what pyzbar reads off the reply's PNG."""
    reply = await site.app.send(resident, register(**kw))
    assert reply.ok and reply.issued is not None and reply.qr_png is not None, reply.error
    image = cv2.imdecode(np.frombuffer(reply.qr_png, np.uint8), cv2.IMREAD_GRAYSCALE)
    [symbol] = zbar_decode(image, symbols=[ZBarSymbol.QRCODE])
    assert symbol.data.decode() == reply.qr_payload
    return reply, QrCredential(payload=symbol.data.decode())


def denied(decision: GateDecision, reason: ReasonCode) -> bool:
    return not decision.granted and decision.reason == reason.value


async def test_registered_visitor_is_let_in_once(site: Site) -> None:
    reply, _ = await issue(site, max_uses=1)
    assert reply.issued is not None
    pass_id = reply.issued.pass_id
    # The gate camera sees the QR on the visitor's phone, among other things.
    frame = phone_frame(reply.qr_png or b"", side_px=160, tilt_deg=10)
    credential = credential_from_frame(frame)
    assert credential.payload == reply.qr_payload

    lobby = site.platform.lobby
    decision = await lobby.present(credential)
    assert decision.granted and decision.reason == "GRANTED" and decision.subject_id == pass_id
    assert site.platform.lobby_relay.unlock_count == 1

    await eventually(lambda: site.visitor_events and any(
        VisitorEvent.model_validate_json(m.payload).code is EventCode.VISITOR_ENTERED for m in site.visitor_events))
    entered = [e for e in (VisitorEvent.model_validate_json(m.payload) for m in site.visitor_events)
               if e.code is EventCode.VISITOR_ENTERED]
    assert len(entered) == 1
    assert (entered[0].pass_id, entered[0].resident_id, entered[0].gate_id) == (pass_id, "U7", "lobby")
    assert (entered[0].uses, entered[0].max_uses, entered[0].visitor_name) == (1, 1, "Park")

    await eventually(lambda: site.access_events)
    event = AccessEvent.model_validate_json(site.access_events[0].payload)
    assert event.credential_type is CredentialType.QR and event.subject_id == pass_id and event.granted
    assert all(credential.payload.encode() not in m.payload for m in site.access_events)  # no tokens in the trail
    await eventually(lambda: site.platform.store.count_access_events(
        {"request_id": decision.request_id, "credential_type": "qr", "granted": True}) == 1)

    again = await lobby.present(credential)
    assert denied(again, ReasonCode.PASS_USED_UP) and again.subject_id == pass_id
    assert site.platform.lobby_relay.unlock_count == 1
    stored = await site.stored(pass_id)
    assert stored.uses == 1 and stored.last_used_gate == "lobby"


async def test_retry_of_a_request_does_not_spend_a_second_use(site: Site) -> None:
    reply, credential = await issue(site, max_uses=2)
    assert reply.issued is not None
    first = await site.platform.lobby.present(credential)
    retry = await site.platform.lobby.present(credential, request_id=first.request_id)
    assert first.granted and retry.granted
    assert first.response is not None and retry.response is not None
    assert retry.response.msg_id == first.response.msg_id
    assert (await site.stored(reply.issued.pass_id)).uses == 1
    assert (await site.platform.garage.present(credential)).granted  # the second entry is still there
    assert denied(await site.platform.lobby.present(credential), ReasonCode.PASS_USED_UP)


async def test_not_yet_valid_pass(site: Site) -> None:
    reply, credential = await issue(site, start_in=2)
    assert denied(await site.platform.lobby.present(credential), ReasonCode.PASS_NOT_YET_VALID)
    assert reply.issued is not None and (await site.stored(reply.issued.pass_id)).uses == 0
    assert site.platform.lobby_relay.unlock_count == 0


async def test_expired_pass(site: Site) -> None:
    # A pass issued yesterday for yesterday afternoon, signed with the site's key.
    start = (utc_now() - timedelta(days=1)).replace(microsecond=0)
    vp = VisitorPass(id=new_id(), request_id=new_id(), resident_id="U7", building="A", unit="1501",
                     visitor_name="Park", valid_from=start, valid_until=start + timedelta(hours=3),
                     gate_ids=["lobby"], max_uses=1, key_id=site.visitor.signer.key_id)
    await asyncio.to_thread(site.passes.insert, vp)
    token = site.visitor.signer.sign(PassClaims(vp.id, vp.valid_from, vp.valid_until, ("lobby",), 1))
    decision = await site.platform.lobby.present(QrCredential(payload=token))
    assert denied(decision, ReasonCode.PASS_EXPIRED) and decision.subject_id == vp.id
    assert (await site.stored(vp.id)).uses == 0


async def test_revoked_pass(site: Site) -> None:
    reply, credential = await issue(site, max_uses=3)
    assert reply.issued is not None
    assert (await site.platform.lobby.present(credential)).granted
    revoked = await site.app.send("U7", RevokePass(pass_id=reply.issued.pass_id))
    assert revoked.ok
    assert denied(await site.platform.lobby.present(credential), ReasonCode.PASS_REVOKED)
    assert (await site.stored(reply.issued.pass_id)).uses == 1


def _reencode(token: str, edit: int, value: int) -> str:
    prefix, body, sig = token.split(".")
    raw = bytearray(base64.b32decode(body + "=" * (-len(body) % 8)))
    raw[edit] = value
    return f"{prefix}.{base64.b32encode(bytes(raw)).decode().rstrip('=')}.{sig}"


async def test_forged_and_altered_passes(site: Site) -> None:
    reply, credential = await issue(site, max_uses=1, gate_ids=["lobby"])
    assert reply.issued is not None
    claims = site.visitor.signer.verifier().verify(credential.payload)
    # Forged: the same claims signed by somebody else's key.
    forger = PassSigner(Ed25519PrivateKey.generate())
    forged = forger.sign(PassClaims(claims.pass_id, claims.valid_from, claims.valid_until, ("lobby",), 9))
    # Altered: the genuine token with more entries (byte 29) or a later end (bytes 25-28).
    more_uses = _reencode(credential.payload, 29, 50)
    later = _reencode(credential.payload, 25, 0xFF)
    tail_cut = credential.payload[:-4]
    lobby = site.platform.lobby
    for payload in (forged, more_uses, later, tail_cut):
        assert denied(await lobby.present(QrCredential(payload=payload)), ReasonCode.BAD_SIGNATURE)
    # Somebody else's QR code entirely is no credential we know.
    assert denied(await lobby.present(QrCredential(payload="https://example.com/menu")),
                  ReasonCode.UNKNOWN_CREDENTIAL)
    assert site.platform.lobby_relay.unlock_count == 0
    # None of it spent the genuine pass.
    assert (await site.stored(reply.issued.pass_id)).uses == 0
    assert (await lobby.present(credential)).granted


async def test_pass_opens_only_its_gates(site: Site) -> None:
    reply, credential = await issue(site, gate_ids=["lobby"])
    assert reply.issued is not None
    assert denied(await site.platform.garage.present(credential), ReasonCode.NOT_PERMITTED_AT_GATE)
    assert (await site.stored(reply.issued.pass_id)).uses == 0
    assert (await site.platform.lobby.present(credential)).granted


async def test_resident_gone_means_visitor_refused(site: Site) -> None:
    reply, credential = await issue(site, max_uses=2)
    assert reply.issued is not None
    await asyncio.to_thread(site.platform.store.set_user_active, "U7", False)
    await site.platform.worker.refresher.reload()
    assert denied(await site.platform.lobby.present(credential), ReasonCode.USER_INACTIVE)
    assert (await site.stored(reply.issued.pass_id)).uses == 0  # the use taken was given back


async def test_two_gates_racing_for_the_last_use_admit_one(site: Site) -> None:
    lobby, garage = site.platform.lobby, site.platform.garage
    for _ in range(5):
        reply, credential = await issue(site, max_uses=1)
        assert reply.issued is not None
        both = await asyncio.gather(lobby.present(credential), garage.present(credential))
        assert sorted(d.reason for d in both) == ["GRANTED", "PASS_USED_UP"], [d.reason for d in both]
        assert (await site.stored(reply.issued.pass_id)).uses == 1
    assert site.platform.lobby_relay.unlock_count + garage.relay.unlock_count == 5  # type: ignore[attr-defined]
