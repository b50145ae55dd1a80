"""Photo -> one normalised 512-d embedding: decode, detect, pick the largest face, align, embed."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from config.settings import FaceSettings
from face_engine.errors import CorruptImage, FaceTooSmall, ModelMismatch, NoFaceFound
from face_engine.models import FaceModels, load_models

Embedding = npt.NDArray[np.float32]
EMBEDDING_DIM = 512


@dataclass(frozen=True)
class FaceResult:
    """The embedding of the largest face in a photo, and what was seen on the way."""

    embedding: Embedding
    face_px: int  # width of the detected face box
    det_score: float
    faces_found: int  # >1: the largest was used
    timings_ms: dict[str, float] = field(default_factory=dict)


def normalise(vector: npt.ArrayLike) -> Embedding:
    """An L2-normalised float32 copy; refuses zero or non-finite vectors."""
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    if v.shape[0] != EMBEDDING_DIM or not np.isfinite(norm) or norm < 1e-6:
        raise ModelMismatch(f"not a usable {EMBEDDING_DIM}-d embedding")
    return v / norm


class FaceEngine:
    """Thread-safe for concurrent callers (one inference at a time per engine)."""

    def __init__(self, settings: FaceSettings, models: FaceModels | None = None) -> None:
        self.settings = settings
        self.models = models or load_models(settings)
        self.model_id = self.models.model_id
        self._lock = threading.Lock()

    def _detect_size(self, img: npt.NDArray[np.uint8]) -> tuple[int, int]:
        """Detector input keeping the frame's aspect: no time spent on padding (640x480 -> 640x480)."""
        side = self.settings.detect_size
        h, w = img.shape[:2]
        scale = side / max(h, w)
        return (max(32, round(w * scale / 32) * 32), max(32, round(h * scale / 32) * 32))

    def decode(self, data: bytes) -> npt.NDArray[np.uint8]:
        """JPEG/PNG bytes -> BGR image; CorruptImage otherwise."""
        if not data:
            raise CorruptImage("empty image")
        buf = np.frombuffer(data, dtype=np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if img is None or img.ndim != 3 or img.shape[0] < 16 or img.shape[1] < 16:
            raise CorruptImage("not a decodable JPEG or PNG image")
        if img.shape[0] * img.shape[1] > self.settings.max_image_px:
            raise CorruptImage(f"image of {img.shape[1]}x{img.shape[0]} px is too large")
        return img.astype(np.uint8, copy=False)

    def embed_image(self, img: npt.NDArray[np.uint8]) -> FaceResult:
        """Embedding of the largest face in a BGR image."""
        from insightface.utils import face_align

        with self._lock:
            t0 = time.perf_counter()
            bboxes, kpss = self.models.detector.detect(img, input_size=self._detect_size(img), max_num=0,
                                                       metric="default")
            t1 = time.perf_counter()
            if bboxes is None or len(bboxes) == 0:
                raise NoFaceFound("no face found in the photo")
            widths = bboxes[:, 2] - bboxes[:, 0]
            best = int(np.argmax(widths))
            face_px = int(widths[best])
            if face_px < self.settings.min_face_px:
                raise FaceTooSmall(f"face is {face_px} px wide; at least {self.settings.min_face_px} px needed")
            crop = face_align.norm_crop(img, landmark=kpss[best], image_size=112)
            t2 = time.perf_counter()
            feat = self.models.recognizer.get_feat(crop)
            t3 = time.perf_counter()
        return FaceResult(
            embedding=normalise(feat),
            face_px=face_px,
            det_score=float(bboxes[best, 4]),
            faces_found=len(bboxes),
            timings_ms={"detect": (t1 - t0) * 1000, "align": (t2 - t1) * 1000, "embed": (t3 - t2) * 1000},
        )

    def embed_all_faces(self, img: npt.NDArray[np.uint8]) -> list[FaceResult]:
        """Every detected face, largest first, with no size limit (for analysis, never for decisions)."""
        from insightface.utils import face_align

        with self._lock:
            bboxes, kpss = self.models.detector.detect(img, max_num=0, metric="default")
            if bboxes is None:
                return []
            order = np.argsort(-(bboxes[:, 2] - bboxes[:, 0]))
            results = []
            for i in order:
                crop = face_align.norm_crop(img, landmark=kpss[i], image_size=112)
                results.append(FaceResult(embedding=normalise(self.models.recognizer.get_feat(crop)),
                                          face_px=int(bboxes[i, 2] - bboxes[i, 0]),
                                          det_score=float(bboxes[i, 4]), faces_found=len(bboxes)))
        return results

    def embed_photo(self, data: bytes) -> FaceResult:
        """Embedding of the largest face in JPEG/PNG bytes (raises a FaceError subclass)."""
        t0 = time.perf_counter()
        img = self.decode(data)
        decode_ms = (time.perf_counter() - t0) * 1000
        result = self.embed_image(img)
        result.timings_ms["decode"] = decode_ms
        return result

    def embed_aligned(self, crop: npt.NDArray[np.uint8]) -> Embedding:
        """Embedding of an already aligned 112x112 face crop."""
        if crop.shape[:2] != (112, 112):
            raise CorruptImage("an aligned crop must be 112x112")
        with self._lock:
            return normalise(self.models.recognizer.get_feat(crop))

    def check_edge_embedding(self, values: list[float], model_id: str) -> Embedding:
        """A gate-computed embedding, if it comes from this site's model."""
        if model_id != self.model_id:
            raise ModelMismatch(f"embedding from model {model_id!r}; this site matches with {self.model_id!r}")
        return normalise(values)
