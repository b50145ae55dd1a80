"""The gate's queue of decisions taken offline: written (and synced) before the door moves,
deleted only when the server acknowledged storing them, so neither a power cut nor a lost
upload loses one."""

from __future__ import annotations

import sqlite3

from schemas.gate import OfflineDecision

_SCHEMA = """
CREATE TABLE IF NOT EXISTS offline_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL);
"""


class OfflineLog:
    """A durable FIFO of OfflineDecision. Not thread-safe: use it from the gate's event loop."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._db = conn
        self._db.executescript(_SCHEMA)

    def append(self, decision: OfflineDecision) -> None:
        """Store one decision durably (returns after the commit is on disk)."""
        self._db.execute("INSERT OR IGNORE INTO offline_log (event_id, body) VALUES (?, ?)",
                         (decision.event_id, decision.model_dump_json()))

    def oldest(self, limit: int, after_seq: int = 0) -> list[tuple[int, OfflineDecision]]:
        """Up to `limit` queued decisions after `after_seq`, oldest first, with their sequence numbers."""
        rows = self._db.execute("SELECT seq, body FROM offline_log WHERE seq > ? ORDER BY seq LIMIT ?",
                                (after_seq, limit)).fetchall()
        return [(seq, OfflineDecision.model_validate_json(body)) for seq, body in rows]

    def remove(self, event_ids: list[str]) -> int:
        """Forget acknowledged decisions; returns how many were still queued."""
        if not event_ids:
            return 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cur = self._db.executemany("DELETE FROM offline_log WHERE event_id = ?", ((e,) for e in event_ids))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return cur.rowcount

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM offline_log").fetchone()[0])
