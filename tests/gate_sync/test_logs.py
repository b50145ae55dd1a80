"""Offline log intake over real Mosquitto into the real store: exactly once, acknowledged after storing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from schemas import topics
from schemas.base import new_id
from schemas.codes import CredentialType, ReasonCode
from schemas.events import AccessEvent
from schemas.gate import GateLogAck, GateLogBatch, OfflineDecision
from store.keyed_hash import KeyedHasher
from store.repository import Store
from tests.conftest import BrokerInfo, eventually
from tests.gate_sync.site import make_gate, make_probe, make_sync, offline_settings, running, seeded


def _decisions(n: int) -> list[OfflineDecision]:
    return [OfflineDecision(event_id=new_id(), request_id=new_id(), ts=datetime.now(UTC),
                            credential_type=CredentialType.CARD, granted=i % 2 == 0,
                            reason=ReasonCode.GRANTED if i % 2 == 0 else ReasonCode.UNKNOWN_CREDENTIAL,
                            subject_id="U1" if i % 2 == 0 else None) for i in range(n)]


async def test_offline_decisions_are_uploaded_and_stored_once(tmp_path: Path, mosquitto: BrokerInfo,
                                                              embedded_store: Store, hasher: KeyedHasher) -> None:
    await seeded(embedded_store, hasher)
    settings = offline_settings(tmp_path, mosquitto)
    sync, gate, probe = make_sync(settings, embedded_store, hasher), make_gate(settings), make_probe(settings)
    events = probe.on("events/access/+")
    async with running((sync, sync.mqtt), (probe.client, probe.client), (gate, gate.mqtt)):
        await eventually(lambda: gate.cache.version == sync.feeds["lobby"].version, timeout=10)
        decisions = [await gate.present_card(card) for card in ("CARD-1", "NOPE", "CARD-1")]
        assert [d.offline for d in decisions] == [True] * 3
        await eventually(lambda: embedded_store.count_access_events({"offline": True}) == 3, timeout=10)
        await eventually(lambda: len(gate.offline_log) == 0, timeout=10)
        stored = {e.request_id: e for e in embedded_store.access_events_for_gate("lobby")}
        assert {d.request_id for d in decisions} == set(stored)
        assert all(e.offline for e in stored.values())
        assert [stored[d.request_id].granted for d in decisions] == [True, False, True]
        await eventually(lambda: len(events) == 3, timeout=5)
        seen = [AccessEvent.model_validate_json(m.payload) for m in events]
        assert all(e.offline for e in seen) and {e.request_id for e in seen} == set(stored)


async def test_a_batch_uploaded_twice_is_stored_once(tmp_path: Path, mosquitto: BrokerInfo,
                                                     embedded_store: Store, hasher: KeyedHasher) -> None:
    settings = offline_settings(tmp_path, mosquitto)
    sync, probe = make_sync(settings, embedded_store, hasher), make_probe(settings)
    acks = probe.on(topics.gate_logs_ack("lobby"))
    async with running((sync, sync.mqtt), (probe.client, probe.client)):
        batch = GateLogBatch(gate_id="lobby", decisions=_decisions(40))
        await probe.client.publish(topics.gate_logs("lobby"), batch)
        await eventually(lambda: len(acks) == 1, timeout=10)
        # The ack was lost: the gate sends the same decisions again (in a new batch).
        again = GateLogBatch(gate_id="lobby", decisions=batch.decisions)
        await probe.client.publish(topics.gate_logs("lobby"), again)
        await eventually(lambda: len(acks) == 2, timeout=10)
        ids = [d.event_id for d in batch.decisions]
        assert embedded_store.count_access_events({"_id": {"$in": ids}}) == 40
        for msg, sent in zip(acks, (batch, again), strict=True):
            ack = GateLogAck.model_validate_json(msg.payload)
            assert ack.batch_id == sent.msg_id and ack.event_ids == ids
        assert sync.intake.stats.new == 40 and sync.intake.stats.decisions == 80


async def test_batches_for_another_gate_or_malformed_are_refused(tmp_path: Path, mosquitto: BrokerInfo,
                                                                 embedded_store: Store, hasher: KeyedHasher) -> None:
    settings = offline_settings(tmp_path, mosquitto)
    sync, probe = make_sync(settings, embedded_store, hasher), make_probe(settings)
    acks = probe.on("gates/+/logs/ack")
    alerts = probe.on("events/alert/+")
    async with running((sync, sync.mqtt), (probe.client, probe.client)):
        forged = GateLogBatch(gate_id="lobby", decisions=_decisions(5))
        await probe.client.publish(topics.gate_logs("garage"), forged)  # garage speaking for the lobby
        await probe.client.publish(topics.gate_logs("garage"), b'{"gate_id":"garage","decisions":[{"x":1}]}')
        await probe.client.publish(topics.gate_logs("garage"), b"\xff" * 10)
        await eventually(lambda: sync.intake.stats.rejected == 3, timeout=10)
        await eventually(lambda: len(alerts) >= 1, timeout=5)
        await asyncio.sleep(0.2)
        assert acks == [] and embedded_store.count_access_events() == 0
        # The service keeps taking valid batches.
        good = GateLogBatch(gate_id="garage", decisions=_decisions(3))
        await probe.client.publish(topics.gate_logs("garage"), good)
        await eventually(lambda: len(acks) == 1, timeout=10)
        assert embedded_store.count_access_events({"gate_id": "garage", "offline": True}) == 3
