"""`passage up`: the whole platform on one machine, on embedded defaults."""

from __future__ import annotations

import asyncio
import logging

import click

from auth_worker.service import AuthWorker
from broker.embedded import EmbeddedBroker
from cli.demo_data import DEMO_CARD, DEMO_GATE, UNKNOWN_CARD, seed_demo
from cli.gate_cli import describe
from cli.watch_cli import attach_printer
from config.settings import Settings
from edge_agent.agent import GateAgent
from messaging import MqttClient
from store.connect import open_store

log = logging.getLogger(__name__)


async def run_up(settings: Settings, demo_interval: float) -> None:
    """Start everything, print live decisions, stop everything on cancel/Ctrl-C."""
    settings = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(
        update={"host": settings.broker.bind_host, "port": settings.broker.port})})
    broker = EmbeddedBroker(settings.broker.bind_host, settings.broker.port)
    await broker.start()
    handle = None
    tasks: list[asyncio.Task[None]] = []
    gate: GateAgent | None = None
    stoppers: list[MqttClient] = []
    try:
        handle = await asyncio.to_thread(open_store, settings)
        await asyncio.to_thread(seed_demo, handle.store, handle.hasher)
        worker = AuthWorker(settings, handle.store, handle.hasher)
        watcher = MqttClient(settings.mqtt, "passage-up-watch")
        attach_printer(watcher)
        gate = GateAgent(settings, DEMO_GATE)
        stoppers = [worker.mqtt, watcher]
        tasks = [asyncio.create_task(worker.run(), name="auth"),
                 asyncio.create_task(watcher.run(), name="watch"),
                 asyncio.create_task(gate.run(), name="gate")]
        await asyncio.gather(worker.mqtt.wait_connected(10), gate.mqtt.wait_connected(10),
                             watcher.wait_connected(10))
        click.echo(
            f"Passage is up: broker mqtt://{settings.broker.bind_host}:{settings.broker.port}, "
            f"store {handle.uri}\n"
            f"Try from another terminal:  passage gate --card {DEMO_CARD}   (or any other card id)\n"
            "Ctrl-C stops everything.", err=True)
        if demo_interval > 0:
            cards = [DEMO_CARD, UNKNOWN_CARD]
            n = 0
            while True:
                await asyncio.sleep(demo_interval)
                decision = await gate.present_card(cards[n % len(cards)])
                log.info("simulated gate %s: %s", DEMO_GATE, describe(decision))
                n += 1
        else:
            await asyncio.Event().wait()
    finally:
        if gate is not None:
            await gate.stop()
        for client in stoppers:
            client.stop()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=10)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if handle is not None:
            await asyncio.to_thread(handle.close)
        await broker.stop()
        click.echo("Passage stopped.", err=True)
