"""Home Assistant's long-term statistics as Dagster assets: entities, hourly rows, daily summaries."""


import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from energy_pipeline.config import load_config
from energy_pipeline.defs.ha_statistics.partitions import (
    daily_partitions_def,
    hourly_partitions_def,
    utc_time_window,
)
from energy_pipeline.defs.resources import DocumentsResource, HomeAssistantResource, TimeSeriesResource
from energy_pipeline.storage.buckets import next_bucket_start
from energy_pipeline.storage.documents import ROLES, EntityRecord, SyncLogEntry
from energy_pipeline.storage.timeseries import DailySummary, StatisticRow

GROUP = "ha_statistics"
# A month of hours per run: a backfill of a year is 12 runs, each fetching its range in a few HA calls.
MAX_HOURS_PER_RUN = 24 * 31
# Dagster's bookkeeping for one partition in a run is cheap; a launched run costs seconds.
MAX_DAYS_PER_RUN = 366


_CONFIG = load_config()
TIMESERIES_KIND = _CONFIG.timeseries_backend  # questdb | sqlite
DOCUMENTS_KIND = _CONFIG.documents_backend  # mongodb | sqlite


def tracked_entity_ids(documents: DocumentsResource) -> list[str]:
    return [e.entity_id for e in documents.store.list_entities(tracked=True)]


@dg.asset(
    group_name=GROUP,
    description="Energy statistics Home Assistant offers, with their role (grid import/export, solar, "
    "battery, gas, water, device), discovered from the energy dashboard's preferences, or from every "
    "statistic with a sum when energy is not configured. Upserted in the document store; the tracked "
    "flag a user set is kept across re-discovery.",
    kinds={"homeassistant", DOCUMENTS_KIND},
)
def energy_entities(
    context: dg.AssetExecutionContext, home_assistant: HomeAssistantResource, documents: DocumentsResource
) -> dg.MaterializeResult:
    started = time.monotonic()
    with home_assistant.client() as client:
        ha_config = client.get_config()
        discovered = client.discover_entities()
    now = datetime.now(UTC)
    records = [
        EntityRecord(entity_id=d.statistic_id, name=d.name, unit=d.unit, role=d.role if d.role in ROLES else None,
                     tracked=True,
                     source=d.source, has_sum=d.has_sum, created_at=now, updated_at=now)
        for d in discovered
    ]
    inserted, updated = documents.store.upsert_entities(records)
    documents.store.update_settings({"ha_time_zone": ha_config.time_zone, "ha_version": ha_config.version})
    documents.store.append_sync_log(SyncLogEntry(kind="discovery", status="success", run_id=context.run_id,
                                                 rows_written=len(records),
                                                 message=f"{inserted} new, {updated} refreshed"))
    stored = {e.entity_id: e for e in documents.store.list_entities()}
    table = "| entity | role | unit | tracked |\n|---|---|---|---|\n" + "\n".join(
        f"| {d.statistic_id} | {d.role} | {d.unit or ''} | {stored[d.statistic_id].tracked} |" for d in discovered
    )
    context.log.info("discovered %d entities (%d new) on HA %s, time zone %s",
                     len(records), inserted, ha_config.version, ha_config.time_zone)
    if daily_partitions_def.timezone != ha_config.time_zone:
        context.log.warning(
            f"daily partitions are laid out in {daily_partitions_def.timezone}, Home Assistant uses "
            f"{ha_config.time_zone}: reload the code location (Deployment → Reload) to use HA's zone, "
            "or set ENERGY_PIPELINE_TIME_ZONE")
    return dg.MaterializeResult(metadata={
        "entities": len(records),
        "inserted": inserted,
        "updated": updated,
        "tracked": sum(1 for e in stored.values() if e.tracked),
        "ha_version": ha_config.version,
        "time_zone": ha_config.time_zone,
        "entity_table": dg.MetadataValue.md(table),
        "duration_s": round(time.monotonic() - started, 3),
    })


def fetch_hourly_rows(client, entity_ids: list[str], start: datetime, end: datetime) -> list[StatisticRow]:
    """HA's hourly rows for ``[start, end)`` as store rows; the client splits long ranges in chunks."""
    if not entity_ids:
        return []
    result = client.statistics_during_period(entity_ids, start, end, period="hour")
    rows: list[StatisticRow] = []
    for entity_id, stats in result.items():
        for s in stats:
            if start <= s.start < end:
                rows.append(StatisticRow(ts=s.start, entity_id=entity_id, change=s.change, sum=s.sum,
                                         state=s.state, mean=s.mean, min=s.min, max=s.max, source="ha"))
    return rows


def hours_in(start: datetime, end: datetime) -> list[datetime]:
    hours, hour = [], start
    while hour < end:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def missing_hours_of(rows: list[StatisticRow], entity_ids: list[str], start: datetime,
                     end: datetime) -> dict[str, list[datetime]]:
    present: dict[str, set[datetime]] = defaultdict(set)
    for row in rows:
        present[row.entity_id].add(row.ts)
    all_hours = hours_in(start, end)
    missing = {e: [h for h in all_hours if h not in present[e]] for e in entity_ids}
    return {e: hours for e, hours in missing.items() if hours}


def missing_hours_table(missing: dict[str, list[datetime]], limit: int = 20) -> str:
    lines = ["| entity | missing hours | first missing (UTC) |", "|---|---|---|"]
    for entity, hours in sorted(missing.items(), key=lambda kv: -len(kv[1]))[:limit]:
        lines.append(f"| {entity} | {len(hours)} | {', '.join(h.strftime('%Y-%m-%d %H:%M') for h in hours[:5])} |")
    return "\n".join(lines)


