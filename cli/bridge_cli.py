"""`passage bridge`: serve the residents' visitor API and manage the accounts that may use it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from config.settings import Settings

if TYPE_CHECKING:
    from pymongo.database import Database

    from accounts.store import AccountStore
    from store.repository import Doc


@click.group()
def bridge() -> None:
    """The residents' visitor API (HTTP) and its log-ins."""


@bridge.command("serve")
@click.option("--host", default=None, help="Listen address (default: bridge.host).")
@click.option("--port", type=int, default=None, help="Listen port (default: bridge.port).")
@click.pass_obj
def serve(settings: Settings, host: str | None, port: int | None) -> None:
    """Run the visitor API (store: PASSAGE_MONGO_URI, else an embedded store of its own)."""
    from cli.runner import run_until_signal as _run
    from store.connect import open_store
    from visitor_api.server import serve_bridge

    update = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if update:
        settings = settings.model_copy(update={"bridge": settings.bridge.model_copy(update=update)})
    with open_store(settings) as handle:
        _run(serve_bridge(settings, _accounts(handle.store.db)))


@bridge.command("add-resident-login")
@click.argument("user_id")
@click.option("--login", "login", required=True, help="The account name the resident logs in with.")
@click.password_option(help="The password (prompted, twice, when not given).")
@click.pass_obj
def add_resident_login(settings: Settings, user_id: str, login: str, password: str) -> None:
    """Let resident USER_ID log in to the visitor API as LOGIN."""
    from accounts.passwords import WeakPassword
    from accounts.store import AccountExists, Role
    from store.connect import open_store

    with open_store(settings) as handle:
        user = handle.store.get_user(user_id)
        if user is None or not user.active:
            raise click.ClickException(f"no active user {user_id}: enroll the resident first")
        try:
            _accounts(handle.store.db).create(_identifier(login, "--login"), Role.RESIDENT, password=password,
                                              user_id=user_id)
        except (AccountExists, WeakPassword) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"resident login {login} created for {user_id}")


@bridge.command("add-api-key")
@click.argument("name")
@click.option("--user", "user_id", required=True, help="The resident the integration acts for.")
@click.pass_obj
def add_api_key(settings: Settings, name: str, user_id: str) -> None:
    """Create integration NAME acting for resident USER_ID and print its API key (shown only once)."""
    from accounts.passwords import new_api_key
    from accounts.store import AccountExists, Role
    from store.connect import open_store

    key = new_api_key()
    with open_store(settings) as handle:
        user = handle.store.get_user(user_id)
        if user is None or not user.active:
            raise click.ClickException(f"no active user {user_id}: enroll the resident first")
        try:
            _accounts(handle.store.db).create(_identifier(name, "NAME"), Role.INTEGRATION, api_key=key,
                                              user_id=user_id)
        except AccountExists as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"API key for {name} (acting for {user_id}); it is not stored and will not be shown again:",
               err=True)
    click.echo(key)


def _identifier(value: str, what: str) -> str:
    from schemas.base import is_identifier

    if not is_identifier(value):
        raise click.BadParameter("use 1-64 letters, digits and _ . : -", param_hint=what)
    return value


def _accounts(db: Database[Doc]) -> AccountStore:
    from accounts.store import AccountStore

    accounts = AccountStore(db)
    accounts.ensure_indexes()
    return accounts
