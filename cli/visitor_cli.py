"""`passage visitor ...`: run the visitor worker; export the public key gates verify passes with."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import click

from config.settings import Settings

if TYPE_CHECKING:
    from notifier.base import Channel
    from store.repository import Store
    from visitor_worker.service import VisitorWorker

log = logging.getLogger(__name__)


def visitor_channels(settings: Settings) -> list[Channel]:
    """The channels a visitor's pass can be pushed through: FCM when the site configured it."""
    notify = settings.notify
    if "fcm" not in notify.channels or notify.fcm_service_account_file is None:
        return []
    from notifier.fcm import FcmChannel  # firebase-admin is slow to import: only when used

    return [FcmChannel(notify.fcm_service_account_file, notify.fcm_project_id, notify.timeout_s)]


def make_visitor_worker(settings: Settings, store: Store, client_id: str | None = None) -> VisitorWorker:
    """A visitor worker with the site's signing key and push channels (for `passage up` and `serve`).
    Raises SigningKeyError if the configured signing key cannot be used."""
    from notifier.base import NotifyConfigError
    from visitor_worker.service import VisitorWorker

    try:
        channels = visitor_channels(settings)
    except NotifyConfigError as exc:
        # The QR code still goes back to the resident's app; only the push is off.
        log.error("visitor push disabled: %s", exc)
        channels = []
    return VisitorWorker(settings, store, channels=channels, client_id=client_id)


async def run_visitor_worker(worker: VisitorWorker) -> None:
    """Serve until cancelled or `worker.stop()`; closes the push channels afterwards."""
    try:
        await worker.run()
    finally:
        for channel in worker.pusher.channels:
            close = getattr(channel, "aclose", None)
            if close is not None:
                await close()


@click.group()
def visitor() -> None:
    """Visitor passes: the worker that issues them, and the key gates check them with."""


@visitor.command("serve")
@click.pass_obj
def visitor_serve(settings: Settings) -> None:
    """Run one visitor worker (store: PASSAGE_MONGO_URI, else an embedded store of its own)."""
    from cli.runner import run_until_signal as _run
    from store.connect import open_store
    from visitor_pass.keys import SigningKeyError, load_signing_key

    try:
        load_signing_key(settings)
    except SigningKeyError as exc:
        raise click.ClickException(str(exc)) from None
    handle = open_store(settings)
    try:
        _run(run_visitor_worker(make_visitor_worker(settings, handle.store)))
    finally:
        handle.close()


@visitor.command("public-key")
@click.option("--pem", is_flag=True, help="PEM (SubjectPublicKeyInfo) instead of 64 hex digits.")
@click.pass_obj
def visitor_public_key(settings: Settings, pem: bool) -> None:
    """Print the public key that verifies this site's passes (for gates and for auth workers on other
    hosts: visitor.public_keys). Creates the signing key on first use."""
    from visitor_pass.keys import SigningKeyError, load_signing_key, public_key_hex, public_key_pem
    from visitor_pass.token import key_id_of

    try:
        key = load_signing_key(settings).public_key()
    except SigningKeyError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"key id {key_id_of(key)}", err=True)
    click.echo(public_key_pem(key).rstrip() if pem else public_key_hex(key))
