"""Benchmark 4: chart queries over HTTP for 1 year x 10 entities on the embedded store.

The API runs as ``energy-pipeline api`` (uvicorn, its own process) on loopback over a home holding a
year of hourly statistics for 10 entities. One keep-alive client sends, after a warm-up,
``GET /api/statistics/{id}?period=day`` (one entity, a year of local days) and
``POST /api/statistics/compare`` (the 10 entities, same year) alternately, 200 of each, without a
tariff (the default) and again with one saved (then cost is computed per hour and rolled up; 50 requests
each, informational: the target is for the default).

Baseline, in the same run: the same aggregation done by loading the rows into pandas
(``read_sql``) and grouping by local day in the house's time zone.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.common import (
    BIN,
    BenchResult,
    Child,
    clean_env,
    configure_process_env,
    free_port,
    log,
    percentile,
    run_benchmark,
    scratch_dir,
    start_child,
)
from energy_pipeline.simulator.server import wait_for

NAME = "chart_queries"
TITLE = "Chart queries: GET statistics?period=day and POST compare, 1 year x 10 entities over HTTP"
TIME_ZONE = "Europe/Berlin"
TARIFF = {"currency": "EUR", "versions": [{
    "effective_from": "2020-01-01", "daily_charge": 0.40,
    "prices": [{"start": "07:00", "end": "22:00", "price_per_kwh": 0.32},
               {"start": "22:00", "end": "07:00", "price_per_kwh": 0.22}]}]}


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=200, help="measured requests per endpoint (default 200)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--tariff-requests", type=int, default=50, help="measured requests with a tariff (default 50)")
    parser.add_argument("--entities", type=int, default=10)
    parser.add_argument("--days", type=int, default=365)


def fill_store(home: Path, entity_ids: list[str], start: datetime, hours: int) -> int:
    import numpy as np

    from energy_pipeline.storage.documents import EntityRecord
    from energy_pipeline.storage.sqlite_documents import SQLiteDocumentStore
    from energy_pipeline.storage.sqlite_timeseries import SQLiteTimeSeriesStore
    from energy_pipeline.storage.timeseries import StatisticRow

    rng = np.random.default_rng(4)
    timeseries = SQLiteTimeSeriesStore(home / "timeseries.sqlite3")
    documents = SQLiteDocumentStore(home / "documents.sqlite3")
    rows = []
    for index, entity_id in enumerate(entity_ids):
        changes = rng.gamma(2.0, 0.2 + 0.05 * index, hours)
        sums = np.cumsum(changes)
        rows += [StatisticRow(ts=start + timedelta(hours=h), entity_id=entity_id, change=float(changes[h]),
                              sum=float(sums[h]), state=float(1000 + sums[h]), source="ha") for h in range(hours)]
    written = timeseries.write_statistics(rows)
    documents.upsert_entities([EntityRecord(entity_id=e, name=e.split(".")[1].replace("_", " "), unit="kWh",
                                            role="grid_import" if i == 0 else "device")
                               for i, e in enumerate(entity_ids)])
    documents.update_settings({"ha_time_zone": TIME_ZONE})
    timeseries.close()
    documents.close()
    return written


def body(args: argparse.Namespace, result: BenchResult) -> None:
    import httpx

    entities_n, days = (2, 30) if args.quick else (args.entities, args.days)
    measured, warmup = (10, 3) if args.quick else (args.requests, args.warmup)
    tz = ZoneInfo(TIME_ZONE)
    with scratch_dir(NAME, args.keep) as scratch:
        home = scratch / "home"
        home.mkdir()
        configure_process_env(ENERGY_PIPELINE_HOME=str(home))
        today = datetime.now(tz).date()
        first_day, last_day = today - timedelta(days=days), today  # [first_day, last_day) local days
        start = datetime.combine(first_day, datetime.min.time(), tzinfo=tz).astimezone(UTC)
        end = datetime.combine(last_day, datetime.min.time(), tzinfo=tz).astimezone(UTC)
        hours = int((end - start) / timedelta(hours=1))
        entity_ids = [f"sensor.chart_meter_{i:02d}_energy" for i in range(entities_n)]
        written = fill_store(home, entity_ids, start, hours)
        log(NAME, f"{written:,} hourly rows for {entities_n} entities, {first_day} .. {last_day}")
        result.params.update(entities=entities_n, days=days, rows=written, requests_per_endpoint=measured,
                             warmup=warmup, time_zone=TIME_ZONE, server="energy-pipeline api (uvicorn), own process")

        port = free_port()
        server: Child = start_child([str(BIN / "energy-pipeline"), "api", "--host", "127.0.0.1", "--port", str(port),
                                     "--log-level", "warning"], clean_env(ENERGY_PIPELINE_HOME=str(home)),
                                    scratch / "api.log", "api")
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=30) as client:
                if not wait_for(lambda: _healthy(client), 60, 0.2):
                    raise RuntimeError(f"the API did not start: {server.log_tail()}")
                query = {"period": "day", "start": first_day.isoformat(), "end": last_day.isoformat()}
                compare_body = {"entity_ids": entity_ids, **query}
                scenarios: dict[str, dict[str, list[float]]] = {}
                for scenario in ("no tariff", "with tariff"):
                    counts = (warmup, measured)
                    if scenario == "with tariff":  # cost per hour: informational, fewer requests
                        response = client.put("/api/settings", json={"tariff": TARIFF})
                        response.raise_for_status()
                        counts = (min(warmup, 5), min(measured, args.tariff_requests))
                    scenarios[scenario] = measure_http(client, entity_ids, query, compare_body, *counts)
                    log(NAME, f"{scenario}: GET p95 {1000 * percentile(scenarios[scenario]['get'], 95):.1f} ms, "
                              f"compare p95 {1000 * percentile(scenarios[scenario]['compare'], 95):.1f} ms")
        finally:
            server.stop()
        pandas_times = measure_pandas(home / "timeseries.sqlite3", entity_ids, start, end, warmup, measured)
        report(result, scenarios, pandas_times)


def _healthy(client: Any) -> bool:
    try:
        return client.get("/api/health").status_code == 200
    except Exception:
        return False


def measure_http(client: Any, entity_ids: list[str], query: dict[str, str], compare_body: dict[str, Any],
                 warmup: int, measured: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"get": [], "compare": []}
    for index in range(warmup + measured):
        entity_id = entity_ids[index % len(entity_ids)]
        started = time.perf_counter()
        response = client.get(f"/api/statistics/{entity_id}", params=query)
        get_s = time.perf_counter() - started
        response.raise_for_status()
        buckets = response.json()["buckets"]
        started = time.perf_counter()
        response = client.post("/api/statistics/compare", json=compare_body)
        compare_s = time.perf_counter() - started
        response.raise_for_status()
        if index == 0 and (len(buckets) < 28 or len(response.json()["series"]) != len(entity_ids)):
            raise RuntimeError(f"unexpected answer: {len(buckets)} buckets")
        if index >= warmup:
            times["get"].append(get_s)
            times["compare"].append(compare_s)
    return times


def measure_pandas(path: Path, entity_ids: list[str], start: datetime, end: datetime, warmup: int,
                   measured: int) -> dict[str, list[float]]:
    """Baseline: the same consumption per local day, by loading the rows into pandas and grouping."""
    import pandas as pd

    start_us, end_us = int(start.timestamp() * 1e6), int(end.timestamp() * 1e6)
    conn = sqlite3.connect(path)
    times: dict[str, list[float]] = {"get": [], "compare": []}

    def daily(frame: pd.DataFrame, by_entity: bool) -> pd.DataFrame:
        local_day = pd.to_datetime(frame["ts"], unit="us", utc=True).dt.tz_convert(TIME_ZONE).dt.normalize()
        keys = [frame["entity_id"], local_day] if by_entity else [local_day]
        return frame.groupby(keys)["change"].agg(["sum", "count"])

    marks = ", ".join("?" for _ in entity_ids)
    for index in range(warmup + measured):
        entity_id = entity_ids[index % len(entity_ids)]
        started = time.perf_counter()
        frame = pd.read_sql_query("SELECT ts, change FROM energy_statistics WHERE entity_id = ? AND ts >= ? "
                                  "AND ts < ?", conn, params=(entity_id, start_us, end_us))
        single = daily(frame, by_entity=False)
        get_s = time.perf_counter() - started
        started = time.perf_counter()
        frame = pd.read_sql_query(f"SELECT ts, entity_id, change FROM energy_statistics WHERE entity_id IN ({marks}) "
                                  "AND ts >= ? AND ts < ?", conn, params=(*entity_ids, start_us, end_us))
        many = daily(frame, by_entity=True)
        compare_s = time.perf_counter() - started
        if index == 0 and (len(single) < 28 or len(many) < 28 * len(entity_ids)):
            raise RuntimeError("pandas baseline grouped wrongly")
        if index >= warmup:
            times["get"].append(get_s)
            times["compare"].append(compare_s)
    conn.close()
    return times


def report(result: BenchResult, scenarios: dict[str, dict[str, list[float]]],
           pandas_times: dict[str, list[float]]) -> None:
    labels = {"get": "GET /api/statistics/{id}?period=day", "compare": "POST /api/statistics/compare (10 ids)"}
    for scenario, times in scenarios.items():
        for key, label in labels.items():
            p50, p95 = 1000 * percentile(times[key], 50), 1000 * percentile(times[key], 95)
            base50, base95 = 1000 * percentile(pandas_times[key], 50), 1000 * percentile(pandas_times[key], 95)
            default = scenario == "no tariff"
            result.add(f"{label}, {scenario}: p50", p50, "ms",
                       baseline=f"pandas p50 {base50:.1f} ms" if default else "", ratio=p50 / base50)
            result.add(f"{label}, {scenario}: p95", p95, "ms",
                       baseline=f"pandas p95 {base95:.1f} ms" if default else "", ratio=p95 / base95,
                       target="≤ 50 ms" if default else "", met=(p95 <= 50) if default else None)
    result.data.update(http={s: {k: v for k, v in t.items()} for s, t in scenarios.items()}, pandas=pandas_times)
    result.note("HTTP latencies are client-side (request sent → body read), one keep-alive connection, requests "
                "alternating between the two endpoints; the pandas baseline is in-process (no HTTP, no JSON).")


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(NAME, TITLE, argv, __doc__.splitlines()[0], body, add_flags)


if __name__ == "__main__":
    raise SystemExit(main())

