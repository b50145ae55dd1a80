"""OpenAPI documentation of the error answers each operation can give."""

from __future__ import annotations

from typing import Any

from visitor_api.errors import refusal_statuses
from visitor_api.models import ErrorBody, ValidationErrorBody

_DESCRIPTIONS = {
    400: "The body could not be read.",
    401: "No credentials, or invalid ones (bad, expired or forged token, unknown key, wrong password).",
    403: "The account's resident is unknown or inactive.",
    404: "No such pass for the caller's unit.",
    409: "The unit already holds the maximum number of active passes.",
    413: "The request body is too large.",
    415: "The body is neither JSON nor a URL-encoded form.",
    422: "The request failed validation, or the visitor service refused it under the building's policy.",
    429: "Too many requests; retry after the number of seconds in Retry-After.",
    502: "The visitor service failed or answered with something unusable.",
    503: "The message broker or the account store is unreachable; nothing was done.",
    504: "The visitor service did not answer in time; the request may still take effect.",
}

_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
_CHALLENGE = {"WWW-Authenticate": {"description": "the authentication scheme expected", "schema": {"type": "string"}}}

# Every relayed operation may meet any refusal, the broker and the worker failing, and the rate limit.
RELAYED = (401, 413, 422, 429, 503, 504, *sorted(refusal_statuses()))


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting `statuses` with their typed bodies and headers."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        entry: dict[str, Any] = {"model": ValidationErrorBody if status == 422 else ErrorBody,
                                 "description": _DESCRIPTIONS[status]}
        if status in (429, 503):
            entry["headers"] = _RETRY_AFTER
        elif status == 401:
            entry["headers"] = _CHALLENGE
        out[status] = entry
    return out
