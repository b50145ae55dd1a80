"""Repositories: the only code that knows collection names, indexes and document shapes."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import pymongo
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from schemas.codes import CredentialType
from schemas.documents import (
    AccessEventRecord,
    AccessGroup,
    AuditRecord,
    FaceTemplate,
    FingerTemplate,
    Gate,
    StoredCredential,
    User,
)
from store.errors import DuplicateCredential, StoreError
from store.sealing import TemplateSealer, UnsealError

log = logging.getLogger(__name__)

Doc = dict[str, Any]

# Collections whose changes alter access decisions (auth_worker reloads on them).
DECISION_COLLECTIONS = ("users", "credentials", "gates", "access_groups")


class Store:
    """Typed access to Passage's collections in one database."""

    def __init__(self, db: Database[Doc], sealer: TemplateSealer | None = None) -> None:
        self.db = db
        # Face templates are sealed at rest; a store without a sealer refuses to read or write them.
        self._sealer = sealer
        self.users = db["users"]
        self.credentials = db["credentials"]
        self.gates = db["gates"]
        self.access_groups = db["access_groups"]
        self.access_events = db["access_events"]
        self.audit = db["audit"]
        self.face_templates = db["face_templates"]
        self.finger_templates = db["finger_templates"]

    def ensure_indexes(self) -> None:
        """Create the indexes the data model relies on (idempotent)."""
        self.credentials.create_index(
            [("kind", pymongo.ASCENDING), ("lookup_key", pymongo.ASCENDING)],
            unique=True, name="credential_lookup_unique")
        self.credentials.create_index([("user_id", pymongo.ASCENDING)], name="credential_owner")
        self.face_templates.create_index([("user_id", pymongo.ASCENDING)], name="face_owner")
        self.audit.create_index([("ts", pymongo.DESCENDING)], name="audit_time")
        self.audit.create_index([("target", pymongo.ASCENDING), ("ts", pymongo.DESCENDING)], name="audit_target")
        self.audit.create_index([("code", pymongo.ASCENDING), ("ts", pymongo.DESCENDING)], name="audit_code")
        self.users.create_index([("building", pymongo.ASCENDING), ("unit", pymongo.ASCENDING)],
                                name="user_unit")
        self.access_events.create_index([("ts", pymongo.DESCENDING)], name="event_time")
        self.access_events.create_index([("gate_id", pymongo.ASCENDING), ("ts", pymongo.DESCENDING)],
                                        name="event_gate_time")
        self.access_events.create_index([("subject_id", pymongo.ASCENDING), ("ts", pymongo.DESCENDING)],
                                        name="event_subject_time")

    # users -------------------------------------------------------------------------------
    def insert_user(self, user: User) -> bool:
        """Create `user`; False (and nothing written) if the id is taken."""
        try:
            self.users.insert_one(user.to_mongo())
        except DuplicateKeyError:
            return False
        return True

    def put_user(self, user: User) -> None:
        self.users.replace_one({"_id": user.id}, user.to_mongo(), upsert=True)

    def get_user(self, user_id: str) -> User | None:
        doc = self.users.find_one({"_id": user_id})
        return None if doc is None else User.from_mongo(doc)

    def set_user_active(self, user_id: str, active: bool) -> bool:
        return self.users.update_one({"_id": user_id}, {"$set": {"active": active}}).matched_count == 1

    def iter_users(self) -> Iterator[User]:
        for doc in self.users.find():
            yield User.from_mongo(doc)

    def query_users(self, *, building: str | None = None, unit: str | None = None, text: str | None = None,
                    active_only: bool = False, limit: int = 100, offset: int = 0) -> tuple[list[User], int]:
        """Users matching building / unit exactly and `text` as an id or name prefix (any case),
        ordered by building, unit, id; returns a page and the total count."""
        query: Doc = {}
        if building:
            query["building"] = building
        if unit:
            query["unit"] = unit
        if active_only:
            query["active"] = True
        if text:
            prefix = {"$regex": "^" + re.escape(text), "$options": "i"}
            query["$or"] = [{"_id": prefix}, {"name": prefix}]
        total = self.users.count_documents(query)
        cursor = (self.users.find(query).sort([("building", 1), ("unit", 1), ("_id", 1)])
                  .skip(offset).limit(limit))
        return [User.from_mongo(d) for d in cursor], total

    def credential_counts(self, user_ids: list[str]) -> dict[str, Counter[str]]:
        """Per user: how many credentials of each kind (card, pin, face, finger) they hold."""
        counts: dict[str, Counter[str]] = {uid: Counter() for uid in user_ids}
        for doc in self.credentials.find({"user_id": {"$in": user_ids}}, {"user_id": 1, "kind": 1}):
            counts[doc["user_id"]][doc["kind"]] += 1
        for collection, kind in ((self.face_templates, "face"), (self.finger_templates, "finger")):
            for doc in collection.find({"user_id": {"$in": user_ids}}, {"user_id": 1}):
                counts[doc["user_id"]][kind] += 1
        return counts

    # credentials -------------------------------------------------------------------------
    def add_credential(self, cred: StoredCredential) -> None:
        """Store a credential; raises DuplicateCredential if its lookup key is taken."""
        try:
            self.credentials.insert_one(cred.to_mongo())
        except DuplicateKeyError:
            owner = self.credentials.find_one({"kind": cred.kind.value, "lookup_key": cred.lookup_key},
                                              {"user_id": 1})
            raise DuplicateCredential(cred.kind.value, owner["user_id"] if owner else "?") from None

    def find_credential(self, kind: CredentialType, lookup_key: str) -> StoredCredential | None:
        doc = self.credentials.find_one({"kind": kind.value, "lookup_key": lookup_key})
        return None if doc is None else StoredCredential.from_mongo(doc)

    def find_credential_any(self, kind: CredentialType, lookup_keys: list[str]) -> StoredCredential | None:
        """The credential stored under any of `lookup_keys` (the same secret hashed under the current
        and the previous site keys)."""
        doc = self.credentials.find_one({"kind": kind.value, "lookup_key": {"$in": lookup_keys}})
        return None if doc is None else StoredCredential.from_mongo(doc)

    def set_credential_active(self, credential_id: str, active: bool) -> bool:
        res = self.credentials.update_one({"_id": credential_id}, {"$set": {"active": active}})
        return res.matched_count == 1

    def iter_credentials(self, kinds: Iterable[CredentialType] | None = None) -> Iterator[StoredCredential]:
        query: Doc = {} if kinds is None else {"kind": {"$in": [k.value for k in kinds]}}
        for doc in self.credentials.find(query):
            yield StoredCredential.from_mongo(doc)

    # face templates ----------------------------------------------------------------------
    def add_face_template(self, template: FaceTemplate) -> None:
        self.face_templates.insert_one(self._sealed(template))

    def add_face_templates(self, templates: list[FaceTemplate]) -> None:
        if templates:
            self.face_templates.insert_many([self._sealed(t) for t in templates], ordered=False)

    def _sealed(self, template: FaceTemplate) -> Doc:
        doc = template.to_mongo()
        doc["embedding"] = self._need_sealer().seal(template.embedding, template.id, template.user_id,
                                                    template.model_id)
        doc["sealed"] = self._need_sealer().key_id
        return doc

    def face_template_from_doc(self, doc: Doc) -> FaceTemplate:
        """Open a stored template; raises UnsealError if it was altered, moved or never sealed."""
        if not doc.get("sealed"):
            raise UnsealError(f"face template {doc.get('_id')} is not sealed")
        data = dict(doc)
        data.pop("sealed")
        data["embedding"] = self._need_sealer().open(bytes(doc["embedding"]), str(doc["sealed"]), str(doc["_id"]),
                                                     str(doc["user_id"]), str(doc["model_id"]))
        return FaceTemplate.from_mongo(data)

    def reseal_face_templates(self) -> tuple[int, int]:
        """Re-seal every template not under the current key (after a key rotation).
        Returns (re-sealed, unreadable)."""
        current = self._need_sealer().key_id
        done = failed = 0
        for doc in self.face_templates.find({"sealed": {"$ne": current}}):
            try:
                template = self.face_template_from_doc(doc)
            except UnsealError as exc:
                log.error("face template %s not re-sealed: %s", doc.get("_id"), exc)
                failed += 1
                continue
            self.face_templates.replace_one({"_id": template.id}, self._sealed(template))
            done += 1
        return done, failed

    def credential_key_ids(self) -> dict[str, int]:
        """How many credentials are hashed under each key id (old ones migrate when presented)."""
        counts: Counter[str] = Counter()
        for doc in self.credentials.find({}, {"key_id": 1}):
            counts[str(doc.get("key_id"))] += 1
        return dict(counts)

    def rehash_credential(self, credential_id: str, lookup_key: str, key_id: str) -> bool:
        """Move a credential onto the current key (done when its clear value was just presented)."""
        try:
            res = self.credentials.update_one({"_id": credential_id},
                                              {"$set": {"lookup_key": lookup_key, "key_id": key_id}})
        except DuplicateKeyError:
            return False
        return res.modified_count == 1

    def _need_sealer(self) -> TemplateSealer:
        if self._sealer is None:
            raise StoreError("this store was opened without the template key: face templates unavailable")
        return self._sealer

    def remove_face_template(self, template_id: str) -> bool:
        return self.face_templates.delete_one({"_id": template_id}).deleted_count == 1

    def iter_face_templates(self, model_id: str | None = None) -> Iterator[FaceTemplate]:
        query: Doc = {} if model_id is None else {"model_id": model_id}
        for doc in self.face_templates.find(query):
            try:
                yield self.face_template_from_doc(doc)
            except UnsealError as exc:
                # One bad record must not take every face offline; it is skipped and reported.
                log.error("face template skipped: %s", exc)

    def count_face_templates(self, user_id: str) -> int:
        return self.face_templates.count_documents({"user_id": user_id})

    # finger templates --------------------------------------------------------------------
    def add_finger_template(self, template: FingerTemplate) -> None:
        self.finger_templates.insert_one(template.to_mongo())

    def iter_finger_templates(self, matcher_id: str) -> Iterator[FingerTemplate]:
        for doc in self.finger_templates.find({"matcher_id": matcher_id}):
            yield FingerTemplate.from_mongo(doc)

    def count_finger_templates(self, user_id: str) -> int:
        return self.finger_templates.count_documents({"user_id": user_id})

    # gates and access groups -------------------------------------------------------------
    def put_gate(self, gate: Gate) -> None:
        self.gates.replace_one({"_id": gate.id}, gate.to_mongo(), upsert=True)

    def get_gate(self, gate_id: str) -> Gate | None:
        doc = self.gates.find_one({"_id": gate_id})
        return None if doc is None else Gate.from_mongo(doc)

    def iter_gates(self) -> Iterator[Gate]:
        for doc in self.gates.find():
            yield Gate.from_mongo(doc)

    def put_access_group(self, group: AccessGroup) -> None:
        self.access_groups.replace_one({"_id": group.id}, group.to_mongo(), upsert=True)

    def iter_access_groups(self) -> Iterator[AccessGroup]:
        for doc in self.access_groups.find():
            yield AccessGroup.from_mongo(doc)

    def delete_user(self, user_id: str) -> bool:
        """Remove a user with every credential and face template they hold."""
        self.credentials.delete_many({"user_id": user_id})
        self.face_templates.delete_many({"user_id": user_id})
        self.finger_templates.delete_many({"user_id": user_id})
        return self.users.delete_one({"_id": user_id}).deleted_count == 1

    def remove_credentials_of(self, user_id: str, kind: CredentialType, keep_id: str | None = None) -> int:
        """Delete the user's credentials of `kind`, except `keep_id`; returns how many went."""
        query: Doc = {"user_id": user_id, "kind": kind.value}
        if keep_id is not None:
            query["_id"] = {"$ne": keep_id}
        return self.credentials.delete_many(query).deleted_count

    def remove_credential(self, kind: CredentialType, lookup_key: str, user_id: str) -> bool:
        res = self.credentials.delete_one({"kind": kind.value, "lookup_key": lookup_key, "user_id": user_id})
        return res.deleted_count == 1

    # audit (append-only; id = command id, so a replayed command finds its first answer) --
    def append_audit(self, record: AuditRecord) -> bool:
        """Store the record; False if this command id was audited already."""
        try:
            self.audit.insert_one(record.to_mongo())
        except DuplicateKeyError:
            return False
        return True

    def get_audit(self, command_id: str) -> AuditRecord | None:
        doc = self.audit.find_one({"_id": command_id})
        return None if doc is None else AuditRecord.from_mongo(doc)

    def query_audit(self, *, target: str | None = None, code: str | None = None,
                    since: datetime | None = None, until: datetime | None = None,
                    limit: int = 1000) -> list[AuditRecord]:
        """Audit records by user, by event code and by time range, newest first."""
        query: Doc = {}
        if target is not None:
            query["$or"] = [{"target": target}, {"matched_user_id": target}]
        if code is not None:
            query["code"] = code
        if since is not None or until is not None:
            query["ts"] = {k: v for k, v in (("$gte", since), ("$lt", until)) if v is not None}
        cursor = self.audit.find(query).sort("ts", pymongo.DESCENDING).limit(limit)
        return [AuditRecord.from_mongo(d) for d in cursor]

    # access events (append-only) ---------------------------------------------------------
    def append_access_events(self, events: list[AccessEventRecord]) -> int:
        """Insert events; ones already stored (same event id) are skipped. Returns how many were new."""
        if not events:
            return 0
        try:
            res = self.access_events.insert_many([e.to_mongo() for e in events], ordered=False)
            return len(res.inserted_ids)
        except BulkWriteError as exc:
            details = exc.details
            others = [e for e in details.get("writeErrors", []) if e.get("code") != 11000]
            if others:
                raise StoreError(f"{len(others)} access events not stored: {others[0].get('errmsg')}") from exc
            return int(details.get("nInserted", 0))

    def access_events_for_gate(self, gate_id: str, since: datetime | None = None,
                               limit: int = 1000) -> list[AccessEventRecord]:
        query: Doc = {"gate_id": gate_id}
        if since is not None:
            query["ts"] = {"$gte": since}
        cursor = self.access_events.find(query).sort("ts", pymongo.DESCENDING).limit(limit)
        return [AccessEventRecord.from_mongo(d) for d in cursor]

    def count_access_events(self, query: Doc | None = None) -> int:
        return self.access_events.count_documents(query or {})

    def ping(self) -> None:
        """Raise StoreError if the server does not answer."""
        try:
            self.db.client.admin.command("ping")
        except PyMongoError as exc:
            raise StoreError(f"store unreachable: {exc}") from exc
