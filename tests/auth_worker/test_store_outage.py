"""The store dies under a running worker: doors keep deciding from memory and no event is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from store.connect import connect
from store.embedded import EmbeddedMongoServer
from store.keyed_hash import KeyedHasher
from tests.conftest import BrokerInfo, eventually
from tests.platform_fixture import running_platform


async def test_decisions_continue_and_events_survive_a_store_outage(tmp_path: Path, amqtt_broker: BrokerInfo,
                                                                     hasher: KeyedHasher) -> None:
    server = EmbeddedMongoServer(tmp_path / "db")
    server.start()
    client, store = connect(server.uri, "passage", timeout_ms=500)
    try:
        async with running_platform(tmp_path, amqtt_broker, store, hasher) as p:
            before = await p.lobby.present_card("CARD-1")
            assert before.granted
            await eventually(lambda: p.worker.events.written >= 1)

            await asyncio.to_thread(server.stop)  # the store is gone
            during = [await p.lobby.present_card(card) for card in ("CARD-1", "CARD-UNKNOWN", "CARD-1")]
            assert [d.granted for d in during] == [True, False, True]  # decided from memory
            await asyncio.sleep(1.0)  # the writer tries, fails and keeps the events
            assert p.worker.events.pending == 3

            await asyncio.to_thread(server.start)  # same port, same data directory
            await eventually(lambda: p.worker.events.pending == 0, timeout=20)
            ids = [before.request_id] + [d.request_id for d in during]
            counts = await asyncio.to_thread(
                lambda: [store.count_access_events({"request_id": rid}) for rid in ids])
            assert counts == [1, 1, 1, 1]
    finally:
        client.close()
        server.stop()
