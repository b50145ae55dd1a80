"""Gate liveness over real brokers with real gates: a killed gate is alerted once, after the delay;
a flap is not; recovery is announced; a gate that stops answering pings is alerted without a will."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from config.settings import MonitorSettings, NotifyRecipient, NotifySettings, Settings
from edge_agent.agent import GateAgent
from edge_agent.relay import LogRelay
from messaging import IncomingMessage, MqttClient
from monitor.liveness import Liveness
from monitor.service import GateMonitor
from notifier.service import NotifyWorker
from schemas import topics
from schemas.base import utc_now
from schemas.codes import EventCode
from schemas.documents import Gate
from schemas.events import AlertEvent, DeviceEvent, NotificationEvent
from schemas.gate import GateHeartbeat, GatePing, GateState, GateStatus
from store.repository import Store
from tests.conftest import BrokerInfo, eventually, make_settings

REPO = Path(__file__).resolve().parents[2]
DELAY = 1.0


@dataclass
class Seen:
    """What an operator's client sees, with arrival times (monotonic)."""

    alerts: list[tuple[float, AlertEvent]] = field(default_factory=list)
    devices: list[tuple[float, DeviceEvent]] = field(default_factory=list)
    statuses: list[tuple[float, GateStatus]] = field(default_factory=list)
    notes: list[NotificationEvent] = field(default_factory=list)

    def alerts_of(self, code: EventCode, gate: str) -> list[tuple[float, AlertEvent]]:
        return [(t, a) for t, a in self.alerts if a.code is code and a.gate_id == gate]

    def device_states(self, gate: str) -> list[GateState]:
        return [d.state for _, d in self.devices if d.gate_id == gate]

    def offline_status_at(self, gate: str) -> float | None:
        times = [t for t, s in self.statuses if s.gate_id == gate and s.state is GateState.OFFLINE]
        return times[-1] if times else None


@dataclass
class Harness:
    settings: Settings
    monitor: GateMonitor
    worker: NotifyWorker
    probe: MqttClient
    seen: Seen
    tmp_path: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn_gate(self, gate_id: str) -> subprocess.Popen[bytes]:
        """A real gate process (`passage gate`), with its last will."""
        env = {**os.environ, "PASSAGE_MQTT__HOST": self.settings.mqtt.host,
               "PASSAGE_MQTT__PORT": str(self.settings.mqtt.port),
               "PASSAGE_MQTT__PROTOCOL": self.settings.mqtt.protocol,
               "PASSAGE_DATA_DIR": str(self.tmp_path / f"gate-{gate_id}-{len(self.procs)}")}
        env.pop("PASSAGE_CONFIG", None)
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", "gate", "--gate-id", gate_id],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env, cwd=REPO)
        self.procs.append(proc)
        return proc

    def state(self, gate_id: str) -> Liveness | None:
        health = self.monitor.tracker.health_of(gate_id)
        return health.state if health is not None else None


def _settings(tmp_path: Path, broker: BrokerInfo, **monitor: float) -> Settings:
    base = make_settings(tmp_path, broker)
    values: dict[str, float] = {"offline_alert_delay_s": DELAY, "ping_interval_s": 0.3, "heartbeat_timeout_s": 0.9}
    values.update(monitor)
    return base.model_copy(update={
        "monitor": MonitorSettings(**values),
        "notify": NotifySettings(channels=["local"], admins=[NotifyRecipient(id="admin-1")]),
    })


@contextlib.asynccontextmanager
async def running(tmp_path: Path, settings: Settings, store: Store | None = None) -> AsyncIterator[Harness]:
    """Monitor + notify worker (local channel, admin-1) + an operator's probe; cleans up processes."""
    seen = Seen()
    monitor = GateMonitor(settings, store)
    worker = NotifyWorker(settings)
    probe = MqttClient(settings.mqtt, "monitor-probe")

    alert_topics = {topics.alert_event("device_offline"), topics.alert_event("device_recovered")}

    async def on_event(msg: IncomingMessage) -> None:
        # One subscription: overlapping ones would deliver each message once per subscription.
        now = time.monotonic()
        if msg.topic in alert_topics:
            seen.alerts.append((now, AlertEvent.model_validate_json(msg.payload)))
        elif msg.topic.startswith("events/device/"):
            seen.devices.append((now, DeviceEvent.model_validate_json(msg.payload)))
        elif msg.topic == topics.notify_event("admin-1"):
            seen.notes.append(NotificationEvent.model_validate_json(msg.payload))

    async def on_status(msg: IncomingMessage) -> None:
        seen.statuses.append((time.monotonic(), GateStatus.model_validate_json(msg.payload)))

    probe.subscribe(topics.EVENTS_FILTER, on_event)
    probe.subscribe(topics.GATE_STATUS_FILTER, on_status)
    harness = Harness(settings, monitor, worker, probe, seen, tmp_path)
    tasks = [asyncio.create_task(c) for c in (monitor.run(), worker.run(), probe.run())]
    try:
        await monitor.mqtt.wait_connected(10)
        await worker.mqtt.wait_connected(10)
        await probe.wait_connected(10)
        yield harness
    finally:
        for proc in harness.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        monitor.stop()
        worker.stop()
        probe.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 15)


