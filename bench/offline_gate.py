"""Offline gate figures: decision latency from the cache, and the log upload rate after an outage.

    python -m bench.offline_gate [--cards 10000] [--decisions 5000]

Real Mosquitto, the real gate_sync service and the embedded store, all in one process (the store
server is its own process). Steps: seed `--cards` residents with a card, sync them to one gate,
stop the broker, present `--decisions` cards at the gate (known and unknown, alternately: every
one decided from the cache and written durably to the queue), start the broker again and time
until the store holds every queued decision.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from broker.mosquitto import MosquittoProcess
from config.settings import FaceSettings, GateSettings, MqttSettings, Settings, StoreSettings
from edge_agent.agent import GateAgent
from edge_agent.offline import decide_offline
from edge_agent.relay import LogRelay
from gate_sync.service import GateSyncService
from schemas.access import CardCredential
from schemas.codes import CredentialType
from schemas.documents import AccessGroup, Gate, StoredCredential, User
from store.connect import connect
from store.embedded import EmbeddedMongoServer
from store.keyed_hash import KeyedHasher
from store.repository import Store

HASH_KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def seed(store: Store, hasher: KeyedHasher, cards: int) -> None:
    store.put_gate(Gate(id="lobby", name="Lobby"))
    store.put_access_group(AccessGroup(id="res", name="Residents", gate_ids=["lobby"]))
    now = datetime.now(UTC)
    store.users.insert_many([User(id=f"U{i}", name=f"R{i}", groups=["res"], created_at=now).to_mongo()
                             for i in range(cards)])
    store.credentials.insert_many([StoredCredential(
        id=f"c{i}", kind=CredentialType.CARD, user_id=f"U{i}", key_id=hasher.key_id, created_at=now,
        lookup_key=hasher.lookup_key(CredentialType.CARD, f"CARD-{i}")).to_mongo() for i in range(cards)])


async def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.01)


async def main(cards: int, decisions: int) -> None:
    hasher = KeyedHasher.from_secret(HASH_KEY)
    with tempfile.TemporaryDirectory(prefix="passage-offline-bench-") as tmp:
        server = EmbeddedMongoServer(None)
        server.start()
        broker = MosquittoProcess()
        broker.start()
        client, store = connect(server.uri, "bench_offline")
        try:
            t = time.perf_counter()
            await asyncio.to_thread(seed, store, hasher, cards)
            print(f"seeded {cards} residents with cards in {time.perf_counter() - t:.1f} s")
            settings = Settings(
                data_dir=Path(tmp), hash_key=HASH_KEY,
                mqtt=MqttSettings(host=broker.host, port=broker.port, reconnect_min_s=0.05, reconnect_max_s=0.2),
                store=StoreSettings(cache_poll_s=60), face=FaceSettings(enabled=False),
                gate=GateSettings(gate_id="lobby", request_timeout_s=1.0, door_open_s=0.05))
            sync = GateSyncService(settings, store, hasher.key_id, client_id="bench-sync")
            gate = GateAgent(settings, "lobby", relay=LogRelay("lobby"))
            tasks = [asyncio.create_task(sync.run()), asyncio.create_task(gate.run())]
            t = time.perf_counter()
            await wait_for(lambda: gate.cache.state().cards == cards, 120, "initial sync")
            print(f"snapshot of {cards} cards: {sync.stats.last_bytes['lobby'] / 1e6:.2f} MB, at the gate "
                  f"{time.perf_counter() - t:.2f} s after start")

            # Cache lookups alone (keyed hash + SQLite read + schedule).
            now = datetime.now(UTC)
            lookups = []
            for i in range(2000):
                cred = CardCredential(acc_id=f"CARD-{i % cards}" if i % 2 == 0 else f"NOBODY-{i}")
                t0 = time.perf_counter()
                decide_offline(cred, gate.cache, gate._hasher, now, "lobby")
                lookups.append((time.perf_counter() - t0) * 1000)

            await asyncio.to_thread(broker.stop)
            await wait_for(lambda: not gate.mqtt.is_connected, 10, "gate disconnect")
            lat, granted = [], 0
            for i in range(decisions):
                cred = CardCredential(acc_id=f"CARD-{i % cards}" if i % 2 == 0 else f"NOBODY-{i}")
                d = await gate.present(cred)
                assert d.offline
                lat.append(d.round_trip_ms)
                granted += d.granted
            print(f"offline lookup only (hash + cache + schedule), 2000: p50 {_pct(lookups, 50):.3f} ms, "
                  f"p99 {_pct(lookups, 99):.3f} ms")
            print(f"offline decision at the gate incl. durable queue write, {decisions}: p50 {_pct(lat, 50):.2f} ms, "
                  f"p99 {_pct(lat, 99):.2f} ms ({granted} granted)")

            queued = len(gate.offline_log)
            await asyncio.to_thread(broker.start)
            t = time.perf_counter()
            await wait_for(lambda: len(gate.offline_log) == 0, 600, "upload")
            took = time.perf_counter() - t
            stored = await asyncio.to_thread(store.count_access_events, {"offline": True})
            print(f"upload after the outage: {queued} queued -> {stored} stored in {took:.2f} s from broker start: "
                  f"{queued / took:.0f} events/s (batches of {settings.gate.upload_batch_size}, one in flight)")
            await gate.stop()
            sync.stop()
            await asyncio.wait(tasks, timeout=10)
        finally:
            client.drop_database("bench_offline")
            client.close()
            broker.close()
            server.stop()


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cards", type=int, default=10_000)
    p.add_argument("--decisions", type=int, default=5_000)
    args = p.parse_args()
    asyncio.run(main(args.cards, args.decisions))
