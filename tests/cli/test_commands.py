"""The `passage` command as a user runs it: real processes, real broker, real store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.demo_data import DEMO_CARD, demo_face_photo
from cli.watch import format_message
from config.ports import free_port
from schemas.codes import CredentialType, EventCode, ReasonCode
from schemas.events import AccessEvent, DeviceEvent, EnrollEvent, NotificationEvent, VisitorEvent
from schemas.gate import GateState, GateStatus

ROOT = Path(__file__).resolve().parents[2]


def _passage(*args: str, env: dict[str, str], **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=env, cwd=kw.pop("cwd", ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)  # type: ignore[call-overload]


def _env(tmp_path: Path, broker_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSAGE_")}
    env.update({"PASSAGE_BROKER__PORT": str(broker_port), "PASSAGE_MQTT__PORT": str(broker_port),
                "PASSAGE_DATA_DIR": str(tmp_path / "data"), "PASSAGE_GATE__REQUEST_TIMEOUT_S": "3"})
    return env


def _wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            lines.append(line)
            if needle in line:
                return lines
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.05)
    err = proc.stderr.read() if proc.stderr else ""
    pytest.fail(f"{needle!r} not printed within {timeout}s; stdout={lines!r} stderr tail={err[-1500:]!r}")


def test_up_then_gate_card_then_clean_stop(tmp_path: Path) -> None:
    """The quick start: `passage up` runs everything; `passage gate --card` gets decisions from it."""
    port = free_port()
    env = _env(tmp_path, port)
    up = _passage("up", "--demo-interval", "0.3", env=env, cwd=tmp_path)
    try:
        lines = _wait_for_line(up, "GRANTED", timeout=60)
        assert any("ONLINE" in line for line in lines)
        _wait_for_line(up, "UNKNOWN_CREDENTIAL", timeout=10)

        ok = subprocess.run([sys.executable, "-m", "cli.main", "gate", "--gate-id", "gate-1", "--card", DEMO_CARD],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr[-1500:]
        assert ok.stdout.startswith("GRANTED U1001")
        bad = subprocess.run([sys.executable, "-m", "cli.main", "gate", "--gate-id", "gate-1", "--card", "NOPE-1"],
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and bad.stdout.startswith("DENIED UNKNOWN_CREDENTIAL")
        face = subprocess.run([sys.executable, "-m", "cli.main", "gate", "--gate-id", "gate-1", "--face",
                               str(demo_face_photo())], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert face.returncode == 0 and face.stdout.startswith("GRANTED U1001"), face.stdout + face.stderr[-1000:]

        def passage(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, cwd=ROOT,
                                  capture_output=True, text=True, timeout=90)

        enrolled = passage("admin", "enroll", "--user", "U2001", "--name", "New Resident", "--group", "residents-A",
                           "--card", "MY-CARD-1")
        assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr[-1500:]
        assert "OK      add_card U2001" in enrolled.stdout
        let_in = passage("gate", "--gate-id", "gate-1", "--card", "MY-CARD-1")
        assert let_in.stdout.startswith("GRANTED U2001"), let_in.stdout + let_in.stderr[-1000:]
        dup = passage("admin", "enroll", "--user", "U2002", "--name", "Someone", "--card", "MY-CARD-1")
        assert dup.returncode == 1
        assert "Duplicate Card (U2001)" in dup.stdout and "중복된 카드 (U2001)" in dup.stdout
        assert "[New Resident]" in dup.stdout

        csv_file = tmp_path / "residents.csv"
        csv_file.write_text("user_id,name,building,unit,phone,groups,card_id\n"
                            "U3001,Imported One,A,0301,,residents-A,IMP-CARD-1\n"
                            "U3002,Imported Two,A,0302,,residents-A,MY-CARD-1\n")
        refused = passage("admin", "import", str(csv_file))
        assert refused.returncode == 1 and "DUPLICATE_CARD" in refused.stdout and "U2001" in refused.stdout
        csv_file.write_text(csv_file.read_text().replace("MY-CARD-1", "IMP-CARD-2"))
        imported = passage("admin", "import", str(csv_file))
        assert imported.returncode == 0 and "2 rows imported" in imported.stdout, imported.stdout
        assert passage("gate", "--gate-id", "gate-1", "--card", "IMP-CARD-2").stdout.startswith("GRANTED U3002")
        listed = passage("admin", "list", "--building", "A", "--text", "imported")
        assert "U3001" in listed.stdout and "U3002" in listed.stdout and "2 of 2 users" in listed.stdout
        audit = passage("admin", "audit", "--code", "USER_DUPLICATE_CREDENTIAL")
        assert "U2002" in audit.stdout and "matched=U2001" in audit.stdout and "1 records" in audit.stdout
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
            pytest.fail("passage up did not stop on Ctrl-C")
    assert up.returncode == 0
    assert "Passage stopped." in (up.stderr.read() if up.stderr else "")
    # The embedded store child went with it.
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "data" / "store")], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


def test_gate_without_broker_fails_closed(tmp_path: Path) -> None:
    env = _env(tmp_path, free_port())
    env["PASSAGE_GATE__REQUEST_TIMEOUT_S"] = "0.3"
    res = subprocess.run([sys.executable, "-m", "cli.main", "gate", "--card", DEMO_CARD], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stdout.startswith("DENIED TIMEOUT")


def test_broker_prints_mosquitto_config() -> None:
    res = subprocess.run([sys.executable, "-m", "cli.main", "broker", "--mosquitto-config"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "set_tcp_nodelay true" in res.stdout and "persistence true" in res.stdout


def test_watch_lines_are_readable() -> None:
    granted = AccessEvent(code=EventCode.ACCESS_GRANTED, request_id="r1", gate_id="lobby",
                          credential_type=CredentialType.CARD, granted=True, reason=ReasonCode.GRANTED,
                          subject_id="U1001", latency_ms=0.42)
    line = format_message("events/access/lobby", granted.model_dump_json().encode())
    assert "lobby" in line and "GRANTED" in line and "U1001" in line and "0.4 ms" in line
    denied = granted.model_copy(update={"granted": False, "reason": ReasonCode.UNKNOWN_CREDENTIAL,
                                        "subject_id": None, "code": EventCode.ACCESS_DENIED})
    assert "DENIED" in format_message("events/access/lobby", denied.model_dump_json().encode())
    assert "UNKNOWN_CREDENTIAL" in format_message("events/access/lobby", denied.model_dump_json().encode())
    status = GateStatus(gate_id="lobby", state=GateState.OFFLINE)
    assert "OFFLINE" in format_message("gates/lobby/status", status.model_dump_json().encode())
    seen = datetime(2026, 11, 23, 10, 21, 33, tzinfo=UTC)
    down = DeviceEvent(code=EventCode.GATE_OFFLINE, gate_id="lobby", state=GateState.OFFLINE, last_seen=seen)
    line = format_message("events/device/lobby", down.model_dump_json().encode())
    assert "lobby" in line and "OFFLINE" in line and "last seen 10:21:33" in line
    entered = VisitorEvent(code=EventCode.VISITOR_ENTERED, pass_id="P1", resident_id="U1001", visitor_name="Kim",
                           gate_id="lobby", uses=1, max_uses=2)
    line = format_message("events/visitor/P1", entered.model_dump_json().encode())
    assert "VISITOR_ENTERED" in line and "pass=P1" in line and "at lobby" in line and "uses 1/2" in line
    dup = EnrollEvent(code=EventCode.USER_DUPLICATE_CREDENTIAL, command_id="c1", admin_id="admin", action="add_card",
                      target="U2", ok=False, sub_code="CARD", matched_user_id="U1")
    line = format_message("events/enroll/U2", dup.model_dump_json().encode())
    assert "add_card U2: USER_DUPLICATE_CREDENTIAL CARD held by U1" in line
    note = NotificationEvent(recipient_id="U1001", title="Your visitor has arrived", body="Kim entered.")
    assert "NOTIFY U1001: Your visitor has arrived" in format_message("events/notify/U1001",
                                                                      note.model_dump_json().encode())
    assert "unreadable" in format_message("events/access/lobby", b"{bad")


async def test_sigterm_flushes_buffered_access_events(tmp_path: Path, amqtt_broker, embedded_mongo, hasher) -> None:  # type: ignore[no-untyped-def]
    """A service manager stops workers with SIGTERM: decisions already answered must still be stored."""
    import asyncio
    import uuid

    from edge_agent.agent import GateAgent
    from edge_agent.relay import LogRelay
    from store.connect import connect
    from tests.conftest import TEST_HASH_KEY, make_settings
    from tests.platform_fixture import seed_site

    db = f"passage_test_{uuid.uuid4().hex[:10]}"
    client, store = connect(embedded_mongo.uri, db)
    seed_site(store, hasher)
    env = _env(tmp_path, amqtt_broker.port)
    env.update({"PASSAGE_MONGO_URI": embedded_mongo.uri, "PASSAGE_STORE__DATABASE": db,
                "PASSAGE_HASH_KEY": TEST_HASH_KEY, "PASSAGE_FACE__ENABLED": "false",
                # Nothing is written before shutdown unless the shutdown flush does it.
                "PASSAGE_STORE__EVENT_FLUSH_MS": "600000"})
    worker = _passage("auth", env=env)
    gate = GateAgent(make_settings(tmp_path, amqtt_broker), "lobby", relay=LogRelay("lobby"))
    task = asyncio.create_task(gate.run())
    try:
        await gate.mqtt.wait_connected(10)
        decision = None
        for _ in range(100):  # until the worker is up
            decision = await gate.present_card("CARD-1")
            if decision.granted:
                break
        assert decision is not None and decision.granted
        await asyncio.sleep(0.2)
        assert store.count_access_events() == 0  # still buffered in the worker
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 30) == 0
        assert store.count_access_events({"request_id": decision.request_id}) == 1
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        await gate.stop()
        await asyncio.wait_for(task, 10)
        client.drop_database(db)
        client.close()
