"""Fixtures that start real brokers (amqtt, Mosquitto) and real stores (embedded server, MongoDB)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.embedded import EmbeddedBroker
from broker.mosquitto import MosquittoProcess
from config.ports import free_port
from config.settings import AuthSettings, GateSettings, MqttSettings, Settings, StoreSettings
from store.connect import connect
from store.embedded import EmbeddedMongoServer
from store.keyed_hash import KeyedHasher
from store.repository import Store

TEST_HASH_KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


@dataclass(frozen=True)
class BrokerInfo:
    kind: str
    host: str
    port: int
    process: MosquittoProcess | None = None

    @property
    def supports_shared(self) -> bool:
        return self.kind == "mosquitto"


def _need_mosquitto() -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed: apt-get install -y mosquitto (the test script does this)")


@contextlib.asynccontextmanager
async def running_broker(kind: str) -> AsyncIterator[BrokerInfo]:
    """A real broker of `kind` ("amqtt" in this event loop, or a Mosquitto process) on a free port."""
    if kind == "mosquitto":
        _need_mosquitto()
        proc = MosquittoProcess()
        proc.start()
        try:
            yield BrokerInfo("mosquitto", proc.host, proc.port, proc)
        finally:
            proc.close()
        return
    port = free_port()
    embedded = EmbeddedBroker("127.0.0.1", port)
    await embedded.start()
    try:
        yield BrokerInfo("amqtt", "127.0.0.1", port)
    finally:
        await embedded.stop()


@pytest.fixture
async def mosquitto() -> AsyncIterator[BrokerInfo]:
    async with running_broker("mosquitto") as info:
        yield info


@pytest.fixture
async def amqtt_broker() -> AsyncIterator[BrokerInfo]:
    async with running_broker("amqtt") as info:
        yield info


@pytest.fixture(params=["amqtt", "mosquitto"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[BrokerInfo]:
    """Each test using this runs once per real broker."""
    async with running_broker(request.param) as info:
        yield info


@pytest.fixture(scope="session")
def embedded_mongo() -> Iterator[EmbeddedMongoServer]:
    server = EmbeddedMongoServer(None)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _store_uri(kind: str, embedded: pytest.FixtureRequest) -> str:
    if kind == "mongodb":
        uri = os.environ.get("PASSAGE_MONGO_URI")
        if not uri:
            pytest.skip("PASSAGE_MONGO_URI not set: no real MongoDB to test against")
        return uri
    server: EmbeddedMongoServer = embedded.getfixturevalue("embedded_mongo")
    return server.uri


@pytest.fixture(params=["embedded", "mongodb"])
def store_uri(request: pytest.FixtureRequest) -> str:
    """The URI of every store backend available: the embedded server, and MongoDB if configured."""
    return _store_uri(request.param, request)


@contextlib.contextmanager
def fresh_database(uri: str) -> Iterator[Store]:
    """A new uniquely named database at `uri`, dropped afterwards."""
    name = f"passage_test_{uuid.uuid4().hex[:10]}"
    client, st = connect(uri, name, hasher=KeyedHasher.from_secret(TEST_HASH_KEY))
    try:
        yield st
    finally:
        client.drop_database(name)
        client.close()


@pytest.fixture
def store(store_uri: str) -> Iterator[Store]:
    """A fresh database on each backend."""
    with fresh_database(store_uri) as st:
        yield st


@pytest.fixture
def embedded_store(embedded_mongo: EmbeddedMongoServer) -> Iterator[Store]:
    """A fresh database on the embedded server only (for broker end-to-end tests)."""
    with fresh_database(embedded_mongo.uri) as st:
        yield st


@pytest.fixture
def hasher() -> KeyedHasher:
    return KeyedHasher.from_secret(TEST_HASH_KEY)


def make_settings(tmp_path: Path, broker: BrokerInfo, **auth: object) -> Settings:
    """Settings pointing at `broker`, fast timeouts, a fixed hash key."""
    shared = broker.supports_shared
    return Settings(
        data_dir=tmp_path / "data",
        hash_key=TEST_HASH_KEY,  # type: ignore[arg-type]
        mqtt=MqttSettings(host=broker.host, port=broker.port, protocol="5" if shared else "3.1.1",
                          shared_subscriptions=shared, reconnect_min_s=0.05, reconnect_max_s=0.5),
        store=StoreSettings(event_flush_ms=20, cache_poll_s=5.0),
        auth=AuthSettings(**auth),  # type: ignore[arg-type]
        gate=GateSettings(request_timeout_s=2.0, door_open_s=0.2),
    )


async def eventually(predicate: object, timeout: float = 5.0, interval: float = 0.02) -> None:
    """Wait until `predicate()` is truthy; fail the test after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
def face_engine():  # type: ignore[no-untyped-def]
    """The real face engine on the shipped weights (loaded once per test session)."""
    from config.settings import FaceSettings
    from face_engine.pipeline import FaceEngine

    return FaceEngine(FaceSettings())
