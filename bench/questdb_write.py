"""Benchmark 6: the QuestDB write path (ILP/HTTP from dataframes) against a local ILP capture endpoint.

No QuestDB is needed: a local HTTP endpoint answers like QuestDB's ILP/HTTP (``/settings`` 404, so the
client speaks text ILP v1; every ``/write`` 204) and counts what it receives, as the QuestDB tests do.
The store's PG-wire side (schema DDL, the wait for the WAL apply job) is replaced by a no-op, so only
the write path is timed: validation and in-batch dedup, building the dataframe, the client's ILP
serialization, and the HTTP requests (chunks of 50,000 rows, one transaction each).

Baseline, in the same run: the client's own serialization of the *prebuilt* dataframe into a buffer
(``Buffer.dataframe``), i.e. what the questdb client costs with nothing of ours around it.
"""

from __future__ import annotations

import argparse
import http.server
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import BenchResult, free_port, log, median, run_benchmark

NAME = "questdb_write"
TITLE = "QuestDB write path: dataframe -> ILP/HTTP serialization throughput (local capture endpoint)"


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--statistics", type=int, default=175_200, help="statistic rows (1 year x 20 entities)")
    parser.add_argument("--readings", type=int, default=200_000, help="reading rows")


class CaptureEndpoint:
    """An ILP/HTTP stand-in: counts requests, bytes and lines; never keeps the bodies."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests = self.bytes = self.lines = 0
        capture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self._answer(404)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                capture.requests += 1
                capture.bytes += len(body)
                capture.lines += body.count(b"\n")
                self._answer(204)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        self.requests = self.bytes = self.lines = 0

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_rows(statistics: int, readings: int) -> tuple[list[Any], list[Any]]:
    from energy_pipeline.storage.timeseries import Reading, StatisticRow

    start = datetime(2025, 1, 1, tzinfo=UTC)
    entities = 20
    stats = [StatisticRow(ts=start + timedelta(hours=i // entities), entity_id=f"sensor.meter_{i % entities:02d}",
                          change=0.25 + (i % 7) * 0.1, sum=1000.0 + i * 0.3, state=2000.0 + i * 0.3,
                          source="ha") for i in range(statistics)]
    reads = [Reading(ts=start + timedelta(milliseconds=137 * i), entity_id=f"sensor.meter_{i % entities:02d}",
                     value=1234.5 + i * 1e-4) for i in range(readings)]
    return stats, reads


def body(args: argparse.Namespace, result: BenchResult) -> None:
    from energy_pipeline.storage import questdb as q
    from energy_pipeline.storage.timeseries import last_wins, validate_reading, validate_statistic

    statistics_n, readings_n = (2_000, 2_000) if args.quick else (args.statistics, args.readings)
    repetitions = 2 if args.quick else args.repetitions
    stats, reads = make_rows(statistics_n, readings_n)
    capture = CaptureEndpoint()
    try:
        store = q.QuestDBTimeSeriesStore(f"http::addr=127.0.0.1:{capture.port};",
                                         "postgresql://admin:quest@127.0.0.1:1/qdb", wait_for_apply=False)
        store._run_sql = lambda sql, params: []  # type: ignore[method-assign]  # no PG wire: DDL and WAL polls
        sender = q.Sender.from_conf(f"http::addr=127.0.0.1:{capture.port};")
        sender.establish()
        result.params.update(statistic_rows=statistics_n, reading_rows=readings_n, repetitions=repetitions,
                             chunk_rows=store.chunk_rows, protocol="ILP v1 text over HTTP (capture answers /settings "
                             "with 404)")
        timings: dict[str, list[float]] = {k: [] for k in ("stat_write", "stat_validate", "stat_frame",
                                                           "stat_serialize", "read_write", "read_frame",
                                                           "read_serialize")}
        clean_stats = last_wins(validate_statistic(r) for r in stats)
        clean_reads = last_wins(r for r in map(validate_reading, reads) if r is not None)
        stat_frame = q.statistics_frame(clean_stats)
        read_frame = q.readings_frame(clean_reads)
        for _ in range(repetitions):
            capture.reset()
            timings["stat_write"].append(_time(lambda: store.write_statistics(stats)))
            if capture.lines != statistics_n:
                raise RuntimeError(f"the endpoint received {capture.lines} lines for {statistics_n} rows")
            sent_bytes = capture.bytes
            timings["stat_validate"].append(_time(lambda: last_wins(validate_statistic(r) for r in stats)))
            timings["stat_frame"].append(_time(lambda: q.statistics_frame(clean_stats)))
            timings["stat_serialize"].append(_time(lambda: _serialize(sender, stat_frame, "energy_statistics",
                                                                      ["entity_id", "source"])))
            capture.reset()
            timings["read_write"].append(_time(lambda: store.write_readings(reads)))
            timings["read_frame"].append(_time(lambda: q.readings_frame(clean_reads)))
            timings["read_serialize"].append(_time(lambda: _serialize(sender, read_frame, "energy_readings",
                                                                      ["entity_id"])))
        sender.close(flush=False)
        store.close()
    finally:
        capture.stop()
    m = {k: median(v) for k, v in timings.items()}
    log(NAME, ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in m.items()))
    result.data.update(timings_s=timings, statistics_bytes=sent_bytes)
    ratio = m["stat_write"] / m["stat_serialize"]
    result.add("statistics: write_statistics end to end (rows -> ILP/HTTP)", statistics_n / m["stat_write"], "rows/s",
               baseline=f"client serialization alone {statistics_n / m['stat_serialize']:,.0f} rows/s",
               ratio=ratio)
    result.add("statistics: validation + in-batch dedup", statistics_n / m["stat_validate"], "rows/s",
               baseline=f"{100 * m['stat_validate'] / m['stat_write']:.0f} % of the write")
    result.add("statistics: rows -> dataframe (statistics_frame)", statistics_n / m["stat_frame"], "rows/s",
               baseline=f"{100 * m['stat_frame'] / m['stat_write']:.0f} % of the write")
    result.add("statistics: dataframe -> ILP buffer (questdb client)", statistics_n / m["stat_serialize"], "rows/s",
               baseline=f"{sent_bytes / statistics_n:.0f} bytes/row on the wire")
    result.add("readings: write_readings end to end", readings_n / m["read_write"], "rows/s",
               baseline=f"client serialization alone {readings_n / m['read_serialize']:,.0f} rows/s",
               ratio=m["read_write"] / m["read_serialize"])
    result.add("readings: rows -> dataframe (readings_frame)", readings_n / m["read_frame"], "rows/s",
               baseline=f"{100 * m['read_frame'] / m['read_write']:.0f} % of the write")
    result.note(f"Medians of {repetitions}; the HTTP part (a Python endpoint on loopback) is what remains of the "
                "end-to-end time after validation, frame building and serialization.")


def _serialize(sender: Any, frame: Any, table: str, symbols: list[str]) -> int:
    buffer = sender.new_buffer()
    buffer.dataframe(frame, table_name=table, symbols=symbols, at="ts")
    return len(buffer)


def _time(function: Any) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(NAME, TITLE, argv, __doc__.splitlines()[0], body, add_flags)


if __name__ == "__main__":
    raise SystemExit(main())
