"""Records on the `events/{kind}/...` audit stream."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field, StringConstraints

from schemas.base import Identifier, Message
from schemas.codes import CredentialType, EventCode, ReasonCode
from schemas.gate import GateState


class AccessEvent(Message):
    """One access decision, as operators see it (never the credential itself)."""

    code: EventCode
    request_id: Identifier
    gate_id: Identifier
    credential_type: CredentialType | None
    granted: bool
    reason: ReasonCode
    subject_id: Identifier | None = None
    latency_ms: float = Field(ge=0.0)
    offline: bool = False


class DeviceEvent(Message):
    """A gate came online or went offline, and when it was last heard from live."""

    code: EventCode
    gate_id: Identifier
    state: GateState
    last_seen: AwareDatetime | None = None


class AlertEvent(Message):
    """Something an operator should look at."""

    code: EventCode
    gate_id: Identifier | None = None
    detail: Annotated[str, StringConstraints(max_length=1000)]


class EnrollEvent(Message):
    """An admin command's outcome on `events/enroll/{user_id}` (duplicates included)."""

    code: EventCode
    command_id: Identifier
    admin_id: Identifier
    action: Annotated[str, StringConstraints(max_length=64)]
    target: Identifier | None = None
    ok: bool
    sub_code: Annotated[str, StringConstraints(max_length=16)] | None = None
    matched_user_id: Identifier | None = None


class VisitorEvent(Message):
    """A visitor pass was issued, used or revoked, on `events/visitor/{pass_id}`; tells the resident."""

    code: EventCode
    pass_id: Identifier
    resident_id: Identifier
    visitor_name: Annotated[str, StringConstraints(max_length=200)]
    gate_id: Identifier | None = None
    uses: int = Field(default=0, ge=0)
    max_uses: int = Field(default=1, ge=1)


class NotificationEvent(Message):
    """What the local notifier channel publishes on `events/notify/{recipient_id}`."""

    code: EventCode = EventCode.NOTIFICATION
    recipient_id: Identifier
    title: Annotated[str, StringConstraints(max_length=200)]
    body: Annotated[str, StringConstraints(max_length=2000)]
    data: dict[str, Annotated[str, StringConstraints(max_length=2048)]] = {}
