"""Keeps the worker's FaceIndex equal to the store's face_templates, incrementally."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from pymongo.errors import PyMongoError

from face_engine.index import FaceIndex
from face_engine.templates import embedding_of
from store.errors import StoreError
from store.repository import Store

log = logging.getLogger(__name__)


class FaceIndexSync:
    """Loads every template of the site's model, then applies inserts and deletes as they happen.

    A full rebuild runs every `rebuild_s` as a safety net (and is the only path on a MongoDB
    without change streams).
    """

    def __init__(self, store: Store, model_id: str, rebuild_s: float = 300.0) -> None:
        self._store = store
        self._model_id = model_id
        self._rebuild_s = rebuild_s
        self.index = FaceIndex()
        self.ready = asyncio.Event()
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._during_load: list[dict[str, Any]] | None = None
        self.applied = 0

    def load(self) -> FaceIndex:
        """A fresh index of all templates (blocking: call from a thread)."""
        index = FaceIndex()
        for template in self._store.iter_face_templates(self._model_id):
            index.add(template.id, template.user_id, embedding_of(template))
        return index

    async def run(self) -> None:
        """Open the change stream, load the index (`ready` is set then), rebuild periodically."""
        loop = asyncio.get_running_loop()
        watcher = threading.Thread(target=self._watch, args=(loop,), name="face-watch", daemon=True)
        watcher.start()
        try:
            # Stream first, then load: nothing committed in between can be missed.
            await asyncio.to_thread(self._opened.wait, 5.0)
            while True:
                await self._rebuild()
                self.ready.set()
                await asyncio.sleep(self._rebuild_s)
        finally:
            self._stop.set()

    async def _rebuild(self) -> None:
        self._during_load = []
        try:
            fresh = await asyncio.to_thread(self.load)
        except PyMongoError as exc:
            log.warning("face index load failed, keeping the current one: %s", exc)
            return
        finally:
            pending, self._during_load = self._during_load or [], None
        # Changes that arrived while loading may postdate the load's read: replay them (idempotent).
        self.index = fresh
        for change in pending:
            self._apply(change)

    def _apply(self, change: dict[str, Any]) -> None:
        if self._during_load is not None:
            self._during_load.append(change)
        op = change.get("operationType")
        template_id = str(change.get("documentKey", {}).get("_id", ""))
        if op in ("insert", "replace", "update") and change.get("fullDocument"):
            try:
                template = self._store.face_template_from_doc(change["fullDocument"])
            except StoreError as exc:
                log.error("face template change ignored: %s", exc)
                return
            if template.model_id == self._model_id:
                self.index.add(template.id, template.user_id, embedding_of(template))
        elif op == "delete":
            self.index.remove(template_id)
        self.applied += 1

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        while not self._stop.is_set():
            try:
                with self._store.face_templates.watch(full_document="updateLookup",
                                                      max_await_time_ms=500) as stream:
                    self._opened.set()
                    while not self._stop.is_set():
                        change = stream.try_next()
                        if change is not None:
                            loop.call_soon_threadsafe(self._apply, change)
            except PyMongoError as exc:
                self._opened.set()
                log.info("face change stream unavailable (%s); rebuilding every %.0fs", exc, self._rebuild_s)
                self._stop.wait(self._rebuild_s)
            except RuntimeError:
                return  # event loop closed: shutting down
