"""The HTTP contract of the bridge: request bodies, responses and error bodies."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)

from schemas.base import Identifier, ShortText
from schemas.visitor import FcmToken, PassView, Phone, RegisterPass
from visitor_api.errors import ApiErrorCode


def _text_only(value: object) -> object:
    # Lax parsing would read 0 as 1970-01-01: a number is a client bug, not a date.
    if not isinstance(value, str):
        raise ValueError("give an ISO 8601 date-time with a UTC offset, as a string")
    return value


WireDatetime = Annotated[AwareDatetime, BeforeValidator(_text_only)]


class ApiModel(BaseModel):
    """Request bodies: unknown fields are errors (numbers are StrictInt: "1" is not 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenRequest(ApiModel):
    """Log-in: the OAuth2 password grant as a form, or the same fields as JSON."""

    username: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    grant_type: Literal["password"] | None = None
    scope: Annotated[str, StringConstraints(max_length=200)] | None = None

    def __repr__(self) -> str:
        return f"TokenRequest(username={self.username!r})"


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the token expires")


class VisitorCreate(ApiModel):
    """A visitor pass to issue for the caller's unit (the resident comes from the credentials)."""

    visitor_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    visitor_phone: Phone | None = None
    purpose: ShortText | None = None
    valid_from: WireDatetime
    valid_until: WireDatetime
    max_uses: StrictInt = Field(default=1, ge=1, le=100, description="entries the pass allows")
    gate_ids: list[Identifier] = Field(default=[], max_length=50,
                                       description="gates the pass opens; empty: every gate the resident may use")
    fcm_token: FcmToken | None = Field(default=None, description="the visitor's device token for the push")

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self

    def to_action(self) -> RegisterPass:
        return RegisterPass(**self.model_dump())

    def __repr__(self) -> str:
        return f"VisitorCreate(valid_from={self.valid_from}, valid_until={self.valid_until})"


class PassCreated(BaseModel):
    """The issued pass and its QR code (PNG as base64, SVG as text) unless it went by push only."""

    model_config = ConfigDict(populate_by_name=True)

    pass_: PassView = Field(alias="pass")
    qr_payload: str | None = Field(default=None, description="the signed token the QR code encodes")
    qr_png_base64: str | None = None
    qr_svg: str | None = None
    pushed: bool = Field(description="true when the QR code was sent to the visitor's phone by push")
    push_problem: str | None = Field(default=None, description="why a requested push did not happen, to show the "
                                                               "resident (the QR code can still be shared)")


class PassList(BaseModel):
    passes: list[PassView]


class ErrorBody(BaseModel):
    """Every error answer."""

    code: ApiErrorCode
    message: str


class FieldError(BaseModel):
    loc: list[str | int]
    message: str


class ValidationErrorBody(ErrorBody):
    """A request that failed validation: where and why (never the submitted values)."""

    errors: list[FieldError] = []
