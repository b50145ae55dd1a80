"""`passage console add-admin` / `set-password` against the embedded store, and the first admin."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from accounts.store import AccountStore, Role
from cli.console_cli import console
from config.settings import Settings, StoreSettings
from console.first_admin import ensure_first_admin
from store.connect import connect
from store.embedded import EmbeddedMongoServer
from tests.conftest import TEST_HASH_KEY


@pytest.fixture
def site(tmp_path: Path, embedded_mongo: EmbeddedMongoServer) -> Iterator[tuple[Settings, AccountStore]]:
    """Settings whose store is a fresh database on the embedded server, and its accounts."""
    name = f"passage_test_{uuid.uuid4().hex[:10]}"
    settings = Settings(data_dir=tmp_path, mongo_uri=embedded_mongo.uri, hash_key=TEST_HASH_KEY,
                        store=StoreSettings(database=name))
    client, store = connect(embedded_mongo.uri, name)
    try:
        yield settings, AccountStore(store.db)
    finally:
        client.drop_database(name)
        client.close()


def test_add_admin_prompts_twice_hidden_and_stores_only_a_hash(site: tuple[Settings, AccountStore]) -> None:
    cli_settings, accounts = site
    runner = CliRunner()
    result = runner.invoke(console, ["add-admin", "ops"], input="long enough pw\nlong enough pw\n", obj=cli_settings)
    assert result.exit_code == 0, result.output
    assert "admin ops created" in result.output and "long enough pw" not in result.output
    account = accounts.get("ops")
    assert account is not None and account.role is Role.ADMIN
    assert account.password_hash is not None and account.password_hash.startswith("$argon2id$")
    assert accounts.authenticate("ops", "long enough pw") is not None

    again = runner.invoke(console, ["add-admin", "ops"], input="another password\nanother password\n",
                          obj=cli_settings)
    assert again.exit_code != 0 and "exists" in again.output
    weak = runner.invoke(console, ["add-admin", "ops2"], input="short\nshort\n", obj=cli_settings)
    assert weak.exit_code != 0 and "at least" in weak.output
    mismatch = runner.invoke(console, ["add-admin", "ops3"], input="long enough pw\ndifferent pw!!\n",
                             obj=cli_settings)
    assert mismatch.exit_code != 0 and accounts.get("ops3") is None
    bad_name = runner.invoke(console, ["add-admin", "no spaces"], obj=cli_settings)
    assert bad_name.exit_code != 0

    changed = runner.invoke(console, ["set-password", "ops"], input="a new password\na new password\n",
                            obj=cli_settings)
    assert changed.exit_code == 0, changed.output
    assert accounts.authenticate("ops", "a new password") is not None
    assert accounts.authenticate("ops", "long enough pw") is None


def test_first_admin_is_created_once_with_a_random_password(site: tuple[Settings, AccountStore]) -> None:
    _, accounts = site
    password = ensure_first_admin(accounts)
    assert password is not None and len(password) >= 20
    assert accounts.authenticate("admin", password) is not None
    assert ensure_first_admin(accounts) is None  # never replaced, never shown again
    assert accounts.authenticate("admin", password) is not None
