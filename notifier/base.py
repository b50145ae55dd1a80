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
    fcm_token: Annotated[str, StringConstraints(max_length=4096)] | None = None
    email: Annotated[str, StringConstraints(max_length=320)] | None = None
    phone: Annotated[str, StringConstraints(max_length=32)] | None = None

    def __repr__(self) -> str:
        return f"Notification(recipient_id={self.recipient_id!r}, title={self.title!r})"


class NotifyError(Exception):
    """A channel could not deliver (after its own retries)."""


class NotApplicable(NotifyError):
    """The channel has no address for this recipient (e.g. FCM without a device token)."""


class Channel(Protocol):
    """A way to reach people. `send` raises NotifyError (or NotApplicable) when it cannot deliver."""

    name: str

    async def send(self, notification: Notification) -> None: ...
