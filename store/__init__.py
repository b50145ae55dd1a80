"""Store access: repositories over the pymongo API, MongoDB or the embedded server."""

from store.connect import StoreHandle, open_store
from store.errors import DuplicateCredential, StoreError, StoreUnavailable
from store.keyed_hash import KeyedHasher
from store.repository import Store

__all__ = [
    "DuplicateCredential",
    "KeyedHasher",
    "Store",
    "StoreError",
    "StoreHandle",
    "StoreUnavailable",
    "open_store",
]
