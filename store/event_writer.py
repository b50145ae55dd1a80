"""Batched, retrying writes of access events, so the store stays off the decision path."""

from __future__ import annotations

import asyncio
import logging

from schemas.documents import AccessEventRecord
from store.repository import Store

log = logging.getLogger(__name__)


class EventWriter:
    """Buffers access events and inserts them in batches; keeps them until the store takes them."""

    def __init__(self, store: Store, batch_size: int = 500, flush_ms: int = 200,
                 max_buffer: int = 200_000) -> None:
        self._store = store
        self._batch_size = batch_size
        self._flush_s = flush_ms / 1000
        self._max_buffer = max_buffer
        self._buffer: list[AccessEventRecord] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self.written = 0
        self.dropped = 0

    def add(self, record: AccessEventRecord) -> None:
        """Queue one event (never blocks the caller)."""
        if len(self._buffer) >= self._max_buffer:
            # Only when the store has been down for a very long time; say so loudly.
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("event buffer full (%d): store down too long, %d events dropped",
                          self._max_buffer, self.dropped)
            return
        self._buffer.append(record)
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def run(self) -> None:
        """Flush every `flush_ms` (or sooner when a batch fills) until `close()`."""
        backoff = self._flush_s
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), backoff)
            except TimeoutError:
                pass
            self._wake.clear()
            ok = await self._flush()
            backoff = self._flush_s if ok else min(backoff * 2, 5.0)

    async def close(self) -> None:
        """Stop the loop and write what is left (best effort)."""
        self._stopping = True
        self._wake.set()
        for _ in range(3):
            if not self._buffer or await self._flush():
                break
        if self._buffer:
            log.error("%d access events could not be written at shutdown", len(self._buffer))

    async def _flush(self) -> bool:
        while self._buffer:
            batch = self._buffer[: self._batch_size]
            try:
                await asyncio.to_thread(self._store.append_access_events, batch)
            except Exception as exc:  # noqa: BLE001 - any driver or store error: keep the batch, retry
                log.warning("writing %d access events failed, will retry: %s", len(batch), exc)
                return False
            # Events added while we wrote sit after the batch: drop exactly what was written.
            del self._buffer[: len(batch)]
            self.written += len(batch)
        return True
