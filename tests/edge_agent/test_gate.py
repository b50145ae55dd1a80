"""The gate fails closed and its last will marks it offline, on each real broker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from edge_agent.agent import GateAgent
from edge_agent.relay import LogRelay
from messaging import IncomingMessage, MqttClient
from schemas import topics
from schemas.access import AccessResponse
from schemas.codes import ReasonCode
from schemas.gate import GateState, GateStatus
from tests.conftest import BrokerInfo, eventually, make_settings


async def test_no_answer_means_locked_door(tmp_path: Path, broker: BrokerInfo) -> None:
    settings = make_settings(tmp_path, broker)
    settings = settings.model_copy(update={"gate": settings.gate.model_copy(update={"request_timeout_s": 0.3})})
    gate = GateAgent(settings, "lonely", relay=LogRelay("lonely"))
    task = asyncio.create_task(gate.run())
    try:
        await gate.mqtt.wait_connected(10)
        decision = await gate.present_card("CARD-1")  # no auth worker is running
        assert not decision.granted and decision.reason == ReasonCode.TIMEOUT.value
        assert decision.round_trip_ms >= 300
        assert gate.relay.unlock_count == 0 and not gate.relay.unlocked
    finally:
        await gate.stop()
        await asyncio.wait_for(task, 10)


async def test_broker_down_means_locked_door(tmp_path: Path) -> None:
    from config.ports import free_port
    dead = BrokerInfo("amqtt", "127.0.0.1", free_port())  # nothing listens there
    settings = make_settings(tmp_path, dead)
    settings = settings.model_copy(update={"gate": settings.gate.model_copy(update={"request_timeout_s": 0.3})})
    gate = GateAgent(settings, "cut-off", relay=LogRelay("cut-off"))
    task = asyncio.create_task(gate.run())
    try:
        decision = await gate.present_card("CARD-1")
        assert not decision.granted and decision.reason == "TIMEOUT"
        assert gate.relay.unlock_count == 0
    finally:
        await gate.stop()
        await asyncio.wait_for(task, 10)


async def test_forged_or_unsolicited_grants_do_not_open(tmp_path: Path, broker: BrokerInfo) -> None:
    settings = make_settings(tmp_path, broker)
    gate = GateAgent(settings, "lobby", relay=LogRelay("lobby"))
    attacker = MqttClient(settings.mqtt, "attacker")
    tasks = [asyncio.create_task(gate.run()), asyncio.create_task(attacker.run())]
    try:
        await gate.mqtt.wait_connected(10)
        await attacker.wait_connected(10)
        forged = AccessResponse(request_id="never-asked", gate_id="lobby", granted=True,
                                reason=ReasonCode.GRANTED, subject_id="U1", latency_ms=0.1)
        await attacker.publish(topics.access_response("lobby"), forged)
        # Inconsistent and garbage responses are refused at the boundary too.
        await attacker.publish(topics.access_response("lobby"),
                               b'{"request_id":"x","gate_id":"lobby","granted":true,"reason":"USER_INACTIVE",'
                               b'"latency_ms":1}')
        await attacker.publish(topics.access_response("lobby"), b"\x00garbage")
        await asyncio.sleep(0.3)
        assert gate.relay.unlock_count == 0
    finally:
        await gate.stop()
        attacker.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def test_killed_gate_goes_offline_by_last_will(tmp_path: Path, broker: BrokerInfo) -> None:
    settings = make_settings(tmp_path, broker)
    statuses: list[GateStatus] = []

    async def record(msg: IncomingMessage) -> None:
        statuses.append(GateStatus.model_validate_json(msg.payload))

    env = {**os.environ, "PASSAGE_MQTT__HOST": broker.host, "PASSAGE_MQTT__PORT": str(broker.port),
           "PASSAGE_MQTT__PROTOCOL": settings.mqtt.protocol, "PASSAGE_DATA_DIR": str(tmp_path / "gate")}
    env.pop("PASSAGE_CONFIG", None)
    gate_proc = subprocess.Popen([sys.executable, "-m", "cli.main", "gate", "--gate-id", "doomed"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=env, cwd=Path(__file__).resolve().parents[2])
    watcher = MqttClient(settings.mqtt, "status-watch")
    watcher.subscribe(topics.gate_status("doomed"), record)
    task = asyncio.create_task(watcher.run())
    try:
        await eventually(lambda: any(s.state is GateState.ONLINE for s in statuses), timeout=15)
        gate_proc.send_signal(signal.SIGKILL)  # no goodbye: only the broker's last will can tell
        gate_proc.wait(5)
        await eventually(lambda: statuses[-1].state is GateState.OFFLINE, timeout=10)
        # Retained: a client that connects later learns the gate is offline.
        late: list[GateStatus] = []

        async def record_late(msg: IncomingMessage) -> None:
            late.append(GateStatus.model_validate_json(msg.payload))

        latecomer = MqttClient(settings.mqtt, "late-watch")
        latecomer.subscribe(topics.gate_status("doomed"), record_late)
        late_task = asyncio.create_task(latecomer.run())
        await eventually(lambda: late)
        assert late[-1].state is GateState.OFFLINE and late[-1].gate_id == "doomed"
        latecomer.stop()
        await asyncio.wait_for(late_task, 10)
    finally:
        if gate_proc.poll() is None:
            gate_proc.kill()
            gate_proc.wait()
        watcher.stop()
        await asyncio.wait_for(task, 10)
