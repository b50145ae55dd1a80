"""Card decision round trip, gate -> auth worker -> gate, against the bare broker round trip.

For each broker (Mosquitto 2 via MosquittoProcess, amqtt via `passage broker` in its own process)
it measures, on loopback:

1. bare round trip: an echo responder (bench/echo_responder.py, its own process) republishes each
   `access/request/{gate}` payload to `access/response/{gate}`; one gate sends sequential requests;
2. card decision round trip: `passage auth` in its own process against an embedded store seeded
   with 50 gates, one group holding them all and 1000 carded users; sequential requests sent
   (a) with the same raw MqttClient method as the echo (apples to apples), and
   (b) through the real GateAgent.present_card (the full gate path);
3. throughput: 50 gates (50 MQTT connections, each its own gate id, `--inflight` requests
   outstanding per gate) for `--duration` seconds, against the echo and against the worker, with
   the gates driven from 1 and from 2 load processes (`--load-procs`); then an open-loop run at a
   fixed total rate (`--paced-rate`) for latency under a steady, unsaturated load. For each run it
   reports the CPU every process used in the window, timeouts and late answers.

Latency is taken from just before the request is published (QoS 1) to the moment the gate's
response handler runs; GateAgent rows use GateDecision.round_trip_ms. Every request carries a
fresh request_id and timestamp, and a valid card: every decision must be GRANTED.

Run from the repository root:  python -m bench.card_roundtrip [--broker mosquitto|amqtt|both]
Try `--worker-env PASSAGE_STORE__EVENT_FLUSH_MS=...` to see what access-event writes cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from messaging import IncomingMessage, MqttClient

REPO = Path(__file__).resolve().parent.parent
HASH_KEY = "be9c4a1f0d6e2b7358a1c0ffee0ddba11be9c4a1f0d6e2b7358a1c0ffee0ddba"
GROUP_ID = "bench-all"
STARTUP_TIMEOUT_S = 30.0

Result = dict[str, Any]


def gate_name(i: int) -> str:
    return f"bench-gate-{i:03d}"


def card_name(i: int) -> str:
    return f"BENCH-CARD-{i:05d}"


# --------------------------------------------------------------------------------------------
# Requests and the raw gate client (used in this process and in the load processes)
# --------------------------------------------------------------------------------------------

class RequestFactory:
    """AccessRequest payloads, byte-identical to `encode(AccessRequest(...))` but built from a
    template so the load generator spends its CPU on MQTT, not on pydantic."""

    _TEMPLATE = ('{{"v":1,"ts":"{ts}","msg_id":"{mid}","request_id":"{rid}","gate_id":"{gate}",'
                 '"credential":{{"type":"card","acc_id":"{card}"}}}}')

    def __init__(self, cards: Sequence[str], tag: str) -> None:
        self._cards = itertools.cycle(cards)
        self._tag = tag
        self._seq = itertools.count()

    def make(self, gate: str) -> tuple[str, bytes]:
        n = next(self._seq)
        rid = f"{self._tag}r{n:x}"
        ts = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        payload = self._TEMPLATE.format(ts=ts, mid=f"{self._tag}m{n:x}", rid=rid, gate=gate,
                                        card=next(self._cards))
        return rid, payload.encode()

    @staticmethod
    def check() -> None:
        """The template must stay a valid AccessRequest (the worker would deny it otherwise)."""
        from schemas.access import AccessRequest
        from schemas.codec import decode

        _, payload = RequestFactory([card_name(0)], "chk").make(gate_name(0))
        req = decode(AccessRequest, payload)
        assert req.gate_id == gate_name(0) and req.request_id == "chkr0", req


@dataclass
class Outcome:
    latency_ms: float | None  # None: no answer within the timeout
    granted: bool | None  # None: an echo (no decision in it)
    done_at: float  # perf_counter when answered or given up


class RawGate:
    """One gate as a bare MqttClient: publish the request (QoS 1), wait for the response whose
    request_id matches. The same code measures the echo and the worker."""

    def __init__(self, host: str, port: int, gate: str, factory: RequestFactory, timeout_s: float,
                 client_tag: str) -> None:
        from config.settings import MqttSettings
        from messaging import MqttClient

        self.gate = gate
        self._factory = factory
        self._timeout = timeout_s
        self._topic = f"access/request/{gate}"
        self._pending: dict[str, asyncio.Future[tuple[float, Result]]] = {}
        self.unexpected = 0  # late (after timeout), duplicate or foreign responses
        self.client = MqttClient(MqttSettings(host=host, port=port), f"bench-{client_tag}-{gate}")
        self.client.subscribe(f"access/response/{gate}", self._on_response)

    async def _on_response(self, msg: IncomingMessage) -> None:
        now = time.perf_counter()
        data = json.loads(msg.payload)
        future = self._pending.pop(data.get("request_id", ""), None)
        if future is None or future.done():
            self.unexpected += 1
            return
        future.set_result((now, data))

    async def request(self) -> Outcome:
        from messaging import NotConnected

        rid, payload = self._factory.make(self.gate)
        future: asyncio.Future[tuple[float, Result]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        started = time.perf_counter()
        try:
            await self.client.publish(self._topic, payload, qos=1, timeout=self._timeout)
            remaining = max(0.0, self._timeout - (time.perf_counter() - started))
            answered, data = await asyncio.wait_for(future, remaining)
        except (TimeoutError, NotConnected):
            self._pending.pop(rid, None)
            return Outcome(None, None, time.perf_counter())
        granted = data.get("granted")
        return Outcome((answered - started) * 1000, granted if isinstance(granted, bool) else None, answered)


@contextlib.asynccontextmanager
async def running(clients: Sequence[MqttClient], timeout_s: float = STARTUP_TIMEOUT_S) -> AsyncIterator[None]:
    """Run MqttClients (or GateAgents' clients) and stop them again, bounded in time."""
    tasks = [asyncio.create_task(c.run()) for c in clients]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.wait_connected() for c in clients)), timeout_s)
        yield
    finally:
        for c in clients:
            c.stop()
        _, late = await asyncio.wait(tasks, timeout=10) if tasks else (set(), set())
        for t in late:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --------------------------------------------------------------------------------------------
