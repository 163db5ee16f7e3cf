"""The code location of the backfill benchmark: the real statistics assets and checks, plus Dagster's floor.

The floor is a no-op asset on the *same* hourly partitions definition with the *same* BackfillPolicy
(``multi_run`` of ``MAX_HOURS_PER_RUN``), so a range run of it pays exactly Dagster's bookkeeping for
those partitions (run creation, one planned and one materialization event per partition) and nothing
else. Resources come from the product's own ``build_resources()`` (environment: ``ENERGY_PIPELINE_HOME``,
``HA_URL``, ``HA_TOKEN``), like ``energy_pipeline.definitions``.

The environment must be set before this module is imported: the partitions are laid out at import.
"""


import dagster as dg

from energy_pipeline.defs.ha_statistics.assets import MAX_HOURS_PER_RUN, energy_entities, hourly_energy_statistics
from energy_pipeline.defs.ha_statistics.checks import (
    statistics_change_is_not_negative,
    statistics_have_no_duplicates,
    statistics_have_no_gaps,
)
from energy_pipeline.defs.ha_statistics.partitions import hourly_partitions_def
from energy_pipeline.defs.resources import build_resources

CHECKS = [statistics_have_no_gaps, statistics_have_no_duplicates, statistics_change_is_not_negative]


@dg.asset(
    group_name="bench",
    description="Dagster's floor: does nothing, on the statistics asset's partitions and backfill policy.",
    partitions_def=hourly_partitions_def,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_HOURS_PER_RUN),
)
def bench_noop_hourly() -> dg.MaterializeResult:
    return dg.MaterializeResult()


@dg.asset(
    group_name="bench",
    description="The floor plus the statistics asset's run metadata (8 entries), which Dagster copies onto "
    "every partition's materialization event of a range run.",
    partitions_def=hourly_partitions_def,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_HOURS_PER_RUN),
)
def bench_noop_hourly_with_metadata(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    window = context.partition_time_window
    return dg.MaterializeResult(metadata={
        "rows_written": 14880, "entities": 20, "hours": 744, "first_hour": window.start.isoformat(),
        "last_hour": window.end.isoformat(), "missing_hours": 0, "duration_s": 0.5, "store": "sqlite"})


# What the backfill daemon puts in each run of an asset backfill: the asset and the checks that target it
# (``build_run_requests_with_backfill_policies`` adds ``get_check_keys_for_assets``), one partition range.
hourly_backfill_job = dg.define_asset_job(
    "bench_hourly_backfill",
    selection=dg.AssetSelection.assets(hourly_energy_statistics) | dg.AssetSelection.checks(*CHECKS),
)
noop_backfill_job = dg.define_asset_job(
    "bench_noop_backfill", selection=[bench_noop_hourly],
)
noop_metadata_backfill_job = dg.define_asset_job(
    "bench_noop_metadata_backfill", selection=[bench_noop_hourly_with_metadata],
)
discovery_job = dg.define_asset_job("bench_discovery", selection=[energy_entities])

defs = dg.Definitions(
    assets=[energy_entities, hourly_energy_statistics, bench_noop_hourly, bench_noop_hourly_with_metadata],
    asset_checks=CHECKS,
    jobs=[hourly_backfill_job, noop_backfill_job, noop_metadata_backfill_job, discovery_job],
    resources=build_resources(),
)
