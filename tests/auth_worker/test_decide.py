"""Every card rule, without a broker: the decision function is pure."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from auth_worker.decide import decide
from auth_worker.snapshot import AccessSnapshot
from schemas.access import AccessRequest, CardCredential, PinCredential
from schemas.codes import CredentialType, ReasonCode
from schemas.documents import AccessGroup, Gate, StoredCredential, TimeWindow, User, WeeklySchedule
from store.keyed_hash import KeyedHasher

HASHER = KeyedHasher(b"s" * 32)
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday
SEOUL = ZoneInfo("Asia/Seoul")  # 19:00 local at NOW


def _snapshot(*, user_active: bool = True, cred_active: bool = True,
              schedule: WeeklySchedule | None = None) -> AccessSnapshot:
    card = StoredCredential(id="c1", kind=CredentialType.CARD, user_id="U1", active=cred_active,
                            lookup_key=HASHER.lookup_key(CredentialType.CARD, "CARD-1"), key_id=HASHER.key_id)
    return AccessSnapshot(
        credentials={(card.kind, card.lookup_key): card},
        users={"U1": User(id="U1", name="Kim", groups=["res"], active=user_active)},
        gates={"lobby": Gate(id="lobby", name="Lobby"), "garage": Gate(id="garage", name="Garage"),
               "old": Gate(id="old", name="Old", active=False)},
        groups={"res": AccessGroup(id="res", name="Residents", gate_ids=["lobby"], schedule=schedule)},
    )


def _decide(snapshot: AccessSnapshot, gate: str = "lobby", card: str = "CARD-1",
            topic_gate: str | None = None, ts: datetime = NOW, credential: object = None):  # type: ignore[no-untyped-def]
    req = AccessRequest(request_id="r1", gate_id=gate, ts=ts,
                        credential=credential or CardCredential(acc_id=card))
    return decide(req, topic_gate or gate, snapshot, HASHER, NOW, SEOUL, 60.0, 30.0)


def test_granted() -> None:
    d = _decide(_snapshot())
    assert d.granted and d.reason is ReasonCode.GRANTED and d.subject_id == "U1"


@pytest.mark.parametrize("kwargs, call, reason", [
    ({}, {"card": "CARD-2"}, ReasonCode.UNKNOWN_CREDENTIAL),
    ({"cred_active": False}, {}, ReasonCode.CREDENTIAL_REVOKED),
    ({"user_active": False}, {}, ReasonCode.USER_INACTIVE),
    ({}, {"gate": "garage"}, ReasonCode.NOT_PERMITTED_AT_GATE),
    ({}, {"gate": "nowhere"}, ReasonCode.UNKNOWN_GATE),
    ({}, {"gate": "old"}, ReasonCode.UNKNOWN_GATE),
    ({}, {"topic_gate": "garage"}, ReasonCode.GATE_MISMATCH),
    ({}, {"ts": NOW - timedelta(seconds=61)}, ReasonCode.STALE_REQUEST),
    ({}, {"ts": NOW + timedelta(seconds=31)}, ReasonCode.STALE_REQUEST),
    ({}, {"credential": PinCredential(pin="1234")}, ReasonCode.UNKNOWN_CREDENTIAL),
])
def test_denials(kwargs: dict[str, bool], call: dict[str, object], reason: ReasonCode) -> None:
    d = _decide(_snapshot(**kwargs), **call)  # type: ignore[arg-type]
    assert not d.granted
    assert d.reason is reason


def test_schedule_in_site_timezone() -> None:
    evening = WeeklySchedule(windows=[TimeWindow(days=[0], start="18:00", end="20:00")])
    morning = WeeklySchedule(windows=[TimeWindow(days=[0, 1, 2, 3, 4], start="07:00", end="09:00")])
    weekend = WeeklySchedule(windows=[TimeWindow(days=[5, 6], start="00:00", end="24:00")])
    assert _decide(_snapshot(schedule=evening)).granted  # 19:00 Monday in Seoul
    assert _decide(_snapshot(schedule=morning)).reason is ReasonCode.OUTSIDE_SCHEDULE
    assert _decide(_snapshot(schedule=weekend)).reason is ReasonCode.OUTSIDE_SCHEDULE


def test_time_window_validation() -> None:
    with pytest.raises(ValueError):
        TimeWindow(days=[0], start="20:00", end="08:00")
    with pytest.raises(ValueError):
        TimeWindow(days=[7], start="08:00", end="09:00")
    with pytest.raises(ValueError):
        TimeWindow(days=[0], start="8:00", end="09:00")
