"""Bare-broker echo: republish every `access/request/{gate_id}` payload unchanged to
`access/response/{gate_id}` (QoS 1, through MqttClient), so the bench can measure what the
broker plus the client library cost without any decision work.

Run as its own process: `python -m bench.echo_responder --port N [--host H] [--seconds S]`.
It prints `READY` on stdout once subscribed, then echoes until SIGTERM / SIGINT, stdin closing,
or `--seconds` (a hard bound so a forgotten responder never lingers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading

from config.settings import MqttSettings
from messaging import IncomingMessage, MqttClient

REQUEST_FILTER = "access/request/+"
RESPONSE_PREFIX = "access/response/"


async def serve(host: str, port: int, seconds: float) -> int:
    client = MqttClient(MqttSettings(host=host, port=port), f"bench-echo-{port}", max_in_flight=4096)
    echoed = 0

    async def echo(msg: IncomingMessage) -> None:
        nonlocal echoed
        gate_id = msg.topic.rsplit("/", 1)[-1]
        await client.publish(RESPONSE_PREFIX + gate_id, msg.payload, qos=1)
        echoed += 1

    client.subscribe(REQUEST_FILTER, echo, qos=1)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watch_stdin(loop, stop)

    runner = asyncio.create_task(client.run())
    try:
        await client.wait_connected(15)
        print("READY", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
    finally:
        client.stop()
        try:
            await asyncio.wait_for(runner, 5)
        except (TimeoutError, asyncio.CancelledError):
            runner.cancel()
    print(f"ECHOED {echoed}", file=sys.stderr, flush=True)
    return 0


def watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set `stop` when stdin reaches EOF: the parent closed it, or died."""

    def wait_eof() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(4096):
                pass
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(stop.set)

    # A daemon thread: a blocked read must never keep the interpreter from exiting.
    threading.Thread(target=wait_eof, name="stdin-eof", daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=600.0, help="hard upper bound on run time")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(asyncio.run(serve(args.host, args.port, args.seconds)))


if __name__ == "__main__":
    main()
