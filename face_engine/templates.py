"""Converting between embeddings and stored FaceTemplate documents."""

from __future__ import annotations

import numpy as np

from face_engine.pipeline import Embedding, FaceResult, normalise
from schemas.base import new_id
from schemas.documents import FaceTemplate


def to_template(user_id: str, model_id: str, result: FaceResult, template_id: str | None = None) -> FaceTemplate:
    """A storable template for the face in `result`."""
    return FaceTemplate(
        id=template_id or f"face-{new_id()[:16]}",
        user_id=user_id,
        model_id=model_id,
        embedding=result.embedding.astype("<f4").tobytes(),
        face_px=result.face_px,
        det_score=min(result.det_score, 1.5),
    )


def embedding_of(template: FaceTemplate) -> Embedding:
    return normalise(np.frombuffer(template.embedding, dtype="<f4"))
