"""A running platform for end-to-end tests: real broker, real store, auth worker, gates, a probe."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from admin_worker.commands import CommandProcessor
from auth_worker.service import AuthWorker
from config.settings import EnrollSettings, FaceSettings, Settings
from edge_agent.agent import GateAgent
from edge_agent.relay import LogRelay
from face_engine.index import FaceIndex
from messaging import IncomingMessage, MqttClient
from schemas.admin import SetPin
from schemas.codes import CredentialType
from schemas.documents import AccessGroup, Gate, StoredCredential, User
from store.keyed_hash import KeyedHasher
from store.repository import Store
from tests.conftest import BrokerInfo, make_settings


@dataclass
class Probe:
    """A plain client that records what it sees and can publish anything, valid or not."""

    client: MqttClient
    seen: dict[str, list[IncomingMessage]] = field(default_factory=dict)

    def on(self, topic_filter: str) -> list[IncomingMessage]:
        box: list[IncomingMessage] = self.seen.setdefault(topic_filter, [])

        async def record(msg: IncomingMessage) -> None:
            box.append(msg)

        self.client.subscribe(topic_filter, record)
        return box


@dataclass
class Platform:
    settings: Settings
    store: Store
    hasher: KeyedHasher
    worker: AuthWorker
    lobby: GateAgent
    garage: GateAgent
    probe: Probe
    tasks: list[asyncio.Task[None]]

    @property
    def lobby_relay(self) -> LogRelay:
        assert isinstance(self.lobby.relay, LogRelay)
        return self.lobby.relay


def seed_site(store: Store, hasher: KeyedHasher) -> None:
    """Lobby and garage; residents may use the lobby only. U1 active (CARD-1), U2 inactive (CARD-2)."""
    store.put_gate(Gate(id="lobby", name="Lobby"))
    store.put_gate(Gate(id="garage", name="Garage"))
    store.put_access_group(AccessGroup(id="res", name="Residents", gate_ids=["lobby"]))
    store.put_user(User(id="U1", name="Kim", building="A", unit="1203", groups=["res"]))
    store.put_user(User(id="U2", name="Lee", building="A", unit="0801", groups=["res"], active=False))
    for cid, user, acc in (("c1", "U1", "CARD-1"), ("c2", "U2", "CARD-2")):
        store.add_credential(StoredCredential(id=cid, kind=CredentialType.CARD, user_id=user,
                                              lookup_key=hasher.lookup_key(CredentialType.CARD, acc),
                                              key_id=hasher.key_id))


@contextlib.asynccontextmanager
async def running_platform(tmp_path: Path, broker: BrokerInfo, store: Store, hasher: KeyedHasher,
                           worker_hasher: KeyedHasher | None = None) -> AsyncIterator[Platform]:
    """The seeded site (cards hashed with `hasher`) and a worker (with `worker_hasher`, default the same)."""
    settings = make_settings(tmp_path, broker)
    await asyncio.to_thread(seed_site, store, hasher)
    worker = AuthWorker(settings, store, worker_hasher or hasher, client_id="auth-test")
    lobby = GateAgent(settings, "lobby", relay=LogRelay("lobby"))
    garage = GateAgent(settings, "garage", relay=LogRelay("garage"))
    probe = Probe(MqttClient(settings.mqtt, "probe"))
    tasks = [asyncio.create_task(c) for c in (worker.run(), lobby.run(), garage.run(), probe.client.run())]
    platform = Platform(settings, store, hasher, worker, lobby, garage, probe, tasks)
    try:
        await asyncio.wait_for(asyncio.gather(
            worker.mqtt.wait_connected(), lobby.mqtt.wait_connected(), garage.mqtt.wait_connected(),
            probe.client.wait_connected()), 10)
        yield platform
    finally:
        await lobby.stop()
        await garage.stop()
        worker.stop()
        probe.client.stop()
        _, late = await asyncio.wait(tasks, timeout=10)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def set_pins(store: Store, hasher: KeyedHasher) -> None:
    """U1 (unit 1203, active), U2 (unit 0801, inactive) and U3 (unit 0801, active, lobby) get PINs the
    way `passage admin set-pin` stores them."""
    store.put_user(User(id="U3", name="Park", building="A", unit="0801", groups=["res"]))
    processor = CommandProcessor(store, hasher, FaceSettings(enabled=False), EnrollSettings(), None, FaceIndex)
    for user_id, pin in (("U1", "4827"), ("U2", "5931"), ("U3", "4827")):
        processor.apply(SetPin(user_id=user_id, pin=pin))
