"""The keypad lock's shared failure count, on every store backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounts.attempts import TooManyAttempts
from schemas.base import utc_now
from store.attempts import SharedAttemptLimiter
from store.repository import Store


def test_failures_lock_the_key_until_they_leave_the_window(store: Store) -> None:
    limiter = SharedAttemptLimiter(store.db, max_failures=3, window_s=300)
    other_process = SharedAttemptLimiter(store.db, max_failures=3, window_s=300)
    start = utc_now()
    for n in range(3):
        limiter.check("gate-1\x001203", start)
        (limiter if n % 2 else other_process).failed("gate-1\x001203", start + timedelta(seconds=n))
    with pytest.raises(TooManyAttempts) as locked:
        other_process.check("gate-1\x001203", start + timedelta(seconds=10))
    # Until the oldest of the last three failures is 300 s old.
    assert locked.value.retry_after == pytest.approx(290, abs=1)
    other_process.check("gate-1\x000801", start)  # another unit is not locked
    limiter.check("gate-1\x001203", start + timedelta(seconds=301))


def test_only_the_last_failures_are_kept(store: Store) -> None:
    limiter = SharedAttemptLimiter(store.db, max_failures=3, window_s=300)
    start = utc_now()
    for n in range(10):
        limiter.failed("k", start + timedelta(seconds=n))
    doc = store.db["pin_attempts"].find_one({"_id": "k"})
    assert doc is not None and len(doc["times"]) == 3


def test_a_success_clears_the_count(store: Store) -> None:
    limiter = SharedAttemptLimiter(store.db, max_failures=2, window_s=300)
    limiter.failed("k")
    limiter.succeeded("k")
    limiter.failed("k")
    limiter.check("k")
    limiter.failed("k")
    with pytest.raises(TooManyAttempts):
        limiter.check("k")
