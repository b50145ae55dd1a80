"""The first admin account on a fresh site, so `passage up` gives a usable console at once."""

from __future__ import annotations

from accounts.store import AccountStore, Role

FIRST_ADMIN = "admin"


def ensure_first_admin(accounts: AccountStore, account_id: str = FIRST_ADMIN) -> str | None:
    """Create `account_id` as an admin with a random password when it does not exist yet.

    Returns the password, to be shown once and never stored in clear; None when the account was
    there already (or another process created it at the same moment).
    """
    return accounts.ensure(account_id, Role.ADMIN)
