"""One admin-worker client per logged-in admin, so every command carries its real author."""

from __future__ import annotations

import asyncio

from admin_worker.client import AdminClient
from config.settings import MqttSettings
from schemas.admin import AdminAction, AdminReply


class AdminPool:
    """Lazily opened AdminClients keyed by admin id.

    Replies come back on `admin/reply/{admin_id}`; a client per admin (a handful per site) keeps
    that subscription in place before the first command goes out, with no wildcard topic needed.
    """

    def __init__(self, mqtt: MqttSettings, reply_timeout: float) -> None:
        self._mqtt = mqtt
        self._reply_timeout = reply_timeout
        self._clients: dict[str, AdminClient] = {}
        self._lock = asyncio.Lock()

    async def send(self, admin_id: str, action: AdminAction) -> AdminReply:
        """Send `action` as `admin_id`; raises admin_worker.client.AdminClientError subclasses."""
        client = await self._client(admin_id)
        return await client.send(action)

    async def _client(self, admin_id: str) -> AdminClient:
        async with self._lock:
            client = self._clients.get(admin_id)
            if client is None:
                client = AdminClient(self._mqtt, admin_id, client_prefix="console-admin",
                                     reply_timeout=self._reply_timeout)
                self._clients[admin_id] = client
        await client.start(connect_timeout=min(self._reply_timeout, 10.0))
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
