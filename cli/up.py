"""`passage up`: the whole platform on one machine, on embedded defaults."""

from __future__ import annotations

import asyncio
import logging

import click

from accounts.store import AccountStore, Role
from admin_worker.service import AdminWorker
from auth_worker.service import AuthWorker
from broker.embedded import EmbeddedBroker
from cli.demo_data import (
    DEMO_CARD,
    DEMO_USER,
    SIMULATED_GATE,
    UNKNOWN_CARD,
    demo_face_photo,
    seed_demo,
    stranger_photo,
)
from cli.gate_cli import describe
from cli.notify_cli import MonitorServices
from cli.sync_cli import run_gate_sync
from cli.visitor_cli import make_visitor_worker, run_visitor_worker
from cli.watch_cli import attach_printer
from config.settings import Settings
from console.server import ConsoleStartFailed, start_console
from edge_agent.agent import GateAgent
from face_engine.errors import FaceError
from face_engine.pipeline import FaceEngine
from messaging import MqttClient
from schemas.access import CardCredential, Credential, FaceCredential
from store.connect import open_store
from visitor_api.server import serve_bridge

log = logging.getLogger(__name__)


async def run_up(settings: Settings, demo_interval: float) -> None:
    """Start everything, print live decisions, stop everything on cancel/Ctrl-C."""
    # Everything on this machine talks to the embedded broker; plain MQTT stays on loopback.
    settings = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(
        update={"host": settings.broker.bind_host, "port": settings.broker.port})})
    broker = EmbeddedBroker.from_settings(settings.broker)
    await broker.start()
    handle = None
    tasks: list[asyncio.Task[None]] = []
    gate: GateAgent | None = None
    stoppers: list[MqttClient] = []
    servers: list[asyncio.Task[None]] = []
    monitoring: MonitorServices | None = None
    visitors = None
    try:
        handle = await asyncio.to_thread(open_store, settings)
        engine = await asyncio.to_thread(_face_engine, settings)
        await asyncio.to_thread(seed_demo, handle.store, handle.hasher, engine)
        worker = AuthWorker(settings, handle.store, handle.hasher)
        admin = AdminWorker(settings, handle.store, handle.hasher)
        visitors = make_visitor_worker(settings, handle.store)
        monitoring = MonitorServices(settings, handle.store)
        watcher = MqttClient(settings.mqtt, "passage-up-watch")
        attach_printer(watcher)
        gate = GateAgent(settings, SIMULATED_GATE)
        stoppers = [worker.mqtt, watcher, admin.mqtt]
        tasks = [asyncio.create_task(worker.run(), name="auth"),
                 asyncio.create_task(watcher.run(), name="watch"),
                 asyncio.create_task(gate.run(), name="gate"),
                 asyncio.create_task(admin.run(), name="admin"),
                 asyncio.create_task(run_visitor_worker(visitors), name="visitor"),
                 asyncio.create_task(monitoring.run(), name="monitor"),
                 asyncio.create_task(run_gate_sync(settings, handle.store, handle.hasher), name="gate-sync")]
        await asyncio.gather(worker.mqtt.wait_connected(30), gate.mqtt.wait_connected(30),
                             watcher.wait_connected(30), admin.mqtt.wait_connected(30),
                             monitoring.wait_connected(30))
        accounts = AccountStore(handle.store.db)
        await asyncio.to_thread(accounts.ensure_indexes)
        first = await asyncio.to_thread(accounts.ensure, "admin", Role.ADMIN)
        resident = await asyncio.to_thread(accounts.ensure, "resident", Role.RESIDENT, DEMO_USER)
        web = []
        try:
            servers.append(await start_console(settings, accounts))
            web.append(f"Admin console:  http://{settings.console.host}:{settings.console.port}/")
        except ConsoleStartFailed as exc:  # the platform runs on without it
            web.append(f"Admin console NOT started: {exc}")
        bridge_ready = asyncio.Event()
        servers.append(asyncio.create_task(serve_bridge(settings, accounts, ready=bridge_ready), name="visitor-api"))
        await asyncio.wait([asyncio.ensure_future(bridge_ready.wait()), servers[-1]], timeout=30,
                           return_when=asyncio.FIRST_COMPLETED)
        web.append(f"Visitor API:    http://{settings.bridge.host}:{settings.bridge.port}/  (OpenAPI: /openapi.json)"
                   if bridge_ready.is_set() else "Visitor API NOT started (see the log)")
        if first is not None:
            web.append(f"  console log-in:  admin / {first}   (shown once; `passage console set-password admin`)")
        if resident is not None:
            web.append(f"  resident log-in: resident / {resident}   (the demo resident {DEMO_USER}; shown once)")
        click.echo(
            f"Passage is up: broker mqtt://{settings.broker.bind_host}:{settings.broker.port}, "
            f"store {handle.uri}\n" + "\n".join(web) + "\n"
            f"Try from another terminal:  passage gate --card {DEMO_CARD}   (or any other card id)\n"
            f"                            passage gate --face {demo_face_photo()}\n"
            "                            passage admin enroll --user U2001 --name 'New Resident' "
            "--group residents-A --card MY-CARD-1 [--photo FACE.jpg]\n"
            "Ctrl-C stops everything.", err=True)
        if demo_interval > 0:
            demo = _demo_credentials(engine is not None)
            n = 0
            while True:
                await asyncio.sleep(demo_interval)
                decision = await gate.present(demo[n % len(demo)])
                log.info("simulated gate %s: %s", SIMULATED_GATE, describe(decision))
                n += 1
        else:
            await asyncio.Event().wait()
    finally:
        for server in servers:
            server.cancel()  # web servers shut down gracefully on cancel
        await asyncio.gather(*servers, return_exceptions=True)
        if gate is not None:
            await gate.stop()
        if monitoring is not None:
            monitoring.stop()
        if visitors is not None:
            visitors.stop()
        for client in stoppers:
            client.stop()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=10)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if handle is not None:
            await asyncio.to_thread(handle.close)
        await broker.stop()
        click.echo("Passage stopped.", err=True)


def _face_engine(settings: Settings) -> FaceEngine | None:
    if not settings.face.enabled:
        return None
    try:
        return FaceEngine(settings.face)
    except (FaceError, OSError, ImportError) as exc:
        log.warning("face demo off: %s", exc)
        return None


def _demo_credentials(with_faces: bool) -> list[Credential]:
    """What the simulated gate shows in turn: the resident's card, a stranger's card, and with
    face models the resident's face (mirrored, as another camera would see it) and strangers."""
    creds: list[Credential] = [CardCredential(acc_id=DEMO_CARD), CardCredential(acc_id=UNKNOWN_CARD)]
    if with_faces:
        import cv2

        portrait = cv2.imread(str(demo_face_photo()))
        if portrait is not None:
            mirrored = cv2.flip(portrait, 1)
            creds.append(FaceCredential(jpeg=cv2.imencode(".jpg", mirrored)[1].tobytes()))
        creds.append(FaceCredential(jpeg=stranger_photo().read_bytes()))
    return creds
