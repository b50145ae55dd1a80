"""Guessing limits: failed attempts per key in a sliding window (log-ins, keypad PINs)."""

from __future__ import annotations

import time
from collections import OrderedDict, deque


class TooManyAttempts(Exception):
    """Too many failed attempts for a key (an address, an account, a keypad); `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed attempts; try again in {retry_after:.0f}s")
        self.retry_after = retry_after


class AttemptLimiter:
    """At most `max_failures` failed attempts per key per window (log-ins per client address and
    account name; PINs per gate and unit).

    Only failures count, so someone who gets it right is never slowed down. The
    table is bounded: the oldest keys go first when it is full (an attacker rotating addresses
    can then evict entries, but each address still gets only `max_failures` guesses per window).
    """

    def __init__(self, max_failures: int, window_s: float, max_keys: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, *keys: str) -> None:
        """Raise TooManyAttempts if any key is over its limit."""
        now = time.monotonic()
        for key in keys:
            times = self._recent(key, now)
            if times is not None and len(times) >= self.max_failures:
                raise TooManyAttempts(max(times[0] + self.window_s - now, 1.0))

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            times = self._recent(key, now)
            if times is None:
                times = self._failures[key] = deque(maxlen=self.max_failures)
                while len(self._failures) > self._max_keys:
                    self._failures.popitem(last=False)
            times.append(now)
            self._failures.move_to_end(key)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times
