"""Typed refusals of visitor requests."""

from __future__ import annotations

from schemas.visitor import VisitorErrorCode


class VisitorRefused(Exception):
    """A request visitor_worker will not carry out, with the code the resident's app is told."""

    def __init__(self, code: VisitorErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
