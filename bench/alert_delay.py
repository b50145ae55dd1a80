"""Alert delay after a gate dies: SIGKILL a real gate process (`passage gate`, with its last will) and
time until `events/alert/device_offline` reaches an operator's client, over Mosquitto.

Each run starts a fresh gate process, waits until the monitor sees it online and answering pings,
kills it, and reports:
- will: kill -> the retained offline status (the broker's last will) seen by the operator;
- alert: kill -> the DEVICE_OFFLINE alert seen by the operator;
- excess: alert minus the configured delay (what the monitor adds).
`--hang` runs add a gate frozen with SIGSTOP (its TCP connection stays up, so no will until the
broker's keepalive gives up): only missing heartbeats can tell, and the alert is dated from the last
heartbeat.

Run from the repository root:  python -m bench.alert_delay [--delays 2 2 2 10] [--hang 2]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from broker.mosquitto import MosquittoProcess
from config.settings import MonitorSettings, MqttSettings, Settings
from messaging import IncomingMessage, MqttClient
from monitor.service import GateMonitor
from schemas import topics
from schemas.events import AlertEvent
from schemas.gate import GateState, GateStatus

REPO = Path(__file__).resolve().parent.parent


def monitor_settings(delay: float) -> MonitorSettings:
    """The shipped defaults for the default delay; for shorter delays, pings fast enough that
    heartbeat loss is judged before the delay runs out."""
    defaults = MonitorSettings()
    if delay >= defaults.offline_alert_delay_s:
        return MonitorSettings(offline_alert_delay_s=delay)
    ping = min(5.0, max(0.2, delay / 4))
    return MonitorSettings(offline_alert_delay_s=delay, ping_interval_s=ping,
                           heartbeat_timeout_s=min(8.0, max(ping * 1.5, delay * 0.75)))


async def one_run(port: int, workdir: Path, delay: float, n: int, hang: bool) -> dict[str, float]:
    gate_id = f"bench-gate-{n}"
    settings = Settings(data_dir=workdir / "monitor", mqtt=MqttSettings(port=port, reconnect_min_s=0.05),
                        monitor=monitor_settings(delay))
    monitor = GateMonitor(settings, client_id=f"bench-monitor-{n}")
    operator = MqttClient(settings.mqtt, f"bench-operator-{n}")
    marks: dict[str, float] = {}

    async def on_alert(msg: IncomingMessage) -> None:
        alert = AlertEvent.model_validate_json(msg.payload)
        if alert.gate_id == gate_id:
            marks.setdefault("alert", time.perf_counter())

    async def on_status(msg: IncomingMessage) -> None:
        if msg.retain or not msg.payload:
            return
        status = GateStatus.model_validate_json(msg.payload)
        if status.state is GateState.OFFLINE:
            marks.setdefault("will", time.perf_counter())

    operator.subscribe(topics.alert_event("device_offline"), on_alert)
    operator.subscribe(topics.gate_status(gate_id), on_status)
    tasks = [asyncio.create_task(monitor.run()), asyncio.create_task(operator.run())]
    env = {**os.environ, "PASSAGE_MQTT__PORT": str(port), "PASSAGE_DATA_DIR": str(workdir / gate_id)}
    env.pop("PASSAGE_CONFIG", None)
    gate = subprocess.Popen([sys.executable, "-m", "cli.main", "gate", "--gate-id", gate_id], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    try:
        await operator.wait_connected(10)
        deadline = time.monotonic() + 60
        while True:
            health = monitor.tracker.health_of(gate_id)
            if health is not None and health.answers_pings and health.state.value == "online":
                break
            if time.monotonic() > deadline or gate.poll() is not None:
                raise RuntimeError(f"{gate_id} never came online")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        killed = time.perf_counter()
        gate.send_signal(signal.SIGSTOP if hang else signal.SIGKILL)
        deadline = time.monotonic() + delay + 60
        while "alert" not in marks and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if "alert" not in marks:
            raise RuntimeError(f"no alert within {delay + 60:.0f}s")
        return {"delay": delay, "will": (marks["will"] - killed) * 1000 if "will" in marks else float("nan"),
                "alert": marks["alert"] - killed, "excess": marks["alert"] - killed - delay}
    finally:
        if gate.poll() is None:
            gate.kill()
        gate.wait(10)
        # Clear the retained will, so the next run's monitor does not report this gate again.
        await operator.publish(topics.gate_status(gate_id), b"", retain=True)
        monitor.stop()
        operator.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 15)


async def main_async(delays: list[float], hangs: list[float]) -> None:
    # The monitor's own log lines (gate offline, DEVICE OFFLINE) would interleave with the table.
    logging.getLogger("monitor").setLevel(logging.CRITICAL)
    with MosquittoProcess() as broker, tempfile.TemporaryDirectory(prefix="alert-bench-") as tmp:
        print(f"Mosquitto on 127.0.0.1:{broker.port}; one `passage gate` process per run\n")
        print(f"{'gate death':<11} {'delay s':>7} {'ping s':>6} {'will ms':>8} {'alert s':>8} {'excess ms':>9}")
        results: dict[tuple[str, float], list[float]] = {}
        runs = [("SIGKILL", d) for d in delays] + [("SIGSTOP", d) for d in hangs]
        for n, (how, delay) in enumerate(runs):
            r = await one_run(broker.port, Path(tmp), delay, n, hang=how == "SIGSTOP")
            results.setdefault((how, delay), []).append(r["excess"] * 1000)
            will = "-" if r["will"] != r["will"] else f"{r['will']:.1f}"
            print(f"{how:<11} {delay:>7g} {monitor_settings(delay).ping_interval_s:>6g} {will:>8} "
                  f"{r['alert']:>8.3f} {r['excess'] * 1000:>9.1f}")
        print("\nexcess over the configured delay (ms): "
              + "; ".join(f"{how} {d:g}s: median {statistics.median(v):.1f}, max {max(v):.1f} (n={len(v)})"
                          for (how, d), v in results.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delays", type=float, nargs="*", default=[2.0, 2.0, 2.0, 10.0],
                        help="offline_alert_delay_s for each SIGKILL run")
    parser.add_argument("--hang", type=float, nargs="*", default=[2.0],
                        help="offline_alert_delay_s for each SIGSTOP (frozen gate) run")
    args = parser.parse_args()
    asyncio.run(main_async(args.delays, args.hang))


if __name__ == "__main__":
    main()
