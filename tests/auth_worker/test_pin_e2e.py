"""Keypad PINs end to end over each real broker: set through the admin worker's own command code
(unit-scoped keyed hash), typed at a gate, decided by the auth worker with the card rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from auth_worker.service import AuthWorker
from schemas.access import PinCredential
from schemas.codes import ReasonCode
from store.keyed_hash import KeyedHasher
from store.repository import Store
from tests.conftest import BrokerInfo, eventually
from tests.platform_fixture import Platform, running_platform, set_pins


@pytest.fixture
async def platform(tmp_path: Path, broker: BrokerInfo, embedded_store: Store,
                   hasher: KeyedHasher) -> AsyncIterator[Platform]:
    async with running_platform(tmp_path, broker, embedded_store, hasher) as p:
        await asyncio.to_thread(set_pins, embedded_store, hasher)
        await p.worker.refresher.reload()
        yield p


async def test_right_pin_and_unit_opens(platform: Platform) -> None:
    decision = await platform.lobby.present(PinCredential(pin="4827", unit="1203"))
    assert decision.granted and decision.subject_id == "U1"
    assert platform.lobby_relay.unlock_count == 1
    # The same PIN in another unit is another person's.
    other = await platform.lobby.present(PinCredential(pin="4827", unit="0801"))
    assert other.granted and other.subject_id == "U3"
    # Unit codes are matched as the admin worker stores them (trimmed, any case).
    assert (await platform.lobby.present(PinCredential(pin="4827", unit=" 1203 "))).subject_id == "U1"
    await eventually(lambda: platform.store.count_access_events(
        {"request_id": decision.request_id, "credential_type": "pin", "granted": True}) == 1)


@pytest.mark.parametrize("pin, unit", [("4828", "1203"), ("4827", "1204"), ("4827", None), ("5931", "1203")])
async def test_wrong_pin_or_unit_is_unknown(platform: Platform, pin: str, unit: str | None) -> None:
    decision = await platform.lobby.present(PinCredential(pin=pin, unit=unit))
    assert not decision.granted and decision.reason == ReasonCode.UNKNOWN_CREDENTIAL.value
    assert decision.subject_id is None  # a wrong guess learns nothing about who lives there
    assert platform.lobby_relay.unlock_count == 0


async def test_inactive_users_pin_is_refused(platform: Platform) -> None:
    decision = await platform.lobby.present(PinCredential(pin="5931", unit="0801"))
    assert not decision.granted and decision.reason == ReasonCode.USER_INACTIVE.value
    assert platform.lobby_relay.unlock_count == 0


async def test_pin_follows_the_holders_gates(platform: Platform) -> None:
    decision = await platform.garage.present(PinCredential(pin="4827", unit="1203"))
    assert not decision.granted and decision.reason == ReasonCode.NOT_PERMITTED_AT_GATE.value


async def test_pin_never_reaches_the_audit_stream(platform: Platform) -> None:
    events = platform.probe.on("events/#")
    await asyncio.sleep(0.1)
    await platform.lobby.present(PinCredential(pin="4827", unit="1203"))
    await platform.lobby.present(PinCredential(pin="9173", unit="1203"))
    await eventually(lambda: len(events) >= 2)
    assert all(b"4827" not in m.payload and b"9173" not in m.payload for m in events)


async def test_repeated_wrong_pins_lock_that_units_keypad_at_that_gate(platform: Platform) -> None:
    limit = platform.settings.auth.pin_max_failures
    for guess in range(limit):
        wrong = await platform.lobby.present(PinCredential(pin=f"90{guess:02d}", unit="1203"))
        assert wrong.reason == ReasonCode.UNKNOWN_CREDENTIAL.value
    # Locked: even the right PIN is refused now, so a guesser cannot keep going.
    locked = await platform.lobby.present(PinCredential(pin="4827", unit="1203"))
    assert not locked.granted and locked.reason == ReasonCode.TOO_MANY_ATTEMPTS.value
    assert platform.lobby_relay.unlock_count == 0
    # Other units at the same gate are not locked out by it.
    other = await platform.lobby.present(PinCredential(pin="4827", unit="0801"))
    assert other.granted and other.subject_id == "U3"


async def test_the_keypad_lock_holds_across_workers(platform: Platform) -> None:
    """Counted in the store: a guesser gains nothing from another worker (shared subscriptions
    spread requests over workers) or from a worker restart."""
    for guess in range(platform.settings.auth.pin_max_failures):
        await platform.lobby.present(PinCredential(pin=f"91{guess:02d}", unit="1203"))
    platform.worker.stop()
    await asyncio.wait_for(platform.tasks[0], 10)
    fresh = AuthWorker(platform.settings, platform.store, platform.hasher, client_id="auth-test-2")
    task = asyncio.create_task(fresh.run())
    try:
        await asyncio.wait_for(fresh.mqtt.wait_connected(), 10)
        await asyncio.wait_for(fresh.ready.wait(), 10)
        locked = await platform.lobby.present(PinCredential(pin="4827", unit="1203"))
        assert not locked.granted and locked.reason == ReasonCode.TOO_MANY_ATTEMPTS.value
        assert fresh.decisions == 1  # the new worker refused it, not a cached answer
        assert platform.lobby_relay.unlock_count == 0
    finally:
        fresh.stop()
        await asyncio.wait_for(task, 10)
