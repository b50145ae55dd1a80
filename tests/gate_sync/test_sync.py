"""Allow-list sync over real Mosquitto with the real store: snapshot, deltas, revocations offline."""

from __future__ import annotations

import asyncio
from pathlib import Path

from schemas.codes import CredentialType, ReasonCode
from schemas.documents import StoredCredential
from schemas.gate import GateSync
from store.keyed_hash import KeyedHasher
from store.repository import Store
from tests.conftest import BrokerInfo, eventually
from tests.gate_sync.site import make_gate, make_sync, offline_settings, running, seeded


async def test_snapshot_then_deltas_reach_the_gate(tmp_path: Path, mosquitto: BrokerInfo,
                                                   embedded_store: Store, hasher: KeyedHasher) -> None:
    await seeded(embedded_store, hasher)
    settings = offline_settings(tmp_path, mosquitto)
    sync, gate = make_sync(settings, embedded_store, hasher), make_gate(settings)
    async with running((sync, sync.mqtt), (gate, gate.mqtt)):
        await eventually(lambda: gate.cache.version == sync.feeds["lobby"].version, timeout=10)
        first = gate.cache.version
        assert gate.cache.snapshot_version == first and gate.cache.state().cards == 1  # U2 is inactive
        ok = await gate.present_card("CARD-1")  # no auth worker: decided from the cache
        assert ok.offline and ok.granted and ok.subject_id == "U1" and gate.relay.unlock_count == 1
        unknown = await gate.present_card("CARD-2")
        assert unknown.offline and not unknown.granted and unknown.reason == ReasonCode.UNKNOWN_CREDENTIAL.value

        # A new card arrives as a delta on top of the snapshot.
        await asyncio.to_thread(embedded_store.add_credential, StoredCredential(
            id="c3", kind=CredentialType.CARD, user_id="U1", lookup_key=hasher.lookup_key(CredentialType.CARD,
                                                                                          "CARD-3"),
            key_id=hasher.key_id))
        await eventually(lambda: gate.cache.version > first, timeout=10)
        assert gate.cache.snapshot_version == first  # a delta, not a new snapshot
        assert (await gate.present_card("CARD-3")).granted

        # A removed card is gone from the cache promptly.
        await asyncio.to_thread(embedded_store.remove_credential, CredentialType.CARD,
                                hasher.lookup_key(CredentialType.CARD, "CARD-1"), "U1")
        before = gate.cache.version
        await eventually(lambda: gate.cache.version > before, timeout=10)
        denied = await gate.present_card("CARD-1")
        assert denied.offline and not denied.granted and gate.relay.unlock_count == 2


async def test_revoked_while_offline_is_denied_after_reconnect(tmp_path: Path, mosquitto: BrokerInfo,
                                                               embedded_store: Store, hasher: KeyedHasher) -> None:
    await seeded(embedded_store, hasher)
    settings = offline_settings(tmp_path, mosquitto)
    sync = make_sync(settings, embedded_store, hasher)
    async with running((sync, sync.mqtt)):
        gate = make_gate(settings)
        async with running((gate, gate.mqtt)):
            await eventually(lambda: gate.cache.version == sync.feeds["lobby"].version, timeout=10)
            assert (await gate.present_card("CARD-1")).granted
        # The gate is gone (power off); meanwhile the resident is deactivated.
        version = sync.feeds["lobby"].version
        await asyncio.to_thread(embedded_store.set_user_active, "U1", False)
        await eventually(lambda: sync.feeds["lobby"].version > version, timeout=10)
        # The same gate comes back on the same cache, which still holds CARD-1.
        gate = make_gate(settings)
        assert gate.cache.version == version and gate.cache.state().cards == 1
        async with running((gate, gate.mqtt)):
            decision = await gate.present_card("CARD-1")  # the very first decision after reconnecting
            assert decision.offline and not decision.granted
            assert decision.reason == ReasonCode.UNKNOWN_CREDENTIAL.value
            assert gate.relay.unlock_count == 0


async def test_gate_of_an_older_lineage_gets_a_snapshot(tmp_path: Path, mosquitto: BrokerInfo,
                                                        embedded_store: Store, hasher: KeyedHasher) -> None:
    """A restarted sync service starts a new lineage: its deltas are refused and the gate's status
    (cache_version 0) brings a snapshot."""
    await seeded(embedded_store, hasher)
    settings = offline_settings(tmp_path, mosquitto)
    first = make_sync(settings, embedded_store, hasher)
    gate = make_gate(settings)
    async with running((first, first.mqtt), (gate, gate.mqtt)):
        await eventually(lambda: gate.cache.lineage == first.lineage, timeout=10)
    second = make_sync(settings, embedded_store, hasher)
    async with running((second, second.mqtt)):
        await asyncio.to_thread(embedded_store.add_credential, StoredCredential(
            id="c3", kind=CredentialType.CARD, user_id="U1", lookup_key=hasher.lookup_key(CredentialType.CARD,
                                                                                          "CARD-3"),
            key_id=hasher.key_id))
        await eventually(lambda: not second.message_for("lobby").snapshot, timeout=10)
        gate = make_gate(settings)
        async with running((gate, gate.mqtt)):
            await eventually(lambda: gate.cache.lineage == second.lineage and not gate.stale, timeout=10)
            assert second.stats.handshakes >= 1
            assert (await gate.present_card("CARD-3")).granted


def test_ten_thousand_cards_fit_one_packet(tmp_path: Path) -> None:
    from broker.mosquitto import MAX_PACKET_BYTES
    from gate_sync.allow_list import AllowList
    from gate_sync.feed import GateFeed, VersionClock
    from schemas.codec import encode
    from schemas.gate import OfflineEntry

    hasher = KeyedHasher(b"k" * 32)
    allow = AllowList(groups={"residents-building-A": None})
    for i in range(10_000):
        key = hasher.lookup_key(CredentialType.CARD, f"CARD-{i:08d}")
        allow.entries[key] = OfflineEntry(kind=CredentialType.CARD, key=key, subject_id=f"U{i:06d}",
                                          groups=["residents-building-A"])
    message = GateFeed("lobby", "L1", VersionClock(), 2000, allow).message(hasher.key_id, "Asia/Seoul", None)
    size = len(encode(message))
    # ~146 bytes per card: 10k cards are ~1.4 MiB, inside the 4 MiB packet with room to spare.
    assert message.snapshot and size < MAX_PACKET_BYTES // 2, size
    assert GateSync.model_validate_json(encode(message)).entries == message.entries
