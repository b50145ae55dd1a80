"""The admin worker: `admin/command` in, `admin/reply/{admin_id}` out, every outcome audited."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from pymongo.errors import PyMongoError

from admin_worker import queries
from admin_worker.commands import CommandProcessor
from admin_worker.errors import CommandRefused, DuplicateCredential
from admin_worker.fingerprint import FingerprintMatcher
from admin_worker.importer import ResidentImporter
from config.settings import Settings
from face_engine.errors import FaceError
from face_engine.pipeline import FaceEngine
from face_engine.sync import FaceIndexSync
from messaging import IncomingMessage, MqttClient, NotConnected
from schemas import topics
from schemas.admin import QUERY_ACTIONS, AdminCommand, AdminReply, ImportResidents, ListUsers, QueryAudit
from schemas.base import new_id
from schemas.codec import decode, salvage_ids
from schemas.codes import EventCode
from schemas.documents import AuditRecord
from schemas.errors import InvalidPayload, PayloadTooLarge
from schemas.events import EnrollEvent
from store.keyed_hash import KeyedHasher
from store.repository import Store

log = logging.getLogger(__name__)


class AdminWorker:
    """Validates, de-duplicates (by command id), applies and audits admin commands."""

    def __init__(self, settings: Settings, store: Store, hasher: KeyedHasher, client_id: str | None = None,
                 finger_matcher: FingerprintMatcher | None = None) -> None:
        self._settings = settings
        self._store = store
        self._hasher = hasher
        self.client_id = client_id or f"admin-{new_id()[:8]}"
        self.mqtt = MqttClient(settings.mqtt, self.client_id)
        self.faces = FaceIndexSync(store, settings.face.model_id)
        # One thread: commands apply one at a time, so duplicate checks cannot race each other.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="admin")
        self._processor: CommandProcessor | None = None
        self._finger_matcher = finger_matcher

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        engine: FaceEngine | None = None
        if self._settings.face.enabled:
            try:
                engine = await loop.run_in_executor(self._pool, FaceEngine, self._settings.face)
            except (FaceError, OSError, RuntimeError, ImportError) as exc:
                log.error("face models unavailable, face enrollment refused: %s", exc)
        sync = asyncio.create_task(self.faces.run(), name="admin-face-index")
        await asyncio.wait_for(self.faces.ready.wait(), 60)
        self._processor = CommandProcessor(self._store, self._hasher, self._settings.face, self._settings.enroll,
                                           engine, lambda: self.faces.index, self._finger_matcher)
        command_filter = topics.ADMIN_COMMAND
        if self._settings.mqtt.shared_subscriptions:
            command_filter = topics.shared(command_filter, "admin")
        self.mqtt.subscribe(command_filter, self.handle_command)
        try:
            await self.mqtt.run()
        finally:
            sync.cancel()
            await asyncio.gather(sync, return_exceptions=True)
            self._pool.shutdown(wait=False, cancel_futures=True)

    def stop(self) -> None:
        self.mqtt.stop()

    async def handle_command(self, msg: IncomingMessage) -> None:
        """Answer one command; never raises on bad input."""
        try:
            command = decode(AdminCommand, msg.payload, topics.MAX_ADMIN_COMMAND_BYTES)
        except PayloadTooLarge as exc:
            log.warning("admin command dropped: %s", exc)
            return
        except InvalidPayload as exc:
            await self._refuse_malformed(msg.payload, exc)
            return
        loop = asyncio.get_running_loop()
        try:
            reply = await loop.run_in_executor(self._pool, self._execute, command)
        except PyMongoError as exc:
            log.error("command=%s store unavailable: %s", command.command_id, exc)
            reply = AdminReply(command_id=command.command_id, ok=False, code=EventCode.ADMIN_COMMAND_REFUSED,
                               error=f"STORE_UNAVAILABLE: try again ({type(exc).__name__})")
        await self._publish(command.admin_id, reply)
        if reply.code is not None and command.command.action not in QUERY_ACTIONS:
            event = EnrollEvent(code=reply.code, command_id=command.command_id, admin_id=command.admin_id,
                                action=command.command.action, target=reply.subject_id, ok=reply.ok,
                                sub_code=reply.sub_code, matched_user_id=reply.matched_user_id)
            target = reply.subject_id or "unknown"
            try:
                await self.mqtt.publish(topics.enroll_event(target), event)
            except NotConnected:
                log.warning("command=%s enroll event not published", command.command_id)

    def _execute(self, command: AdminCommand) -> AdminReply:
        """Apply and audit (blocking). A replayed command id gets its first reply back, unchanged."""
        if isinstance(command.command, ListUsers | QueryAudit):
            return queries.answer(self._store, command.command_id, command.command)
        previous = self._store.get_audit(command.command_id)
        if previous is not None:
            log.info("command=%s replayed: answering with the recorded reply", command.command_id)
            return AdminReply.model_validate_json(previous.reply_json)
        assert self._processor is not None
        action = command.command
        target = getattr(action, "user_id", None) or getattr(action, "gate_id", None) or getattr(
            action, "group_id", None)
        try:
            if isinstance(action, ImportResidents):
                reply = self._import(command.command_id, action)
            else:
                subject = self._processor.apply(action)
                reply = AdminReply(command_id=command.command_id, ok=True, code=EventCode.ADMIN_COMMAND_DONE,
                                   subject_id=subject)
        except DuplicateCredential as dup:
            reply = AdminReply(command_id=command.command_id, ok=False, code=EventCode.USER_DUPLICATE_CREDENTIAL,
                               error=str(dup), error_ko=dup.message_ko, subject_id=target, sub_code=dup.kind,
                               matched_user_id=dup.owner_id, matched_user_name=dup.owner_name)
        except CommandRefused as refused:
            reply = AdminReply(command_id=command.command_id, ok=False, code=EventCode.ADMIN_COMMAND_REFUSED,
                               error=f"{refused.code}: {refused}", subject_id=target)
        log.info("admin=%s command=%s %s %s %s", command.admin_id, command.command_id, action.action,
                 target or "-", "done" if reply.ok else reply.error)
        recorded = self._store.append_audit(AuditRecord(
            id=command.command_id, actor=command.admin_id, action=action.action, target=target, ok=reply.ok,
            code=(reply.code or EventCode.ADMIN_COMMAND_REFUSED).value, sub_code=reply.sub_code,
            matched_user_id=reply.matched_user_id, detail=reply.error, reply_json=reply.model_dump_json()))
        if not recorded:  # another worker answered this id first: its answer stands
            first = self._store.get_audit(command.command_id)
            if first is not None:
                return AdminReply.model_validate_json(first.reply_json)
        return reply

    def _import(self, command_id: str, action: ImportResidents) -> AdminReply:
        result = ResidentImporter(self._store, self._hasher).run(action.csv, action.dry_run)
        total = len(result.rows)
        if result.failed:
            return AdminReply(command_id=command_id, ok=False, code=EventCode.ADMIN_COMMAND_REFUSED,
                              error=f"IMPORT_REFUSED: {result.failed} of {total} rows failed; nothing imported",
                              import_rows=result.rows, total=total)
        return AdminReply(command_id=command_id, ok=True, code=EventCode.ADMIN_COMMAND_DONE,
                          import_rows=result.rows, total=total)

    async def _refuse_malformed(self, payload: bytes, exc: InvalidPayload) -> None:
        ids = salvage_ids(payload, "command_id", "admin_id")
        log.warning("malformed admin command %s: %s", ids.get("command_id", "?"), exc)
        if len(ids) != 2:
            return  # nobody to answer
        reply = AdminReply(command_id=ids["command_id"], ok=False, code=EventCode.ADMIN_COMMAND_REFUSED,
                           error=f"MALFORMED_COMMAND: {exc}"[:1000])
        await self._publish(ids["admin_id"], reply)

    async def _publish(self, admin_id: str, reply: AdminReply) -> None:
        try:
            await self.mqtt.publish(topics.admin_reply(admin_id), reply)
        except NotConnected as exc:
            log.warning("command=%s reply not delivered: %s", reply.command_id, exc)
