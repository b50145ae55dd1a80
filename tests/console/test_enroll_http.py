"""Adding residents through the console, with a real admin worker (face models loaded) behind it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from admin_worker.client import AdminClient
from schemas.admin import ListUsers
from store.keyed_hash import KeyedHasher
from store.repository import Store
from tests import face_photos as photos
from tests.conftest import BrokerInfo
from tests.console.conftest import (
    ADMIN,
    browser_like,
    console_settings,
    csrf_of,
    log_in,
    running_admin_worker,
    running_console,
)


@dataclass
class Site:
    http: httpx.AsyncClient
    store: Store
    admin: AdminClient


@pytest.fixture
async def site(tmp_path: Path, broker: BrokerInfo, embedded_store: Store,
               hasher: KeyedHasher) -> AsyncIterator[Site]:
    """Console, admin worker and a probe client, on each real broker (amqtt and Mosquitto)."""
    settings = console_settings(tmp_path, broker)
    async with (running_admin_worker(settings, embedded_store, hasher),
                running_console(settings, embedded_store) as console,
                browser_like(console.url) as http,
                AdminClient(settings.mqtt, "test-probe") as admin):
        assert (await log_in(http)).status_code == 303
        yield Site(http, embedded_store, admin)


async def _add(site: Site, photo: bytes | None = None, **fields: str) -> httpx.Response:
    token = csrf_of((await site.http.get("/residents/new")).text)
    files = {"photo": ("face.jpg", photo, "image/jpeg")} if photo is not None else None
    return await site.http.post("/residents", data={"csrf_token": token, **fields}, files=files)


async def _user_ids(site: Site) -> list[str]:
    reply = await site.admin.send(ListUsers())
    return [u.id for u in reply.users]


async def test_add_list_search_and_duplicate_face_rolled_back(site: Site) -> None:
    yao = photos.YAO.read_bytes()
    ok = await _add(site, yao, user_id="U100", name="Kim Min-su", building="A", unit="1203",
                    phone="010-1234-5678", card_id="CARD-100")
    assert ok.status_code == 200, ok.text
    assert "Resident <strong>U100</strong> was added" in ok.text

    listed = await site.http.get("/residents")
    assert listed.status_code == 200 and 'data-user-id="U100"' in listed.text and "Kim Min-su" in listed.text
    found = await site.http.get("/residents", params={"building": "A", "unit": "1203"})
    assert 'data-user-id="U100"' in found.text
    other_unit = await site.http.get("/residents", params={"building": "A", "unit": "0101"})
    assert 'data-user-id="U100"' not in other_unit.text and "0 residents" in other_unit.text
    row = re.search(r'<tr data-user-id="U100".*?</tr>', listed.text, re.S)
    assert row is not None and "<td>1</td><td>1</td>" in row.group(0)  # one card, one face

    mirrored = photos.jpeg(photos.variants(photos.load(photos.YAO))["flip"])
    dup = await _add(site, mirrored, user_id="U200", name="Lee Ji-woo", building="B", unit="0301",
                     card_id="CARD-200")
    assert dup.status_code == 409
    assert "Duplicate Face (U100 — Kim Min-su)" in dup.text
    assert "중복된 얼굴 (U100 — Kim Min-su)" in dup.text
    assert 'data-matched-user="U100"' in dup.text
    assert "was deleted again" in dup.text  # rolled back: nothing half-created is left
    assert await _user_ids(site) == ["U100"]
    # The card U200 brought was rolled back with them: it can be enrolled again.
    again = await _add(site, None, user_id="U201", name="Park", card_id="CARD-200")
    assert again.status_code == 200, again.text


async def test_duplicate_card_named_and_existing_user_never_rolled_back(site: Site) -> None:
    assert (await _add(site, None, user_id="U1", name="Kim Min-su", card_id="CARD-1")).status_code == 200
    dup = await _add(site, None, user_id="U2", name="Lee", card_id="CARD-1")
    assert dup.status_code == 409
    assert "Duplicate Card (U1 — Kim Min-su)" in dup.text and "중복된 카드 (U1 — Kim Min-su)" in dup.text
    # Submitting an id that exists is refused and the existing resident is left alone.
    exists = await _add(site, None, user_id="U1", name="Someone Else", card_id="CARD-9")
    assert exists.status_code == 409 and "USER_EXISTS" in exists.text and "was deleted again" not in exists.text
    assert await _user_ids(site) == ["U1"]


async def test_photo_without_a_face_is_a_message_not_a_500(site: Site) -> None:
    coffee = photos.jpeg(photos.no_face_photo())
    r = await _add(site, coffee, user_id="U7", name="Choi", card_id="CARD-7")
    assert r.status_code == 409
    assert "UNUSABLE_PHOTO" in r.text and "was deleted again" in r.text
    assert await _user_ids(site) == []


async def test_enroll_events_reach_the_console_feed(site: Site) -> None:
    async with site.http.stream("GET", "/stream") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert await anext(lines) == "retry: 2000"
        await _add(site, None, user_id="U5", name="Jung", card_id="CARD-5")
        await _add(site, None, user_id="U6", name="Han", card_id="CARD-5")
        seen: list[str] = []

        async def read_until_duplicate() -> None:
            async for line in lines:
                seen.append(line)
                if line.startswith("data:") and '"DUPLICATE"' in line:
                    return

        await asyncio.wait_for(read_until_duplicate(), 15)
        assert any('"subject":"U5"' in s and '"DONE"' in s for s in seen)
        dup_line = next(s for s in seen if '"DUPLICATE"' in s)
        assert '"subject":"U6"' in dup_line and "CARD already held by U1" not in dup_line
        assert "CARD already held by U5" in dup_line and f"by {ADMIN}" in dup_line
        assert "CARD-5" not in "".join(seen)  # card ids never reach the stream
