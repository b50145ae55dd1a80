"""The sending side of `admin/command`: publish a command as one admin, wait for its reply.

Shared by everything that drives the admin worker (the CLI, the web console). Each client has its
own connection, subscribed to `admin/reply/{admin_id}` before it counts as connected, so a reply
can never arrive before the subscription that should receive it.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from config.settings import MqttSettings
from messaging import IncomingMessage, MqttClient, NotConnected
from schemas import topics
from schemas.admin import AdminAction, AdminCommand, AdminReply
from schemas.base import new_id
from schemas.codec import decode
from schemas.errors import PayloadError

log = logging.getLogger(__name__)


class AdminClientError(Exception):
    """A command could not be carried to the admin worker and back."""


class AdminUnreachable(AdminClientError):
    """The broker could not be reached (not connected, or the publish failed)."""


class AdminTimeout(AdminClientError):
    """The command went out but no reply came in time: is an admin worker running?"""


class AdminClient:
    """Sends admin commands as `admin_id` and returns the worker's replies."""

    def __init__(self, mqtt: MqttSettings, admin_id: str, *, client_prefix: str = "admin-client",
                 reply_timeout: float = 30.0) -> None:
        self.admin_id = admin_id
        self._reply_topic = topics.admin_reply(admin_id)  # validates the id
        self.reply_timeout = reply_timeout
        self.mqtt = MqttClient(mqtt, f"{client_prefix}-{new_id()[:12]}")
        self.mqtt.subscribe(self._reply_topic, self._on_reply)
        self._pending: dict[str, asyncio.Future[AdminReply]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self, connect_timeout: float = 10.0) -> None:
        """Connect (and subscribe to the reply topic); raises AdminUnreachable."""
        if self._task is None:
            self._task = asyncio.create_task(self.mqtt.run(), name=f"admin-client-{self.admin_id}")
        try:
            await self.mqtt.wait_connected(connect_timeout)
        except TimeoutError:
            raise AdminUnreachable(f"broker unreachable within {connect_timeout:.0f}s") from None

    async def close(self) -> None:
        """Disconnect; pending sends fail with AdminUnreachable."""
        self.mqtt.stop()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(AdminUnreachable("client closed"))
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, 10)
            except TimeoutError:
                log.warning("admin client %s did not stop in time", self.mqtt.client_id)

    async def send(self, action: AdminAction, *, timeout: float | None = None,
                   command_id: str | None = None) -> AdminReply:
        """Publish `action` and wait for its reply; raises AdminUnreachable, AdminTimeout.

        A refusal is a reply (`ok` False), not an exception.
        """
        wait = self.reply_timeout if timeout is None else timeout
        command = AdminCommand(command_id=command_id or new_id(), admin_id=self.admin_id, command=action)
        future: asyncio.Future[AdminReply] = asyncio.get_running_loop().create_future()
        self._pending[command.command_id] = future
        try:
            if self._task is None:
                await self.start()
            try:
                await self.mqtt.publish(topics.ADMIN_COMMAND, command, timeout=min(wait, 10.0))
            except NotConnected as exc:
                raise AdminUnreachable(str(exc)) from None
            try:
                return await asyncio.wait_for(asyncio.shield(future), wait)
            except TimeoutError:
                raise AdminTimeout(f"no reply to {action.action} within {wait:.0f}s: "
                                   "is an admin worker running?") from None
        finally:
            self._pending.pop(command.command_id, None)

    async def _on_reply(self, msg: IncomingMessage) -> None:
        try:
            reply = decode(AdminReply, msg.payload, topics.MAX_ADMIN_REPLY_BYTES)
        except PayloadError as exc:
            log.warning("admin client %s: unreadable reply dropped: %s", self.mqtt.client_id, exc)
            return
        future = self._pending.get(reply.command_id)
        if future is not None and not future.done():
            future.set_result(reply)

    async def __aenter__(self) -> AdminClient:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
