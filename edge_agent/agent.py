"""The gate agent: presents credentials, waits for the decision, drives the relay, fails closed."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from config.settings import Settings
from edge_agent.relay import DoorRelay, make_relay
from messaging import IncomingMessage, MqttClient, NotConnected, Will
from schemas import topics
from schemas.access import AccessRequest, AccessResponse, CardCredential, Credential
from schemas.base import new_id
from schemas.codec import decode, encode
from schemas.errors import PayloadError, TopicError
from schemas.gate import GateState, GateStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GateDecision:
    """What the gate did with one presented credential."""

    request_id: str
    granted: bool
    reason: str
    subject_id: str | None
    round_trip_ms: float
    response: AccessResponse | None  # None when the gate decided alone (timeout)


class GateAgent:
    """One gate: an MQTT connection with a last will, and a door that opens only on a matching grant."""

    def __init__(self, settings: Settings, gate_id: str | None = None, relay: DoorRelay | None = None) -> None:
        self.gate_id = gate_id or settings.gate.gate_id
        topics.gate_status(self.gate_id)  # validates the id early
        self._settings = settings
        self.relay = relay or make_relay(self.gate_id, settings.gate.relay_pin)
        offline = GateStatus(gate_id=self.gate_id, state=GateState.OFFLINE)
        self.mqtt = MqttClient(
            settings.mqtt, f"gate-{self.gate_id}",
            will=Will(topics.gate_status(self.gate_id), encode(offline), retain=True),
            on_connect=self._announce_online,
        )
        self.mqtt.subscribe(topics.access_response(self.gate_id), self._on_response)
        self._pending: dict[str, asyncio.Future[AccessResponse]] = {}
        self._relock: asyncio.TimerHandle | None = None

    async def _announce_online(self, client: MqttClient) -> None:
        status = GateStatus(gate_id=self.gate_id, state=GateState.ONLINE)
        await client.publish(topics.gate_status(self.gate_id), status, retain=True)

    async def run(self) -> None:
        """Keep the connection up until `stop()`."""
        await self.mqtt.run()

    async def stop(self) -> None:
        """Lock the door, say goodbye (retained offline) and disconnect."""
        self._lock_door()
        if self.mqtt.is_connected:
            offline = GateStatus(gate_id=self.gate_id, state=GateState.OFFLINE)
            try:
                await self.mqtt.publish(topics.gate_status(self.gate_id), offline, retain=True, timeout=2.0)
            except NotConnected:
                pass
        self.mqtt.stop()

    async def present(self, credential: Credential, request_id: str | None = None) -> GateDecision:
        """Ask for a decision on `credential`; the door opens only if a matching grant arrives in time."""
        request = AccessRequest(request_id=request_id or new_id(), gate_id=self.gate_id, credential=credential)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AccessResponse] = loop.create_future()
        self._pending[request.request_id] = future
        started = time.perf_counter()
        timeout = self._settings.gate.request_timeout_s
        try:
            await self.mqtt.publish(topics.access_request(self.gate_id), request, timeout=timeout)
            remaining = max(0.0, timeout - (time.perf_counter() - started))
            response = await asyncio.wait_for(future, remaining)
        except (TimeoutError, NotConnected) as exc:
            rtt = (time.perf_counter() - started) * 1000
            log.warning("gate=%s request=%s no decision in %.1fs (%s): door stays locked",
                        self.gate_id, request.request_id, timeout, type(exc).__name__)
            return GateDecision(request.request_id, False, "TIMEOUT", None, rtt, None)
        finally:
            self._pending.pop(request.request_id, None)
        rtt = (time.perf_counter() - started) * 1000
        if response.granted:
            self._open_door()
        return GateDecision(request.request_id, response.granted, response.reason.value,
                            response.subject_id, rtt, response)

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
