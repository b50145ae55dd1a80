"""Visitor pass (QR) decisions: the token is judged from memory (signature, window, gate scope);
then one atomic store update takes a use, and the resident behind the pass is checked in the snapshot.

The store is on this path on purpose: only the store can make "uses left" exact across gates and
workers, and its conditional update refuses a revoked pass in the same step.
"""

from __future__ import annotations

from datetime import datetime

from auth_worker.decide import Decision
from auth_worker.snapshot import AccessSnapshot
from schemas.access import QrCredential
from schemas.codes import ReasonCode
from store.passes import UseOutcome, UseResult
from visitor_pass.token import PREFIX, BadSignature, MalformedToken, PassClaims, PassVerifier
from visitor_pass.validity import check_claims


def judge_token(qr: QrCredential, gate_id: str, verifier: PassVerifier | None, now: datetime,
                skew_s: float) -> PassClaims | Decision:
    """The verified claims if the token may be used at `gate_id` now, else the denial."""
    if verifier is None:
        # No key to check passes with: every pass is refused, never guessed at.
        return Decision.deny(ReasonCode.UNSUPPORTED_CREDENTIAL)
    try:
        claims = verifier.verify(qr.payload)
    except BadSignature:
        return Decision.deny(ReasonCode.BAD_SIGNATURE)
    except MalformedToken:
        # Some other QR code (a URL, a Wi-Fi code) is no pass at all; a damaged pass is unverifiable.
        if not qr.payload.startswith(PREFIX + "."):
            return Decision.deny(ReasonCode.UNKNOWN_CREDENTIAL)
        return Decision.deny(ReasonCode.BAD_SIGNATURE)
    refused = check_claims(claims, gate_id, now, skew_s)
    if refused is not None:
        return Decision.deny(refused, claims.pass_id)
    return claims


def decide_use(result: UseResult, claims: PassClaims, gate_id: str, snapshot: AccessSnapshot) -> Decision:
    """The decision once the store has answered the use: the pass's resident must still be an active
    resident who may open this gate (a resident who moved out takes their visitors' access along)."""
    pass_id = claims.pass_id
    if result.outcome is UseOutcome.REVOKED or result.outcome is UseOutcome.NOT_FOUND:
        # A genuine token whose pass is gone from the store was withdrawn: same answer as revoked.
        return Decision.deny(ReasonCode.PASS_REVOKED, pass_id)
    if result.outcome is UseOutcome.USED_UP:
        return Decision.deny(ReasonCode.PASS_USED_UP, pass_id)
    vp = result.visitor_pass
    assert vp is not None  # admitted and repeated uses come with the pass
    resident = snapshot.users.get(vp.resident_id)
    if resident is None or not resident.active:
        return Decision.deny(ReasonCode.USER_INACTIVE, pass_id)
    groups = [snapshot.groups[g] for g in resident.groups if g in snapshot.groups]
    if not any(gate_id in g.gate_ids for g in groups):
        return Decision.deny(ReasonCode.NOT_PERMITTED_AT_GATE, pass_id)
    return Decision(True, ReasonCode.GRANTED, pass_id)
