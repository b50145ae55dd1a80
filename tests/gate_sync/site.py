"""A running gate sync service, gates with offline caches, and a probe, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from config.settings import FaceSettings, Settings
from edge_agent.agent import GateAgent
from edge_agent.relay import LogRelay
from gate_sync.service import GateSyncService
from messaging import MqttClient
from store.keyed_hash import KeyedHasher
from store.repository import Store
from tests.conftest import BrokerInfo, make_settings
from tests.platform_fixture import Probe, seed_site


def offline_settings(tmp_path: Path, broker: BrokerInfo, request_timeout_s: float = 0.3) -> Settings:
    """Test settings with a short online budget (no worker here: the gate goes offline fast)."""
    settings = make_settings(tmp_path, broker)
    gate = settings.gate.model_copy(update={"request_timeout_s": request_timeout_s, "sync_wait_s": 1.0,
                                            "upload_ack_timeout_s": 1.0})
    return settings.model_copy(update={"gate": gate, "face": FaceSettings(enabled=False)})


@contextlib.asynccontextmanager
async def running(*clients: tuple[object, MqttClient]) -> AsyncIterator[None]:
    """Run services (anything with run()) until the block ends; stop them by their MQTT client."""
    tasks = [asyncio.create_task(svc.run()) for svc, _ in clients]  # type: ignore[attr-defined]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.wait_connected() for _, c in clients)), 15)
        yield
    finally:
        for svc, client in clients:
            if isinstance(svc, GateAgent):
                await svc.stop()
            client.stop()
        _, late = await asyncio.wait(tasks, timeout=10)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def make_sync(settings: Settings, store: Store, hasher: KeyedHasher) -> GateSyncService:
    return GateSyncService(settings, store, hasher.key_id, client_id="gate-sync-test")


def make_gate(settings: Settings, gate_id: str = "lobby") -> GateAgent:
    return GateAgent(settings, gate_id, relay=LogRelay(gate_id))


def make_probe(settings: Settings, name: str = "probe") -> Probe:
    return Probe(MqttClient(settings.mqtt, name))


async def seeded(store: Store, hasher: KeyedHasher) -> None:
    await asyncio.to_thread(seed_site, store, hasher)
