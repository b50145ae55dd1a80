"""The bridge's typed errors: each knows its HTTP status, its error code and its extra headers."""

from __future__ import annotations

import math
from enum import StrEnum

from schemas.visitor import VisitorErrorCode


class ApiErrorCode(StrEnum):
    """Every `code` an error body can carry: the bridge's own, then visitor_worker's refusals."""

    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    BAD_REQUEST = "BAD_REQUEST"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    RATE_LIMITED = "RATE_LIMITED"
    BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE"
    ACCOUNTS_UNAVAILABLE = "ACCOUNTS_UNAVAILABLE"
    REPLY_TIMEOUT = "REPLY_TIMEOUT"
    BAD_REPLY = "BAD_REPLY"
    # visitor_worker's VisitorErrorCode values, passed through unchanged.
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


# A worker code missing above would turn a typed refusal into a crash: fail at import instead.
_missing = {c.value for c in VisitorErrorCode} - {c.value for c in ApiErrorCode}
if _missing:
    raise ImportError(f"ApiErrorCode lacks visitor_worker codes {sorted(_missing)}")


class ApiError(Exception):
    """An error answered with a typed JSON body `{code, message}`."""

    status = 500
    code = ApiErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class Unauthorized(ApiError):
    """No credentials, or credentials that do not check out (one answer for every reason)."""

    status = 401
    code = ApiErrorCode.UNAUTHORIZED

    def __init__(self, message: str = "missing or invalid credentials") -> None:
        super().__init__(message, {"WWW-Authenticate": "Bearer"})


class UnsupportedMediaType(ApiError):
    status = 415
    code = ApiErrorCode.UNSUPPORTED_MEDIA_TYPE


class RateLimited(ApiError):
    """Too many requests; Retry-After says when the next one is allowed."""

    status = 429
    code = ApiErrorCode.RATE_LIMITED

    def __init__(self, retry_after_s: float, message: str = "too many requests") -> None:
        self.retry_after_s = max(1, math.ceil(retry_after_s))
        super().__init__(message, {"Retry-After": str(self.retry_after_s)})


class BrokerUnavailable(ApiError):
    """The MQTT broker cannot be reached: nothing was sent."""

    status = 503
    code = ApiErrorCode.BROKER_UNAVAILABLE

    def __init__(self, message: str = "the message broker is unreachable; try again shortly") -> None:
        super().__init__(message, {"Retry-After": "5"})


class AccountsUnavailable(ApiError):
    """The account store cannot be reached, so nobody can be authenticated."""

    status = 503
    code = ApiErrorCode.ACCOUNTS_UNAVAILABLE

    def __init__(self, message: str = "accounts cannot be checked right now; try again shortly") -> None:
        super().__init__(message, {"Retry-After": "5"})


class ReplyTimeout(ApiError):
    """The request went out but no visitor worker answered in time (it may still act on it)."""

    status = 504
    code = ApiErrorCode.REPLY_TIMEOUT

    def __init__(self, message: str = "no answer from the visitor service in time") -> None:
        super().__init__(message)


class BadReply(ApiError):
    """visitor_worker answered with something the bridge cannot use."""

    status = 502
    code = ApiErrorCode.BAD_REPLY

    def __init__(self, message: str = "the visitor service sent an unusable answer") -> None:
        super().__init__(message)


# How each refusal of visitor_worker reads over HTTP.
_REFUSAL_STATUS: dict[VisitorErrorCode, int] = {
    VisitorErrorCode.UNKNOWN_RESIDENT: 403,
    VisitorErrorCode.RESIDENT_INACTIVE: 403,
    VisitorErrorCode.WINDOW_TOO_LONG: 422,
    VisitorErrorCode.WINDOW_IN_PAST: 422,
    VisitorErrorCode.TOO_MANY_USES: 422,
    VisitorErrorCode.GATE_NOT_PERMITTED: 422,
    VisitorErrorCode.INVALID_REQUEST: 422,
    # The unit holds its maximum of active passes: a conflict with its state, not a rate.
    VisitorErrorCode.TOO_MANY_PASSES: 409,
    VisitorErrorCode.PASS_NOT_FOUND: 404,
    # The worker failed, the bridge did not: a gateway error.
    VisitorErrorCode.INTERNAL_ERROR: 502,
}
if set(_REFUSAL_STATUS) != set(VisitorErrorCode):
    raise ImportError("every VisitorErrorCode needs an HTTP status")

_DEFAULT_MESSAGES: dict[VisitorErrorCode, str] = {
    VisitorErrorCode.UNKNOWN_RESIDENT: "this account is not linked to a known resident",
    VisitorErrorCode.RESIDENT_INACTIVE: "the resident is not active",
    VisitorErrorCode.WINDOW_TOO_LONG: "the visit window is longer than the building allows",
    VisitorErrorCode.WINDOW_IN_PAST: "the visit window has already ended",
    VisitorErrorCode.TOO_MANY_USES: "more entries than the building allows",
    VisitorErrorCode.GATE_NOT_PERMITTED: "the pass names a gate the resident may not use",
    VisitorErrorCode.INVALID_REQUEST: "the visitor service refused the request as invalid",
    VisitorErrorCode.TOO_MANY_PASSES: "the unit already holds the maximum number of active passes",
    VisitorErrorCode.PASS_NOT_FOUND: "no such pass for this unit",
    VisitorErrorCode.INTERNAL_ERROR: "the visitor service failed; try again later",
}


class Refused(ApiError):
    """visitor_worker refused the request with a typed code."""

    def __init__(self, refusal: VisitorErrorCode, message: str | None = None) -> None:
        self.status = _REFUSAL_STATUS[refusal]
        self.code = ApiErrorCode(refusal.value)
        # The worker's own wording is kept, except for internal failures, whose text is for the log.
        keep = message if message and refusal is not VisitorErrorCode.INTERNAL_ERROR else None
        super().__init__(keep or _DEFAULT_MESSAGES[refusal])


def refusal_statuses() -> set[int]:
    """Every status a worker refusal can map to (for the OpenAPI documentation)."""
    return set(_REFUSAL_STATUS.values())
