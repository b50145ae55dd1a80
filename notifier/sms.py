"""Text messages through an HTTP SMS gateway webhook.

The request is `POST sms_webhook_url` with `Authorization: Bearer <sms_token>` and the JSON body
`{"to": phone, "message": "title: body", "sender": sms_sender}`; any 2xx is a delivery. Most
gateways (or a few lines of glue in front of one) take this shape.
"""

from __future__ import annotations

import re

import httpx
from pydantic import SecretStr

from notifier.base import InvalidAddress, NotApplicable, Notification
from notifier.webhook import post_json

# International format, as gateways want it: "+" and 7 to 15 digits (separators dropped first).
_PHONE = re.compile(r"^\+?[0-9]{7,15}$")
# Four concatenated SMS parts; longer texts cost more than they tell.
MAX_SMS_CHARS = 600


class SmsChannel:
    """Sends `title: body` to the recipient's phone number. `data` is not sent."""

    name = "sms"

    def __init__(self, webhook_url: str, token: SecretStr | None = None, sender: str | None = None, *,
                 timeout_s: float = 10.0, attempts: int = 3, backoff_s: float = 0.5) -> None:
        self._url = webhook_url
        self._token = token
        self._sender = sender
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    async def send(self, notification: Notification) -> None:
        """Send one text; NotApplicable without a phone, InvalidAddress for a malformed one."""
        if not notification.phone:
            raise NotApplicable("no phone number")
        phone = normalise_phone(notification.phone)
        payload: dict[str, str] = {"to": phone, "message": f"{notification.title}: {notification.body}"[:MAX_SMS_CHARS]}
        if self._sender:
            payload["sender"] = self._sender
        headers = {"Authorization": f"Bearer {self._token.get_secret_value()}"} if self._token else None
        await post_json(self._client, self._url, payload, service="sms gateway", headers=headers,
                        attempts=self._attempts, backoff_s=self._backoff_s)

    async def aclose(self) -> None:
        await self._client.aclose()


def normalise_phone(phone: str) -> str:
    """`phone` without spaces, dashes, dots or brackets; InvalidAddress if that is not a number."""
    compact = re.sub(r"[\s().-]", "", phone)
    if not _PHONE.fullmatch(compact):
        raise InvalidAddress("phone number is not in international format")
    return compact
