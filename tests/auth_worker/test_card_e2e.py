"""Card decisions end to end over each real broker (amqtt and Mosquitto) with the embedded store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from schemas import topics
from schemas.access import AccessResponse
from schemas.codec import decode
from schemas.codes import ReasonCode
from schemas.events import AccessEvent, AlertEvent
from store.keyed_hash import KeyedHasher
from store.repository import Store
from tests.conftest import BrokerInfo, eventually
from tests.platform_fixture import Platform, running_platform


@pytest.fixture
async def platform(tmp_path: Path, broker: BrokerInfo, embedded_store: Store,
                   hasher: KeyedHasher) -> AsyncIterator[Platform]:
    async with running_platform(tmp_path, broker, embedded_store, hasher) as p:
        yield p


async def test_known_card_granted_and_door_opens(platform: Platform) -> None:
    events = platform.probe.on("events/access/+")
    await asyncio.sleep(0.1)  # let the probe's late subscription land
    decision = await platform.lobby.present_card("CARD-1")
    assert decision.granted and decision.reason == "GRANTED" and decision.subject_id == "U1"
    assert platform.lobby_relay.unlock_count == 1
    await eventually(lambda: events)
    event = AccessEvent.model_validate_json(events[0].payload)
    assert event.request_id == decision.request_id and event.granted and event.subject_id == "U1"
    assert b"CARD-1" not in events[0].payload  # the audit stream never carries card ids
    await eventually(lambda: platform.store.count_access_events({"request_id": decision.request_id}) == 1)


@pytest.mark.parametrize("gate, card, reason", [
    ("lobby", "CARD-UNKNOWN", ReasonCode.UNKNOWN_CREDENTIAL),
    ("lobby", "CARD-2", ReasonCode.USER_INACTIVE),
    ("garage", "CARD-1", ReasonCode.NOT_PERMITTED_AT_GATE),
])
async def test_denials_keep_the_door_shut(platform: Platform, gate: str, card: str, reason: ReasonCode) -> None:
    agent = platform.lobby if gate == "lobby" else platform.garage
    decision = await agent.present_card(card)
    assert not decision.granted
    assert decision.reason == reason.value
    assert agent.relay.unlock_count == 0  # type: ignore[attr-defined]
    await eventually(lambda: platform.store.count_access_events(
        {"request_id": decision.request_id, "granted": False, "reason": reason.value}) == 1)


async def test_retry_with_same_request_id_gets_same_answer_recorded_once(platform: Platform) -> None:
    first = await platform.lobby.present_card("CARD-1")
    from schemas.access import CardCredential

    again = await platform.lobby.present(CardCredential(acc_id="CARD-1"), request_id=first.request_id)
    assert again.granted and first.response is not None and again.response is not None
    assert again.response.msg_id == first.response.msg_id
    await asyncio.sleep(0.2)
    await eventually(lambda: platform.store.count_access_events({"request_id": first.request_id}) == 1)


async def test_deactivation_reaches_the_worker_without_restart(platform: Platform) -> None:
    assert (await platform.lobby.present_card("CARD-1")).granted
    await asyncio.to_thread(platform.store.set_user_active, "U1", False)

    async def denied() -> bool:
        return (await platform.lobby.present_card("CARD-1")).reason == ReasonCode.USER_INACTIVE.value

    await eventually(denied, timeout=5.0, interval=0.1)


async def _send_raw(platform: Platform, payload: bytes, gate: str = "lobby") -> None:
    await platform.probe.client.publish(topics.access_request(gate), payload)


async def test_malformed_requests_answered_or_dropped_worker_survives(platform: Platform) -> None:
    responses = platform.probe.on("access/response/lobby")
    alerts = platform.probe.on("events/alert/#")
    await asyncio.sleep(0.1)
    good_credential = {"type": "card", "acc_id": "CARD-1"}
    # Wrong types and missing fields: the request id is readable, so the gate gets a typed denial.
    await _send_raw(platform, json.dumps({"v": 1, "ts": "2026-01-01T00:00:00Z", "request_id": "bad-types",
                                          "gate_id": 17, "credential": good_credential}).encode())
    await _send_raw(platform, json.dumps({"request_id": "bad-missing"}).encode())
    await _send_raw(platform, json.dumps({"request_id": "bad-extra", "gate_id": "lobby",
                                          "credential": good_credential, "open": True}).encode())
    # Unreadable: no request id to answer; logged and alerted.
    await _send_raw(platform, b"\x00\xff garbage \xfe")
    await _send_raw(platform, b"[1, 2, 3]")
    await _send_raw(platform, json.dumps({"request_id": "x/../#"}).encode())

    def answered() -> dict[str, AccessResponse]:
        return {r.request_id: r for r in (decode(AccessResponse, m.payload) for m in responses)}

    await eventually(lambda: {"bad-types", "bad-missing", "bad-extra"} <= set(answered()))
    for rid in ("bad-types", "bad-missing", "bad-extra"):
        r = answered()[rid]
        assert not r.granted and r.reason is ReasonCode.MALFORMED_REQUEST
    assert set(answered()) == {"bad-types", "bad-missing", "bad-extra"}
    await eventually(lambda: alerts)
    assert AlertEvent.model_validate_json(alerts[0].payload).gate_id == "lobby"
    # Nothing opened, and the worker still decides.
    assert platform.lobby_relay.unlock_count == 0
    assert (await platform.lobby.present_card("CARD-1")).granted


async def test_ten_mib_payload_does_not_take_the_worker_down(platform: Platform, broker: BrokerInfo) -> None:
    huge = b'{"request_id": "huge", "pad": "' + b"A" * (10 * 1024 * 1024) + b'"}'
    try:
        await platform.probe.client.publish(topics.access_request("lobby"), huge, timeout=5.0)
    except ConnectionError:
        pass  # Mosquitto refuses packets over max_packet_size by dropping the sender's connection
    await asyncio.sleep(0.5)
    decision = await platform.lobby.present_card("CARD-1")
    assert decision.granted
    assert platform.worker.decisions >= 1
    responses = [m for ms in platform.probe.seen.values() for m in ms if b"huge" in m.payload]
    assert responses == []
