"""`passage watch`: subscribe to events and gate status and print them."""

from __future__ import annotations

import click

from cli.watch import format_message
from config.settings import Settings
from messaging import IncomingMessage, MqttClient
from schemas import topics
from schemas.base import new_id


def attach_printer(client: MqttClient) -> None:
    """Print every event and gate status change `client` receives."""

    async def show(msg: IncomingMessage) -> None:
        click.echo(format_message(msg.topic, msg.payload))

    client.subscribe(topics.EVENTS_FILTER, show)
    client.subscribe(topics.GATE_STATUS_FILTER, show)


async def watch_events(settings: Settings) -> None:
    client = MqttClient(settings.mqtt, f"watch-{new_id()[:8]}")
    attach_printer(client)
    await client.run()
