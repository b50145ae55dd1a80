"""The envelope every message shares and the strict model base."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION: Literal[1] = 1

# Ids travel in topics and logs: keep them to a safe alphabet so no id can smuggle
# a topic separator, an MQTT wildcard or a control character.
IDENTIFIER_PATTERN = r"[A-Za-z0-9_.:-]{1,64}"
Identifier = Annotated[str, StringConstraints(pattern=f"^{IDENTIFIER_PATTERN}$")]
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


def is_identifier(value: object) -> bool:
    """True for a string that is a valid Passage id (whole string: no trailing newline sneaks by)."""
    return isinstance(value, str) and _IDENTIFIER.fullmatch(value) is not None
ShortText = Annotated[str, StringConstraints(max_length=200)]


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh unique id (32 hex digits)."""
    return uuid.uuid4().hex


class StrictModel(BaseModel):
    """Base of every Passage model: unknown fields are an error, not ignored."""

    # bytes fields are raw bytes in Python and base64 strings in JSON.
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64")


class Message(StrictModel):
    """Fields every message on the bus carries."""

    v: Literal[1] = SCHEMA_VERSION
    ts: AwareDatetime = Field(default_factory=utc_now)
    msg_id: Identifier = Field(default_factory=new_id)
