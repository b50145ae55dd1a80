"""`passage`: run the platform, a gate, a broker or a store; watch events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from config.settings import Settings, load_settings

T = TypeVar("T")


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        stream=sys.stderr)
    for noisy in ("amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group()
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML settings file (default: $PASSAGE_CONFIG or ./passage.toml).")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None) -> None:
    """Passage: MQTT access control for buildings."""
    settings = load_settings(config_file)
    _setup_logging(settings.log_level)
    ctx.obj = settings


@main.command()
@click.option("--demo-interval", type=float, default=5.0, show_default=True,
              help="Seconds between the simulated gate's demo presentations (0: none).")
@click.pass_obj
def up(settings: Settings, demo_interval: float) -> None:
    """Broker, store, auth worker and a simulated gate on this machine; Ctrl-C stops all."""
    from cli.up import run_up

    _run(run_up(settings, demo_interval))


@main.command()
@click.option("--port", type=int, default=None, help="Listen port (default: broker.port).")
@click.option("--mosquitto-config", is_flag=True, help="Print the Mosquitto config for a site and exit.")
@click.pass_obj
def broker(settings: Settings, port: int | None, mosquitto_config: bool) -> None:
    """Run the embedded amqtt broker, or print the recommended Mosquitto config."""
    from broker.embedded import EmbeddedBroker
    from broker.mosquitto import render_config

    if mosquitto_config:
        click.echo(render_config(port or 1883))
        return

    async def serve() -> None:
        b = EmbeddedBroker(settings.broker.bind_host, port or settings.broker.port)
        await b.start()
        try:
            await asyncio.Event().wait()
        finally:
            await b.stop()

    _run(serve())


@main.command()
@click.pass_obj
def store(settings: Settings) -> None:
    """Run the embedded store server and print its URI (for PASSAGE_MONGO_URI of other processes)."""
    from store.embedded import EmbeddedMongoServer

    server = EmbeddedMongoServer(settings.data_dir / "store", settings.store.embedded_port)
    server.start()
    click.echo(f"PASSAGE_MONGO_URI={server.uri}")
    try:
        _run(asyncio.Event().wait())
    finally:
        server.stop()


@main.command()
@click.pass_obj
def auth(settings: Settings) -> None:
    """Run one auth worker (store: PASSAGE_MONGO_URI, else an embedded store of its own)."""
    from auth_worker.service import AuthWorker
    from store.connect import open_store

    handle = open_store(settings)
    try:
        worker = AuthWorker(settings, handle.store, handle.hasher)
        _run(worker.run())
    finally:
        handle.close()


@main.command()
@click.option("--gate-id", default=None, help="Gate id (default: gate.gate_id).")
@click.option("--card", "card", default=None, help="Present this card id once, print the decision, exit.")
@click.option("--face", "face", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Present this photo (JPEG/PNG) once, print the decision, exit.")
@click.pass_obj
def gate(settings: Settings, gate_id: str | None, card: str | None, face: Path | None) -> None:
    """A simulated gate. With --card or --face: one decision (exit 0 granted, 1 denied); else card ids
    from stdin."""
    from cli.gate_cli import present_once, read_cards_from_stdin
    from schemas.access import CardCredential, FaceCredential

    if card is not None and face is not None:
        raise click.UsageError("give --card or --face, not both")
    if card is not None or face is not None:
        credential = CardCredential(acc_id=card) if card is not None else FaceCredential(jpeg=face.read_bytes())  # type: ignore[union-attr]
        sys.exit(_run(present_once(settings, gate_id, credential)))
    _run(read_cards_from_stdin(settings, gate_id))


@main.group()
def admin() -> None:
    """Enroll residents and manage credentials (through the admin worker)."""


@admin.command("serve")
@click.pass_obj
def admin_serve(settings: Settings) -> None:
    """Run one admin worker (store: PASSAGE_MONGO_URI, else an embedded store of its own)."""
    from admin_worker.service import AdminWorker
    from store.connect import open_store

    handle = open_store(settings)
    try:
        _run(AdminWorker(settings, handle.store, handle.hasher).run())
    finally:
        handle.close()


_ADMIN_ID = click.option("--admin-id", default="admin", show_default=True, help="Who is acting (audit trail).")


@admin.command("enroll")
@click.option("--user", "user_id", required=True)
@click.option("--name", required=True)
@click.option("--building")
@click.option("--unit")
@click.option("--phone")
@click.option("--group", "groups", multiple=True, help="Access group id (repeatable).")
@click.option("--card", help="Card id to enroll.")
@click.option("--photo", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Face photo.")
@_ADMIN_ID
@click.pass_obj
def admin_enroll(settings: Settings, user_id: str, name: str, building: str | None, unit: str | None,
                 phone: str | None, groups: tuple[str, ...], card: str | None, photo: Path | None,
                 admin_id: str) -> None:
    """Create a resident, then add their card and face (stops at the first refusal)."""
    import base64

    from cli.admin_cli import action, send_commands

    try:
        actions = [action({"action": "create_user", "user_id": user_id, "name": name, "building": building,
                           "unit": unit, "phone": phone, "groups": list(groups)})]
        if card:
            actions.append(action({"action": "add_card", "user_id": user_id, "acc_id": card}))
        if photo:
            actions.append(action({"action": "add_face", "user_id": user_id,
                                   "photo": base64.b64encode(photo.read_bytes()).decode()}))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    replies = _run(send_commands(settings, admin_id, actions)) or []
    sys.exit(0 if replies and all(r.ok for r in replies) and len(replies) == len(actions) else 1)


@admin.command("revoke-card")
@click.option("--user", "user_id", required=True)
@click.option("--card", required=True)
@_ADMIN_ID
@click.pass_obj
def admin_revoke_card(settings: Settings, user_id: str, card: str, admin_id: str) -> None:
    """Remove a card from a user."""
    from cli.admin_cli import action, send_commands

    replies = _run(send_commands(settings, admin_id, [action({"action": "remove_card", "user_id": user_id,
                                                               "acc_id": card})])) or []
    sys.exit(0 if replies and replies[0].ok else 1)


@admin.command("deactivate")
@click.option("--user", "user_id", required=True)
@_ADMIN_ID
@click.pass_obj
def admin_deactivate(settings: Settings, user_id: str, admin_id: str) -> None:
    """Deactivate a user: every credential they hold stops opening doors."""
    from cli.admin_cli import action, send_commands

    replies = _run(send_commands(settings, admin_id, [action({"action": "deactivate_user",
                                                               "user_id": user_id})])) or []
    sys.exit(0 if replies and replies[0].ok else 1)


@admin.command("set-pin")
@click.option("--user", "user_id", required=True)
@click.option("--pin", prompt=True, hide_input=True, confirmation_prompt=True, help="Prompted if omitted.")
@_ADMIN_ID
@click.pass_obj
def admin_set_pin(settings: Settings, user_id: str, pin: str, admin_id: str) -> None:
    """Set a user's keypad PIN (unique within their unit; weak PINs refused)."""
    from cli.admin_cli import action, send_commands

    try:
        act = action({"action": "set_pin", "user_id": user_id, "pin": pin})
    except ValueError:
        raise click.UsageError("a PIN is 4 to 12 digits") from None
    replies = _run(send_commands(settings, admin_id, [act])) or []
    sys.exit(0 if replies and replies[0].ok else 1)


