"""Documents kept in the store. `id` is stored as MongoDB's `_id`."""

from __future__ import annotations

from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field, StringConstraints, model_validator

from schemas.base import Identifier, ShortText, StrictModel, utc_now
from schemas.codes import CredentialType, ReasonCode

KeyHash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def _to_millis(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


# BSON dates keep milliseconds: truncate on the way in so a stored document reads back equal.
BsonDatetime = Annotated[AwareDatetime, AfterValidator(_to_millis)]


class UserKind(StrEnum):
    RESIDENT = "resident"
    STAFF = "staff"
    VISITOR = "visitor"


class Document(StrictModel):
    """A stored document; converts to and from MongoDB's `_id` convention."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, ser_json_bytes="base64",
                              val_json_bytes="base64")
    id: Identifier

    def to_mongo(self) -> dict[str, Any]:
        doc = self.model_dump(mode="python", exclude={"id"})
        doc["_id"] = self.id
        return doc

    @classmethod
    def from_mongo(cls, doc: dict[str, Any]) -> Self:
        data = dict(doc)
        data["id"] = data.pop("_id")
        return cls.model_validate(data)


class User(Document):
    name: ShortText
    kind: UserKind = UserKind.RESIDENT
    building: ShortText | None = None
    unit: ShortText | None = None
    phone: ShortText | None = None
    email: Annotated[str, StringConstraints(max_length=320)] | None = None
    # The resident app's FCM registration token (latest device): a contact address, never logged.
    fcm_token: Annotated[str, StringConstraints(max_length=4096)] | None = None
    groups: list[Identifier] = []
    active: bool = True
    created_at: BsonDatetime = Field(default_factory=utc_now)


class StoredCredential(Document):
    """A credential a user holds; `lookup_key` is a keyed hash, never the secret itself."""

    kind: CredentialType
    user_id: Identifier
    lookup_key: KeyHash
    key_id: Identifier
    active: bool = True
    created_at: BsonDatetime = Field(default_factory=utc_now)


class FaceTemplate(Document):
    """One enrolled face: a normalised float32 embedding (little-endian bytes) of a given model."""

    user_id: Identifier
    model_id: Identifier
    embedding: Annotated[bytes, Field(min_length=2048, max_length=2048)]
    face_px: int = Field(ge=0)
    det_score: float = Field(ge=0, le=1.5)
    created_at: BsonDatetime = Field(default_factory=utc_now)


class FingerTemplate(Document):
    """One enrolled fingerprint, in the format of the matcher that extracted it."""

    user_id: Identifier
    matcher_id: Identifier
    template: Annotated[bytes, Field(min_length=1, max_length=8192)]
    created_at: BsonDatetime = Field(default_factory=utc_now)


class Gate(Document):
    name: ShortText
    building: ShortText | None = None
    active: bool = True


# "HH:MM", zero-padded so that string order is time order; "24:00" ends a day.
ClockTime = Annotated[str, StringConstraints(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]


class TimeWindow(StrictModel):
    """Days of the week (0 = Monday) and a local time range `[start, end)`."""

    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(min_length=1)
    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start (split windows that cross midnight)")
        return self


class WeeklySchedule(StrictModel):
    """When an access group applies, in the site's timezone."""

    windows: list[TimeWindow] = Field(min_length=1)

    def allows(self, moment: datetime, tz: tzinfo) -> bool:
        """True when `moment` falls in one of the windows, read in `tz`."""
        local = moment.astimezone(tz)
        day, clock = local.weekday(), local.strftime("%H:%M")
        return any(day in w.days and w.start <= clock < w.end for w in self.windows)


class AccessGroup(Document):
    """Gates a group of users may open, and when. No schedule means always."""

    name: ShortText
    gate_ids: list[Identifier] = []
    schedule: WeeklySchedule | None = None


class AccessEventRecord(Document):
    """Append-only record of one decision (`id` is the event id: stored exactly once)."""

    ts: BsonDatetime
    request_id: Identifier
    gate_id: Identifier
    credential_type: CredentialType | None
    granted: bool
    reason: ReasonCode
    subject_id: Identifier | None = None
    latency_ms: float
    offline: bool = False


class AuditRecord(Document):
    """Append-only: one admin action or refused attempt (`id` is the command id)."""

    ts: BsonDatetime = Field(default_factory=utc_now)
    actor: Identifier
    action: ShortText
    target: Identifier | None = None
    ok: bool
    code: ShortText
    sub_code: ShortText | None = None
    matched_user_id: Identifier | None = None
    detail: Annotated[str, StringConstraints(max_length=1000)] | None = None
    # The reply replayed for a repeated command id; a CSV import report can be large.
    reply_json: Annotated[str, StringConstraints(max_length=4 * 1024 * 1024)]
