"""serve_bridge over real HTTP, the `passage bridge` account commands, and the token buckets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from accounts.store import AccountStore, Role
from cli.bridge_cli import bridge
from config.settings import Settings, StoreSettings
from schemas.documents import User
from store.connect import connect
from store.embedded import EmbeddedMongoServer
from tests.conftest import BrokerInfo
from tests.visitor_api.conftest import PASSWORD, RESIDENT, Seeded, bridge_settings, running_peer
from tests.visitor_api.stack import served_bridge
from visitor_api.ratelimit import TokenBuckets
from visitor_api.server import BridgeStartError, serve_bridge


async def test_serve_bridge_answers_over_http_and_stops_cleanly(
        tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    settings = bridge_settings(tmp_path, amqtt_broker)
    async with running_peer(settings) as peer, served_bridge(settings, seeded.accounts) as url, \
            httpx.AsyncClient(base_url=url) as http:
        token = (await http.post("/auth/token", data={"username": RESIDENT, "password": PASSWORD})).json()
        resp = await http.get("/visitors", headers={"Authorization": f"Bearer {token['access_token']}"})
        assert resp.status_code == 200 and "server" not in resp.headers
        spec = (await http.get("/openapi.json")).json()
        assert "/visitors/{pass_id}" in spec["paths"]
        assert (await http.get("/docs")).status_code == 404
    # Cancelled: the port is closed and the bridge's MQTT session is gone.
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=url) as http:
            await http.get("/openapi.json")
    assert len(peer.requests) == 1


async def test_serve_bridge_reports_a_taken_port(tmp_path: Path, amqtt_broker: BrokerInfo, seeded: Seeded) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        settings = bridge_settings(tmp_path, amqtt_broker, port=port)
        with pytest.raises(BridgeStartError):
            await asyncio.wait_for(serve_bridge(settings, seeded.accounts), 15)


@pytest.fixture
def cli_settings(embedded_mongo: EmbeddedMongoServer, tmp_path: Path) -> Iterator[Settings]:
    database = f"passage_test_{uuid.uuid4().hex[:10]}"
    client, store = connect(embedded_mongo.uri, database)
    store.put_user(User(id="U7", name="Choi", building="B", unit="0301"))
    store.put_user(User(id="U8", name="Gone", building="B", unit="0302", active=False))
    try:
        yield Settings(data_dir=tmp_path, mongo_uri=SecretStr(embedded_mongo.uri),
                       store=StoreSettings(database=database))
    finally:
        client.drop_database(database)
        client.close()


def test_cli_creates_resident_logins_and_api_keys(cli_settings: Settings) -> None:
    runner = CliRunner()
    made = runner.invoke(bridge, ["add-resident-login", "U7", "--login", "choi"], obj=cli_settings,
                         input="a long enough password\na long enough password\n")
    assert made.exit_code == 0, made.output
    weak = runner.invoke(bridge, ["add-resident-login", "U7", "--login", "choi2"], obj=cli_settings,
                         input="short\nshort\n")
    assert weak.exit_code != 0 and "at least" in weak.output
    for args in (["add-resident-login", "U8", "--login", "gone"], ["add-resident-login", "U404", "--login", "x"],
                 ["add-api-key", "app", "--user", "U8"]):
        refused = runner.invoke(bridge, args, obj=cli_settings, input="a long enough password\n" * 2)
        assert refused.exit_code != 0 and "no active user" in refused.output, args
    bad_name = runner.invoke(bridge, ["add-api-key", "bad/name", "--user", "U7"], obj=cli_settings)
    assert bad_name.exit_code != 0

    keyed = runner.invoke(bridge, ["add-api-key", "door-app", "--user", "U7"], obj=cli_settings)
    assert keyed.exit_code == 0, keyed.output
    key = keyed.stdout.strip().splitlines()[-1]
    assert key.startswith("psk_")

    client, store = connect(cli_settings.mongo_uri.get_secret_value(), cli_settings.store.database)  # type: ignore[union-attr]
    with contextlib.closing(client):
        accounts = AccountStore(store.db)
        login = accounts.authenticate("choi", "a long enough password")
        assert login is not None and login.role is Role.RESIDENT and login.user_id == "U7"
        integration = accounts.by_api_key(key)
        assert integration is not None and integration.role is Role.INTEGRATION and integration.user_id == "U7"
        assert key not in str(store.db["accounts"].find_one({"_id": "door-app"}))
        assert accounts.get("choi2") is None
    again = runner.invoke(bridge, ["add-api-key", "door-app", "--user", "U7"], obj=cli_settings)
    assert again.exit_code != 0 and "exists" in again.output


def test_token_buckets_refill_and_forget_idle_keys() -> None:
    now = [0.0]
    buckets = TokenBuckets(6, max_keys=2, clock=lambda: now[0])  # one token per 10 s, bursts of 6
    assert [buckets.acquire("a") for _ in range(6)] == [0.0] * 6
    assert buckets.acquire("a") == pytest.approx(10.0)
    now[0] = 5.0
    assert buckets.acquire("a") == pytest.approx(5.0)
    now[0] = 10.0
    assert buckets.acquire("a") == 0.0
    buckets.refund("a")
    assert buckets.acquire("a") == 0.0 and buckets.acquire("a") > 0
    buckets.acquire("b")
    buckets.acquire("c")  # past max_keys: "a", the least recently used, is forgotten (a full bucket again)
    assert len(buckets) == 2 and buckets.acquire("a") == 0.0
