"""Checks of the stored hourly statistics, run with every materialization over its hours."""


from collections import defaultdict
from datetime import UTC, datetime, timedelta

import dagster as dg

from energy_pipeline.defs.ha_statistics.assets import (
    hourly_energy_statistics,
    missing_hours_table,
    tracked_entity_ids,
)
from energy_pipeline.defs.ha_statistics.partitions import hourly_partitions_def, utc_time_window
from energy_pipeline.defs.resources import DocumentsResource, TimeSeriesResource
from energy_pipeline.storage.timeseries import StatisticRow

# A check launched on its own, without a partition, looks at the last day.
DEFAULT_WINDOW = timedelta(hours=24)
# Home Assistant treats a total_increasing reading that drops by 10 % or more as a meter reset.
RESET_FRACTION = 0.9


def check_window(context: dg.AssetCheckExecutionContext) -> tuple[datetime, datetime]:
    """The UTC hours the run materialized (a range for backfills), or the last 24 full hours."""
    if context.has_partition_key_range or context.has_partition_key:
        return utc_time_window(context)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return end - DEFAULT_WINDOW, end


def record_result(documents: DocumentsResource, name: str, result: dg.AssetCheckResult,
                  start: datetime, end: datetime) -> dg.AssetCheckResult:
    """Keep the latest result of each check in the document store, for the API's status page."""
    summary = {
        "passed": result.passed,
        "severity": result.severity.value,
        "window_start": start,
        "window_end": end,
        "checked_at": datetime.now(UTC),
        "description": result.description,
    }
    documents.store.record_check_result(name, summary)
    return result


@dg.asset_check(
    asset=hourly_energy_statistics,
    partitions_def=hourly_partitions_def,
    description="Every tracked entity has a statistics row for every hour of the checked window.",
)
def statistics_have_no_gaps(
    context: dg.AssetCheckExecutionContext, timeseries: TimeSeriesResource, documents: DocumentsResource
) -> dg.AssetCheckResult:
    start, end = check_window(context)
    entity_ids = tracked_entity_ids(documents)
    missing = timeseries.store.missing_hours(entity_ids, start, end) if entity_ids else {}
    total = sum(len(h) for h in missing.values())
    metadata: dict[str, object] = {"entities": len(entity_ids), "missing_entity_hours": total,
                                   "window": f"{start.isoformat()} .. {end.isoformat()}"}
    if missing:
        metadata["gaps"] = dg.MetadataValue.md(missing_hours_table(missing))
    result = dg.AssetCheckResult(
        passed=total == 0, metadata=metadata,
        description=f"{total} entity-hours missing" if total else "no gaps",
    )
    return record_result(documents, "statistics_have_no_gaps", result, start, end)


@dg.asset_check(
    asset=hourly_energy_statistics,
    partitions_def=hourly_partitions_def,
    description="No (hour, entity) key is stored more than once.",
)
def statistics_have_no_duplicates(
    context: dg.AssetCheckExecutionContext, timeseries: TimeSeriesResource, documents: DocumentsResource
) -> dg.AssetCheckResult:
    start, end = check_window(context)
    duplicates = timeseries.store.duplicate_statistics(start, end)
    metadata: dict[str, object] = {"duplicate_keys": len(duplicates)}
    if duplicates:
        rows = "\n".join(f"| {d.entity_id} | {d.ts.isoformat()} | {d.count} |" for d in duplicates[:20])
        metadata["duplicates"] = dg.MetadataValue.md("| entity | hour | copies |\n|---|---|---|\n" + rows)
    result = dg.AssetCheckResult(passed=not duplicates, metadata=metadata,
                                 description=f"{len(duplicates)} duplicated keys" if duplicates else "no duplicates")
    return record_result(documents, "statistics_have_no_duplicates", result, start, end)


def classify_negative_changes(rows: list[StatisticRow]) -> tuple[list[StatisticRow], list[StatisticRow]]:
    """Split hours into (meter resets, negative changes that are not resets).

    A reset is HA's own rule for ``total_increasing`` meters: the reading (``state``) fell by at least
    10 % from the previous hour's. HA keeps ``sum`` continuous across it, so it is only worth a warning.
    Any other negative ``change`` (a small dip HA did not take for a reset) is consumption that went
    backwards: an error.
    """
    by_entity: dict[str, list[StatisticRow]] = defaultdict(list)
    for row in rows:
        by_entity[row.entity_id].append(row)
    resets, negatives = [], []
    for entity_rows in by_entity.values():
        entity_rows.sort(key=lambda r: r.ts)
        previous: StatisticRow | None = None
        for row in entity_rows:
            is_reset = (previous is not None and previous.ts == row.ts - timedelta(hours=1)
                        and row.state is not None and previous.state is not None
                        and row.state < RESET_FRACTION * previous.state)
            if is_reset:
                resets.append(row)
            elif row.change is not None and row.change < 0:
                negatives.append(row)
            previous = row
    return resets, negatives


def _rows_table(rows: list[StatisticRow]) -> str:
    lines = ["| entity | hour (UTC) | change | state |", "|---|---|---|---|"]
    lines += [f"| {r.entity_id} | {r.ts.isoformat()} | {r.change} | {r.state} |" for r in rows[:20]]
    return "\n".join(lines)


@dg.asset_check(
    asset=hourly_energy_statistics,
    partitions_def=hourly_partitions_def,
    description="No negative hourly change outside a meter reset. A reset (the meter reading falls by 10 % "
    "or more, HA's rule, while HA's sum stays continuous) is reported as a warning with its hour.",
)
def statistics_change_is_not_negative(
    context: dg.AssetCheckExecutionContext, timeseries: TimeSeriesResource, documents: DocumentsResource
) -> dg.AssetCheckResult:
    start, end = check_window(context)
    # One hour of look-back so a reset in the window's first hour is recognised.
    rows = timeseries.store.read_statistics(tracked_entity_ids(documents), start - timedelta(hours=1), end)
    resets, negatives = classify_negative_changes(rows)
    resets = [r for r in resets if r.ts >= start]
    negatives = [r for r in negatives if r.ts >= start]
    metadata: dict[str, object] = {"negative_changes": len(negatives), "meter_resets": len(resets)}
    if negatives:
        metadata["negative_hours"] = dg.MetadataValue.md(_rows_table(negatives))
    if resets:
        metadata["reset_hours"] = dg.MetadataValue.md(_rows_table(resets))
    if negatives:
        result = dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata,
                                     description=f"{len(negatives)} negative hourly changes outside a reset")
    elif resets:
        result = dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
                                     description=f"{len(resets)} meter resets: "
                                     + ", ".join(f"{r.entity_id} at {r.ts.isoformat()}" for r in resets[:3]))
    else:
        result = dg.AssetCheckResult(passed=True, metadata=metadata, description="no negative changes")
    return record_result(documents, "statistics_change_is_not_negative", result, start, end)
