"""The bridge with the real visitor_worker over a real broker and the embedded store."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
from pyzbar import pyzbar

from tests.conftest import BrokerInfo
from tests.visitor_api.conftest import (
    OTHER_RESIDENT,
    RESIDENT_USER,
    Seeded,
    bridge_settings,
    running_bridge,
    running_worker,
    visit,
)


def decode_qr(png: bytes) -> str:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None, "not a PNG"
    (found,) = pyzbar.decode(image)
    return str(found.data.decode())


async def test_register_returns_a_png_qr_that_decodes_to_the_signed_payload(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    settings = bridge_settings(tmp_path, amqtt_broker, reply_timeout_s=10.0)
    async with running_worker(settings, seeded.store) as worker, \
            running_bridge(settings, seeded.accounts) as bridge:
        kim = await bridge.login()
        created = await bridge.http.post("/visitors", json=visit(), headers=kim)
        assert created.status_code == 201, created.text
        body = created.json()
        png = base64.b64decode(body["qr_png_base64"])
        assert png.startswith(b"\x89PNG")
        assert decode_qr(png) == body["qr_payload"]
        assert body["qr_svg"].lstrip().startswith(("<?xml", "<svg"))
        claims = worker.signer.verifier().verify(body["qr_payload"])
        assert claims.pass_id == body["pass"]["pass_id"]
        assert body["pass"]["resident_id"] == RESIDENT_USER and body["pass"]["gate_ids"] == ["lobby"]
        assert body["pushed"] is False and body["push_problem"] is None  # no device token given

        # A retry with the same key gets the same pass back, not a second one.
        pushy = visit(fcm_token="visitor-device-token")
        first = await bridge.http.post("/visitors", json=pushy, headers={**kim, "Idempotency-Key": "try-1"})
        again = await bridge.http.post("/visitors", json=pushy, headers={**kim, "Idempotency-Key": "try-1"})
        assert first.status_code == again.status_code == 201
        # No push channel on this site: the resident is told, and still gets the QR code to share.
        assert first.json()["pushed"] is False and "share" in first.json()["push_problem"]
        assert decode_qr(base64.b64decode(first.json()["qr_png_base64"])) == first.json()["qr_payload"]
        assert first.json()["pass"]["pass_id"] == again.json()["pass"]["pass_id"]
        assert first.json()["qr_payload"] == again.json()["qr_payload"]

        pass_id = body["pass"]["pass_id"]
        shown = await bridge.http.get(f"/visitors/{pass_id}", headers=kim)
        assert shown.status_code == 200 and shown.json()["uses"] == 0 and shown.json()["last_used_at"] is None
        listed = await bridge.http.get("/visitors", headers=kim)
        assert {p["pass_id"] for p in listed.json()["passes"]} == {pass_id, first.json()["pass"]["pass_id"]}


async def test_worker_scoping_and_policy_refusals_over_http(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    settings = bridge_settings(tmp_path, amqtt_broker, reply_timeout_s=10.0)
    async with running_worker(settings, seeded.store), running_bridge(settings, seeded.accounts) as bridge:
        kim, lee = await bridge.login(), await bridge.login(OTHER_RESIDENT)
        pass_id = (await bridge.http.post("/visitors", json=visit(), headers=kim)).json()["pass"]["pass_id"]

        # Lee, of another unit, neither sees nor revokes Kim's pass.
        assert (await bridge.http.get("/visitors", headers=lee)).json() == {"passes": []}
        for resp in (await bridge.http.get(f"/visitors/{pass_id}", headers=lee),
                     await bridge.http.delete(f"/visitors/{pass_id}", headers=lee)):
            assert resp.status_code == 404 and resp.json()["code"] == "PASS_NOT_FOUND"

        start = datetime.now(UTC) + timedelta(hours=1)
        too_long = visit(valid_from=start.isoformat(), valid_until=(start + timedelta(days=30)).isoformat())
        refused = await bridge.http.post("/visitors", json=too_long, headers=kim)
        assert refused.status_code == 422 and refused.json()["code"] == "WINDOW_TOO_LONG"
        garage = await bridge.http.post("/visitors", json=visit(gate_ids=["garage"]), headers=kim)
        assert garage.status_code == 422 and garage.json()["code"] == "GATE_NOT_PERMITTED"
        past = visit(valid_from=(start - timedelta(days=3)).isoformat(),
                     valid_until=(start - timedelta(days=2)).isoformat())
        assert (await bridge.http.post("/visitors", json=past, headers=kim)).json()["code"] == "WINDOW_IN_PAST"

        revoked = await bridge.http.delete(f"/visitors/{pass_id}", headers=kim)
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        assert (await bridge.http.get("/visitors", headers=kim)).json() == {"passes": []}
        everything = await bridge.http.get("/visitors?include_inactive=true", headers=kim)
        assert [(p["pass_id"], p["status"]) for p in everything.json()["passes"]] == [(pass_id, "revoked")]
