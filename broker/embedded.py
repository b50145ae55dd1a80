"""The embedded amqtt broker, run inside a Passage process (MQTT 3.1.1, no shared subscriptions)."""

from __future__ import annotations

import logging
from typing import Any

from amqtt.broker import Broker

log = logging.getLogger(__name__)


class BrokerStartError(RuntimeError):
    """The embedded broker could not listen (port taken, bad address)."""


class EmbeddedBroker:
    """An amqtt broker on `host:port`, anonymous, plain TCP."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
        self._broker = Broker(config)

    async def start(self) -> None:
        try:
            await self._broker.start()
        except Exception as exc:  # amqtt wraps OSError in its own BrokerError
            raise BrokerStartError(f"embedded broker cannot listen on {self.host}:{self.port}: {exc}") from exc
        log.info("embedded amqtt broker listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        await self._broker.shutdown()
