"""Gate liveness as a pure state machine: status and heartbeat observations in, changes out.

Times are monotonic seconds (`now`) passed in by the caller, so the rules can be exercised exactly;
wall-clock times are kept only for display (last seen, down since).

Rules:
- a gate is DOWN when its status says offline (its last will, or a goodbye), or, once it has
  answered a ping, when it has been silent for `heartbeat_timeout_s`; a silent gate is down since
  the last time it was heard from;
- it is UP again on a live online status or any heartbeat;
- an ALERT is due when a gate has been down for `alert_delay_s` without coming back: one per
  outage; a shorter flap alerts no one; a RECOVERY follows only an outage that was alerted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime

from schemas.base import Identifier, StrictModel


class Liveness(StrEnum):
    UNKNOWN = "unknown"
    ONLINE = "online"
    OFFLINE = "offline"


class ChangeKind(StrEnum):
    WENT_DOWN = "went_down"
    CAME_UP = "came_up"
    ALERT = "alert"
    RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class Change:
    """Something the monitor must announce."""

    kind: ChangeKind
    gate_id: str
    reason: str
    down_since: datetime | None = None


class GateHealth(StrictModel):
    """One gate as the monitor sees it (for the console and `passage watch`)."""

    gate_id: Identifier
    state: Liveness
    last_seen: AwareDatetime | None
    down_since: AwareDatetime | None
    down_reason: str | None
    alerted: bool
    answers_pings: bool


@dataclass(slots=True)
class _Gate:
    gate_id: str
    state: Liveness = Liveness.UNKNOWN
    last_seen: datetime | None = None  # wall clock, when we last heard it live
    heard_at: float | None = None  # monotonic twin of last_seen (or a grace baseline)
    answers_pings: bool = False
    down_at: float | None = None
    down_since: datetime | None = None
    down_reason: str | None = None
    alerted: bool = False

    def health(self) -> GateHealth:
        return GateHealth(gate_id=self.gate_id, state=self.state, last_seen=self.last_seen,
                          down_since=self.down_since, down_reason=self.down_reason, alerted=self.alerted,
                          answers_pings=self.answers_pings)


class LivenessTracker:
    """Every known gate's liveness; feed it observations and `due()` on a clock."""

    def __init__(self, alert_delay_s: float, heartbeat_timeout_s: float) -> None:
        self._delay = alert_delay_s
        self._timeout = heartbeat_timeout_s
        self._gates: dict[str, _Gate] = {}

    def know(self, gate_id: str) -> None:
        """Add a gate to supervise (from the store) without any observation yet."""
        self._gates.setdefault(gate_id, _Gate(gate_id))

    def forget(self, gate_id: str) -> None:
        """Stop supervising a gate (deactivated)."""
        self._gates.pop(gate_id, None)

    def gate_ids(self) -> list[str]:
        return sorted(self._gates)

    def status(self, gate_id: str, online: bool, now: float, wall: datetime, *, live: bool) -> list[Change]:
        """A `gates/{id}/status` message: `live` is False for a retained one (old news at connect)."""
        gate = self._gates.setdefault(gate_id, _Gate(gate_id))
        if online:
            if live:
                self._heard(gate, now, wall)
            elif gate.heard_at is None:
                # A retained "online" proves nothing about now; heartbeats will.
                gate.heard_at = now
            return self._up(gate, "status online")
        return self._down(gate, now, wall, "status offline (last will or shutdown)", now)

    def heartbeat(self, gate_id: str, now: float, wall: datetime) -> list[Change]:
        """A heartbeat: the gate is alive now, and answers pings from here on."""
        gate = self._gates.setdefault(gate_id, _Gate(gate_id))
        self._heard(gate, now, wall)
        gate.answers_pings = True
        return self._up(gate, "heartbeat")

    def due(self, now: float, wall: datetime) -> list[Change]:
        """Silences that became outages and outages that became alerts by `now`."""
        changes: list[Change] = []
        for gate in self._gates.values():
            if (gate.state is Liveness.ONLINE and gate.answers_pings and gate.heard_at is not None
                    and now - gate.heard_at >= self._timeout):
                silent_for = now - gate.heard_at
                changes += self._down(gate, gate.heard_at, wall - timedelta(seconds=silent_for),
                                      f"no heartbeat for {silent_for:.1f}s", now)
            if (gate.state is Liveness.OFFLINE and not gate.alerted and gate.down_at is not None
                    and now - gate.down_at >= self._delay):
                gate.alerted = True
                changes.append(Change(ChangeKind.ALERT, gate.gate_id, gate.down_reason or "offline",
                                      gate.down_since))
        return changes

    def next_deadline(self) -> float | None:
        """The monotonic time at which `due()` may next have something to say."""
        deadlines: list[float] = []
        for gate in self._gates.values():
            if gate.state is Liveness.ONLINE and gate.answers_pings and gate.heard_at is not None:
                deadlines.append(gate.heard_at + self._timeout)
            elif gate.state is Liveness.OFFLINE and not gate.alerted and gate.down_at is not None:
                deadlines.append(gate.down_at + self._delay)
        return min(deadlines, default=None)

    def grace(self, now: float) -> None:
        """After our own link to the broker was down: heartbeats could not reach us, so silence
        during that time proves nothing. Restart every heartbeat clock from `now`."""
        for gate in self._gates.values():
            if gate.heard_at is not None:
                gate.heard_at = max(gate.heard_at, now)

    def health(self) -> list[GateHealth]:
        return [self._gates[g].health() for g in sorted(self._gates)]

    def health_of(self, gate_id: str) -> GateHealth | None:
        gate = self._gates.get(gate_id)
        return gate.health() if gate is not None else None

    @staticmethod
    def _heard(gate: _Gate, now: float, wall: datetime) -> None:
        gate.heard_at = now
        gate.last_seen = wall

    @staticmethod
    def _up(gate: _Gate, reason: str) -> list[Change]:
        if gate.state is Liveness.ONLINE:
            return []
        was_down = gate.state is Liveness.OFFLINE
        changes = [Change(ChangeKind.CAME_UP, gate.gate_id, reason)]
        if was_down and gate.alerted:
            changes.append(Change(ChangeKind.RECOVERED, gate.gate_id, reason, gate.down_since))
        gate.state = Liveness.ONLINE
        gate.down_at = gate.down_since = gate.down_reason = None
        gate.alerted = False
        return changes

    @staticmethod
    def _down(gate: _Gate, since: float, since_wall: datetime, reason: str, now: float) -> list[Change]:
        if gate.state is Liveness.OFFLINE:
            return []
        gate.state = Liveness.OFFLINE
        gate.down_at = min(since, now)
        gate.down_since = since_wall
        gate.down_reason = reason
        gate.alerted = False
        return [Change(ChangeKind.WENT_DOWN, gate.gate_id, reason, since_wall)]
