"""Who may register visitors, and which passes the site's policy allows. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from config.settings import VisitorSettings
from schemas.documents import AccessGroup, Gate, User, UserKind
from schemas.visitor import RegisterPass, VisitorErrorCode
from visitor_worker.errors import VisitorRefused


@dataclass(frozen=True, slots=True)
class Resident:
    """A resident allowed to act on their unit's passes."""

    user: User
    building: str
    unit: str


@dataclass(frozen=True, slots=True)
class PassPlan:
    """What a registration turns into once policy has been applied."""

    valid_from: datetime
    valid_until: datetime
    gate_ids: tuple[str, ...]
    max_uses: int


def check_resident(user: User | None) -> Resident:
    """The resident behind a request: known, a resident, active, with a building and unit."""
    if user is None:
        raise VisitorRefused(VisitorErrorCode.UNKNOWN_RESIDENT, "no such resident")
    if user.kind is not UserKind.RESIDENT:
        raise VisitorRefused(VisitorErrorCode.UNKNOWN_RESIDENT, "only residents register visitors")
    if not user.active:
        raise VisitorRefused(VisitorErrorCode.RESIDENT_INACTIVE, "the resident's account is inactive")
    if not user.building or not user.unit:
        raise VisitorRefused(VisitorErrorCode.UNKNOWN_RESIDENT, "the resident has no building and unit on record")
    return Resident(user, user.building, user.unit)


def resident_gates(user: User, groups: Mapping[str, AccessGroup], gates: Mapping[str, Gate]) -> set[str]:
    """The active gates the resident's access groups open."""
    found = {g for gid in user.groups if gid in groups for g in groups[gid].gate_ids}
    return {g for g in found if g in gates and gates[g].active}


def whole_seconds(moment: datetime) -> datetime:
    """Tokens carry whole seconds: the stored pass says exactly what its QR code says."""
    return moment.replace(microsecond=0)


def plan_pass(action: RegisterPass, resident: Resident, allowed_gates: set[str], live_passes: int,
              policy: VisitorSettings, now: datetime) -> PassPlan:
    """Apply the site policy to a registration; raises VisitorRefused with the first rule it breaks."""
    now = whole_seconds(now)
    # A window that started already starts now: what counts against the limit is what is left.
    valid_from = max(whole_seconds(action.valid_from), now)
    valid_until = whole_seconds(action.valid_until)
    if valid_until <= now:
        raise VisitorRefused(VisitorErrorCode.WINDOW_IN_PAST, "the visit window is over already")
    if valid_until - valid_from > timedelta(seconds=policy.max_window_s):
        raise VisitorRefused(VisitorErrorCode.WINDOW_TOO_LONG,
                             f"a pass may be valid for at most {policy.max_window_s} seconds")
    if valid_until <= valid_from:
        raise VisitorRefused(VisitorErrorCode.INVALID_REQUEST, "the visit window is shorter than a second")
    if action.max_uses > policy.max_uses:
        raise VisitorRefused(VisitorErrorCode.TOO_MANY_USES, f"a pass may allow at most {policy.max_uses} entries")
    if not allowed_gates:
        raise VisitorRefused(VisitorErrorCode.GATE_NOT_PERMITTED, "the resident may not open any gate")
    wanted = set(action.gate_ids) or allowed_gates
    outside = wanted - allowed_gates
    if outside:
        raise VisitorRefused(VisitorErrorCode.GATE_NOT_PERMITTED,
                             f"the resident may not open gate(s) {', '.join(sorted(outside))}")
    if live_passes >= policy.max_active_passes_per_unit:
        raise VisitorRefused(VisitorErrorCode.TOO_MANY_PASSES,
                             f"the unit has {live_passes} live passes (limit {policy.max_active_passes_per_unit})")
    return PassPlan(valid_from, valid_until, tuple(sorted(wanted)), action.max_uses)
