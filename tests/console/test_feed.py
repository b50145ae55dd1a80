"""What the console shows of the bus, and how it serves and stops."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.ports import free_port
from console.feed import to_feed_item
from console.server import ConsoleStartFailed, start_console
from messaging import MqttClient
from schemas import topics
from schemas.codec import encode
from schemas.codes import CredentialType, EventCode, ReasonCode
from schemas.errors import PayloadError
from schemas.events import AccessEvent, DeviceEvent, NotificationEvent
from schemas.gate import GateState, GateStatus
from store.repository import Store
from tests.conftest import BrokerInfo
from tests.console.conftest import browser_like, console_settings, log_in, running_console


def test_access_events_become_readable_lines_without_credentials() -> None:
    event = AccessEvent(code=EventCode.ACCESS_DENIED, request_id="r1", gate_id="lobby",
                        credential_type=CredentialType.CARD, granted=False, reason=ReasonCode.UNKNOWN_CREDENTIAL,
                        latency_ms=1.5)
    item = to_feed_item(topics.access_event("lobby"), encode(event))
    assert item is not None and item.outcome == "DENIED" and item.reason == "UNKNOWN_CREDENTIAL"
    assert item.gate == "lobby" and item.subject is None and item.detail == "card"


def test_private_notifications_are_not_shown_and_bad_payloads_raise() -> None:
    note = NotificationEvent(recipient_id="U1", title="Visitor", body="Your visitor arrived")
    assert to_feed_item(topics.notify_event("U1"), encode(note)) is None
    with pytest.raises(PayloadError):
        to_feed_item(topics.access_event("lobby"), b'{"not": "an event"}')
    with pytest.raises(PayloadError):
        to_feed_item(topics.access_event("lobby"), b"x" * 100_000)


async def test_gate_status_retained_before_start_then_live_over_sse(tmp_path: Path, amqtt_broker: BrokerInfo,
                                                                     embedded_store: Store) -> None:
    settings = console_settings(tmp_path, amqtt_broker)
    gate = MqttClient(settings.mqtt, "gate-probe")
    task = asyncio.create_task(gate.run())
    try:
        await gate.wait_connected(10)
        earlier = GateStatus(gate_id="garage", state=GateState.ONLINE)
        await gate.publish(topics.gate_status("garage"), earlier, retain=True)
        async with running_console(settings, embedded_store) as console, browser_like(console.url) as http:
            await log_in(http)
            page = ""
            deadline = time.monotonic() + 5
            while 'data-gate-id="garage"' not in page and time.monotonic() < deadline:
                page = (await http.get("/gates")).text
                await asyncio.sleep(0.05)
            assert 'class="state-online"' in page and earlier.ts.strftime("%H:%M:%S") in page
            async with http.stream("GET", "/stream") as stream:
                lines = stream.aiter_lines()
                assert await anext(lines) == "retry: 2000"
                await gate.publish(topics.gate_status("garage"), GateStatus(gate_id="garage", state=GateState.OFFLINE),
                                   retain=True)
                # A status published on another gate's topic is not believed.
                await gate.publish(topics.gate_status("lobby"), GateStatus(gate_id="garage", state=GateState.ONLINE))

                async def next_data() -> str:
                    async for line in lines:
                        if line.startswith("data:"):
                            return line
                    raise AssertionError("stream ended")

                data = await asyncio.wait_for(next_data(), 10)
                assert '"gate_id":"garage"' in data and '"state":"offline"' in data
                # The gate monitor's announcement says when it was last heard from: shown live.
                seen = datetime(2026, 11, 23, 10, 21, 33, tzinfo=UTC)
                await gate.publish(topics.device_event("garage"), DeviceEvent(
                    code=EventCode.GATE_OFFLINE, gate_id="garage", state=GateState.OFFLINE, last_seen=seen))
                # Two messages follow: the event's line for the events page, then the gate's new row.
                updates = [await asyncio.wait_for(next_data(), 10) for _ in range(2)]
                assert any('"gate_id":"garage"' in d and '"last_seen":"2026-11-23T10:21:33Z"' in d for d in updates)
            assert "10:21:33" in (await http.get("/gates")).text
            assert 'data-gate-id="lobby"' not in (await http.get("/gates")).text
    finally:
        gate.stop()
        await asyncio.wait_for(task, 10)


async def test_shutdown_ends_open_streams_at_once_and_a_taken_port_is_a_typed_error(
        tmp_path: Path, amqtt_broker: BrokerInfo, embedded_store: Store) -> None:
    settings = console_settings(tmp_path, amqtt_broker)
    async with running_console(settings, embedded_store) as console:
        # The port is taken by the running console: a second one fails with a typed error, not SystemExit.
        with pytest.raises(ConsoleStartFailed):
            await start_console(settings, console.accounts, timeout=10)
        with socket.socket() as blocker:
            port = free_port()
            blocker.bind(("127.0.0.1", port))
            blocker.listen()
            with pytest.raises(ConsoleStartFailed):
                await start_console(settings, console.accounts, port=port, timeout=10)

        port = free_port()
        task = await start_console(settings, console.accounts, port=port, timeout=10)
        async with browser_like(f"http://127.0.0.1:{port}") as http:
            assert (await log_in(http)).status_code == 303
            async with http.stream("GET", "/stream") as stream:
                lines = stream.aiter_lines()
                assert await anext(lines) == "retry: 2000"
                started = time.monotonic()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                stopped_in = time.monotonic() - started
                rest = [line async for line in lines]  # the server ended the stream
        assert stopped_in < 2.0, stopped_in  # uvicorn's graceful timeout (3 s) was not needed
        assert all(not line.startswith("data:") for line in rest)
