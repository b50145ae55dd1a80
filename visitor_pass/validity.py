"""What a verified pass token alone says about a presentation: window and gate scope.

Pure, so the auth worker and a gate deciding offline apply the same rules. Uses and revocation
live in the store (online) or the gate's cache (offline), not in the token.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.codes import ReasonCode
from visitor_pass.token import PassClaims


def check_claims(claims: PassClaims, gate_id: str, now: datetime, skew_s: float = 0.0) -> ReasonCode | None:
    """The denial for presenting `claims` at `gate_id` at `now`, or None if the token allows it.

    `skew_s` forgives clocks that disagree by that much at either end of the window.
    """
    skew = timedelta(seconds=skew_s)
    if now + skew < claims.valid_from:
        return ReasonCode.PASS_NOT_YET_VALID
    if now - skew >= claims.valid_until:
        return ReasonCode.PASS_EXPIRED
    if not claims.allows_gate(gate_id):
        return ReasonCode.NOT_PERMITTED_AT_GATE
    return None
