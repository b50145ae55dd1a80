"""The face pipeline on real photos and the shipped weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from config.settings import FaceSettings
from face_engine.errors import CorruptImage, FaceTooSmall, ModelFileError, ModelMismatch, NoFaceFound
from face_engine.models import default_models_dir, load_models
from face_engine.pipeline import FaceEngine
from tests import face_photos as photos

ACCESS = FaceSettings().threshold(FaceSettings().access_level)


def test_portrait_gives_one_normalised_embedding(face_engine: FaceEngine) -> None:
    r = face_engine.embed_photo(photos.YAO.read_bytes())
    assert r.embedding.shape == (512,) and r.embedding.dtype == np.float32
    assert abs(float(np.linalg.norm(r.embedding)) - 1.0) < 1e-5
    assert r.faces_found == 1 and r.face_px >= 60 and r.det_score > 0.5
    assert set(r.timings_ms) == {"decode", "detect", "align", "embed"}


def test_group_photo_uses_the_largest_face_and_says_so(face_engine: FaceEngine) -> None:
    group = photos.load(photos.GROUP)
    r = face_engine.embed_image(group)
    assert r.faces_found == 6
    assert r.face_px == max(f.face_px for f in face_engine.embed_all_faces(group))


@pytest.mark.parametrize("name", ["flip", "rescale_0.6", "jpeg_40", "brighter", "darker", "crop_shift"])
def test_same_face_under_camera_changes_matches(face_engine: FaceEngine, name: str) -> None:
    yao = photos.load(photos.YAO)
    enrolled = face_engine.embed_image(yao).embedding
    seen = face_engine.embed_image(photos.variants(yao)[name]).embedding
    assert float(enrolled @ seen) >= ACCESS + 0.3, name


def test_same_person_in_another_photo_matches_and_nobody_else_does(face_engine: FaceEngine) -> None:
    yao = face_engine.embed_image(photos.load(photos.YAO)).embedding
    team = face_engine.embed_all_faces(photos.load(photos.PLAYERS))
    scores = sorted(float(f.embedding @ yao) for f in team)
    assert len(team) >= 20
    assert scores[-1] >= ACCESS  # the same man, another day, another camera
    assert scores[-2] < ACCESS  # none of his team mates


def test_different_people_stay_below_the_threshold(face_engine: FaceEngine) -> None:
    faces = [f.embedding for f in face_engine.embed_all_faces(photos.load(photos.GROUP))]
    faces += [f.embedding for f in face_engine.embed_all_faces(photos.load(photos.GDP)) if f.face_px >= 60]
    faces.append(face_engine.embed_image(photos.astronaut()).embedding)
    faces.append(face_engine.embed_aligned(photos.load(photos.TOM_HANKS_ALIGNED)))
    faces.append(face_engine.embed_image(photos.load(photos.YAO)).embedding)
    matrix = np.stack(faces)
    sims = matrix @ matrix.T
    off_diagonal = sims[~np.eye(len(faces), dtype=bool)]
    assert len(faces) >= 10
    assert float(off_diagonal.max()) < ACCESS


def test_photo_without_a_face_is_refused(face_engine: FaceEngine) -> None:
    with pytest.raises(NoFaceFound) as err:
        face_engine.embed_photo(photos.jpeg(photos.no_face_photo()))
    assert err.value.reason == "NO_FACE_FOUND"


def test_too_small_a_face_is_refused(face_engine: FaceEngine) -> None:
    yao = photos.load(photos.YAO)
    tiny = cv2.resize(yao, (yao.shape[1] // 3, yao.shape[0] // 3))
    with pytest.raises(FaceTooSmall):
        face_engine.embed_photo(photos.jpeg(photos.as_camera_frame(tiny)))


CORRUPT = [b"", b"not an image", photos.YAO.read_bytes()[:300], b"\x89PNG\r\n\x1a\n" + b"\0" * 50]


@pytest.mark.parametrize("data", CORRUPT, ids=["empty", "text", "truncated-jpeg", "broken-png"])
def test_corrupt_files_are_refused(face_engine: FaceEngine, data: bytes) -> None:
    with pytest.raises(CorruptImage):
        face_engine.embed_photo(data)


def test_edge_embeddings_must_come_from_the_same_model(face_engine: FaceEngine) -> None:
    vec = face_engine.embed_photo(photos.YAO.read_bytes()).embedding
    assert float(face_engine.check_edge_embedding(vec.tolist(), "w600k_mbf") @ vec) > 0.999
    with pytest.raises(ModelMismatch):
        face_engine.check_edge_embedding(vec.tolist(), "buffalo_l")
    with pytest.raises(ModelMismatch):
        face_engine.check_edge_embedding([0.0] * 512, "w600k_mbf")


def test_tampered_or_missing_model_files_are_refused(tmp_path: Path) -> None:
    src = default_models_dir()
    for name in ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx"):
        shutil.copy(src / name, tmp_path / name)
    with open(tmp_path / "w600k_mbf.onnx", "r+b") as fh:
        fh.seek(-1, 2)
        last = fh.read(1)
        fh.seek(-1, 2)
        fh.write(bytes([last[0] ^ 0xFF]))
    with pytest.raises(ModelFileError, match="sha256"):
        load_models(FaceSettings(models_dir=tmp_path))
    (tmp_path / "scrfd_500m_bnkps.onnx").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        load_models(FaceSettings(models_dir=tmp_path))
