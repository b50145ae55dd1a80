"""`passage keys rotate / migrate / status` on a real embedded store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from config.settings import Settings
from schemas.codes import CredentialType
from schemas.documents import FaceTemplate, StoredCredential
from store.connect import hasher_for, open_store


def test_rotate_then_migrate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PASSAGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PASSAGE_HASH_KEY", raising=False)
    settings = Settings(data_dir=tmp_path / "data")
    v = np.random.default_rng(0).standard_normal(512).astype("<f4")
    with open_store(settings) as handle:
        old_id = handle.hasher.key_id
        handle.store.add_face_template(FaceTemplate(id="face-1", user_id="U1", model_id="m", face_px=100,
                                                    det_score=0.9, embedding=(v / np.linalg.norm(v)).tobytes()))
        handle.store.add_credential(StoredCredential(
            id="c1", kind=CredentialType.CARD, user_id="U1", key_id=old_id,
            lookup_key=handle.hasher.lookup_key(CredentialType.CARD, "CARD-1")))

    runner = CliRunner()
    rotated = runner.invoke(main, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    new = hasher_for(settings)
    assert new.key_id != old_id and new.key_ids == [new.key_id, old_id]
    assert (tmp_path / "data" / "keys" / "previous" / f"{old_id}.key").stat().st_mode & 0o077 == 0

    migrated = runner.invoke(main, ["keys", "migrate"])
    assert migrated.exit_code == 0, migrated.output
    assert f"re-sealed under {new.key_id}: 1" in migrated.output
    assert f"credentials under {old_id}: 1 (previous: re-hashed when next presented)" in migrated.output
    with open_store(settings) as handle:
        doc = handle.store.face_templates.find_one({"_id": "face-1"})
        assert doc is not None and doc["sealed"] == new.key_id
        assert [t.embedding for t in handle.store.iter_face_templates()] == [(v / np.linalg.norm(v)).tobytes()]
