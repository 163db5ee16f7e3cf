"""Benchmark 1: a year of hourly statistics (20 entities, 175,200 rows) through a real Dagster backfill.

How the backfill is executed, and why: the 8,760 hourly partitions are cut into runs of at most
``MAX_HOURS_PER_RUN`` (744) consecutive partitions exactly as the backfill daemon cuts them for a
``BackfillPolicy.multi_run`` asset (12 runs), and each run is executed in a *fresh process*
(``bench.dagster_worker``) against a real Dagster instance (temporary ``DAGSTER_HOME``, SQLite storage),
with the partition-range tags the daemon sets. A fresh process per run is what the daemon's run launcher
does, so per-run launch costs (interpreter, imports, code loading) are counted, while the daemon's tick
and queue intervals (seconds of idle waiting that depend on its settings, not on this code) are not.
``dagster asset materialize --partition-range`` cannot be used: it refuses assets whose policy is not
``single_run``.

Baselines, measured in the same run:

(a) Dagster's floor: a no-op asset on the same partitions definition and backfill policy, executed the
    same way over the same partition ranges (a sample of the 12 ranges, interleaved with the real runs;
    ``--full-floor`` runs all 12), extrapolated per partition;
(b) the bare client fetch + store write of the same ranges, no Dagster;
(c) one run per partition (what a backfill without a BackfillPolicy does), 48 launched runs, extrapolated.

Also measured: how far the floor moves with instance settings (one planned event per run instead of
one per partition, batched event writes, the instance on tmpfs, PostgreSQL storage when installed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    BenchResult,
    clean_env,
    configure_process_env,
    dagster_postgres_yaml,
    dagster_yaml,
    log,
    median,
    run_benchmark,
    scratch_dir,
)

warnings.filterwarnings("ignore", category=Warning, module="dagster")
NAME = "backfill"
TITLE = "Backfill: 1 year x 20 entities of hourly statistics through a real Dagster backfill"
TOKEN = "bench-backfill-token"
TIME_ZONE = "Europe/Berlin"
EXTRA_DEVICES = 12  # 8 meters of the simulated house + 12 extra device meters = 20 tracked entities
HOURS_PER_YEAR = 8760
KEY_FORMAT = "%Y-%m-%d-%H:%M"


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--full-floor", action="store_true", help="run the floor over all 12 ranges, not a sample")
    parser.add_argument("--floor-sample", type=int, default=4, help="ranges of the floor sample (default 4)")
    parser.add_argument("--single-runs", type=int, default=48, help="one-run-per-partition sample (default 48)")
    parser.add_argument("--no-variants", action="store_true", help="skip the floor-lowering experiments")
    parser.add_argument("--variants-in-quick", action="store_true", help="run the experiments (small) with --quick")


class Launcher:
    """Launches ``bench.dagster_worker`` processes with one environment and collects their timings."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.launches: list[dict[str, Any]] = []

    def launch(self, job: str, runs: list[dict[str, str]], label: str, env: dict[str, str] | None = None,
               tags: dict[str, str] | None = None) -> dict[str, Any]:
        args = [PYTHON, "-m", "bench.dagster_worker", "--defs", "bench.backfill_defs", "--job", job,
                "--runs", json.dumps(runs)]
        for key, value in (tags or {}).items():
            args += ["--tag", f"{key}={value}"]
        log_path = self.log_dir / f"{len(self.launches):03d}-{label}.log"
        started = time.perf_counter()
        with open(log_path, "wb") as log_file:
            completed = subprocess.run(args, env=env or self.env, stdout=subprocess.PIPE, stderr=log_file,
                                       cwd=str(Path(__file__).resolve().parents[1]), timeout=3600)
        wall = time.perf_counter() - started
        reports = [json.loads(line.removeprefix("BENCH_RUN ")) for line in completed.stdout.decode().splitlines()
                   if line.startswith("BENCH_RUN ")]
        if completed.returncode != 0 or len(reports) != len(runs) or not all(r["success"] for r in reports):
            tail = log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"worker {label} failed (exit {completed.returncode}):\n{tail}")
        launch = {"label": label, "job": job, "wall_s": wall, "run_s": sum(r["run_s"] for r in reports),
                  "runs": reports}
        self.launches.append(launch)
        return launch


