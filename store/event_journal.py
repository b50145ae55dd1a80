"""A local write-ahead journal of access events, so an answered decision outlives its worker.

The auth worker answers first and writes events to the store in batches (the store stays off the
decision path). Before answering, each event is appended to a journal file; a batch's segments are
deleted once the store has it. A worker that dies (even by SIGKILL) leaves its segments behind;
any worker sharing the directory adopts them as soon as the dead worker's `flock` is released (at
once: the kernel drops it with the process), and a restarted worker does the same at start.

Each writer owns `<owner>.lock` (held with `flock` for its lifetime) and writes segments
`<owner>.<seq>.jsonl`. A line is one `AccessEventRecord`; a torn last line (killed mid-write) is
skipped. Events are stored by event id, so a record journaled twice is still stored once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from schemas.documents import AccessEventRecord

log = logging.getLogger(__name__)

_LOCK = ".lock"
_SEGMENT = ".jsonl"


class JournalError(OSError):
    """The journal directory cannot be used (permissions, disk full)."""


@dataclass
class Orphan:
    """What a dead writer left: its records and the files to delete once they are kept elsewhere."""

    owner: str
    records: list[AccessEventRecord]
    files: list[Path]
    torn: int = 0
    _lock_fd: int = field(default=-1, repr=False)

    def discard(self) -> None:
        """Delete the dead writer's files (segments first, its lock last) and let go of its lock."""
        for path in self.files:
            path.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        """Let go of the dead writer's lock (its files stay for a later try unless discarded)."""
        _close(self._lock_fd)
        self._lock_fd = -1


def _close(fd: int) -> None:
    if fd >= 0:
        os.close(fd)


class EventJournal:
    """One writer's journal in a shared directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.owner = secrets.token_hex(6)
        self._lock_fd = -1
        self._fd = -1
        self._seq = 0
        self._sealed: list[Path] = []

    def open(self) -> None:
        """Create the directory (0700) and take this writer's lock."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self._lock_path(self.owner), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError(f"event journal {self.directory} unusable: {exc.strerror}") from exc
        # Held until this process ends: that is how other writers know it is alive.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock_fd = fd

    def append(self, record: AccessEventRecord) -> None:
        """Write one record to the current segment (one `write`: it survives the process dying)."""
        if self._fd < 0:
            self._seq += 1
            path = self._segment_path(self._seq)
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError as exc:
                raise JournalError(f"event journal segment unusable: {exc.strerror}") from exc
        line = record.model_dump_json().encode() + b"\n"
        try:
            os.write(self._fd, line)
        except OSError as exc:
            raise JournalError(f"event journal write failed: {exc.strerror}") from exc

    def seal(self) -> None:
        """Close the current segment; what is in the write buffer now is all in sealed segments."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._sealed.append(self._segment_path(self._seq))

    def forget_sealed(self) -> None:
        """Every sealed record is in the store: delete the sealed segments."""
        for path in self._sealed:
            path.unlink(missing_ok=True)
        self._sealed.clear()

    def close(self, everything_stored: bool) -> None:
        """Stop writing; with `everything_stored`, remove this writer's files too."""
        self.seal()
        if everything_stored:
            self.forget_sealed()
            self._lock_path(self.owner).unlink(missing_ok=True)
        _close(self._lock_fd)
        self._lock_fd = -1

    def orphans(self) -> list[Orphan]:
        """Journals of writers that are gone, each locked for the caller until discarded/released."""
        found = []
        for lock_path in sorted(self.directory.glob(f"*{_LOCK}")):
            owner = lock_path.name[: -len(_LOCK)]
            if owner == self.owner:
                continue
            try:
                fd = os.open(lock_path, os.O_RDWR)
            except FileNotFoundError:
                continue  # another writer adopted it a moment ago
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # its writer is alive
                continue
            found.append(self._read_orphan(owner, fd))
        return found

    def _read_orphan(self, owner: str, lock_fd: int) -> Orphan:
        segments = sorted(self.directory.glob(f"{owner}.*{_SEGMENT}"))
        records: list[AccessEventRecord] = []
        torn = 0
        for path in segments:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            for line in data.splitlines():
                try:
                    records.append(AccessEventRecord.model_validate_json(line))
                except ValidationError:
                    # Only a write cut short by the writer's death; counted, never guessed at.
                    torn += 1
        return Orphan(owner, records, [*segments, self._lock_path(owner)], torn, lock_fd)

    def _lock_path(self, owner: str) -> Path:
        return self.directory / f"{owner}{_LOCK}"

    def _segment_path(self, seq: int) -> Path:
        return self.directory / f"{self.owner}.{seq:08d}{_SEGMENT}"
