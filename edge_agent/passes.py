"""Visitor passes (QR) decided offline: the token's signature (the site's public key from the sync),
window and gate scope, the pass still listed in the cache (so not revoked, not used up), and a
local use counter."""

from __future__ import annotations

import logging
from datetime import datetime

from edge_agent.cache import CacheAnswer, GateCache
from schemas.codes import ReasonCode
from visitor_pass.token import BadSignature, PassVerifier, TokenError, public_key_from_hex
from visitor_pass.validity import check_claims

log = logging.getLogger(__name__)


def check_pass(payload: str, cache: GateCache, gate_id: str, now: datetime) -> CacheAnswer:
    """Offline verdict on a QR payload; without the site's public key in the cache, every pass is denied."""
    if cache.pass_public_key is None:
        return CacheAnswer(False, ReasonCode.OFFLINE_UNSUPPORTED)
    try:
        verifier = PassVerifier([public_key_from_hex(cache.pass_public_key)])
        claims = verifier.verify(payload)
    except BadSignature:
        return CacheAnswer(False, ReasonCode.BAD_SIGNATURE)
    except (TokenError, ValueError):
        return CacheAnswer(False, ReasonCode.UNKNOWN_CREDENTIAL)
    refused = check_claims(claims, gate_id, now)
    if refused is not None:
        return CacheAnswer(False, refused, claims.pass_id)
    listed = cache.get_pass(claims.pass_id)
    if listed is None:
        # Not in the list the server sent for this gate: revoked, used up or expired there.
        return CacheAnswer(False, ReasonCode.PASS_REVOKED, claims.pass_id)
    offline_pass, used_here = listed
    if now >= offline_pass.valid_until:
        return CacheAnswer(False, ReasonCode.PASS_EXPIRED, claims.pass_id)
    if offline_pass.uses_left - used_here <= 0:
        return CacheAnswer(False, ReasonCode.PASS_USED_UP, claims.pass_id)
    cache.use_pass(claims.pass_id)
    return CacheAnswer(True, ReasonCode.GRANTED, claims.pass_id)
