"""Offline decision logs uploaded by gates: validated, stored exactly once, announced, acknowledged."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from pymongo.errors import PyMongoError

from messaging import IncomingMessage, MqttClient, NotConnected
from schemas import topics
from schemas.codec import decode_from_gate
from schemas.codes import EventCode
from schemas.documents import AccessEventRecord
from schemas.errors import PayloadError, TopicError
from schemas.events import AccessEvent, AlertEvent
from schemas.gate import GateLogAck, GateLogBatch, OfflineDecision
from store.errors import StoreError
from store.repository import Store

log = logging.getLogger(__name__)


class LogRejected(Exception):
    """An upload that is not a valid batch of this gate's own offline decisions."""


@dataclass
class IntakeStats:
    batches: int = 0
    decisions: int = 0
    new: int = 0
    rejected: int = 0
    store_failures: int = 0


def to_record(gate_id: str, d: OfflineDecision) -> AccessEventRecord:
    return AccessEventRecord(id=d.event_id, ts=d.ts, request_id=d.request_id, gate_id=gate_id,
                             credential_type=d.credential_type, granted=d.granted, reason=d.reason,
                             subject_id=d.subject_id, latency_ms=d.latency_ms, offline=True)


def to_event(gate_id: str, d: OfflineDecision) -> AccessEvent:
    return AccessEvent(msg_id=d.event_id, ts=d.ts,
                       code=EventCode.ACCESS_GRANTED if d.granted else EventCode.ACCESS_DENIED,
                       request_id=d.request_id, gate_id=gate_id, credential_type=d.credential_type,
                       granted=d.granted, reason=d.reason, subject_id=d.subject_id,
                       latency_ms=d.latency_ms, offline=True)


def parse_batch(msg: IncomingMessage) -> GateLogBatch:
    """The batch in `msg`, checked against its topic; raises LogRejected."""
    try:
        # Only a gate may speak for itself: a batch naming another gate is refused whole.
        return decode_from_gate(GateLogBatch, msg.topic, msg.payload, topics.gate_of_logs,
                                topics.MAX_GATE_LOG_BYTES)
    except (TopicError, PayloadError) as exc:
        raise LogRejected(str(exc)) from None


class LogIntake:
    """Handles `gates/+/logs`: the ack goes out only after the store holds every decision."""

    def __init__(self, store: Store, mqtt: MqttClient) -> None:
        self._store = store
        self._mqtt = mqtt
        self.stats = IntakeStats()

    async def handle(self, msg: IncomingMessage) -> None:
        try:
            batch = parse_batch(msg)
        except LogRejected as exc:
            self.stats.rejected += 1
            log.warning("offline log rejected on %s: %s", msg.topic[:80], exc)
            await self._alert(f"offline log rejected on {msg.topic[:80]}: {str(exc)[:500]}")
            return
        self.stats.batches += 1
        records = [to_record(batch.gate_id, d) for d in batch.decisions]
        try:
            new = await asyncio.to_thread(self._store.append_access_events, records)
        except (StoreError, PyMongoError) as exc:
            # No ack: the gate keeps the batch and uploads it again.
            self.stats.store_failures += 1
            log.warning("gate=%s offline batch of %d not stored, no ack: %s", batch.gate_id, len(records), exc)
            return
        self.stats.decisions += len(records)
        self.stats.new += new
        log.info("gate=%s offline batch: %d decisions, %d new", batch.gate_id, len(records), new)
        ack = GateLogAck(gate_id=batch.gate_id, batch_id=batch.msg_id, event_ids=[d.event_id for d in batch.decisions])
        try:
            await self._mqtt.publish(topics.gate_logs_ack(batch.gate_id), ack)
        except NotConnected as exc:
            log.warning("gate=%s ack not delivered (the gate will upload again): %s", batch.gate_id, exc)
        if new == 0:
            return  # a re-upload of a stored batch: operators saw these already
        # The stream is at-least-once (msg_id = event id lets readers drop a repeat); the store is exactly once.
        topic = topics.access_event(batch.gate_id)
        for d in batch.decisions:
            try:
                await self._mqtt.publish(topic, to_event(batch.gate_id, d))
            except NotConnected as exc:
                log.warning("gate=%s offline events not published: %s", batch.gate_id, exc)
                return

    async def _alert(self, detail: str) -> None:
        try:
            await self._mqtt.publish(topics.alert_event("gate_log_rejected"),
                                     AlertEvent(code=EventCode.MALFORMED_MESSAGE, detail=detail[:1000]))
        except NotConnected:
            pass
