"""An asyncio MQTT client on aiomqtt: reconnect with backoff, QoS 1, TCP_NODELAY, last will,
typed publish and handler-based subscribe.

aiomqtt was chosen over raw paho (callbacks on a thread) and gmqtt (untyped) because every
Passage process is an asyncio service and aiomqtt is small, typed and speaks MQTT 5 for
shared subscriptions; measured here at 0.7 ms round trip and 16k msg/s (shared/MEASURED.md),
well above what one worker needs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
from pydantic import BaseModel

from config.settings import MqttSettings
from schemas.codec import encode
from schemas.topics import matches

log = logging.getLogger(__name__)

# Nagle plus delayed ACK costs ~44 ms per hop on loopback (shared/MEASURED.md).
_NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class NotConnected(ConnectionError):
    """Publishing failed because the broker could not be reached in time."""


class TlsSetupError(ValueError):
    """The TLS files in [mqtt] cannot be used (missing, unreadable, key not matching the certificate)."""


def tls_context_for(settings: MqttSettings) -> ssl.SSLContext:
    """A client TLS context: TLS 1.2+, the broker's certificate checked against `ca_file` (or the
    system CAs) and against the host name dialled; this client's certificate if configured."""
    s = settings
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(s.ca_file) if s.ca_file else None)
        if s.cert_file is not None:
            context.load_cert_chain(str(s.cert_file), str(s.key_file) if s.key_file else None)
    except (OSError, ssl.SSLError) as exc:
        # Names the files, never their content.
        raise TlsSetupError(f"cannot use the [mqtt] TLS files (ca_file={s.ca_file}, cert_file={s.cert_file}, "
                            f"key_file={s.key_file}): {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_3 if s.tls_min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True, slots=True)
class Will:
    """The last will: published by the broker when this client vanishes without a goodbye."""

    topic: str
    payload: bytes
    retain: bool = True
    qos: int = 1


Handler = Callable[[IncomingMessage], Awaitable[None]]
ConnectHook = Callable[["MqttClient"], Awaitable[None]]


@dataclass(slots=True)
class _Subscription:
    topic_filter: str
    handler: Handler
    qos: int


class MqttClient:
    """One connection to the broker, kept up by `run()` until `stop()`.

    Register handlers with `subscribe()` before or while running; they are re-subscribed
    after every reconnect. Handlers run as tasks, at most `max_in_flight` at a time.
    """

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        *,
        will: Will | None = None,
        on_connect: ConnectHook | None = None,
        max_in_flight: int = 512,
    ) -> None:
        self._settings = settings
        self.client_id = client_id
        self._will = will
        self._on_connect = on_connect
        self._subs: list[_Subscription] = []
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the client is connected; raises TimeoutError."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        """Deliver messages matching `topic_filter` to `handler`."""
        sub = _Subscription(topic_filter, handler, qos)
        self._subs.append(sub)
        if self._client is not None and self.is_connected:
            task = asyncio.ensure_future(self._client.subscribe(topic_filter, qos=qos))
            task.add_done_callback(lambda t: _late_subscribe_done(self.client_id, topic_filter, t))

    async def publish(
        self,
        topic: str,
        message: BaseModel | bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        timeout: float | None = 5.0,
    ) -> None:
        """Publish a model (as JSON) or raw bytes; raises NotConnected if the broker is away."""
        payload = message if isinstance(message, bytes) else encode(message)
        if not self._connected.is_set():
            # Only the slow path pays for a wait_for (each one is a task and a timer on 3.11).
            try:
                await asyncio.wait_for(self._connected.wait(), timeout)
            except TimeoutError:
                raise NotConnected(f"{self.client_id}: broker unreachable, not published to {topic}") from None
        client = self._client
        if client is None:
            raise NotConnected(f"{self.client_id}: not connected")
        try:
            # aiomqtt bounds its own PUBACK wait with `timeout`.
            await client.publish(topic, payload, qos=qos, retain=retain, timeout=timeout)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            raise NotConnected(f"{self.client_id}: publish to {topic} failed: {exc}") from exc

    def stop(self) -> None:
        """Ask `run()` to disconnect cleanly and return."""
        self._stopping.set()

    async def run(self) -> None:
        """Connect, subscribe and dispatch until `stop()`; reconnects with exponential backoff."""
        delay = self._settings.reconnect_min_s
        while not self._stopping.is_set():
            try:
                async with self._make_client() as client:
                    self._client = client
                    for sub in self._subs:
                        _warn_if_refused(self.client_id, sub.topic_filter,
                                         await client.subscribe(sub.topic_filter, qos=sub.qos))
                    self._connected.set()
                    self.connections += 1
                    delay = self._settings.reconnect_min_s
                    log.info("mqtt %s connected to %s:%s", self.client_id, self._settings.host,
                             self._settings.port)
                    if self._on_connect is not None:
                        await self._on_connect(self)
                    await self._pump(client)
            except aiomqtt.MqttError as exc:
                if self._stopping.is_set():
                    break
                log.warning("mqtt %s: connection lost or refused (%s); retrying in %.1fs",
                            self.client_id, exc, delay)
            finally:
                self._connected.clear()
                self._client = None
            if self._stopping.is_set():
                break
            # Full jitter, so a fleet of gates does not reconnect in lockstep after an outage.
            await _sleep_or_stop(self._stopping, random.uniform(delay / 2, delay))
            delay = min(delay * 2, self._settings.reconnect_max_s)
        await self._drain()

    async def _pump(self, client: aiomqtt.Client) -> None:
        """Dispatch messages until the connection drops (raises) or stop() is called."""

        async def receive() -> None:
            async for msg in client.messages:
                self._dispatch(msg)

        pump = asyncio.ensure_future(receive())
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({pump, stop}, return_when=asyncio.FIRST_COMPLETED)
            if pump in done:
                pump.result()
        finally:
            for task in (pump, stop):
                task.cancel()
            await asyncio.gather(pump, stop, return_exceptions=True)

    def _dispatch(self, msg: aiomqtt.Message) -> None:
        topic = msg.topic.value
        payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
        incoming = IncomingMessage(topic, payload, bool(msg.retain))
        for sub in self._subs:
            if matches(sub.topic_filter, topic):
                task = asyncio.ensure_future(self._run_handler(sub.handler, incoming))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _run_handler(self, handler: Handler, msg: IncomingMessage) -> None:
        async with self._slots:
            try:
                await handler(msg)
            except Exception:
                # A handler bug must not take the connection down with it.
                log.exception("mqtt %s: handler failed on %s", self.client_id, msg.topic)

    async def _drain(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)

    def _make_client(self) -> aiomqtt.Client:
        s = self._settings
        will = None
        if self._will is not None:
            will = aiomqtt.Will(self._will.topic, self._will.payload, qos=self._will.qos,
                                retain=self._will.retain)
        tls_context = tls_context_for(s) if s.tls else None
        protocol = aiomqtt.ProtocolVersion.V5 if s.protocol == "5" else aiomqtt.ProtocolVersion.V311
        return aiomqtt.Client(
            s.host,
            s.port,
            identifier=self.client_id,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
            will=will,
            keepalive=s.keepalive_s,
            protocol=protocol,
            tls_context=tls_context,
            socket_options=_NODELAY,
            timeout=5.0,
            max_inflight_messages=1000,
            max_queued_outgoing_messages=100_000,
        )


async def _sleep_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        pass


def _warn_if_refused(client_id: str, topic_filter: str, granted: Any) -> None:
    """A SUBACK failure code (0x80 and up: e.g. not authorized by the broker's ACL) means this client
    will never see those messages; say so instead of waiting silently."""
    for code in granted if isinstance(granted, list | tuple) else ():
        value = getattr(code, "value", code)
        if isinstance(value, int) and value >= 0x80:
            log.warning("mqtt %s: broker refused the subscription to %s (code %#x): check this identity's ACL",
                        client_id, topic_filter, value)


def _late_subscribe_done(client_id: str, topic_filter: str, task: asyncio.Future[Any]) -> None:
    if task.cancelled():
        return
    if task.exception() is not None:
        log.warning("late subscribe failed: %s", task.exception())
    else:
        _warn_if_refused(client_id, topic_filter, task.result())
