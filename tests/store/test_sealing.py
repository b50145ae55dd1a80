"""Face templates are sealed at rest (AES-GCM): unreadable in the database, bound to their record."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.documents import FaceTemplate
from store.errors import StoreError
from store.keyed_hash import KeyedHasher
from store.repository import Store
from store.sealing import TemplateSealer, UnsealError


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
    other = Store(store.db, TemplateSealer(KeyedHasher.from_secret("ff" * 32).derive("face-templates")))
    assert list(other.iter_face_templates()) == []
    keyless = Store(store.db)
    with pytest.raises(StoreError):
        keyless.add_face_template(_template("face-2", "U2", 2))
