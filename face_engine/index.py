"""In-memory 1:N index of enrolled face templates (exact inner product on normalised vectors)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from face_engine.pipeline import EMBEDDING_DIM, Embedding, normalise


@dataclass(frozen=True, slots=True)
class Match:
    user_id: str
    template_id: str
    score: float  # cosine similarity


class FaceIndex:
    """Templates in one contiguous float32 matrix; several templates per user.

    Adds are amortised O(1) (capacity doubles); removes swap the last row in. Thread-safe: the
    worker searches on its inference thread while change events mutate from the event loop, and
    a row must never be read against another row's user id.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._matrix = np.zeros((capacity, EMBEDDING_DIM), dtype=np.float32)
        self._template_ids: list[str] = []
        self._user_ids: list[str] = []
        self._row: dict[str, int] = {}
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._template_ids)

    def __contains__(self, template_id: object) -> bool:
        return template_id in self._row

    def add(self, template_id: str, user_id: str, embedding: Embedding) -> None:
        """Add (or replace) one template."""
        vec = normalise(embedding)
        with self._lock:
            self._add(template_id, user_id, vec)

    def _add(self, template_id: str, user_id: str, vec: Embedding) -> None:
        if template_id in self._row:
            row = self._row[template_id]
            self._matrix[row] = vec
            self._user_ids[row] = user_id
            return
        n = len(self._template_ids)
        if n == self._matrix.shape[0]:
            grown = np.zeros((max(2 * n, 1024), EMBEDDING_DIM), dtype=np.float32)
            grown[:n] = self._matrix[:n]
            self._matrix = grown
        self._matrix[n] = vec
        self._template_ids.append(template_id)
        self._user_ids.append(user_id)
        self._row[template_id] = n

    def remove(self, template_id: str) -> bool:
        with self._lock:
            return self._remove(template_id)

    def _remove(self, template_id: str) -> bool:
        row = self._row.pop(template_id, None)
        if row is None:
            return False
        last = len(self._template_ids) - 1
        if row != last:
            self._matrix[row] = self._matrix[last]
            self._template_ids[row] = self._template_ids[last]
            self._user_ids[row] = self._user_ids[last]
            self._row[self._template_ids[row]] = row
        self._template_ids.pop()
        self._user_ids.pop()
        return True

    def remove_user(self, user_id: str) -> int:
        with self._lock:
            doomed = [t for t, u in zip(self._template_ids, self._user_ids, strict=True) if u == user_id]
            for t in doomed:
                self._remove(t)
            return len(doomed)

    def search(self, query: Embedding, exclude_user: str | None = None) -> Match | None:
        """The best-scoring template (optionally ignoring one user's own templates)."""
        q = normalise(query)
        with self._lock:
            return self._search(q, exclude_user)

    def _search(self, q: Embedding, exclude_user: str | None) -> Match | None:
        n = len(self._template_ids)
        if n == 0:
            return None
        scores = self._matrix[:n] @ q
        if exclude_user is not None:
            own = [i for i, u in enumerate(self._user_ids) if u == exclude_user]
            if own:
                scores[own] = -np.inf
        best = int(np.argmax(scores))
        if not np.isfinite(scores[best]):
            return None
        return Match(self._user_ids[best], self._template_ids[best], float(scores[best]))

    def first_above(self, query: Embedding, threshold: float, exclude_user: str | None = None,
                    chunk: int = 65_536) -> Match | None:
        """The first template of another user scoring >= threshold, scanning in chunks; stops at the first hit."""
        q = normalise(query)
        with self._lock:
            return self._first_above(q, threshold, exclude_user, chunk)

    def _first_above(self, q: Embedding, threshold: float, exclude_user: str | None, chunk: int) -> Match | None:
        n = len(self._template_ids)
        for start in range(0, n, chunk):
            scores = self._matrix[start:min(n, start + chunk)] @ q
            for i in np.flatnonzero(scores >= threshold):
                row = start + int(i)
                if self._user_ids[row] != exclude_user:
                    return Match(self._user_ids[row], self._template_ids[row], float(scores[i]))
        return None
