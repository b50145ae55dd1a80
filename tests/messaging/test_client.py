"""The client wrapper against real brokers: reconnect and re-subscribe, shared subscriptions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broker.mosquitto import MosquittoProcess
from messaging import IncomingMessage, MqttClient, NotConnected
from schemas import topics
from tests.conftest import BrokerInfo, eventually, make_settings


async def test_reconnects_and_resubscribes_after_broker_restart(tmp_path: Path, mosquitto: BrokerInfo) -> None:
    settings = make_settings(tmp_path, mosquitto)
    got: list[bytes] = []

    async def record(msg: IncomingMessage) -> None:
        got.append(msg.payload)

    listener = MqttClient(settings.mqtt, "listener")
    listener.subscribe("t/#", record)
    sender = MqttClient(settings.mqtt, "sender")
    tasks = [asyncio.create_task(listener.run()), asyncio.create_task(sender.run())]
    try:
        await listener.wait_connected(10)
        await sender.wait_connected(10)
        await sender.publish("t/1", b"before")
        await eventually(lambda: b"before" in got)
        assert mosquitto.process is not None
        mosquitto.process.kill()
        await eventually(lambda: not sender.is_connected, timeout=5)
        with pytest.raises(NotConnected):
            await sender.publish("t/1", b"lost", timeout=0.2)
        mosquitto.process.start()
        await listener.wait_connected(10)
        await sender.wait_connected(10)
        await sender.publish("t/1", b"after")
        await eventually(lambda: b"after" in got)
        assert listener.connections >= 2
    finally:
        listener.stop()
        sender.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def test_handler_errors_do_not_drop_the_connection(tmp_path: Path, broker: BrokerInfo) -> None:
    settings = make_settings(tmp_path, broker)
    got: list[bytes] = []

    async def flaky(msg: IncomingMessage) -> None:
        if msg.payload == b"boom":
            raise RuntimeError("handler bug")
        got.append(msg.payload)

    client = MqttClient(settings.mqtt, "flaky")
    client.subscribe("f/+", flaky)
    task = asyncio.create_task(client.run())
    try:
        await client.wait_connected(10)
        await client.publish("f/a", b"boom")
        await client.publish("f/a", b"fine")
        await eventually(lambda: got == [b"fine"])
        assert client.connections == 1
    finally:
        client.stop()
        await asyncio.wait_for(task, 10)


async def test_shared_subscription_delivers_each_request_once(tmp_path: Path, mosquitto: BrokerInfo) -> None:
    settings = make_settings(tmp_path, mosquitto)
    assert settings.mqtt.protocol == "5"
    seen: dict[str, list[bytes]] = {"w1": [], "w2": []}

    def handler(name: str):  # type: ignore[no-untyped-def]
        async def handle(msg: IncomingMessage) -> None:
            seen[name].append(msg.payload)
        return handle

    workers = [MqttClient(settings.mqtt, name) for name in seen]
    for w in workers:
        w.subscribe(topics.shared(topics.ACCESS_REQUEST_FILTER), handler(w.client_id))
    gate = MqttClient(settings.mqtt, "gate")
    tasks = [asyncio.create_task(c.run()) for c in (*workers, gate)]
    try:
        for c in (*workers, gate):
            await c.wait_connected(10)
        for i in range(40):
            await gate.publish(topics.access_request("g1"), str(i).encode())
        await eventually(lambda: len(seen["w1"]) + len(seen["w2"]) == 40)
        await asyncio.sleep(0.2)
        all_seen = sorted(int(p) for ps in seen.values() for p in ps)
        assert all_seen == list(range(40))  # each exactly once
        assert seen["w1"] and seen["w2"]  # and spread over both workers
    finally:
        for c in (*workers, gate):
            c.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


def test_mosquitto_config_is_what_we_ship(tmp_path: Path) -> None:
    proc = MosquittoProcess(workdir=tmp_path)
    text = proc.config_path.read_text()
    assert "set_tcp_nodelay true" in text and "max_packet_size" in text
    assert f"listener {proc.port} 127.0.0.1" in text
    proc.close()
