"""The streaming ingest in its own process, as the Dagster stream run executes it.

``python -m bench.ingest_worker --url WS --token T --home DIR --runtime S`` runs the product's
:class:`EventIngestor` (product default settings except the bounded runtime) against the embedded SQLite
stores in ``DIR`` and prints its counters as one ``BENCH_INGEST {json}`` line when it stops. SIGTERM
stops it cleanly (the buffer is flushed), like terminating the run in the UI.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path


def apply_proposed_spill_fix() -> None:
    """The change proposed for ``energy_pipeline/storage/reading_buffer.py``, applied to this process only.

    Today ``ReadingBuffer.add`` -> ``due()`` -> ``_has_spill()`` stats two files for every event (the spill
    file and its ``.replaying`` twin). The buffer is the only writer of its spill directory, so it can know
    whether a spill exists: look at the disk once (a spill left by a previous run), then keep a flag that
    ``_spill`` sets and a completed ``_replay_spill`` clears.
    """
    from energy_pipeline.storage.reading_buffer import ReadingBuffer

    original_spill, original_replay = ReadingBuffer._spill, ReadingBuffer._replay_spill

    def _has_spill(self: ReadingBuffer) -> bool:
        known = getattr(self, "_spill_known", None)
        if known is None:
            known = self.spill_path.exists() or self.spill_path.with_suffix(".replaying").exists()
            self._spill_known = known  # type: ignore[attr-defined]
        return known

    def _spill(self: ReadingBuffer, count: int) -> None:
        original_spill(self, count)
        self._spill_known = True  # type: ignore[attr-defined]

    def _replay_spill(self: ReadingBuffer) -> int:
        replayed = original_replay(self)  # raises (flag unchanged) when the store fails mid-replay
        self._spill_known = False  # type: ignore[attr-defined]
        return replayed

    ReadingBuffer._has_spill = _has_spill  # type: ignore[method-assign]
    ReadingBuffer._spill = _spill  # type: ignore[method-assign]
    ReadingBuffer._replay_spill = _replay_spill  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--runtime", type=float, required=True)
    parser.add_argument("--max-batch", type=int, default=None)
    parser.add_argument("--max-delay", type=float, default=None)
    parser.add_argument("--proposed-fix", action="store_true",
                        help="measure the proposed ReadingBuffer change (spill state kept in memory), patched in here")
    args = parser.parse_args(argv)

    from energy_pipeline.defs.live_events.ingest import EventIngestor, StreamSettings
    from energy_pipeline.storage.sqlite_documents import SQLiteDocumentStore
    from energy_pipeline.storage.sqlite_timeseries import SQLiteTimeSeriesStore

    if args.proposed_fix:
        apply_proposed_spill_fix()
    settings = StreamSettings(max_runtime_s=args.runtime)
    if args.max_batch is not None:
        settings.max_batch = args.max_batch
    if args.max_delay is not None:
        settings.max_delay = args.max_delay
    timeseries = SQLiteTimeSeriesStore(args.home / "timeseries.sqlite3")
    documents = SQLiteDocumentStore(args.home / "documents.sqlite3")
    ingestor = EventIngestor(args.url, args.token, timeseries, documents, args.home / "spill", settings,
                             log_info=lambda message: print(f"ingest: {message}", file=sys.stderr, flush=True))
    signal.signal(signal.SIGTERM, lambda *_: ingestor.stop())
    started, cpu_started = time.perf_counter(), time.process_time()
    ingestor.run()
    stats = ingestor.buffer.stats
    stream = ingestor.stream
    print("BENCH_INGEST " + json.dumps({
        "runtime_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu_started,
        "written": stats.written, "failed_writes": stats.failed_writes,
        "spilled": stats.spilled, "events_total": stream.events_total if stream else 0,
        "reconnects": stream.reconnects if stream else 0, "non_numeric_skipped": ingestor.non_numeric_skipped,
        "gap_filled": ingestor.gap_filled}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
