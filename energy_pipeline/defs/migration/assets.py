"""Migration of the previous app's ``energy.db`` into the stores, one month of its data per partition.

Which source wins: Home Assistant. A legacy row whose (hour, entity) HA has already supplied is not
written (counted as ``superseded_by_ha``), and a later HA materialization overwrites legacy rows on
the same keys. The migration is idempotent: a re-run upserts the same keys with the same values.
"""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

import dagster as dg

from energy_pipeline.config import load_config
from energy_pipeline.defs.ha_statistics.partitions import utc_time_window
from energy_pipeline.defs.resources import DocumentsResource, TimeSeriesResource
from energy_pipeline.storage.documents import EntityRecord, SyncLogEntry
from energy_pipeline.storage.legacy import LegacyDatabase, LegacyDatabaseError, LegacyScan, RejectedRow

log = logging.getLogger(__name__)
GROUP = "migration"
DEFAULT_LEGACY_START = date(2020, 1, 1)
_CONFIG = load_config()


def legacy_start_month(path) -> date:
    """The first month of the legacy data, so the partitions cover exactly its range."""
    if path is None:
        return DEFAULT_LEGACY_START
    try:
        with LegacyDatabase(path) as db:
            first = db.first_instant()
    except (LegacyDatabaseError, OSError) as exc:
        log.warning("legacy database not readable for partitioning (%s); months start %s", exc,
                    DEFAULT_LEGACY_START)
        return DEFAULT_LEGACY_START
    return date(first.year, first.month, 1) if first else DEFAULT_LEGACY_START


legacy_monthly_partitions_def = dg.MonthlyPartitionsDefinition(
    start_date=legacy_start_month(_CONFIG.legacy_sqlite_path).isoformat(), timezone="UTC", end_offset=1,
)


@dataclass
class PartitionCounts:
    """What happened to the legacy rows of one window; read = written + rejected + superseded + merged."""

    read: int = 0
    written: int = 0
    rejected: int = 0
    superseded_by_ha: int = 0
    duplicates_merged: int = 0
    other_periods: int = 0


def count_window(scan: LegacyScan, ha_keys: set[tuple[str, datetime]], start: datetime,
                 end: datetime) -> tuple[PartitionCounts, list, list[RejectedRow]]:
    """Classify the scan's rows of ``[start, end)``; returns counts, rows to write, rejected rows."""
    counts = PartitionCounts()
    to_write = []
    for row in scan.hourly:
        if start <= row.ts < end:
            if (row.entity_id, row.ts) in ha_keys:
                counts.superseded_by_ha += 1
            else:
                to_write.append(row)
    rejected = [r for r, ts in scan.rejected if ts is not None and start <= ts < end]
    counts.rejected = len(rejected)
    counts.duplicates_merged = sum(1 for _, ts in scan.duplicates if start <= ts < end)
    counts.other_periods = sum(1 for _, ts, _ in scan.other_periods if start <= ts < end)
    counts.written = len(to_write)
    counts.read = counts.written + counts.superseded_by_ha + counts.rejected + counts.duplicates_merged
    return counts, to_write, rejected


def ha_keys_in(timeseries: TimeSeriesResource, start: datetime, end: datetime) -> set[tuple[str, datetime]]:
    return {(r.entity_id, r.ts) for r in timeseries.store.read_statistics(None, start, end) if r.source == "ha"}


def open_legacy_database() -> LegacyDatabase:
    path = load_config().legacy_sqlite_path
    if path is None:
        raise dg.Failure("LEGACY_SQLITE_PATH is not set: point it at the previous app's energy.db "
                         "(e.g. LEGACY_SQLITE_PATH=/data/energy.db) and re-run the migration.")
    try:
        return LegacyDatabase(path)
    except LegacyDatabaseError as exc:
        raise dg.Failure(str(exc)) from None


def _rejected_table(rows: list[RejectedRow], limit: int = 10) -> str:
    lines = ["| id | entity | start_time | reason |", "|---|---|---|---|"]
    lines += [f"| {r.row_id} | {r.entity_id} | {r.start_time} | {r.reason} |" for r in rows[:limit]]
    return "\n".join(lines)


