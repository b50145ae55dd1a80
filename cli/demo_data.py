"""The demo site `passage up` seeds: one gate, one group, one resident with a card."""

from __future__ import annotations

from schemas.codes import CredentialType
from schemas.documents import AccessGroup, Gate, StoredCredential, User
from store.errors import DuplicateCredential
from store.keyed_hash import KeyedHasher
from store.repository import Store

DEMO_GATE = "gate-1"
DEMO_USER = "U1001"
DEMO_CARD = "DEMO-CARD-0001"
UNKNOWN_CARD = "NOT-ENROLLED-9999"


def seed_demo(store: Store, hasher: KeyedHasher) -> None:
    """Create the demo records if missing (idempotent)."""
    store.put_gate(Gate(id=DEMO_GATE, name="Lobby door", building="A"))
    store.put_access_group(AccessGroup(id="residents-A", name="Residents of building A",
                                       gate_ids=[DEMO_GATE]))
    store.put_user(User(id=DEMO_USER, name="Demo Resident", building="A", unit="1203",
                        groups=["residents-A"]))
    try:
        store.add_credential(StoredCredential(
            id=f"card-{DEMO_USER}-1", kind=CredentialType.CARD, user_id=DEMO_USER,
            lookup_key=hasher.lookup_key(CredentialType.CARD, DEMO_CARD), key_id=hasher.key_id))
    except DuplicateCredential:
        pass  # already seeded by an earlier run
