"""Batched, retrying writes of access events, so the store stays off the decision path.

With a journal (store/event_journal.py) every event is on local disk before the caller answers,
so a worker killed between answering and flushing loses no record: whoever adopts its journal
writes them.
"""

from __future__ import annotations

import asyncio
import logging

from schemas.documents import AccessEventRecord
from store.event_journal import EventJournal, JournalError
from store.repository import Store

log = logging.getLogger(__name__)


class EventWriter:
    """Buffers access events and inserts them in batches; keeps them until the store takes them."""

    def __init__(self, store: Store, batch_size: int = 500, flush_ms: int = 200,
                 max_buffer: int = 200_000, journal: EventJournal | None = None,
                 adopt_every_s: float = 1.0) -> None:
        self._store = store
        self._journal = journal
        self._adopt_every_s = adopt_every_s
        self._journal_failures = 0
        self._batch_size = batch_size
        self._flush_s = flush_ms / 1000
        self._max_buffer = max_buffer
        self._buffer: list[AccessEventRecord] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self.written = 0
        self.dropped = 0
        self.adopted = 0

    def open(self) -> None:
        """Take this writer's journal (raises JournalError when its directory is unusable)."""
        if self._journal is not None:
            self._journal.open()
            log.info("event journal %s in %s", self._journal.owner, self._journal.directory)

    def add(self, record: AccessEventRecord) -> None:
        """Queue one event (never blocks the caller)."""
        if len(self._buffer) >= self._max_buffer:
            # Only when the store has been down for a very long time; say so loudly.
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("event buffer full (%d): store down too long, %d events dropped",
                          self._max_buffer, self.dropped)
            return
        if self._journal is not None:
            self._write_ahead(record)
        self._buffer.append(record)
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    def _write_ahead(self, record: AccessEventRecord) -> None:
        assert self._journal is not None
        try:
            self._journal.append(record)
        except JournalError as exc:
            # The answer matters more than its crash insurance: keep deciding, say so loudly.
            self._journal_failures += 1
            if self._journal_failures % 1000 == 1:
                log.error("access events not journaled (%d so far), a crash would lose them: %s",
                          self._journal_failures, exc)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def run(self) -> None:
        """Flush every `flush_ms` (or sooner when a batch fills) until `close()`; with a journal,
        look for dead writers' journals every `adopt_every_s` too."""
        loop = asyncio.get_running_loop()
        backoff = self._flush_s
        next_flush = loop.time() + backoff
        next_adopt = loop.time()
        while not self._stopping:
            if self._journal is not None and loop.time() >= next_adopt:
                await self._adopt()
                next_adopt = loop.time() + self._adopt_every_s
            due = next_flush if self._journal is None else min(next_flush, next_adopt)
            try:
                await asyncio.wait_for(self._wake.wait(), max(due - loop.time(), 0.0))
            except TimeoutError:
                pass
            if self._wake.is_set() or loop.time() >= next_flush:
                self._wake.clear()
                ok = await self._flush()
                backoff = self._flush_s if ok else min(backoff * 2, 5.0)
                next_flush = loop.time() + backoff

    async def close(self) -> None:
        """Stop the loop and write what is left (best effort)."""
        self._stopping = True
        self._wake.set()
        for _ in range(3):
            if not self._buffer or await self._flush():
                break
        if self._buffer:
            log.error("%d access events could not be written at shutdown%s", len(self._buffer),
                      "; they stay in the journal" if self._journal is not None else "")
        if self._journal is not None:
            self._journal.close(everything_stored=not self._buffer)

    async def _adopt(self) -> None:
        """Take over the journals of writers that died, so their events reach the store."""
        assert self._journal is not None
        try:
            orphans = await asyncio.to_thread(self._journal.orphans)
        except OSError as exc:
            log.warning("event journal scan failed: %s", exc)
            return
        for orphan in orphans:
            # Journaled again under this writer before the dead one's files go.
            for record in orphan.records:
                self.add(record)
            orphan.discard()
            self.adopted += len(orphan.records)
            if orphan.records or orphan.torn:
                log.warning("adopted %d access events from a stopped writer's journal (%s)%s",
                            len(orphan.records), orphan.owner,
                            f", {orphan.torn} torn lines skipped" if orphan.torn else "")

    async def _flush(self) -> bool:
        if self._journal is not None:
            # Everything buffered now is in sealed segments; they go once the buffer has emptied.
            self._journal.seal()
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
        if self._journal is not None:
            self._journal.forget_sealed()
        return True
