"""The gate monitor: pings gates, listens to their status and heartbeats, and announces outages.

Out on the bus:
- `events/device/{gate}`: DeviceEvent GATE_OFFLINE / GATE_ONLINE on every state change;
- `events/alert/device_offline`: AlertEvent DEVICE_OFFLINE once per outage, after the gate has
  stayed down for `monitor.offline_alert_delay_s`;
- `events/alert/device_recovered`: AlertEvent DEVICE_RECOVERED when an alerted gate comes back.
The push to the admins is the notify worker's job (notifier/service.py), from the alert event, so
every alert source reaches people the same way.

Known gates are the active gates in the store (re-read every `monitor.gates_refresh_s`) and any gate
that ever published a status or heartbeat. While the monitor's own broker link is down it judges
nothing; heartbeat clocks restart when it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import datetime

from pydantic import BaseModel

from config.settings import Settings
from messaging import IncomingMessage, MqttClient, NotConnected
from monitor.liveness import Change, ChangeKind, GateHealth, LivenessTracker
from schemas import topics
from schemas.base import new_id, utc_now
from schemas.codec import decode_from_gate
from schemas.codes import EventCode
from schemas.errors import PayloadError, TopicError
from schemas.events import AlertEvent, DeviceEvent
from schemas.gate import GateHeartbeat, GatePing, GateState, GateStatus
from store.repository import Store

log = logging.getLogger(__name__)

DEVICE_OFFLINE_KIND = "device_offline"
DEVICE_RECOVERED_KIND = "device_recovered"
# Announcements waiting for the broker; beyond this the oldest are dropped (and logged).
MAX_OUTBOX = 10_000


class GateMonitor:
    """Gate liveness for one site. `run()` until `stop()`; query with `gates()` / `last_seen()`."""

    def __init__(self, settings: Settings, store: Store | None = None, client_id: str = "passage-monitor") -> None:
        self._settings = settings.monitor
        self._store = store
        self.tracker = LivenessTracker(self._settings.offline_alert_delay_s, self._settings.heartbeat_timeout_s)
        self._inactive: set[str] = set()
        self._outbox: deque[tuple[str, BaseModel]] = deque()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._was_connected = False
        self.alerts_sent = 0
        self.mqtt = MqttClient(settings.mqtt, client_id, on_connect=self._on_connect)
        self.mqtt.subscribe(topics.GATE_STATUS_FILTER, self._on_status)
        self.mqtt.subscribe(topics.GATE_HEARTBEAT_FILTER, self._on_heartbeat)

    # queries ---------------------------------------------------------------------------------
    def gates(self) -> list[GateHealth]:
        """Every known gate: state, last seen, down since, whether the outage was alerted."""
        return self.tracker.health()

    def last_seen(self, gate_id: str) -> datetime | None:
        """When `gate_id` was last heard from live (status or heartbeat); None if never."""
        health = self.tracker.health_of(gate_id)
        return health.last_seen if health is not None else None

    # lifecycle -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect and supervise until `stop()`."""
        tasks = [asyncio.create_task(self.mqtt.run(), name="monitor-mqtt"),
                 asyncio.create_task(self._supervise(), name="monitor-supervise"),
                 asyncio.create_task(self._ping_loop(), name="monitor-ping")]
        if self._store is not None:
            tasks.append(asyncio.create_task(self._refresh_loop(), name="monitor-gates"))
        try:
            await self._stopping.wait()
        finally:
            self.mqtt.stop()
            for task in tasks[1:]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        self._stopping.set()

    async def _on_connect(self, _client: MqttClient) -> None:
        if self._was_connected:
            self.tracker.grace(time.monotonic())
        self._was_connected = True
        self._wake.set()

    # inputs ----------------------------------------------------------------------------------
    async def _on_status(self, msg: IncomingMessage) -> None:
        try:
            if not msg.payload:
                # An empty retained message clears the status: a retired gate. The store's list
                # brings it back if it is still an active gate there.
                self.tracker.forget(topics.gate_of_status(msg.topic))
                return
            status = decode_from_gate(GateStatus, msg.topic, msg.payload, topics.gate_of_status)
        except (PayloadError, TopicError) as exc:
            log.warning("monitor: unreadable gate status on %s: %s", msg.topic[:80], exc)
            return
        gate_id = status.gate_id
        if gate_id in self._inactive:
            return
        online = status.state is GateState.ONLINE
        self._apply(self.tracker.status(gate_id, online, time.monotonic(), utc_now(), live=not msg.retain))

    async def _on_heartbeat(self, msg: IncomingMessage) -> None:
        try:
            beat = decode_from_gate(GateHeartbeat, msg.topic, msg.payload, topics.gate_of_heartbeat)
        except (PayloadError, TopicError) as exc:
            log.warning("monitor: unreadable heartbeat on %s: %s", msg.topic[:80], exc)
            return
        gate_id = beat.gate_id
        if gate_id in self._inactive:
            return
        self._apply(self.tracker.heartbeat(gate_id, time.monotonic(), utc_now()))

    # the clock -------------------------------------------------------------------------------
    async def _supervise(self) -> None:
        while True:
            if self.mqtt.is_connected:
                self._apply(self.tracker.due(time.monotonic(), utc_now()))
                await self._flush()
            deadline = self.tracker.next_deadline()
            wait = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic()))
            if self._outbox:
                wait = min(wait, 0.5)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    async def _ping_loop(self) -> None:
        interval = self._settings.ping_interval_s
        while True:
            if self.mqtt.is_connected:
                for gate_id in self.tracker.gate_ids():
                    ping = GatePing(gate_id=gate_id, ping_id=new_id())
                    try:
                        await self.mqtt.publish(topics.gate_ping(gate_id), ping, timeout=interval)
                    except NotConnected:
                        break
            await asyncio.sleep(interval)

    async def _refresh_loop(self) -> None:
        store = self._store
        assert store is not None
        while True:
            try:
                gates = await asyncio.to_thread(lambda: list(store.iter_gates()))
            except Exception as exc:  # noqa: BLE001 - the store being away must not stop liveness checks
                log.warning("monitor: could not read gates from the store (%s); keeping the list",
                            type(exc).__name__)
            else:
                self._inactive = {g.id for g in gates if not g.active}
                for gate in gates:
                    if gate.active:
                        self.tracker.know(gate.id)
                    else:
                        self.tracker.forget(gate.id)
            await asyncio.sleep(self._settings.gates_refresh_s)

    # outputs ---------------------------------------------------------------------------------
    def _apply(self, changes: list[Change]) -> None:
        for change in changes:
            self._announce(change)
        if changes:
            self._wake.set()

    def _announce(self, change: Change) -> None:
        gate = change.gate_id
        since = change.down_since.isoformat(timespec="seconds") if change.down_since else "?"
        if change.kind is ChangeKind.WENT_DOWN:
            log.warning("gate=%s offline: %s", gate, change.reason)
            self._queue(topics.device_event(gate), DeviceEvent(code=EventCode.GATE_OFFLINE, gate_id=gate,
                                                               state=GateState.OFFLINE, last_seen=self.last_seen(gate)))
        elif change.kind is ChangeKind.CAME_UP:
            log.info("gate=%s online (%s)", gate, change.reason)
            self._queue(topics.device_event(gate), DeviceEvent(code=EventCode.GATE_ONLINE, gate_id=gate,
                                                               state=GateState.ONLINE, last_seen=self.last_seen(gate)))
        elif change.kind is ChangeKind.ALERT:
            log.error("gate=%s DEVICE OFFLINE since %s: %s", gate, since, change.reason)
            self.alerts_sent += 1
            self._queue(topics.alert_event(DEVICE_OFFLINE_KIND), AlertEvent(
                code=EventCode.DEVICE_OFFLINE, gate_id=gate,
                detail=f"gate {gate} offline since {since}: {change.reason}"))
        elif change.kind is ChangeKind.RECOVERED:
            log.warning("gate=%s recovered (offline since %s)", gate, since)
            self._queue(topics.alert_event(DEVICE_RECOVERED_KIND), AlertEvent(
                code=EventCode.DEVICE_RECOVERED, gate_id=gate,
                detail=f"gate {gate} back online (offline since {since})"))

    def _queue(self, topic: str, message: BaseModel) -> None:
        if len(self._outbox) >= MAX_OUTBOX:
            dropped, _ = self._outbox.popleft()
            log.warning("monitor: outbox full; dropped an announcement for %s", dropped)
        self._outbox.append((topic, message))

    async def _flush(self) -> None:
        # In order, and each kept until the broker took it: an alert is never lost to a blip.
        while self._outbox:
            topic, message = self._outbox[0]
            try:
                await self.mqtt.publish(topic, message, timeout=2.0)
            except NotConnected:
                return
            self._outbox.popleft()