@dg.asset(
    group_name=GROUP,
    description="Home Assistant's hourly long-term statistics (change, sum, state, mean, min, max) of "
    "every tracked entity, one UTC hour per partition, written to the time-series store with "
    "source='ha'. A backfill runs up to a month of hours per run and fetches each range in a few "
    "Home Assistant calls. Re-materializing a partition upserts the same keys: same rows, no duplicates. "
    "Hours Home Assistant has not compiled yet are listed as missing in the metadata.",
    partitions_def=hourly_partitions_def,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_HOURS_PER_RUN),
    deps=[energy_entities],
    kinds={"homeassistant", TIMESERIES_KIND},
)
def hourly_energy_statistics(
    context: dg.AssetExecutionContext,
    home_assistant: HomeAssistantResource,
    timeseries: TimeSeriesResource,
    documents: DocumentsResource,
) -> dg.MaterializeResult:
    started = time.monotonic()
    start, end = utc_time_window(context)
    entity_ids = tracked_entity_ids(documents)
    if not entity_ids:
        context.log.warning("no tracked entities: materialize energy_entities first, or track some in the API")
    # Fetch everything before writing anything: HA failing half-way leaves the store untouched.
    with home_assistant.client() as client:
        rows = fetch_hourly_rows(client, entity_ids, start, end)
    written = timeseries.store.write_statistics(rows)
    missing = missing_hours_of(rows, entity_ids, start, end)
    missing_total = sum(len(h) for h in missing.values())
    if missing_total:
        context.log.warning("%d entity-hours not (yet) compiled by Home Assistant in %s .. %s",
                            missing_total, start.isoformat(), end.isoformat())
    documents.store.append_sync_log(SyncLogEntry(
        kind="statistics", status="success", run_id=context.run_id,
        partition=f"{context.partition_key_range.start}..{context.partition_key_range.end}",
        rows_written=written, message=f"{len(entity_ids)} entities, {missing_total} entity-hours missing",
        details={"start": start.isoformat(), "end": end.isoformat(), "missing_hours": missing_total},
    ))
    metadata: dict[str, object] = {
        "rows_written": written,
        "entities": len(entity_ids),
        "hours": len(hours_in(start, end)),
        "first_hour": start.isoformat(),
        "last_hour": (end - timedelta(hours=1)).isoformat(),
        "missing_hours": missing_total,
        "duration_s": round(time.monotonic() - started, 3),
        "store": timeseries.backend,
    }
    if missing:
        metadata["missing_hours_table"] = dg.MetadataValue.md(missing_hours_table(missing))
    return dg.MaterializeResult(metadata=metadata)


def summarize_day(rows: list[StatisticRow], entity_ids: list[str], day_start: datetime, day_end: datetime,
                  time_zone: str) -> list[DailySummary]:
    """One summary per entity for the local day ``[day_start, day_end)`` (23, 24 or 25 hours)."""
    by_entity: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if day_start <= row.ts < day_end and row.change is not None:
            by_entity[row.entity_id].append(row.change)
    expected = int((day_end - day_start) / timedelta(hours=1))
    local_day = day_start.astimezone(ZoneInfo(time_zone)).date()
    summaries = []
    for entity in entity_ids:
        changes = by_entity.get(entity, [])
        summaries.append(DailySummary(
            day=local_day, ts=day_start, entity_id=entity, consumption=float(sum(changes)),
            min_hourly=min(changes) if changes else None, max_hourly=max(changes) if changes else None,
            hours_present=len(changes), hours_expected=expected, time_zone=time_zone,
        ))
    return summaries


@dg.asset(
    group_name=GROUP,
    description="Consumption per tracked entity per local day in the house's time zone (sum of hourly "
    "change), with the smallest and largest hour and how many of the day's hours are present. DST days "
    "have 23 or 25 hours. Built from the stored hourly statistics of the day's UTC hours.",
    partitions_def=daily_partitions_def,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_DAYS_PER_RUN),
    # Dagster maps time windows only between partitions of the same time zone; UTC hours and local days
    # differ, so the edge is declared over all hours and the asset reads its local day's UTC hours itself.
    deps=[dg.AssetDep(hourly_energy_statistics, partition_mapping=dg.AllPartitionMapping())],
    kinds={TIMESERIES_KIND},
)
def daily_energy_summary(
    context: dg.AssetExecutionContext, timeseries: TimeSeriesResource, documents: DocumentsResource
) -> dg.MaterializeResult:
    started = time.monotonic()
    start, end = utc_time_window(context)
    time_zone = daily_partitions_def.timezone
    entity_ids = tracked_entity_ids(documents)
    rows = timeseries.store.read_statistics(entity_ids, start, end)
    summaries: list[DailySummary] = []
    tz = ZoneInfo(time_zone)
    day_start = start
    while day_start < end:
        day_end = next_bucket_start(day_start, "day", tz)
        summaries.extend(summarize_day(rows, entity_ids, day_start, day_end, time_zone))
        day_start = day_end
    written = timeseries.store.write_daily_summaries(summaries)
    incomplete = [s for s in summaries if s.hours_present < s.hours_expected]
    total = sum(s.consumption for s in summaries)
    context.log.info("%d daily summaries, %d incomplete days", written, len(incomplete))
    return dg.MaterializeResult(metadata={
        "rows_written": written,
        "entities": len(entity_ids),
        "days": len({s.day for s in summaries}),
        "first_day": summaries[0].day.isoformat() if summaries else None,
        "last_day": summaries[-1].day.isoformat() if summaries else None,
        "incomplete_entity_days": len(incomplete),
        "total_consumption": round(total, 3),
        "time_zone": time_zone,
        "duration_s": round(time.monotonic() - started, 3),
    })
