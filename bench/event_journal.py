"""What the write-ahead journal adds to each access decision (store/event_journal.py).

Times `EventWriter.add` (JSON + one `write` to the journal + the in-memory buffer) with and without
a journal, and the adoption of a dead worker's journal.

    python -m bench.event_journal [--events 20000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from schemas.base import utc_now
from schemas.codes import CredentialType, ReasonCode
from schemas.documents import AccessEventRecord
from store.event_journal import EventJournal
from store.event_writer import EventWriter


def _records(n: int) -> list[AccessEventRecord]:
    now = utc_now()
    return [AccessEventRecord(id=f"{i:064x}", ts=now, request_id=f"req-{i}", gate_id="gate-1",
                              credential_type=CredentialType.CARD, granted=True, reason=ReasonCode.GRANTED,
                              subject_id="U1", latency_ms=1.0) for i in range(n)]


def _add_times(writer: EventWriter, records: list[AccessEventRecord]) -> list[float]:
    times = []
    for r in records:
        t = time.perf_counter()
        writer.add(r)
        times.append((time.perf_counter() - t) * 1e6)
    return times


def _pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=1000)[int(p * 10) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    records = _records(args.events)
    with tempfile.TemporaryDirectory(prefix="passage-journal-") as tmp:
        # The store is never reached here: only the caller's side of `add` is timed.
        plain = EventWriter(None, max_buffer=args.events + 1)  # type: ignore[arg-type]
        bare = _add_times(plain, records)
        journal = EventJournal(Path(tmp))
        writer = EventWriter(None, max_buffer=args.events + 1, journal=journal)  # type: ignore[arg-type]
        writer.open()
        journaled = _add_times(writer, records)
        journal.seal()
        heir = EventJournal(Path(tmp))
        heir.open()
        journal.close(everything_stored=False)  # as if the worker had died: its lock is released
        t = time.perf_counter()
        [orphan] = heir.orphans()
        adopt_s = time.perf_counter() - t
        orphan.release()
    print(f"EventWriter.add, {args.events} events, microseconds per event (p50 / p99):")
    print(f"  without journal: {_pct(bare, 50):.2f} / {_pct(bare, 99):.2f}")
    print(f"  with journal:    {_pct(journaled, 50):.2f} / {_pct(journaled, 99):.2f}")
    print(f"adopting a dead worker's journal of {len(orphan.records)} events: {adopt_s * 1000:.0f} ms "
          f"({len(orphan.records) / adopt_s:,.0f} events/s read back)")


if __name__ == "__main__":
    main()
