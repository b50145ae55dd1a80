"""Email through an SMTP relay (stdlib smtplib, run in a worker thread).

STARTTLS (default) or implicit TLS verify the relay's certificate against the system store or
`smtp_ca_file`; a relay that does not offer STARTTLS when it is required is refused, never used in
clear. Transient failures (network, 4xx replies) are retried; 5xx replies and a refused login are not.
"""

from __future__ import annotations

import asyncio
import logging
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from pydantic import SecretStr

from notifier.base import InvalidAddress, NotApplicable, Notification, NotifyError

log = logging.getLogger(__name__)

# Deliberately plain: one @, no spaces or control characters, a dot in the domain.
_ADDRESS = re.compile(r"^[^@\s<>\"]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")


class _Transient(NotifyError):
    """A failure worth one more try."""


class EmailChannel:
    """Sends a plain-text email: the subject is the title, the text the body. `data` is not sent."""

    name = "email"

    def __init__(self, host: str, port: int, sender: str, *, starttls: bool = True, implicit_tls: bool = False,
                 username: str | None = None, password: SecretStr | None = None, ca_file: Path | None = None,
                 timeout_s: float = 10.0, attempts: int = 3, backoff_s: float = 0.5) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._starttls = starttls
        self._implicit_tls = implicit_tls
        self._username = username
        self._password = password
        self._ca_file = ca_file
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._backoff_s = backoff_s

    async def send(self, notification: Notification) -> None:
        """Deliver one email; NotApplicable without an address, InvalidAddress if it is refused."""
        if not notification.email:
            raise NotApplicable("no email address")
        if not _ADDRESS.fullmatch(notification.email):
            raise InvalidAddress("email address is malformed")
        message = self._compose(notification)
        for attempt in range(self._attempts):
            try:
                await asyncio.to_thread(self._deliver, message, notification.email)
                return
            except _Transient as exc:
                if attempt + 1 == self._attempts:
                    raise NotifyError(str(exc)) from None
                wait = self._backoff_s * (2**attempt)
                log.info("smtp: attempt %d/%d failed (%s); retrying in %.1fs", attempt + 1, self._attempts, exc, wait)
                await asyncio.sleep(wait)

    def _compose(self, notification: Notification) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = notification.email
        # A line break in a header would let a title forge more headers.
        message["Subject"] = " ".join(notification.title.split())
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain=self._sender.rpartition("@")[2] or None)
        message.set_content(notification.body)
        return message

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self._ca_file) if self._ca_file else None)

    def _deliver(self, message: EmailMessage, to: str) -> None:
        try:
            smtp: smtplib.SMTP
            if self._implicit_tls:
                smtp = smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout_s, context=self._tls_context())
            else:
                smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
            with smtp:
                smtp.ehlo()
                if self._starttls and not self._implicit_tls:
                    if not smtp.has_extn("starttls"):
                        raise NotifyError("smtp relay does not offer STARTTLS; refusing to send in clear")
                    smtp.starttls(context=self._tls_context())
                    smtp.ehlo()
                if self._username:
                    password = self._password.get_secret_value() if self._password else ""
                    smtp.login(self._username, password)
                smtp.send_message(message, from_addr=self._sender, to_addrs=[to])
        except smtplib.SMTPRecipientsRefused:
            raise InvalidAddress("smtp relay refused the recipient") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise NotifyError(f"smtp login refused ({exc.smtp_code})") from None
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise _Transient(f"smtp relay answered {exc.smtp_code}") from None
            raise NotifyError(f"smtp relay answered {exc.smtp_code}") from None
        except ssl.SSLError as exc:
            # A certificate that does not verify is a configuration problem, not a passing one.
            raise NotifyError(f"smtp TLS failed ({exc.reason or type(exc).__name__})") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise _Transient(f"smtp relay unreachable ({type(exc).__name__})") from None
