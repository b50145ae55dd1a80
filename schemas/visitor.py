"""Visitor pass requests on `visitor/register` and replies on `visitor/reply/{request_id}`.

The bridge authenticates the resident and forwards one of three actions; visitor_worker decides.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from schemas.base import Identifier, Message, ShortText, StrictModel

Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 -]{4,20}$")]
FcmToken = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class RegisterPass(StrictModel):
    """Issue a pass for a visitor of the resident's unit."""

    action: Literal["register"] = "register"
    visitor_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    visitor_phone: Phone | None = None
    purpose: ShortText | None = None
    valid_from: AwareDatetime
    valid_until: AwareDatetime
    max_uses: int = Field(default=1, ge=1, le=100)
    # Gates the pass opens; empty: every gate the resident may use.
    gate_ids: list[Identifier] = Field(default=[], max_length=50)
    # The visitor's phone for the push; without it the QR goes back to the resident's app.
    fcm_token: FcmToken | None = None

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self

    def __repr__(self) -> str:
        return f"RegisterPass(valid_from={self.valid_from}, valid_until={self.valid_until}, max_uses={self.max_uses})"


class ListPasses(StrictModel):
    """The passes of the resident's unit."""

    action: Literal["list"] = "list"
    include_inactive: bool = False


class RevokePass(StrictModel):
    """Revoke a pass of the resident's unit."""

    action: Literal["revoke"] = "revoke"
    pass_id: Identifier


VisitorAction = Annotated[RegisterPass | ListPasses | RevokePass, Field(discriminator="action")]


class VisitorRequest(Message):
    """One resident request, forwarded by the bridge on `visitor/register`."""

    request_id: Identifier
    resident_id: Identifier
    action: VisitorAction


class PassStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    USED_UP = "used_up"
    EXPIRED = "expired"


class VisitorErrorCode(StrEnum):
    """Why visitor_worker refused a request."""

    UNKNOWN_RESIDENT = "UNKNOWN_RESIDENT"
    RESIDENT_INACTIVE = "RESIDENT_INACTIVE"
    WINDOW_TOO_LONG = "WINDOW_TOO_LONG"
    WINDOW_IN_PAST = "WINDOW_IN_PAST"
    TOO_MANY_PASSES = "TOO_MANY_PASSES"
    TOO_MANY_USES = "TOO_MANY_USES"
    GATE_NOT_PERMITTED = "GATE_NOT_PERMITTED"
    PASS_NOT_FOUND = "PASS_NOT_FOUND"
    INVALID_REQUEST = "INVALID_REQUEST"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class PassView(StrictModel):
    """A pass as the resident sees it (never the signing key, never other units' passes)."""

    pass_id: Identifier
    resident_id: Identifier
    building: ShortText | None = None
    unit: ShortText | None = None
    visitor_name: ShortText
    purpose: ShortText | None = None
    valid_from: AwareDatetime
    valid_until: AwareDatetime
    gate_ids: list[Identifier] = []
    max_uses: int
    uses: int = 0
    status: PassStatus
    created_at: AwareDatetime
    last_used_at: AwareDatetime | None = None
    last_used_gate: Identifier | None = None


class VisitorReply(Message):
    """The outcome: the issued pass and its QR, the list, or a typed refusal."""

    request_id: Identifier
    ok: bool
    code: VisitorErrorCode | None = None
    error: Annotated[str, StringConstraints(max_length=1000)] | None = None
    issued: PassView | None = None
    passes: list[PassView] = []
    # The signed token the QR encodes, and the QR itself (PNG bytes, SVG text).
    qr_payload: Annotated[str, StringConstraints(max_length=2048)] | None = None
    qr_png: Annotated[bytes, Field(max_length=64 * 1024)] | None = None
    qr_svg: Annotated[str, StringConstraints(max_length=64 * 1024)] | None = None
    # True when the QR went to the visitor's phone by push.
    pushed: bool = False
