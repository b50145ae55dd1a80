"""The bridge's one MQTT connection: publish a VisitorRequest, await its VisitorReply."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from config.settings import BridgeSettings, MqttSettings
from messaging import IncomingMessage, MqttClient, NotConnected
from schemas import topics
from schemas.base import new_id
from schemas.codec import decode, salvage_ids
from schemas.errors import PayloadError
from schemas.visitor import VisitorAction, VisitorReply, VisitorRequest
from visitor_api.errors import BadReply, BrokerUnavailable, Refused, ReplyTimeout

log = logging.getLogger(__name__)


class VisitorRelay:
    """Sends requests on `visitor/register` and matches replies by request id.

    One subscription to every reply topic for the process's lifetime: subscribing per request
    would cost a broker round trip each time and could miss a fast reply.
    """

    def __init__(self, mqtt: MqttSettings, bridge: BridgeSettings, client_id: str | None = None) -> None:
        self.mqtt = MqttClient(mqtt, client_id or f"visitor-api-{new_id()[:8]}")
        self.mqtt.subscribe(topics.VISITOR_REPLY_FILTER, self._on_reply)
        self._reply_timeout_s = bridge.reply_timeout_s
        self._broker_wait_s = bridge.broker_wait_s
        self._pending: dict[str, asyncio.Future[VisitorReply]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Connect in the background (requests wait briefly for the connection, then get 503)."""
        if self._task is None:
            self._task = asyncio.create_task(self.mqtt.run(), name="visitor-api-mqtt")

    async def stop(self) -> None:
        self.mqtt.stop()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, 10)
            except TimeoutError:
                log.warning("visitor api mqtt client did not stop in time")
        for future in self._pending.values():
            future.cancel()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def call(self, resident_id: str, action: VisitorAction, request_id: str | None = None) -> VisitorReply:
        """Forward `action` for `resident_id`; the reply when it is ok, else a typed ApiError."""
        reply = await self.send(resident_id, action, request_id)
        if not reply.ok:
            if reply.code is None:
                raise BadReply("the visitor service refused without a reason")
            raise Refused(reply.code, reply.error)
        return reply

    async def send(self, resident_id: str, action: VisitorAction, request_id: str | None = None) -> VisitorReply:
        """Publish one request and wait for its reply; raises BrokerUnavailable, ReplyTimeout, BadReply.

        A caller-chosen `request_id` makes a retry idempotent: visitor_worker answers a request id it
        has seen with its first reply. Two identical ids in flight here share one request.
        """
        request = VisitorRequest(request_id=request_id or new_id(), resident_id=resident_id, action=action)
        loop = asyncio.get_running_loop()
        in_flight = self._pending.get(request.request_id)
        if in_flight is not None:
            try:
                return await asyncio.wait_for(asyncio.shield(in_flight), self._reply_timeout_s)
            except TimeoutError:
                raise ReplyTimeout() from None
        deadline = loop.time() + self._reply_timeout_s
        future: asyncio.Future[VisitorReply] = loop.create_future()
        self._pending[request.request_id] = future
        try:
            # Connected: the PUBACK may take the whole budget. Not connected: wait only briefly.
            wait = self._reply_timeout_s if self.mqtt.is_connected else self._broker_wait_s
            try:
                await self.mqtt.publish(topics.VISITOR_REGISTER, request, timeout=wait)
            except NotConnected:
                log.warning("visitor request %s not sent: broker unreachable", request.request_id)
                raise BrokerUnavailable() from None
            try:
                return await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
            except TimeoutError:
                log.warning("visitor request %s (%s): no reply within %.1fs", request.request_id,
                            action.action, self._reply_timeout_s)
                raise ReplyTimeout() from None
        finally:
            self._pending.pop(request.request_id, None)

    async def _on_reply(self, msg: IncomingMessage) -> None:
        try:
            reply = decode(VisitorReply, msg.payload, topics.MAX_VISITOR_REPLY_BYTES)
        except PayloadError as exc:
            request_id = salvage_ids(msg.payload, "request_id").get("request_id")
            future = self._pending.get(request_id) if request_id else None
            log.warning("unusable visitor reply on %s: %s", msg.topic, exc)
            if future is not None and not future.done() and msg.topic == _reply_topic(request_id):
                future.set_exception(BadReply())
            return
        if msg.topic != _reply_topic(reply.request_id):
            log.warning("visitor reply for %s arrived on %s: ignored", reply.request_id, msg.topic)
            return
        future = self._pending.get(reply.request_id)
        if future is not None and not future.done():
            future.set_result(reply)


def _reply_topic(request_id: str | None) -> str | None:
    if request_id is None:
        return None
    with contextlib.suppress(ValueError):
        return topics.visitor_reply(request_id)
    return None
