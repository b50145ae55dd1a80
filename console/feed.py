"""The console's view of the bus: `events/#` and retained gate status, fanned out to browsers.

One MQTT connection per console process; each open events or gates page holds a bounded queue
here and reads it as a Server-Sent Events stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime

from config.settings import MqttSettings
from messaging import IncomingMessage, MqttClient
from schemas import topics
from schemas.base import Identifier, StrictModel, new_id, utc_now
from schemas.codec import decode, decode_from_gate
from schemas.errors import PayloadError, TopicError
from schemas.events import AccessEvent, AlertEvent, DeviceEvent, EnrollEvent, VisitorEvent
from schemas.gate import GateState, GateStatus

log = logging.getLogger(__name__)

FeedKind = Literal["access", "enroll", "alert", "device", "visitor"]


class FeedItem(StrictModel):
    """One line of the events page (never a credential value)."""

    id: str
    kind: FeedKind
    ts: AwareDatetime
    gate: str | None = None
    outcome: str  # GRANTED / DENIED / DUPLICATE / DONE / REFUSED / ALERT / ONLINE / OFFLINE / a visitor code
    reason: str | None = None
    subject: str | None = None
    detail: str | None = None


class GateView(StrictModel):
    """One gate on the gates page."""

    gate_id: Identifier
    state: GateState
    changed_at: AwareDatetime
    firmware: str
    # When the gate monitor last heard it live (from its events/device/{gate} announcements).
    last_seen: AwareDatetime | None = None


class StreamMessage(StrictModel):
    """What goes down an SSE stream: `event: {event}` and the item as JSON data."""

    event: Literal["feed", "gate"]
    data: str


class Hub:
    """Fan-out to SSE subscribers. A slow browser loses its oldest messages, never blocks the feed."""

    def __init__(self, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[StreamMessage | None]] = set()
        self.closed = False

    def subscribe(self) -> asyncio.Queue[StreamMessage | None]:
        queue: asyncio.Queue[StreamMessage | None] = asyncio.Queue(self._queue_size)
        if self.closed:
            queue.put_nowait(None)
        else:
            self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[StreamMessage | None]) -> None:
        self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, message: StreamMessage) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)

    def close(self) -> None:
        """End every stream (a None tells each to finish), so a server shutdown need not wait."""
        self.closed = True
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
        self._subscribers.clear()


class ConsoleFeed:
    """Subscribes to events and gate status; keeps recent events and every gate's last state."""

    def __init__(self, client: MqttClient, recent: int = 200) -> None:
        self.client = client
        self.hub = Hub()
        self.recent: deque[FeedItem] = deque(maxlen=recent)
        self.gates: dict[str, GateView] = {}
        client.subscribe(topics.EVENTS_FILTER, self._on_event)
        client.subscribe(topics.GATE_STATUS_FILTER, self._on_gate_status)

    async def _on_event(self, msg: IncomingMessage) -> None:
        try:
            item = to_feed_item(msg.topic, msg.payload)
        except PayloadError as exc:
            log.warning("console: unreadable event on %s dropped: %s", msg.topic[:80], exc)
            return
        if item is None:
            return
        self.recent.appendleft(item)
        self.hub.publish(StreamMessage(event="feed", data=item.model_dump_json()))
        if msg.topic.startswith("events/device/"):
            self._seen(DeviceEvent.model_validate_json(msg.payload))

    def _seen(self, event: DeviceEvent) -> None:
        known = self.gates.get(event.gate_id)
        if known is None or event.last_seen is None:
            return
        view = known.model_copy(update={"last_seen": event.last_seen})
        self.gates[event.gate_id] = view
        self.hub.publish(StreamMessage(event="gate", data=view.model_dump_json()))

    async def _on_gate_status(self, msg: IncomingMessage) -> None:
        try:
            status = decode_from_gate(GateStatus, msg.topic, msg.payload, topics.gate_of_status)
        except (PayloadError, TopicError) as exc:
            log.warning("console: unreadable gate status on %s dropped: %s", msg.topic[:80], exc)
            return
        gate_id = status.gate_id
        known = self.gates.get(gate_id)
        if known is not None and known.state is status.state:
            return
        view = GateView(gate_id=gate_id, state=status.state, firmware=status.firmware,
                        changed_at=_change_time(status, msg.retain),
                        last_seen=known.last_seen if known is not None else None)
        self.gates[gate_id] = view
        self.hub.publish(StreamMessage(event="gate", data=view.model_dump_json()))

    def close(self) -> None:
        self.hub.close()


def _change_time(status: GateStatus, retained: bool) -> datetime:
    # A last will carries the time the gate connected, not when it vanished: for a live message
    # the moment it reached us is the better "since". A retained one is older than this console,
    # so its own timestamp is the best there is.
    return status.ts if retained else utc_now()


def to_feed_item(topic: str, payload: bytes) -> FeedItem | None:
    """A readable line for one `events/...` message; None for kinds the console does not show.

    Raises PayloadError for a payload that does not match its topic's schema.
    """
    kind = topic.split("/")[1] if topic.count("/") >= 1 else ""
    if kind == "access":
        a = decode(AccessEvent, payload)
        return FeedItem(id=a.msg_id, kind="access", ts=a.ts, gate=a.gate_id,
                        outcome="GRANTED" if a.granted else "DENIED", reason=a.reason.value,
                        subject=a.subject_id,
                        detail=(a.credential_type.value if a.credential_type else None))
    if kind == "enroll":
        e = decode(EnrollEvent, payload)
        duplicate = e.code.value == "USER_DUPLICATE_CREDENTIAL"
        outcome = "DUPLICATE" if duplicate else ("DONE" if e.ok else "REFUSED")
        detail = f"{e.action} by {e.admin_id}"
        if duplicate:
            detail += f": {e.sub_code or '?'} already held by {e.matched_user_id or '?'}"
        return FeedItem(id=e.msg_id, kind="enroll", ts=e.ts, outcome=outcome, reason=e.code.value,
                        subject=e.target, detail=detail)
    if kind == "alert":
        al = decode(AlertEvent, payload)
        return FeedItem(id=al.msg_id, kind="alert", ts=al.ts, gate=al.gate_id, outcome="ALERT",
                        reason=al.code.value, detail=al.detail[:300])
    if kind == "device":
        d = decode(DeviceEvent, payload)
        return FeedItem(id=d.msg_id, kind="device", ts=d.ts, gate=d.gate_id, outcome=d.state.value.upper(),
                        reason=d.code.value)
    if kind == "visitor":
        v = decode(VisitorEvent, payload)
        return FeedItem(id=v.msg_id, kind="visitor", ts=v.ts, gate=v.gate_id, outcome=v.code.value,
                        subject=v.resident_id, detail=f"pass {v.pass_id} ({v.uses}/{v.max_uses})")
    # events/notify/... carries message bodies for one recipient: not for a shared screen.
    return None


def new_feed(mqtt: MqttSettings, recent: int) -> ConsoleFeed:
    """A feed on its own MQTT connection (started by whoever runs `feed.client.run()`)."""
    return ConsoleFeed(MqttClient(mqtt, f"console-feed-{new_id()[:12]}"), recent)
