"""The gate's SQLite cache and offline decisions, on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent.cache import GateCache, SyncRefused
from edge_agent.db import open_gate_db
from edge_agent.offline import decide_offline
from edge_agent.offline_log import OfflineLog
from schemas.access import CardCredential, FaceCredential, PinCredential, QrCredential
from schemas.codes import CredentialType, ReasonCode
from schemas.documents import TimeWindow, WeeklySchedule
from schemas.gate import GateSync, OfflineDecision, OfflineEntry
from store.keyed_hash import KeyedHasher, pin_secret

HASHER = KeyedHasher(b"s" * 32)
MONDAY_10 = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)  # a Monday
SUNDAY_10 = datetime(2024, 1, 7, 10, 0, tzinfo=UTC)
WEEKDAYS = WeeklySchedule(windows=[TimeWindow(days=[0, 1, 2, 3, 4], start="08:00", end="18:00")])


def _card(acc: str, user: str, groups: list[str]) -> OfflineEntry:
    return OfflineEntry(kind=CredentialType.CARD, key=HASHER.lookup_key(CredentialType.CARD, acc), subject_id=user,
                        groups=groups)


def _sync(version: int, *, base: int | None = None, lineage: str = "L1", **fields: object) -> GateSync:
    return GateSync(gate_id="lobby", lineage=lineage, version=version, snapshot=base is None, base_version=base,
                    key_id=HASHER.key_id, timezone="UTC", **fields)  # type: ignore[arg-type]


def _cache(tmp_path: Path) -> GateCache:
    return GateCache(open_gate_db(tmp_path / "gate.sqlite3"), "lobby")


def test_empty_cache_admits_nobody(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    answer = decide_offline(CardCredential(acc_id="C1"), cache, HASHER, MONDAY_10, "lobby")
    assert not cache.synced and not answer.granted and answer.reason is ReasonCode.TIMEOUT


def test_snapshot_deltas_and_schedules(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    groups = {"res": None, "staff": WEEKDAYS}
    assert cache.apply(_sync(10, groups=groups, entries=[_card("C1", "U1", ["res"]), _card("C2", "U2", ["staff"])]))

    def decide(acc: str, at: datetime = MONDAY_10) -> tuple[bool, ReasonCode]:
        a = decide_offline(CardCredential(acc_id=acc), cache, HASHER, at, "lobby")
        return a.granted, a.reason

    assert decide("C1") == (True, ReasonCode.GRANTED)
    assert decide("C2") == (True, ReasonCode.GRANTED)
    assert decide("C2", SUNDAY_10) == (False, ReasonCode.OUTSIDE_SCHEDULE)
    assert decide("C9") == (False, ReasonCode.UNKNOWN_CREDENTIAL)
    # A cumulative delta from snapshot 10 removes C1 and adds C3.
    delta = _sync(12, base=10, groups=groups, entries=[_card("C3", "U3", ["res"])],
                  removed=[HASHER.lookup_key(CredentialType.CARD, "C1")])
    assert cache.apply(delta)
    assert decide("C1") == (False, ReasonCode.UNKNOWN_CREDENTIAL) and decide("C3") == (True, ReasonCode.GRANTED)
    assert not cache.apply(delta)  # already held: ignored
    # The same delta grown by one more change still applies to a cache at 12 (it is cumulative from 10).
    assert cache.apply(_sync(13, base=10, groups=groups, entries=[_card("C3", "U3", ["res"])],
                             removed=[HASHER.lookup_key(CredentialType.CARD, "C1"),
                                      HASHER.lookup_key(CredentialType.CARD, "C2")]))
    assert decide("C2") == (False, ReasonCode.UNKNOWN_CREDENTIAL)
    # Reopening the file finds the same state (it is on disk).
    again = GateCache(open_gate_db(tmp_path / "gate.sqlite3"), "lobby")
    assert (again.version, again.snapshot_version, again.state().cards) == (13, 10, 1)


def test_deltas_that_cannot_apply_are_refused(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    with pytest.raises(SyncRefused):
        cache.apply(_sync(5, base=4))  # nothing to apply a delta to
    cache.apply(_sync(10, groups={"res": None}, entries=[_card("C1", "U1", ["res"])]))
    with pytest.raises(SyncRefused):
        cache.apply(_sync(20, base=15))  # a gap: changes between 10 and 15 are unknown here
    with pytest.raises(SyncRefused):
        cache.apply(_sync(20, base=5, lineage="L2"))  # another run of the sync service
    with pytest.raises(SyncRefused):
        cache.apply(GateSync(gate_id="garage", lineage="L1", version=30, snapshot=True, key_id="k", timezone="UTC"))
    assert cache.version == 10 and cache.state().cards == 1
    # Any snapshot of a new lineage replaces everything.
    assert cache.apply(_sync(3, lineage="L2"))
    assert cache.state().cards == 0 and cache.lineage == "L2"


def test_pins_faces_and_qr_offline(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    pin = OfflineEntry(kind=CredentialType.PIN, key=HASHER.lookup_key(CredentialType.PIN, pin_secret("1203", "4821")),
                       subject_id="U1", groups=["res"])
    cache.apply(_sync(10, groups={"res": None}, entries=[pin]))
    ok = decide_offline(PinCredential(pin="4821", unit="1203"), cache, HASHER, MONDAY_10, "lobby")
    wrong_unit = decide_offline(PinCredential(pin="4821", unit="0801"), cache, HASHER, MONDAY_10, "lobby")
    assert ok.granted and ok.subject_id == "U1" and not wrong_unit.granted
    face = decide_offline(FaceCredential(jpeg=b"\xff\xd8"), cache, HASHER, MONDAY_10, "lobby")
    assert not face.granted and face.reason is ReasonCode.OFFLINE_UNSUPPORTED
    qr = decide_offline(QrCredential(payload="not-a-pass"), cache, HASHER, MONDAY_10, "lobby")
    assert not qr.granted
    # A gate holding another key cannot look anything up: denied.
    other = KeyedHasher(b"o" * 32)
    assert not decide_offline(PinCredential(pin="4821", unit="1203"), cache, other, MONDAY_10, "lobby").granted
    # After a rotation the gate holds the new key and the previous one: old hashes still match.
    rotated = KeyedHasher(b"n" * 32, previous=[b"s" * 32])
    cache.apply(_sync(11, base=10, groups={"res": None}, entries=[pin]).model_copy(update={"key_id": rotated.key_id}))
    assert decide_offline(PinCredential(pin="4821", unit="1203"), cache, rotated, MONDAY_10, "lobby").granted


def test_offline_log_is_durable_and_forgets_only_acked(tmp_path: Path) -> None:
    log = OfflineLog(open_gate_db(tmp_path / "q.sqlite3"))
    ds = [OfflineDecision(event_id=f"e{i}", request_id=f"r{i}", ts=MONDAY_10, credential_type=CredentialType.CARD,
                          granted=False, reason=ReasonCode.UNKNOWN_CREDENTIAL) for i in range(5)]
    for d in ds:
        log.append(d)
    log.append(ds[0])  # the same event twice is queued once
    assert len(log) == 5 and [d.event_id for _, d in log.oldest(2)] == ["e0", "e1"]
    assert log.remove(["e1", "e3", "unknown"]) == 2
    reopened = OfflineLog(open_gate_db(tmp_path / "q.sqlite3"))
    assert [d.event_id for _, d in reopened.oldest(10)] == ["e0", "e2", "e4"]


def test_visitor_passes_offline(tmp_path: Path) -> None:
    from datetime import timedelta

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from schemas.gate import OfflinePass
    from visitor_pass.keys import public_key_hex
    from visitor_pass.token import PassClaims, PassSigner

    signer = PassSigner(Ed25519PrivateKey.generate())
    start = MONDAY_10 - timedelta(hours=1)

    def token(pass_id: str, gates: tuple[str, ...] = ("lobby",), signer: PassSigner = signer) -> str:
        return signer.sign(PassClaims(pass_id=pass_id, valid_from=start, valid_until=start + timedelta(hours=4),
                                      gate_ids=gates, max_uses=2))

    listed = "a" * 32
    cache = _cache(tmp_path)
    cache.apply(_sync(10, pass_public_key=public_key_hex(signer.public_key),
                      passes=[OfflinePass(pass_id=listed, valid_until=start + timedelta(hours=4), uses_left=2)]))

    def decide(payload: str, at: datetime = MONDAY_10) -> tuple[bool, ReasonCode]:
        a = decide_offline(QrCredential(payload=payload), cache, HASHER, at, "lobby")
        return a.granted, a.reason

    assert decide(token(listed)) == (True, ReasonCode.GRANTED)
    assert decide(token(listed)) == (True, ReasonCode.GRANTED)
    assert decide(token(listed)) == (False, ReasonCode.PASS_USED_UP)  # two uses, counted at this gate
    assert decide(token("b" * 32)) == (False, ReasonCode.PASS_REVOKED)  # not in the synced list
    assert decide(token(listed, ("garage",))) == (False, ReasonCode.NOT_PERMITTED_AT_GATE)
    assert decide(token(listed), MONDAY_10 + timedelta(days=1)) == (False, ReasonCode.PASS_EXPIRED)
    forger = PassSigner(Ed25519PrivateKey.generate())
    assert decide(token(listed, signer=forger)) == (False, ReasonCode.BAD_SIGNATURE)
    assert not decide("PV1.garbage.garbage")[0]