# Statistics and CPU accounting
# --------------------------------------------------------------------------------------------

def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (nan when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of `pid` so far (Linux /proc), None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def children_matching(word: str) -> list[int]:
    """Pids of this process's direct children whose command line contains `word`."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me and word in cmd:
            found.append(int(entry.name))
    return found


class CpuMeter:
    """CPU used by named processes between start() and stop(), as % of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._start: dict[str, float | None] = {}
        self._t0 = 0.0
        self.percent: dict[str, float] = {}

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._start = {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def stop(self) -> None:
        wall = max(1e-9, time.monotonic() - self._t0)
        for name, pid in self._pids.items():
            before, after = self._start.get(name), cpu_seconds(pid)
            if before is not None and after is not None:
                self.percent[name] = 100 * (after - before) / wall


# --------------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------------

class LineReader:
    """Read whole lines from a child's stdout pipe with a deadline (select + os.read)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._fd = stream.fileno()
        self._buf = b""

    def readline(self, deadline: float) -> str | None:
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self._fd, 1 << 16)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode(errors="replace")

    def expect(self, prefix: str, deadline: float) -> str | None:
        """The first line starting with `prefix` (other lines skipped), None on timeout/EOF."""
        while True:
            line = self.readline(deadline)
            if line is None or line.startswith(prefix):
                return line


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    reader: LineReader | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def send(self, line: str) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.write(line.encode() + b"\n")
                self.proc.stdin.flush()

    def stop(self, timeout: float = 8.0) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Children:
    """Every process the bench starts, stopped in reverse order by close()."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._children: list[Child] = []
        self._counter = itertools.count()

    def spawn(self, name: str, cmd: list[str], env: dict[str, str], *, pipes: bool) -> Child:
        log_path = self.workdir / f"{name}-{next(self._counter)}.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stderr=log_file,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log_file)
        child = Child(name, proc, log_path, LineReader(proc.stdout) if proc.stdout else None)
        self._children.append(child)
        return child

    def stop(self, child: Child) -> None:
        child.stop()
        with contextlib.suppress(ValueError):
            self._children.remove(child)

    def close(self) -> None:
        while self._children:
            self._children.pop().stop()


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


def wait_port(port: int, child: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited at start:\n{child.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{child.name} did not listen on {port} within {timeout}s:\n{child.tail()}")


# --------------------------------------------------------------------------------------------
# Store seeding
# --------------------------------------------------------------------------------------------

def seed(uri: str, gates: int, users: int) -> float:
    """50 gates, one group over all of them, `users` users each with one card. Returns seconds."""
    from schemas.codes import CredentialType
    from schemas.documents import AccessGroup, Gate, StoredCredential, User
    from store.connect import connect
    from store.keyed_hash import KeyedHasher

    t0 = time.monotonic()
    hasher = KeyedHasher.from_secret(HASH_KEY)
    client, store = connect(uri, "passage")
    try:
        gate_ids = [gate_name(i) for i in range(gates)]
        for gid in gate_ids:
            store.put_gate(Gate(id=gid, name=f"Bench gate {gid}", building="B"))
        store.put_access_group(AccessGroup(id=GROUP_ID, name="Everyone, every gate", gate_ids=gate_ids))
        for i in range(users):
            uid = f"BU{i:05d}"
            store.put_user(User(id=uid, name=f"Bench user {i}", building="B", unit=f"{i:04d}",
                                groups=[GROUP_ID]))
            store.add_credential(StoredCredential(
                id=f"card-{uid}", kind=CredentialType.CARD, user_id=uid,
                lookup_key=hasher.lookup_key(CredentialType.CARD, card_name(i)), key_id=hasher.key_id))
    finally:
        client.close()
    return time.monotonic() - t0


def count_events(uri: str) -> int:
    from store.connect import connect

    client, store = connect(uri, "passage")
    try:
        return store.count_access_events()
    finally:
        client.close()


# --------------------------------------------------------------------------------------------
# Measurements in this process: sequential round trips
# --------------------------------------------------------------------------------------------

@dataclass
class Tally:
    """What one measurement saw: latencies of answered requests, and the counts around them."""

    lat: list[float] = field(default_factory=list)
    timeouts: int = 0
    granted: int = 0
    denied: int = 0
    answered_all: int = 0  # including warm-up and late answers: what the worker must have recorded

    def add(self, out: Outcome, measured: bool = True) -> None:
        if out.latency_ms is not None:
            self.answered_all += 1
        if not measured:
            return
        if out.latency_ms is None:
            self.timeouts += 1
            return
        self.lat.append(out.latency_ms)
        self.granted += out.granted is True
        self.denied += out.granted is False


@dataclass
class Row:
    broker: str
    kind: str  # bare_seq, decision_seq_raw, decision_seq_agent, {echo,decision}_{load,paced}
    what: str
    n: int
    p50: float
    p99: float
    rate: float | None = None
    timeouts: int = 0
    notes: str = ""
    granted: int = 0
    denied: int = 0
    answered_all: int = 0


def latency_row(broker: str, kind: str, what: str, t: Tally, notes: str = "", rate: float | None = None) -> Row:
    lat = sorted(t.lat)
    return Row(broker, kind, what, len(lat), percentile(lat, 50), percentile(lat, 99), rate, t.timeouts, notes,
               t.granted, t.denied, t.answered_all)


async def sequential_raw(port: int, cards: list[str], warmup: int, n: int, timeout_s: float, tag: str) -> Tally:
    """`n` one-at-a-time requests from one gate (after `warmup` unmeasured ones)."""
    gate = RawGate("127.0.0.1", port, gate_name(0), RequestFactory(cards, tag), timeout_s, tag)
    tally = Tally()
    async with running([gate.client]):
        for i in range(warmup + n):
            tally.add(await gate.request(), measured=i >= warmup)
    return tally


async def sequential_agent(port: int, cards: list[str], warmup: int, n: int, timeout_s: float,
                           workdir: Path) -> Tally:
    """The same through the real GateAgent.present_card (pydantic request, decoded response)."""
    from config.settings import GateSettings, MqttSettings, Settings
    from edge_agent.agent import GateAgent
    from edge_agent.relay import LogRelay

    gid = gate_name(1)
    settings = Settings(data_dir=workdir, mqtt=MqttSettings(host="127.0.0.1", port=port),
                        gate=GateSettings(gate_id=gid, request_timeout_s=timeout_s, door_open_s=0.5))
    agent = GateAgent(settings, gid, relay=LogRelay(gid))
    tally = Tally()
    card_iter = itertools.cycle(cards)
    tasks = [asyncio.create_task(agent.run())]
    try:
        await agent.mqtt.wait_connected(STARTUP_TIMEOUT_S)
        for i in range(warmup + n):
            decision = await agent.present_card(next(card_iter))
            answered = decision.response is not None
            tally.add(Outcome(decision.round_trip_ms if answered else None, decision.granted if answered else None,
                              0.0), measured=i >= warmup)
    finally:
        await agent.stop()
        _, late = await asyncio.wait(tasks, timeout=10)
        for t in late:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return tally


async def probe_worker(port: int, card: str, timeout_s: float, worker: Child) -> float:
    """Send requests until one comes back GRANTED; returns the seconds it took."""
    t0 = time.monotonic()
    gate = RawGate("127.0.0.1", port, gate_name(0), RequestFactory([card], f"probe{os.getpid()}"), 0.5, "probe")
    async with running([gate.client]):
        while time.monotonic() - t0 < timeout_s:
            if not worker.alive():
                raise RuntimeError(f"auth worker exited:\n{worker.tail()}")
            out = await gate.request()
            if out.granted:
                return time.monotonic() - t0
            if out.latency_ms is not None:
                raise RuntimeError(f"auth worker answered the probe with a denial: seed or hash key wrong?\n"
                                   f"{worker.tail()}")
            await asyncio.sleep(0.1)
    raise RuntimeError(f"auth worker gave no GRANTED answer within {timeout_s}s:\n{worker.tail()}")


# --------------------------------------------------------------------------------------------
# The load process: many gates, fixed requests in flight, bounded time
# --------------------------------------------------------------------------------------------

def _stdin_lines() -> tuple[asyncio.Queue[str | None], threading.Thread]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            for line in sys.stdin:
                loop.call_soon_threadsafe(queue.put_nowait, line.strip())
            loop.call_soon_threadsafe(queue.put_nowait, None)

    thread = threading.Thread(target=pump, name="stdin", daemon=True)
    thread.start()
    return queue, thread


async def load_role(args: argparse.Namespace) -> Result:
    """Connect the gates, print READY, wait for GO, run warm-up + duration, return the tally."""
    gates_ids = [g for g in args.gate_ids.split(",") if g]
    cards = [card_name(i) for i in range(args.users)]
    factory = RequestFactory(cards, f"L{os.getpid():x}")
    gates = [RawGate("127.0.0.1", args.port, g, factory, args.timeout, f"load{os.getpid()}") for g in gates_ids]
    lines, _ = _stdin_lines()
    tally = Tally()
    in_window = 0

    async with running([g.client for g in gates]):
        print("READY", flush=True)
        go = await asyncio.wait_for(lines.get(), STARTUP_TIMEOUT_S * 2)
        if go != "GO":
            return {"error": f"expected GO, got {go!r}"}
        cpu0, wall0 = time.process_time(), time.perf_counter()
        measure_from = wall0 + args.load_warmup
        measure_to = measure_from + args.duration

        def record(started: float, out: Outcome) -> None:
            nonlocal in_window
            measured = started >= measure_from  # else warm-up
            tally.add(out, measured)
            in_window += measured and out.latency_ms is not None and out.done_at <= measure_to

        async def closed_loop(gate: RawGate) -> None:
            """Keep one request outstanding: the next goes out when the last is answered."""
            while time.perf_counter() < measure_to:
                started = time.perf_counter()
                record(started, await gate.request())

        async def one(gate: RawGate) -> None:
            started = time.perf_counter()
            record(started, await gate.request())

        async def open_loop(gate: RawGate, interval: float, offset: float) -> None:
            """Send every `interval` seconds whether or not earlier requests were answered."""
            running_now: set[asyncio.Task[None]] = set()
            due = wall0 + offset
            while due < measure_to:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                task = asyncio.create_task(one(gate))
                running_now.add(task)
                task.add_done_callback(running_now.discard)
                due += interval
            if running_now:
                await asyncio.gather(*running_now)

        if args.pace > 0:
            interval = len(gates) / args.pace
            loops = [open_loop(g, interval, interval * i / len(gates)) for i, g in enumerate(gates)]
        else:
            loops = [closed_loop(g) for g in gates for _ in range(args.inflight)]
        bound = args.load_warmup + args.duration + args.timeout + 10
        await asyncio.wait_for(asyncio.gather(*loops), bound)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        # Responses that straggle in after their gate gave up are counted as unexpected.
        await asyncio.sleep(min(0.5, args.timeout))
    return {"lat_ms": [round(x, 4) for x in tally.lat], "timeouts": tally.timeouts, "granted": tally.granted,
            "denied": tally.denied, "answered_all": tally.answered_all, "in_window": in_window, "cpu_s": cpu,
            "wall_s": wall, "unexpected": sum(g.unexpected for g in gates), "gates": len(gates)}


def run_load_child(args: argparse.Namespace) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = asyncio.run(load_role(args))
    print("RESULT " + json.dumps(result), flush=True)


@dataclass
class LoadResult:
    row: Row
    cpu: dict[str, float] = field(default_factory=dict)


def throughput(children: Children, broker: str, target: str, port: int, args: argparse.Namespace,
               procs: int, meter_pids: dict[str, int], pace: float = 0.0) -> LoadResult:
    """Run `procs` load processes over `args.gates` gates against whatever answers on `port`:
    closed loop (`args.inflight` outstanding per gate) or, with `pace` > 0, open loop at `pace`
    requests/s in total."""
    gate_ids = [gate_name(i) for i in range(args.gates)]
    loaders: list[Child] = []
    try:
        for k in range(procs):
            share = gate_ids[k::procs]
            cmd = [sys.executable, "-m", "bench.card_roundtrip", "--role", "load", "--port", str(port),
                   "--gate-ids", ",".join(share), "--inflight", str(args.inflight), "--duration",
                   str(args.duration), "--load-warmup", str(args.load_warmup), "--timeout", str(args.timeout),
                   "--users", str(args.users), "--pace", str(pace * len(share) / len(gate_ids))]
            loaders.append(children.spawn(f"load-{broker}-{target}-{k}", cmd, child_env(), pipes=True))
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        for ld in loaders:
            assert ld.reader is not None
            if ld.reader.expect("READY", deadline) is None:
                raise RuntimeError(f"{ld.name} did not connect its gates:\n{ld.tail()}")
        meter = CpuMeter({**meter_pids, **{f"load{k}": ld.pid for k, ld in enumerate(loaders)}})
        for ld in loaders:
            ld.send("GO")
        time.sleep(args.load_warmup)
        meter.start()
        time.sleep(args.duration)
        meter.stop()
        deadline = time.monotonic() + args.timeout + 30
        results: list[Result] = []
        for ld in loaders:
            assert ld.reader is not None
            line = ld.reader.expect("RESULT ", deadline)
            if line is None:
                raise RuntimeError(f"{ld.name} gave no result:\n{ld.tail()}")
            results.append(json.loads(line.removeprefix("RESULT ")))
    finally:
        for ld in loaders:
            children.stop(ld)
    for r in results:
        if "error" in r:
            raise RuntimeError(f"load process failed: {r['error']}")
    total = {k: sum(int(r[k]) for r in results) for k in ("in_window", "timeouts", "unexpected", "granted",
                                                           "denied", "answered_all")}
    tally = Tally([x for r in results for x in r["lat_ms"]], total["timeouts"], total["granted"], total["denied"],
                  total["answered_all"] + total["unexpected"])
    rate = total["in_window"] / args.duration
    loader_cpu = ", ".join(f"{100 * r['cpu_s'] / r['wall_s']:.0f}%" for r in results)
    notes = f"{procs} load proc{'s' if procs > 1 else ''} (own CPU {loader_cpu})"
    if total["unexpected"]:
        notes += f"; {total['unexpected']} late/unmatched"
    if pace > 0:
        what, kind = f"{target}, open loop {pace:g}/s, {args.gates} gates, {procs}p", f"{target}_paced"
    else:
        what, kind = f"{target}, {args.gates} gates x{args.inflight} in flight, {procs}p", f"{target}_load"
    row = latency_row(broker, kind, what, tally, notes, rate)
    return LoadResult(row, meter.percent)


# --------------------------------------------------------------------------------------------
# One broker, end to end
# --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def broker_running(kind: str, children: Children) -> Iterator[tuple[int, int]]:
    """(port, pid) of a running broker of `kind`, stopped on exit."""
    from broker.mosquitto import MosquittoProcess
    from config.ports import free_port

    if kind == "mosquitto":
        mosq = MosquittoProcess()
        try:
            mosq.start()
            pids = children_matching(str(mosq.config_path))
            yield mosq.port, (pids[0] if pids else -1)
        finally:
            mosq.close()
    else:
        port = free_port()
        child = children.spawn("amqtt", [sys.executable, "-m", "cli.main", "broker", "--port", str(port)],
                               child_env(PASSAGE_LOG_LEVEL="WARNING"), pipes=False)
        try:
            wait_port(port, child, STARTUP_TIMEOUT_S)
            yield port, child.pid
        finally:
            children.stop(child)


def load_plan(args: argparse.Namespace) -> list[tuple[int, float]]:
    """(load processes, open-loop rate or 0 for closed loop) of each throughput run."""
    plan = [(procs, 0.0) for procs in args.load_procs]
    if args.paced_rate > 0:
        plan.append((args.load_procs[0], args.paced_rate))
    return plan


def describe_load(args: argparse.Namespace, procs: int, pace: float) -> str:
    how = f"open loop {pace:g}/s" if pace > 0 else f"{args.inflight} in flight per gate"
    return f"{args.gates} gates, {how}, {procs} load process(es), {args.duration:g}s"


def bench_broker(kind: str, args: argparse.Namespace, children: Children, mongo_uri: str, mongo_pid: int,
                 say: Callable[[str], None]) -> tuple[list[Row], dict[str, dict[str, float]], dict[str, Any]]:
    cards = [card_name(i) for i in range(args.users)]
    rows: list[Row] = []
    cpu: dict[str, dict[str, float]] = {}
    facts: dict[str, Any] = {}
    with broker_running(kind, children) as (port, broker_pid):
        say(f"[{kind}] broker on 127.0.0.1:{port}")
        # -- bare round trip: the echo responder ----------------------------------------------
        echo = children.spawn(f"echo-{kind}", [sys.executable, "-m", "bench.echo_responder", "--port", str(port),
                                               "--seconds", "900"], child_env(), pipes=True)
        try:
            assert echo.reader is not None
            if echo.reader.expect("READY", time.monotonic() + STARTUP_TIMEOUT_S) is None:
                raise RuntimeError(f"echo responder did not start:\n{echo.tail()}")
            say(f"[{kind}] echo: {args.requests} sequential requests")
            t = asyncio.run(sequential_raw(port, cards, args.warmup, args.requests, args.timeout, f"E{os.getpid():x}"))
            rows.append(latency_row(kind, "bare_seq", "bare echo, sequential (raw MqttClient)", t))
            for procs, pace in load_plan(args):
                say(f"[{kind}] echo: {describe_load(args, procs, pace)}")
                res = throughput(children, kind, "echo", port, args, procs, {"broker": broker_pid, "echo": echo.pid},
                                 pace)
                rows.append(res.row)
                cpu[res.row.what] = res.cpu
        finally:
            children.stop(echo)

        # -- card decisions: the auth worker ----------------------------------------------------
        worker = children.spawn(
            f"auth-{kind}", [sys.executable, "-m", "cli.main", "auth"],
            child_env(PASSAGE_MQTT__HOST="127.0.0.1", PASSAGE_MQTT__PORT=str(port), PASSAGE_MONGO_URI=mongo_uri,
                      PASSAGE_HASH_KEY=HASH_KEY, PASSAGE_LOG_LEVEL="WARNING",
                      PASSAGE_DATA_DIR=str(children.workdir / f"data-{kind}"),
                      **dict(kv.split("=", 1) for kv in args.worker_env)),
            pipes=False)
        try:
            events_before = count_events(mongo_uri)
            took = asyncio.run(probe_worker(port, cards[0], STARTUP_TIMEOUT_S, worker))
            say(f"[{kind}] auth worker answered GRANTED after {took:.1f}s; {args.requests} sequential decisions")
            t = asyncio.run(sequential_raw(port, cards, args.warmup, args.requests, args.timeout, f"D{os.getpid():x}"))
            rows.append(latency_row(kind, "decision_seq_raw", "card decision, sequential (raw MqttClient)", t))
            say(f"[{kind}] {args.requests} sequential decisions through GateAgent.present_card")
            t = asyncio.run(sequential_agent(port, cards, args.warmup, args.requests, args.timeout, children.workdir))
            rows.append(latency_row(kind, "decision_seq_agent", "card decision, sequential (GateAgent)", t))
            for procs, pace in load_plan(args):
                say(f"[{kind}] decisions: {describe_load(args, procs, pace)}")
                res = throughput(children, kind, "decision", port, args, procs,
                                 {"broker": broker_pid, "auth": worker.pid, "store": mongo_pid}, pace)
                rows.append(res.row)
                cpu[res.row.what] = res.cpu
                if not worker.alive():
                    raise RuntimeError(f"auth worker died under load:\n{worker.tail()}")
            # Every answered request must end up in the store; the writer flushes every 200 ms.
            answered = sum(r.answered_all for r in rows if r.kind.startswith("decision"))
            deadline = time.monotonic() + 10
            stored = count_events(mongo_uri) - events_before
            while stored < answered and time.monotonic() < deadline:
                time.sleep(0.3)
                stored = count_events(mongo_uri) - events_before
            facts["events_stored"] = stored
            facts["decisions_answered"] = answered
        finally:
            children.stop(worker)
    return rows, cpu, facts


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def print_report(rows: list[Row], cpu: dict[str, dict[str, dict[str, float]]], facts: dict[str, dict[str, Any]],
                 args: argparse.Namespace, elapsed: float) -> None:
    head = ["broker", "measurement", "n", "p50 ms", "p99 ms", "x bare p50", "per s", "timeouts", "granted/denied",
            "notes"]
    table: list[list[str]] = []
    for r in rows:
        bare_p50 = next((b.p50 for b in rows if b.broker == r.broker and b.kind == "bare_seq"), math.nan)
        ratio = r.p50 / bare_p50 if r.kind.startswith("decision_seq") else None
        gd = f"{r.granted}/{r.denied}" if r.kind.startswith("decision") else "-"
        table.append([r.broker, r.what, str(r.n), fmt(r.p50), fmt(r.p99), fmt(ratio), fmt(r.rate, ".0f"),
                      str(r.timeouts), gd, r.notes])
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(head)]
    rule = "  ".join("-" * w for w in widths)
    print()
    print(f"Card round trip bench: {args.gates} gates, {args.users} carded users, sequential n={args.requests} "
          f"(+{args.warmup} warm-up); load runs {args.duration:g}s (+{args.load_warmup:g}s warm-up); "
          f"gate timeout {args.timeout:g}s; QoS 1; loopback; {os.cpu_count()} CPUs")
    print(rule)
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
    print(rule)
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(rule)
    print("per s: requests answered inside the measured window / window length. Load rows: np = gates driven from "
          "n processes; own CPU = each load process, % of one core.\nClosed-loop rows keep gates x in-flight "
          "requests outstanding, so at saturation latency ~= outstanding / rate (Little's law): queueing, not "
          "service time.\nOpen-loop rows send at a fixed total rate below saturation: latency under a steady load.")

    print("\nCPU during each load window (% of one core; the machine has "
          f"{100 * (os.cpu_count() or 1)}%):")
    for broker, per_run in cpu.items():
        for what, per_proc in per_run.items():
            total = sum(per_proc.values())
            parts = ", ".join(f"{name} {pct:.0f}%" for name, pct in per_proc.items())
            print(f"  {broker:9}  {what}: {parts}  (sum {total:.0f}%)")

    print("\nTargets (issue, Mosquitto): decision p50 <= 2x bare p50; p99 < 10 ms; >= 2,000 decisions/s with "
          f"{args.gates} gates")
    for broker in dict.fromkeys(r.broker for r in rows):
        mine = {r.kind: r for r in rows if r.broker == broker}
        bare, raw, agent = mine.get("bare_seq"), mine.get("decision_seq_raw"), mine.get("decision_seq_agent")
        loads = [r for r in rows if r.broker == broker and r.kind == "decision_load"]
        paced = mine.get("decision_paced")
        best = max(loads, key=lambda r: r.rate or 0.0) if loads else None
        lines = []
        if bare and raw:
            ratio = raw.p50 / bare.p50
            lines.append(f"p50 {raw.p50:.2f} ms = {ratio:.2f}x bare {bare.p50:.2f} ms (raw client): "
                         f"{'met' if ratio <= 2 else 'NOT met'}"
                         + (f"; GateAgent p50 {agent.p50:.2f} ms = {agent.p50 / bare.p50:.2f}x" if agent else ""))
        if raw:
            seq = f"sequential p99 {raw.p99:.2f} ms raw" + (f", {agent.p99:.2f} ms GateAgent" if agent else "")
            ok = raw.p99 < 10 and (agent is None or agent.p99 < 10)
            lines.append(f"{seq}: {'met' if ok else 'NOT met'}"
                         + (f"; under load p99 {best.p99:.1f} ms" if best else "")
                         + (f", open loop {args.paced_rate:g}/s p99 {paced.p99:.1f} ms" if paced else ""))
        if best:
            ok = (best.rate or 0) >= 2000 and best.timeouts == 0
            lines.append(f"best {fmt(best.rate, '.0f')} decisions/s ({best.what}), {best.timeouts} timeouts: "
                         f"{'met' if ok else 'NOT met'}")
        timeouts = sum(r.timeouts for r in rows if r.broker == broker and r.kind.startswith("decision"))
        denied = sum(r.denied for r in rows if r.broker == broker and r.kind.startswith("decision"))
        f = facts.get(broker, {})
        stored, answered = f.get("events_stored", 0), f.get("decisions_answered", 0)
        lines.append(f"worker check: {timeouts} timeouts and {denied} denials (every card is valid) in the measured "
                     f"decision requests; {stored} access events stored for {answered} answered requests incl. "
                     f"warm-up ({'all recorded' if stored >= answered else f'{answered - stored} MISSING'})")
        print(f"  {broker}:")
        for line in lines:
            print(f"    - {line}")
    print(f"\nTotal bench time {elapsed:.0f}s")


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", choices=["mosquitto", "amqtt", "both"], default="both")
    p.add_argument("--gates", type=int, default=50, help="simulated gates in the throughput runs")
    p.add_argument("--users", type=int, default=1000, help="seeded users, one card each")
    p.add_argument("--requests", type=int, default=2000, help="sequential requests measured")
    p.add_argument("--warmup", type=int, default=200, help="sequential requests not measured")
    p.add_argument("--duration", type=float, default=8.0, help="throughput window, seconds")
    p.add_argument("--load-warmup", type=float, default=0.5, help="throughput warm-up, seconds")
    p.add_argument("--inflight", type=int, default=2, help="requests outstanding per gate under load")
    p.add_argument("--load-procs", default="1,2",
                   help="comma list: run the throughput test with the gates split over this many processes")
    p.add_argument("--paced-rate", type=float, default=250.0,
                   help="also run an open-loop load at this total request rate (0: skip)")
    p.add_argument("--timeout", type=float, default=1.5, help="gate timeout per request (GateSettings default)")
    p.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the auth worker, e.g. PASSAGE_STORE__EVENT_FLUSH_MS=600000")
    p.add_argument("--role", choices=["bench", "load"], default="bench", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--gate-ids", default="", help=argparse.SUPPRESS)
    p.add_argument("--pace", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if isinstance(args.load_procs, str):
        args.load_procs = [int(x) for x in args.load_procs.split(",") if x.strip()]
    if args.gates < 2 or args.users < 1 or args.requests < 1 or args.inflight < 1 or args.duration <= 0:
        p.error("need --gates >= 2 and positive --users, --requests, --inflight, --duration")
    if any("=" not in kv for kv in args.worker_env):
        p.error("--worker-env takes NAME=VALUE")
    if any(k < 1 or k > args.gates for k in args.load_procs):
        p.error("--load-procs values must be between 1 and --gates")
    return args


def _sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "load":
        run_load_child(args)
        return 0

    import logging

    from store.embedded import EmbeddedMongoServer

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    signal.signal(signal.SIGTERM, _sigterm)
    # Ctrl-C must stop the bench even when it was started with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()

    def say(msg: str) -> None:
        print(f"{time.monotonic() - started:6.1f}s  {msg}", file=sys.stderr, flush=True)

    RequestFactory.check()
    brokers = ["mosquitto", "amqtt"] if args.broker == "both" else [args.broker]
    rows: list[Row] = []
    cpu: dict[str, dict[str, dict[str, float]]] = {}
    facts: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="passage-bench-") as tmp:
        children = Children(Path(tmp))
        mongo = EmbeddedMongoServer(None)
        try:
            mongo.start()
            mongo_pids = children_matching(str(mongo.port))
            took = seed(mongo.uri, args.gates, args.users)
            say(f"store on {mongo.uri}: seeded {args.gates} gates, 1 group, {args.users} users+cards in {took:.1f}s")
            for kind in brokers:
                r, c, f = bench_broker(kind, args, children, mongo.uri, mongo_pids[0] if mongo_pids else -1, say)
                rows += r
                cpu[kind] = c
                facts[kind] = f
        except KeyboardInterrupt:
            say("interrupted: stopping everything")
            return 130
        finally:
            children.close()
            mongo.stop()
    print_report(rows, cpu, facts, args, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
