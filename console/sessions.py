"""Signed session cookies and the CSRF tokens bound to them.

A cookie is `base64url(json) . base64url(hmac-sha256)`: the console keeps no session table.
Log-out clears the cookie and puts the session id on this process's revocation list until the
session would have expired anyway; a restart forgets that list, so `session_ttl_s` bounds how long
a copied cookie of a logged-out session could live.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time

from pydantic import Field, ValidationError

from schemas.base import Identifier, StrictModel

SESSION_COOKIE = "passage_session"
LOGIN_COOKIE = "passage_login"  # pre-session CSRF token for the log-in form


class InvalidSession(Exception):
    """A cookie that is malformed, forged, expired or logged out."""


class Session(StrictModel):
    """Who is logged in, until when."""

    sid: str = Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")
    admin_id: Identifier
    expires: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issues and checks session cookies and CSRF tokens with one site secret."""

    def __init__(self, secret: str, ttl_s: float) -> None:
        if len(secret) < 32:
            raise ValueError("the console session secret needs at least 32 characters")
        key = secret.encode()
        # Separate keys per use: a session MAC can never be replayed as a CSRF token or vice versa.
        self._session_key = hmac.new(key, b"passage-console-session", hashlib.sha256).digest()
        self._csrf_key = hmac.new(key, b"passage-console-csrf", hashlib.sha256).digest()
        self.ttl_s = ttl_s
        self._revoked: dict[str, float] = {}

    def issue(self, admin_id: str) -> tuple[Session, str]:
        """A new session for `admin_id` and its cookie value."""
        session = Session(sid=secrets.token_urlsafe(24), admin_id=admin_id, expires=time.time() + self.ttl_s)
        body = _b64(session.model_dump_json().encode())
        return session, f"{body}.{self._mac(self._session_key, body)}"

    def verify(self, cookie: str | None) -> Session:
        """The session in `cookie`; raises InvalidSession."""
        if not cookie or len(cookie) > 1024 or cookie.count(".") != 1:
            raise InvalidSession("no session")
        body, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(self._session_key, body)):
            raise InvalidSession("bad signature")
        try:
            session = Session.model_validate_json(_unb64(body))
        except (ValidationError, binascii.Error, ValueError):
            raise InvalidSession("unreadable session") from None
        if session.expires < time.time():
            raise InvalidSession("session expired")
        if session.sid in self._revoked:
            raise InvalidSession("logged out")
        return session

    def revoke(self, session: Session) -> None:
        """Log `session` out for good."""
        now = time.time()
        for sid in [s for s, until in self._revoked.items() if until < now]:
            del self._revoked[sid]
        self._revoked[session.sid] = session.expires

    def csrf_token(self, sid: str) -> str:
        """The CSRF token that forms of session `sid` (or a log-in nonce) must carry."""
        return self._mac(self._csrf_key, sid)

    def check_csrf(self, sid: str, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf_token(sid))

    @staticmethod
    def _mac(key: bytes, body: str) -> str:
        return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())


def new_login_nonce() -> str:
    """A random value for the log-in form's CSRF cookie."""
    return secrets.token_urlsafe(24)
