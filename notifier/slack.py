"""The operators' Slack room, through an incoming webhook.

A webhook posts to one channel that every operator reads, so it takes admin notifications only (the
Notifier sends it each admin alert once); a resident's notification never goes there.
"""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from notifier.base import Notification, NotifyError
from notifier.webhook import post_json


class SlackChannel:
    """Posts `*title*` and the body as a Slack message. `data` is not posted: it may hold ids a room
    full of people has no need for."""

    name = "slack"

    def __init__(self, webhook_url: SecretStr, *, timeout_s: float = 10.0, attempts: int = 3,
                 backoff_s: float = 0.5) -> None:
        self._url = webhook_url
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    async def send(self, notification: Notification) -> None:
        """Post to the room; NotifyError after the retries (WebhookRefused on a 4xx)."""
        payload = {"text": f"*{_escape(notification.title)}*\n{_escape(notification.body)}"}
        response = await post_json(self._client, self._url.get_secret_value(), payload, service="slack webhook",
                                   attempts=self._attempts, backoff_s=self._backoff_s)
        # Slack answers a plain "ok"; anything else on a 200 is not a delivery we can vouch for.
        if response.text.strip() != "ok":
            raise NotifyError("slack webhook answered 200 without 'ok'")

    async def aclose(self) -> None:
        await self._client.aclose()


def _escape(text: str) -> str:
    # Slack's mrkdwn control characters: a visitor named "<!channel>" must not page everyone.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
