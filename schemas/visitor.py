"""Visitor pass requests on `visitor/register` and replies on `visitor/reply/{request_id}`."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from schemas.base import Identifier, Message, ShortText


class VisitorRegister(Message):
    """A resident asks for a visitor pass."""

    request_id: Identifier
    resident_id: Identifier
    visitor_name: ShortText
    visitor_phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 -]{4,20}$")] | None = None
    purpose: ShortText | None = None
    valid_from: AwareDatetime
    valid_until: AwareDatetime
    max_uses: int = Field(default=1, ge=1, le=100)
    fcm_token: Annotated[str, StringConstraints(max_length=4096)] | None = None

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class VisitorReply(Message):
    """The issued pass, or why none was issued."""

    request_id: Identifier
    ok: bool
    pass_id: Identifier | None = None
    qr_payload: Annotated[str, StringConstraints(max_length=2048)] | None = None
    error: ShortText | None = None
