"""Who may log in to the console: admin accounts, with failed attempts rate-limited."""

from __future__ import annotations

import asyncio

from accounts.passwords import verify_password
from accounts.store import Account, AccountStore, Role
from schemas.base import is_identifier


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
