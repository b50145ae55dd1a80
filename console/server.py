"""Running the console: a uvicorn server inside the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from accounts.store import AccountStore
from config.settings import Settings
from console.app import build_app
from console.feed import ConsoleFeed, new_feed

log = logging.getLogger(__name__)


class ConsoleStartFailed(OSError):
    """The console could not start (most often: its port is taken)."""


class ConsoleServer(uvicorn.Server):
    """uvicorn, with two changes: the host process may keep its own signal handling, and the open
    SSE streams are ended first on shutdown (otherwise the graceful shutdown waits on them)."""

    def __init__(self, config: uvicorn.Config, feed: ConsoleFeed, handle_signals: bool) -> None:
        super().__init__(config)
        self._feed = feed
        self._handle_signals = handle_signals
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if self._handle_signals:
            with super().capture_signals():
                yield
        else:
            yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._feed.close()
        await super().shutdown(sockets)


def console_server(settings: Settings, accounts: AccountStore, *, host: str | None = None,
                   port: int | None = None, handle_signals: bool = False) -> ConsoleServer:
    """A server for the console app; `await server.serve()` runs it until `should_exit`."""
    feed = new_feed(settings.mqtt, settings.console.recent_events)
    app = build_app(settings, accounts, feed)
    config = uvicorn.Config(
        app,
        host=host or settings.console.host,
        port=settings.console.port if port is None else port,
        log_config=None,  # keep the process's logging as configured
        access_log=False,
        server_header=False,
        proxy_headers=False,  # behind a TLS proxy, configure forwarded-allow-ips there deliberately
        timeout_graceful_shutdown=3,
        lifespan="on",
    )
    return ConsoleServer(config, feed, handle_signals)


async def serve_console(settings: Settings, accounts: AccountStore, *, host: str | None = None,
                        port: int | None = None, ready: asyncio.Event | None = None,
                        handle_signals: bool = False) -> None:
    """Serve the console until cancelled (or, with `handle_signals`, until Ctrl-C / SIGTERM).

    Cancelling it shuts the server down gracefully before the cancellation goes on. `ready`, when
    given, is set once the server listens.
    """
    server = console_server(settings, accounts, host=host, port=port, handle_signals=handle_signals)

    async def run() -> None:
        try:
            await server.serve()
        except SystemExit:  # uvicorn exits the process when it cannot bind: not ours to end
            raise ConsoleStartFailed(f"console could not listen on {server.config.host}:{server.config.port}"
                                     ) from None

    task = asyncio.create_task(run(), name="console-http")
    waiter = asyncio.create_task(server.ready.wait())
    try:
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done and ready is not None:
            ready.set()
        await asyncio.shield(task)
        if not server.started:
            raise ConsoleStartFailed(f"console did not start on {server.config.host}:{server.config.port}")
    finally:
        waiter.cancel()
        if not task.done():
            server.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(task), 10)
            except TimeoutError:
                task.cancel()
                log.warning("console server did not stop in time")


async def start_console(settings: Settings, accounts: AccountStore, *, host: str | None = None,
                        port: int | None = None, timeout: float = 30.0) -> asyncio.Task[None]:
    """`serve_console` as a task, returned once the console listens; cancel the task to stop it.

    Raises ConsoleStartFailed when it cannot listen (for instance its port is taken).
    """
    ready = asyncio.Event()
    task = asyncio.create_task(serve_console(settings, accounts, host=host, port=port, ready=ready),
                               name="console")
    waiter = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait({task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if ready.is_set():
        return task
    if task.done():
        task.result()  # raises ConsoleStartFailed
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise ConsoleStartFailed(f"console did not start within {timeout:.0f}s")
