"""Enrollment command round trips over Mosquitto, with the face duplicate check at scale.

An admin worker runs as its own process (`passage admin serve`) against the embedded store,
which holds N synthetic face templates of other users (default 100,000), so every face
enrollment's 1:N duplicate scan covers them all. The bench sends commands as an admin console
would and prints p50/p99 per command, admin console -> worker -> reply:

    python -m bench.enroll_roundtrip [--decoys 100000] [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.card_roundtrip import HASH_KEY, Children, broker_running, child_env, percentile
from cli.admin_cli import action
from config.settings import MqttSettings
from face_engine.models import default_models_dir
from messaging import IncomingMessage, MqttClient
from schemas import topics
from schemas.admin import AdminCommand, AdminReply
from schemas.base import new_id
from schemas.documents import FaceTemplate
from store.connect import connect
from store.embedded import EmbeddedMongoServer
from store.keyed_hash import KeyedHasher

MODEL_ID = "w600k_mbf"


def seed_decoys(uri: str, n: int) -> float:
    """N random normalised templates of N other users (they never match a real face at 0.48)."""
    _, store = connect(uri, "passage", hasher=KeyedHasher.from_secret(HASH_KEY))
    rng = np.random.default_rng(1)
    t0 = time.monotonic()
    batch = 5000
    for start in range(0, n, batch):
        vecs = rng.standard_normal((min(batch, n - start), 512)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        store.add_face_templates([
            FaceTemplate(id=f"decoy-{start + i}", user_id=f"D{start + i}", model_id=MODEL_ID,
                         embedding=v.astype("<f4").tobytes(), face_px=100, det_score=0.9)
            for i, v in enumerate(vecs)])
    return time.monotonic() - t0


async def run(port: int, rounds: int) -> dict[str, list[float]]:
    import cv2

    portrait = (default_models_dir() / "yaoming.jpg").read_bytes()
    img = cv2.imread(str(default_models_dir() / "yaoming.jpg"))
    mirrored = cv2.imencode(".jpg", cv2.flip(img, 1))[1].tobytes()
    futures: dict[str, asyncio.Future[AdminReply]] = {}

    async def on_reply(msg: IncomingMessage) -> None:
        reply = AdminReply.model_validate_json(msg.payload)
        f = futures.get(reply.command_id)
        if f is not None and not f.done():
            f.set_result(reply)

    client = MqttClient(MqttSettings(port=port), "bench-admin")
    client.subscribe(topics.admin_reply("bench"), on_reply)
    task = asyncio.create_task(client.run())
    times: dict[str, list[float]] = {}

    async def send(label: str, data: dict[str, object], expect_ok: bool = True) -> None:
        cmd = AdminCommand(command_id=new_id(), admin_id="bench", command=action(data))
        fut: asyncio.Future[AdminReply] = asyncio.get_running_loop().create_future()
        futures[cmd.command_id] = fut
        t0 = time.perf_counter()
        await client.publish(topics.ADMIN_COMMAND, cmd)
        reply = await asyncio.wait_for(fut, 60)
        ms = (time.perf_counter() - t0) * 1000
        if reply.ok != expect_ok:
            raise SystemExit(f"{label}: unexpected reply {reply}")
        times.setdefault(label, []).append(ms)

    async def wait_ready() -> float:
        """Probe until the worker answers (it loads every template before subscribing)."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 300:
            cmd = AdminCommand(command_id=new_id(), admin_id="bench",
                               command=action({"action": "define_gate", "gate_id": "bench-gate", "name": "Bench"}))
            fut: asyncio.Future[AdminReply] = asyncio.get_running_loop().create_future()
            futures[cmd.command_id] = fut
            await client.publish(topics.ADMIN_COMMAND, cmd)
            try:
                await asyncio.wait_for(fut, 2)
                return time.perf_counter() - t0
            except TimeoutError:
                continue
        raise SystemExit("admin worker never answered")

    try:
        await client.wait_connected(10)
        ready_s = await wait_ready()
        print(f"admin worker answered {ready_s:.1f}s after the bench connected (model + index load)", file=sys.stderr)
        import base64

        b64 = base64.b64encode
        for i in range(rounds + 2):  # the first two rounds warm up
            u, v = f"U{i}", f"V{i}"
            await send("create_user", {"action": "create_user", "user_id": u, "name": "Bench Resident"})
            await send("add_card", {"action": "add_card", "user_id": u, "acc_id": f"BENCH-{i}"})
            await send("add_face (photo -> reply, 1:N duplicate scan, stored)",
                       {"action": "add_face", "user_id": u, "photo": b64(portrait).decode()})
            await send("create_user", {"action": "create_user", "user_id": v, "name": "Other"})
            await send("add_card duplicate (refused)", {"action": "add_card", "user_id": v, "acc_id": f"BENCH-{i}"},
                       expect_ok=False)
            await send("add_face duplicate (refused)",
                       {"action": "add_face", "user_id": v, "photo": b64(mirrored).decode()}, expect_ok=False)
            await send("delete_user", {"action": "delete_user", "user_id": u})
            await send("delete_user", {"action": "delete_user", "user_id": v})
            if i < 2:
                times.clear()
        return times
    finally:
        client.stop()
        await asyncio.wait_for(task, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decoys", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="passage-enroll-bench-") as tmp:
        workdir = Path(tmp)
        children = Children(workdir)
        mongo = EmbeddedMongoServer(None)
        try:
            mongo.start()
            took = seed_decoys(mongo.uri, args.decoys)
            print(f"seeded {args.decoys:,} decoy face templates in {took:.1f}s", file=sys.stderr)
            with broker_running("mosquitto", children) as (port, _pid):
                env = child_env(PASSAGE_MQTT__HOST="127.0.0.1", PASSAGE_MQTT__PORT=str(port),
                                PASSAGE_MONGO_URI=mongo.uri, PASSAGE_HASH_KEY=HASH_KEY, PASSAGE_LOG_LEVEL="WARNING",
                                PASSAGE_DATA_DIR=str(workdir / "data"))
                t0 = time.monotonic()
                children.spawn("admin", [sys.executable, "-m", "cli.main", "admin", "serve"], env, pipes=False)
                times = asyncio.run(run(port, args.rounds))
                print(f"\nEnrollment round trips over Mosquitto, admin console -> `passage admin serve` -> reply; "
                      f"{args.decoys:,} other users' face templates in the index; {args.rounds} rounds after 2 "
                      f"of warm-up; whole run {time.monotonic() - t0:.0f}s after the worker started")
                print(f"{'command':<58} {'n':>4} {'p50 ms':>8} {'p99 ms':>8}")
                for label, values in times.items():
                    values.sort()
                    print(f"{label:<58} {len(values):>4} {percentile(values, 50):8.1f} {percentile(values, 99):8.1f}")
        finally:
            children.close()
            mongo.stop()


if __name__ == "__main__":
    main()
