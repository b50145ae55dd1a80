"""The store dies under a running worker: doors keep deciding from memory and no event is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from schemas.access import PinCredential
from schemas.codes import ReasonCode
from store.connect import connect
from store.embedded import EmbeddedMongoServer
from store.keyed_hash import KeyedHasher
from tests.conftest import BrokerInfo, eventually
from tests.platform_fixture import running_platform, set_pins


async def test_decisions_continue_and_events_survive_a_store_outage(tmp_path: Path, amqtt_broker: BrokerInfo,
                                                                     hasher: KeyedHasher) -> None:
    server = EmbeddedMongoServer(tmp_path / "db")
    server.start()
    client, store = connect(server.uri, "passage", timeout_ms=500)
    try:
        async with running_platform(tmp_path, amqtt_broker, store, hasher) as p:
            await asyncio.to_thread(set_pins, store, hasher)
            await p.worker.refresher.reload()
            before = await p.lobby.present_card("CARD-1")
            assert before.granted
            await eventually(lambda: p.worker.events.written >= 1)

            await asyncio.to_thread(server.stop)  # the store is gone
            during = [await p.lobby.present_card(card) for card in ("CARD-1", "CARD-UNKNOWN", "CARD-1")]
            assert [d.granted for d in during] == [True, False, True]  # decided from memory
            await asyncio.sleep(1.0)  # the writer tries, fails and keeps the events
            assert p.worker.events.pending == 3

            # PINs too: the keypad lock falls back to this worker's own count, without waiting
            # out the driver's timeout (the gate would have given up and decided offline).
            pin = await p.lobby.present(PinCredential(pin="4827", unit="1203"))
            assert pin.granted and not pin.offline and pin.round_trip_ms < 1500
            for guess in range(p.settings.auth.pin_max_failures):
                wrong = await p.lobby.present(PinCredential(pin=f"90{guess:02d}", unit="1203"))
                assert wrong.reason == ReasonCode.UNKNOWN_CREDENTIAL.value and not wrong.offline
            locked = await p.lobby.present(PinCredential(pin="4827", unit="1203"))
            assert not locked.granted and locked.reason == ReasonCode.TOO_MANY_ATTEMPTS.value

            await asyncio.to_thread(server.start)  # same port, same data directory
            await eventually(lambda: p.worker.events.pending == 0, timeout=20)
            ids = [before.request_id] + [d.request_id for d in during]
            counts = await asyncio.to_thread(
                lambda: [store.count_access_events({"request_id": rid}) for rid in ids])
            assert counts == [1, 1, 1, 1]
    finally:
        client.close()
        server.stop()
