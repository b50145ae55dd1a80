"""Carrying out admin commands against the store, with the duplicate-credential check.

Blocking (pymongo, face inference): the service runs it on one worker thread, so commands are
applied one at a time and two enrollments of the same face cannot both pass the check.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from admin_worker.errors import (
    CommandRefused,
    CredentialNotFound,
    DuplicateCredential,
    NoMatcher,
    PinUnavailable,
    TooManyTemplates,
    UnusableFingerprint,
    UnusablePhoto,
    UserExists,
    UserNotFound,
    WeakPin,
)
from admin_worker.fingerprint import FingerprintMatcher, UnusableSample
from config.settings import EnrollSettings, FaceSettings
from face_engine.errors import FaceError
from face_engine.index import FaceIndex
from face_engine.pipeline import FaceEngine
from face_engine.templates import to_template
from schemas.admin import (
    AddCard,
    AddFace,
    AddFinger,
    AdminAction,
    CreateUser,
    DeactivateUser,
    DefineAccessGroup,
    DefineGate,
    DeleteUser,
    RemoveCard,
    SetPin,
    UpdateUser,
)
from schemas.base import new_id
from schemas.codes import CredentialType
from schemas.documents import AccessGroup, FingerTemplate, Gate, StoredCredential, User
from store import errors as store_errors
from store.keyed_hash import KeyedHasher, pin_secret
from store.repository import Store


class CommandProcessor:
    """Applies one validated admin action; raises a CommandRefused subclass when it must not."""

    def __init__(self, store: Store, hasher: KeyedHasher, face: FaceSettings, enroll: EnrollSettings,
                 engine: FaceEngine | None, faces: Callable[[], FaceIndex],
                 finger_matcher: FingerprintMatcher | None = None) -> None:
        self._store = store
        self._hasher = hasher
        self._engine = engine
        self._faces = faces
        self._enroll = enroll
        self._fingers = finger_matcher
        self._duplicate_threshold = face.threshold(face.duplicate_level)

    def apply(self, action: AdminAction) -> str | None:
        """Carry out `action`; returns the id of the user (or gate/group) it concerned."""
        match action:
            case CreateUser():
                if self._store.get_user(action.user_id) is not None:
                    raise UserExists(f"user {action.user_id} exists")
                self._store.put_user(User(id=action.user_id, name=action.name, kind=action.kind,
                                          building=action.building, unit=action.unit, phone=action.phone,
                                          groups=action.groups))
                return action.user_id
            case UpdateUser():
                user = self._user(action.user_id)
                changes = action.model_dump(exclude={"action", "user_id"}, exclude_none=True)
                self._store.put_user(user.model_copy(update=changes))
                return action.user_id
            case DeactivateUser():
                self._user(action.user_id)
                self._store.set_user_active(action.user_id, False)
                return action.user_id
            case DeleteUser():
                if not self._store.delete_user(action.user_id):
                    raise UserNotFound(f"no user {action.user_id}")
                self._faces().remove_user(action.user_id)
                return action.user_id
            case AddCard():
                return self._add_card(action)
            case RemoveCard():
                keys = [k for _, k in self._hasher.lookup_keys(CredentialType.CARD, action.acc_id)]
                if not any(self._store.remove_credential(CredentialType.CARD, k, action.user_id) for k in keys):
                    raise CredentialNotFound(f"user {action.user_id} holds no such card")
                return action.user_id
            case AddFace():
                return self._add_face(action)
            case AddFinger():
                return self._add_finger(action)
            case SetPin():
                return self._set_pin(action)
            case DefineGate():
                self._store.put_gate(Gate(id=action.gate_id, name=action.name, building=action.building))
                return action.gate_id
            case DefineAccessGroup():
                self._store.put_access_group(AccessGroup(id=action.group_id, name=action.name,
                                                         gate_ids=action.gate_ids, schedule=action.schedule))
                return action.group_id
        raise CommandRefused(f"{action.action} is not a store change")  # queries and imports go elsewhere

    def _user(self, user_id: str) -> User:
        user = self._store.get_user(user_id)
        if user is None:
            raise UserNotFound(f"no user {user_id}")
        return user

    def _holder(self, kind: CredentialType, secret: str) -> StoredCredential | None:
        """Who holds this card / PIN, whichever site key (current or previous) it was hashed under."""
        return self._store.find_credential_any(kind, [k for _, k in self._hasher.lookup_keys(kind, secret)])

    def _owner_name(self, user_id: str) -> str | None:
        owner = self._store.get_user(user_id)
        return owner.name if owner else None

    def _add_card(self, action: AddCard) -> str:
        self._user(action.user_id)
        key = self._hasher.lookup_key(CredentialType.CARD, action.acc_id)
        existing = self._holder(CredentialType.CARD, action.acc_id)
        if existing is not None:
            if existing.user_id == action.user_id:
                return action.user_id  # same user re-enrolling the same card: not a duplicate
            raise DuplicateCredential("CARD", existing.user_id, self._owner_name(existing.user_id))
        try:
            self._store.add_credential(StoredCredential(id=f"card-{new_id()[:16]}", kind=CredentialType.CARD,
                                                        user_id=action.user_id, lookup_key=key,
                                                        key_id=self._hasher.key_id))
        except store_errors.DuplicateCredential as exc:  # lost a race with another worker
            raise DuplicateCredential("CARD", exc.owner_id, self._owner_name(exc.owner_id)) from None
        return action.user_id

    def _set_pin(self, action: SetPin) -> str:
        user = self._user(action.user_id)
        if _weak(action.pin):
            raise WeakPin("PIN is a repeated digit or a run (like 1234): choose another")
        key = self._hasher.lookup_key(CredentialType.PIN, pin_secret(user.unit, action.pin))
        existing = self._holder(CredentialType.PIN, pin_secret(user.unit, action.pin))
        if existing is not None and existing.user_id != action.user_id:
            raise PinUnavailable("another person in this unit uses that PIN: choose another")
        if existing is None:
            # The new PIN is stored before the old one goes, so a failure never leaves the user without one.
            new_id_ = f"pin-{new_id()[:16]}"
            try:
                self._store.add_credential(StoredCredential(id=new_id_, kind=CredentialType.PIN,
                                                            user_id=action.user_id, lookup_key=key,
                                                            key_id=self._hasher.key_id))
            except store_errors.DuplicateCredential:
                raise PinUnavailable("another person in this unit uses that PIN: choose another") from None
            self._store.remove_credentials_of(action.user_id, CredentialType.PIN, keep_id=new_id_)
        return action.user_id

    def _add_face(self, action: AddFace) -> str:
        self._user(action.user_id)
        if self._engine is None:
            raise UnusablePhoto("face models are not available on this worker")
        limit = self._enroll.max_faces_per_user
        if self._store.count_face_templates(action.user_id) >= limit:
            raise TooManyTemplates(f"user {action.user_id} already has {limit} faces")
        try:
            result = self._engine.embed_photo(action.photo)
        except FaceError as exc:
            raise UnusablePhoto(f"{exc.reason}: {exc}") from None
        if self._enroll.face_duplicate_check:
            # 1:N against every other user at the strict level; the first hit stops the scan.
            hit = self._faces().first_above(result.embedding, self._duplicate_threshold,
                                            exclude_user=action.user_id)
            if hit is not None:
                raise DuplicateCredential("FACE", hit.user_id, self._owner_name(hit.user_id))
        template = to_template(action.user_id, self._engine.model_id, result)
        self._store.add_face_template(template)
        self._faces().add(template.id, action.user_id, result.embedding)
        return action.user_id

    def _add_finger(self, action: AddFinger) -> str:
        self._user(action.user_id)
        matcher = self._fingers
        if matcher is None:
            raise NoMatcher("no fingerprint matcher is installed")
        limit = self._enroll.max_fingers_per_user
        if self._store.count_finger_templates(action.user_id) >= limit:
            raise TooManyTemplates(f"user {action.user_id} already has {limit} fingerprints")
        try:
            template = matcher.extract(action.sample)
        except UnusableSample as exc:
            raise UnusableFingerprint(str(exc)) from None
        if self._enroll.finger_duplicate_check:
            # 1:N over every other user's templates; the first match stops the scan.
            for other in self._store.iter_finger_templates(matcher.matcher_id):
                if other.user_id != action.user_id and matcher.score(template, other.template) >= \
                        matcher.duplicate_threshold:
                    raise DuplicateCredential("FINGER", other.user_id, self._owner_name(other.user_id))
        self._store.add_finger_template(FingerTemplate(id=f"finger-{new_id()[:16]}", user_id=action.user_id,
                                                       matcher_id=matcher.matcher_id, template=template))
        return action.user_id


def _weak(pin: str) -> bool:
    """Repeated digits (0000) or a run up or down (1234, 9876): the first PINs anyone tries."""
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(pin)}
    return len(steps) == 1 and steps <= {0, 1, 9}
