"""`passage admin`: send admin commands over MQTT and print the replies."""

from __future__ import annotations

from typing import Any

import click

from admin_worker.client import AdminClient, AdminTimeout, AdminUnreachable
from config.settings import Settings
from schemas.admin import AdminAction, AdminCommand, AdminReply


def describe(action: str, reply: AdminReply) -> str:
    if reply.ok:
        return f"OK      {action} {reply.subject_id or ''}".rstrip()
    who = f" [{reply.matched_user_name}]" if reply.matched_user_name else ""
    korean = f" / {reply.error_ko}" if reply.error_ko else ""
    return f"REFUSED {action}: {reply.error}{korean}{who}"


async def send_commands(settings: Settings, admin_id: str, actions: list[AdminAction],
                        timeout: float = 30.0, quiet: bool = False) -> list[AdminReply]:
    """Send each action in turn, stop at the first refusal; print (unless quiet) and return the replies."""
    done: list[AdminReply] = []
    client = AdminClient(settings.mqtt, admin_id, client_prefix="admin-cli", reply_timeout=timeout)
    try:
        await client.start()
        for act in actions:
            reply = await client.send(act)
            if not quiet or not reply.ok:
                click.echo(describe(act.action, reply))
            done.append(reply)
            if not reply.ok:
                break
        return done
    except AdminTimeout as exc:
        raise click.ClickException(f"{exc} (passage admin serve / passage up)") from None
    except AdminUnreachable:
        raise click.ClickException(f"broker {settings.mqtt.host}:{settings.mqtt.port} unreachable") from None
    finally:
        await client.close()


def action(data: dict[str, Any]) -> AdminAction:
    """Validate one action dict with the schema (typed errors before anything is sent)."""
    return AdminCommand.model_validate({"command_id": "cli", "admin_id": "cli", "command": data}).command


def print_users(reply: AdminReply) -> None:
    click.echo(f"{'ID':<16} {'NAME':<24} {'BLDG':<6} {'UNIT':<6} CARDS FACES PIN ACTIVE")
    for u in reply.users:
        click.echo(f"{u.id:<16} {u.name[:24]:<24} {u.building or '-':<6} {u.unit or '-':<6} {u.cards:>5} "
                   f"{u.faces:>5} {'yes' if u.has_pin else 'no':>3} {'yes' if u.active else 'no'}")
    click.echo(f"{len(reply.users)} of {reply.total} users")


def print_audit(reply: AdminReply) -> None:
    for a in reply.audit:
        extra = f" {a.sub_code} matched={a.matched_user_id}" if a.sub_code else ""
        detail = f" ({a.detail})" if a.detail else ""
        click.echo(f"{a.ts.astimezone():%Y-%m-%d %H:%M:%S} {a.actor:<12} {a.action:<18} {a.target or '-':<14} "
                   f"{a.code}{extra}{detail}")
    click.echo(f"{len(reply.audit)} records")


def print_import(reply: AdminReply, dry_run: bool) -> None:
    for r in reply.import_rows:
        if r.outcome != "OK":
            owner = f" (held by {r.matched_user_id})" if r.matched_user_id else ""
            click.echo(f"row {r.row:>5} {r.user_id or '-':<16} {r.outcome}: {r.error or ''}{owner}")
    good = sum(1 for r in reply.import_rows if r.outcome == "OK")
    if reply.ok:
        click.echo(f"{good} rows {'would be imported (dry run)' if dry_run else 'imported'}")
    else:
        click.echo(f"{reply.error}")
