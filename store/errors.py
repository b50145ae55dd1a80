"""Typed store errors."""

from __future__ import annotations


class StoreError(Exception):
    """A store operation failed."""


class StoreUnavailable(StoreError):
    """The database server cannot be reached or could not be started."""


class DuplicateCredential(StoreError):
    """The credential's lookup key already belongs to a user."""

    def __init__(self, kind: str, owner_id: str) -> None:
        super().__init__(f"duplicate {kind} credential, held by {owner_id}")
        self.kind = kind
        self.owner_id = owner_id
