"""Failed keypad attempts kept in the store, so every auth worker enforces one lock.

With shared subscriptions a guesser's PINs land on whichever worker is free; a lock counted per
worker process would give them N workers' worth of guesses. Each worker still keeps its own
in-memory limiter (accounts/attempts.py) as the fallback while the store is unreachable.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo.database import Database

from accounts.attempts import TooManyAttempts
from schemas.base import utc_now
from store.repository import Doc


class SharedAttemptLimiter:
    """At most `max_failures` failures per key within `window_s`, across processes (collection
    `pin_attempts`, one small document per gate and unit)."""

    def __init__(self, db: Database[Doc], max_failures: int, window_s: float) -> None:
        self._attempts = db["pin_attempts"]
        self.max_failures = max_failures
        self.window = timedelta(seconds=window_s)

    def check(self, key: str, now: datetime | None = None) -> None:
        """Raise TooManyAttempts while `key` has `max_failures` failures inside the window."""
        now = now or utc_now()
        doc = self._attempts.find_one({"_id": key}, {"times": 1})
        recent = sorted(t for t in (doc or {}).get("times", []) if t > now - self.window)
        if len(recent) >= self.max_failures:
            oldest_that_counts = recent[-self.max_failures]
            raise TooManyAttempts(max((oldest_that_counts + self.window - now).total_seconds(), 1.0))

    def failed(self, key: str, now: datetime | None = None) -> None:
        """Count one failure (only the last `max_failures` are kept)."""
        self._attempts.update_one(
            {"_id": key}, {"$push": {"times": {"$each": [now or utc_now()], "$slice": -self.max_failures}}},
            upsert=True)

    def succeeded(self, key: str) -> None:
        self._attempts.delete_one({"_id": key})
