"""The one notification interface every channel implements."""

from __future__ import annotations

from typing import Annotated, Protocol

from pydantic import StringConstraints

from schemas.base import Identifier, StrictModel


class Notification(StrictModel):
    """One message to one person. Channels use what they can: FCM needs `fcm_token`, email `email`..."""

    recipient_id: Identifier
    title: Annotated[str, StringConstraints(max_length=200)]
    body: Annotated[str, StringConstraints(max_length=2000)]
    # FCM data payload (string values only, as FCM requires); e.g. a visitor pass token for the QR.
    data: dict[str, Annotated[str, StringConstraints(max_length=2048)]] = {}
    # Data for the recipient's device only (FCM data payload, merged over `data`): e.g. a visitor's
    # QR pass token. Never published on events/notify, never logged, never sent to email/SMS/Slack.
    device_data: dict[str, Annotated[str, StringConstraints(max_length=2048)]] = {}
    fcm_token: Annotated[str, StringConstraints(max_length=4096)] | None = None
    email: Annotated[str, StringConstraints(max_length=320)] | None = None
    phone: Annotated[str, StringConstraints(max_length=32)] | None = None

    def __repr__(self) -> str:
        return f"Notification(recipient_id={self.recipient_id!r}, title={self.title!r})"

    # pydantic's str() would print every field, device token and pass token included.
    __str__ = __repr__


class NotifyError(Exception):
    """A channel could not deliver (after its own retries)."""


class NotApplicable(NotifyError):
    """The channel has no address for this recipient (e.g. FCM without a device token)."""


class InvalidAddress(NotApplicable):
    """The service refused the recipient's address as unknown or malformed (an unregistered FCM
    device token, a rejected mailbox): the address should be dropped, retrying will not help."""


class NotifyConfigError(NotifyError):
    """A channel is configured but cannot start (missing or unreadable key file, bad URL)."""


class Channel(Protocol):
    """A way to reach people. `send` raises NotifyError (or NotApplicable) when it cannot deliver."""

    name: str

    async def send(self, notification: Notification) -> None: ...
