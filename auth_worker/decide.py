"""Pure access decisions: no I/O, so every rule is testable on its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from auth_worker.snapshot import AccessSnapshot
from face_engine.index import Match
from schemas.access import AccessRequest, CardCredential, PinCredential
from schemas.codes import CredentialType, ReasonCode
from store.keyed_hash import KeyedHasher, pin_secret


@dataclass(frozen=True, slots=True)
class Decision:
    granted: bool
    reason: ReasonCode
    subject_id: str | None = None
    score: float | None = None  # face similarity, when a face was matched

    @classmethod
    def deny(cls, reason: ReasonCode, subject_id: str | None = None, score: float | None = None) -> Decision:
        return cls(False, reason, subject_id, score)


def check_request(request: AccessRequest, topic_gate_id: str, snapshot: AccessSnapshot, now: datetime,
                  max_age_s: float, max_skew_s: float) -> Decision | None:
    """A denial if the request itself is unacceptable (whatever the credential), else None."""
    if request.gate_id != topic_gate_id:
        # A gate may only ask for its own door.
        return Decision.deny(ReasonCode.GATE_MISMATCH)
    age = (now - request.ts).total_seconds()
    if age > max_age_s or age < -max_skew_s:
        return Decision.deny(ReasonCode.STALE_REQUEST)
    gate = snapshot.gates.get(request.gate_id)
    if gate is None or not gate.active:
        return Decision.deny(ReasonCode.UNKNOWN_GATE)
    return None


def decide(request: AccessRequest, topic_gate_id: str, snapshot: AccessSnapshot, hasher: KeyedHasher,
           now: datetime, tz: tzinfo, max_age_s: float, max_skew_s: float) -> Decision:
    """Decide a request whose credential is decided from memory alone (card, PIN; faces and passes
    have their own paths, anything else is unsupported here)."""
    refused = check_request(request, topic_gate_id, snapshot, now, max_age_s, max_skew_s)
    if refused is not None:
        return refused
    if isinstance(request.credential, CardCredential):
        return decide_card(request.credential, request.gate_id, snapshot, hasher, now, tz)
    if isinstance(request.credential, PinCredential):
        return decide_pin(request.credential, request.gate_id, snapshot, hasher, now, tz)
    return Decision.deny(ReasonCode.UNSUPPORTED_CREDENTIAL)


def decide_card(card: CardCredential, gate_id: str, snapshot: AccessSnapshot,
                hasher: KeyedHasher, now: datetime, tz: tzinfo) -> Decision:
    key = find_key(CredentialType.CARD, card.acc_id, snapshot, hasher)
    return decide_keyed(CredentialType.CARD, key, gate_id, snapshot, now, tz)


def decide_pin(pin: PinCredential, gate_id: str, snapshot: AccessSnapshot,
               hasher: KeyedHasher, now: datetime, tz: tzinfo) -> Decision:
    """A keypad PIN, hashed scoped by the unit typed with it (as admin_worker stored it)."""
    key = find_key(CredentialType.PIN, pin_secret(pin.unit, pin.pin), snapshot, hasher)
    return decide_keyed(CredentialType.PIN, key, gate_id, snapshot, now, tz)


def secret_of(credential: CardCredential | PinCredential) -> tuple[CredentialType, str]:
    """What a card or PIN is hashed as."""
    if isinstance(credential, CardCredential):
        return CredentialType.CARD, credential.acc_id
    return CredentialType.PIN, pin_secret(credential.unit, credential.pin)


def find_key(kind: CredentialType, secret: str, snapshot: AccessSnapshot, hasher: KeyedHasher) -> str:
    """The lookup key the credential is stored under: the current site key's, else a previous
    key's (after a rotation, until it is re-hashed); the current one when none is known."""
    pairs = hasher.lookup_keys(kind, secret)
    return next((key for _, key in pairs if (kind, key) in snapshot.credentials), pairs[0][1])


def outdated(credential: CardCredential | PinCredential, snapshot: AccessSnapshot,
             hasher: KeyedHasher) -> tuple[str, str] | None:
    """(credential id, current lookup key) when this presented credential is still stored under a
    previous key: the clear value is in hand now, so it can be moved onto the current key."""
    kind, secret = secret_of(credential)
    current = hasher.lookup_key(kind, secret)
    if len(hasher.key_ids) == 1 or (kind, current) in snapshot.credentials:
        return None
    stored = snapshot.credentials.get((kind, find_key(kind, secret, snapshot, hasher)))
    return None if stored is None else (stored.id, current)


def decide_keyed(kind: CredentialType, key: str, gate_id: str, snapshot: AccessSnapshot,
                 now: datetime, tz: tzinfo) -> Decision:
    """A credential known by its keyed hash: known, active, then the holder's rules."""
    stored = snapshot.credentials.get((kind, key))
    if stored is None:
        return Decision.deny(ReasonCode.UNKNOWN_CREDENTIAL)
    if not stored.active:
        return Decision.deny(ReasonCode.CREDENTIAL_REVOKED, stored.user_id)
    return decide_for_user(stored.user_id, gate_id, snapshot, now, tz)


def decide_face(match: Match | None, threshold: float, gate_id: str, snapshot: AccessSnapshot,
                now: datetime, tz: tzinfo) -> Decision:
    """The best 1:N match must reach the site's threshold; then the user rules apply."""
    if match is None or match.score < threshold:
        return Decision.deny(ReasonCode.FACE_NOT_MATCHED, score=match.score if match else None)
    decision = decide_for_user(match.user_id, gate_id, snapshot, now, tz)
    return Decision(decision.granted, decision.reason, decision.subject_id, match.score)


def decide_for_user(user_id: str, gate_id: str, snapshot: AccessSnapshot,
                    now: datetime, tz: tzinfo) -> Decision:
    """Whether an identified user may pass `gate_id` now: active, in a group for the gate, in schedule."""
    user = snapshot.users.get(user_id)
    if user is None or not user.active:
        return Decision.deny(ReasonCode.USER_INACTIVE, user_id)
    groups = [snapshot.groups[g] for g in user.groups if g in snapshot.groups]
    for_gate = [g for g in groups if gate_id in g.gate_ids]
    if not for_gate:
        return Decision.deny(ReasonCode.NOT_PERMITTED_AT_GATE, user_id)
    if any(g.schedule is None or g.schedule.allows(now, tz) for g in for_gate):
        return Decision(True, ReasonCode.GRANTED, user_id)
    return Decision.deny(ReasonCode.OUTSIDE_SCHEDULE, user_id)
