"""ASGI middleware: security headers on every response, a cap on request bodies.

Plain ASGI rather than Starlette's BaseHTTPMiddleware, which would buffer SSE streams. Each app
passes what is its own: its header values, its 413 answer, what happens to a body that overflows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class SecurityHeaders:
    """Adds `headers` to every HTTP response as it starts.

    `override`: the app's own values of these headers are replaced; otherwise they win and ours
    only fill the gaps. `cacheable`: path prefixes (static files) where Cache-Control is left
    to the app, whatever `headers` say.
    """

    def __init__(self, app: ASGIApp, headers: Mapping[str, str], *, override: bool = False,
                 cacheable: tuple[str, ...] = ()) -> None:
        self.app = app
        self._headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        self._cacheable_headers = [h for h in self._headers if h[0] != b"cache-control"]
        self._override = override
        self._cacheable = cacheable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ours = self._cacheable_headers if str(scope.get("path", "")).startswith(self._cacheable) else self._headers
        names = {name for name, _ in ours}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                theirs = list(message.get("headers", []))
                if self._override:
                    headers = [h for h in theirs if h[0].lower() not in names] + ours
                else:
                    present = {h[0].lower() for h in theirs}
                    headers = theirs + [h for h in ours if h[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(Exception):
    """A request body beyond the limit, raised from `receive` while the endpoint reads it."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit} bytes")
        self.limit = limit


class BodyLimit:
    """Refuses request bodies over `max_bytes` with the 413 answer `refusal(max_bytes)` builds.

    A declared Content-Length over the limit is refused before the app runs; if it is at most
    `drain_bytes` the body is read and dropped first, so a browser still sending sees the answer
    rather than a reset connection. A body without a length is counted as it streams and
    `BodyTooLarge` raised once it passes the limit. With `answer_overflow` whatever the app then
    makes of that is discarded and the refusal sent instead, if nothing was sent yet; without it
    the app's own answer (its handler for BodyTooLarge) stands.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, refusal: Callable[[int], ASGIApp], *,
                 drain_bytes: int = 0, answer_overflow: bool = False) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._refusal = refusal
        self._drain_bytes = drain_bytes
        self._answer_overflow = answer_overflow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            if declared <= self._drain_bytes:
                await _drain(receive)
            await self._refusal(self.max_bytes)(scope, receive, send)
            return
        seen = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge(self.max_bytes)
            return message

        if not self._answer_overflow:
            await self.app(scope, counting_receive, send)
            return

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the app made of the aborted read is replaced by the refusal below
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refusal(self.max_bytes)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            # Digits only: int() would also take signs, underscores and spaces, which HTTP does not.
            return int(value) if value.isdigit() else None
    return None


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
