"""The fingerprint matcher interface. No matcher ships yet; a site plugs one in (a vendor SDK)."""

from __future__ import annotations

from typing import Protocol


class UnusableSample(Exception):
    """The reader's sample cannot be turned into a template (too few minutiae, corrupt)."""


class FingerprintMatcher(Protocol):
    """Turns reader samples into templates and compares templates."""

    matcher_id: str
    # Scores at or above this are the same finger (the matcher's strict, duplicate-check level).
    duplicate_threshold: float

    def extract(self, sample: bytes) -> bytes:
        """A template from a raw sample; raises UnusableSample."""
        ...

    def score(self, a: bytes, b: bytes) -> float:
        """Similarity of two templates of this matcher."""
        ...
