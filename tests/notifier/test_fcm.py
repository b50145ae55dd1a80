"""FCM through the real firebase-admin SDK against a local stand-in for Google's OAuth token endpoint
and the FCM v1 send endpoint, reached through a local HTTPS proxy (see standins.py)."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from notifier.base import InvalidAddress, NotApplicable, Notification, NotifyConfigError, NotifyError
from notifier.fcm import FcmChannel
from tests.notifier.standins import HttpStandIn, InterceptingProxy, Recorded, Reply, Responder, make_ca

PROJECT = "passage-test"
TOKEN_URI = "https://oauth2.googleapis.com/token"
SEND_PATH = f"/v1/projects/{PROJECT}/messages:send"
ACCESS_TOKEN = "ya29.local-stand-in-token"


@dataclass
class FakeGoogle:
    standin: HttpStandIn
    proxy: InterceptingProxy
    key_file: Path

    def sends(self) -> list[Recorded]:
        return [r for r in self.standin.requests if r.path == SEND_PATH]

    def token_requests(self) -> list[Recorded]:
        return [r for r in self.standin.requests if r.path == "/token"]


def _responder(public_pem: bytes) -> Responder:
    def respond(req: Recorded) -> Reply:
        if req.host.startswith("oauth2.googleapis.com") and req.path == "/token":
            form = urllib.parse.parse_qs(req.body.decode())
            assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
            # The assertion must be signed by the service account's key, for this token endpoint.
            claims = jwt.decode(form["assertion"][0], public_pem, algorithms=["RS256"], audience=TOKEN_URI)
            assert claims["iss"] == f"notifier@{PROJECT}.iam.gserviceaccount.com"
            return Reply.of_json(200, {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"})
        if req.host.startswith("fcm.googleapis.com") and req.path == SEND_PATH:
            if req.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
                return Reply.of_json(401, {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "no"}})
            token = req.json()["message"].get("token")
            if token == "stale-device":
                return Reply.of_json(404, {"error": {
                    "code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
                    "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                 "errorCode": "UNREGISTERED"}]}})
            if token == "garbled-device":
                return Reply.of_json(400, {"error": {
                    "code": 400, "message": "The registration token is not a valid FCM registration token",
                    "status": "INVALID_ARGUMENT",
                    "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                 "errorCode": "INVALID_ARGUMENT"}]}})
            if token == "server-down":
                return Reply.of_json(503, {"error": {"code": 503, "status": "UNAVAILABLE", "message": "busy"}})
            return Reply.of_json(200, {"name": f"projects/{PROJECT}/messages/0:1500415314455276%31bd1c96"})
        if req.host.startswith("iamcredentials.googleapis.com") and req.path.endswith("/allowedLocations"):
            # google-auth's background regional-access-boundary lookup: answer "no boundary".
            return Reply.of_json(200, {"locations": [], "encodedLocations": "0x0"})
        return Reply.of_json(404, {"error": "unexpected request"})

    return respond


@pytest.fixture
def fake_google(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogle]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    # A well-formed service-account key, as the Firebase console would give one, with a local key.
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "0123456789abcdef",
        "private_key": private_pem.decode(), "client_email": f"notifier@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1234567890", "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": TOKEN_URI, "universe_domain": "googleapis.com",
    }))
    hosts = ["fcm.googleapis.com", "oauth2.googleapis.com", "iamcredentials.googleapis.com"]
    ca = make_ca(tmp_path / "ca", hosts)
    with HttpStandIn(_responder(public_pem)) as standin, InterceptingProxy(standin, ca, set(hosts)) as proxy:
        for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.ca_file))
        yield FakeGoogle(standin, proxy, key_file)


def _push(token: str | None) -> Notification:
    return Notification(recipient_id="V-77", title="Your visitor pass", body="Show this QR code at the gate.",
                        data={"pass_id": "P-123"}, device_data={"qr": "PASS1.eyJwIjoiUC0xMjMifQ.c2ln"},
                        fcm_token=token)


async def test_push_reaches_fcm_with_token_notification_and_qr_data(fake_google: FakeGoogle) -> None:
    channel = FcmChannel(fake_google.key_file, timeout_s=5)
    try:
        await channel.send(_push("device-token-abc"))
        await channel.send(_push("device-token-def"))
    finally:
        await channel.aclose()
    sends = fake_google.sends()
    assert len(sends) == 2
    first = sends[0]
    assert first.method == "POST" and first.host.startswith("fcm.googleapis.com")
    assert first.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert first.json() == {"message": {
        "token": "device-token-abc",
        "notification": {"title": "Your visitor pass", "body": "Show this QR code at the gate."},
        "data": {"pass_id": "P-123", "qr": "PASS1.eyJwIjoiUC0xMjMifQ.c2ln"},
    }}
    assert sends[1].json()["message"]["token"] == "device-token-def"
    # One OAuth exchange, reused for the second send; nothing went anywhere but the stand-in.
    assert len(fake_google.token_requests()) == 1
    assert fake_google.proxy.refused == []


async def test_no_token_is_not_applicable_and_sends_nothing(fake_google: FakeGoogle) -> None:
    channel = FcmChannel(fake_google.key_file, timeout_s=5)
    try:
        with pytest.raises(NotApplicable):
            await channel.send(_push(None))
    finally:
        await channel.aclose()
    assert fake_google.standin.requests == []


async def test_unregistered_and_invalid_tokens_are_invalid_addresses(fake_google: FakeGoogle) -> None:
    channel = FcmChannel(fake_google.key_file, timeout_s=5)
    try:
        with pytest.raises(InvalidAddress):
            await channel.send(_push("stale-device"))
        with pytest.raises(InvalidAddress):
            await channel.send(_push("garbled-device"))
    finally:
        await channel.aclose()
    # A known-bad token is not retried.
    assert [r.json()["message"]["token"] for r in fake_google.sends()] == ["stale-device", "garbled-device"]


async def test_server_errors_retried_a_bounded_number_of_times(fake_google: FakeGoogle) -> None:
    channel = FcmChannel(fake_google.key_file, timeout_s=5)
    started = time.monotonic()
    try:
        with pytest.raises(NotifyError) as caught:
            await channel.send(_push("server-down"))
    finally:
        await channel.aclose()
    assert not isinstance(caught.value, NotApplicable)
    assert "server-down" not in str(caught.value)
    # firebase-admin's own policy: the first try and 4 retries with backoff, then it gives up.
    assert len(fake_google.sends()) == 5
    assert time.monotonic() - started < 20


def test_unusable_service_account_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(NotifyConfigError):
        FcmChannel(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "service_account", "private_key": "not a key"}')
    with pytest.raises(NotifyConfigError) as caught:
        FcmChannel(bad)
    assert "not a key" not in str(caught.value)
