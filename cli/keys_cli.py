"""`passage keys`: rotate the site key, migrate what was sealed under the old one, show status."""

from __future__ import annotations

import os
import shutil

import click

from config.settings import Settings
from store.keyed_hash import KeyedHasher


@click.group()
def keys() -> None:
    """The site key: card/PIN hashes and face-template sealing derive from it."""


@keys.command("rotate")
@click.pass_obj
def keys_rotate(settings: Settings) -> None:
    """Start using a new site key; the old one moves to keys/previous and keeps matching old records."""
    if settings.hash_key is not None:
        raise click.ClickException(
            "hash_key comes from your configuration: set the new key as hash_key and put the old one "
            "first in previous_hash_keys, restart the workers, then run `passage keys migrate`")
    folder = settings.data_dir / "keys"
    current = folder / "hash.key"
    if not current.exists():
        raise click.ClickException(f"no key at {current}: nothing to rotate")
    old = KeyedHasher.from_key_file(current)
    previous = folder / "previous"
    previous.mkdir(mode=0o700, exist_ok=True)
    shutil.move(current, previous / f"{old.key_id}.key")
    new = KeyedHasher.from_key_file(current)  # creates the new key, 0600
    os.chmod(previous / f"{old.key_id}.key", 0o600)
    click.echo(f"site key rotated: {old.key_id} -> {new.key_id}. Restart the workers and gates, then run "
               "`passage keys migrate`.")


@keys.command("migrate")
@click.pass_obj
def keys_migrate(settings: Settings) -> None:
    """Re-seal face templates under the current key; report credentials still on old keys."""
    from store.connect import open_store

    handle = open_store(settings)
    try:
        resealed, unreadable = handle.store.reseal_face_templates()
        click.echo(f"face templates re-sealed under {handle.hasher.key_id}: {resealed}"
                   + (f" ({unreadable} unreadable, see log)" if unreadable else ""))
        _print_credentials(handle.store.credential_key_ids(), handle.hasher)
    finally:
        handle.close()
    if unreadable:
        raise SystemExit(1)


@keys.command("status")
@click.pass_obj
def keys_status(settings: Settings) -> None:
    """Which key is current, which are previous, and how many credentials use each."""
    from store.connect import open_store

    handle = open_store(settings)
    try:
        click.echo(f"current key {handle.hasher.key_id}; previous: {', '.join(handle.hasher.key_ids[1:]) or 'none'}")
        _print_credentials(handle.store.credential_key_ids(), handle.hasher)
    finally:
        handle.close()


def _print_credentials(counts: dict[str, int], hasher: KeyedHasher) -> None:
    for key_id, n in sorted(counts.items()):
        state = "current" if key_id == hasher.key_id else (
            "previous: re-hashed when next presented" if key_id in hasher.key_ids else "UNKNOWN KEY: cannot match")
        click.echo(f"credentials under {key_id}: {n} ({state})")


