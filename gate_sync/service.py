"""The gate sync service: keeps every gate's offline allow-list current on `gates/{id}/sync` and
takes in the decisions gates made offline (`gates/+/logs`).

Run one per site: versions and lineage live in this process (a restart starts a new lineage and
re-sends snapshots).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from auth_worker.refresh import SnapshotRefresher
from auth_worker.snapshot import AccessSnapshot
from config.settings import Settings
from gate_sync.allow_list import AllowList, allow_lists
from gate_sync.feed import GateFeed, VersionClock
from gate_sync.log_intake import LogIntake
from messaging import IncomingMessage, MqttClient, NotConnected
from schemas import topics
from schemas.base import new_id
from schemas.codec import decode_from_gate, encode
from schemas.errors import PayloadError, TopicError
from schemas.gate import MAX_GATE_SYNC_BYTES, GateState, GateStatus, GateSync, OfflinePass
from store.repository import Store

log = logging.getLogger(__name__)

# Passes valid per gate; the visitor pass store plugs in here (None: no passes offline).
PassSource = Callable[[], dict[str, list[OfflinePass]]]


@dataclass
class SyncStats:
    published: int = 0
    snapshots: int = 0
    too_large: int = 0
    handshakes: int = 0
    last_bytes: dict[str, int] = field(default_factory=dict)


class GateSyncService:
    """Publishes per-gate allow-list snapshots and deltas (retained) and ingests offline logs."""

    def __init__(self, settings: Settings, store: Store, key_id: str, *, client_id: str | None = None,
                 max_delta: int = 2000, pass_source: PassSource | None = None,
                 pass_public_key: str | None = None, snapshot_min_interval_s: float = 1.0) -> None:
        self._settings = settings
        self._store = store
        self._key_id = key_id
        self._max_delta = max_delta
        self._pass_source = pass_source
        self._pass_public_key = pass_public_key
        self._snapshot_min_interval_s = snapshot_min_interval_s
        self.lineage = new_id()[:16]
        self._clock = VersionClock()
        self.feeds: dict[str, GateFeed] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._last_forced: dict[str, float] = {}
        self.client_id = client_id or f"gate-sync-{new_id()[:8]}"
        self.mqtt = MqttClient(settings.mqtt, self.client_id, on_connect=self._on_connect)
        self.intake = LogIntake(store, self.mqtt)
        self.refresher = SnapshotRefresher(store, self._on_snapshot, settings.store.cache_poll_s)
        self.stats = SyncStats()
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Load the allow-lists, then publish and take logs until cancelled or `stop()`."""
        await self.refresher.reload()
        self.mqtt.subscribe(topics.GATE_LOGS_FILTER, self.intake.handle)
        self.mqtt.subscribe(topics.GATE_STATUS_FILTER, self._on_status)
        tasks = [asyncio.create_task(self.refresher.run(), name="gate-sync-refresh"),
                 asyncio.create_task(self._publisher(), name="gate-sync-publish")]
        self.ready.set()
        try:
            await self.mqtt.run()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        self.mqtt.stop()

    # ---- allow-lists ---------------------------------------------------------------------------
    def _on_snapshot(self, snapshot: AccessSnapshot) -> None:
        lists = allow_lists(snapshot)
        passes = self._pass_source() if self._pass_source is not None else {}
        for gate_id, plist in passes.items():
            if gate_id in lists:
                lists[gate_id].passes = {p.pass_id: p for p in plist}
        # A gate removed from the store keeps a feed with an empty list: it must admit nobody.
        for gate_id in self.feeds.keys() - lists.keys():
            lists[gate_id] = AllowList()
        for gate_id, allow in lists.items():
            feed = self.feeds.get(gate_id)
            if feed is None:
                self.feeds[gate_id] = GateFeed(gate_id, self.lineage, self._clock, self._max_delta, allow)
                self._dirty.add(gate_id)
            elif feed.update(allow):
                self._dirty.add(gate_id)
        if self._dirty:
            self._wake.set()

    def message_for(self, gate_id: str) -> GateSync:
        return self.feeds[gate_id].message(self._key_id, self._settings.auth.timezone, self._pass_public_key)

    # ---- publishing ----------------------------------------------------------------------------
    async def _on_connect(self, client: MqttClient) -> None:
        # The broker may have lost the retained messages (restart without persistence): re-send all.
        self._dirty.update(self.feeds)
        self._wake.set()

    async def _publisher(self) -> None:
        """One publisher, so a gate's retained message is always its latest version."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self.mqtt.is_connected:
                continue  # _on_connect wakes us again
            for gate_id in sorted(self._dirty):
                self._dirty.discard(gate_id)
                try:
                    await self._publish(gate_id)
                except NotConnected as exc:
                    self._dirty.add(gate_id)
                    log.warning("gate=%s sync not published, will retry on reconnect: %s", gate_id, exc)
                    break

    async def _publish(self, gate_id: str) -> None:
        message = self.message_for(gate_id)
        payload = encode(message)
        if len(payload) > MAX_GATE_SYNC_BYTES and not message.snapshot:
            self.feeds[gate_id].reset_to_snapshot()
            message = self.message_for(gate_id)
            payload = encode(message)
        if len(payload) > MAX_GATE_SYNC_BYTES:
            self.stats.too_large += 1
            log.error("gate=%s allow-list of %d credentials is %d bytes, over the %d-byte packet budget: "
                      "not synced", gate_id, len(message.entries), len(payload), MAX_GATE_SYNC_BYTES)
            return
        await self.mqtt.publish(topics.gate_sync(gate_id), payload, retain=True, timeout=30.0)
        self.stats.published += 1
        self.stats.snapshots += int(message.snapshot)
        self.stats.last_bytes[gate_id] = len(payload)
        log.info("gate=%s sync v%d %s: %d entries, %d removed, %d bytes", gate_id, message.version,
                 "snapshot" if message.snapshot else f"delta from v{message.base_version}",
                 len(message.entries), len(message.removed), len(payload))

    async def _on_status(self, msg: IncomingMessage) -> None:
        """A gate (re)connected: if the retained message cannot bring its cache up to date, send a
        snapshot."""
        try:
            status = decode_from_gate(GateStatus, msg.topic, msg.payload, topics.gate_of_status)
        except (TopicError, PayloadError) as exc:
            log.warning("unreadable gate status on %s: %s", msg.topic[:80], exc)
            return
        gate_id = status.gate_id
        feed = self.feeds.get(gate_id)
        if feed is None or status.state is not GateState.ONLINE:
            return
        if status.cache_version == feed.version or feed.can_delta_from(status.cache_version):
            return
        now = asyncio.get_running_loop().time()
        if now - self._last_forced.get(gate_id, -1e9) < self._snapshot_min_interval_s:
            return  # the gate asks again if it still needs one
        self._last_forced[gate_id] = now
        self.stats.handshakes += 1
        log.info("gate=%s reports cache v%d, feed at v%d from snapshot v%d: sending a snapshot", gate_id,
                 status.cache_version, feed.version, feed.snapshot_version)
        feed.reset_to_snapshot()
        self._dirty.add(gate_id)
        self._wake.set()
