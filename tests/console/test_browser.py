"""The console in headless Chromium, end to end: a real broker, the embedded store, a real admin
worker (face models), a real auth worker and a gate agent."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from admin_worker.client import AdminClient
from auth_worker.service import AuthWorker
from config.settings import FaceSettings, Settings
from edge_agent.agent import GateAgent
from edge_agent.relay import LogRelay
from schemas.access import CardCredential
from schemas.admin import DefineAccessGroup, DefineGate
from store.keyed_hash import KeyedHasher
from store.repository import Store
from tests import face_photos as photos
from tests.conftest import BrokerInfo
from tests.console.conftest import ADMIN, ADMIN_PASSWORD, console_settings, running_admin_worker, running_console

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _need_chromium() -> None:
    # Fail, never skip: the test script installs Debian's chromium, so its absence is a broken setup.
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh does this)")


@contextlib.asynccontextmanager
async def running_auth_worker(settings: Settings, store: Store, hasher: KeyedHasher) -> AsyncIterator[AuthWorker]:
    # Cards only: the auth worker need not load face models for this scenario.
    card_only = settings.model_copy(update={"face": FaceSettings(enabled=False)})
    worker = AuthWorker(card_only, store, hasher, client_id="auth-console-test")
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.mqtt.wait_connected(), 30)
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 15)


async def test_admin_adds_residents_sees_duplicate_refusal_live_events_and_gate_status(
        tmp_path: Path, amqtt_broker: BrokerInfo, embedded_store: Store, hasher: KeyedHasher) -> None:
    _need_chromium()
    from playwright.async_api import async_playwright, expect

    started = time.monotonic()
    settings = console_settings(tmp_path, amqtt_broker)
    mirrored = tmp_path / "same-person-mirrored.jpg"
    mirrored.write_bytes(photos.jpeg(photos.variants(photos.load(photos.YAO))["flip"]))
    gate: GateAgent | None = None
    gate_task: asyncio.Task[None] | None = None
    async with (running_admin_worker(settings, embedded_store, hasher),
                running_auth_worker(settings, embedded_store, hasher),
                running_console(settings, embedded_store) as console,
                AdminClient(settings.mqtt, "site-setup") as setup,
                async_playwright() as pw):
        assert (await setup.send(DefineGate(gate_id="lobby", name="Lobby"))).ok
        assert (await setup.send(DefineAccessGroup(group_id="residents", name="Residents",
                                                   gate_ids=["lobby"]))).ok
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(base_url=console.url)
            page.set_default_timeout(20_000)
            expect.set_options(timeout=20_000)

            # Log in (the console sends us to the log-in page first).
            await page.goto("/residents")
            await expect(page).to_have_url(f"{console.url}/login?next=%2Fresidents")
            await page.fill("input[name=username]", ADMIN)
            await page.fill("input[name=password]", ADMIN_PASSWORD)
            await page.click("button[type=submit]")
            await expect(page).to_have_url(f"{console.url}/residents")

            # Resident A: real face photo and a card.
            await page.goto("/residents/new")
            await page.fill("input[name=user_id]", "A100")
            await page.fill("input[name=name]", "Kim Min-su")
            await page.fill("input[name=building]", "101")
            await page.fill("input[name=unit]", "1203")
            await page.fill("input[name=phone]", "010-1234-5678")
            await page.fill("input[name=groups]", "residents")
            await page.fill("input[name=card_id]", "CARD-A100")
            await page.set_input_files("input[name=photo]", str(photos.YAO))
            await page.click("#add-resident button[type=submit]")
            await expect(page.locator("#outcome.ok")).to_contain_text("A100")

            # A is listed, and a building/unit search finds them (and another unit does not).
            await page.goto("/residents")
            await expect(page.locator("tr[data-user-id=A100]")).to_contain_text("Kim Min-su")
            await page.fill("input[name=building]", "101")
            await page.fill("input[name=unit]", "1203")
            await page.click("form.search button[type=submit]")
            await expect(page.locator("tr[data-user-id=A100]")).to_be_visible()
            await expect(page.locator("#residents-total")).to_contain_text("1 resident")
            await page.goto("/residents?building=101&unit=9999")
            await expect(page.locator("#residents-total")).to_contain_text("0 residents")

            # Resident B with another photo of the same person: refused, naming A.
            await page.goto("/residents/new")
            await page.fill("input[name=user_id]", "B200")
            await page.fill("input[name=name]", "Lee Ji-woo")
            await page.fill("input[name=card_id]", "CARD-B200")
            await page.set_input_files("input[name=photo]", str(mirrored))
            await page.click("#add-resident button[type=submit]")
            duplicate = page.locator("#duplicate")
            await expect(duplicate.locator(".dup-en")).to_have_text("Duplicate Face (A100 — Kim Min-su)")
            await expect(duplicate.locator(".dup-ko")).to_have_text("중복된 얼굴 (A100 — Kim Min-su)")
            await expect(page.locator("#outcome")).to_contain_text("B200 was deleted again")
            await page.screenshot(path=str(tmp_path / "duplicate.png"), full_page=True)
            await page.goto("/residents")
            await expect(page.locator("tr[data-user-id=B200]")).to_have_count(0)

            # The events page shows the duplicate attempt, then a card at the gate live.
            await page.goto("/events")
            await expect(page.locator("#stream-state")).to_have_text("live")
            await expect(page.locator("tr[data-kind=enroll].outcome-duplicate")).to_contain_text("B200")
            gate = GateAgent(settings, "lobby", relay=LogRelay("lobby"))
            gate_task = asyncio.create_task(gate.run())
            await gate.mqtt.wait_connected(10)
            decision = await gate.present(CardCredential(acc_id="CARD-A100"))
            assert decision.granted and decision.subject_id == "A100", decision
            granted = page.locator("tr[data-kind=access].outcome-granted")
            await expect(granted).to_contain_text("A100")
            await expect(granted).to_contain_text("lobby")
            await expect(granted.first).to_have_class("outcome-granted fresh")  # added live, not on load
            await page.screenshot(path=str(tmp_path / "events.png"), full_page=True)

            # Gate status: online now, offline live once the gate stops.
            await page.goto("/gates")
            await expect(page.locator("#stream-state")).to_have_text("live")
            row = page.locator("tr[data-gate-id=lobby]")
            await expect(row.locator(".state")).to_have_text("online")
            await gate.stop()
            await asyncio.wait_for(gate_task, 10)
            gate_task = None
            await expect(row.locator(".state")).to_have_text("offline")
            await page.screenshot(path=str(tmp_path / "gates.png"), full_page=True)
        finally:
            if gate_task is not None and gate is not None:
                await gate.stop()
                await asyncio.wait_for(gate_task, 10)
            await browser.close()
    assert time.monotonic() - started < 90
