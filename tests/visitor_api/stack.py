"""A whole bridge stack (broker, replying peer or worker, uvicorn) in a background event loop, for
synchronous callers such as schemathesis' generated tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from accounts.store import AccountStore
from config.settings import Settings
from visitor_api.server import serve_bridge

T = TypeVar("T")


@contextlib.contextmanager
def in_background_loop(factory: Callable[[], AbstractAsyncContextManager[T]], timeout: float = 60) -> Iterator[T]:
    """Enter `factory()` in an event loop on its own thread; exit it there when the block ends."""
    ready: list[Any] = []
    started = threading.Event()
    stop: list[asyncio.Event] = []
    loop_box: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        loop_box.append(asyncio.get_running_loop())
        try:
            async with factory() as value:
                ready.append(value)
                started.set()
                await stop[0].wait()
        except BaseException as exc:
            ready.append(exc)
            started.set()
            raise

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="bridge-stack", daemon=True)
    thread.start()
    if not started.wait(timeout):
        raise TimeoutError("background stack did not start")
    if isinstance(ready[0], BaseException):
        thread.join(10)
        raise RuntimeError("background stack failed to start") from ready[0]
    try:
        yield ready[0]
    finally:
        loop_box[0].call_soon_threadsafe(stop[0].set)
        thread.join(30)
        if thread.is_alive():
            raise RuntimeError("background stack did not stop")


@contextlib.asynccontextmanager
async def served_bridge(settings: Settings, accounts: AccountStore) -> AsyncIterator[str]:
    """serve_bridge on a free loopback port (bound here, so no race for it); yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    ready = asyncio.Event()
    task = asyncio.create_task(serve_bridge(settings, accounts, ready=ready, sock=sock))
    try:
        await asyncio.wait_for(ready.wait(), 15)
        yield f"http://127.0.0.1:{port}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 20)
        sock.close()
