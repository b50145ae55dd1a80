"""Slack incoming webhook and the SMS gateway webhook, through httpx, against a local HTTP server."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from notifier.base import InvalidAddress, NotApplicable, Notification, NotifyError
from notifier.slack import SlackChannel
from notifier.sms import SmsChannel
from notifier.webhook import WebhookRefused
from tests.notifier.standins import HttpStandIn, Recorded, Reply

SLACK_PATH = "/services/T000/B000/XXXXSECRETXXXX"
SMS_TOKEN = "sms-gateway-token-42"


def _slack_ok(_req: Recorded) -> Reply:
    return Reply(200, b"ok", {"Content-Type": "text/plain"})


@pytest.fixture
def slack() -> Iterator[HttpStandIn]:
    with HttpStandIn(_slack_ok) as standin:
        yield standin


@pytest.fixture
def gateway() -> Iterator[HttpStandIn]:
    with HttpStandIn(lambda _req: Reply.of_json(202, {"id": "sms-1", "status": "queued"})) as standin:
        yield standin


def _note(**fields: object) -> Notification:
    base: dict[str, object] = {"recipient_id": "admins", "title": "Gate lobby offline",
                               "body": "No heartbeat for 10 s <!channel> & co", "data": {"gate_id": "lobby"},
                               "device_data": {"qr": "SECRET-PASS"}}
    base.update(fields)
    return Notification.model_validate(base)


def _slack(standin: HttpStandIn, attempts: int = 3) -> SlackChannel:
    return SlackChannel(SecretStr(standin.url + SLACK_PATH), timeout_s=2, attempts=attempts, backoff_s=0.01)


async def test_slack_posts_escaped_text_to_the_webhook(slack: HttpStandIn) -> None:
    channel = _slack(slack)
    try:
        await channel.send(_note())
    finally:
        await channel.aclose()
    [req] = slack.requests
    assert req.method == "POST" and req.path == SLACK_PATH
    assert req.headers["content-type"] == "application/json"
    # Slack control sequences are escaped; data and device data stay out of the room.
    assert req.json() == {"text": "*Gate lobby offline*\nNo heartbeat for 10 s &lt;!channel&gt; &amp; co"}


async def test_slack_retries_server_errors_then_delivers(slack: HttpStandIn) -> None:
    answers = itertools.chain([Reply(500, b"oops"), Reply(503, b"busy", {"Retry-After": "0"})],
                              itertools.repeat(Reply(200, b"ok")))
    slack.responder = lambda _req: next(answers)
    channel = _slack(slack)
    try:
        await channel.send(_note())
    finally:
        await channel.aclose()
    assert len(slack.requests) == 3


async def test_slack_gives_up_after_bounded_attempts_without_leaking_the_url(slack: HttpStandIn) -> None:
    slack.responder = lambda _req: Reply(500, b"down")
    channel = _slack(slack, attempts=3)
    try:
        with pytest.raises(NotifyError) as caught:
            await channel.send(_note())
    finally:
        await channel.aclose()
    assert len(slack.requests) == 3
    assert "SECRET" not in str(caught.value) and "500" in str(caught.value)


async def test_slack_client_error_is_not_retried(slack: HttpStandIn) -> None:
    slack.responder = lambda _req: Reply(404, b"no_service", {"Content-Type": "text/plain"})
    channel = _slack(slack)
    try:
        with pytest.raises(WebhookRefused) as caught:
            await channel.send(_note())
    finally:
        await channel.aclose()
    assert caught.value.status == 404 and len(slack.requests) == 1


async def test_slack_unreachable_is_a_notify_error() -> None:
    from config.ports import free_port

    channel = SlackChannel(SecretStr(f"http://127.0.0.1:{free_port()}{SLACK_PATH}"), timeout_s=1, attempts=2,
                           backoff_s=0.01)
    try:
        with pytest.raises(NotifyError, match="unreachable") as caught:
            await channel.send(_note())
    finally:
        await channel.aclose()
    assert "SECRET" not in str(caught.value)


async def test_sms_posts_number_text_and_bearer_token(gateway: HttpStandIn) -> None:
    channel = SmsChannel(gateway.url + "/v1/sms", SecretStr(SMS_TOKEN), "PASSAGE", timeout_s=2, backoff_s=0.01)
    try:
        await channel.send(_note(recipient_id="U1", phone="+82 10-1234-5678", title="Visitor arrived",
                                 body="Park entered at lobby."))
    finally:
        await channel.aclose()
    [req] = gateway.requests
    assert req.method == "POST" and req.path == "/v1/sms"
    assert req.headers["authorization"] == f"Bearer {SMS_TOKEN}"
    assert req.json() == {"to": "+821012345678", "message": "Visitor arrived: Park entered at lobby.",
                          "sender": "PASSAGE"}


async def test_sms_without_or_with_a_bad_number_sends_nothing(gateway: HttpStandIn) -> None:
    channel = SmsChannel(gateway.url + "/v1/sms", SecretStr(SMS_TOKEN))
    try:
        with pytest.raises(NotApplicable):
            await channel.send(_note())
        with pytest.raises(InvalidAddress):
            await channel.send(_note(phone="call me maybe"))
    finally:
        await channel.aclose()
    assert gateway.requests == []


async def test_sms_refused_token_is_not_retried_or_leaked(gateway: HttpStandIn) -> None:
    gateway.responder = lambda _req: Reply.of_json(401, {"error": "bad token"})
    channel = SmsChannel(gateway.url + "/v1/sms", SecretStr(SMS_TOKEN), backoff_s=0.01)
    try:
        with pytest.raises(WebhookRefused) as caught:
            await channel.send(_note(phone="+821012345678"))
    finally:
        await channel.aclose()
    assert len(gateway.requests) == 1 and SMS_TOKEN not in str(caught.value)


async def test_sms_rate_limit_honours_retry_after(gateway: HttpStandIn) -> None:
    answers = itertools.chain([Reply(429, b"{}", {"Content-Type": "application/json", "Retry-After": "1"})],
                              itertools.repeat(Reply.of_json(200, {"status": "queued"})))
    gateway.responder = lambda _req: next(answers)
    channel = SmsChannel(gateway.url + "/v1/sms", SecretStr(SMS_TOKEN), backoff_s=0.01)
    started = time.monotonic()
    try:
        await channel.send(_note(phone="+821012345678"))
    finally:
        await channel.aclose()
    assert len(gateway.requests) == 2 and time.monotonic() - started >= 1.0
