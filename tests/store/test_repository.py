"""Repository code on every store backend: the embedded server, and MongoDB when configured."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.codes import CredentialType, ReasonCode
from schemas.documents import AccessEventRecord, AccessGroup, Gate, StoredCredential, User
from store.connect import connect
from store.embedded import EmbeddedMongoServer
from store.errors import DuplicateCredential
from store.keyed_hash import KeyedHasher
from store.repository import Store


def _card(hasher: KeyedHasher, cid: str, user: str, acc_id: str) -> StoredCredential:
    return StoredCredential(id=cid, kind=CredentialType.CARD, user_id=user,
                            lookup_key=hasher.lookup_key(CredentialType.CARD, acc_id), key_id=hasher.key_id)


def _event(eid: str, minutes: int = 0) -> AccessEventRecord:
    return AccessEventRecord(id=eid, ts=datetime(2026, 11, 23, 10, tzinfo=UTC) + timedelta(minutes=minutes),
                             request_id=f"r-{eid}", gate_id="lobby", credential_type=CredentialType.CARD,
                             granted=True, reason=ReasonCode.GRANTED, subject_id="U1", latency_ms=0.3)


def test_users_gates_groups_round_trip(store: Store) -> None:
    user = User(id="U1", name="김민수", building="A", unit="1203", groups=["res"])
    store.put_user(user)
    assert store.get_user("U1") == user
    assert store.set_user_active("U1", False)
    assert store.get_user("U1").active is False  # type: ignore[union-attr]
    assert not store.set_user_active("nobody", False)
    store.put_gate(Gate(id="lobby", name="Lobby"))
    store.put_access_group(AccessGroup(id="res", name="Residents", gate_ids=["lobby"]))
    assert [g.id for g in store.iter_gates()] == ["lobby"]
    assert [g.gate_ids for g in store.iter_access_groups()] == [["lobby"]]


def test_card_ids_are_unique_and_never_stored_in_clear(store: Store, hasher: KeyedHasher) -> None:
    store.add_credential(_card(hasher, "c1", "U1", "CARD-SECRET-77"))
    with pytest.raises(DuplicateCredential) as dup:
        store.add_credential(_card(hasher, "c2", "U2", "CARD-SECRET-77"))
    assert dup.value.owner_id == "U1" and dup.value.kind == "card"
    raw = list(store.credentials.find())
    assert len(raw) == 1 and "CARD-SECRET-77" not in str(raw)
    found = store.find_credential(CredentialType.CARD, hasher.lookup_key(CredentialType.CARD, "CARD-SECRET-77"))
    assert found is not None and found.user_id == "U1"


def test_access_events_are_stored_exactly_once(store: Store) -> None:
    assert store.append_access_events([_event("e1"), _event("e2", 1)]) == 2
    # A replayed batch (gate upload retry) adds only what is new.
    assert store.append_access_events([_event("e1"), _event("e2", 1), _event("e3", 2)]) == 1
    assert store.count_access_events() == 3
    recent = store.access_events_for_gate("lobby")
    assert [e.id for e in recent] == ["e3", "e2", "e1"]
    assert recent[0].ts.tzinfo is not None


def test_data_survives_a_server_restart(tmp_path: Path, hasher: KeyedHasher) -> None:
    server = EmbeddedMongoServer(tmp_path / "db")
    server.start()
    try:
        client, st = connect(server.uri, "passage")
        st.add_credential(_card(hasher, "c1", "U1", "A"))
        client.close()
    finally:
        server.stop()
    server = EmbeddedMongoServer(tmp_path / "db", port=server.port)
    server.start()
    try:
        client, st = connect(server.uri, "passage")
        with pytest.raises(DuplicateCredential):  # data and the unique index both survived
            st.add_credential(_card(hasher, "c9", "U9", "A"))
        client.close()
    finally:
        server.stop()