async def test_killed_gate_alerted_once_after_the_delay_then_recovery(tmp_path: Path, broker: BrokerInfo) -> None:
    settings = _settings(tmp_path, broker)
    async with running(tmp_path, settings) as h:
        h.spawn_gate("doomed")
        # The real gate answers the monitor's pings, so heartbeat supervision is on for it too.
        await eventually(lambda: (g := h.monitor.tracker.health_of("doomed")) is not None and g.answers_pings,
                         timeout=30)
        assert h.state("doomed") is Liveness.ONLINE
        seen_before = h.monitor.last_seen("doomed")
        assert seen_before is not None
        h.procs[0].send_signal(signal.SIGKILL)  # no goodbye: the broker's last will tells
        h.procs[0].wait(5)
        await eventually(lambda: h.seen.offline_status_at("doomed") is not None, timeout=10)
        offline_at = h.seen.offline_status_at("doomed")
        assert offline_at is not None
        await eventually(lambda: h.seen.alerts_of(EventCode.DEVICE_OFFLINE, "doomed"), timeout=DELAY + 5)
        [(alert_at, alert)] = h.seen.alerts_of(EventCode.DEVICE_OFFLINE, "doomed")
        # Not before the delay, and not much after it.
        assert DELAY - 0.05 <= alert_at - offline_at <= DELAY + 1.0, alert_at - offline_at
        assert "doomed" in alert.detail and "offline" in alert.detail
        # The admins are pushed (local channel here), once.
        await eventually(lambda: any(n.data.get("event") == "DEVICE_OFFLINE" for n in h.seen.notes))
        await asyncio.sleep(DELAY + 0.5)
        assert len(h.seen.alerts_of(EventCode.DEVICE_OFFLINE, "doomed")) == 1
        assert [n.title for n in h.seen.notes] == ["Gate doomed offline"]
        # Last seen stays where the gate was last heard from.
        seen_after = h.monitor.last_seen("doomed")
        assert seen_after is not None and seen_after >= seen_before

        h.spawn_gate("doomed")  # back
        await eventually(lambda: h.seen.alerts_of(EventCode.DEVICE_RECOVERED, "doomed"), timeout=30)
        await eventually(lambda: len(h.seen.notes) == 2)
        assert h.seen.notes[1].title == "Gate doomed back online"
        assert h.seen.device_states("doomed")[-2:] == [GateState.OFFLINE, GateState.ONLINE]
        assert len(h.seen.alerts_of(EventCode.DEVICE_OFFLINE, "doomed")) == 1
        assert h.state("doomed") is Liveness.ONLINE


async def test_flap_shorter_than_the_delay_alerts_no_one(tmp_path: Path, mosquitto: BrokerInfo) -> None:
    settings = _settings(tmp_path, mosquitto, offline_alert_delay_s=1.5)
    async with running(tmp_path, settings) as h:
        h.spawn_gate("flappy")
        await eventually(lambda: h.state("flappy") is Liveness.ONLINE, timeout=30)
        h.procs[0].send_signal(signal.SIGKILL)
        h.procs[0].wait(5)
        await eventually(lambda: h.state("flappy") is Liveness.OFFLINE, timeout=10)
        # The gate comes straight back (here an in-process agent with the same id).
        back_settings = settings.model_copy(update={"data_dir": tmp_path / "flappy-back"})
        gate = GateAgent(back_settings, "flappy", relay=LogRelay("flappy"))
        task = asyncio.create_task(gate.run())
        try:
            await eventually(lambda: h.state("flappy") is Liveness.ONLINE, timeout=5)
            await asyncio.sleep(1.5 + 1.0)
            assert h.seen.alerts_of(EventCode.DEVICE_OFFLINE, "flappy") == []
            assert h.seen.alerts_of(EventCode.DEVICE_RECOVERED, "flappy") == []
            assert h.seen.notes == []
            # The state changes themselves are on the device stream.
            assert h.seen.device_states("flappy")[-2:] == [GateState.OFFLINE, GateState.ONLINE]
        finally:
            await gate.stop()
            await asyncio.wait_for(task, 10)


