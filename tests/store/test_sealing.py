"""Face templates are sealed at rest (AES-GCM): unreadable in the database, bound to their record."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.codes import CredentialType
from schemas.documents import FaceTemplate
from store.connect import sealer_for
from store.errors import StoreError
from store.keyed_hash import KeyedHasher
from store.repository import Store
from store.sealing import UnsealError
from tests.conftest import TEST_HASH_KEY


def _template(tid: str, user: str, seed: int) -> FaceTemplate:
    v = np.random.default_rng(seed).standard_normal(512).astype("<f4")
    return FaceTemplate(id=tid, user_id=user, model_id="w600k_mbf", embedding=(v / np.linalg.norm(v)).tobytes(),
                        face_px=120, det_score=0.9)


def test_templates_round_trip_and_are_not_stored_in_clear(store: Store) -> None:
    t = _template("face-1", "U1", 1)
    store.add_face_template(t)
    raw = store.face_templates.find_one({"_id": "face-1"})
    assert raw is not None and raw["sealed"] and t.embedding not in bytes(raw["embedding"])
    assert t.embedding[:64] not in bytes(raw["embedding"])
    assert [x.embedding for x in store.iter_face_templates()] == [t.embedding]


def test_a_template_moved_to_another_user_or_tampered_does_not_open(store: Store) -> None:
    store.add_face_templates([_template("face-1", "U1", 1), _template("face-2", "U2", 2)])
    # An attacker with write access gives U1's face to U2 (swapping the owner field).
    store.face_templates.update_one({"_id": "face-1"}, {"$set": {"user_id": "U2"}})
    raw2 = store.face_templates.find_one({"_id": "face-2"})
    assert raw2 is not None
    flipped = bytearray(raw2["embedding"])
    flipped[40] ^= 1
    store.face_templates.update_one({"_id": "face-2"}, {"$set": {"embedding": bytes(flipped)}})
    store.face_templates.insert_one({"_id": "face-3", "user_id": "U3", "model_id": "w600k_mbf",
                                     "embedding": _template("x", "U3", 3).embedding, "face_px": 1, "det_score": 1})
    assert list(store.iter_face_templates()) == []  # each bad record skipped, none trusted
    with pytest.raises(UnsealError):
        store.face_template_from_doc(store.face_templates.find_one({"_id": "face-3"}) or {})


def test_other_site_key_cannot_open_and_no_key_refuses(store: Store) -> None:
    store.add_face_template(_template("face-1", "U1", 1))
    other = Store(store.db, sealer_for(KeyedHasher.from_secret("ff" * 32)))
    assert list(other.iter_face_templates()) == []
    keyless = Store(store.db)
    with pytest.raises(StoreError):
        keyless.add_face_template(_template("face-2", "U2", 2))


def test_rotation_old_templates_open_then_migrate_reseals(store: Store) -> None:
    store.add_face_template(_template("face-1", "U1", 1))
    original = next(store.iter_face_templates()).embedding
    new_key = "ab" * 32
    rotated = Store(store.db, sealer_for(KeyedHasher.from_secret(new_key, [TEST_HASH_KEY])))
    assert [t.embedding for t in rotated.iter_face_templates()] == [original]  # old key still opens
    rotated.add_face_template(_template("face-2", "U2", 2))
    assert rotated.reseal_face_templates() == (1, 0)
    assert rotated.reseal_face_templates() == (0, 0)
    only_new = Store(store.db, sealer_for(KeyedHasher.from_secret(new_key)))  # old key retired
    assert {t.id for t in only_new.iter_face_templates()} == {"face-1", "face-2"}
    assert next(t for t in only_new.iter_face_templates() if t.id == "face-1").embedding == original


def test_hasher_knows_previous_keys_current_first() -> None:
    old = KeyedHasher.from_secret(TEST_HASH_KEY)
    new = KeyedHasher.from_secret("ab" * 32, [TEST_HASH_KEY])
    assert new.key_id != old.key_id and new.key_ids == [new.key_id, old.key_id]
    pairs = new.lookup_keys(CredentialType.CARD, "CARD-1")
    assert pairs == [(new.key_id, new.lookup_key(CredentialType.CARD, "CARD-1")),
                     (old.key_id, old.lookup_key(CredentialType.CARD, "CARD-1"))]