@admin.command("list")
@click.option("--building")
@click.option("--unit")
@click.option("--text", help="Id or name prefix (any case).")
@click.option("--limit", type=int, default=100, show_default=True)
@_ADMIN_ID
@click.pass_obj
def admin_list(settings: Settings, building: str | None, unit: str | None, text: str | None, limit: int,
               admin_id: str) -> None:
    """List users, by building / unit / name."""
    from cli.admin_cli import action, print_users, send_commands

    replies = _run(send_commands(settings, admin_id, [action({"action": "list_users", "building": building,
                                                               "unit": unit, "text": text, "limit": limit})],
                                 quiet=True)) or []
    if replies and replies[0].ok:
        print_users(replies[0])
    sys.exit(0 if replies and replies[0].ok else 1)


@admin.command("audit")
@click.option("--user", "target", help="Records about this user (as target or as matched owner).")
@click.option("--code", help="Event code, e.g. USER_DUPLICATE_CREDENTIAL.")
@click.option("--since", type=click.DateTime(), help="Local time (ISO), inclusive.")
@click.option("--until", type=click.DateTime(), help="Local time (ISO), exclusive.")
@click.option("--limit", type=int, default=100, show_default=True)
@_ADMIN_ID
@click.pass_obj
def admin_audit(settings: Settings, target: str | None, code: str | None, since: datetime | None,
                until: datetime | None, limit: int, admin_id: str) -> None:
    """Query the audit trail, newest first."""
    from cli.admin_cli import action, print_audit, send_commands

    try:
        act = action({"action": "query_audit", "target": target, "code": code, "limit": limit,
                      "since": since.astimezone().isoformat() if since else None,
                      "until": until.astimezone().isoformat() if until else None})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    replies = _run(send_commands(settings, admin_id, [act], quiet=True)) or []
    if replies and replies[0].ok:
        print_audit(replies[0])
    sys.exit(0 if replies and replies[0].ok else 1)


@admin.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row, change nothing.")
@_ADMIN_ID
@click.pass_obj
def admin_import(settings: Settings, csv_file: Path, dry_run: bool, admin_id: str) -> None:
    """Import residents from CSV (user_id,name,building,unit,phone,groups,card_id): all rows or none."""
    from cli.admin_cli import action, print_import, send_commands

    try:
        act = action({"action": "import_residents", "csv": csv_file.read_text(encoding="utf-8-sig"),
                      "dry_run": dry_run})
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"{csv_file}: {exc}") from None
    replies = _run(send_commands(settings, admin_id, [act], quiet=True)) or []
    if replies:
        print_import(replies[0], dry_run)
    sys.exit(0 if replies and replies[0].ok else 1)


@main.command()
@click.pass_obj
def watch(settings: Settings) -> None:
    """Print the events/# stream and gate status, one readable line each."""
    from cli.watch_cli import watch_events

    _run(watch_events(settings))


def _run(coro: Coroutine[Any, Any, T]) -> T | None:
    """Run a coroutine until done, Ctrl-C or SIGTERM; either signal cancels it, so its finally
    blocks run (buffered access events are flushed, child processes stopped)."""

    async def guarded() -> T:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await coro

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        return asyncio.run(guarded())
    return None


def _register() -> None:
    from cli.keys_cli import keys

    main.add_command(keys)


_register()

if __name__ == "__main__":
    main()
