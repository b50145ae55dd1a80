"""The gate's one SQLite file: WAL, and every commit synced to disk before the door moves."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_gate_db(path: Path) -> sqlite3.Connection:
    """Open (creating) the gate database at `path`, in WAL mode with full syncs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we open transactions ourselves, so a snapshot applies all or nothing.
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit survives a power cut (NORMAL in WAL mode may lose the last transactions).
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn
