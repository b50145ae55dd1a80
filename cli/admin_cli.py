"""`passage admin`: send admin commands over MQTT and print the replies."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from config.settings import Settings
from messaging import IncomingMessage, MqttClient
from schemas import topics
from schemas.admin import AdminAction, AdminCommand, AdminReply
from schemas.base import new_id


def describe(action: str, reply: AdminReply) -> str:
    if reply.ok:
        return f"OK      {action} {reply.subject_id or ''}".rstrip()
    who = f" [{reply.matched_user_name}]" if reply.matched_user_name else ""
    korean = f" / {reply.error_ko}" if reply.error_ko else ""
    return f"REFUSED {action}: {reply.error}{korean}{who}"


async def send_commands(settings: Settings, admin_id: str, actions: list[AdminAction],
                        timeout: float = 30.0) -> list[AdminReply]:
    """Send each action in turn, stop at the first refusal; print and return the replies."""
    replies: dict[str, asyncio.Future[AdminReply]] = {}

    async def on_reply(msg: IncomingMessage) -> None:
        reply = AdminReply.model_validate_json(msg.payload)
        future = replies.get(reply.command_id)
        if future is not None and not future.done():
            future.set_result(reply)

    client = MqttClient(settings.mqtt, f"admin-cli-{new_id()[:8]}")
    client.subscribe(topics.admin_reply(admin_id), on_reply)
    task = asyncio.create_task(client.run())
    done: list[AdminReply] = []
    try:
        await client.wait_connected(10)
        for action in actions:
            command = AdminCommand(command_id=new_id(), admin_id=admin_id, command=action)
            future: asyncio.Future[AdminReply] = asyncio.get_running_loop().create_future()
            replies[command.command_id] = future
            await client.publish(topics.ADMIN_COMMAND, command)
            try:
                reply = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise click.ClickException(f"no reply to {action.action} within {timeout:.0f}s: "
                                           "is an admin worker running (passage admin serve / passage up)?") from None
            click.echo(describe(action.action, reply))
            done.append(reply)
            if not reply.ok:
                break
        return done
    except TimeoutError:
        raise click.ClickException(f"broker {settings.mqtt.host}:{settings.mqtt.port} unreachable") from None
    finally:
        client.stop()
        await asyncio.wait_for(task, 10)


def action(data: dict[str, Any]) -> AdminAction:
    """Validate one action dict with the schema (typed errors before anything is sent)."""
    return AdminCommand.model_validate({"command_id": "cli", "admin_id": "cli", "command": data}).command
