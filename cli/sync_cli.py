"""`passage sync`: the gate sync service (offline allow-lists to gates, offline logs from them)."""

from __future__ import annotations

from typing import Any

import click

from config.settings import Settings
from gate_sync.service import GateSyncService
from schemas.base import utc_now
from store.keyed_hash import KeyedHasher
from store.passes import VisitorPassStore
from store.repository import Store
from visitor_pass.keys import public_key_hex, public_keys_for


def pass_options(settings: Settings, store: Store) -> dict[str, Any]:
    """Visitor passes for the gates' caches: the pass store and the site's public key (hex)."""
    passes = VisitorPassStore(store.db)
    return {"pass_source": lambda: passes.offline_passes(utc_now()),
            "pass_public_key": public_key_hex(public_keys_for(settings)[0])}


async def run_gate_sync(settings: Settings, store: Store, hasher: KeyedHasher) -> None:
    """The service until cancelled; for `passage up` (an asyncio task next to the auth worker)."""
    service = GateSyncService(settings, store, hasher.key_id, **pass_options(settings, store))
    try:
        await service.run()
    finally:
        service.stop()


@click.command("sync")
@click.pass_obj
def sync(settings: Settings) -> None:
    """Run the gate sync service (store: PASSAGE_MONGO_URI, else an embedded store of its own). One per site."""
    from cli.runner import run_until_signal as _run
    from store.connect import open_store

    handle = open_store(settings)
    try:
        _run(run_gate_sync(settings, handle.store, handle.hasher))
    finally:
        handle.close()


__all__ = ["pass_options", "run_gate_sync", "sync"]
