"""Keeps the worker's AccessSnapshot current: change streams when the store has them, polling always."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from pymongo.errors import PyMongoError

from auth_worker.snapshot import AccessSnapshot
from store.repository import DECISION_COLLECTIONS, Store

log = logging.getLogger(__name__)


class SnapshotRefresher:
    """Reloads the snapshot when a decision-relevant collection changes, and every `poll_s`."""

    def __init__(self, store: Store, on_snapshot: Callable[[AccessSnapshot], None],
                 poll_s: float = 30.0) -> None:
        self._store = store
        self._on_snapshot = on_snapshot
        self._poll_s = poll_s
        self._changed = asyncio.Event()
        self._stop = threading.Event()
        self.reloads = 0
        self.watching = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        watcher = threading.Thread(target=self._watch, args=(loop,), name="snapshot-watch", daemon=True)
        watcher.start()
        try:
            while True:
                try:
                    await asyncio.wait_for(self._changed.wait(), self._poll_s)
                except TimeoutError:
                    pass
                # Clear before loading: a change during the load triggers one more reload.
                self._changed.clear()
                await self.reload()
        finally:
            self._stop.set()

    async def reload(self) -> None:
        try:
            snapshot = await asyncio.to_thread(AccessSnapshot.load, self._store)
        except PyMongoError as exc:
            log.warning("snapshot reload failed, keeping the previous one: %s", exc)
            return
        self._on_snapshot(snapshot)
        self.reloads += 1

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        pipeline = [{"$match": {"ns.coll": {"$in": list(DECISION_COLLECTIONS)}}}]
        while not self._stop.is_set():
            try:
                with self._store.db.watch(pipeline, max_await_time_ms=500) as stream:
                    self.watching = True
                    # Changes made before the stream opened were missed: reload once now.
                    loop.call_soon_threadsafe(self._changed.set)
                    while not self._stop.is_set():
                        if stream.try_next() is not None:
                            loop.call_soon_threadsafe(self._changed.set)
            except PyMongoError as exc:
                self.watching = False
                log.info("change stream unavailable (%s); relying on %.0fs polling", exc, self._poll_s)
                self._stop.wait(self._poll_s)
            except RuntimeError:
                return  # the event loop closed under us: the worker is shutting down
