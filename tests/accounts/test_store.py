"""Accounts on every store backend: argon2id passwords, API keys by digest, no clear secrets stored."""

from __future__ import annotations

import pytest

from accounts.passwords import WeakPassword, new_api_key
from accounts.store import AccountExists, AccountStore, Role
from store.repository import Store


def test_password_login_and_refusals(store: Store) -> None:
    accounts = AccountStore(store.db)
    accounts.ensure_indexes()
    accounts.create("admin1", Role.ADMIN, password="correct horse battery")
    doc = store.db["accounts"].find_one({"_id": "admin1"})
    assert doc is not None and "correct horse" not in str(doc) and doc["password_hash"].startswith("$argon2id$")

    assert accounts.authenticate("admin1", "correct horse battery") is not None
    assert accounts.authenticate("admin1", "wrong password!!") is None
    assert accounts.authenticate("nobody", "correct horse battery") is None
    with pytest.raises(AccountExists):
        accounts.create("admin1", Role.ADMIN, password="another long one")
    with pytest.raises(WeakPassword):
        accounts.create("admin2", Role.ADMIN, password="short")

    accounts.deactivate("admin1")
    assert accounts.authenticate("admin1", "correct horse battery") is None


def test_api_key_lookup(store: Store) -> None:
    accounts = AccountStore(store.db)
    accounts.ensure_indexes()
    key = new_api_key()
    accounts.create("intercom-app", Role.INTEGRATION, api_key=key, user_id="U1")
    found = accounts.by_api_key(key)
    assert found is not None and found.user_id == "U1" and found.role is Role.INTEGRATION
    assert accounts.by_api_key(new_api_key()) is None
    assert key not in str(store.db["accounts"].find_one({"_id": "intercom-app"}))
    with pytest.raises(AccountExists):
        accounts.create("other", Role.INTEGRATION, api_key=key, user_id="U2")
