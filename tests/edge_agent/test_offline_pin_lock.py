"""Offline, a gate's keypad locks a unit's PIN entry after repeated wrong PINs, as the auth worker does."""

from __future__ import annotations

from pathlib import Path

from config.ports import free_port
from config.settings import AuthSettings, GateSettings, MqttSettings, Settings
from edge_agent.agent import GateAgent
from edge_agent.cache import GateCache
from edge_agent.db import open_gate_db
from schemas.access import PinCredential
from schemas.codes import CredentialType, ReasonCode
from schemas.gate import GateSync, OfflineEntry
from store.keyed_hash import KeyedHasher, pin_secret

KEY = "73" * 32


async def test_wrong_pins_lock_the_unit_offline(tmp_path: Path) -> None:
    hasher = KeyedHasher.from_secret(KEY)
    cache_file = tmp_path / "gate.sqlite3"
    db = open_gate_db(cache_file)
    entries = [OfflineEntry(kind=CredentialType.PIN, subject_id=user, groups=["res"],
                            key=hasher.lookup_key(CredentialType.PIN, pin_secret(unit, "4821")))
               for unit, user in (("1203", "U1"), ("0801", "U3"))]
    assert GateCache(db, "lobby").apply(GateSync(gate_id="lobby", lineage="L1", version=1, snapshot=True,
                                                 key_id=hasher.key_id, timezone="UTC", groups={"res": None},
                                                 entries=entries))
    db.close()
    # No broker listens: every decision is the gate's own.
    settings = Settings(data_dir=tmp_path, hash_key=KEY,  # type: ignore[arg-type]
                        mqtt=MqttSettings(port=free_port()), auth=AuthSettings(pin_max_failures=3),
                        gate=GateSettings(cache_path=cache_file, request_timeout_s=0.2, door_open_s=0.01))
    gate = GateAgent(settings, "lobby")
    assert (await gate.present(PinCredential(pin="4821", unit="1203"))).granted
    for guess in ("1111", "2222", "3333"):
        wrong = await gate.present(PinCredential(pin=guess, unit="1203"))
        assert wrong.offline and wrong.reason == ReasonCode.UNKNOWN_CREDENTIAL.value
    locked = await gate.present(PinCredential(pin="4821", unit="1203"))
    assert locked.offline and not locked.granted and locked.reason == ReasonCode.TOO_MANY_ATTEMPTS.value
    assert (await gate.present(PinCredential(pin="4821", unit="0801"))).granted  # another unit is not locked
    queued = len(gate.offline_log)
    assert queued == 6  # every decision, the refused ones too, waits for upload
    await gate.stop()
