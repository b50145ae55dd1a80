"""Email through stdlib smtplib against a real local SMTP server (aiosmtpd) with STARTTLS and AUTH."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from config.ports import free_port
from notifier.base import InvalidAddress, NotApplicable, Notification, NotifyError
from notifier.email import EmailChannel
from tests.notifier.standins import LocalCa, make_ca

USER, PASSWORD = "passage-relay", "relay-password-123"


@dataclass
class Mailbox:
    """What the relay accepted: (mail from, recipients, raw message) and the logins it saw."""

    delivered: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.delivered.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login, auth_data.password))
        ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
        # handled=False: aiosmtpd then answers 535 itself.
        return AuthResult(success=ok, handled=False)


@dataclass
class Relay:
    port: int
    mailbox: Mailbox
    ca: LocalCa


@pytest.fixture
def ca(tmp_path: Path) -> LocalCa:
    return make_ca(tmp_path / "ca", ["localhost"])


@pytest.fixture
def tls_relay(ca: LocalCa) -> Iterator[Relay]:
    """An SMTP relay that requires STARTTLS and a login, like a real submission port."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=ca.server_context,
                            require_starttls=True, auth_required=True, auth_require_tls=True,
                            authenticator=mailbox.authenticate, auth_exclude_mechanism=["LOGIN"])
    controller.start()
    try:
        yield Relay(port, mailbox, ca)
    finally:
        controller.stop()


def _channel(relay: Relay, **overrides: Any) -> EmailChannel:
    options: dict[str, Any] = {"username": USER, "password": SecretStr(PASSWORD), "ca_file": relay.ca.ca_file,
                               "attempts": 2, "backoff_s": 0.01, "timeout_s": 5.0}
    options.update(overrides)
    return EmailChannel("127.0.0.1", relay.port, "passage@building.example", **options)


def _note(to: str | None, title: str = "Gate lobby is offline") -> Notification:
    return Notification(recipient_id="admin-1", title=title, body="No heartbeat since 12:00:01 UTC.",
                        data={"gate_id": "lobby"}, device_data={"qr": "SECRET-PASS"}, email=to)


async def test_email_delivered_over_starttls_with_login(tls_relay: Relay) -> None:
    await _channel(tls_relay).send(_note("ops@building.example"))
    assert tls_relay.mailbox.logins == [(USER.encode(), PASSWORD.encode())]
    [(mail_from, rcpt, raw)] = tls_relay.mailbox.delivered
    assert mail_from == "passage@building.example" and rcpt == ["ops@building.example"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == "Gate lobby is offline"
    assert message["To"] == "ops@building.example" and message["From"] == "passage@building.example"
    assert message.get_content().strip() == "No heartbeat since 12:00:01 UTC."
    # Neither the data nor the device-only data travel by email.
    assert b"SECRET-PASS" not in raw and b"gate_id" not in raw


async def test_title_cannot_inject_headers(tls_relay: Relay) -> None:
    await _channel(tls_relay).send(_note("ops@building.example", title="Hi\r\nBcc: thief@evil.example"))
    [(_, rcpt, raw)] = tls_relay.mailbox.delivered
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert rcpt == ["ops@building.example"] and message["Bcc"] is None
    assert message["Subject"] == "Hi Bcc: thief@evil.example"


async def test_refused_recipient_is_an_invalid_address(tls_relay: Relay) -> None:
    with pytest.raises(InvalidAddress):
        await _channel(tls_relay).send(_note("nobody@building.example"))
    assert tls_relay.mailbox.delivered == []


async def test_wrong_password_fails_without_retry_or_leak(tls_relay: Relay) -> None:
    with pytest.raises(NotifyError) as caught:
        await _channel(tls_relay, password=SecretStr("wrong-password-999")).send(_note("ops@building.example"))
    assert not isinstance(caught.value, NotApplicable)
    assert "wrong-password" not in str(caught.value)
    assert len(tls_relay.mailbox.logins) == 1 and tls_relay.mailbox.delivered == []


async def test_untrusted_certificate_is_refused(tls_relay: Relay) -> None:
    # Without the site CA the relay's certificate does not verify: nothing is sent, in clear or not.
    with pytest.raises(NotifyError):
        await _channel(tls_relay, ca_file=None).send(_note("ops@building.example"))
    assert tls_relay.mailbox.logins == [] and tls_relay.mailbox.delivered == []


async def test_relay_without_starttls_is_not_used_in_clear() -> None:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with pytest.raises(NotifyError, match="STARTTLS"):
            await EmailChannel("127.0.0.1", port, "passage@building.example", attempts=1).send(
                _note("ops@building.example"))
        assert mailbox.delivered == []
        # Explicitly configured for a plain relay (a local MTA), it delivers.
        await EmailChannel("127.0.0.1", port, "passage@building.example", starttls=False).send(
            _note("ops@building.example"))
        assert len(mailbox.delivered) == 1
    finally:
        controller.stop()


async def test_no_or_malformed_address_and_dead_relay() -> None:
    channel = EmailChannel("127.0.0.1", free_port(), "passage@building.example", attempts=2, backoff_s=0.01,
                           timeout_s=1.0)
    with pytest.raises(NotApplicable):
        await channel.send(_note(None))
    with pytest.raises(InvalidAddress):
        await channel.send(_note("not an address"))
    with pytest.raises(NotifyError, match="unreachable"):
        await channel.send(_note("ops@building.example"))
