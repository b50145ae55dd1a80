"""`POST /visitors` -> QR returned, over the embedded amqtt broker with the real visitor_worker.

A server process runs what `passage up` runs for this path, in one event loop: the embedded amqtt
broker, visitor_worker (store: an embedded store server, its own process) and the visitor API under
uvicorn. This process logs in as a resident and sends sequential `POST /visitors` over HTTP
(keep-alive), each a fresh pass, timing from the request to the complete 201 answer (pass, signed
payload, PNG and SVG QR code). Each is followed by one the worker refuses by policy (a gate the
resident may not open) before signing and drawing: the same trip without the QR work. Warm-up
requests are not counted.

    python -m bench.visitor_post [--rounds 300] [--warmup 20]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.card_roundtrip import HASH_KEY, percentile
from config.ports import free_port

RESIDENT, RESIDENT_USER, PASSWORD = "bench-resident", "U-BENCH", "bench password 123"


async def serve() -> None:
    """The server side (child process), configured by PASSAGE_* environment; prints READY."""
    import httpx  # noqa: F401 - fail here, not in the parent, if the stack is incomplete

    from accounts.store import AccountStore, Role
    from broker.embedded import EmbeddedBroker
    from config.settings import load_settings
    from schemas.documents import AccessGroup, Gate, User
    from store.connect import open_store
    from visitor_api.server import serve_bridge
    from visitor_worker.service import VisitorWorker

    settings = load_settings()
    broker = EmbeddedBroker("127.0.0.1", settings.mqtt.port)
    await broker.start()
    handle = await asyncio.to_thread(open_store, settings, start_embedded=False)
    accounts = AccountStore(handle.store.db)

    def seed() -> None:
        handle.store.put_gate(Gate(id="lobby", name="Lobby"))
        handle.store.put_access_group(AccessGroup(id="res", name="Residents", gate_ids=["lobby"]))
        handle.store.put_user(User(id=RESIDENT_USER, name="Bench", building="A", unit="0101", groups=["res"]))
        accounts.ensure_indexes()
        accounts.create(RESIDENT, Role.RESIDENT, password=PASSWORD, user_id=RESIDENT_USER)

    await asyncio.to_thread(seed)
    worker = VisitorWorker(settings, handle.store, client_id="bench-visitor-worker")
    ready = asyncio.Event()
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(serve_bridge(settings, accounts, ready=ready))]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await asyncio.wait_for(ready.wait(), 30)
        await worker.mqtt.wait_connected(30)
        print("READY", flush=True)
        await stop.wait()
    finally:
        worker.stop()
        tasks[1].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(handle.close)
        await broker.stop()


async def measure(url: str, rounds: int, warmup: int) -> tuple[list[float], list[float]]:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        login = await http.post("/auth/token", data={"username": RESIDENT, "password": PASSWORD})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        body = {"visitor_name": "Bench Visitor", "purpose": "benchmark", "valid_from": start.isoformat(),
                "valid_until": (start + timedelta(hours=2)).isoformat(), "max_uses": 1}
        times: list[float] = []
        refusals: list[float] = []
        for i in range(warmup + rounds):
            t0 = time.perf_counter()
            resp = await http.post("/visitors", json=body, headers=headers)
            ms = (time.perf_counter() - t0) * 1000
            if resp.status_code != 201:
                raise SystemExit(f"request {i}: {resp.status_code} {resp.text[:300]}")
            if not base64.b64decode(resp.json()["qr_png_base64"]).startswith(b"\x89PNG"):
                raise SystemExit(f"request {i}: no PNG QR code in the answer")
            # The same trip refused by policy before signing and drawing: bridge + broker + worker reads.
            t1 = time.perf_counter()
            refused = await http.post("/visitors", json={**body, "gate_ids": ["garage"]}, headers=headers)
            refused_ms = (time.perf_counter() - t1) * 1000
            if refused.status_code != 422:
                raise SystemExit(f"refusal {i}: {refused.status_code} {refused.text[:300]}")
            if i >= warmup:
                times.append(ms)
                refusals.append(refused_ms)
        return times, refusals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return
    if not Path(__file__).resolve().parent.parent.joinpath("visitor_worker", "service.py").exists():
        raise SystemExit("visitor_worker/service.py is missing: this bench needs the real worker")

    from store.embedded import EmbeddedMongoServer

    store = EmbeddedMongoServer(None)
    store.start()
    mqtt_port, http_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "PASSAGE_DATA_DIR": data_dir, "PASSAGE_MONGO_URI": store.uri,
               "PASSAGE_HASH_KEY": HASH_KEY, "PASSAGE_LOG_LEVEL": "WARNING",
               "PASSAGE_MQTT__PORT": str(mqtt_port), "PASSAGE_BRIDGE__PORT": str(http_port),
               # Every request is a new pass of one unit: lift the per-unit and per-account limits.
               "PASSAGE_VISITOR__MAX_ACTIVE_PASSES_PER_UNIT": "1000000",
               "PASSAGE_BRIDGE__RATE_LIMIT_PER_MINUTE": "1000000"}
        child = subprocess.Popen([sys.executable, "-m", "bench.visitor_post", "--serve"], env=env,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            if line.strip() != "READY":
                raise SystemExit(f"server did not start (exit {child.poll()})")
            issued, refused = asyncio.run(measure(f"http://127.0.0.1:{http_port}", args.rounds, args.warmup))
        finally:
            child.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(20)
            if child.poll() is None:
                child.kill()
            store.stop()
    print(f"POST /visitors over the embedded amqtt broker with the real visitor_worker, HTTP keep-alive, "
          f"{args.rounds} sequential requests each after {args.warmup} warm-up:")
    for label, values in (("-> 201, pass + signed QR (PNG, SVG)", sorted(issued)),
                          ("-> 422 refused by policy (no QR)  ", sorted(refused))):
        print(f"  {label}  p50 {percentile(values, 50):6.1f} ms   p99 {percentile(values, 99):6.1f} ms   "
              f"max {values[-1]:6.1f} ms")

if __name__ == "__main__":
    main()