@dg.asset(
    group_name=GROUP,
    description="Hourly statistics of the previous app's energy.db (LEGACY_SQLITE_PATH), one month of its "
    "data per partition, written with source='legacy' and change derived from consecutive sums. Both "
    "start_time encodings are read; unreadable rows are counted and listed, never dropped silently. "
    "Home Assistant wins: hours HA supplied are not overwritten. Entities are added untracked.",
    partitions_def=legacy_monthly_partitions_def,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"sqlite", _CONFIG.timeseries_backend},
)
def legacy_energy_statistics(
    context: dg.AssetExecutionContext, timeseries: TimeSeriesResource, documents: DocumentsResource
) -> dg.MaterializeResult:
    started = time.monotonic()
    start, end = utc_time_window(context)
    with open_legacy_database() as db:
        scan = db.scan()
        legacy_entities = db.entities()
    counts, to_write, rejected = count_window(scan, ha_keys_in(timeseries, start, end), start, end)
    written = timeseries.store.write_statistics(to_write)
    now = datetime.now(UTC)
    seen = {r.entity_id for r in to_write}
    records = [EntityRecord(entity_id=str(e["entity_id"]), name=e["name"], unit=e["unit"], role=None,  # type: ignore[arg-type]
                            tracked=False, source="legacy", created_at=now, updated_at=now)
               for e in legacy_entities if e["entity_id"]]
    known = {r.entity_id for r in records}
    records += [EntityRecord(entity_id=e, tracked=False, source="legacy", created_at=now, updated_at=now)
                for e in sorted(seen - known)]
    inserted, _ = documents.store.upsert_entities(records)
    unplaceable = [r for r, ts in scan.rejected if ts is None]
    if rejected or unplaceable:
        context.log.warning("%d rows of this window and %d rows without a readable time were rejected",
                            len(rejected), len(unplaceable))
    documents.store.append_sync_log(SyncLogEntry(
        kind="migration", status="success", run_id=context.run_id,
        partition=f"{context.partition_key_range.start}..{context.partition_key_range.end}", rows_written=written,
        message=f"read {counts.read}, written {written}, rejected {counts.rejected}",
        details={"superseded_by_ha": counts.superseded_by_ha, "duplicates_merged": counts.duplicates_merged},
    ))
    metadata: dict[str, object] = {
        "rows_read": counts.read,
        "rows_written": written,
        "rows_rejected": counts.rejected,
        "superseded_by_ha": counts.superseded_by_ha,
        "duplicates_merged": counts.duplicates_merged,
        "other_period_rows_skipped": counts.other_periods,
        "rows_without_readable_time": len(unplaceable),
        "entities": len(seen),
        "entities_added": inserted,
        "first_hour": min((r.ts for r in to_write), default=start).isoformat(),
        "last_hour": max((r.ts for r in to_write), default=start).isoformat(),
        "duration_s": round(time.monotonic() - started, 3),
    }
    if rejected or unplaceable:
        metadata["rejected_rows"] = dg.MetadataValue.md(_rejected_table(unplaceable + rejected))
    return dg.MaterializeResult(metadata=metadata)


legacy_migration_job = dg.define_asset_job(
    "legacy_migration_job", selection=[legacy_energy_statistics], partitions_def=legacy_monthly_partitions_def,
    description="Migrate the previous app's energy.db; launch it as a backfill over all months (one run).",
)


@dg.asset_check(
    asset=legacy_energy_statistics,
    partitions_def=legacy_monthly_partitions_def,
    description="Per month: rows read from energy.db = rows stored with source='legacy' + rows rejected + "
    "rows Home Assistant supplied + duplicate encodings merged. Recounted from both databases.",
)
def migration_row_counts_match(
    context: dg.AssetCheckExecutionContext, timeseries: TimeSeriesResource
) -> dg.AssetCheckResult:
    start, end = utc_time_window(context)
    with open_legacy_database() as db:
        scan = db.scan()
    expected, _, _ = count_window(scan, ha_keys_in(timeseries, start, end), start, end)
    source_rows = sum(1 for r in scan.hourly if start <= r.ts < end) + expected.rejected + expected.duplicates_merged
    stored_legacy = sum(1 for r in timeseries.store.read_statistics(None, start, end) if r.source == "legacy")
    accounted = stored_legacy + expected.rejected + expected.superseded_by_ha + expected.duplicates_merged
    return dg.AssetCheckResult(
        passed=accounted == source_rows,
        metadata={"rows_read": source_rows, "rows_stored_legacy": stored_legacy, "rows_rejected": expected.rejected,
                  "superseded_by_ha": expected.superseded_by_ha, "duplicates_merged": expected.duplicates_merged,
                  "difference": source_rows - accounted},
        description=f"{source_rows} read, {accounted} accounted for",
    )
