"""Jobs the UI can launch, and the hourly schedule."""


from datetime import UTC, datetime, timedelta

import dagster as dg

from energy_pipeline.defs.ha_statistics.assets import (
    daily_energy_summary,
    energy_entities,
    hourly_energy_statistics,
)
from energy_pipeline.defs.ha_statistics.partitions import daily_partitions_def, hourly_partitions_def

energy_entities_job = dg.define_asset_job(
    "energy_entities_job", selection=[energy_entities],
    description="Discover Home Assistant's energy entities and their roles.",
)
hourly_energy_statistics_job = dg.define_asset_job(
    "hourly_energy_statistics_job", selection=[hourly_energy_statistics], partitions_def=hourly_partitions_def,
    description="Fetch hourly statistics for a UTC hour or, as a backfill, a range of hours.",
)
daily_energy_summary_job = dg.define_asset_job(
    "daily_energy_summary_job", selection=[daily_energy_summary], partitions_def=daily_partitions_def,
    description="Summarize stored hourly statistics per local day.",
)

PARTITION_KEY_FORMAT = "%Y-%m-%d-%H:%M"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def hour_already_fetched(instance: dg.DagsterInstance, hour: datetime) -> bool:
    """True when the hour's partition was materialized after the hour ended (i.e. with final data)."""
    key = hour.strftime(PARTITION_KEY_FORMAT)
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=hourly_energy_statistics.key, asset_partitions=[key],
                              after_timestamp=(hour + timedelta(hours=1)).timestamp()), limit=1)
    return bool(result.records)


def hours_to_fetch(scheduled_for: datetime) -> tuple[str, str]:
    """At hh:12, the hour that just ended and, again, the one before it (HA may have revised it)."""
    this_hour = scheduled_for.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    first, last = this_hour - timedelta(hours=2), this_hour - timedelta(hours=1)
    return first.strftime(PARTITION_KEY_FORMAT), last.strftime(PARTITION_KEY_FORMAT)


@dg.schedule(
    cron_schedule="12 * * * *",
    job=hourly_energy_statistics_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour at minute 12 (HA compiles hourly statistics just after the hour): the hour "
    "that ended and the one before it, in one run.",
)
def hourly_energy_statistics_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    first, last = hours_to_fetch(context.scheduled_execution_time)
    if not hourly_partitions_def.has_partition_key(first):
        return dg.SkipReason(f"hour {first} is before the first partition")
    if hour_already_fetched(context.instance, datetime.strptime(last, PARTITION_KEY_FORMAT).replace(tzinfo=UTC)):
        return dg.SkipReason(f"hour {last} was already fetched when Home Assistant announced it")
    return dg.RunRequest(run_key=f"hourly-{last}", tags={RANGE_START_TAG: first, RANGE_END_TAG: last})
