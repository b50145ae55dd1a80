"""Session cookies, CSRF tokens and the log-in limiter, on their own."""

from __future__ import annotations

import time

import pytest

from accounts.attempts import AttemptLimiter, TooManyAttempts
from console.sessions import InvalidSession, SessionSigner

SECRET = "a" * 64


def test_a_session_round_trips_and_any_change_to_it_is_refused() -> None:
    signer = SessionSigner(SECRET, ttl_s=60)
    session, cookie = signer.issue("boss")
    assert signer.verify(cookie) == session
    body, mac = cookie.split(".")

    def other(c: str) -> str:  # a different character, whatever c is (a fixed one would match 1 in 64)
        return "B" if c == "A" else "A"

    for forged in (f"{body}.{mac[:-1]}{other(mac[-1])}", f"{body[:-1]}{other(body[-1])}.{mac}", body, "",
                   f"{cookie}.x", "a" * 5000):
        with pytest.raises(InvalidSession):
            signer.verify(forged)
    with pytest.raises(InvalidSession):
        SessionSigner("b" * 64, ttl_s=60).verify(cookie)  # another site's secret


def test_expired_and_revoked_sessions_are_refused() -> None:
    signer = SessionSigner(SECRET, ttl_s=0.05)
    _, cookie = signer.issue("boss")
    time.sleep(0.1)
    with pytest.raises(InvalidSession, match="expired"):
        signer.verify(cookie)
    signer = SessionSigner(SECRET, ttl_s=60)
    session, cookie = signer.issue("boss")
    signer.revoke(session)
    with pytest.raises(InvalidSession, match="logged out"):
        signer.verify(cookie)


def test_csrf_tokens_are_bound_to_their_session_and_never_equal_the_session_mac() -> None:
    signer = SessionSigner(SECRET, ttl_s=60)
    one, cookie = signer.issue("boss")
    two, _ = signer.issue("boss")
    token = signer.csrf_token(one.sid)
    assert signer.check_csrf(one.sid, token)
    assert not signer.check_csrf(two.sid, token)
    assert not signer.check_csrf(one.sid, None)
    assert token not in cookie


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32"):
        SessionSigner("short", ttl_s=60)


def test_limiter_counts_failures_per_key_within_the_window() -> None:
    limiter = AttemptLimiter(max_failures=2, window_s=0.2)
    limiter.failed("addr:1", "account:boss")
    limiter.check("addr:1", "account:boss")
    limiter.failed("addr:1", "account:boss")
    with pytest.raises(TooManyAttempts):
        limiter.check("addr:2", "account:boss")  # the account is locked from every address
    with pytest.raises(TooManyAttempts):
        limiter.check("addr:1", "account:other")
    limiter.check("addr:2", "account:other")
    time.sleep(0.25)
    limiter.check("addr:1", "account:boss")  # the window passed


def test_limiter_table_stays_bounded() -> None:
    limiter = AttemptLimiter(max_failures=1, window_s=60, max_keys=100)
    for n in range(1000):
        limiter.failed(f"addr:{n}")
    assert len(limiter._failures) == 100
    with pytest.raises(TooManyAttempts):
        limiter.check("addr:999")
