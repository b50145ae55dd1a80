"""A real console (uvicorn on a free port) against a real broker and the embedded store."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from accounts.store import AccountStore, Role
from admin_worker.service import AdminWorker
from config.ports import free_port
from config.settings import ConsoleSettings, Settings
from console.server import serve_console
from store.keyed_hash import KeyedHasher
from store.repository import Store
from tests.conftest import BrokerInfo, make_settings

ADMIN = "boss"
ADMIN_PASSWORD = "correct horse battery"
SECRET = "4f1c2b9d8e7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6"


@dataclass
class RunningConsole:
    settings: Settings
    store: Store
    accounts: AccountStore
    url: str


def console_settings(tmp_path: Path, broker: BrokerInfo, **console: object) -> Settings:
    settings = make_settings(tmp_path, broker)
    options: dict[str, object] = {"port": free_port(), "session_secret": SECRET, "reply_timeout_s": 20.0,
                                  **console}
    return settings.model_copy(update={"console": ConsoleSettings.model_validate(options)})


@contextlib.asynccontextmanager
async def running_console(settings: Settings, store: Store) -> AsyncIterator[RunningConsole]:
    accounts = AccountStore(store.db)
    await asyncio.to_thread(accounts.ensure_indexes)
    if await asyncio.to_thread(accounts.get, ADMIN) is None:
        await asyncio.to_thread(accounts.create, ADMIN, Role.ADMIN, password=ADMIN_PASSWORD)
    ready = asyncio.Event()
    task = asyncio.create_task(serve_console(settings, accounts, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 15)
        yield RunningConsole(settings, store, accounts, f"http://127.0.0.1:{settings.console.port}")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


@contextlib.asynccontextmanager
async def running_admin_worker(settings: Settings, store: Store, hasher: KeyedHasher) -> AsyncIterator[AdminWorker]:
    worker = AdminWorker(settings, store, hasher, client_id="admin-worker-console-test")
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.mqtt.wait_connected(), 60)
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 15)


@pytest.fixture
async def console(tmp_path: Path, amqtt_broker: BrokerInfo, embedded_store: Store) -> AsyncIterator[RunningConsole]:
    """A console with one admin account and no admin worker behind it."""
    async with running_console(console_settings(tmp_path, amqtt_broker), embedded_store) as c:
        yield c


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "no CSRF token in the page"
    return match.group(1)


async def log_in(http: httpx.AsyncClient, name: str = ADMIN, password: str = ADMIN_PASSWORD) -> httpx.Response:
    """Fetch the log-in form (its CSRF cookie and token) and post the credentials."""
    form = await http.get("/login")
    assert form.status_code == 200
    return await http.post("/login", data={"username": name, "password": password,
                                           "csrf_token": csrf_of(form.text), "next": "/residents"})


@contextlib.asynccontextmanager
async def browser_like(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=30) as http:
        yield http
