"""Test peers of the visitor worker: the resident's side of `visitor/register` (what the HTTP bridge
does), and a push channel that records what it was asked to send."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from config.settings import Settings
from messaging import IncomingMessage, MqttClient
from notifier.base import Channel, Notification, NotifyError
from schemas import topics
from schemas.base import new_id
from schemas.codec import decode
from schemas.visitor import VisitorAction, VisitorReply, VisitorRequest
from store.repository import Store
from visitor_worker.service import VisitorWorker


class ResidentApp:
    """Publishes VisitorRequests and collects every reply, by request id."""

    def __init__(self, settings: Settings, client_id: str = "resident-app") -> None:
        self.mqtt = MqttClient(settings.mqtt, client_id)
        self.replies: dict[str, list[VisitorReply]] = {}
        self._arrived = asyncio.Condition()
        self.mqtt.subscribe("visitor/reply/+", self._on_reply)

    async def _on_reply(self, msg: IncomingMessage) -> None:
        reply = decode(VisitorReply, msg.payload, 512 * 1024)
        async with self._arrived:
            self.replies.setdefault(reply.request_id, []).append(reply)
            self._arrived.notify_all()

    async def wait_reply(self, request_id: str, count: int = 1, timeout: float = 10.0) -> VisitorReply:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.replies.get(request_id, [])) >= count),
                                   timeout)
        return self.replies[request_id][count - 1]

    async def send(self, resident_id: str, action: VisitorAction, request_id: str | None = None) -> VisitorReply:
        request = VisitorRequest(request_id=request_id or new_id(), resident_id=resident_id, action=action)
        seen = len(self.replies.get(request.request_id, []))
        await self.mqtt.publish(topics.VISITOR_REGISTER, request)
        return await self.wait_reply(request.request_id, seen + 1)

    async def send_raw(self, payload: bytes) -> None:
        await self.mqtt.publish(topics.VISITOR_REGISTER, payload)


@dataclass
class RecordingChannel:
    """A Channel that keeps what it is asked to send; `fail` makes it refuse, `delay_s` slows it."""

    name: str = "recording"
    fail: bool = False
    delay_s: float = 0.0
    sent: list[Notification] = field(default_factory=list)

    async def send(self, notification: Notification) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise NotifyError("service unavailable (503)")
        self.sent.append(notification)


@contextlib.asynccontextmanager
async def running_visitor_worker(settings: Settings, store: Store, channels: Sequence[Channel] | None = None,
                                 client_id: str = "visitor-test") -> AsyncIterator[tuple[VisitorWorker, ResidentApp]]:
    """A visitor worker and a resident app, both connected; stopped afterwards."""
    worker = VisitorWorker(settings, store, channels=list(channels or []), client_id=client_id)
    app = ResidentApp(settings, f"{client_id}-app")
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(app.mqtt.run())]
    try:
        await asyncio.wait_for(asyncio.gather(worker.ready.wait(), worker.mqtt.wait_connected(),
                                              app.mqtt.wait_connected()), 15)
        yield worker, app
    finally:
        worker.stop()
        app.mqtt.stop()
        _, late = await asyncio.wait(tasks, timeout=10)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
