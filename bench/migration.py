"""Benchmark 2: a generated legacy ``energy.db`` (1,000,000 hourly rows) through the migration asset.

The legacy database comes from ``make_legacy_database`` (three time encodings, 1 % bad rows, day rows
of another period). The migration runs as the backfill of all months launches it (``single_run``
policy: one run over the whole partition range, with its row-count check), in-process against a real
SQLite Dagster instance. Baseline, measured in the same run and alternated with it: a raw ``sqlite3``
read of the same table plus the store's batch write (``write_statistics``) of the same good rows.
The target is on the asset's step (reading, parsing, classifying, deriving ``change``, writing);
the whole run (with Dagster's bookkeeping and the row-count check) is reported next to it.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    BenchResult,
    configure_process_env,
    dagster_yaml,
    log,
    median,
    run_benchmark,
    scratch_dir,
)

warnings.filterwarnings("ignore", category=Warning, module="dagster")
NAME = "migration"
TITLE = "Migration: legacy energy.db with 1,000,000 hourly rows through the migration asset"
START = datetime(2022, 1, 1, tzinfo=UTC)
# Dagster's console logger at WARNING keeps the output readable (the events are stored all the same).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--entities", type=int, default=40)
    parser.add_argument("--hours", type=int, default=25_000, help="hours per entity (40 x 25,000 = 1,000,000)")


def body(args: argparse.Namespace, result: BenchResult) -> None:
    entities_n, hours = (4, 500) if args.quick else (args.entities, args.hours)
    repetitions = 1 if args.quick else args.repetitions
    with scratch_dir(NAME, args.keep) as scratch:
        legacy_path = scratch / "energy.db"
        dagster_home = scratch / "dagster"
        dagster_home.mkdir()
        (dagster_home / "dagster.yaml").write_text(dagster_yaml(dagster_home))
        configure_process_env(ENERGY_PIPELINE_HOME=str(scratch / "home"), LEGACY_SQLITE_PATH=str(legacy_path),
                              DAGSTER_HOME=str(dagster_home))
        from energy_pipeline.simulator.legacy import make_legacy_database

        entity_ids = [f"sensor.legacy_meter_{i:02d}_energy" for i in range(entities_n)]
        generated_s, spec = timed_call(lambda: make_legacy_database(legacy_path, entity_ids, START, hours,
                                                                    bad_fraction=0.01))
        total_rows = entities_n * hours
        log(NAME, f"generated {total_rows:,} hourly rows ({spec.bad_rows} bad, {spec.other_period_rows} day rows) "
                  f"in {generated_s:.1f} s")
        result.params.update(entities=entities_n, hours_per_entity=hours, hourly_rows=total_rows,
                             bad_rows=spec.bad_rows, other_period_rows=spec.other_period_rows,
                             good_rows=len(spec.good_hourly), repetitions=repetitions,
                             database_mb=round(legacy_path.stat().st_size / 1e6, 1))

        import dagster as dg

        from energy_pipeline.defs.migration.assets import (
            legacy_energy_statistics,
            legacy_monthly_partitions_def,
            migration_row_counts_match,
        )
        from energy_pipeline.defs.resources import DocumentsResource, TimeSeriesResource

        keys = legacy_monthly_partitions_def.get_partition_keys()
        good_rows = baseline_rows(spec.good_hourly)
        instance = dg.DagsterInstance.get()
        runs: list[dict[str, Any]] = []
        baselines: list[dict[str, float]] = []
        for repetition in range(repetitions):
            order = ("baseline", "migration") if repetition % 2 == 0 else ("migration", "baseline")
            for what in order:
                if what == "baseline":
                    baselines.append(measure_baseline(legacy_path, scratch / f"baseline-{repetition}", good_rows))
                    log(NAME, f"baseline {repetition + 1}: read {baselines[-1]['read_s']:.2f} s + write "
                              f"{baselines[-1]['write_s']:.2f} s")
                else:
                    home = scratch / f"home-{repetition}"
                    resources = {"timeseries": TimeSeriesResource(home=str(home)),
                                 "documents": DocumentsResource(home=str(home))}
                    defs = dg.Definitions(
                        assets=[legacy_energy_statistics], asset_checks=[migration_row_counts_match],
                        resources=resources,
                        jobs=[dg.define_asset_job("bench_migration",
                                                  selection=dg.AssetSelection.assets(legacy_energy_statistics)
                                                  | dg.AssetSelection.checks(migration_row_counts_match))])
                    job = defs.resolve_job_def("bench_migration")
                    tags = {"dagster/asset_partition_range_start": keys[0],
                            "dagster/asset_partition_range_end": keys[-1], "dagster/backfill": f"bench{repetition}"}
                    started = time.perf_counter()
                    run = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False,
                                                 run_config=QUIET)
                    wall = time.perf_counter() - started
                    if not run.success:
                        raise RuntimeError("the migration run failed")
                    steps = step_durations(instance, run.run_id)
                    metadata = run.get_asset_materialization_events()[0].materialization.metadata
                    (check,) = run.get_asset_check_evaluations()
                    stored = resources["timeseries"].store.count_statistics(None, START, datetime(2100, 1, 1,
                                                                                                  tzinfo=UTC))
                    runs.append({"wall_s": wall, "steps": steps, "rows_written": metadata["rows_written"].value,
                                 "rows_read": metadata["rows_read"].value, "check_passed": check.passed,
                                 "stored": sum(stored.values())})
                    log(NAME, f"migration {repetition + 1}: run {wall:.1f} s, asset step "
                              f"{steps.get('legacy_energy_statistics', 0):.1f} s, check passed {check.passed}")
        report(result, runs, baselines, total_rows, len(spec.good_hourly))


def timed_call(function: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def baseline_rows(good: dict[tuple[str, datetime], float]) -> list[Any]:
    """The good hourly rows as the store receives them (change from consecutive sums), built untimed."""
    from energy_pipeline.storage.timeseries import StatisticRow

    rows = []
    previous: dict[str, float] = {}
    for (entity_id, hour), total in sorted(good.items()):
        change = total - previous[entity_id] if entity_id in previous else None
        previous[entity_id] = total
        rows.append(StatisticRow(ts=hour, entity_id=entity_id, change=change, sum=total, state=1000 + total,
                                 source="legacy"))
    return rows


def measure_baseline(legacy_path: Path, folder: Path, rows: list[Any]) -> dict[str, float]:
    from energy_pipeline.storage.sqlite_timeseries import SQLiteTimeSeriesStore

    started = time.perf_counter()
    conn = sqlite3.connect(f"file:{legacy_path}?mode=ro", uri=True)
    fetched = conn.execute("SELECT id, entity_id, start_time, state, sum, mean, min, max, period "
                           "FROM energy_statistics").fetchall()
    conn.close()
    read_s = time.perf_counter() - started
    store = SQLiteTimeSeriesStore(folder / "timeseries.sqlite3")
    store.ensure_schema()
    started = time.perf_counter()
    store.write_statistics(rows)
    write_s = time.perf_counter() - started
    store.close()
    return {"read_s": read_s, "write_s": write_s, "total_s": read_s + write_s, "rows_read": len(fetched)}


def step_durations(instance: Any, run_id: str) -> dict[str, float]:
    import dagster as dg

    starts: dict[str, float] = {}
    out: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not entry.step_key:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[entry.step_key] = entry.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS and entry.step_key in starts:
            out[entry.step_key] = entry.timestamp - starts[entry.step_key]
    return out


def report(result: BenchResult, runs: list[dict[str, Any]], baselines: list[dict[str, float]], total_rows: int,
           good_rows: int) -> None:
    asset_s = median([r["steps"].get("legacy_energy_statistics", float("nan")) for r in runs])
    check_s = median([sum(v for k, v in r["steps"].items() if k != "legacy_energy_statistics") for r in runs])
    wall_s = median([r["wall_s"] for r in runs])
    base_s = median([b["total_s"] for b in baselines])
    read_s, write_s = median([b["read_s"] for b in baselines]), median([b["write_s"] for b in baselines])
    result.data.update(runs=runs, baselines=baselines)
    result.add("rows written with source='legacy' (= good rows)", runs[-1]["stored"], "rows",
               target=f"= {good_rows:,}", met=runs[-1]["stored"] == good_rows and all(r["check_passed"] for r in runs))
    result.add("baseline: raw sqlite3 read + store batch write", base_s, "s",
               baseline=f"read {read_s:.2f} s + write {write_s:.2f} s")
    ratio = asset_s / base_s
    result.add("migration asset step", asset_s, "s", baseline=f"{total_rows / asset_s:,.0f} rows/s", ratio=ratio,
               target="≤ 2× baseline", met=ratio <= 2)
    result.add("whole run (asset + row-count check + Dagster)", wall_s, "s",
               baseline=f"{total_rows / wall_s:,.0f} rows/s; check step {check_s:.1f} s", ratio=wall_s / base_s)
    result.note(f"Medians of {len(runs)} runs and {len(baselines)} baselines, alternated; each run into a fresh store.")


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(NAME, TITLE, argv, __doc__.splitlines()[0], body, add_flags)


if __name__ == "__main__":
    raise SystemExit(main())
