"""Running a command's coroutine until it ends or the process is told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_until_signal(coro: Coroutine[Any, Any, T]) -> T | None:
    """Run `coro` until done, Ctrl-C or SIGTERM; either signal cancels it, so its finally blocks
    run (buffered access events are flushed, servers shut down, child processes stopped)."""

    async def guarded() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        return await coro

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        return asyncio.run(guarded())
    return None
