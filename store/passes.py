"""The `visitor_passes` collection: issue, list per unit, revoke, and the atomic use a gate decision
takes (so two gates racing for the last use admit exactly one)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import pymongo
from pydantic import Field, StringConstraints
from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from schemas.base import Identifier, ShortText, StrictModel, utc_now
from schemas.documents import BsonDatetime, Document
from schemas.gate import OfflinePass
from schemas.visitor import PassStatus, PassView
from store.repository import Doc

# Keeps replies and memory bounded: a unit has at most max_active_passes_per_unit live ones anyway.
MAX_LISTED = 200
UseKey = Annotated[str, StringConstraints(max_length=140)]


class PassUse(StrictModel):
    """One admission: which gate, when, and the (gate, request) it answered, so a retried request
    finds its own use instead of taking another."""

    request: UseKey
    gate_id: Identifier
    at: BsonDatetime


class VisitorPass(Document):
    """A visitor pass as stored. `status` is only ever active or revoked; used-up and expired are
    read off `uses` and `valid_until` (see status_at), so no sweeper has to run."""

    request_id: Identifier
    resident_id: Identifier
    building: ShortText
    unit: ShortText
    visitor_name: ShortText
    visitor_phone: ShortText | None = None
    purpose: ShortText | None = None
    valid_from: BsonDatetime
    valid_until: BsonDatetime
    gate_ids: list[Identifier] = Field(min_length=1, max_length=64)
    max_uses: int = Field(ge=1, le=255)
    uses: int = Field(default=0, ge=0)
    status: PassStatus = PassStatus.ACTIVE
    key_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8}$")]
    pushed: bool = False
    created_at: BsonDatetime = Field(default_factory=utc_now)
    revoked_at: BsonDatetime | None = None
    last_used_at: BsonDatetime | None = None
    last_used_gate: Identifier | None = None
    use_log: list[PassUse] = Field(default=[], max_length=255)

    def status_at(self, now: datetime) -> PassStatus:
        if self.status is PassStatus.REVOKED:
            return PassStatus.REVOKED
        if self.uses >= self.max_uses:
            return PassStatus.USED_UP
        if now >= self.valid_until:
            return PassStatus.EXPIRED
        return PassStatus.ACTIVE

    def view(self, now: datetime) -> PassView:
        """The pass as the resident sees it."""
        return PassView(pass_id=self.id, resident_id=self.resident_id, building=self.building, unit=self.unit,
                        visitor_name=self.visitor_name, purpose=self.purpose, valid_from=self.valid_from,
                        valid_until=self.valid_until, gate_ids=self.gate_ids, max_uses=self.max_uses,
                        uses=self.uses, status=self.status_at(now), created_at=self.created_at,
                        last_used_at=self.last_used_at, last_used_gate=self.last_used_gate)


class UseOutcome(StrEnum):
    ADMITTED = "admitted"  # this call took a use
    REPEATED = "repeated"  # this (gate, request) had taken a use already: admit again, count once
    REVOKED = "revoked"
    USED_UP = "used_up"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class UseResult:
    outcome: UseOutcome
    visitor_pass: VisitorPass | None


def use_key(gate_id: str, request_id: str) -> str:
    return f"{gate_id}/{request_id}"


class VisitorPassStore:
    """Typed access to `visitor_passes`."""

    def __init__(self, db: Database[Doc]) -> None:
        self.passes = db["visitor_passes"]

    def ensure_indexes(self) -> None:
        """Create the indexes the pass flows rely on (idempotent)."""
        # One pass per registration request: a replayed request finds its pass instead of a second one.
        self.passes.create_index([("request_id", pymongo.ASCENDING)], unique=True, name="pass_request_unique")
        self.passes.create_index([("building", pymongo.ASCENDING), ("unit", pymongo.ASCENDING),
                                  ("created_at", pymongo.DESCENDING)], name="pass_unit_created")
        self.passes.create_index([("valid_until", pymongo.ASCENDING)], name="pass_valid_until")

    def insert(self, visitor_pass: VisitorPass) -> bool:
        """Store a new pass; False (nothing written) if its request id already has one."""
        try:
            self.passes.insert_one(visitor_pass.to_mongo())
        except DuplicateKeyError:
            return False
        return True

    def get(self, pass_id: str) -> VisitorPass | None:
        doc = self.passes.find_one({"_id": pass_id})
        return None if doc is None else VisitorPass.from_mongo(doc)

    def by_request(self, request_id: str) -> VisitorPass | None:
        doc = self.passes.find_one({"request_id": request_id})
        return None if doc is None else VisitorPass.from_mongo(doc)

    def list_unit(self, building: str, unit: str, limit: int = MAX_LISTED) -> list[VisitorPass]:
        """The unit's passes, newest first."""
        cursor = (self.passes.find({"building": building, "unit": unit})
                  .sort("created_at", pymongo.DESCENDING).limit(limit))
        return [VisitorPass.from_mongo(d) for d in cursor]

    def count_live(self, building: str, unit: str, now: datetime) -> int:
        """Passes of the unit that could still open a door (not revoked, expired or used up)."""
        return self.passes.count_documents({
            "building": building, "unit": unit, "status": PassStatus.ACTIVE.value, "valid_until": {"$gt": now},
            "$expr": {"$lt": ["$uses", "$max_uses"]}})

    def set_pushed(self, pass_id: str) -> None:
        self.passes.update_one({"_id": pass_id}, {"$set": {"pushed": True}})

    def revoke(self, pass_id: str, now: datetime) -> VisitorPass | None:
        """Revoke the pass (a no-op if it is revoked already); None if there is no such pass."""
        doc = self.passes.find_one_and_update(
            {"_id": pass_id, "status": PassStatus.ACTIVE.value},
            {"$set": {"status": PassStatus.REVOKED.value, "revoked_at": now}},
            return_document=ReturnDocument.AFTER)
        return VisitorPass.from_mongo(doc) if doc is not None else self.get(pass_id)

    def use(self, pass_id: str, gate_id: str, request_id: str, now: datetime) -> UseResult:
        """Take one use of the pass for (gate, request), atomically.

        One conditional update: active, uses below max_uses, and not already used by this request.
        The server applies it to one document at a time, so of N gates racing for the last use
        exactly one matches. Only when it does not match is the pass read again, to say why.
        """
        key = use_key(gate_id, request_id)
        use = PassUse(request=key, gate_id=gate_id, at=now).model_dump()
        doc = self.passes.find_one_and_update(
            {"_id": pass_id, "status": PassStatus.ACTIVE.value, "use_log.request": {"$ne": key},
             "$expr": {"$lt": ["$uses", "$max_uses"]}},
            {"$inc": {"uses": 1}, "$push": {"use_log": use},
             "$set": {"last_used_at": use["at"], "last_used_gate": gate_id}},
            return_document=ReturnDocument.AFTER)
        if doc is not None:
            return UseResult(UseOutcome.ADMITTED, VisitorPass.from_mongo(doc))
        current = self.get(pass_id)
        if current is None:
            return UseResult(UseOutcome.NOT_FOUND, None)
        if any(u.request == key for u in current.use_log):
            return UseResult(UseOutcome.REPEATED, current)
        if current.status is PassStatus.REVOKED:
            return UseResult(UseOutcome.REVOKED, current)
        return UseResult(UseOutcome.USED_UP, current)

    def release(self, pass_id: str, gate_id: str, request_id: str) -> bool:
        """Give back the use (gate, request) took, when the decision went on to deny after all."""
        key = use_key(gate_id, request_id)
        res = self.passes.update_one({"_id": pass_id, "use_log.request": key},
                                     {"$inc": {"uses": -1}, "$pull": {"use_log": {"request": key}}})
        return res.modified_count == 1

    def offline_passes(self, now: datetime) -> dict[str, list[OfflinePass]]:
        """Per gate, the passes that may still open it: for the gates' offline caches (gate_sync)."""
        per_gate: dict[str, list[OfflinePass]] = {}
        query: Doc = {"status": PassStatus.ACTIVE.value, "valid_until": {"$gt": now},
                      "$expr": {"$lt": ["$uses", "$max_uses"]}}
        for doc in self.passes.find(query, {"gate_ids": 1, "valid_until": 1, "uses": 1, "max_uses": 1}):
            offline = OfflinePass(pass_id=doc["_id"], valid_until=doc["valid_until"],
                                  uses_left=int(doc["max_uses"]) - int(doc["uses"]))
            for gate_id in doc["gate_ids"]:
                per_gate.setdefault(gate_id, []).append(offline)
        return per_gate
