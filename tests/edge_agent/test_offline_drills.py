"""Failure drills over real Mosquitto, the real store and real processes, each bounded in time."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from auth_worker.service import AuthWorker
from edge_agent.agent import GateDecision, cache_path
from edge_agent.db import open_gate_db
from edge_agent.offline_log import OfflineLog
from schemas import topics
from schemas.access import AccessRequest, CardCredential
from schemas.base import new_id
from schemas.codes import CredentialType, ReasonCode
from schemas.gate import GateHeartbeat, GatePing, OfflineDecision
from store.keyed_hash import KeyedHasher
from store.repository import Store
from tests.conftest import TEST_HASH_KEY, BrokerInfo, eventually
from tests.gate_sync.site import make_gate, make_probe, make_sync, offline_settings, running, seeded

ROOT = Path(__file__).resolve().parents[2]


async def test_broker_outage_mid_load(tmp_path: Path, mosquitto: BrokerInfo, embedded_store: Store,
                                      hasher: KeyedHasher) -> None:
    """Broker stopped under load: the gate decides from its cache, reconnects, uploads; the store holds
    every offline decision exactly once."""
    assert mosquitto.process is not None
    await seeded(embedded_store, hasher)
    settings = offline_settings(tmp_path, mosquitto, request_timeout_s=1.0)
    sync, gate = make_sync(settings, embedded_store, hasher), make_gate(settings)
    worker = AuthWorker(settings, embedded_store, hasher, client_id="auth-drill")
    decisions: list[tuple[str, GateDecision]] = []
    stop_load = asyncio.Event()

    async def load() -> None:
        n = 0
        while not stop_load.is_set():
            card = "CARD-1" if n % 2 == 0 else "NOBODY"
            decisions.append((card, await gate.present_card(card)))
            n += 1
            await asyncio.sleep(0.02)

    async with running((sync, sync.mqtt), (worker, worker.mqtt), (gate, gate.mqtt)):
        await eventually(lambda: gate.cache.version == sync.feeds["lobby"].version, timeout=10)
        loader = asyncio.create_task(load())
        try:
            await eventually(lambda: len(decisions) >= 10, timeout=10)
            await asyncio.to_thread(mosquitto.process.stop)
            outage_start = len(decisions)
            await eventually(lambda: len(decisions) >= outage_start + 20, timeout=10)
            await asyncio.to_thread(mosquitto.process.start)
            await eventually(lambda: any(not d.offline for _, d in decisions[outage_start + 20:]), timeout=15)
        finally:
            stop_load.set()
            await asyncio.wait_for(loader, 10)
        offline = [(card, d) for card, d in decisions if d.offline]
        assert len(offline) >= 20
        for card, d in offline:
            assert d.granted == (card == "CARD-1"), (card, d)
            assert d.reason == (ReasonCode.GRANTED if card == "CARD-1" else ReasonCode.UNKNOWN_CREDENTIAL).value
        await eventually(lambda: len(gate.offline_log) == 0, timeout=20)
        ids = [d.request_id for _, d in offline]
        await eventually(lambda: embedded_store.count_access_events({"offline": True}) == len(offline), timeout=10)
        assert embedded_store.count_access_events({"request_id": {"$in": ids}, "offline": True}) == len(ids)
        assert gate.relay.unlock_count == sum(d.granted for _, d in decisions)


def _gate_env(tmp_path: Path, broker: BrokerInfo) -> dict[str, str]:
    env = {**os.environ, "PASSAGE_MQTT__HOST": broker.host, "PASSAGE_MQTT__PORT": str(broker.port),
           "PASSAGE_DATA_DIR": str(tmp_path / "gate"), "PASSAGE_HASH_KEY": TEST_HASH_KEY,
           "PASSAGE_GATE__UPLOAD_BATCH_SIZE": "100", "PASSAGE_GATE__SYNC_WAIT_S": "0.2",
           "PASSAGE_FACE__ENABLED": "false", "PASSAGE_LOG_LEVEL": "WARNING"}
    env.pop("PASSAGE_CONFIG", None)
    return env


def _gate_process(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cli.main", "gate", "--gate-id", "lobby"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)


async def test_power_cut_mid_upload_loses_nothing(tmp_path: Path, mosquitto: BrokerInfo, embedded_store: Store,
                                                  hasher: KeyedHasher) -> None:
    settings = offline_settings(tmp_path, mosquitto)
    gate_settings = settings.model_copy(update={"data_dir": tmp_path / "gate"})
    # An outage left 3,000 decisions in the gate's queue.
    db = open_gate_db(cache_path(gate_settings, "lobby"))
    queue = OfflineLog(db)
    queued = [OfflineDecision(event_id=new_id(), request_id=new_id(), ts=datetime.now(UTC),
                              credential_type=CredentialType.CARD, granted=False,
                              reason=ReasonCode.UNKNOWN_CREDENTIAL) for _ in range(3000)]
    for d in queued:
        queue.append(d)
    ids = [d.event_id for d in queued]
    sync, probe = make_sync(settings, embedded_store, hasher), make_probe(settings)
    batches = probe.on(topics.gate_logs("lobby"))
    env = _gate_env(tmp_path, mosquitto)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with running((sync, sync.mqtt), (probe.client, probe.client)):
            procs.append(_gate_process(env))
            await eventually(lambda: len(batches) >= 3, timeout=20)
            procs[0].send_signal(signal.SIGKILL)  # the power goes, mid-upload
            await asyncio.to_thread(procs[0].wait, 5)
            # Every offline event in this fresh database is one of ours (checked by id at the end).
            stored_at_cut = await asyncio.to_thread(embedded_store.count_access_events, {"offline": True})
            left_at_cut = len(queue)
            assert 0 < left_at_cut < 3000 and stored_at_cut < 3000
            assert stored_at_cut + left_at_cut >= 3000  # nothing dropped before it was stored
            procs.append(_gate_process(env))  # power back
            await eventually(lambda: len(queue) == 0, timeout=30)
            assert await asyncio.to_thread(embedded_store.count_access_events, {"_id": {"$in": ids}}) == 3000
            assert embedded_store.count_access_events({"offline": True}) == 3000
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        db.close()


async def test_retry_uses_the_same_request_id_and_is_answered_once(tmp_path: Path, mosquitto: BrokerInfo,
                                                                   embedded_store: Store, hasher: KeyedHasher) -> None:
    await seeded(embedded_store, hasher)
    settings = offline_settings(tmp_path, mosquitto, request_timeout_s=4.0)
    gate, probe = make_gate(settings), make_probe(settings)
    requests = probe.on(topics.access_request("lobby"))
    worker = AuthWorker(settings, embedded_store, hasher, client_id="auth-late")
    async with running((probe.client, probe.client), (gate, gate.mqtt)):
        pending = asyncio.create_task(gate.present_card("CARD-1"))
        await eventually(lambda: len(requests) == 1, timeout=5)  # nobody is listening: the first try is lost
        async with running((worker, worker.mqtt)):
            decision = await asyncio.wait_for(pending, 10)
            assert decision.granted and not decision.offline and gate.relay.unlock_count == 1
            assert len(requests) == 2
            first, second = (AccessRequest.model_validate_json(m.payload) for m in requests)
            assert first.request_id == second.request_id == decision.request_id
            # A third copy (a retry racing the answer) gets the same answer, decided once.
            await probe.client.publish(topics.access_request("lobby"), requests[0].payload)
            await asyncio.sleep(0.3)
            assert worker.decisions == 1
            await eventually(lambda: embedded_store.count_access_events({"request_id": decision.request_id}) == 1)


async def test_ping_is_answered_with_a_heartbeat(tmp_path: Path, mosquitto: BrokerInfo) -> None:
    settings = offline_settings(tmp_path, mosquitto)
    gate, probe = make_gate(settings), make_probe(settings)
    beats = probe.on(topics.gate_heartbeat("lobby"))
    async with running((probe.client, probe.client), (gate, gate.mqtt)):
        await gate.present(CardCredential(acc_id="X-1"))  # one decision queued (no sync service to take it)
        await probe.client.publish(topics.gate_ping("lobby"), GatePing(gate_id="lobby", ping_id="p-1"))
        await probe.client.publish(topics.gate_ping("lobby"), GatePing(gate_id="garage", ping_id="p-x"))
        await probe.client.publish(topics.gate_ping("lobby"), b"garbage")
        await eventually(lambda: len(beats) == 1, timeout=5)
        await asyncio.sleep(0.2)
        assert len(beats) == 1
        beat = GateHeartbeat.model_validate_json(beats[0].payload)
        assert (beat.gate_id, beat.ping_id, beat.queued_offline, beat.cache_version) == ("lobby", "p-1", 1, 0)
