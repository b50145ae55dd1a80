"""`passage`: run the platform, a gate, a broker or a store; watch events."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import click

from cli.runner import run_until_signal
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
    # Until a command's event loop takes over SIGTERM, turn it into SystemExit so finally blocks
    # (stopping an embedded store that is still starting, say) run instead of the process vanishing.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
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
@click.option("--pki", "pki_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="With --mosquitto-config: a `passage certs` directory; adds the MQTTS listener (8883) with "
                   "client certificates and the topic ACL.")
@click.option("--passwords", is_flag=True, help="With --pki: clients log in with the directory's password "
                                                "file instead of client certificates.")
@click.pass_obj
def broker(settings: Settings, port: int | None, mosquitto_config: bool, pki_dir: Path | None,
           passwords: bool) -> None:
    """Run the embedded amqtt broker, or print the recommended Mosquitto config."""
    from broker.embedded import EmbeddedBroker
    from broker.mosquitto import render_config, render_pki_config, render_site_config

    if mosquitto_config:
        if pki_dir is not None:
            click.echo(render_pki_config(pki_dir, port=port or 1883, passwords=passwords))
        elif settings.broker.tls_port is not None:
            click.echo(render_site_config(settings.broker, port=port))
        else:
            click.echo(render_config(port or 1883))
        return

    async def serve() -> None:
        b = EmbeddedBroker.from_settings(settings.broker, port=port)
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
@click.option("--qr-image", "qr_image", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the QR code in this image (a visitor pass) and present it once.")
@click.option("--pin", default=None, help="Present this keypad PIN once (with --unit).")
@click.option("--unit", default=None, help="The unit code typed with --pin.")
@click.option("--cache", "cache", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Offline cache + queue file (default: data_dir/gate-{id}.sqlite3).")
@click.option("--show-cache", is_flag=True, help="Print the offline cache state and queue length, then exit.")
@click.pass_obj
def gate(settings: Settings, gate_id: str | None, card: str | None, face: Path | None, qr_image: Path | None,
         pin: str | None, unit: str | None, cache: Path | None, show_cache: bool) -> None:
    """A simulated gate. With --card, --face, --qr-image or --pin: one decision (exit 0 granted, 1
    denied); else card ids from stdin."""
    from pydantic import ValidationError

    from cli.gate_cli import present_once, read_cards_from_stdin, with_cache_path
    from cli.gate_cli import show_cache as cache_report
    from schemas.access import CardCredential, Credential, FaceCredential, PinCredential

    settings = with_cache_path(settings, cache)
    if show_cache:
        click.echo(cache_report(settings, gate_id))
        return
    given = [x for x in (card, face, qr_image, pin) if x is not None]
    if len(given) > 1:
        raise click.UsageError("give one of --card, --face, --qr-image, --pin")
    if not given:
        _run(read_cards_from_stdin(settings, gate_id))
        return
    credential: Credential
    try:
        if card is not None:
            credential = CardCredential(acc_id=card)
        elif face is not None:
            credential = FaceCredential(jpeg=face.read_bytes())
        elif pin is not None:
            credential = PinCredential(pin=pin, unit=unit)
        else:
            from edge_agent.qr_reader import QrReadError, credential_from_image_file

            assert qr_image is not None
            try:
                credential = credential_from_image_file(qr_image)
            except QrReadError as exc:
                raise click.ClickException(f"{qr_image}: {exc}") from None
    except ValidationError as exc:
        raise click.UsageError(f"not a valid credential: {exc.errors()[0]['msg']}") from None
    sys.exit(_run(present_once(settings, gate_id, credential)))


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


_run = run_until_signal


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def _register() -> None:
    # Sub-command groups live in their own modules; they import nothing heavy at load time.
    from cli.bridge_cli import bridge
    from cli.certs_cli import certs
    from cli.console_cli import console
    from cli.keys_cli import keys
    from cli.notify_cli import monitor, notify
    from cli.sync_cli import sync
    from cli.visitor_cli import visitor

    for command in (keys, console, bridge, sync, monitor, notify, visitor, certs):
        main.add_command(command)


_register()

if __name__ == "__main__":
    main()
