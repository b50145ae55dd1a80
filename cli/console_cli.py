"""`passage console`: serve the admin web console; manage its admin accounts.

Imports stay inside the commands: `passage` loads this module for every invocation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cli.runner import run_until_signal
from config.settings import Settings

if TYPE_CHECKING:
    from accounts.store import AccountStore
    from store.connect import StoreHandle


def _accounts(handle: StoreHandle) -> AccountStore:
    from accounts.store import AccountStore

    accounts = AccountStore(handle.store.db)
    accounts.ensure_indexes()
    return accounts


def _open(settings: Settings) -> StoreHandle:
    from store.connect import open_store

    return open_store(settings)


@click.group(invoke_without_command=True)
@click.option("--host", default=None, help="Listen address (default: console.host).")
@click.option("--port", type=int, default=None, help="Listen port (default: console.port).")
@click.pass_context
def console(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the admin web console (it needs a broker and an admin worker: passage up runs both).

    Store: PASSAGE_MONGO_URI, else an embedded store of its own; with `passage up` running, point
    PASSAGE_MONGO_URI at the store it printed.
    """
    if ctx.invoked_subcommand is not None:
        return
    settings: Settings = ctx.obj
    from console.server import ConsoleStartFailed, serve_console

    handle = _open(settings)
    try:
        accounts = _accounts(handle)
        bind = f"{host or settings.console.host}:{settings.console.port if port is None else port}"
        click.echo(f"Passage console on http://{bind}/ (Ctrl-C stops it)", err=True)
        try:
            run_until_signal(serve_console(settings, accounts, host=host, port=port))
        except ConsoleStartFailed as exc:
            raise click.ClickException(str(exc)) from None
    finally:
        handle.close()


@console.command("add-admin")
@click.argument("name")
@click.pass_obj
def add_admin(settings: Settings, name: str) -> None:
    """Create an admin account NAME for the console (asks for the password twice)."""
    from accounts.passwords import WeakPassword
    from accounts.store import AccountExists, Role
    from schemas.base import is_identifier

    if not is_identifier(name):
        raise click.UsageError("NAME: 1-64 characters of A-Z a-z 0-9 _ . : -")
    password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    handle = _open(settings)
    try:
        _accounts(handle).create(name, Role.ADMIN, password=password)
    except (AccountExists, WeakPassword) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        handle.close()
    click.echo(f"admin {name} created")


@console.command("set-password")
@click.argument("name")
@click.pass_obj
def set_password(settings: Settings, name: str) -> None:
    """Set a new password for the console account NAME (asks twice)."""
    from accounts.passwords import WeakPassword

    password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    handle = _open(settings)
    try:
        if not _accounts(handle).set_password(name, password):
            raise click.ClickException(f"no account {name}")
    except WeakPassword as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        handle.close()
    click.echo(f"password of {name} changed")
