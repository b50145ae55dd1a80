"""The console's settings of the shared HTTP guards: its security headers and its 413 page."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp

from http_guard import middleware as guard

# No inline script or style anywhere in the console, so the policy can forbid both.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")

_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # Not "no-referrer": with it browsers send `Origin: null` on form posts, which the CSRF check
    # has to refuse. same-origin keeps URLs from leaking to other sites all the same.
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-store",
}


class SecurityHeaders(guard.SecurityHeaders):
    """Adds the headers above; pages (not static files) also get `Cache-Control: no-store`."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, _HEADERS, override=True, cacheable=("/static/",))


class BodyLimit(guard.BodyLimit):
    """Refuses request bodies over `max_bytes` with 413 and the page `render` makes.

    A declared oversize body is drained first (up to `drain_bytes`): browsers keep sending and
    would otherwise show a reset connection. A streamed one raises BodyTooLarge in the endpoint,
    which the app answers with the same page.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, render: Callable[[int], str],
                 drain_bytes: int = 32 * 1024 * 1024) -> None:
        def refusal(limit: int) -> Response:
            body = render(limit).encode()
            return Response(body, 413, {"content-type": "text/html; charset=utf-8",
                                        "content-length": str(len(body)), "connection": "close"})

        super().__init__(app, max_bytes, refusal, drain_bytes=drain_bytes)
