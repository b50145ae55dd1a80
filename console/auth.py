"""Who may log in to the console: admin accounts, with failed attempts rate-limited."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque

from accounts.passwords import verify_password
from accounts.store import Account, AccountStore, Role
from schemas.base import is_identifier


class LoginThrottled(Exception):
    """Too many failed log-ins from this address or for this account; `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed log-ins; try again in {retry_after:.0f}s")
        self.retry_after = retry_after


class LoginLimiter:
    """At most `max_failures` failed log-ins per key (client address, account name) per window.

    Only failures count, so an admin who types the password right is never slowed down. The
    table is bounded: the oldest keys go first when it is full (an attacker rotating addresses
    can then evict entries, but each address still gets only `max_failures` guesses per window).
    """

    def __init__(self, max_failures: int, window_s: float, max_keys: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, *keys: str) -> None:
        """Raise LoginThrottled if any key is over its limit."""
        now = time.monotonic()
        for key in keys:
            times = self._recent(key, now)
            if times is not None and len(times) >= self.max_failures:
                raise LoginThrottled(max(times[0] + self.window_s - now, 1.0))

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


class AdminDirectory:
    """Admin accounts as the console sees them (blocking store calls run on a thread)."""

    def __init__(self, accounts: AccountStore) -> None:
        self._accounts = accounts

    async def authenticate(self, account_id: str, password: str) -> Account | None:
        """The admin account when the password matches; None otherwise, at the same cost."""
        if not is_identifier(account_id) or len(password) > 1024:
            # Still pay for a hash, so a malformed name is not faster to reject than a wrong one.
            await asyncio.to_thread(verify_password, None, password[:1024])
            return None
        account = await asyncio.to_thread(self._accounts.authenticate, account_id, password)
        return account if account is not None and account.role is Role.ADMIN else None

    async def is_active_admin(self, account_id: str) -> bool:
        """Checked on every request: a deactivated or demoted admin loses access at once."""
        account = await asyncio.to_thread(self._accounts.get, account_id)
        return account is not None and account.active and account.role is Role.ADMIN
