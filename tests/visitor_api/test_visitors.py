"""The /visitors routes over a real broker: what the bridge publishes, how replies map to HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from config.ports import free_port
from schemas import topics
from schemas.visitor import PassStatus, VisitorErrorCode, VisitorReply, VisitorRequest
from tests.conftest import BrokerInfo, make_settings
from tests.visitor_api.conftest import (
    OTHER_RESIDENT,
    RESIDENT_USER,
    TINY_PNG,
    Seeded,
    UnitLedger,
    bridge_settings,
    running_bridge,
    running_peer,
    visit,
)
from visitor_api.middleware import SECURITY_HEADERS


async def test_resident_comes_from_the_token_never_from_the_body(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    settings = bridge_settings(tmp_path, amqtt_broker)
    async with running_peer(settings) as peer, running_bridge(settings, seeded.accounts) as bridge:
        kim = await bridge.login()
        for smuggled in ({"resident_id": "U2"}, {"resident_id": RESIDENT_USER}, {"action": "register"},
                         {"unit": "0801"}):
            resp = await bridge.http.post("/visitors", json=visit(**smuggled), headers=kim)
            assert resp.status_code == 422, smuggled
            assert resp.json()["code"] == "VALIDATION_FAILED"
            assert any(e["loc"][-1] == next(iter(smuggled)) for e in resp.json()["errors"])
        assert peer.requests == []

        resp = await bridge.http.post("/visitors", json=visit(), headers=kim)
        assert resp.status_code == 201, resp.text
        (request,) = peer.requests
        assert request.resident_id == RESIDENT_USER and request.action.action == "register"
        assert request.action.visitor_name == "Park Jiwoo" and request.action.max_uses == 2
        # The reply topic the bridge waited on is the one the contract names for the request id.
        assert topics.visitor_reply(request.request_id) == f"visitor/reply/{request.request_id}"

        # Another resident's token lists, and revokes, only as that resident: the worker scopes it.
        lee = await bridge.login(OTHER_RESIDENT)
        assert (await bridge.http.get("/visitors", headers=lee)).json() == {"passes": []}
        pass_id = resp.json()["pass"]["pass_id"]
        stolen = await bridge.http.delete(f"/visitors/{pass_id}", headers=lee)
        assert stolen.status_code == 404 and stolen.json()["code"] == "PASS_NOT_FOUND"
        assert [r.resident_id for r in peer.requests[1:]] == ["U2", "U2"]


async def test_register_list_show_revoke_map_the_worker_replies(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    settings = bridge_settings(tmp_path, amqtt_broker)
    ledger = UnitLedger()
    async with running_peer(settings, ledger), running_bridge(settings, seeded.accounts) as bridge:
        kim = await bridge.login()
        created = await bridge.http.post("/visitors", json=visit(fcm_token="device-token-1", gate_ids=["lobby"]),
                                         headers=kim)
        assert created.status_code == 201
        body = created.json()
        assert base64.b64decode(body["qr_png_base64"]) == TINY_PNG and body["qr_svg"] == "<svg/>"
        assert body["pushed"] is True and body["qr_payload"] == f"P1.{body['pass']['pass_id']}.sig"
        assert body["pass"]["gate_ids"] == ["lobby"] and body["pass"]["status"] == "active"
        pass_id = body["pass"]["pass_id"]

        # The worker records a use; the resident sees when and where.
        used_at = datetime.now(UTC).replace(microsecond=0)
        ledger.passes[pass_id] = ledger.passes[pass_id].model_copy(
            update={"uses": 1, "last_used_at": used_at, "last_used_gate": "lobby"})
        shown = await bridge.http.get(f"/visitors/{pass_id}", headers=kim)
        assert shown.status_code == 200
        assert shown.json()["uses"] == 1 and shown.json()["last_used_gate"] == "lobby"
        assert datetime.fromisoformat(shown.json()["last_used_at"]) == used_at
        listed = await bridge.http.get("/visitors", headers=kim)
        assert [p["pass_id"] for p in listed.json()["passes"]] == [pass_id]

        revoked = await bridge.http.delete(f"/visitors/{pass_id}", headers=kim)
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        assert ledger.passes[pass_id].status is PassStatus.REVOKED
        assert (await bridge.http.get("/visitors", headers=kim)).json() == {"passes": []}
        inactive = await bridge.http.get("/visitors", params={"include_inactive": "true"}, headers=kim)
        assert [p["status"] for p in inactive.json()["passes"]] == ["revoked"]
        missing = await bridge.http.get("/visitors/nope", headers=kim)
        assert missing.status_code == 404 and missing.json()["code"] == "PASS_NOT_FOUND"
        bad_id = await bridge.http.get("/visitors/a%2Fb", headers=kim)
        assert bad_id.status_code in (404, 422)


async def test_idempotency_key_fixes_the_request_id_per_account_and_action(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    settings = bridge_settings(tmp_path, amqtt_broker)
    async with running_peer(settings) as peer, running_bridge(settings, seeded.accounts) as bridge:
        kim, lee = await bridge.login(), await bridge.login(OTHER_RESIDENT)
        for headers in (kim, kim, lee):
            resp = await bridge.http.post("/visitors", json=visit(), headers={**headers, "Idempotency-Key": "k-1"})
            assert resp.status_code == 201
        await bridge.http.post("/visitors", json=visit(), headers={**kim, "Idempotency-Key": "k-2"})
        await bridge.http.post("/visitors", json=visit(), headers=kim)
        await bridge.http.post("/visitors", json=visit(), headers=kim)
        ids = [r.request_id for r in peer.requests]
        assert ids[0] == ids[1]  # a retry: visitor_worker answers it with its first reply
        assert len(set(ids)) == 5  # another account, another key, no key: all distinct
        bad = await bridge.http.post("/visitors", json=visit(), headers={**kim, "Idempotency-Key": "a/b"})
        assert bad.status_code == 422 and len(peer.requests) == 6


async def test_worker_refusals_map_to_typed_4xx_and_5xx(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    settings = bridge_settings(tmp_path, amqtt_broker)
    refusal: dict[str, VisitorErrorCode | None] = {"code": None}

    def refuse(request: VisitorRequest) -> VisitorReply:
        return VisitorReply(request_id=request.request_id, ok=False, code=refusal["code"],
                            error="Traceback: secret internals" if refusal["code"] is VisitorErrorCode.INTERNAL_ERROR
                            else "the window is 9 days; at most 7 allowed")

    expected = {
        VisitorErrorCode.WINDOW_TOO_LONG: 422, VisitorErrorCode.WINDOW_IN_PAST: 422,
        VisitorErrorCode.TOO_MANY_USES: 422, VisitorErrorCode.GATE_NOT_PERMITTED: 422,
        VisitorErrorCode.INVALID_REQUEST: 422, VisitorErrorCode.TOO_MANY_PASSES: 409,
        VisitorErrorCode.PASS_NOT_FOUND: 404, VisitorErrorCode.UNKNOWN_RESIDENT: 403,
        VisitorErrorCode.RESIDENT_INACTIVE: 403, VisitorErrorCode.INTERNAL_ERROR: 502,
    }
    assert set(expected) == set(VisitorErrorCode)
    async with running_peer(settings, refuse), running_bridge(settings, seeded.accounts) as bridge:
        kim = await bridge.login()
        for code, status in expected.items():
            refusal["code"] = code
            resp = await bridge.http.post("/visitors", json=visit(), headers=kim)
            assert resp.status_code == status, code
            assert resp.json()["code"] == code.value
            if code is VisitorErrorCode.INTERNAL_ERROR:
                assert "Traceback" not in resp.text
            else:
                assert resp.json()["message"] == "the window is 9 days; at most 7 allowed"
        refusal["code"] = None
        resp = await bridge.http.post("/visitors", json=visit(), headers=kim)
        assert resp.status_code == 502 and resp.json()["code"] == "BAD_REPLY"


async def test_silent_worker_gives_504_and_malformed_reply_gives_502_at_once(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    settings = bridge_settings(tmp_path, amqtt_broker, reply_timeout_s=0.5)
    mode = {"reply": "silent"}

    def respond(request: VisitorRequest) -> VisitorReply | bytes | None:
        if mode["reply"] == "silent":
            return None
        if mode["reply"] == "malformed":
            return json.dumps({"request_id": request.request_id, "ok": "maybe"}).encode()
        # An ok register reply without the pass it claims to have issued.
        return VisitorReply(request_id=request.request_id, ok=True)

    async with running_peer(settings, respond) as peer, running_bridge(settings, seeded.accounts) as bridge:
        kim = await bridge.login()
        t0 = time.monotonic()
        resp = await bridge.http.post("/visitors", json=visit(), headers=kim)
        assert resp.status_code == 504 and resp.json()["code"] == "REPLY_TIMEOUT"
        assert 0.45 <= time.monotonic() - t0 < 2.0
        assert len(peer.requests) == 1  # it went out; nobody answered

        mode["reply"] = "malformed"
        t0 = time.monotonic()
        resp = await bridge.http.post("/visitors", json=visit(), headers=kim)
        assert resp.status_code == 502 and resp.json()["code"] == "BAD_REPLY"
        assert time.monotonic() - t0 < 0.45  # not a timeout: the broken reply was recognised

        mode["reply"] = "empty"
        resp = await bridge.http.post("/visitors", json=visit(), headers=kim)
        assert resp.status_code == 502 and resp.json()["code"] == "BAD_REPLY"
        assert bridge.ctx.relay.pending == 0


async def test_replies_for_other_requests_or_on_other_topics_are_ignored(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    settings = bridge_settings(tmp_path, amqtt_broker, reply_timeout_s=1.0)
    async with running_peer(settings, lambda _: None) as peer, running_bridge(settings, seeded.accounts) as bridge:
        kim = await bridge.login()
        task = asyncio.create_task(bridge.http.post("/visitors", json=visit(), headers=kim))
        while not peer.requests:
            await asyncio.sleep(0.01)
        request_id = peer.requests[0].request_id
        # A reply naming this request but published on another request's topic must not be taken.
        wrong_topic = VisitorReply(request_id=request_id, ok=False, code=VisitorErrorCode.TOO_MANY_PASSES)
        await peer.client.publish(topics.visitor_reply("someone-else"), wrong_topic)
        resp = await task
        assert resp.status_code == 504


async def test_broker_down_gives_503_quickly(tmp_path: Path, seeded: Seeded) -> None:
    nowhere = BrokerInfo("amqtt", "127.0.0.1", free_port())
    settings = bridge_settings(tmp_path, nowhere, broker_wait_s=0.3)
    async with running_bridge(settings, seeded.accounts, wait_connected=False) as bridge:
        kim = await bridge.login()
        t0 = time.monotonic()
        resp = await bridge.http.post("/visitors", json=visit(), headers=kim)
        assert resp.status_code == 503 and resp.json()["code"] == "BROKER_UNAVAILABLE"
        assert resp.headers["retry-after"] == "5"
        assert time.monotonic() - t0 < 1.5


async def test_validation_size_limit_and_security_headers(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    settings = bridge_settings(tmp_path, amqtt_broker)
    async with running_peer(settings) as peer, running_bridge(settings, seeded.accounts) as bridge:
        kim = await bridge.login()
        start = datetime.now(UTC) + timedelta(days=1)
        cases = {
            "naive datetime": visit(valid_from=start.replace(tzinfo=None).isoformat()),
            "window backwards": visit(valid_until=(start - timedelta(hours=1)).isoformat()),
            "max_uses as text": visit(max_uses="2"),
            "max_uses too many": visit(max_uses=101),
            "bad gate id": visit(gate_ids=["lobby/#"]),
            "bad phone": visit(visitor_phone="call me maybe"),
            "empty name": visit(visitor_name=""),
            "not an object": [1, 2],
        }
        for label, body in cases.items():
            resp = await bridge.http.post("/visitors", json=body, headers=kim)
            assert resp.status_code == 422, label
            assert resp.json()["code"] == "VALIDATION_FAILED" and resp.json()["errors"], label
            assert "call me maybe" not in resp.text
        garbled = await bridge.http.post("/visitors", content=b"{not json", headers={**kim, "Content-Type":
                                                                                   "application/json"})
        assert garbled.status_code == 422
        huge = await bridge.http.post("/visitors", json=visit(purpose="x" * 20_000), headers=kim)
        assert huge.status_code == 413 and huge.json()["code"] == "BODY_TOO_LARGE"

        async def chunks() -> object:
            for _ in range(40):
                yield b" " * 1024

        streamed = await bridge.http.post("/visitors", content=chunks(),  # type: ignore[arg-type]
                                          headers={**kim, "Content-Type": "application/json"})
        assert streamed.status_code == 413 and streamed.json()["code"] == "BODY_TOO_LARGE"
        assert peer.requests == []

        for resp in (huge, garbled, await bridge.http.get("/visitors", headers=kim),
                     await bridge.http.get("/visitors"), await bridge.http.get("/nothing-here")):
            for name, value in SECURITY_HEADERS.items():
                assert resp.headers.get(name) == value, (resp.request.url, name)
        unknown = await bridge.http.get("/nothing-here")
        assert unknown.status_code == 404 and unknown.json()["code"] == "NOT_FOUND"
        wrong_method = await bridge.http.put("/visitors", headers=kim)
        assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "METHOD_NOT_ALLOWED"


async def test_cors_is_closed_by_default_and_open_only_to_configured_origins(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"}
    closed = bridge_settings(tmp_path, amqtt_broker)
    async with running_bridge(closed, seeded.accounts) as bridge:
        resp = await bridge.http.options("/visitors", headers=preflight)
        assert "access-control-allow-origin" not in resp.headers
        resp = await bridge.http.get("/visitors", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in resp.headers

    opened = bridge_settings(tmp_path, amqtt_broker, cors_origins=["https://app.example"])
    async with running_bridge(opened, seeded.accounts) as bridge:
        ok = await bridge.http.options("/visitors", headers={**preflight, "Origin": "https://app.example"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"
        evil = await bridge.http.options("/visitors", headers=preflight)
        assert evil.headers.get("access-control-allow-origin") != "https://evil.example"


def test_openapi_documents_security_models_and_errors(tmp_path: Path, seeded: Seeded) -> None:
    from visitor_api.app import create_app

    settings = make_settings(tmp_path, BrokerInfo("amqtt", "127.0.0.1", 1))
    spec = create_app(settings, seeded.accounts).openapi()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ResidentToken"]["flows"]["password"]["tokenUrl"] == "auth/token"
    assert schemes["IntegrationKey"] == {**schemes["IntegrationKey"], "type": "apiKey", "in": "header",
                                         "name": "X-API-Key"}
    post = spec["paths"]["/visitors"]["post"]
    assert post["security"] == [{"ResidentToken": []}, {"IntegrationKey": []}]
    assert post["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/PassCreated")
    for status in ("401", "403", "404", "409", "413", "422", "429", "502", "503", "504"):
        assert status in post["responses"], status
    assert "Retry-After" in post["responses"]["429"]["headers"]
    assert spec["components"]["schemas"]["VisitorCreate"]["additionalProperties"] is False
    assert "resident_id" not in spec["components"]["schemas"]["VisitorCreate"]["properties"]
    codes = set(spec["components"]["schemas"]["ApiErrorCode"]["enum"])
    assert {c.value for c in VisitorErrorCode} <= codes and "REPLY_TIMEOUT" in codes
    token = spec["paths"]["/auth/token"]["post"]
    assert set(token["requestBody"]["content"]) == {"application/x-www-form-urlencoded", "application/json"}
    assert "security" not in token
