"""Executes Dagster runs in a fresh process, as a launched run does, and reports their timings as JSON.

``python -m bench.dagster_worker --defs bench.backfill_defs --job NAME --runs '[{"start": K1, "end": K2}]'``

Each run is executed in this process against ``DagsterInstance.get()`` (``DAGSTER_HOME``), with the
partition-range tags the backfill daemon sets (``dagster/asset_partition_range_start/end``) or a single
``partition``. A fresh process per launch is what Dagster's run launcher does for every run (it starts a
process that imports the code and executes the run), so the parent's wall time of this process is the
cost of one launched run, and ``run_s`` is the part spent inside ``execute_in_process``.

One JSON object per run is printed on stdout, each on a line starting with ``BENCH_RUN ``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

STARTED = time.perf_counter()
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--defs", required=True, help="module with a `defs` Definitions")
    parser.add_argument("--job", required=True)
    parser.add_argument("--runs", required=True, help='JSON list of {"start","end"} or {"partition"} or {}')
    parser.add_argument("--tag", action="append", default=[], help="extra run tag key=value")
    args = parser.parse_args(argv)

    import dagster as dg

    defs = importlib.import_module(args.defs).defs
    job = defs.resolve_job_def(args.job)
    instance = dg.DagsterInstance.get()
    imported_s = time.perf_counter() - STARTED
    extra_tags = dict(tag.split("=", 1) for tag in args.tag)
    ok = True
    for spec in json.loads(args.runs):
        tags = dict(extra_tags)
        partition = spec.get("partition")
        if "start" in spec:
            tags.update({RANGE_START_TAG: spec["start"], RANGE_END_TAG: spec["end"]})
        started = time.perf_counter()
        result = job.execute_in_process(instance=instance, tags=tags, partition_key=partition, raise_on_error=False)
        run_s = time.perf_counter() - started
        materializations = len(result.get_asset_materialization_events())
        checks = [e.passed for e in result.get_asset_check_evaluations()]
        print("BENCH_RUN " + json.dumps({"run_id": result.run_id, "success": result.success, "run_s": run_s,
                                         "imported_s": imported_s, "materializations": materializations,
                                         "checks_passed": checks}), flush=True)
        ok = ok and result.success
        imported_s = 0.0
    instance.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
