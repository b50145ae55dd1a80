"""Encode models to payloads and decode payloads to models, with typed errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from schemas.base import is_identifier
from schemas.errors import InvalidPayload, PayloadTooLarge
from schemas.topics import MAX_DEFAULT_BYTES

M = TypeVar("M", bound=BaseModel)


def encode(message: BaseModel) -> bytes:
    """A model as compact JSON bytes."""
    return message.model_dump_json(exclude_none=True).encode()


def decode(model: type[M], payload: bytes, limit: int = MAX_DEFAULT_BYTES) -> M:
    """Parse `payload` as `model`; raises PayloadTooLarge or InvalidPayload."""
    if len(payload) > limit:
        raise PayloadTooLarge(len(payload), limit)
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        # Only locations and messages: the input values may hold card ids or PINs.
        errors = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()]
        raise InvalidPayload(model.__name__, errors) from None


def decode_from_gate(model: type[M], topic: str, payload: bytes, gate_of: Callable[[str], str],
                     limit: int = MAX_DEFAULT_BYTES) -> M:
    """A gate's message on a topic that names the gate (`gates/{id}/status`, ...): the payload's
    `gate_id` must be the topic's, so nobody speaks for another gate. Raises TopicError,
    PayloadTooLarge or InvalidPayload."""
    gate_id = gate_of(topic)
    message = decode(model, payload, limit)
    if getattr(message, "gate_id", None) != gate_id:
        raise InvalidPayload(model.__name__, [f"gate_id: not {gate_id}, whose topic it came on"])
    return message


def salvage_ids(payload: bytes, *fields: str) -> dict[str, str]:
    """From a payload that failed validation, the named fields that hold valid ids, so the sender
    can still be answered. Never raises: anything unreadable yields nothing."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {f: data[f] for f in fields if is_identifier(data.get(f))}
