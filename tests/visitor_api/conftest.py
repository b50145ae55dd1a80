"""The bridge app against a real broker and the embedded store; a test peer on `visitor/register`.

The peer stands in for visitor_worker only where the bridge's own behaviour is under test
(timeouts, error mapping, scoping of what it publishes); test_worker_e2e.py uses the real worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from accounts.passwords import new_api_key
from accounts.store import AccountStore, Role
from config.settings import BridgeSettings, Settings
from messaging import IncomingMessage, MqttClient
from schemas import topics
from schemas.base import new_id
from schemas.codec import decode
from schemas.documents import AccessGroup, Gate, User
from schemas.visitor import (
    ListPasses,
    PassStatus,
    PassView,
    RegisterPass,
    RevokePass,
    VisitorErrorCode,
    VisitorReply,
    VisitorRequest,
)
from store.repository import Store
from tests.conftest import BrokerInfo, make_settings
from visitor_api.app import create_app
from visitor_api.context import BridgeContext
from visitor_worker.service import VisitorWorker

RESIDENT = "kim"
RESIDENT_USER = "U1"
PASSWORD = "correct horse battery"
OTHER_RESIDENT = "lee"
OTHER_USER = "U2"
INTEGRATION = "intercom"
CLIENT_ADDRESS = "203.0.113.7"
TINY_PNG = b"\x89PNG\r\n\x1a\n-not-really-a-png"

Responder = Callable[[VisitorRequest], VisitorReply | bytes | None]


@dataclass
class Seeded:
    store: Store
    accounts: AccountStore
    api_key: str


@pytest.fixture
async def seeded(embedded_store: Store) -> Seeded:
    """Residents U1 (login kim) and U2 (login lee), and an integration acting for U1."""
    accounts = AccountStore(embedded_store.db)
    key = new_api_key()

    def seed() -> None:
        accounts.ensure_indexes()
        embedded_store.put_user(User(id=RESIDENT_USER, name="Kim", building="A", unit="1203"))
        embedded_store.put_user(User(id=OTHER_USER, name="Lee", building="A", unit="0801"))
        accounts.create(RESIDENT, Role.RESIDENT, password=PASSWORD, user_id=RESIDENT_USER)
        accounts.create(OTHER_RESIDENT, Role.RESIDENT, password=PASSWORD, user_id=OTHER_USER)
        accounts.create(INTEGRATION, Role.INTEGRATION, api_key=key, user_id=RESIDENT_USER)

    await asyncio.to_thread(seed)
    return Seeded(embedded_store, accounts, key)


def bridge_settings(tmp_path: Path, broker: BrokerInfo, **bridge: Any) -> Settings:
    settings = make_settings(tmp_path, broker)
    options: dict[str, Any] = {"reply_timeout_s": 3.0, "jwt_secret": "x" * 40, **bridge}
    return settings.model_copy(update={"bridge": BridgeSettings(**options)})


@dataclass
class Bridge:
    app: FastAPI
    http: httpx.AsyncClient
    ctx: BridgeContext

    async def login(self, username: str = RESIDENT, password: str = PASSWORD) -> dict[str, str]:
        resp = await self.http.post("/auth/token", data={"username": username, "password": password})
        assert resp.status_code == 200, resp.text
        return {"Authorization": f"Bearer {resp.json()['access_token']}"}


@contextlib.asynccontextmanager
async def running_bridge(settings: Settings, accounts: AccountStore, *, wait_connected: bool = True,
                         client_address: str = CLIENT_ADDRESS) -> AsyncIterator[Bridge]:
    """The app with its lifespan (the MQTT connection) running, and an HTTP client on it."""
    app = create_app(settings, accounts)
    ctx = app.state.bridge
    async with app.router.lifespan_context(app):
        if wait_connected:
            await ctx.relay.mqtt.wait_connected(10)
        transport = httpx.ASGITransport(app=app, client=(client_address, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as http:
            yield Bridge(app, http, ctx)


@dataclass
class UnitLedger:
    """What the peer answers by default: a plausible worker for one building (passes by resident)."""

    passes: dict[str, PassView] = field(default_factory=dict)

    def __call__(self, request: VisitorRequest) -> VisitorReply:
        action = request.action
        ok = {"request_id": request.request_id, "ok": True}
        if isinstance(action, RegisterPass):
            now = datetime.now(UTC)
            view = PassView(pass_id=new_id(), resident_id=request.resident_id, visitor_name=action.visitor_name[:200],
                            purpose=action.purpose, valid_from=action.valid_from, valid_until=action.valid_until,
                            gate_ids=action.gate_ids, max_uses=action.max_uses, status=PassStatus.ACTIVE,
                            created_at=now)
            self.passes[view.pass_id] = view
            return VisitorReply(**ok, issued=view, qr_payload=f"P1.{view.pass_id}.sig", qr_png=TINY_PNG,
                                qr_svg="<svg/>", pushed=action.fcm_token is not None)
        if isinstance(action, ListPasses):
            mine = [p for p in self.passes.values() if p.resident_id == request.resident_id
                    and (action.include_inactive or p.status is PassStatus.ACTIVE)]
            return VisitorReply(**ok, passes=mine)
        assert isinstance(action, RevokePass)
        found = self.passes.get(action.pass_id)
        if found is None or found.resident_id != request.resident_id:
            return VisitorReply(request_id=request.request_id, ok=False, code=VisitorErrorCode.PASS_NOT_FOUND,
                                error="no such pass")
        self.passes[action.pass_id] = found.model_copy(update={"status": PassStatus.REVOKED})
        return VisitorReply(**ok, issued=self.passes[action.pass_id])


@dataclass
class Peer:
    """Subscribes to `visitor/register` on the real broker, records requests, answers with `respond`."""

    client: MqttClient
    respond: Responder
    requests: list[VisitorRequest] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)

    async def on_request(self, msg: IncomingMessage) -> None:
        self.raw.append(msg.payload)
        request = decode(VisitorRequest, msg.payload)
        self.requests.append(request)
        reply = self.respond(request)
        if reply is not None:
            await self.client.publish(topics.visitor_reply(request.request_id), reply)


@contextlib.asynccontextmanager
async def running_peer(settings: Settings, respond: Responder | None = None) -> AsyncIterator[Peer]:
    peer = Peer(MqttClient(settings.mqtt, f"peer-{new_id()[:6]}"), respond or UnitLedger())
    peer.client.subscribe(topics.VISITOR_REGISTER, peer.on_request)
    task = asyncio.create_task(peer.client.run())
    try:
        await peer.client.wait_connected(10)
        yield peer
    finally:
        peer.client.stop()
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, store: Store) -> AsyncIterator[VisitorWorker]:
    """The real visitor_worker for a site: lobby (residents' group) and garage; U1 and U2 in two units."""

    def site() -> None:
        store.put_gate(Gate(id="lobby", name="Lobby"))
        store.put_gate(Gate(id="garage", name="Garage"))
        store.put_access_group(AccessGroup(id="res", name="Residents", gate_ids=["lobby"]))
        # U1 (Kim) and U2 (Lee) live in different units of building A.
        store.put_user(User(id=RESIDENT_USER, name="Kim", building="A", unit="1203", groups=["res"]))
        store.put_user(User(id="U2", name="Lee", building="A", unit="0801", groups=["res"]))

    await asyncio.to_thread(site)
    worker = VisitorWorker(settings, store, client_id="visitor-worker-test")
    task = asyncio.create_task(worker.run())
    try:
        await worker.mqtt.wait_connected(15)
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)


def visit(**overrides: Any) -> dict[str, Any]:
    """A valid POST /visitors body: tomorrow, two hours."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    body: dict[str, Any] = {"visitor_name": "Park Jiwoo", "visitor_phone": "+82 10-1234-5678",
                            "purpose": "dinner", "valid_from": start.isoformat(),
                            "valid_until": (start + timedelta(hours=2)).isoformat(), "max_uses": 2}
    body.update(overrides)
    return body
