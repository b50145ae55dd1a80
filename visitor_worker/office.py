"""Carrying out visitor requests against the store (blocking: the service runs it on one thread,
so two registrations of one unit cannot both slip under the live-pass limit)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from config.settings import VisitorSettings
from schemas.base import new_id
from schemas.visitor import RegisterPass, VisitorErrorCode
from store.passes import VisitorPass, VisitorPassStore
from store.repository import Store
from visitor_pass.qr import QrRenderError, RenderedQr, render
from visitor_pass.token import PassClaims, PassSigner
from visitor_worker.errors import VisitorRefused
from visitor_worker.policy import Resident, check_resident, plan_pass, resident_gates

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IssuedPass:
    """A stored pass with its token and QR code. `replayed`: issued by an earlier copy of the request."""

    visitor_pass: VisitorPass
    token: str
    qr: RenderedQr
    replayed: bool = False


class PassOffice:
    """Register, list and revoke passes for residents."""

    def __init__(self, store: Store, passes: VisitorPassStore, signer: PassSigner, policy: VisitorSettings) -> None:
        self._store = store
        self._passes = passes
        self._signer = signer
        self._policy = policy

    def resident(self, resident_id: str) -> Resident:
        return check_resident(self._store.get_user(resident_id))

    def register(self, request_id: str, resident_id: str, action: RegisterPass, now: datetime) -> IssuedPass:
        """Issue a pass (or return the one this request id issued before)."""
        earlier = self._passes.by_request(request_id)
        if earlier is not None:
            return self._reissue(earlier, resident_id)
        resident = self.resident(resident_id)
        groups = {g.id: g for g in self._store.iter_access_groups()}
        gates = {g.id: g for g in self._store.iter_gates()}
        allowed = resident_gates(resident.user, groups, gates)
        live = self._passes.count_live(resident.building, resident.unit, now)
        plan = plan_pass(action, resident, allowed, live, self._policy, now)
        visitor_pass = VisitorPass(
            id=new_id(), request_id=request_id, resident_id=resident_id, building=resident.building,
            unit=resident.unit, visitor_name=action.visitor_name, visitor_phone=action.visitor_phone,
            purpose=action.purpose, valid_from=plan.valid_from, valid_until=plan.valid_until,
            gate_ids=list(plan.gate_ids), max_uses=plan.max_uses, key_id=self._signer.key_id, created_at=now)
        # Sign and draw before storing: a pass that cannot become a QR code is never left behind.
        token, qr = self._token_and_qr(visitor_pass)
        if not self._passes.insert(visitor_pass):
            # Another worker took this request id between our lookup and the insert: its pass stands.
            first = self._passes.by_request(request_id)
            if first is None:
                raise VisitorRefused(VisitorErrorCode.INTERNAL_ERROR, "pass vanished while being issued")
            return self._reissue(first, resident_id)
        return IssuedPass(visitor_pass, token, qr)

    def _reissue(self, earlier: VisitorPass, resident_id: str) -> IssuedPass:
        if earlier.resident_id != resident_id:
            # Never hand one resident's pass to another, whatever the request id says.
            raise VisitorRefused(VisitorErrorCode.INVALID_REQUEST, "request id already used")
        # Ed25519 is deterministic: the same claims give the same token and the same QR code.
        token, qr = self._token_and_qr(earlier)
        return IssuedPass(earlier, token, qr, replayed=True)

    def _token_and_qr(self, visitor_pass: VisitorPass) -> tuple[str, RenderedQr]:
        try:
            claims = PassClaims(visitor_pass.id, visitor_pass.valid_from, visitor_pass.valid_until,
                                tuple(visitor_pass.gate_ids), visitor_pass.max_uses)
            token = self._signer.sign(claims)
            return token, render(token)
        except (ValueError, QrRenderError) as exc:
            raise VisitorRefused(VisitorErrorCode.INVALID_REQUEST, f"cannot issue this pass: {exc}") from None

    def mark_pushed(self, pass_id: str) -> None:
        self._passes.set_pushed(pass_id)

    def list_passes(self, resident_id: str) -> list[VisitorPass]:
        """The passes of the resident's own unit, newest first."""
        resident = self.resident(resident_id)
        return self._passes.list_unit(resident.building, resident.unit)

    def revoke(self, resident_id: str, pass_id: str, now: datetime) -> tuple[VisitorPass, bool]:
        """Revoke a pass of the resident's unit; returns it and whether this call revoked it."""
        resident = self.resident(resident_id)
        current = self._passes.get(pass_id)
        # Another unit's pass is reported exactly like a missing one: its existence is not ours to tell.
        if current is None or (current.building, current.unit) != (resident.building, resident.unit):
            raise VisitorRefused(VisitorErrorCode.PASS_NOT_FOUND, "no such pass for this unit")
        revoked = self._passes.revoke(pass_id, now)
        if revoked is None:
            raise VisitorRefused(VisitorErrorCode.PASS_NOT_FOUND, "no such pass for this unit")
        return revoked, current.status is not revoked.status
