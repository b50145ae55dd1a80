"""Authentication and rate limits of the bridge: JWT log-in, API keys, 401s, 429s."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import jwt

from tests.conftest import BrokerInfo
from tests.visitor_api.conftest import (
    OTHER_RESIDENT,
    PASSWORD,
    RESIDENT,
    RESIDENT_USER,
    Seeded,
    bridge_settings,
    running_bridge,
    running_peer,
)
from visitor_api.tokens import AUDIENCE, ISSUER

UNAUTHORIZED = {"code": "UNAUTHORIZED", "message": "missing or invalid credentials"}


async def test_no_or_bad_credentials_get_401_and_nothing_is_published(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    settings = bridge_settings(tmp_path, amqtt_broker)
    secret = settings.bridge.jwt_secret.get_secret_value()  # type: ignore[union-attr]
    now = int(time.time())
    claims = {"sub": RESIDENT, "uid": RESIDENT_USER, "iat": now, "exp": now + 600, "jti": "j1",
              "iss": ISSUER, "aud": AUDIENCE}
    expired = jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, secret, algorithm="HS256")
    forged = jwt.encode(claims, "y" * 40, algorithm="HS256")
    unsigned = jwt.encode(claims, "", algorithm="none")
    other_audience = jwt.encode({**claims, "aud": "passage-console"}, secret, algorithm="HS256")
    # A valid signature naming another user than the account's: refused, not silently re-scoped.
    wrong_user = jwt.encode({**claims, "uid": "U2"}, secret, algorithm="HS256")
    good = jwt.encode(claims, secret, algorithm="HS256")
    async with running_peer(settings) as peer, running_bridge(settings, seeded.accounts) as bridge:
        resp = await bridge.http.get("/visitors")
        assert resp.status_code == 401 and resp.json() == UNAUTHORIZED
        assert resp.headers["www-authenticate"] == "Bearer"
        for token in ("garbage", expired, forged, unsigned, other_audience, wrong_user, "a" * 5000):
            resp = await bridge.http.get("/visitors", headers={"Authorization": f"Bearer {token}"})
            assert (resp.status_code, resp.json()) == (401, UNAUTHORIZED), token[:40]
        for key in ("psk_unknown", ""):
            resp = await bridge.http.get("/visitors", headers={"X-API-Key": key})
            assert resp.status_code == 401
        assert peer.requests == []
        # The same claims, properly signed, do work: the refusals above are about the token.
        resp = await bridge.http.get("/visitors", headers={"Authorization": f"Bearer {good}"})
        assert resp.status_code == 200 and [r.resident_id for r in peer.requests] == [RESIDENT_USER]


async def test_login_issues_a_jwt_and_refuses_alike_for_unknown_user_and_wrong_password(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    settings = bridge_settings(tmp_path, amqtt_broker)
    async with running_peer(settings), running_bridge(settings, seeded.accounts) as bridge:
        wrong = await bridge.http.post("/auth/token", data={"username": RESIDENT, "password": "not the password"})
        unknown = await bridge.http.post("/auth/token", data={"username": "nobody", "password": PASSWORD})
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json() == {"code": "UNAUTHORIZED", "message": "wrong username or password"}
        assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"] == "Bearer"

        form = await bridge.http.post("/auth/token", data={"grant_type": "password", "username": RESIDENT,
                                                           "password": PASSWORD})
        as_json = await bridge.http.post("/auth/token", json={"username": RESIDENT, "password": PASSWORD})
        assert form.status_code == as_json.status_code == 200
        token = form.json()
        assert token["token_type"] == "bearer" and token["expires_in"] == settings.bridge.jwt_ttl_s
        claims = jwt.decode(token["access_token"], settings.bridge.jwt_secret.get_secret_value(),  # type: ignore[union-attr]
                            algorithms=["HS256"], audience=AUDIENCE)
        assert claims["sub"] == RESIDENT and claims["uid"] == RESIDENT_USER
        assert claims["exp"] - claims["iat"] == settings.bridge.jwt_ttl_s and claims["jti"]
        assert claims["jti"] != jwt.decode(as_json.json()["access_token"], options={"verify_signature": False})["jti"]

        resp = await bridge.http.get("/visitors", headers={"Authorization": f"Bearer {token['access_token']}"})
        assert resp.status_code == 200 and resp.json() == {"passes": []}

        text = await bridge.http.post("/auth/token", content=b"username=kim", headers={"Content-Type": "text/plain"})
        assert text.status_code == 415 and text.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
        extra = await bridge.http.post("/auth/token", json={"username": RESIDENT, "password": PASSWORD, "x": 1})
        assert extra.status_code == 422 and PASSWORD not in extra.text


async def test_deactivated_account_is_refused_at_once_and_integration_keys_work(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    settings = bridge_settings(tmp_path, amqtt_broker)
    async with running_peer(settings) as peer, running_bridge(settings, seeded.accounts) as bridge:
        by_key = await bridge.http.get("/visitors", headers={"X-API-Key": seeded.api_key})
        assert by_key.status_code == 200
        assert peer.requests[-1].resident_id == RESIDENT_USER  # the integration acts for its resident

        headers = await bridge.login(OTHER_RESIDENT)
        assert (await bridge.http.get("/visitors", headers=headers)).status_code == 200
        await asyncio.to_thread(seeded.accounts.deactivate, OTHER_RESIDENT)
        resp = await bridge.http.get("/visitors", headers=headers)
        assert resp.status_code == 401  # the token has not expired, the account has gone

        both = await bridge.http.get("/visitors", headers={**await bridge.login(), "X-API-Key": seeded.api_key})
        assert both.status_code == 401


async def test_login_attempts_are_limited_per_username_and_per_address(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    settings = bridge_settings(tmp_path, amqtt_broker, login_failures_per_minute=3,
                               login_attempts_per_minute_per_ip=8)
    async with running_bridge(settings, seeded.accounts) as bridge:
        statuses = [(await bridge.http.post("/auth/token", data={"username": RESIDENT, "password": "wrong one!"}))
                    .status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        limited = await bridge.http.post("/auth/token", data={"username": RESIDENT, "password": PASSWORD})
        # Even the right password waits: the limit is on the name, whoever is guessing.
        assert limited.status_code == 429 and limited.json()["code"] == "RATE_LIMITED"
        assert 1 <= int(limited.headers["retry-after"]) <= 20
        # Another name from the same address still logs in, successes do not use up the name's budget...
        for _ in range(2):
            assert (await bridge.http.post("/auth/token", data={"username": OTHER_RESIDENT, "password": PASSWORD})
                    ).status_code == 200
        # ...but every attempt counts against the address (8 a minute here; 7 made so far).
        last = await bridge.http.post("/auth/token", data={"username": "someone", "password": "whatever!!"})
        assert last.status_code == 401
        over = await bridge.http.post("/auth/token", data={"username": OTHER_RESIDENT, "password": PASSWORD})
        assert over.status_code == 429 and "address" in over.json()["message"]


async def test_requests_are_rate_limited_per_account_with_retry_after(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    settings = bridge_settings(tmp_path, amqtt_broker, rate_limit_per_minute=5)
    async with running_peer(settings) as peer, running_bridge(settings, seeded.accounts) as bridge:
        kim = await bridge.login()
        statuses = [(await bridge.http.get("/visitors", headers=kim)).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        limited = await bridge.http.get("/visitors", headers=kim)
        assert limited.json()["code"] == "RATE_LIMITED" and 1 <= int(limited.headers["retry-after"]) <= 12
        assert len(peer.requests) == 5  # refused requests never reach the broker
        # The limit is per account: another resident is unaffected.
        lee = await bridge.login(OTHER_RESIDENT)
        assert (await bridge.http.get("/visitors", headers=lee)).status_code == 200
