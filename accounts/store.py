"""The `accounts` collection: who may log in to the console or the visitor bridge."""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Annotated

import pymongo
from pydantic import StringConstraints
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from accounts.passwords import api_key_digest, hash_password, verify_password
from schemas.base import Identifier, StrictModel
from schemas.documents import BsonDatetime
from store.repository import Doc


class Role(StrEnum):
    ADMIN = "admin"  # console
    RESIDENT = "resident"  # visitor bridge, bound to a user (their unit)
    INTEGRATION = "integration"  # visitor bridge by API key, acting for a user


class Account(StrictModel):
    """A login. `user_id` ties residents and integrations to the resident they act for."""

    id: Identifier
    role: Role
    user_id: Identifier | None = None
    password_hash: Annotated[str, StringConstraints(max_length=512)] | None = None
    api_key_digest: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    active: bool = True
    created_at: BsonDatetime | None = None

    def __repr__(self) -> str:
        return f"Account(id={self.id!r}, role={self.role.value!r}, user_id={self.user_id!r})"


class AccountExists(Exception):
    """An account with that id (or API key) exists already."""


class AccountStore:
    """Create and check accounts; the only code that knows the collection."""

    def __init__(self, db: Database[Doc]) -> None:
        self._col = db["accounts"]

    def ensure_indexes(self) -> None:
        self._col.create_index([("api_key_digest", pymongo.ASCENDING)], name="account_api_key",
                               unique=True, partialFilterExpression={"api_key_digest": {"$type": "string"}})

    def create(self, account_id: str, role: Role, *, password: str | None = None,
               api_key: str | None = None, user_id: str | None = None) -> Account:
        """Store a new account; raises AccountExists, WeakPassword."""
        account = Account(id=account_id, role=role, user_id=user_id,
                          password_hash=hash_password(password) if password is not None else None,
                          api_key_digest=api_key_digest(api_key) if api_key is not None else None)
        doc = account.model_dump(exclude={"id"}, exclude_none=True)
        doc["_id"] = account.id
        try:
            self._col.insert_one(doc)
        except DuplicateKeyError:
            raise AccountExists(f"account {account_id} exists") from None
        return account

    def ensure(self, account_id: str, role: Role, user_id: str | None = None) -> str | None:
        """Create `account_id` with a random password when it does not exist yet (a fresh site's
        first log-ins). Returns the password, to be shown once; None when the account was there."""
        if self.get(account_id) is not None:
            return None
        password = secrets.token_urlsafe(15)  # 20 characters, 120 bits
        try:
            self.create(account_id, role, password=password, user_id=user_id)
        except AccountExists:
            return None  # another process created it at the same moment
        return password

    def set_password(self, account_id: str, password: str) -> bool:
        return self._col.update_one({"_id": account_id},
                                    {"$set": {"password_hash": hash_password(password)}}).matched_count == 1

    def get(self, account_id: str) -> Account | None:
        doc = self._col.find_one({"_id": account_id})
        return None if doc is None else _from_doc(doc)

    def authenticate(self, account_id: str, password: str) -> Account | None:
        """The active account when the password matches, else None (same cost either way)."""
        account = self.get(account_id)
        ok = verify_password(account.password_hash if account else None, password)
        return account if ok and account is not None and account.active else None

    def by_api_key(self, api_key: str) -> Account | None:
        doc = self._col.find_one({"api_key_digest": api_key_digest(api_key), "active": True})
        return None if doc is None else _from_doc(doc)

    def deactivate(self, account_id: str) -> bool:
        return self._col.update_one({"_id": account_id}, {"$set": {"active": False}}).matched_count == 1


def _from_doc(doc: Doc) -> Account:
    doc = dict(doc)
    doc["id"] = doc.pop("_id")
    return Account.model_validate(doc)
