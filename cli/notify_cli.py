"""`passage monitor` (gate liveness + notify worker) and `passage notify test --to ID`.

For `passage up`: `MonitorServices(settings, store)` runs both services in the caller's event loop
(`run()` until `stop()`; `clients` for waiting on connections).
"""

from __future__ import annotations

import asyncio
import sys

import click

from config.settings import Settings
from messaging import MqttClient
from monitor.service import GateMonitor
from notifier import recipients
from notifier.dispatch import Delivery
from notifier.factory import build_notifier
from notifier.service import NotifyWorker
from schemas.base import is_identifier, new_id
from store.repository import Store


class MonitorServices:
    """The gate monitor and the notify worker, run together."""

    def __init__(self, settings: Settings, store: Store | None) -> None:
        self.monitor = GateMonitor(settings, store)
        self.worker = NotifyWorker(settings, store)

    @property
    def clients(self) -> list[MqttClient]:
        return [self.monitor.mqtt, self.worker.mqtt]

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.gather(*(c.wait_connected(timeout) for c in self.clients))

    async def run(self) -> None:
        """Run both until `stop()` (or cancellation, which stops both cleanly)."""
        tasks = [asyncio.create_task(self.monitor.run(), name="monitor"),
                 asyncio.create_task(self.worker.run(), name="notify")]
        try:
            await asyncio.gather(*tasks)
        finally:
            self.stop()
            await asyncio.wait(tasks, timeout=10)

    def stop(self) -> None:
        self.monitor.stop()
        self.worker.stop()


async def run_monitor(settings: Settings, store: Store | None) -> None:
    """`passage monitor`: both services until Ctrl-C / SIGTERM."""
    services = MonitorServices(settings, store)
    m = settings.monitor
    click.echo(f"monitoring gates: ping every {m.ping_interval_s:g}s, alert after {m.offline_alert_delay_s:g}s "
               f"offline; notify channels: {', '.join(settings.notify.channels)}; "
               f"admins: {', '.join(a.id for a in settings.notify.admins) or 'none configured'}", err=True)
    await services.run()


async def send_test(settings: Settings, to: str, title: str, body: str, store: Store | None) -> list[Delivery]:
    """One test notification to `to` (an admin id from notify.admins, `admins` for all of them and the
    room channels, or a user id from the store) through every configured channel."""
    client = MqttClient(settings.mqtt, f"notify-test-{new_id()[:8]}")
    task = asyncio.create_task(client.run())
    notifier = build_notifier(settings.notify, client)
    try:
        if "local" in settings.notify.channels:
            await client.wait_connected(10)
        admins = {a.id: a for a in settings.notify.admins}
        if to == "admins":
            return await notifier.notify_admins(title, body, {"event": "TEST"})
        if to in admins:
            return await notifier.send(recipients.for_admin(admins[to], title, body, {"event": "TEST"}))
        user = await asyncio.to_thread(store.get_user, to) if store is not None else None
        if user is None:
            raise click.ClickException(f"{to} is neither an admin in notify.admins nor a known user")
        return await notifier.send(recipients.for_user(user, title, body, {"event": "TEST"}))
    finally:
        await notifier.aclose()
        client.stop()
        await asyncio.wait_for(task, 10)


@click.command("monitor")
@click.pass_obj
def monitor(settings: Settings) -> None:
    """Watch gate liveness and notify people (store: PASSAGE_MONGO_URI, else an embedded store)."""
    from cli.runner import run_until_signal as _run
    from store.connect import open_store

    handle = open_store(settings)
    try:
        _run(run_monitor(settings, handle.store))
    finally:
        handle.close()


@click.group()
def notify() -> None:
    """Notifications: try the configured channels."""


@notify.command("test")
@click.option("--to", "to", required=True, help="Admin id (notify.admins), 'admins', or a user id.")
@click.option("--title", default="Passage test notification", show_default=True)
@click.option("--body", default="If you can read this, this channel reaches you.", show_default=True)
@click.pass_obj
def notify_test(settings: Settings, to: str, title: str, body: str) -> None:
    """Send a test notification; print what each channel did (exit 0 if one delivered)."""
    from cli.runner import run_until_signal as _run

    if not is_identifier(to):
        raise click.UsageError(f"not a valid id: {to[:64]!r}")
    handle = None
    if to != "admins" and to not in {a.id for a in settings.notify.admins}:
        from store.connect import open_store

        handle = open_store(settings)
    try:
        deliveries = _run(send_test(settings, to, title, body, handle.store if handle else None)) or []
    finally:
        if handle is not None:
            handle.close()
    for d in deliveries:
        click.echo(f"{d.channel:<6} {d.recipient_id:<20} {d.outcome}{': ' + d.detail if d.detail else ''}")
    sys.exit(0 if any(d.outcome == "sent" for d in deliveries) else 1)
