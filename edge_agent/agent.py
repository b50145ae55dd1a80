"""The gate agent: presents credentials, waits for the decision, drives the relay, fails closed.

When no answer comes in time (broker or worker down), it decides from its offline cache, queues
the decision durably and uploads the queue once the link is back."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from accounts.attempts import AttemptLimiter, TooManyAttempts
from config.settings import Settings
from edge_agent.cache import CacheAnswer, GateCache, SyncRefused
from edge_agent.db import open_gate_db
from edge_agent.keys import gate_hasher
from edge_agent.offline import decide_offline
from edge_agent.offline_log import OfflineLog
from edge_agent.relay import DoorRelay, make_relay
from edge_agent.uploader import LogUploader
from messaging import IncomingMessage, MqttClient, NotConnected, Will
from schemas import topics
from schemas.access import AccessRequest, AccessResponse, CardCredential, Credential, PinCredential
from schemas.base import new_id, utc_now
from schemas.codec import decode, encode
from schemas.codes import ReasonCode
from schemas.errors import PayloadError, TopicError
from schemas.gate import MAX_GATE_SYNC_BYTES, GateHeartbeat, GatePing, GateState, GateStatus, GateSync, OfflineDecision

log = logging.getLogger(__name__)

# While the cache is known to be behind, ask the server for a snapshot this often.
_RESYNC_ASK_S = 2.0


@dataclass(frozen=True, slots=True)
class GateDecision:
    """What the gate did with one presented credential."""

    request_id: str
    granted: bool
    reason: str
    subject_id: str | None
    round_trip_ms: float
    response: AccessResponse | None  # None when the gate decided alone
    offline: bool = False  # decided from the gate's cache (queued for upload)


def cache_path(settings: Settings, gate_id: str) -> Path:
    """Where this gate keeps its cache and offline queue."""
    return settings.gate.cache_path or settings.data_dir / f"gate-{gate_id}.sqlite3"


class GateAgent:
    """One gate: an MQTT connection with a last will, and a door that opens only on a matching grant
    (online) or a positive hit in its synced cache (offline)."""

    def __init__(self, settings: Settings, gate_id: str | None = None, relay: DoorRelay | None = None) -> None:
        self.gate_id = gate_id or settings.gate.gate_id
        topics.gate_status(self.gate_id)  # validates the id early
        self._settings = settings
        self.relay = relay or make_relay(self.gate_id, settings.gate.relay_pin)
        self._db = open_gate_db(cache_path(settings, self.gate_id))
        self.cache = GateCache(self._db, self.gate_id)
        self.offline_log = OfflineLog(self._db)
        self._pin_attempts = AttemptLimiter(settings.auth.pin_max_failures, settings.auth.pin_window_s)
        self._hasher = gate_hasher(settings)
        offline = GateStatus(gate_id=self.gate_id, state=GateState.OFFLINE, cache_version=self.cache.version)
        self.mqtt = MqttClient(
            settings.mqtt, f"gate-{self.gate_id}",
            will=Will(topics.gate_status(self.gate_id), encode(offline), retain=True),
            on_connect=self._on_connected,
        )
        self.uploader = LogUploader(self.gate_id, self.mqtt, self.offline_log, settings.gate.upload_batch_size,
                                    settings.gate.upload_ack_timeout_s)
        self.mqtt.subscribe(topics.access_response(self.gate_id), self._on_response)
        self.mqtt.subscribe(topics.gate_sync(self.gate_id), self._on_sync)
        self.mqtt.subscribe(topics.gate_logs_ack(self.gate_id), self.uploader.on_ack)
        self.mqtt.subscribe(topics.gate_ping(self.gate_id), self._on_ping)
        self._pending: dict[str, asyncio.Future[AccessResponse]] = {}
        self._relock: asyncio.TimerHandle | None = None
        # Set once the sync retained for this connection was seen (or sync_wait_s passed without one).
        self._synced = asyncio.Event()
        self._sync_timer: asyncio.TimerHandle | None = None
        self.stale = False  # the cache missed changes it cannot apply: no offline grants until a snapshot
        self._last_ask = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    # ---- connection ----------------------------------------------------------------------------
    async def _on_connected(self, client: MqttClient) -> None:
        # Retained sync messages are delivered right after this hook: offline decisions wait for them.
        self._synced.clear()
        if self._sync_timer is not None:
            self._sync_timer.cancel()
        self._sync_timer = asyncio.get_running_loop().call_later(self._settings.gate.sync_wait_s, self._synced.set)
        await self._publish_status(client)
        self.uploader.wake()

    async def _publish_status(self, client: MqttClient) -> None:
        # cache_version 0 tells the sync service this cache can take nothing but a snapshot.
        version = 0 if self.stale else self.cache.version
        status = GateStatus(gate_id=self.gate_id, state=GateState.ONLINE, cache_version=version)
        await client.publish(topics.gate_status(self.gate_id), status, retain=True)

    async def run(self) -> None:
        """Keep the connection up, and upload the offline queue, until `stop()`."""
        self._tasks = [asyncio.create_task(self.uploader.run(self._synced), name=f"upload-{self.gate_id}")]
        try:
            await self.mqtt.run()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._sync_timer is not None:
                self._sync_timer.cancel()
            self._db.close()

    async def stop(self) -> None:
        """Lock the door, say goodbye (retained offline) and disconnect."""
        self._lock_door()
        if self.mqtt.is_connected:
            offline = GateStatus(gate_id=self.gate_id, state=GateState.OFFLINE, cache_version=self.cache.version)
            try:
                await self.mqtt.publish(topics.gate_status(self.gate_id), offline, retain=True, timeout=2.0)
            except NotConnected:
                pass
        self.mqtt.stop()

    # ---- decisions -----------------------------------------------------------------------------
    async def present(self, credential: Credential, request_id: str | None = None) -> GateDecision:
        """Ask for a decision on `credential`, retrying with the same request id within
        gate.request_timeout_s; with no answer, decide from the cache. The door opens only on a
        matching grant or a positive cache hit."""
        request = AccessRequest(request_id=request_id or new_id(), gate_id=self.gate_id, credential=credential)
        started = time.perf_counter()
        if self.mqtt.is_connected:
            response = await self._ask(request, started)
            if response is not None:
                rtt = (time.perf_counter() - started) * 1000
                if response.granted:
                    self._open_door()
                return GateDecision(request.request_id, response.granted, response.reason.value,
                                    response.subject_id, rtt, response)
        # The link is known to be down (no point making the resident wait) or nobody answered.
        return await self._decide_offline(request, started)

    async def _ask(self, request: AccessRequest, started: float) -> AccessResponse | None:
        gate = self._settings.gate
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AccessResponse] = loop.create_future()
        self._pending[request.request_id] = future
        per_try = gate.request_timeout_s / gate.online_attempts
        try:
            for attempt in range(1, gate.online_attempts + 1):
                deadline = started + per_try * attempt
                try:
                    # The same message each time: the worker answers a repeated request id once.
                    await self.mqtt.publish(topics.access_request(self.gate_id), request,
                                            timeout=max(0.01, deadline - time.perf_counter()))
                    remaining = max(0.0, deadline - time.perf_counter())
                    # shield: a timed-out try must not cancel the future a late answer may still fill.
                    return await asyncio.wait_for(asyncio.shield(future), remaining)
                except (TimeoutError, NotConnected) as exc:
                    log.info("gate=%s request=%s try %d/%d unanswered (%s)", self.gate_id, request.request_id,
                             attempt, gate.online_attempts, type(exc).__name__)
                    if future.done():
                        return future.result()
                    wait = deadline - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)  # a fast NotConnected must not burn the other tries
            return None
        finally:
            self._pending.pop(request.request_id, None)

    async def _decide_offline(self, request: AccessRequest, started: float) -> GateDecision:
        if self.mqtt.is_connected and not self._synced.is_set():
            # Just reconnected: revocations in the retained sync come before any offline grant.
            try:
                await asyncio.wait_for(self._synced.wait(), self._settings.gate.sync_wait_s)
            except TimeoutError:
                pass
        answer = self._offline_answer(request.credential)
        rtt = (time.perf_counter() - started) * 1000
        decision = OfflineDecision(event_id=new_id(), request_id=request.request_id, ts=utc_now(),
                                   credential_type=request.credential.type, granted=answer.granted,
                                   reason=answer.reason, subject_id=answer.subject_id, latency_ms=rtt)
        # On disk before the door moves: a power cut now still leaves the decision to upload.
        self.offline_log.append(decision)
        if answer.granted:
            self._open_door()
        log.warning("gate=%s request=%s OFFLINE %s %s", self.gate_id, request.request_id,
                    "GRANTED" if answer.granted else "DENIED", answer.reason.value)
        self.uploader.wake()
        return GateDecision(request.request_id, answer.granted, answer.reason.value, answer.subject_id,
                            (time.perf_counter() - started) * 1000, None, offline=True)

    def _offline_answer(self, credential: Credential) -> CacheAnswer:
        if not isinstance(credential, PinCredential):
            return decide_offline(credential, self.cache, self._hasher, utc_now(), self.gate_id, stale=self.stale)
        # The same keypad lock as the auth worker's: offline is no time to let a guesser try them all.
        key = (credential.unit or "").strip().upper()
        try:
            self._pin_attempts.check(key)
        except TooManyAttempts:
            return CacheAnswer(False, ReasonCode.TOO_MANY_ATTEMPTS)
        answer = decide_offline(credential, self.cache, self._hasher, utc_now(), self.gate_id, stale=self.stale)
        if answer.reason is ReasonCode.UNKNOWN_CREDENTIAL:
            self._pin_attempts.failed(key)
        elif answer.granted:
            self._pin_attempts.succeeded(key)
        return answer

    async def present_card(self, acc_id: str) -> GateDecision:
        return await self.present(CardCredential(acc_id=acc_id))

    def _open_door(self) -> None:
        # A second grant while open extends the time; the door always relocks on its own.
        if self._relock is not None:
            self._relock.cancel()
        self.relay.unlock()
        self._relock = asyncio.get_running_loop().call_later(self._settings.gate.door_open_s, self._lock_door)

    def _lock_door(self) -> None:
        if self._relock is not None:
            self._relock.cancel()
            self._relock = None
        self.relay.lock()

    # ---- messages ------------------------------------------------------------------------------
    async def _on_response(self, msg: IncomingMessage) -> None:
        try:
            if topics.gate_of_access_response(msg.topic) != self.gate_id:
                return
            response = decode(AccessResponse, msg.payload)
        except (PayloadError, TopicError) as exc:
            log.warning("gate=%s ignored unreadable response: %s", self.gate_id, exc)
            return
        if response.gate_id != self.gate_id:
            log.warning("gate=%s ignored response addressed to %s", self.gate_id, response.gate_id)
            return
        future = self._pending.get(response.request_id)
        if future is None or future.done():
            # Late, duplicate or never asked for: never a reason to open the door.
            log.info("gate=%s request=%s unsolicited or late response ignored", self.gate_id,
                     response.request_id)
            return
        future.set_result(response)

    async def _on_sync(self, msg: IncomingMessage) -> None:
        # No await before apply: sync messages are applied in the order they arrived.
        if msg.topic != topics.gate_sync(self.gate_id):
            return
        try:
            sync = decode(GateSync, msg.payload, MAX_GATE_SYNC_BYTES)
            applied = self.cache.apply(sync)
        except PayloadError as exc:
            log.warning("gate=%s ignored unreadable sync: %s", self.gate_id, exc)
            return
        except SyncRefused as exc:
            log.warning("gate=%s sync refused (%s): no offline grants until a snapshot arrives", self.gate_id, exc)
            self.stale = True
            self._synced.set()
            await self._ask_for_snapshot()
            return
        self.stale = False
        self._synced.set()
        if applied:
            log.info("gate=%s cache at v%d (%s)", self.gate_id, sync.version,
                     "snapshot" if sync.snapshot else f"delta from v{sync.base_version}")

    async def _ask_for_snapshot(self) -> None:
        now = time.monotonic()
        if now - self._last_ask < _RESYNC_ASK_S:
            return
        self._last_ask = now
        try:
            await self._publish_status(self.mqtt)
        except NotConnected:
            pass

    async def _on_ping(self, msg: IncomingMessage) -> None:
        try:
            ping = decode(GatePing, msg.payload)
        except PayloadError as exc:
            log.warning("gate=%s ignored unreadable ping: %s", self.gate_id, exc)
            return
        if ping.gate_id != self.gate_id:
            return
        beat = GateHeartbeat(gate_id=self.gate_id, ping_id=ping.ping_id, cache_version=self.cache.version,
                             queued_offline=len(self.offline_log))
        try:
            await self.mqtt.publish(topics.gate_heartbeat(self.gate_id), beat)
        except NotConnected:
            pass
        if self.stale:
            await self._ask_for_snapshot()
