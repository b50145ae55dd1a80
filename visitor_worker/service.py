"""The visitor worker: `visitor/register` in, `visitor/reply/{request_id}` out, pass events published.

Each request is answered exactly once per request id: a replay (MQTT redelivery, a bridge retry)
gets the first reply again and never issues a second pass or a second push.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from zoneinfo import ZoneInfo

from pymongo.errors import PyMongoError

from config.settings import Settings
from messaging import IncomingMessage, MqttClient, NotConnected
from notifier.base import Channel
from schemas import topics
from schemas.base import new_id, utc_now
from schemas.codec import decode, salvage_ids
from schemas.codes import EventCode
from schemas.errors import InvalidPayload, PayloadTooLarge
from schemas.events import VisitorEvent
from schemas.visitor import (
    ListPasses,
    PassStatus,
    RegisterPass,
    RevokePass,
    VisitorErrorCode,
    VisitorReply,
    VisitorRequest,
)
from store.passes import VisitorPass, VisitorPassStore
from store.repository import Store
from visitor_pass.keys import signer_for
from visitor_pass.token import PassSigner
from visitor_worker.errors import VisitorRefused
from visitor_worker.office import PassOffice
from visitor_worker.push import PassPusher, pass_notification

log = logging.getLogger(__name__)

# Replies carry a QR code (a few KiB); older replays are answered from the store.
_REMEMBERED_REPLIES = 1000
T = TypeVar("T")


class VisitorWorker:
    """Validates, stores, signs, renders and pushes visitor passes for residents."""

    def __init__(self, settings: Settings, store: Store, *, signer: PassSigner | None = None,
                 channels: Channel | Sequence[Channel] | None = None, client_id: str | None = None) -> None:
        self._settings = settings
        self._store = store
        self.passes = VisitorPassStore(store.db)
        self.signer = signer or signer_for(settings)
        self.office = PassOffice(store, self.passes, self.signer, settings.visitor)
        if channels is None:
            channels = []
        elif not isinstance(channels, Sequence):
            channels = [channels]
        self.pusher = PassPusher(channels, settings.visitor.push_timeout_s)
        self._tz = ZoneInfo(settings.auth.timezone)
        self.client_id = client_id or f"visitor-{new_id()[:8]}"
        self.mqtt = MqttClient(settings.mqtt, self.client_id)
        # One thread: requests apply one at a time, so per-unit limits hold within this worker.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="visitor")
        self._replies: OrderedDict[str, VisitorReply] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[VisitorReply]] = {}
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Serve until cancelled or `stop()`."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self.passes.ensure_indexes)
        request_filter = topics.VISITOR_REGISTER
        if self._settings.mqtt.shared_subscriptions:
            request_filter = topics.shared(request_filter, "visitor")
        self.mqtt.subscribe(request_filter, self.handle_request)
        self.ready.set()
        log.info("visitor worker ready: passes signed with key %s, push %s", self.signer.key_id,
                 "on" if self.pusher.enabled else "off")
        try:
            await self.mqtt.run()
        finally:
            await self.pusher.drain()
            self._pool.shutdown(wait=False, cancel_futures=True)

    def stop(self) -> None:
        self.mqtt.stop()

    async def handle_request(self, msg: IncomingMessage) -> None:
        """Answer one `visitor/register` message; never raises on bad input."""
        try:
            request = decode(VisitorRequest, msg.payload, topics.MAX_DEFAULT_BYTES)
        except PayloadTooLarge as exc:
            log.warning("visitor request dropped: %s", exc)
            return
        except InvalidPayload as exc:
            await self._refuse_malformed(msg.payload, exc)
            return
        rid = request.request_id
        reply = self._replies.get(rid)
        if reply is not None:
            log.info("request=%s replayed: answering with the first reply", rid)
        elif rid in self._in_flight:
            # The same request again while the first copy is still being served: wait for its answer.
            reply = await asyncio.shield(self._in_flight[rid])
        else:
            future: asyncio.Future[VisitorReply] = asyncio.get_running_loop().create_future()
            self._in_flight[rid] = future
            try:
                reply = await self._answer(request)
                future.set_result(reply)
            finally:
                if not future.done():
                    future.cancel()
                del self._in_flight[rid]
            if reply.code is not VisitorErrorCode.INTERNAL_ERROR:
                self._remember(rid, reply)
        await self._publish(reply)

    async def _answer(self, request: VisitorRequest) -> VisitorReply:
        action = request.action
        try:
            if isinstance(action, RegisterPass):
                return await self._register(request, action)
            if isinstance(action, ListPasses):
                return await self._list(request, action)
            return await self._revoke(request, action)
        except VisitorRefused as refused:
            log.info("request=%s resident=%s %s refused: %s %s", request.request_id, request.resident_id,
                     action.action, refused.code.value, refused)
            return VisitorReply(request_id=request.request_id, ok=False, code=refused.code, error=str(refused))
        except PyMongoError as exc:
            log.error("request=%s store unavailable: %s", request.request_id, type(exc).__name__)
            return VisitorReply(request_id=request.request_id, ok=False, code=VisitorErrorCode.INTERNAL_ERROR,
                                error="store unavailable: try again")

    async def _blocking(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _register(self, request: VisitorRequest, action: RegisterPass) -> VisitorReply:
        now = utc_now()
        issued = await self._blocking(self.office.register, request.request_id, request.resident_id, action, now)
        vp: VisitorPass = issued.visitor_pass
        pushed, problem = vp.pushed, None
        if not issued.replayed:
            log.info("request=%s resident=%s issued pass %s (%d gates, %d uses)", request.request_id,
                     request.resident_id, vp.id, len(vp.gate_ids), vp.max_uses)
            await self._event(EventCode.VISITOR_PASS_ISSUED, vp)
            if action.fcm_token is not None:
                result = await self.pusher.push(pass_notification(vp, issued.token, action.fcm_token, self._tz))
                pushed, problem = result.pushed, result.problem
                if pushed:
                    await self._blocking(self.office.mark_pushed, vp.id)
        return VisitorReply(request_id=request.request_id, ok=True, issued=vp.view(now), qr_payload=issued.token,
                            qr_png=issued.qr.png, qr_svg=issued.qr.svg, pushed=pushed, error=problem)

    async def _list(self, request: VisitorRequest, action: ListPasses) -> VisitorReply:
        now = utc_now()
        passes = await self._blocking(self.office.list_passes, request.resident_id)
        views = [p.view(now) for p in passes]
        if not action.include_inactive:
            views = [v for v in views if v.status is PassStatus.ACTIVE]
        return VisitorReply(request_id=request.request_id, ok=True, passes=views)

    async def _revoke(self, request: VisitorRequest, action: RevokePass) -> VisitorReply:
        now = utc_now()
        vp, changed = await self._blocking(self.office.revoke, request.resident_id, action.pass_id, now)
        if changed:
            log.info("request=%s resident=%s revoked pass %s", request.request_id, request.resident_id, vp.id)
            await self._event(EventCode.VISITOR_PASS_REVOKED, vp)
        return VisitorReply(request_id=request.request_id, ok=True, issued=vp.view(now))

    async def _event(self, code: EventCode, vp: VisitorPass) -> None:
        event = VisitorEvent(code=code, pass_id=vp.id, resident_id=vp.resident_id, visitor_name=vp.visitor_name,
                             uses=vp.uses, max_uses=vp.max_uses)
        try:
            await self.mqtt.publish(topics.visitor_event(vp.id), event)
        except NotConnected:
            log.warning("pass=%s %s event not published: broker unreachable", vp.id, code.value)

    async def _refuse_malformed(self, payload: bytes, exc: InvalidPayload) -> None:
        request_id = salvage_ids(payload, "request_id").get("request_id")
        log.warning("malformed visitor request %s: %s", request_id or "?", exc)
        if request_id is None:
            return  # nobody to answer
        await self._publish(VisitorReply(request_id=request_id, ok=False, code=VisitorErrorCode.INVALID_REQUEST,
                                         error=str(exc)[:1000]))

    async def _publish(self, reply: VisitorReply) -> None:
        try:
            await self.mqtt.publish(topics.visitor_reply(reply.request_id), reply)
        except NotConnected as exc:
            log.warning("request=%s reply not delivered: %s", reply.request_id, exc)

    def _remember(self, request_id: str, reply: VisitorReply) -> None:
        self._replies[request_id] = reply
        while len(self._replies) > _REMEMBERED_REPLIES:
            self._replies.popitem(last=False)
