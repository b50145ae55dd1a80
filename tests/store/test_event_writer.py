"""The access-event writer and its write-ahead journal, on every store backend."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pymongo
import pytest

from config.ports import free_port
from schemas.base import utc_now
from schemas.codes import CredentialType, ReasonCode
from schemas.documents import AccessEventRecord
from store.event_journal import EventJournal, JournalError
from store.event_writer import EventWriter
from store.repository import Store
from tests.conftest import eventually

ROOT = Path(__file__).resolve().parents[2]

# A writer process that journals `n` events and dies by SIGKILL before any flush.
_KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from schemas.base import utc_now
from schemas.codes import CredentialType, ReasonCode
from schemas.documents import AccessEventRecord
from store.event_journal import EventJournal

journal = EventJournal(Path(sys.argv[1]))
journal.open()
for i in range(int(sys.argv[2])):
    if i and i % 7 == 0:
        journal.seal()  # several segments, as a flush cycle would leave behind
    journal.append(AccessEventRecord(id=f"dead-{i}", ts=utc_now(), request_id=f"r{i}", gate_id="gate-1",
                                     credential_type=CredentialType.CARD, granted=True,
                                     reason=ReasonCode.GRANTED, subject_id="U1", latency_ms=1.0))
os.kill(os.getpid(), signal.SIGKILL)
"""


def _record(i: int) -> AccessEventRecord:
    return AccessEventRecord(id=f"ev-{i}", ts=utc_now(), request_id=f"req-{i}", gate_id="gate-1",
                             credential_type=CredentialType.CARD, granted=i % 2 == 0,
                             reason=ReasonCode.GRANTED if i % 2 == 0 else ReasonCode.UNKNOWN_CREDENTIAL,
                             subject_id="U1" if i % 2 == 0 else None, latency_ms=1.5)


def _die_after_journaling(directory: Path, n: int) -> None:
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(directory), str(n)], cwd=ROOT,
                          capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode(errors="replace")


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_a_killed_writers_journal_is_adopted_whole(tmp_path: Path) -> None:
    _die_after_journaling(tmp_path, 30)
    assert len(_files(tmp_path)) == 1 + 5  # its lock and five segments
    heir = EventJournal(tmp_path)
    heir.open()
    [orphan] = heir.orphans()
    assert [r.id for r in orphan.records] == [f"dead-{i}" for i in range(30)]
    assert orphan.torn == 0
    orphan.discard()
    assert _files(tmp_path) == [f"{heir.owner}.lock"]
    heir.close(everything_stored=True)
    assert _files(tmp_path) == []


def test_a_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    _die_after_journaling(tmp_path, 3)
    [segment] = [p for p in tmp_path.iterdir() if p.suffix == ".jsonl"]
    with segment.open("ab") as f:
        f.write(b'{"id":"dead-3","ts":"2026-')  # what a write cut short by the kill leaves
    heir = EventJournal(tmp_path)
    heir.open()
    [orphan] = heir.orphans()
    assert [r.id for r in orphan.records] == ["dead-0", "dead-1", "dead-2"]
    assert orphan.torn == 1
    orphan.release()


def test_a_live_writers_journal_is_left_alone(tmp_path: Path) -> None:
    alive = EventJournal(tmp_path)
    alive.open()
    alive.append(_record(1))
    other = EventJournal(tmp_path)
    other.open()
    assert other.orphans() == []
    assert len(_files(tmp_path)) == 3  # two locks, the live writer's segment
    alive.close(everything_stored=False)
    # Its lock is gone with it: now it is an orphan.
    [orphan] = other.orphans()
    assert [r.id for r in orphan.records] == ["ev-1"]
    orphan.release()


def test_an_unusable_directory_is_a_typed_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(JournalError):
        EventJournal(blocker / "journal").open()


async def test_written_events_leave_no_journal_behind(tmp_path: Path, store: Store) -> None:
    writer = EventWriter(store, batch_size=4, flush_ms=10, journal=EventJournal(tmp_path))
    writer.open()
    task = asyncio.create_task(writer.run())
    try:
        for i in range(10):
            writer.add(_record(i))
        await eventually(lambda: store.count_access_events() == 10)
        # Once a flush has emptied the buffer, only the lock (and at most a fresh segment) is left.
        await eventually(lambda: all(not n.endswith(".jsonl") for n in _files(tmp_path)))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await writer.close()
    assert _files(tmp_path) == []
    assert writer.written == 10


async def test_a_killed_writers_events_reach_the_store_once(tmp_path: Path, store: Store) -> None:
    _die_after_journaling(tmp_path, 30)
    writer = EventWriter(store, flush_ms=10, journal=EventJournal(tmp_path), adopt_every_s=0.05)
    writer.open()
    task = asyncio.create_task(writer.run())
    try:
        await eventually(lambda: store.count_access_events() == 30)
        assert writer.adopted == 30
        # Adopted again by nobody: the dead writer's files are gone.
        await asyncio.sleep(0.2)
        assert writer.adopted == 30
        assert all(n.startswith(writer._journal.owner) for n in _files(tmp_path))  # type: ignore[union-attr]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await writer.close()
    assert store.count_access_events() == 30
    assert _files(tmp_path) == []


async def test_events_a_down_store_never_took_survive_a_restart(tmp_path: Path, store: Store) -> None:
    # A real driver against a port nobody listens on: every insert fails.
    down = pymongo.MongoClient(f"mongodb://127.0.0.1:{free_port()}", serverSelectionTimeoutMS=100)
    try:
        first = EventWriter(Store(down["passage"]), flush_ms=10, journal=EventJournal(tmp_path))
        first.open()
        for i in range(5):
            first.add(_record(i))
        await first.close()  # cannot write them: they stay on disk
        assert first.written == 0 and first.pending == 5
    finally:
        down.close()
    assert any(n.endswith(".jsonl") for n in _files(tmp_path))
    restarted = EventWriter(store, flush_ms=10, journal=EventJournal(tmp_path), adopt_every_s=0.05)
    restarted.open()
    task = asyncio.create_task(restarted.run())
    try:
        await eventually(lambda: store.count_access_events() == 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await restarted.close()
    assert {r.id for r in store.access_events_for_gate("gate-1")} == {f"ev-{i}" for i in range(5)}
    assert _files(tmp_path) == []
