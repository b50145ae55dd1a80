"""Face decisions end to end over each real broker: real photos, real models, embedded store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from face_engine.pipeline import FaceEngine
from face_engine.templates import to_template
from schemas.access import FaceCredential
from schemas.codes import EventCode, ReasonCode
from schemas.events import AlertEvent
from store.keyed_hash import KeyedHasher
from store.repository import Store
from tests import face_photos as photos
from tests.conftest import BrokerInfo, eventually
from tests.platform_fixture import Platform, running_platform


@pytest.fixture
async def platform(tmp_path: Path, broker: BrokerInfo, embedded_store: Store, hasher: KeyedHasher,
                   face_engine: FaceEngine) -> AsyncIterator[Platform]:
    # U1 enrolls with the portrait before the worker starts; the index loads it at start.
    enrolled = face_engine.embed_photo(photos.YAO.read_bytes())
    embedded_store.add_face_template(to_template("U1", face_engine.model_id, enrolled, "face-U1-1"))
    async with running_platform(tmp_path, broker, embedded_store, hasher) as p:
        await asyncio.wait_for(p.worker.faces.ready.wait(), 30)
        yield p


def _frame(path: Path | None = None, variant: str | None = None) -> bytes:
    img = photos.load(path or photos.YAO)
    if variant:
        img = photos.variants(img)[variant]
    return photos.jpeg(photos.as_camera_frame(img))


async def test_enrolled_face_is_granted_from_a_camera_frame(platform: Platform) -> None:
    decision = await platform.lobby.present(FaceCredential(jpeg=_frame(variant="flip")))
    assert decision.granted and decision.subject_id == "U1", decision
    assert platform.lobby_relay.unlock_count == 1


async def test_unknown_face_denied_and_reported(platform: Platform) -> None:
    alerts = platform.probe.on("events/alert/unknown_face")
    await asyncio.sleep(0.1)
    decision = await platform.lobby.present(FaceCredential(jpeg=photos.jpeg(photos.load(photos.GROUP))))
    assert not decision.granted and decision.reason == ReasonCode.FACE_NOT_MATCHED.value
    assert platform.lobby_relay.unlock_count == 0
    await eventually(lambda: alerts)
    alert = AlertEvent.model_validate_json(alerts[0].payload)
    assert alert.code is EventCode.UNKNOWN_FACE and alert.gate_id == "lobby"


async def test_enrolled_face_at_a_gate_not_in_their_groups(platform: Platform) -> None:
    decision = await platform.garage.present(FaceCredential(jpeg=_frame()))
    assert decision.reason == ReasonCode.NOT_PERMITTED_AT_GATE.value and decision.subject_id == "U1"


@pytest.mark.parametrize("data, reason", [
    (photos.jpeg(photos.no_face_photo()), ReasonCode.NO_FACE_FOUND),
    (b"\xff\xd8\xff\xe0 truncated", ReasonCode.BAD_IMAGE),
], ids=["no-face", "corrupt"])
async def test_unusable_photos_are_typed_denials(platform: Platform, data: bytes, reason: ReasonCode) -> None:
    decision = await platform.lobby.present(FaceCredential(jpeg=data))
    assert not decision.granted and decision.reason == reason.value
    assert (await platform.lobby.present_card("CARD-1")).granted  # the worker carries on


async def test_edge_embedding_and_model_mismatch(platform: Platform, face_engine: FaceEngine) -> None:
    vec = face_engine.embed_photo(_frame(variant="brighter")).embedding.tolist()
    ok = await platform.lobby.present(FaceCredential(embedding=vec, model_id=face_engine.model_id))
    assert ok.granted and ok.subject_id == "U1"
    other = await platform.lobby.present(FaceCredential(embedding=vec, model_id="buffalo_l"))
    assert other.reason == ReasonCode.FACE_MODEL_MISMATCH.value


async def test_enrollment_and_removal_reach_a_running_worker(platform: Platform, face_engine: FaceEngine) -> None:
    astronaut = photos.jpeg(photos.as_camera_frame(photos.astronaut()))
    assert (await platform.lobby.present(FaceCredential(jpeg=astronaut))).reason == "FACE_NOT_MATCHED"
    result = face_engine.embed_photo(photos.jpeg(photos.astronaut()))
    await asyncio.to_thread(platform.store.add_face_template,
                            to_template("U1", face_engine.model_id, result, "face-U1-astro"))
    await eventually(lambda: "face-U1-astro" in platform.worker.faces.index, timeout=5)
    assert (await platform.lobby.present(FaceCredential(jpeg=astronaut))).granted
    await asyncio.to_thread(platform.store.remove_face_template, "face-U1-astro")
    await eventually(lambda: "face-U1-astro" not in platform.worker.faces.index, timeout=5)
    assert (await platform.lobby.present(FaceCredential(jpeg=astronaut))).reason == "FACE_NOT_MATCHED"
