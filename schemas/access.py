"""Access request and response: `access/request/{gate_id}` and `access/response/{gate_id}`."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from schemas.base import Identifier, Message, StrictModel
from schemas.codes import CredentialType, ReasonCode

MAX_FACE_JPEG_BYTES = 2 * 1024 * 1024
EMBEDDING_DIM = 512

CardId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,64}$")]


class CardCredential(StrictModel):
    """An RFID / NFC card read at the gate (`acc_id` in clear on the wire, hashed at rest)."""

    type: Literal[CredentialType.CARD] = CredentialType.CARD
    acc_id: CardId

    def __repr__(self) -> str:
        # Card ids are secrets: keep them out of logs and tracebacks.
        return "CardCredential(acc_id=<redacted>)"

    __str__ = __repr__


class QrCredential(StrictModel):
    """The text of a QR code read by the gate camera (a signed visitor pass)."""

    type: Literal[CredentialType.QR] = CredentialType.QR
    payload: Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class FaceCredential(StrictModel):
    """A face: either a JPEG frame for the server pipeline or an embedding computed on the gate."""

    type: Literal[CredentialType.FACE] = CredentialType.FACE
    jpeg: Annotated[bytes, Field(min_length=1, max_length=MAX_FACE_JPEG_BYTES)] | None = None
    embedding: Annotated[list[float], Field(min_length=EMBEDDING_DIM, max_length=EMBEDDING_DIM)] | None = None
    model_id: Identifier | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if (self.jpeg is None) == (self.embedding is None):
            raise ValueError("exactly one of jpeg or embedding is required")
        if self.embedding is not None and self.model_id is None:
            raise ValueError("an embedding needs the model_id that computed it")
        return self

    def __repr__(self) -> str:
        return f"FaceCredential(form={'jpeg' if self.jpeg is not None else 'embedding'})"

    __str__ = __repr__


class PinCredential(StrictModel):
    """A PIN typed on the keypad, optionally with a unit code."""

    type: Literal[CredentialType.PIN] = CredentialType.PIN
    pin: Annotated[str, StringConstraints(pattern=r"^[0-9]{4,12}$")]
    unit: Annotated[str, StringConstraints(max_length=32)] | None = None

    def __repr__(self) -> str:
        return "PinCredential(pin=<redacted>)"

    __str__ = __repr__


Credential = Annotated[
    CardCredential | QrCredential | FaceCredential | PinCredential,
    Field(discriminator="type"),
]


class AccessRequest(Message):
    """A gate asks whether to open. Retries reuse `request_id`."""

    request_id: Identifier
    gate_id: Identifier
    credential: Credential


class AccessResponse(Message):
    """The decision for one access request."""

    request_id: Identifier
    gate_id: Identifier
    granted: bool
    reason: ReasonCode
    subject_id: Identifier | None = None
    latency_ms: float = Field(ge=0.0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # A response that says "granted" with a denial reason (or the reverse) must
        # never reach a relay: refuse it at the boundary.
        if self.granted != (self.reason is ReasonCode.GRANTED):
            raise ValueError("granted and reason disagree")
        return self
