"""`passage up`: the whole platform on one machine, on embedded defaults."""

from __future__ import annotations

import asyncio
import logging

import click

from admin_worker.service import AdminWorker
from auth_worker.service import AuthWorker
from broker.embedded import EmbeddedBroker
from cli.demo_data import DEMO_CARD, DEMO_GATE, UNKNOWN_CARD, demo_face_photo, seed_demo, stranger_photo
from cli.gate_cli import describe
from cli.watch_cli import attach_printer
from config.settings import Settings
from edge_agent.agent import GateAgent
from face_engine.errors import FaceError
from face_engine.pipeline import FaceEngine
from messaging import MqttClient
from schemas.access import CardCredential, Credential, FaceCredential
from store.connect import open_store

log = logging.getLogger(__name__)


async def run_up(settings: Settings, demo_interval: float) -> None:
    """Start everything, print live decisions, stop everything on cancel/Ctrl-C."""
    settings = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(
        update={"host": settings.broker.bind_host, "port": settings.broker.port})})
    broker = EmbeddedBroker(settings.broker.bind_host, settings.broker.port)
    await broker.start()
    handle = None
    tasks: list[asyncio.Task[None]] = []
    gate: GateAgent | None = None
    stoppers: list[MqttClient] = []
    try:
        handle = await asyncio.to_thread(open_store, settings)
        engine = await asyncio.to_thread(_face_engine, settings)
        await asyncio.to_thread(seed_demo, handle.store, handle.hasher, engine)
        worker = AuthWorker(settings, handle.store, handle.hasher)
        admin = AdminWorker(settings, handle.store, handle.hasher)
        watcher = MqttClient(settings.mqtt, "passage-up-watch")
        attach_printer(watcher)
        gate = GateAgent(settings, DEMO_GATE)
        stoppers = [worker.mqtt, watcher, admin.mqtt]
        tasks = [asyncio.create_task(worker.run(), name="auth"),
                 asyncio.create_task(watcher.run(), name="watch"),
                 asyncio.create_task(gate.run(), name="gate"),
                 asyncio.create_task(admin.run(), name="admin")]
        await asyncio.gather(worker.mqtt.wait_connected(30), gate.mqtt.wait_connected(30),
                             watcher.wait_connected(30), admin.mqtt.wait_connected(30))
        click.echo(
            f"Passage is up: broker mqtt://{settings.broker.bind_host}:{settings.broker.port}, "
            f"store {handle.uri}\n"
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
                log.info("simulated gate %s: %s", DEMO_GATE, describe(decision))
                n += 1
        else:
            await asyncio.Event().wait()
    finally:
        if gate is not None:
            await gate.stop()
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
