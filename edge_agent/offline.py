"""Decisions a gate takes alone, from its cache: only a positive cache hit opens the door."""

from __future__ import annotations

import logging
from datetime import datetime

from edge_agent.cache import CacheAnswer, GateCache
from edge_agent.passes import check_pass
from schemas.access import CardCredential, Credential, FaceCredential, PinCredential, QrCredential
from schemas.codes import CredentialType, ReasonCode
from store.keyed_hash import KeyedHasher, pin_secret

log = logging.getLogger(__name__)

# No cache to decide from (never synced, known stale, no key): the door stays shut, as on a timeout.
NO_CACHE = CacheAnswer(False, ReasonCode.TIMEOUT)


def decide_offline(credential: Credential, cache: GateCache, hasher: KeyedHasher | None, now: datetime,
                   gate_id: str, stale: bool = False) -> CacheAnswer:
    """The gate's own decision on `credential` at `now`."""
    if isinstance(credential, FaceCredential):
        # Edge face matching would need the gate to hold templates and run the model: not built.
        return CacheAnswer(False, ReasonCode.OFFLINE_UNSUPPORTED)
    if not cache.synced or stale:
        return NO_CACHE
    if isinstance(credential, QrCredential):
        return check_pass(credential.payload, cache, gate_id, now)
    if hasher is None:
        return NO_CACHE
    if cache.key_id not in hasher.key_ids:
        log.error("gate=%s cache hashed under key %s, which this gate does not hold: offline cards denied",
                  gate_id, cache.key_id)
        return NO_CACHE
    if isinstance(credential, CardCredential):
        return _lookup(cache, hasher, CredentialType.CARD, credential.acc_id, now)
    if isinstance(credential, PinCredential):
        return _lookup(cache, hasher, CredentialType.PIN, pin_secret(credential.unit, credential.pin), now)
    return CacheAnswer(False, ReasonCode.OFFLINE_UNSUPPORTED)


def _lookup(cache: GateCache, hasher: KeyedHasher, kind: CredentialType, secret: str, now: datetime) -> CacheAnswer:
    # Under every key the gate holds: after a rotation, credentials not yet re-hashed keep the old one.
    answer = CacheAnswer(False, ReasonCode.UNKNOWN_CREDENTIAL)
    for _, key in hasher.lookup_keys(kind, secret):
        answer = cache.lookup(kind, key, now)
        if answer.reason is not ReasonCode.UNKNOWN_CREDENTIAL:
            return answer
    return answer
