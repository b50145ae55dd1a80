"""Typed errors raised while reading messages off the wire."""

from __future__ import annotations


class PayloadError(Exception):
    """A message payload that cannot be accepted."""


class PayloadTooLarge(PayloadError):
    """The payload exceeds the size limit of its topic."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload of {size} bytes exceeds the {limit}-byte limit")
        self.size = size
        self.limit = limit


class InvalidPayload(PayloadError):
    """The payload is not valid JSON or does not match its schema."""

    def __init__(self, model: str, errors: list[str]) -> None:
        super().__init__(f"invalid {model}: " + "; ".join(errors[:5]))
        self.model = model
        self.errors = errors


class TopicError(ValueError):
    """A topic that does not follow the topic contract."""
