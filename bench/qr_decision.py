"""Visitor QR figures: decode time from a 640x480 camera frame, and the QR decision round trip over
Mosquitto.

1. decode: a real pass token is rendered to PNG (visitor_pass.qr, as the visitor worker does), shown
   on a phone screen placed into a real photograph (tests/visitor_pass/frames.py: 120-200 px wide,
   tilted up to 25 degrees, foreshortened, blurred, JPEG-compressed: a phone held up to a gate
   camera), and read back with visitor_pass.reader.read_qr (pyzbar). Reported separately: the OpenCV
   fallback alone on the same frames, and a frame without any code (zbar and the fallback both try:
   what a camera loop pays per empty frame).
2. decision: Mosquitto (MosquittoProcess), the embedded store, and `passage auth` in its own process
   (face models off); sequential requests from one gate with the raw MqttClient of
   bench/card_roundtrip.py. Every request is a fresh request id with a valid pass, so each one
   verifies the Ed25519 signature and takes one use with the atomic store update; every answer must
   be GRANTED. Card decisions on the same setup are measured too, for comparison.

Run from the repository root:  python -m bench.qr_decision [--frames 300] [--requests 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.card_roundtrip import (
    HASH_KEY,
    STARTUP_TIMEOUT_S,
    Children,
    RawGate,
    Tally,
    broker_running,
    card_name,
    child_env,
    gate_name,
    percentile,
    probe_worker,
    running,
    seed,
    sequential_raw,
)

PASS_USES = 200  # uses per seeded pass; enough passes are seeded for every request


# --------------------------------------------------------------------------------------------
# 1. Decode from a camera frame
# --------------------------------------------------------------------------------------------

def decode_figures(frames_per_case: int) -> list[tuple[str, list[float], int]]:
    """(case, sorted ms, failures) for zbar on phone frames, the OpenCV fallback, an empty frame."""
    import cv2
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from visitor_pass import reader
    from visitor_pass.qr import render
    from visitor_pass.reader import NoQrFound
    from visitor_pass.token import PassClaims, PassSigner

    frames_mod = importlib.import_module("tests.visitor_pass.frames")
    photos = importlib.import_module("tests.face_photos")
    start = datetime.now(UTC).replace(microsecond=0)
    token = PassSigner(Ed25519PrivateKey.generate()).sign(
        PassClaims("0123456789abcdef0123456789abcdef", start, start + timedelta(hours=4), ("lobby", "garage"), 2))
    qr = render(token)
    shots = [frames_mod.phone_frame(qr.png, side_px=side, tilt_deg=tilt)
             for side, tilt in ((120, 0), (150, 12), (170, -8), (200, 25))]
    empty = cv2.resize(photos.no_face_photo(), (640, 480))
    print(f"token {len(token)} characters, QR version {qr.version}, PNG {len(qr.png)} bytes; frames 640x480 BGR")

    def timed(fn: Any, frame: Any, expect: str | None) -> tuple[float, bool]:
        t0 = time.perf_counter()
        try:
            out = fn(frame)
        except NoQrFound:
            out = None
        ms = (time.perf_counter() - t0) * 1000
        return ms, (out == expect) if expect is not None else out is None

    cases: list[tuple[str, Any, Any, str | None]] = [
        ("read_qr (pyzbar), phone in frame", reader.read_qr, shots, token),
        ("OpenCV fallback alone, same frames", lambda f: (reader._read_opencv(reader.to_gray(f)) or [None])[0],
         shots, token),
        ("read_qr, frame without a code", reader.read_qr, [empty], None),
    ]
    results = []
    for name, fn, frames, expect in cases:
        for frame in frames:  # warm-up
            timed(fn, frame, expect)
        times, failures = [], 0
        for i in range(frames_per_case):
            ms, ok = timed(fn, frames[i % len(frames)], expect)
            times.append(ms)
            failures += not ok
        results.append((name, sorted(times), failures))
    return results


# --------------------------------------------------------------------------------------------
# 2. Decision round trip over Mosquitto
# --------------------------------------------------------------------------------------------

class QrRequestFactory:
    """AccessRequest payloads carrying pass tokens (same shape as card_roundtrip.RequestFactory)."""

    _TEMPLATE = ('{{"v":1,"ts":"{ts}","msg_id":"{mid}","request_id":"{rid}","gate_id":"{gate}",'
                 '"credential":{{"type":"qr","payload":"{token}"}}}}')

    def __init__(self, tokens: Sequence[str], tag: str, uses_each: int) -> None:
        self._tokens = tokens
        self._tag = tag
        self._uses_each = uses_each
        self._n = 0

    def make(self, gate: str) -> tuple[str, bytes]:
        n = self._n
        self._n += 1
        rid = f"{self._tag}r{n:x}"
        ts = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        token = self._tokens[n // self._uses_each]
        return rid, self._TEMPLATE.format(ts=ts, mid=f"{self._tag}m{n:x}", rid=rid, gate=gate, token=token).encode()


def seed_passes(uri: str, data_dir: Path, count: int) -> list[str]:
    """A resident with every bench gate and `count` passes of PASS_USES uses; returns their tokens,
    signed with the key the worker will load from `data_dir`."""
    from config.settings import Settings
    from schemas.base import new_id
    from schemas.documents import AccessGroup, User
    from store.connect import connect
    from store.passes import VisitorPass, VisitorPassStore
    from visitor_pass.keys import signer_for
    from visitor_pass.token import PassClaims

    signer = signer_for(Settings(data_dir=data_dir))
    client, store = connect(uri, "passage")
    try:
        gates = [gate_name(0), gate_name(1)]
        store.put_access_group(AccessGroup(id="bench-visitors", name="Visitor gates", gate_ids=gates))
        store.put_user(User(id="BV-RES", name="Bench resident", building="B", unit="9999", groups=["bench-visitors"]))
        passes = VisitorPassStore(store.db)
        passes.ensure_indexes()
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        tokens = []
        for _ in range(count):
            vp = VisitorPass(id=new_id(), request_id=new_id(), resident_id="BV-RES", building="B", unit="9999",
                             visitor_name="Bench visitor", valid_from=start, valid_until=start + timedelta(hours=6),
                             gate_ids=gates, max_uses=PASS_USES, key_id=signer.key_id)
            passes.insert(vp)
            tokens.append(signer.sign(PassClaims(vp.id, vp.valid_from, vp.valid_until, tuple(gates), PASS_USES)))
        return tokens
    finally:
        client.close()


async def sequential_qr(port: int, tokens: list[str], warmup: int, n: int, timeout_s: float) -> Tally:
    factory = QrRequestFactory(tokens, f"Q{os.getpid():x}", PASS_USES)
    gate = RawGate("127.0.0.1", port, gate_name(0), factory, timeout_s, "qr")  # type: ignore[arg-type]
    tally = Tally()
    async with running([gate.client]):
        for i in range(warmup + n):
            tally.add(await gate.request(), measured=i >= warmup)
    return tally


def decision_figures(args: argparse.Namespace, say: Any) -> list[tuple[str, Tally]]:
    from store.embedded import EmbeddedMongoServer

    rows: list[tuple[str, Tally]] = []
    with tempfile.TemporaryDirectory(prefix="passage-qr-bench-") as tmp:
        children = Children(Path(tmp))
        mongo = EmbeddedMongoServer(None)
        try:
            mongo.start()
            seed(mongo.uri, 2, 10)
            data_dir = Path(tmp) / "data"
            total = args.requests + args.warmup
            tokens = seed_passes(mongo.uri, data_dir, total // PASS_USES + 1)
            say(f"store {mongo.uri}: 2 gates, 10 carded users, {len(tokens)} passes of {PASS_USES} uses")
            with broker_running("mosquitto", children) as (port, _):
                worker = children.spawn(
                    "auth-mosquitto", [sys.executable, "-m", "cli.main", "auth"],
                    child_env(PASSAGE_MQTT__HOST="127.0.0.1", PASSAGE_MQTT__PORT=str(port), PASSAGE_MONGO_URI=mongo.uri,
                              PASSAGE_HASH_KEY=HASH_KEY, PASSAGE_LOG_LEVEL="WARNING", PASSAGE_FACE__ENABLED="false",
                              PASSAGE_DATA_DIR=str(data_dir)), pipes=False)
                try:
                    took = asyncio.run(probe_worker(port, card_name(0), STARTUP_TIMEOUT_S, worker))
                    say(f"auth worker answered after {took:.1f}s; {args.requests} sequential QR decisions")
                    rows.append(("QR decision (verify + atomic use)",
                                 asyncio.run(sequential_qr(port, tokens, args.warmup, args.requests, args.timeout))))
                    say(f"{args.requests} sequential card decisions")
                    cards = [card_name(i) for i in range(10)]
                    rows.append(("card decision (same setup)",
                                 asyncio.run(sequential_raw(port, cards, args.warmup, args.requests, args.timeout,
                                                            f"C{os.getpid():x}"))))
                finally:
                    children.stop(worker)
        finally:
            children.close()
            mongo.stop()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=300, help="decodes measured per case")
    p.add_argument("--requests", type=int, default=1000, help="sequential decisions measured per credential")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--timeout", type=float, default=1.5, help="gate timeout per request")
    p.add_argument("--skip-decisions", action="store_true", help="only the decode figures")
    args = p.parse_args(argv)
    started = time.monotonic()

    def say(msg: str) -> None:
        print(f"{time.monotonic() - started:6.1f}s  {msg}", file=sys.stderr, flush=True)

    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print(f"QR decision bench, {os.cpu_count()} CPUs")
    print("\nDecode from a 640x480 camera frame (ms):")
    for name, times, failures in decode_figures(args.frames):
        print(f"  {name:38} n={len(times):4}  p50 {percentile(times, 50):6.2f}  p99 {percentile(times, 99):6.2f}  "
              f"mean {statistics.fmean(times):6.2f}  wrong/missed {failures}")
    if args.skip_decisions:
        return 0
    rows = decision_figures(args, say)
    print("\nDecision round trip over Mosquitto, one gate, sequential, loopback (ms):")
    ok = True
    for name, tally in rows:
        lat = sorted(tally.lat)
        print(f"  {name:38} n={len(lat):4}  p50 {percentile(lat, 50):6.2f}  p99 {percentile(lat, 99):6.2f}  "
              f"granted {tally.granted}  denied {tally.denied}  timeouts {tally.timeouts}")
        ok = ok and tally.denied == 0 and tally.timeouts == 0
    if not ok:
        print("  CHECK FAILED: every request carries a valid credential and must be GRANTED")
    print(f"\nTotal bench time {time.monotonic() - started:.0f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
