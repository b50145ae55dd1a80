"""The Notifier: one notification fanned out to every channel that can reach its recipient.

It never raises: a channel without an address for the recipient is skipped quietly, a failing one
is logged (channel, recipient id, error class and a message free of secrets) and reported in the
returned Delivery list. Each channel gets `deadline_s` in all, retries included.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from config.settings import NotifyRecipient
from notifier import recipients
from notifier.base import Channel, InvalidAddress, NotApplicable, Notification, NotifyError

log = logging.getLogger(__name__)

# The recipient id a room channel (Slack) is addressed as: the operators as a group.
ADMINS_ROOM = "admins"

Outcome = Literal["sent", "skipped", "invalid", "failed"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one channel did with one notification."""

    channel: str
    recipient_id: str
    outcome: Outcome
    detail: str = ""


class Notifier:
    """Sends notifications through person channels (local, FCM, email, SMS: one message per
    recipient) and room channels (Slack: one post per admin alert, never a resident's message)."""

    def __init__(self, channels: Sequence[Channel], *, rooms: Sequence[Channel] = (),
                 admins: Sequence[NotifyRecipient] = (), deadline_s: float = 60.0) -> None:
        self.channels = list(channels)
        self.rooms = list(rooms)
        self.admins = list(admins)
        self._deadline_s = deadline_s
        self._background: set[asyncio.Task[list[Delivery]]] = set()
        self._warned_no_admins = False

    async def send(self, notification: Notification) -> list[Delivery]:
        """Deliver to one recipient through every person channel that applies."""
        return list(await asyncio.gather(*(self._deliver(c, notification) for c in self.channels)))

    async def notify_admins(self, title: str, body: str, data: dict[str, str] | None = None) -> list[Delivery]:
        """Tell every configured admin, and post once to each room channel."""
        if not self.admins and not self.rooms and not self._warned_no_admins:
            # Once: `passage up` refuses a stranger's card every few seconds by design.
            self._warned_no_admins = True
            log.warning("no admins configured (notify.admins) and no room channel: admin alerts reach no one")
        room_note = Notification(recipient_id=ADMINS_ROOM, title=title, body=body, data=data or {})
        jobs = [self.send(n) for n in recipients.for_admins(self.admins, title, body, data)]
        results = await asyncio.gather(*jobs, *(self._room(r, room_note) for r in self.rooms))
        return [d for batch in results for d in batch]

    def send_soon(self, notification: Notification) -> None:
        """Fire and forget, for callers on a hot path: the result is only logged."""
        self._spawn(self.send(notification))

    def notify_admins_soon(self, title: str, body: str, data: dict[str, str] | None = None) -> None:
        self._spawn(self.notify_admins(title, body, data))

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for fire-and-forget sends still running."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)

    async def aclose(self) -> None:
        """Finish background sends and release the channels' connections."""
        await self.drain()
        for channel in [*self.channels, *self.rooms]:
            close = getattr(channel, "aclose", None)
            if close is not None:
                await close()

    def _spawn(self, job: Coroutine[Any, Any, list[Delivery]]) -> None:
        task = asyncio.ensure_future(job)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _room(self, channel: Channel, notification: Notification) -> list[Delivery]:
        return [await self._deliver(channel, notification)]

    async def _deliver(self, channel: Channel, notification: Notification) -> Delivery:
        who = notification.recipient_id
        try:
            await asyncio.wait_for(channel.send(notification), self._deadline_s)
        except InvalidAddress as exc:
            log.warning("notify %s recipient=%s: address refused (%s); it should be removed", channel.name, who, exc)
            return Delivery(channel.name, who, "invalid", str(exc))
        except NotApplicable as exc:
            log.debug("notify %s recipient=%s: skipped (%s)", channel.name, who, exc)
            return Delivery(channel.name, who, "skipped", str(exc))
        except NotifyError as exc:
            log.warning("notify %s recipient=%s failed: %s: %s", channel.name, who, type(exc).__name__, exc)
            return Delivery(channel.name, who, "failed", str(exc))
        except TimeoutError:
            log.warning("notify %s recipient=%s failed: no delivery within %.0fs", channel.name, who,
                        self._deadline_s)
            return Delivery(channel.name, who, "failed", "deadline exceeded")
        except Exception as exc:  # a channel bug must not reach the caller
            # The class only: a library's message may quote a URL or header with a secret in it.
            log.error("notify %s recipient=%s failed unexpectedly: %s", channel.name, who, type(exc).__name__)
            log.debug("notify %s traceback", channel.name, exc_info=True)
            return Delivery(channel.name, who, "failed", type(exc).__name__)
        log.info("notify %s recipient=%s: sent", channel.name, who)
        return Delivery(channel.name, who, "sent")
