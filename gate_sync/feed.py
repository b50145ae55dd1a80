"""One gate's versioned sync feed: the current allow-list, its version, and the retained message
that brings any cache of this lineage up to date (a snapshot, or every change since one)."""

from __future__ import annotations

import time

from gate_sync.allow_list import AllowList
from schemas.gate import GateSync


class VersionClock:
    """Versions that only grow, also across restarts of the service (microseconds since the epoch)."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(self._last + 1, time.time_ns() // 1000)
        return self._last


class GateFeed:
    """What one gate should hold, and how to tell it."""

    def __init__(self, gate_id: str, lineage: str, clock: VersionClock, max_delta: int,
                 initial: AllowList) -> None:
        self.gate_id = gate_id
        self.lineage = lineage
        self._clock = clock
        self._max_delta = max_delta
        self.current = initial
        self.version = clock.next()
        self.snapshot_version = self.version
        self._touched: set[str] = set()
        self._touched_passes: set[str] = set()

    def update(self, new: AllowList) -> bool:
        """Adopt `new`; True (and a new version) if anything the gate holds changed."""
        old = self.current
        touched = {k for k in old.entries.keys() | new.entries.keys() if old.entries.get(k) != new.entries.get(k)}
        touched_passes = {p for p in old.passes.keys() | new.passes.keys()
                          if old.passes.get(p) != new.passes.get(p)}
        if not touched and not touched_passes and old.groups == new.groups:
            return False
        self.current = new
        self.version = self._clock.next()
        self._touched |= touched
        self._touched_passes |= touched_passes
        if len(self._touched) + len(self._touched_passes) > self._max_delta:
            self.reset_to_snapshot()
        return True

    def reset_to_snapshot(self) -> None:
        """Make the next message a full snapshot at the current version."""
        self.snapshot_version = self.version
        self._touched.clear()
        self._touched_passes.clear()

    def can_delta_from(self, cache_version: int) -> bool:
        """Whether the retained message applies to a cache of this lineage at `cache_version`."""
        return self.snapshot_version <= cache_version <= self.version

    def message(self, key_id: str, timezone: str, pass_public_key: str | None) -> GateSync:
        """The message to retain on the gate's sync topic now."""
        cur = self.current
        common = {"gate_id": self.gate_id, "lineage": self.lineage, "version": self.version, "key_id": key_id,
                  "timezone": timezone, "groups": cur.groups, "pass_public_key": pass_public_key}
        if self.version == self.snapshot_version:
            return GateSync(snapshot=True, entries=list(cur.entries.values()), passes=list(cur.passes.values()),
                            **common)
        return GateSync(
            snapshot=False, base_version=self.snapshot_version,
            entries=[cur.entries[k] for k in sorted(self._touched) if k in cur.entries],
            removed=sorted(k for k in self._touched if k not in cur.entries),
            passes=[cur.passes[p] for p in sorted(self._touched_passes) if p in cur.passes],
            removed_passes=sorted(p for p in self._touched_passes if p not in cur.passes),
            **common)