async def test_silent_gate_alerted_without_a_last_will(tmp_path: Path, broker: BrokerInfo) -> None:
    """A gate whose connection stays up but which stops answering pings (a hung process, a broken
    network path the broker has not noticed): no will is ever published."""
    settings = _settings(tmp_path, broker, ping_interval_s=0.2, heartbeat_timeout_s=0.6)
    async with running(tmp_path, settings) as h:
        peer = MqttClient(settings.mqtt, "mute-gate")  # no will at all
        answering = True
        last_beat = [0.0]

        async def on_ping(msg: IncomingMessage) -> None:
            ping = GatePing.model_validate_json(msg.payload)
            if answering:
                await peer.publish(topics.gate_heartbeat("mute"), GateHeartbeat(gate_id="mute", ping_id=ping.ping_id))
                last_beat[0] = time.monotonic()

        async def online(client: MqttClient) -> None:
            await client.publish(topics.gate_status("mute"), GateStatus(gate_id="mute", state=GateState.ONLINE),
                                 retain=True)

        peer = MqttClient(settings.mqtt, "mute-gate", on_connect=online)
        peer.subscribe(topics.gate_ping("mute"), on_ping)
        task = asyncio.create_task(peer.run())
        try:
            await eventually(lambda: (g := h.monitor.tracker.health_of("mute")) is not None and g.answers_pings)
            await asyncio.sleep(0.5)
            assert h.seen.device_states("mute") == [GateState.ONLINE]
            answering = False
            await eventually(lambda: h.seen.alerts_of(EventCode.DEVICE_OFFLINE, "mute"), timeout=5)
            [(alert_at, alert)] = h.seen.alerts_of(EventCode.DEVICE_OFFLINE, "mute")
            silent_for = alert_at - last_beat[0]
            assert DELAY - 0.05 <= silent_for <= DELAY + 0.8, silent_for
            assert "no heartbeat" in alert.detail
            assert h.seen.device_states("mute") == [GateState.ONLINE, GateState.OFFLINE]
            answering = True
            await eventually(lambda: h.seen.alerts_of(EventCode.DEVICE_RECOVERED, "mute"), timeout=5)
            assert len(h.seen.alerts_of(EventCode.DEVICE_OFFLINE, "mute")) == 1
        finally:
            peer.stop()
            await asyncio.wait_for(task, 10)


async def test_store_gates_pinged_and_a_gate_found_offline_is_alerted(
        tmp_path: Path, mosquitto: BrokerInfo, embedded_store: Store) -> None:
    await asyncio.to_thread(embedded_store.put_gate, Gate(id="lobby", name="Lobby"))
    await asyncio.to_thread(embedded_store.put_gate, Gate(id="old", name="Old door", active=False))
    settings = _settings(tmp_path, mosquitto)
    # Before the monitor starts: lobby's last will fired long ago (retained); "old" is retired.
    early = MqttClient(settings.mqtt, "early")
    early_task = asyncio.create_task(early.run())
    await early.wait_connected(10)
    for gate in ("lobby", "old"):
        await early.publish(topics.gate_status(gate), GateStatus(gate_id=gate, state=GateState.OFFLINE), retain=True)
    pings: list[GatePing] = []

    async def on_ping(msg: IncomingMessage) -> None:
        pings.append(GatePing.model_validate_json(msg.payload))

    early.subscribe(topics.gate_ping("lobby"), on_ping)
    early.subscribe(topics.gate_ping("old"), on_ping)
    try:
        async with running(tmp_path, settings, embedded_store) as h:
            await eventually(lambda: len(pings) >= 2, timeout=5)
            assert {p.gate_id for p in pings} == {"lobby"}
            await eventually(lambda: h.seen.alerts_of(EventCode.DEVICE_OFFLINE, "lobby"), timeout=DELAY + 5)
            assert h.monitor.last_seen("lobby") is None  # never heard live
            assert [g.gate_id for g in h.monitor.gates()] == ["lobby"]
            # The gate answers: recovered, and seen now.
            await early.publish(topics.gate_status("lobby"), GateStatus(gate_id="lobby", state=GateState.ONLINE),
                                retain=True)
            await eventually(lambda: h.seen.alerts_of(EventCode.DEVICE_RECOVERED, "lobby"))
            seen_at = h.monitor.last_seen("lobby")
            assert seen_at is not None and (utc_now() - seen_at).total_seconds() < 5
            await asyncio.sleep(DELAY)
            assert h.seen.alerts_of(EventCode.DEVICE_OFFLINE, "old") == []
            assert len(h.seen.alerts_of(EventCode.DEVICE_OFFLINE, "lobby")) == 1
    finally:
        for gate in ("lobby", "old"):
            await early.publish(topics.gate_status(gate), b"", retain=True)
        early.stop()
        await asyncio.wait_for(early_task, 10)


