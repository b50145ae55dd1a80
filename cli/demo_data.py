"""The demo site `passage up` seeds: one gate, one group, one resident with a card."""

from __future__ import annotations

from pathlib import Path

from face_engine.errors import FaceError
from face_engine.models import default_models_dir
from face_engine.pipeline import FaceEngine
from face_engine.templates import to_template
from schemas.codes import CredentialType
from schemas.documents import AccessGroup, Gate, StoredCredential, User
from store.errors import DuplicateCredential
from store.keyed_hash import KeyedHasher
from store.repository import Store

DEMO_GATE = "gate-1"
# The gate `passage up` simulates: not gate-1, which `passage gate` from another terminal plays (one
# gate id is one device: a second connection under it would push the first off the broker).
SIMULATED_GATE = "gate-2"
DEMO_USER = "U1001"
DEMO_CARD = "DEMO-CARD-0001"
UNKNOWN_CARD = "NOT-ENROLLED-9999"
DEMO_FACE_TEMPLATE = f"face-{DEMO_USER}-1"


def demo_face_photo() -> Path:
    """A real portrait shipped with the default models: the demo resident's face."""
    return default_models_dir() / "yaoming.jpg"


def stranger_photo() -> Path:
    """A real photo of people nobody enrolled."""
    return default_models_dir() / "gdp.jpg"


def seed_demo(store: Store, hasher: KeyedHasher, engine: FaceEngine | None = None) -> None:
    """Create the demo records if missing (idempotent); with an engine, enroll the demo face too."""
    store.put_gate(Gate(id=DEMO_GATE, name="Lobby door", building="A"))
    store.put_gate(Gate(id=SIMULATED_GATE, name="Garage door (simulated by passage up)", building="A"))
    store.put_access_group(AccessGroup(id="residents-A", name="Residents of building A",
                                       gate_ids=[DEMO_GATE, SIMULATED_GATE]))
    store.put_user(User(id=DEMO_USER, name="Demo Resident", building="A", unit="1203",
                        groups=["residents-A"]))
    try:
        store.add_credential(StoredCredential(
            id=f"card-{DEMO_USER}-1", kind=CredentialType.CARD, user_id=DEMO_USER,
            lookup_key=hasher.lookup_key(CredentialType.CARD, DEMO_CARD), key_id=hasher.key_id))
    except DuplicateCredential:
        pass  # already seeded by an earlier run
    if engine is not None and store.count_face_templates(DEMO_USER) == 0:
        try:
            result = engine.embed_photo(demo_face_photo().read_bytes())
        except (FaceError, OSError):
            return  # face demo unavailable; cards still work
        store.add_face_template(to_template(DEMO_USER, engine.model_id, result, DEMO_FACE_TEMPLATE))
