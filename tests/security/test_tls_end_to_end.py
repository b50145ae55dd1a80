"""A card decision over MQTTS with per-identity certificates, on each real broker: gates and the auth
worker each connect as themselves, and a gate cannot get a decision made for another gate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from auth_worker.service import AuthWorker
from config.settings import FaceSettings, Settings
from edge_agent.agent import GateAgent
from edge_agent.relay import LogRelay
from schemas import topics
from schemas.access import AccessRequest, AccessResponse, CardCredential
from schemas.codec import decode
from store.keyed_hash import KeyedHasher
from store.repository import Store
from tests.conftest import BrokerInfo, eventually, make_settings
from tests.platform_fixture import seed_site
from tests.security.broker_fixture import SecureBroker, connected, running_secure_broker
from tests.security.site_fixture import build_site


@dataclass
class TlsPlatform:
    broker: SecureBroker
    worker: AuthWorker
    lobby: GateAgent
    garage: GateAgent


@pytest.fixture(params=["mosquitto", "amqtt"])
async def platform(request: pytest.FixtureRequest, tmp_path: Path, embedded_store: Store,
                   hasher: KeyedHasher) -> AsyncIterator[TlsPlatform]:
    site = build_site(tmp_path / "pki")
    async with running_secure_broker(request.param, site) as b:
        base = make_settings(tmp_path, BrokerInfo(b.kind, "127.0.0.1", b.tls_port))
        base = base.model_copy(update={"face": FaceSettings(enabled=False)})

        def as_(name: str) -> Settings:
            return base.model_copy(update={"mqtt": b.as_identity(name)})

        await asyncio.to_thread(seed_site, embedded_store, hasher)
        worker = AuthWorker(as_("auth-1"), embedded_store, hasher, client_id="auth-1")
        lobby = GateAgent(as_("lobby"), "lobby", relay=LogRelay("lobby"))
        garage = GateAgent(as_("garage"), "garage", relay=LogRelay("garage"))
        tasks = [asyncio.create_task(c) for c in (worker.run(), lobby.run(), garage.run())]
        try:
            await asyncio.wait_for(asyncio.gather(worker.mqtt.wait_connected(), lobby.mqtt.wait_connected(),
                                                  garage.mqtt.wait_connected()), 15)
            yield TlsPlatform(b, worker, lobby, garage)
        finally:
            await lobby.stop()
            await garage.stop()
            worker.stop()
            _, late = await asyncio.wait(tasks, timeout=10)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_gate_gets_its_decision_over_mqtts(platform: TlsPlatform) -> None:
    granted = await platform.lobby.present_card("CARD-1")
    assert granted.granted and granted.subject_id == "U1" and granted.response is not None
    assert platform.lobby.relay.unlock_count == 1  # type: ignore[attr-defined]
    denied = await platform.garage.present_card("CARD-1")
    assert not denied.granted and denied.reason == "NOT_PERMITTED_AT_GATE" and denied.response is not None


async def test_a_gate_cannot_ask_in_another_gates_name(platform: TlsPlatform) -> None:
    b = platform.broker
    async with connected(b.trusted(), "observer", "access/response/+", "access/request/+") as observer, \
            connected(b.as_identity("lobby"), "lobby-rogue") as rogue:
        await asyncio.sleep(0.1)
        forged = AccessRequest(request_id="forged-1", gate_id="garage", credential=CardCredential(acc_id="CARD-1"))
        await rogue.client.publish(topics.access_request("garage"), forged)
        honest = await platform.lobby.present_card("CARD-1")  # goes through after the forged one
        assert honest.granted
        await eventually(lambda: any(decode(AccessResponse, m.payload).request_id == honest.request_id
                                     for m in observer.seen if m.topic.startswith("access/response/")))
        await asyncio.sleep(0.3)
        assert not [m for m in observer.seen if b"forged-1" in m.payload]  # neither request nor response
    assert platform.worker.decisions == 1
