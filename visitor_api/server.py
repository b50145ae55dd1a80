"""Serve the bridge with uvicorn inside an already running event loop (`passage up`, `passage bridge serve`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from accounts.store import AccountStore
from config.settings import Settings
from visitor_api.app import create_app

log = logging.getLogger(__name__)


class BridgeStartError(RuntimeError):
    """The HTTP server could not start (port taken, bad address)."""


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its host: the caller cancels it instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_bridge(settings: Settings, accounts: AccountStore, *, ready: asyncio.Event | None = None,
                       sock: socket.socket | None = None) -> None:
    """Run the visitor API until cancelled; on cancel it stops accepting, finishes open requests and
    disconnects from the broker before returning. `sock`: an already bound listening socket (tests,
    benchmarks); else settings.bridge.host/port."""
    bridge = settings.bridge
    app = create_app(settings, accounts)
    config = uvicorn.Config(
        app, host=bridge.host, port=bridge.port, lifespan="on", log_config=None, access_log=False,
        server_header=False, proxy_headers=bool(bridge.trusted_proxies),
        forwarded_allow_ips=bridge.trusted_proxies or None, timeout_graceful_shutdown=5,
        h11_max_incomplete_event_size=16 * 1024)
    server = _EmbeddedServer(config)
    task = asyncio.create_task(_serve(server, sock), name="visitor-api-http")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise BridgeStartError("visitor API stopped while starting")
            await asyncio.sleep(0.02)
        where = sock.getsockname() if sock is not None else (bridge.host, bridge.port)
        log.info("visitor API listening on http://%s:%s", where[0], where[1])
        if ready is not None:
            ready.set()
        await asyncio.shield(task)
    finally:
        server.should_exit = True
        if not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), 15)
        if not task.done():
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _serve(server: uvicorn.Server, sock: socket.socket | None) -> None:
    try:
        await server.serve(sockets=[sock] if sock is not None else None)
    except SystemExit as exc:
        # uvicorn exits the process when it cannot bind; inside `passage up` that must not happen.
        raise BridgeStartError(f"visitor API could not start (uvicorn exit {exc.code})") from None
