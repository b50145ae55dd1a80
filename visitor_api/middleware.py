"""The bridge's settings of the shared HTTP guards: its security headers and its typed 413 answer."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp

from http_guard import middleware as guard
from visitor_api.errors import ApiErrorCode

SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
    # Tokens and QR codes are credentials: no cache may keep them.
    "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=63072000",
}


class SecurityHeaders(guard.SecurityHeaders):
    """Adds SECURITY_HEADERS to each response, leaving any the app set itself."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, SECURITY_HEADERS)


class BodyLimit(guard.BodyLimit):
    """Answers 413 with a typed body once a request body passes `max_bytes`: at once from
    Content-Length, or while a chunked body streams in. In the latter case the app's reaction is
    discarded: the client is owed the typed 413, not what the body parser made of the aborted read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app, max_bytes, _too_large, answer_overflow=True)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"code": ApiErrorCode.BODY_TOO_LARGE.value, "message": f"request body exceeds {limit} bytes"},
                        status_code=413, headers={"Connection": "close"})
