"""Uploads the offline queue on `gates/{id}/logs` in batches once the link (and the sync) is back;
entries leave the queue only when the server acknowledges storing them."""

from __future__ import annotations

import asyncio
import logging

from edge_agent.offline_log import OfflineLog
from messaging import IncomingMessage, MqttClient, NotConnected
from schemas import topics
from schemas.codec import decode
from schemas.errors import PayloadError
from schemas.gate import GateLogAck, GateLogBatch

log = logging.getLogger(__name__)


class LogUploader:
    """One batch in flight at a time; an unacknowledged batch is sent again (the server stores
    each decision once by event id)."""

    def __init__(self, gate_id: str, mqtt: MqttClient, queue: OfflineLog, batch_size: int,
                 ack_timeout_s: float) -> None:
        self._gate_id = gate_id
        self._mqtt = mqtt
        self._queue = queue
        self._batch_size = batch_size
        self._ack_timeout_s = ack_timeout_s
        self._wake = asyncio.Event()
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self.sent_batches = 0
        self.acked = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self, synced: asyncio.Event) -> None:
        """Upload whenever woken (a new decision, a reconnect) until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            # The sync first: revocations reach the cache before we talk about the past.
            await synced.wait()
            try:
                await self._drain()
            except NotConnected as exc:
                log.info("gate=%s upload paused: %s", self._gate_id, exc)

    async def _drain(self) -> None:
        backoff = self._ack_timeout_s
        while self._mqtt.is_connected:
            entries = self._queue.oldest(self._batch_size)
            if not entries:
                return
            batch = GateLogBatch(gate_id=self._gate_id, decisions=[d for _, d in entries])
            acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting[batch.msg_id] = acked
            try:
                await self._mqtt.publish(topics.gate_logs(self._gate_id), batch, timeout=backoff)
                self.sent_batches += 1
                await asyncio.wait_for(acked, backoff)
                backoff = self._ack_timeout_s
            except TimeoutError:
                log.warning("gate=%s no ack for %d offline decisions in %.1fs: sending again", self._gate_id,
                            len(entries), backoff)
                backoff = min(backoff * 2, 60.0)
            finally:
                self._waiting.pop(batch.msg_id, None)

    async def on_ack(self, msg: IncomingMessage) -> None:
        try:
            ack = decode(GateLogAck, msg.payload)
        except PayloadError as exc:
            log.warning("gate=%s ignored unreadable log ack: %s", self._gate_id, exc)
            return
        if ack.gate_id != self._gate_id:
            return
        # Whatever batch it answers, these decisions are stored: they may go.
        removed = self._queue.remove(ack.event_ids)
        self.acked += removed
        future = self._waiting.get(ack.batch_id)
        if future is not None and not future.done():
            future.set_result(None)
