"""The gate's offline allow-list: keyed hashes of cards and PINs, their groups' schedules, and the
visitor passes valid here, kept in SQLite and changed only by GateSync snapshots and deltas."""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.codes import CredentialType, ReasonCode
from schemas.documents import WeeklySchedule
from schemas.gate import GateSync, OfflinePass

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cache_entries (
    kind TEXT NOT NULL, key TEXT NOT NULL, subject_id TEXT NOT NULL, groups TEXT NOT NULL,
    PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cache_groups (group_id TEXT PRIMARY KEY, schedule TEXT);
CREATE TABLE IF NOT EXISTS cache_passes (
    pass_id TEXT PRIMARY KEY, valid_until TEXT NOT NULL, uses_left INTEGER NOT NULL,
    uses_local INTEGER NOT NULL DEFAULT 0);
"""


class SyncRefused(Exception):
    """A sync message that cannot be applied to this cache (wrong gate, other lineage, a gap)."""


@dataclass(frozen=True, slots=True)
class CacheAnswer:
    """What the cache says about one presented credential."""

    granted: bool
    reason: ReasonCode
    subject_id: str | None = None


@dataclass(frozen=True, slots=True)
class CacheState:
    """For `passage gate --show-cache` and heartbeats (no credential data)."""

    lineage: str | None
    version: int
    snapshot_version: int
    key_id: str | None
    timezone: str | None
    synced_at: str | None
    cards: int
    pins: int
    groups: int
    passes: int


class GateCache:
    """The offline allow-list of one gate. Not thread-safe: use it from the gate's event loop."""

    def __init__(self, conn: sqlite3.Connection, gate_id: str) -> None:
        self._db = conn
        self.gate_id = gate_id
        self._db.executescript(_SCHEMA)
        self._load_meta()

    # ---- state -------------------------------------------------------------------------------
    def _load_meta(self) -> None:
        meta = dict(self._db.execute("SELECT k, v FROM cache_meta").fetchall())
        self.lineage: str | None = meta.get("lineage")
        self.version = int(meta.get("version", "0"))
        self.snapshot_version = int(meta.get("snapshot_version", "0"))
        self.key_id: str | None = meta.get("key_id")
        self.pass_public_key: str | None = meta.get("pass_public_key") or None
        self._synced_at = meta.get("synced_at")
        self._tz = _zone(meta.get("timezone"))
        self._tz_name = meta.get("timezone")
        self._schedules: dict[str, WeeklySchedule | None] = {}
        for group_id, raw in self._db.execute("SELECT group_id, schedule FROM cache_groups"):
            self._schedules[group_id] = None if raw is None else WeeklySchedule.model_validate_json(raw)

    @property
    def synced(self) -> bool:
        """False until a first snapshot was applied: an empty cache admits nobody."""
        return self.version > 0

    def state(self) -> CacheState:
        def count(sql: str, *args: object) -> int:
            return int(self._db.execute(sql, args).fetchone()[0])

        return CacheState(
            lineage=self.lineage, version=self.version, snapshot_version=self.snapshot_version,
            key_id=self.key_id, timezone=self._tz_name, synced_at=self._synced_at,
            cards=count("SELECT COUNT(*) FROM cache_entries WHERE kind = ?", CredentialType.CARD.value),
            pins=count("SELECT COUNT(*) FROM cache_entries WHERE kind = ?", CredentialType.PIN.value),
            groups=count("SELECT COUNT(*) FROM cache_groups"),
            passes=count("SELECT COUNT(*) FROM cache_passes"))

    # ---- sync --------------------------------------------------------------------------------
    def apply(self, sync: GateSync) -> bool:
        """Apply a snapshot or delta; False if it is one we already have, SyncRefused if it cannot
        apply here (then the gate needs a snapshot)."""
        if sync.gate_id != self.gate_id:
            raise SyncRefused(f"sync for gate {sync.gate_id}, this is {self.gate_id}")
        same_lineage = sync.lineage == self.lineage
        if same_lineage and sync.version <= self.version:
            return False
        if not sync.snapshot:
            assert sync.base_version is not None  # the schema guarantees it for deltas
            if not same_lineage or not self.synced:
                raise SyncRefused(f"delta of lineage {sync.lineage}, cache holds {self.lineage or 'nothing'}")
            if sync.base_version > self.version:
                raise SyncRefused(f"delta from {sync.base_version}, cache is at {self.version}")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if sync.snapshot:
                self._db.execute("DELETE FROM cache_entries")
                self._db.execute("DELETE FROM cache_passes")
            else:
                self._db.executemany("DELETE FROM cache_entries WHERE key = ?", ((k,) for k in sync.removed))
                self._db.executemany("DELETE FROM cache_passes WHERE pass_id = ?",
                                     ((p,) for p in sync.removed_passes))
            self._db.executemany(
                "INSERT OR REPLACE INTO cache_entries (kind, key, subject_id, groups) VALUES (?, ?, ?, ?)",
                ((e.kind.value, e.key, e.subject_id, json.dumps(e.groups)) for e in sync.entries))
            self._db.executemany(
                "INSERT INTO cache_passes (pass_id, valid_until, uses_left) VALUES (?, ?, ?) "
                "ON CONFLICT(pass_id) DO UPDATE SET valid_until = excluded.valid_until, "
                "uses_left = excluded.uses_left",
                ((p.pass_id, p.valid_until.isoformat(), p.uses_left) for p in sync.passes))
            self._db.execute("DELETE FROM cache_groups")
            self._db.executemany(
                "INSERT INTO cache_groups (group_id, schedule) VALUES (?, ?)",
                ((g, None if s is None else s.model_dump_json()) for g, s in sync.groups.items()))
            meta = {"lineage": sync.lineage, "version": str(sync.version), "key_id": sync.key_id,
                    "timezone": sync.timezone, "synced_at": sync.ts.isoformat(),
                    "pass_public_key": sync.pass_public_key or ""}
            if sync.snapshot:
                meta["snapshot_version"] = str(sync.version)
            self._db.executemany("INSERT OR REPLACE INTO cache_meta (k, v) VALUES (?, ?)", meta.items())
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._load_meta()
        return True

    # ---- decisions ---------------------------------------------------------------------------
    def lookup(self, kind: CredentialType, key: str, now: datetime) -> CacheAnswer:
        """Whether the credential with keyed hash `key` may pass now (holder's groups and schedules)."""
        row = self._db.execute("SELECT subject_id, groups FROM cache_entries WHERE kind = ? AND key = ?",
                               (kind.value, key)).fetchone()
        if row is None:
            return CacheAnswer(False, ReasonCode.UNKNOWN_CREDENTIAL)
        subject_id, groups = row[0], json.loads(row[1])
        known = [g for g in groups if g in self._schedules]
        if not known:
            return CacheAnswer(False, ReasonCode.NOT_PERMITTED_AT_GATE, subject_id)
        for group_id in known:
            schedule = self._schedules[group_id]
            if schedule is None or (self._tz is not None and schedule.allows(now, self._tz)):
                return CacheAnswer(True, ReasonCode.GRANTED, subject_id)
        return CacheAnswer(False, ReasonCode.OUTSIDE_SCHEDULE, subject_id)

    def get_pass(self, pass_id: str) -> tuple[OfflinePass, int] | None:
        """A pass valid at this gate and how many times this gate let it through offline."""
        row = self._db.execute("SELECT valid_until, uses_left, uses_local FROM cache_passes WHERE pass_id = ?",
                               (pass_id,)).fetchone()
        if row is None:
            return None
        return OfflinePass(pass_id=pass_id, valid_until=datetime.fromisoformat(row[0]), uses_left=row[1]), row[2]

    def use_pass(self, pass_id: str) -> None:
        """Count one offline use; kept across syncs, so offline uses are never handed back."""
        self._db.execute("UPDATE cache_passes SET uses_local = uses_local + 1 WHERE pass_id = ?", (pass_id,))


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # No schedule can be judged without the site's zone: scheduled groups deny (fail closed).
        log.error("unknown site timezone %r: scheduled access denied offline", name)
        return None
