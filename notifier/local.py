"""The embedded default channel: a log line and a NotificationEvent on events/notify/{recipient}.

It needs nothing but the broker, so a one-machine site sees every notification in `passage watch`
(and any app subscribed to its recipient's topic gets it). `device_data` is never published.
"""

from __future__ import annotations

import logging

from messaging import MqttClient, NotConnected
from notifier.base import Notification, NotifyError
from schemas import topics
from schemas.events import NotificationEvent

log = logging.getLogger(__name__)


class LocalChannel:
    """Publishes each notification for its recipient through `mqtt` (a client the caller runs)."""

    name = "local"

    def __init__(self, mqtt: MqttClient, publish_timeout_s: float = 5.0) -> None:
        self._mqtt = mqtt
        self._timeout_s = publish_timeout_s

    async def send(self, notification: Notification) -> None:
        """Log and publish; NotifyError if the broker cannot be reached in time."""
        log.info("notify recipient=%s: %s", notification.recipient_id, notification.title)
        event = NotificationEvent(recipient_id=notification.recipient_id, title=notification.title,
                                  body=notification.body, data=notification.data)
        try:
            await self._mqtt.publish(topics.notify_event(notification.recipient_id), event, timeout=self._timeout_s)
        except NotConnected as exc:
            raise NotifyError(f"local channel: broker unreachable ({type(exc).__name__})") from None
