"""The liveness rules on an exact clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.liveness import ChangeKind, Liveness, LivenessTracker

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def wall(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def kinds(changes: list) -> list[ChangeKind]:  # type: ignore[type-arg]
    return [c.kind for c in changes]


def test_will_then_alert_once_after_delay_then_recovery() -> None:
    t = LivenessTracker(alert_delay_s=10, heartbeat_timeout_s=8)
    assert kinds(t.status("g", True, 0, wall(0), live=True)) == [ChangeKind.CAME_UP]
    assert kinds(t.status("g", False, 5, wall(5), live=True)) == [ChangeKind.WENT_DOWN]
    assert t.next_deadline() == 15
    assert t.due(14.9, wall(14.9)) == []
    assert kinds(t.due(15, wall(15))) == [ChangeKind.ALERT]
    assert t.due(100, wall(100)) == []  # once per outage
    assert kinds(t.status("g", True, 101, wall(101), live=True)) == [ChangeKind.CAME_UP, ChangeKind.RECOVERED]


def test_flap_and_retained_online() -> None:
    t = LivenessTracker(alert_delay_s=10, heartbeat_timeout_s=8)
    t.status("g", True, 0, wall(0), live=False)
    assert t.health_of("g").last_seen is None  # type: ignore[union-attr]
    t.status("g", False, 1, wall(1), live=True)
    assert kinds(t.status("g", True, 9, wall(9), live=True)) == [ChangeKind.CAME_UP]  # no RECOVERED
    assert t.due(30, wall(30)) == []  # never answered pings: no heartbeat supervision


def test_silence_dates_the_outage_from_the_last_heartbeat_and_grace_after_our_own_outage() -> None:
    t = LivenessTracker(alert_delay_s=10, heartbeat_timeout_s=8)
    t.heartbeat("g", 0, wall(0))
    assert t.due(7.9, wall(7.9)) == []
    [down] = t.due(8, wall(8))
    assert down.kind is ChangeKind.WENT_DOWN and down.down_since == wall(0)
    assert kinds(t.due(10, wall(10))) == [ChangeKind.ALERT]  # 10 s after it was last heard
    t2 = LivenessTracker(alert_delay_s=10, heartbeat_timeout_s=8)
    t2.heartbeat("g", 0, wall(0))
    t2.grace(50)  # our own link was down from 1 to 50
    assert t2.due(57, wall(57)) == [] and t2.health_of("g").state is Liveness.ONLINE  # type: ignore[union-attr]
    assert kinds(t2.due(58, wall(58))) == [ChangeKind.WENT_DOWN]
