"""One JSON POST with a bounded retry, shared by the webhook channels (Slack, SMS gateway)."""

from __future__ import annotations

import asyncio
import logging

import httpx

from notifier.base import NotifyError

log = logging.getLogger(__name__)

# A server asking us to wait longer than this is treated as down: a notification is only worth
# something while it is fresh, and the caller's deadline bounds the whole send anyway.
MAX_RETRY_AFTER_S = 10.0


class WebhookRefused(NotifyError):
    """The service answered with a client error (4xx other than 429): retrying will not help."""

    def __init__(self, service: str, status: int) -> None:
        super().__init__(f"{service} refused the request: HTTP {status}")
        self.status = status


async def post_json(client: httpx.AsyncClient, url: str, payload: object, *, service: str,
                    headers: dict[str, str] | None = None, attempts: int = 3,
                    backoff_s: float = 0.5) -> httpx.Response:
    """POST `payload`; retry network errors, 429 and 5xx up to `attempts` tries in all.

    Errors name the service and the HTTP status only: the URL (a Slack webhook URL is a secret) and
    the headers (a bearer token) never reach an exception message or a log line.
    """
    last: NotifyError = NotifyError(f"{service}: not attempted")
    for attempt in range(attempts):
        wait = backoff_s * (2**attempt)
        try:
            response = await client.post(url, json=payload, headers=headers)
        except httpx.HTTPError as exc:
            last = NotifyError(f"{service} unreachable ({type(exc).__name__})")
        else:
            if response.is_success:
                return response
            if response.status_code != 429 and response.status_code < 500:
                raise WebhookRefused(service, response.status_code)
            last = NotifyError(f"{service} answered HTTP {response.status_code}")
            wait = max(wait, _retry_after(response))
        if attempt + 1 < attempts:
            log.info("%s: attempt %d/%d failed (%s); retrying in %.1fs", service, attempt + 1, attempts, last, wait)
            await asyncio.sleep(wait)
    raise last


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(float(response.headers.get("Retry-After", "0")), MAX_RETRY_AFTER_S)
    except ValueError:
        return 0.0
