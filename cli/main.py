"""`passage`: run the platform, a gate, a broker or a store; watch events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine
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


if __name__ == "__main__":
    main()