def chunk(keys: list[str], size: int) -> list[tuple[str, str, int]]:
    """Consecutive ranges of at most ``size`` keys, as ``_build_run_requests_for_partition_key_range`` cuts."""
    return [(keys[i], keys[min(i + size, len(keys)) - 1], min(size, len(keys) - i)) for i in range(0, len(keys), size)]


def sample_indices(count: int, wanted: int) -> list[int]:
    if wanted >= count:
        return list(range(count))
    if wanted <= 1:
        return [count // 2]
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def body(args: argparse.Namespace, result: BenchResult) -> None:
    quick = args.quick
    days = 2 if quick else 365
    hours = days * 24
    single_runs = 1 if quick else args.single_runs
    with scratch_dir(NAME, args.keep) as scratch:
        now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
        first_hour = datetime.combine((now - timedelta(days=days + 1)).date(), datetime.min.time(), tzinfo=UTC)
        home, dagster_home, logs = scratch / "home", scratch / "dagster", scratch / "logs"
        for folder in (home, dagster_home, logs):
            folder.mkdir(parents=True)
        (dagster_home / "dagster.yaml").write_text(dagster_yaml(dagster_home))
        settings = {"ENERGY_PIPELINE_HOME": str(home), "ENERGY_PIPELINE_START_DATE": first_hour.date().isoformat(),
                    "ENERGY_PIPELINE_TIME_ZONE": TIME_ZONE, "DAGSTER_HOME": str(dagster_home)}
        configure_process_env(**settings)

        from energy_pipeline.defs.ha_statistics.assets import MAX_HOURS_PER_RUN
        from energy_pipeline.simulator.house import SimulatedHouse
        from energy_pipeline.simulator.server import HomeAssistantSimulator

        house = SimulatedHouse(seed=11, days=days + 3, tz=TIME_ZONE, now=now, extra_devices=EXTRA_DEVICES)
        simulator = HomeAssistantSimulator(house, token=TOKEN).start()
        try:
            entities = len(house.meters)
            keys = [(first_hour + timedelta(hours=h)).strftime(KEY_FORMAT) for h in range(hours)]
            groups = chunk(keys, MAX_HOURS_PER_RUN)
            result.params.update(entities=entities, partitions=hours, runs=len(groups),
                                 max_partitions_per_run=MAX_HOURS_PER_RUN, first_partition=keys[0],
                                 last_partition=keys[-1], expected_rows=entities * hours,
                                 execution="each run in a fresh process (bench.dagster_worker) against a real "
                                           "SQLite DagsterInstance, with the daemon's range tags")
            env = clean_env(**settings, HA_URL=simulator.url, HA_TOKEN=TOKEN)
            launcher = Launcher(env, logs)
            log(NAME, f"{entities} entities, {hours} partitions in {len(groups)} runs; simulator {simulator.url}")
            launcher.launch("bench_discovery", [{}], "discovery")

            floor_sample = list(range(len(groups))) if args.full_floor else sample_indices(len(groups),
                                                                                           args.floor_sample)
            real, floor = measure_backfill(launcher, groups, floor_sample, result)
            check_rows(home, first_hour, hours, entities, result)
            singles = measure_single_runs(launcher, keys, single_runs)
            bare = measure_bare(simulator.url, home, groups, house, 1 if quick else 3)
            report(result, groups, real, floor, singles, bare, launcher)
            if not args.no_variants and (not quick or args.variants_in_quick):
                measure_variants(scratch, env, result, 24 if quick else VARIANT_SIZE)
        finally:
            simulator.stop()


def measure_backfill(launcher: Launcher, groups: list[tuple[str, str, int]], floor_sample: list[int],
                     result: BenchResult) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    real: list[dict[str, Any]] = []
    floor: dict[int, dict[str, Any]] = {}
    backfill_tag = {"dagster/backfill": "benchyear"}
    for index, (start, end, size) in enumerate(groups):
        launch = launcher.launch("bench_hourly_backfill", [{"start": start, "end": end}], f"real-{index:02d}",
                                 tags=backfill_tag)
        real.append(launch)
        log(NAME, f"real run {index + 1}/{len(groups)} ({size} partitions): {launch['wall_s']:.1f} s "
                  f"({launch['run_s']:.1f} s in the run)")
        if index in floor_sample:
            launch = launcher.launch("bench_noop_backfill", [{"start": start, "end": end}], f"floor-{index:02d}",
                                     tags={"dagster/backfill": "benchfloor"})
            floor[index] = launch
            log(NAME, f"  floor run {index + 1} ({size} partitions): {launch['wall_s']:.1f} s")
    return real, floor


def check_rows(home: Path, first_hour: datetime, hours: int, entities: int, result: BenchResult) -> None:
    from energy_pipeline.storage.sqlite_timeseries import SQLiteTimeSeriesStore

    store = SQLiteTimeSeriesStore(home / "timeseries.sqlite3")
    counts = store.count_statistics(None, first_hour, first_hour + timedelta(hours=hours))
    store.close()
    stored = sum(counts.values())
    result.data["rows_stored"] = stored
    result.data["entities_stored"] = len(counts)
    result.add("rows stored by the backfill", stored, "rows", target=f"= {entities * hours:,}",
               met=stored == entities * hours)


def measure_single_runs(launcher: Launcher, keys: list[str], count: int) -> list[dict[str, Any]]:
    """(c): one launched run per partition, for ``count`` consecutive hours in the middle of the year."""
    middle = len(keys) // 2
    picked = keys[max(0, middle - count // 2):][:count]
    launches = []
    for index, key in enumerate(picked):
        launches.append(launcher.launch("bench_hourly_backfill", [{"partition": key}], f"single-{index:02d}",
                                        tags={"dagster/backfill": "benchsingle"}))
    log(NAME, f"(c) {len(launches)} single-partition runs: median {median([x['wall_s'] for x in launches]):.2f} s "
              "per launched run")
    return launches


def measure_bare(url: str, home: Path, groups: list[tuple[str, str, int]], house: Any,
                 repetitions: int) -> list[float]:
    """(b): the same ranges fetched with the client and written to a fresh store, no Dagster."""
    from energy_pipeline.defs.ha_statistics.assets import fetch_hourly_rows
    from energy_pipeline.homeassistant.client import HomeAssistantSyncClient
    from energy_pipeline.storage.sqlite_timeseries import SQLiteTimeSeriesStore

    entity_ids = [e.entity_id for e in house.meters]
    totals = []
    for repetition in range(repetitions):
        store = SQLiteTimeSeriesStore(home / f"bare-{repetition}.sqlite3")
        store.ensure_schema()
        started = time.perf_counter()
        written = 0
        for start, end, _ in groups:
            begin = datetime.strptime(start, KEY_FORMAT).replace(tzinfo=UTC)
            finish = datetime.strptime(end, KEY_FORMAT).replace(tzinfo=UTC) + timedelta(hours=1)
            with HomeAssistantSyncClient(url, TOKEN) as client:  # one connection per run, as the asset does
                rows = fetch_hourly_rows(client, entity_ids, begin, finish)
            written += store.write_statistics(rows)
        totals.append(time.perf_counter() - started)
        store.close()
    log(NAME, f"(b) bare fetch + write: {[round(t, 2) for t in totals]} s ({written} rows)")
    return totals


def report(result: BenchResult, groups: list[tuple[str, str, int]], real: list[dict[str, Any]],
           floor: dict[int, dict[str, Any]], singles: list[dict[str, Any]], bare: list[float],
           launcher: Launcher) -> None:
    partitions = sum(size for _, _, size in groups)
    real_total = sum(x["wall_s"] for x in real)
    real_in_runs = sum(x["run_s"] for x in real)
    paired = [real[i]["wall_s"] / floor[i]["wall_s"] for i in sorted(floor)]
    floor_partitions = sum(groups[i][2] for i in floor)
    floor_rate = sum(x["wall_s"] for x in floor.values()) / floor_partitions
    floor_total = floor_rate * partitions
    floor_in_runs = sum(x["run_s"] for x in floor.values()) / floor_partitions * partitions
    sampled_real = sum(real[i]["wall_s"] for i in floor)
    sampled_floor = sum(x["wall_s"] for x in floor.values())
    ratio_a = median(paired)  # robust to one range disturbed by other work on the machine
    single_wall = median([x["wall_s"] for x in singles])
    single_in_run = median([x["run_s"] for x in singles])
    c_total = single_wall * partitions
    bare_total = median(bare)
    overheads = [x["wall_s"] - x["run_s"] for x in launcher.launches]
    launch_overhead = median(overheads)
    floor_note = "all ranges" if len(floor) == len(groups) else f"{len(floor)} of {len(groups)} ranges, extrapolated"

    result.data.update(
        real_runs=[{"label": x["label"], "wall_s": x["wall_s"], "run_s": x["run_s"]} for x in real],
        floor_runs={str(i): {"wall_s": x["wall_s"], "run_s": x["run_s"]} for i, x in floor.items()},
        paired_ratios=paired, single_runs_wall_s=[x["wall_s"] for x in singles],
        single_runs_in_run_s=[x["run_s"] for x in singles], bare_totals_s=bare,
        launch_overhead_s=overheads)
    result.add(f"real backfill, {len(real)} launched runs (wall)", real_total, "s",
               baseline=f"{1000 * real_total / partitions:.1f} ms/partition")
    result.add("(a) Dagster floor, no-op asset, same runs", floor_total, "s",
               baseline=f"{1000 * floor_rate:.1f} ms/partition ({floor_note})")
    result.add("real / floor, median of the paired ranges", ratio_a, "×",
               baseline=f"sum over the sampled ranges: {sampled_real / sampled_floor:.2f}×", ratio=ratio_a,
               target="≤ 1.5×", met=ratio_a <= 1.5)
    result.add("(b) bare client fetch + store write, no Dagster", bare_total, "s",
               baseline=f"median of {len(bare)}; {partitions * int(result.params['entities']) / bare_total:,.0f} "
                        "rows/s")
    share = 1 - bare_total / real_total
    result.add("share of the backfill that is Dagster bookkeeping", round(100 * share, 1), "%",
               baseline="1 − (b)/real")
    result.add("(c) one launched run per partition (extrapolated)", c_total, "s",
               baseline=f"{single_wall:.2f} s/run, median of {len(singles)}")
    result.add("(c) / real backfill", c_total / real_total, "×", ratio=c_total / real_total, target="≥ 100×",
               met=c_total / real_total >= 100)
    result.add("(c) in-process part only / real runs' in-process part", single_in_run * partitions / real_in_runs,
               "×", baseline=f"{single_in_run:.2f} s/run without process launch")
    result.add("upper bound of (c)/backfill set by the floor: (c) / (a)", c_total / floor_total, "×")
    result.add("per-run launch overhead (process, imports, code load)", launch_overhead, "s",
               baseline=f"median of {len(overheads)} launches")
    result.note(f"Floor: {floor_note}; paired ratios per range: {', '.join(f'{r:.2f}' for r in paired)}.")
    result.note(f"Time inside execute_in_process: real {real_in_runs:.0f} s, floor {floor_in_runs:.0f} s "
                f"(extrapolated); the rest is the {len(real)} process launches.")


VARIANT_SIZE = 336  # two weeks of hours: long enough that per-partition costs dominate


def measure_variants(scratch: Path, env: dict[str, str], result: BenchResult, size: int) -> None:
    """How far Dagster's per-partition floor moves with instance settings, and what the real asset adds to it.

    Each variant gets a fresh instance and runs, in one worker process, a 24-partition warm-up range and
    then a measured range of ``VARIANT_SIZE`` partitions; the in-process part of the measured run is used.
    """
    from bench.postgres import private_postgres

    first = datetime.strptime(env["ENERGY_PIPELINE_START_DATE"], "%Y-%m-%d").replace(tzinfo=UTC)
    keys = [(first + timedelta(hours=h)).strftime(KEY_FORMAT) for h in range(24 + size)]
    runs = [{"start": keys[0], "end": keys[23]}, {"start": keys[24], "end": keys[-1]}]
    subset = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}
    noop, meta, real = "bench_noop_backfill", "bench_noop_metadata_backfill", "bench_hourly_backfill"
    default_label = "floor, SQLite instance on disk (default)"
    variants: list[tuple[str, str, dict[str, str], str]] = [
        (default_label, noop, {}, "disk"),
        ("floor + the asset's 8 metadata entries on every partition event", meta, {}, "disk"),
        ("real asset + checks (same instance settings)", real, {}, "disk"),
        ("floor, one planned event per run (DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true)", noop, subset,
         "disk"),
        ("real asset + checks, one planned event per run", real, subset, "disk"),
        ("floor, + batched event writes (DAGSTER_EVENT_BATCH_SIZE=1000)", noop,
         {**subset, "DAGSTER_EVENT_BATCH_SIZE": "1000"}, "disk"),
        ("floor, SQLite instance on tmpfs (/dev/shm: no fsync)", noop, {}, "shm"),
        ("floor, PostgreSQL instance storage (local server)", noop, {}, "postgres"),
        ("floor, PostgreSQL + one planned event per run", noop, subset, "postgres"),
        ("real asset + checks, PostgreSQL + one planned event per run", real, subset, "postgres"),
    ]
    measured: dict[str, float] = {}
    with private_postgres() as postgres_url:
        for index, (label, job, extra, where) in enumerate(variants):
            if where == "postgres" and postgres_url is None:
                result.note(f"variant '{label}' skipped: PostgreSQL server binaries not installed")
                continue
            if where == "shm" and not Path("/dev/shm").is_dir():
                continue
            base = Path(f"/dev/shm/energy-bench-dagster-{os.getpid()}-{index}") if where == "shm" else \
                scratch / f"variant-{index}"
            base.mkdir(parents=True)
            try:
                if where == "postgres":
                    postgres_reset(postgres_url)
                    (base / "dagster.yaml").write_text(dagster_postgres_yaml(postgres_url))
                else:
                    (base / "dagster.yaml").write_text(dagster_yaml(base))
                launcher = Launcher({**env, **extra, "DAGSTER_HOME": str(base)}, scratch / "logs")
                launch = launcher.launch(job, runs, f"variant-{index}")
                measured[label] = 1000 * launch["runs"][1]["run_s"] / size
                log(NAME, f"variant {label}: {measured[label]:.1f} ms/partition")
            finally:
                if where == "shm":
                    shutil.rmtree(base, ignore_errors=True)
    default = measured.get(default_label)
    result.data["variants_ms_per_partition"] = measured
    for label, ms in measured.items():
        result.add(f"variant: {label}", ms, "ms/partition",
                   baseline=f"{size}-partition run" if label == default_label else "vs. default floor",
                   ratio=ms / default if default else None)


def postgres_reset(url: str) -> None:
    """Drop Dagster's tables so each Postgres variant starts from an empty instance."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public;"))
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(NAME, TITLE, argv, __doc__.splitlines()[0], body, add_flags)


if __name__ == "__main__":
    raise SystemExit(main())
