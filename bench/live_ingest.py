"""Benchmark 3: live ``state_changed`` events as fast as the simulator fires them, into the streaming ingest.

Topology (as deployed): the simulated Home Assistant runs in this process (a thread), the ingest
(the product's ``EventIngestor``, default settings) in its own process (``bench.ingest_worker``, as the
Dagster stream run), and a poller in this process reads the embedded store every 20 ms like any
reader of ``energy_readings`` would.

Latency is event → queryable: for a sample of the events (every ``--sample-every``-th) the simulator
records the wall-clock time it handed the event to the socket; the poller records when the row first
appears in the store. The same latency measured from the state's own time (``last_changed``, the
reading's key, what ``emitted_readings`` gives) is reported for every row: it adds the simulator's
own lag behind real time. Rates are rows that became queryable per second in the measured window.

Two phases: ``max``, the simulator firing as fast as it can (a house with 20 extra meters: more than
one core of simulator can serve, so it is the simulator's limit), for 60 s; and ``steady``, a smaller
house (6 extra meters, ~9-12k events/s depending on the time of day), for 30 s, a rate the ingest
sustains, where the latency is the ingest's own and no reading may be lost.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    REPO,
    BenchResult,
    clean_env,
    configure_process_env,
    log,
    percentile,
    run_benchmark,
    scratch_dir,
    summary,
)
from energy_pipeline.simulator.server import wait_for

NAME = "live_ingest"
TITLE = "Live ingest: simulator firing state_changed as fast as it can into the streaming ingest"
TOKEN = "bench-live-token"
WARMUP_S = 3.0
POLL_S = 0.02


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds (default 60)")
    parser.add_argument("--extra-devices", type=int, default=20,
                        help="extra meters (default 20: more than the simulator keeps up with, so it fires as fast "
                        "as it can)")
    parser.add_argument("--steady-extra-devices", type=int, default=6,
                        help="extra meters of the sustainable-load phase (default 6)")
    parser.add_argument("--steady-duration", type=float, default=30.0, help="seconds of that phase (default 30)")
    parser.add_argument("--sample-every", type=int, default=50, help="events between two timed samples")
    parser.add_argument("--proposed-fix", action="store_true", help="the ingest with the proposed ReadingBuffer change")
    parser.add_argument("--max-batch", type=int, default=None, help="ingest batch size (default: product's 500)")


def make_simulator_class() -> type:
    from energy_pipeline.simulator.server import HomeAssistantSimulator

    class TimedSimulator(HomeAssistantSimulator):
        """Records the wall-clock time a sample of ``state_changed`` events was handed to the connections."""

        sample_every = 50

        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.bench_samples: list[tuple[float, str, str]] = []
            self.bench_last_sent: str | None = None  # state time of the last event handed to the socket
            self._bench_count = 0

        def _broadcast(self, event: dict[str, Any]) -> None:
            super()._broadcast(event)
            if event["event_type"] == "state_changed" and self._connections:
                self._bench_count += 1
                new_state = event["data"]["new_state"]
                self.bench_last_sent = new_state["last_changed"]
                if self._bench_count % self.sample_every == 0:
                    self.bench_samples.append((time.time(), new_state["entity_id"], new_state["last_changed"]))

    return TimedSimulator


class Poller(threading.Thread):
    """Reads new rows of ``energy_readings`` every ``POLL_S`` and notes when each key was first seen."""

    def __init__(self, path: Path):
        super().__init__(name="bench-poller", daemon=True)
        self.path = path
        self.first_seen: dict[tuple[int, str], float] = {}
        self.stop_event = threading.Event()
        self.polls = 0

    def run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30)
        cursor_ts = 0
        try:
            while not self.stop_event.is_set():
                rows = conn.execute("SELECT ts, entity_id FROM energy_readings WHERE ts >= ?", (cursor_ts,)).fetchall()
                now = time.time()
                seen = self.first_seen
                for row in rows:
                    if row not in seen:
                        seen[row] = now
                        if row[0] > cursor_ts:
                            cursor_ts = row[0]
                self.polls += 1
                time.sleep(POLL_S)
        finally:
            conn.close()


def body(args: argparse.Namespace, result: BenchResult) -> None:
    quick = args.quick
    phases = [("max", args.extra_devices, 3.0 if quick else args.duration),
              ("steady", args.steady_extra_devices, 2.0 if quick else args.steady_duration)]
    result.params.update(ingest="EventIngestor, product defaults (max_batch 500, max_delay 1 s), own process"
                                + (" + proposed ReadingBuffer fix" if args.proposed_fix else ""),
                         simulator="as_fast_as_possible (1 ms ticks per entity, paced by the wall clock), "
                                   "in this process", poll_interval_s=POLL_S, sample_every=args.sample_every)
    with scratch_dir(NAME, args.keep) as scratch:
        configure_process_env(ENERGY_PIPELINE_HOME=str(scratch))
        for phase, extra_devices, duration in phases:
            measured = run_phase(scratch / phase, args, extra_devices, duration, quick)
            report(result, phase, measured)
        measure_store_ceiling(scratch, result)
    result.note("max: the simulator fires as fast as it can (one CPU core); when that is more than the ingest "
                "sustains, the backlog (and the latency) grows for as long as the test runs, and the simulator, "
                "like Home Assistant, closes a connection with too many pending messages; the stream then "
                "reconnects and fills the gap from history.")
    result.note("steady: a smaller house, still as fast as the simulator fires for it, at a rate the ingest "
                "sustains: its latency is the ingest's own.")


def run_phase(home: Path, args: argparse.Namespace, extra_devices: int, duration: float,
              quick: bool) -> dict[str, Any]:
    from energy_pipeline.simulator.house import SimulatedHouse
    from energy_pipeline.storage.documents import EntityRecord
    from energy_pipeline.storage.sqlite_documents import SQLiteDocumentStore
    from energy_pipeline.storage.sqlite_timeseries import SQLiteTimeSeriesStore

    warmup, settle = (1.0, 1.5) if quick else (WARMUP_S, 3.0)
    home.mkdir(parents=True)
    house = SimulatedHouse(seed=5, days=2, unavailable_probability=0.0, extra_devices=extra_devices)
    timeseries = SQLiteTimeSeriesStore(home / "timeseries.sqlite3")
    timeseries.ensure_schema()
    documents = SQLiteDocumentStore(home / "documents.sqlite3")
    documents.ensure_schema()
    documents.upsert_entities([EntityRecord(entity_id=e.entity_id, name=e.friendly_name, unit=e.unit)
                               for e in house.entities])
    simulator_class = make_simulator_class()
    simulator_class.sample_every = args.sample_every
    simulator = simulator_class(house, token=TOKEN, as_fast_as_possible=True).start()
    poller = Poller(home / "timeseries.sqlite3")
    worker_log = home / "ingest.log"
    try:
        with open(worker_log, "wb") as log_file:
            worker = subprocess.Popen(
                [PYTHON, "-m", "bench.ingest_worker", "--url", simulator.url, "--token", TOKEN,
                 "--home", str(home), "--runtime", str(warmup + duration + 30.0),
                 *(["--proposed-fix"] if args.proposed_fix else []),
                 *(["--max-batch", str(args.max_batch)] if args.max_batch else [])],
                env=clean_env(ENERGY_PIPELINE_HOME=str(home)), cwd=str(REPO), stdout=subprocess.PIPE,
                stderr=log_file, start_new_session=True)
        try:
            if not wait_for(lambda: documents.get_stream_state().get("status") == "streaming", 60, 0.05):
                raise RuntimeError(f"the ingest did not start streaming: {worker_log.read_text()[-3000:]}")
            poller.start()
            time.sleep(warmup)
            window_start, sent_start = time.time(), simulator.events_sent
            time.sleep(duration)
            window_end, sent_end = time.time(), simulator.events_sent
            last_sent = simulator.bench_last_sent
            log(NAME, f"{len(house.entities)} entities: simulator sent {sent_end - sent_start:,} events in "
                      f"{duration:.0f} s")
            time.sleep(settle)  # rows of the window still in flight
            worker.terminate()  # SIGTERM: EventIngestor.stop(), buffer flushed
            stdout, _ = worker.communicate(timeout=60)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        poller.stop_event.set()
        poller.join(10)
        samples = list(simulator.bench_samples)
        # Readings sent to the ingest during the window: the simulator may lag behind its own clock.
        sent_until = min(window_end, datetime.fromisoformat(last_sent).timestamp()) if last_sent else window_end
        emitted = numeric_keys(simulator, window_start, sent_until)
    finally:
        simulator.stop()
        timeseries.close()
        documents.close()
    stats = next((json.loads(line.removeprefix("BENCH_INGEST ")) for line in stdout.decode().splitlines()
                  if line.startswith("BENCH_INGEST ")), {})
    return {"entities": len(house.entities), "poller": poller, "samples": samples, "emitted": emitted,
            "stats": stats, "window": (window_start, window_end), "sent_rate": (sent_end - sent_start) / duration,
            "duration": duration, "settle": settle}


def numeric_keys(simulator: Any, start: float, end: float) -> set[tuple[int, str]]:
    since = datetime.fromtimestamp(start, UTC)
    until = datetime.fromtimestamp(end, UTC)
    return {(int(r.time.timestamp() * 1_000_000), r.entity_id)
            for r in simulator.emitted_readings(None, since=since, until=until) if r.value is not None}


def report(result: BenchResult, phase: str, measured: dict[str, Any]) -> None:
    poller: Poller = measured["poller"]
    seen = poller.first_seen
    window_start, window_end = measured["window"]
    window = window_end - window_start
    sent_rate = measured["sent_rate"]
    rate = sum(1 for when in seen.values() if window_start <= when < window_end) / window
    # latency from the state's own time, for every row whose state time falls in the window
    state_latency = [when - ts / 1e6 for (ts, _), when in seen.items() if window_start <= ts / 1e6 < window_end]
    # latency from the moment the simulator handed the event to the socket (sampled)
    emit_latency, sim_lag, unseen = [], [], 0
    for emitted_at, entity_id, last_changed in measured["samples"]:
        if not window_start <= emitted_at < window_end:
            continue
        ts = int(datetime.fromisoformat(last_changed).timestamp() * 1_000_000)
        sim_lag.append(emitted_at - ts / 1e6)
        when = seen.get((ts, entity_id))
        if when is None:
            unseen += 1
        else:
            emit_latency.append(when - emitted_at)
    stored = set(seen)
    missing = len(measured["emitted"] - stored)
    stats = measured["stats"]
    label = {"max": "simulator at its max", "steady": "sustainable load"}[phase]
    result.data[phase] = {"entities": measured["entities"], "duration_s": measured["duration"], "stats": stats,
                          "polls": poller.polls, "samples": len(emit_latency), "unseen_samples": unseen,
                          "emitted_numeric_in_window": len(measured["emitted"]), "missing_in_store": missing,
                          "sent_rate": sent_rate, "ingest_rate": rate,
                          "latency_from_emission_s": summary_or_empty(emit_latency),
                          "latency_from_state_time_s": summary_or_empty(state_latency),
                          "simulator_lag_s": summary_or_empty(sim_lag)}
    p50, p99 = percentile(emit_latency, 50), percentile(emit_latency, 99)
    entities = f"{measured['entities']} entities, {measured['duration']:.0f} s"
    if phase == "max":
        result.add(f"[{label}] sustained ingest, rows queryable per second", rate, "events/s",
                   baseline=f"simulator sent {sent_rate:,.0f} events/s ({entities})",
                   ratio=rate / sent_rate if sent_rate else None, target="≥ 5,000 events/s", met=rate >= 5000)
    else:
        result.add(f"[{label}] ingest, rows queryable per second", rate, "events/s",
                   baseline=f"simulator sent {sent_rate:,.0f} events/s ({entities})",
                   ratio=rate / sent_rate if sent_rate else None)
    if stats.get("cpu_s") and stats.get("events_total"):
        cpu_us = 1e6 * stats["cpu_s"] / stats["events_total"]
        result.add(f"[{label}] ingest CPU per event (whole run, all threads)", cpu_us, "µs",
                   baseline=f"{stats['events_total']:,} events in {stats['cpu_s']:.1f} CPU s")
    result.add(f"[{label}] event → queryable latency p50", p50, "s",
               baseline=f"{len(emit_latency):,} sampled events, from emission")
    result.add(f"[{label}] event → queryable latency p99", p99, "s", target="≤ 2 s", met=p99 <= 2.0)
    result.add(f"[{label}] latency p99 from the state's time", percentile(state_latency, 99), "s",
               baseline=f"adds the simulator's lag (p99 {percentile(sim_lag, 99):.2f} s)")
    result.add(f"[{label}] readings sent in the window, not queryable {measured['settle']:.0f} s after it", missing,
               "rows", baseline=f"of {len(measured['emitted']):,}; reconnects {stats.get('reconnects')}, gap-filled "
                                f"{stats.get('gap_filled')}",
               target="= 0" if phase == "steady" else "", met=(missing == 0) if phase == "steady" else None)


def summary_or_empty(values: list[float]) -> dict[str, float]:
    return summary(values) if values else {}


def measure_store_ceiling(home: Path, result: BenchResult) -> None:
    """For scale: the store's own write rate for readings in the ingest's batch size (500), no stream."""
    from energy_pipeline.storage.sqlite_timeseries import SQLiteTimeSeriesStore
    from energy_pipeline.storage.timeseries import Reading

    store = SQLiteTimeSeriesStore(home / "ceiling.sqlite3")
    store.ensure_schema()
    start = datetime(2030, 1, 1, tzinfo=UTC)
    rows = [Reading(ts=start + timedelta(milliseconds=i), entity_id=f"sensor.m{i % 9}", value=float(i))
            for i in range(50_000)]
    started = time.perf_counter()
    for offset in range(0, len(rows), 500):
        store.write_readings(rows[offset:offset + 500])
    elapsed = time.perf_counter() - started
    store.close()
    result.add("store ceiling: write_readings in batches of 500, no stream", len(rows) / elapsed, "rows/s")


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(NAME, TITLE, argv, __doc__.splitlines()[0], body, add_flags)


if __name__ == "__main__":
    raise SystemExit(main())
