"""The auth worker service: subscribe to access requests, decide, answer, record."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

from pymongo.errors import PyMongoError

from accounts.attempts import AttemptLimiter, TooManyAttempts
from auth_worker.decide import Decision, check_request, decide, decide_face, outdated
from auth_worker.passes import decide_use, judge_token
from auth_worker.refresh import SnapshotRefresher
from auth_worker.snapshot import AccessSnapshot
from config.settings import Settings
from face_engine.errors import FaceError
from face_engine.pipeline import Embedding, FaceEngine
from face_engine.sync import FaceIndexSync
from messaging import IncomingMessage, MqttClient, NotConnected
from schemas import topics
from schemas.access import AccessRequest, AccessResponse, CardCredential, FaceCredential, PinCredential, QrCredential
from schemas.base import new_id, utc_now
from schemas.codec import decode, salvage_ids
from schemas.codes import CredentialType, EventCode, ReasonCode
from schemas.documents import AccessEventRecord
from schemas.errors import InvalidPayload, PayloadTooLarge, TopicError
from schemas.events import AccessEvent, AlertEvent, VisitorEvent
from store.attempts import SharedAttemptLimiter
from store.event_journal import EventJournal
from store.event_writer import EventWriter
from store.keyed_hash import KeyedHasher
from store.passes import UseOutcome, VisitorPass, VisitorPassStore
from store.repository import Store
from visitor_pass.keys import verifier_for
from visitor_pass.token import PassVerifier

log = logging.getLogger(__name__)

_ALERT_EVERY_S = 10.0
_SHARED_LOCK_WAIT_S = 0.3


class AuthWorker:
    """One auth worker; any number can run side by side (shared subscription on MQTT 5 brokers)."""

    def __init__(self, settings: Settings, store: Store, hasher: KeyedHasher,
                 client_id: str | None = None, pass_verifier: PassVerifier | None = None) -> None:
        self._settings = settings
        self._store = store
        self._hasher = hasher
        self._tz = ZoneInfo(settings.auth.timezone)
        self.snapshot = AccessSnapshot()
        self.client_id = client_id or f"auth-{new_id()[:8]}"
        self.mqtt = MqttClient(settings.mqtt, self.client_id, max_in_flight=settings.auth.max_in_flight)
        journal_dir = settings.store.event_journal_dir or settings.data_dir / "journal"
        # One directory per database: an adopted event must land where its worker would have put it.
        self.events = EventWriter(store, settings.store.event_batch_size, settings.store.event_flush_ms,
                                  journal=EventJournal(journal_dir / store.db.name),
                                  adopt_every_s=settings.store.journal_adopt_s)
        self.refresher = SnapshotRefresher(store, self._set_snapshot, settings.store.cache_poll_s)
        self.face_engine: FaceEngine | None = None
        self.faces = FaceIndexSync(store, settings.face.model_id)
        # One thread for face inference: onnxruntime runs outside the GIL, the loop stays free.
        self._face_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="face")
        self.passes = VisitorPassStore(store.db)
        self.pass_verifier = pass_verifier or _load_verifier(settings)
        # Pass uses are store round trips: their own threads, so they neither queue behind face
        # inference nor block the loop.
        self._pass_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pass")
        self._answered: OrderedDict[tuple[str, str], AccessResponse] = OrderedDict()
        self._in_flight: set[tuple[str, str]] = set()
        self._pin_attempts = AttemptLimiter(settings.auth.pin_max_failures, settings.auth.pin_window_s)
        self._shared_pin_attempts = SharedAttemptLimiter(store.db, settings.auth.pin_max_failures,
                                                         settings.auth.pin_window_s)
        self._last_alert: dict[str, float] = {}
        self.decisions = 0
        self.ready = asyncio.Event()

    def _set_snapshot(self, snapshot: AccessSnapshot) -> None:
        self.snapshot = snapshot

    async def run(self) -> None:
        """Load the snapshot (and face models and index), then serve until cancelled or `stop()`."""
        self.events.open()
        await self.refresher.reload()
        tasks = [asyncio.create_task(self.refresher.run(), name="snapshot-refresh"),
                 asyncio.create_task(self.events.run(), name="event-writer")]
        if self._settings.face.enabled:
            await self._start_faces(tasks)
        request_filter = topics.ACCESS_REQUEST_FILTER
        if self._settings.mqtt.shared_subscriptions:
            request_filter = topics.shared(request_filter)
        self.mqtt.subscribe(request_filter, self.handle_request)
        self.ready.set()
        try:
            await self.mqtt.run()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.events.close()
            self._face_pool.shutdown(wait=False, cancel_futures=True)
            self._pass_pool.shutdown(wait=False, cancel_futures=True)

    async def _start_faces(self, tasks: list[asyncio.Task[None]]) -> None:
        loop = asyncio.get_running_loop()
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=self._settings.face.blas_threads, user_api="blas")
        try:
            engine = await loop.run_in_executor(self._face_pool, FaceEngine, self._settings.face)
            await loop.run_in_executor(self._face_pool, _warm_up, engine)
        except (FaceError, OSError, RuntimeError, ImportError) as exc:
            # Fail closed: face requests are denied as unsupported, cards keep working.
            log.error("face models unavailable, face requests will be denied: %s", exc)
            return
        self.face_engine = engine
        tasks.append(asyncio.create_task(self.faces.run(), name="face-index"))
        await asyncio.wait_for(self.faces.ready.wait(), 60)
        log.info("face matching ready: model %s, %d templates, level %s (cosine >= %.2f)",
                 engine.model_id, len(self.faces.index), self._settings.face.access_level,
                 self._settings.face.threshold(self._settings.face.access_level))
    def stop(self) -> None:
        self.mqtt.stop()

    async def handle_request(self, msg: IncomingMessage) -> None:
        """Answer one `access/request/{gate_id}` message; never raises on bad input."""
        started = time.perf_counter()
        try:
            gate_id = topics.gate_of_access_request(msg.topic)
        except TopicError as exc:
            log.warning("dropped request on bad topic: %s", exc)
            return
        try:
            request = decode(AccessRequest, msg.payload, topics.MAX_ACCESS_REQUEST_BYTES)
        except PayloadTooLarge as exc:
            log.warning("gate=%s dropped request: %s", gate_id, exc)
            await self._alert(gate_id, f"oversize access request dropped ({exc.size} bytes)")
            return
        except InvalidPayload as exc:
            await self._answer_malformed(gate_id, msg.payload, exc, started)
            return

        key = (gate_id, request.request_id)
        previous = self._answered.get(key)
        if previous is not None:
            # A retry: same answer again, recorded once.
            log.info("gate=%s request=%s retry answered from cache", gate_id, request.request_id)
            await self._publish_response(previous)
            return
        if key in self._in_flight:
            # A retry while the first try is still being decided (a slow face): its answer, on the
            # same request id, is on its way; deciding twice would spend a pass use twice.
            log.info("gate=%s request=%s retry while deciding: first answer will serve", gate_id,
                     request.request_id)
            return
        self._in_flight.add(key)
        try:
            await self._decide_and_answer(request, gate_id, started)
        finally:
            self._in_flight.discard(key)

    async def _decide_and_answer(self, request: AccessRequest, gate_id: str, started: float) -> None:

        entered: VisitorPass | None = None
        if isinstance(request.credential, FaceCredential):
            decision = await self._decide_face(request, gate_id, request.credential)
        elif isinstance(request.credential, QrCredential):
            decision, entered = await self._decide_pass(request, gate_id, request.credential)
        elif isinstance(request.credential, PinCredential):
            decision = await self._decide_pin(request, gate_id, request.credential)
        else:
            decision = decide(request, gate_id, self.snapshot, self._hasher, utc_now(), self._tz,
                              self._settings.auth.max_request_age_s, self._settings.auth.max_clock_skew_s)
        await self._respond(gate_id, request.request_id, request.credential.type, decision, started)
        if isinstance(request.credential, CardCredential | PinCredential):
            self._migrate_if_outdated(request.credential)
        if decision.reason is ReasonCode.FACE_NOT_MATCHED:
            await self._alert_unknown_face(gate_id, request.request_id, decision.score)
        if entered is not None:
            await self._visitor_entered(entered, gate_id)

    async def _decide_pin(self, request: AccessRequest, gate_id: str, pin: PinCredential) -> Decision:
        """A PIN, unless this unit's keypad entry at this gate is locked by recent wrong guesses
        (then even the right PIN waits: otherwise the lock would not stop a guesser).

        The lock is counted in the store, so it holds across every worker; this worker's own count
        stands in while the store is unreachable."""
        key = f"{gate_id}\x00{(pin.unit or '').strip().upper()}"
        try:
            self._pin_attempts.check(key)
            await self._shared_attempts(self._shared_pin_attempts.check, key, gate_id)
        except TooManyAttempts as exc:
            log.warning("gate=%s request=%s PIN entry locked for %.0fs after repeated wrong PINs", gate_id,
                        request.request_id, exc.retry_after)
            return Decision.deny(ReasonCode.TOO_MANY_ATTEMPTS)
        auth = self._settings.auth
        decision = decide(request, gate_id, self.snapshot, self._hasher, utc_now(), self._tz,
                          auth.max_request_age_s, auth.max_clock_skew_s)
        if decision.reason is ReasonCode.UNKNOWN_CREDENTIAL:
            self._pin_attempts.failed(key)
            # Counted before the answer goes out, so the next guess (on any worker) sees it.
            await self._shared_attempts(self._shared_pin_attempts.failed, key, gate_id)
        elif decision.granted:
            self._pin_attempts.succeeded(key)
            await self._shared_attempts(self._shared_pin_attempts.succeeded, key, gate_id)
        return decision

    async def _shared_attempts(self, op: Callable[[str], None], key: str, gate_id: str) -> None:
        future = asyncio.get_running_loop().run_in_executor(self._pass_pool, op, key)
        try:
            # A store that does not answer must not hold the keypad for the driver's whole
            # server-selection timeout: the gate would give up and decide offline.
            await asyncio.wait_for(future, _SHARED_LOCK_WAIT_S)
        except (PyMongoError, TimeoutError) as exc:
            log.warning("gate=%s keypad lock counted by this worker only: store unreachable (%s)",
                        gate_id, type(exc).__name__)

    def _migrate_if_outdated(self, credential: CardCredential | PinCredential) -> None:
        """After a key rotation: move a credential presented in clear onto the current key."""
        found = outdated(credential, self.snapshot, self._hasher)
        if found is None:
            return
        credential_id, key = found
        future = self._pass_pool.submit(self._store.rehash_credential, credential_id, key, self._hasher.key_id)
        future.add_done_callback(lambda f: log.info("credential %s re-hashed under %s", credential_id,
                                                    self._hasher.key_id) if not f.exception() else
                                 log.warning("credential %s not re-hashed: %s", credential_id,
                                             type(f.exception()).__name__))

    async def _decide_pass(self, request: AccessRequest, gate_id: str,
                           qr: QrCredential) -> tuple[Decision, VisitorPass | None]:
        """A visitor pass: token from memory, then one atomic use in the store. Returns the decision
        and, when this request took a use and was granted, the pass (for the resident's event)."""
        auth = self._settings.auth
        refused = check_request(request, gate_id, self.snapshot, utc_now(), auth.max_request_age_s,
                                auth.max_clock_skew_s)
        if refused is not None:
            return refused, None
        judged = judge_token(qr, gate_id, self.pass_verifier, utc_now(), auth.max_clock_skew_s)
        if isinstance(judged, Decision):
            return judged, None
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._pass_pool, self.passes.use, judged.pass_id, gate_id,
                                                request.request_id, utc_now())
        except PyMongoError as exc:
            # Uses left cannot be known without the store: fail closed.
            log.error("gate=%s request=%s pass store unavailable: %s", gate_id, request.request_id,
                      type(exc).__name__)
            return Decision.deny(ReasonCode.INTERNAL_ERROR, judged.pass_id), None
        decision = decide_use(result, judged, gate_id, self.snapshot)
        if result.outcome is UseOutcome.ADMITTED and not decision.granted:
            # Denied after the use was taken (the resident is no longer allowed): give it back.
            try:
                await loop.run_in_executor(self._pass_pool, self.passes.release, judged.pass_id, gate_id,
                                           request.request_id)
            except PyMongoError as exc:
                log.error("pass=%s use not given back: %s", judged.pass_id, type(exc).__name__)
        if decision.granted and result.outcome is UseOutcome.ADMITTED:
            return decision, result.visitor_pass
        return decision, None

    async def _visitor_entered(self, vp: VisitorPass, gate_id: str) -> None:
        # The notifier turns this into a message to the resident.
        event = VisitorEvent(code=EventCode.VISITOR_ENTERED, pass_id=vp.id, resident_id=vp.resident_id,
                             visitor_name=vp.visitor_name, gate_id=gate_id, uses=vp.uses, max_uses=vp.max_uses)
        try:
            await self.mqtt.publish(topics.visitor_event(vp.id), event)
        except NotConnected:
            log.warning("pass=%s visitor-entered event not published: broker unreachable", vp.id)

    async def _decide_face(self, request: AccessRequest, gate_id: str, face: FaceCredential) -> Decision:
        auth = self._settings.auth
        refused = check_request(request, gate_id, self.snapshot, utc_now(), auth.max_request_age_s,
                                auth.max_clock_skew_s)
        if refused is not None:
            return refused
        engine = self.face_engine
        if engine is None:
            return Decision.deny(ReasonCode.UNSUPPORTED_CREDENTIAL)
        try:
            embedding = await self._face_embedding(engine, face)
        except FaceError as exc:
            log.info("gate=%s request=%s face refused: %s", gate_id, request.request_id, exc)
            return Decision.deny(ReasonCode(exc.reason))
        # On the face thread too: a 1:N scan of 100k templates takes ~10 ms, too long for the loop.
        index = self.faces.index
        match = await asyncio.get_running_loop().run_in_executor(self._face_pool, index.search, embedding)
        threshold = self._settings.face.threshold(self._settings.face.access_level)
        # Judge the schedule at decision time: inference may have taken a while.
        return decide_face(match, threshold, gate_id, self.snapshot, utc_now(), self._tz)

    async def _face_embedding(self, engine: FaceEngine, face: FaceCredential) -> Embedding:
        if face.embedding is not None:
            return engine.check_edge_embedding(face.embedding, face.model_id or "")
        assert face.jpeg is not None  # the schema guarantees one of the two
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._face_pool, engine.embed_photo, face.jpeg)
        if result.faces_found > 1:
            log.info("%d faces in the frame; matched the largest (%d px)", result.faces_found, result.face_px)
        return result.embedding

    async def _alert_unknown_face(self, gate_id: str, request_id: str, score: float | None) -> None:
        # The admin is told by push (notifier, issue 5) from this event; rate-limited per gate.
        if not self._alert_allowed(f"face:{gate_id}", self._settings.face.unknown_alert_interval_s):
            return
        best = "no enrolled faces" if score is None else f"best similarity {score:.2f}"
        alert = AlertEvent(code=EventCode.UNKNOWN_FACE, gate_id=gate_id,
                           detail=f"unregistered face refused (request {request_id}, {best})")
        try:
            await self.mqtt.publish(topics.alert_event("unknown_face"), alert)
        except NotConnected:
            log.warning("gate=%s unknown-face alert not published: broker unreachable", gate_id)

    async def _answer_malformed(self, gate_id: str, payload: bytes, exc: InvalidPayload,
                                started: float) -> None:
        request_id = salvage_ids(payload, "request_id").get("request_id")
        log.warning("gate=%s request=%s malformed: %s", gate_id, request_id or "?", exc)
        if request_id is None:
            await self._alert(gate_id, f"unreadable access request: {exc}")
            return
        await self._respond(gate_id, request_id, None, Decision.deny(ReasonCode.MALFORMED_REQUEST), started)

    async def _respond(self, gate_id: str, request_id: str, credential_type: CredentialType | None,
                       decision: Decision, started: float) -> None:
        latency_ms = (time.perf_counter() - started) * 1000
        response = AccessResponse(request_id=request_id, gate_id=gate_id, granted=decision.granted,
                                  reason=decision.reason, subject_id=decision.subject_id,
                                  latency_ms=latency_ms)
        self._remember(gate_id, request_id, response)
        event_id = access_event_id(gate_id, request_id)
        # Journaled before the answer goes out: a worker killed after answering loses no record.
        self.events.add(AccessEventRecord(
            id=event_id, ts=response.ts, request_id=request_id, gate_id=gate_id,
            credential_type=credential_type, granted=decision.granted, reason=decision.reason,
            subject_id=decision.subject_id, latency_ms=latency_ms))
        await self._publish_response(response)
        self.decisions += 1
        log.info("gate=%s request=%s %s %s subject=%s", gate_id, request_id,
                 "GRANTED" if decision.granted else "DENIED", decision.reason.value,
                 decision.subject_id or "-")
        event_code = EventCode.ACCESS_GRANTED if decision.granted else EventCode.ACCESS_DENIED
        event = AccessEvent(msg_id=event_id, ts=response.ts, code=event_code,
                            request_id=request_id, gate_id=gate_id, credential_type=credential_type,
                            granted=decision.granted, reason=decision.reason,
                            subject_id=decision.subject_id, latency_ms=latency_ms)
        try:
            await self.mqtt.publish(topics.access_event(gate_id), event)
        except NotConnected as exc:
            log.warning("gate=%s request=%s event not published: %s", gate_id, request_id, exc)

    async def _publish_response(self, response: AccessResponse) -> None:
        try:
            await self.mqtt.publish(topics.access_response(response.gate_id), response)
        except NotConnected as exc:
            # The gate times out and keeps the door shut; its retry gets the cached answer.
            log.warning("gate=%s request=%s response not delivered: %s", response.gate_id,
                        response.request_id, exc)

    def _remember(self, gate_id: str, request_id: str, response: AccessResponse) -> None:
        limit = self._settings.auth.dedup_window
        if limit == 0:
            return
        self._answered[(gate_id, request_id)] = response
        while len(self._answered) > limit:
            self._answered.popitem(last=False)

    def _alert_allowed(self, key: str, interval_s: float) -> bool:
        """At most one alert per key per interval: a gate spewing garbage or strangers must not flood
        operators."""
        now = time.monotonic()
        if now - self._last_alert.get(key, -float("inf")) < interval_s:
            return False
        self._last_alert[key] = now
        return True

    async def _alert(self, gate_id: str, detail: str) -> None:
        if not self._alert_allowed(f"malformed:{gate_id}", _ALERT_EVERY_S):
            return
        alert = AlertEvent(code=EventCode.MALFORMED_MESSAGE, gate_id=gate_id, detail=detail[:1000])
        try:
            await self.mqtt.publish(topics.alert_event("malformed_request"), alert)
        except NotConnected:
            pass


def access_event_id(gate_id: str, request_id: str) -> str:
    """The event id of a decision: the same for every try of one request on any worker, so a retry
    that another worker (shared subscription) decides again is still stored exactly once."""
    digest = hashlib.sha256(f"{gate_id}\x00{request_id}".encode()).hexdigest()
    return f"ev-{digest[:40]}"


def _load_verifier(settings: Settings) -> PassVerifier | None:
    try:
        return verifier_for(settings)
    except (ValueError, OSError) as exc:
        # Fail closed: QR passes are denied as unsupported, every other credential keeps working.
        log.error("visitor pass key unavailable, QR passes will be denied: %s", exc)
        return None


def _warm_up(engine: FaceEngine) -> None:
    # The first onnxruntime run allocates and is several times slower: pay it before the door does.
    import numpy as np

    try:
        engine.embed_image(np.zeros((480, 640, 3), dtype=np.uint8))
    except FaceError:
        pass
