"""Failover: requests lost when one of two auth workers is SIGKILLed under 50-gate load (target 0).

Mosquitto (MQTT 5, `$share/auth/...`), the embedded store, two `passage auth` processes, 50
GateAgents in this process presenting cards in rounds; one worker is killed in the middle of a
round. Prints answered / lost / retried and the retried requests' latency.

    python -m bench.failover [--gates 50] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.card_roundtrip import HASH_KEY, child_env, percentile
from broker.mosquitto import MosquittoProcess
from config.settings import GateSettings, MqttSettings, Settings
from edge_agent.agent import GateAgent, GateDecision
from schemas.access import CardCredential
from schemas.codes import CredentialType
from schemas.documents import AccessGroup, Gate, StoredCredential, User
from store.connect import connect
from store.embedded import EmbeddedMongoServer
from store.keyed_hash import KeyedHasher

REPO = Path(__file__).resolve().parent.parent


def seed(uri: str, gates: int) -> None:
    hasher = KeyedHasher.from_secret(HASH_KEY)
    client, store = connect(uri, "passage", hasher=hasher)
    try:
        ids = [f"g{i:03d}" for i in range(gates)]
        for gid in ids:
            store.put_gate(Gate(id=gid, name=gid))
        store.put_access_group(AccessGroup(id="all", name="All", gate_ids=ids))
        for i in range(gates):
            store.put_user(User(id=f"U{i:03d}", name=f"Resident {i}", groups=["all"]))
            store.add_credential(StoredCredential(
                id=f"c{i:03d}", kind=CredentialType.CARD, user_id=f"U{i:03d}", key_id=hasher.key_id,
                lookup_key=hasher.lookup_key(CredentialType.CARD, f"CARD-{i:03d}")))
    finally:
        client.close()


def decided(log: Path) -> int:
    return len(re.findall(r"request=\S+ (?:GRANTED|DENIED)", log.read_text(errors="replace")))


async def drill(port: int, gates: int, rounds: int, logs: list[Path], victim: subprocess.Popen[bytes],
                workdir: Path) -> tuple[list[GateDecision], float]:
    settings = Settings(data_dir=workdir / "gates", hash_key=HASH_KEY,
                        mqtt=MqttSettings(port=port, protocol="5", reconnect_min_s=0.05),
                        gate=GateSettings(request_timeout_s=3.0, door_open_s=0.01, online_attempts=2))
    agents = [GateAgent(settings, f"g{i:03d}") for i in range(gates)]
    tasks = [asyncio.create_task(a.run()) for a in agents]
    decisions: list[GateDecision] = []
    killed_at = 0.0
    try:
        await asyncio.wait_for(asyncio.gather(*(a.mqtt.wait_connected() for a in agents)), 30)
        for r in range(rounds):
            one = asyncio.gather(*(a.present(CardCredential(acc_id=f"CARD-{i:03d}")) for i, a in enumerate(agents)))
            if r == rounds // 2:
                before = decided(logs[0])
                while decided(logs[0]) == before:
                    await asyncio.sleep(0.001)
                os.kill(victim.pid, signal.SIGKILL)
                killed_at = time.monotonic()
            decisions += list(await one)
    finally:
        for a in agents:
            await a.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    return decisions, killed_at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="passage-failover-") as tmp:
        workdir = Path(tmp)
        mongo = EmbeddedMongoServer(None)
        mosq = MosquittoProcess()
        mongo.start()
        mosq.start()
        workers: list[subprocess.Popen[bytes]] = []
        try:
            seed(mongo.uri, args.gates)
            env = child_env(PASSAGE_MQTT__PORT=str(mosq.port), PASSAGE_MQTT__PROTOCOL="5",
                            PASSAGE_MQTT__SHARED_SUBSCRIPTIONS="true", PASSAGE_MONGO_URI=mongo.uri,
                            PASSAGE_HASH_KEY=HASH_KEY, PASSAGE_FACE__ENABLED="false", PASSAGE_LOG_LEVEL="INFO",
                            PASSAGE_DATA_DIR=str(workdir / "w"))
            logs = [workdir / f"auth-{n}.log" for n in range(2)]
            for log in logs:
                with open(log, "wb") as fh:
                    workers.append(subprocess.Popen([sys.executable, "-m", "cli.main", "auth"], cwd=REPO, env=env,
                                                    stdout=fh, stderr=subprocess.STDOUT))
            deadline = time.monotonic() + 60
            while not all("connected to" in log.read_text(errors="replace") for log in logs):
                if time.monotonic() > deadline:
                    raise RuntimeError("auth workers did not connect")
                time.sleep(0.1)
            decisions, _ = asyncio.run(drill(mosq.port, args.gates, args.rounds, logs, workers[0], workdir))
            client, store = connect(mongo.uri, "passage")
            asked_ids = {d.request_id for d in decisions}
            # The survivor adopts the victim's journal within store.journal_adopt_s (1 s) and
            # flushes every 200 ms.
            deadline = time.monotonic() + 10
            while True:
                stored = {str(x) for x in store.access_events.distinct("request_id")}
                if stored >= asked_ids or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            rows = store.count_access_events()
            client.close()
            adopted = re.findall(r"adopted (\d+) access events", logs[1].read_text(errors="replace"))
        finally:
            for w in workers:
                if w.poll() is None:
                    w.terminate()
                    w.wait(15)
            mosq.close()
            mongo.stop()
    asked = [d.request_id for d in decisions]
    unanswered = [d for d in decisions if d.offline or d.reason == "TIMEOUT"]
    retried = sorted(d.round_trip_ms for d in decisions if d.round_trip_ms > 1400 and not d.offline)
    normal = sorted(d.round_trip_ms for d in decisions if d.round_trip_ms <= 1400)
    print(f"failover drill: {args.gates} gates x {args.rounds} rounds = {len(asked)} requests over Mosquitto, "
          f"2 auth workers on $share/auth, one SIGKILLed mid-round {args.rounds // 2}")
    print(f"  requests lost (no online answer):      {len(unanswered)}")
    print(f"  granted:                               {sum(d.granted for d in decisions)}")
    print(f"  answered after a retry (same id):      {len(retried)}"
          + (f", latency p50 {percentile(retried, 50):.0f} ms, max {retried[-1]:.0f} ms" if retried else ""))
    print(f"  other requests: p50 {percentile(normal, 50):.2f} ms, p99 {percentile(normal, 99):.2f} ms")
    missing = set(asked) - stored
    print(f"  access events stored: {len(stored)} distinct of {len(set(asked))} ({rows} rows), "
          f"{len(missing)} missing; the survivor adopted {sum(int(n) for n in adopted)} journaled events "
          "from the killed worker")
    return 0 if not unanswered and not missing and rows == len(stored) else 1


if __name__ == "__main__":
    sys.exit(main())
