"""The notify worker: turns events on the bus into notifications for people.

- `events/visitor/{pass}` VISITOR_ENTERED -> the resident who registered the visitor (contacts from
  the store's `users`);
- `events/alert/device_offline` / `device_recovered` -> the admins (the monitor raises these once
  per outage);
- `events/alert/unknown_face` -> the admins; `events/access/{gate}` denials of an unknown credential
  (UNKNOWN_CREDENTIAL: a card or PIN nobody holds; BAD_SIGNATURE: a forged QR) -> the admins. Both at
  most once per gate and kind per `notify.denial_alert_interval_s`. With
  `notify.strangers_to_residents` the active residents of the gate's building are told too (off by
  default: every stranger's card at the lobby would reach hundreds of phones).

A message is handled once per `msg_id` (QoS 1 may deliver twice). With `mqtt.shared_subscriptions`
the worker joins the `notify` share group, so several workers split events instead of repeating.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from config.settings import Settings
from messaging import IncomingMessage, MqttClient
from notifier import recipients
from notifier.base import Notification
from notifier.dispatch import Delivery, Notifier
from notifier.factory import build_notifier
from schemas import topics
from schemas.codec import decode
from schemas.codes import EventCode, ReasonCode
from schemas.documents import User, UserKind
from schemas.errors import PayloadError, TopicError
from schemas.events import AccessEvent, AlertEvent, VisitorEvent
from store.repository import Store

log = logging.getLogger(__name__)

SHARE_GROUP = "notify"
_SEEN_IDS = 4096
# Denials that mean "someone unknown tried this door"; the others are known people refused by rule.
_STRANGER_REASONS = {ReasonCode.UNKNOWN_CREDENTIAL: "an unknown credential",
                     ReasonCode.BAD_SIGNATURE: "a forged or altered QR code"}


def _building_residents(store: Store, gate_id: str, limit: int) -> list[User]:
    gate = store.get_gate(gate_id)
    if gate is None or not gate.building:
        return []
    users, _ = store.query_users(building=gate.building, active_only=True, limit=limit)
    return [u for u in users if u.kind is UserKind.RESIDENT]


def _built_by(builder: Callable[[str], str], topic: str) -> bool:
    """True when `topic` is what `builder` makes of its last level: topic names stay in topics.py."""
    try:
        return builder(topic.rsplit("/", 1)[-1]) == topic
    except TopicError:
        return False


class NotifyWorker:
    """Subscribes to the audit stream and notifies residents and admins through a Notifier."""

    def __init__(self, settings: Settings, store: Store | None = None, *, notifier: Notifier | None = None,
                 client_id: str = "passage-notify") -> None:
        self._settings = settings
        self._store = store
        self.mqtt = MqttClient(settings.mqtt, client_id)
        self.notifier = notifier if notifier is not None else build_notifier(settings.notify, self.mqtt)
        events = topics.EVENTS_FILTER
        if settings.mqtt.shared_subscriptions:
            events = topics.shared(events, SHARE_GROUP)
        self.mqtt.subscribe(events, self._on_event)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._last_alert: dict[str, float] = {}
        self.handled = 0

    async def run(self) -> None:
        """Run until `stop()`; then let notifications in flight finish and close the channels."""
        try:
            await self.mqtt.run()
        finally:
            await self.notifier.aclose()

    def stop(self) -> None:
        self.mqtt.stop()

    async def _on_event(self, msg: IncomingMessage) -> None:
        topic = msg.topic
        try:
            if _built_by(topics.visitor_event, topic):
                await self._on_visitor(decode(VisitorEvent, msg.payload))
            elif _built_by(topics.access_event, topic):
                await self._on_access(decode(AccessEvent, msg.payload))
            elif topic == topics.alert_event("device_offline") or topic == topics.alert_event("device_recovered"):
                await self._on_device_alert(decode(AlertEvent, msg.payload))
            elif topic == topics.alert_event("unknown_face"):
                await self._on_unknown_face(decode(AlertEvent, msg.payload))
        except PayloadError as exc:
            log.warning("notify: unreadable event on %s: %s", topic[:80], exc)

    def _first_time(self, msg_id: str) -> bool:
        if msg_id in self._seen:
            return False
        self._seen[msg_id] = None
        while len(self._seen) > _SEEN_IDS:
            self._seen.popitem(last=False)
        return True

    def _allowed(self, key: str) -> bool:
        """At most one admin push per key per interval: a gate full of strangers must not flood phones."""
        now = time.monotonic()
        if now - self._last_alert.get(key, -float("inf")) < self._settings.notify.denial_alert_interval_s:
            return False
        self._last_alert[key] = now
        return True

    async def _on_visitor(self, event: VisitorEvent) -> None:
        if event.code is not EventCode.VISITOR_ENTERED or not self._first_time(event.msg_id):
            return
        user = await asyncio.to_thread(self._store.get_user, event.resident_id) if self._store else None
        if self._store is not None and (user is None or not user.active):
            log.warning("notify: visitor pass %s names resident %s, who is unknown or inactive; not notified",
                        event.pass_id, event.resident_id)
            return
        where = f" at {event.gate_id}" if event.gate_id else ""
        title = "Your visitor has arrived"
        body = f"{event.visitor_name} entered{where}."
        data = {"event": EventCode.VISITOR_ENTERED.value, "pass_id": event.pass_id}
        if event.gate_id:
            data["gate_id"] = event.gate_id
        if user is not None:
            note = recipients.for_user(user, title, body, data)
        else:
            note = Notification(recipient_id=event.resident_id, title=title, body=body, data=data)
        self._report(await self.notifier.send(note))

    async def _on_access(self, event: AccessEvent) -> None:
        what = _STRANGER_REASONS.get(event.reason)
        if event.granted or what is None or not self._first_time(event.msg_id):
            return
        if not self._allowed(f"{event.reason.value}:{event.gate_id}"):
            return
        kind = event.credential_type.value if event.credential_type else "credential"
        title, body = "Refused at " + event.gate_id, f"Gate {event.gate_id} refused {what} ({kind})."
        data = {"event": event.code.value, "gate_id": event.gate_id, "reason": event.reason.value}
        await self._tell_admins(title, body, data)
        await self._tell_building(event.gate_id, title, body, data)

    async def _on_unknown_face(self, alert: AlertEvent) -> None:
        if not self._first_time(alert.msg_id) or not self._allowed(f"face:{alert.gate_id}"):
            return
        gate = alert.gate_id or "a gate"
        title, body = f"Unknown face at {gate}", f"Gate {gate} refused an unregistered face."
        data = {"event": alert.code.value, **({"gate_id": alert.gate_id} if alert.gate_id else {})}
        await self._tell_admins(title, body, data)
        if alert.gate_id:
            await self._tell_building(alert.gate_id, title, body, data)

    async def _on_device_alert(self, alert: AlertEvent) -> None:
        if not self._first_time(alert.msg_id):
            return
        gate = alert.gate_id or "a gate"
        title = f"Gate {gate} offline" if alert.code is EventCode.DEVICE_OFFLINE else f"Gate {gate} back online"
        data = {"event": alert.code.value, **({"gate_id": alert.gate_id} if alert.gate_id else {})}
        await self._tell_admins(title, alert.detail, data)

    async def _tell_admins(self, title: str, body: str, data: dict[str, str]) -> None:
        self._report(await self.notifier.notify_admins(title, body, data))

    async def _tell_building(self, gate_id: str, title: str, body: str, data: dict[str, str]) -> None:
        """The active residents of the gate's building, when the site asked for it."""
        notify = self._settings.notify
        if not notify.strangers_to_residents or self._store is None:
            return
        store = self._store
        residents = await asyncio.to_thread(_building_residents, store, gate_id, notify.max_residents_per_alert)
        for user in residents:
            self._report(await self.notifier.send(recipients.for_user(user, title, body, data)))

    def _report(self, deliveries: list[Delivery]) -> None:
        self.handled += 1
        if deliveries and not any(d.outcome == "sent" for d in deliveries):
            log.warning("notify: a notification reached no one (%s)",
                        ", ".join(f"{d.channel}:{d.outcome}" for d in deliveries))
