"""After a site-key rotation: old hashes still open doors and are moved onto the new key when
presented; enrollment still sees cards hashed under the old key as taken."""

from __future__ import annotations

from pathlib import Path

from schemas.access import CardCredential
from schemas.codes import CredentialType
from store.keyed_hash import KeyedHasher
from store.repository import Store
from tests.admin_worker.test_enrollment import running_admin
from tests.conftest import TEST_HASH_KEY, BrokerInfo, eventually
from tests.platform_fixture import running_platform

NEW_KEY = "cd" * 32


async def test_old_card_hash_admitted_then_rehashed(tmp_path: Path, amqtt_broker: BrokerInfo,
                                                    embedded_store: Store, hasher: KeyedHasher) -> None:
    rotated = KeyedHasher.from_secret(NEW_KEY, [TEST_HASH_KEY])
    async with running_platform(tmp_path, amqtt_broker, embedded_store, hasher, worker_hasher=rotated) as p:
        first = await p.lobby.present(CardCredential(acc_id="CARD-1"))
        assert first.granted and first.subject_id == "U1"

        def moved() -> bool:
            cred = embedded_store.find_credential(CredentialType.CARD,
                                                  rotated.lookup_key(CredentialType.CARD, "CARD-1"))
            return cred is not None and cred.id == "c1" and cred.key_id == rotated.key_id

        await eventually(moved, timeout=10)
        await eventually(lambda: (CredentialType.CARD, rotated.lookup_key(CredentialType.CARD, "CARD-1"))
                         in p.worker.snapshot.credentials, timeout=10)
        again = await p.lobby.present(CardCredential(acc_id="CARD-1"))
        assert again.granted and again.subject_id == "U1"
        # A worker that only knows the old key no longer matches the moved card: nothing stays
        # reachable under a retired key once it was presented.
        assert embedded_store.find_credential(CredentialType.CARD,
                                              hasher.lookup_key(CredentialType.CARD, "CARD-1")) is None


async def test_card_under_old_key_is_still_a_duplicate(tmp_path: Path, amqtt_broker: BrokerInfo,
                                                       embedded_store: Store, hasher: KeyedHasher) -> None:
    rotated = KeyedHasher.from_secret(NEW_KEY, [TEST_HASH_KEY])
    async with running_admin(tmp_path, amqtt_broker, embedded_store, hasher) as old_admin:
        assert (await old_admin.send({"action": "create_user", "user_id": "U1", "name": "Kim"})).ok
        assert (await old_admin.send({"action": "add_card", "user_id": "U1", "acc_id": "OLD-CARD"})).ok
    async with running_admin(tmp_path, amqtt_broker, embedded_store, rotated) as admin:
        assert (await admin.send({"action": "create_user", "user_id": "U2", "name": "Lee"})).ok
        dup = await admin.send({"action": "add_card", "user_id": "U2", "acc_id": "OLD-CARD"})
        assert not dup.ok and dup.sub_code == "CARD" and dup.matched_user_id == "U1"
        assert (await admin.send({"action": "remove_card", "user_id": "U1", "acc_id": "OLD-CARD"})).ok
