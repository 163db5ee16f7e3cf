"""Running the pipeline from the API: a statistics backfill, an entity discovery, and the sync log.

Everything goes through the Dagster webserver's GraphQL API (``DAGSTER_GRAPHQL_URL``), never in-process,
so every run and backfill appears in the Dagster UI and is executed by its daemon. When the webserver
does not answer, the routes answer 503 ``dagster_unavailable`` naming its address.

The sync log comes from Dagster's run storage (see :mod:`energy_pipeline.orchestration` for why not from
the document store's ``sync_log``). With ``entity_id`` it lists what concerns that entity: runs and
backfills of the statistics or the migration whose hours hold rows of that entity from that asset (``ha``
or ``legacy``; ``entity_rows`` says how many are stored now), and those that did not succeed (yet) -- a
failed or queued run concerns every entity of its hours. Discovery runs write no rows of an entity and
are left out then.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends, Query

from energy_pipeline.api.errors import ERROR_RESPONSES, ApiError, ErrorResponse
from energy_pipeline.api.schemas import DiscoverOut, SyncIn, SyncLogEntryOut, SyncLogOut, SyncOut
from energy_pipeline.api.state import ApiState, api_state, local_iso, parse_time
from energy_pipeline.orchestration import (
    DISCOVERY_JOB,
    HOURLY_ASSET,
    DagsterGraphQLClient,
    SyncRecord,
    hourly_partition_keys,
    parse_hourly_key,
)

OPERATION_RESPONSES: dict[int | str, dict] = {
    **ERROR_RESPONSES,
    502: {"model": ErrorResponse, "description": "Dagster refused the request (code dagster_error)"},
    503: {"model": ErrorResponse, "description": "The Dagster webserver is not reachable (code dagster_unavailable)"},
}
router = APIRouter(prefix="/api", tags=["operations"], responses=OPERATION_RESPONSES)

DEFAULT_SYNC_HOURS = 24
MAX_SYNC_HOURS = 366 * 24
MAX_LOG = 200
SOURCE_OF_KIND = {"statistics": "ha", "migration": "legacy"}


def graphql(state: ApiState) -> DagsterGraphQLClient:
    """A client of the configured webserver; connection failures are retried once (a page must not hang)."""
    return DagsterGraphQLClient(state.config.dagster_graphql_url, timeout=state.dagster_timeout_s, attempts=2)


@router.post("/sync", response_model=SyncOut, status_code=202, summary="Backfill hourly statistics")
def sync(body: SyncIn | None = Body(default=None), state: ApiState = Depends(api_state)) -> SyncOut:
    """Launches a backfill of ``hourly_energy_statistics`` for the UTC hours overlapping ``[start, end)``
    (default: the last 24 complete UTC hours). The daemon executes it; watch it in the Dagster UI or in
    ``GET /api/sync/log``. Hours outside the asset's partitions (before its start date, or not complete
    yet) are a 400 naming the partitions that exist."""
    tz = ZoneInfo(state.time_zone())
    this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    end = parse_time(body.end if body else None, "end", tz) or this_hour
    start = parse_time(body.start if body else None, "start", tz) or end - timedelta(hours=DEFAULT_SYNC_HOURS)
    if end <= start:
        raise ApiError(400, "invalid_range", f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
    if end - start > timedelta(hours=MAX_SYNC_HOURS):
        raise ApiError(400, "range_too_large", f"at most {MAX_SYNC_HOURS} hours (366 days) per sync")
    keys = hourly_partition_keys(start, end)
    client = graphql(state)
    bounds = client.partition_bounds(HOURLY_ASSET)
    if bounds is None or keys[0] < bounds[0] or keys[-1] > bounds[1]:
        known = f"from {bounds[0]} to {bounds[1]}" if bounds else "none"
        raise ApiError(400, "range_outside_partitions",
                       f"{HOURLY_ASSET} has partitions (UTC hours) {known}; the range asks for {keys[0]} .. "
                       f"{keys[-1]}. The first partition is ENERGY_PIPELINE_START_DATE, the last is the last "
                       "complete hour")
    backfill_id = client.launch_asset_backfill(HOURLY_ASSET, keys, title=f"API sync {keys[0]} .. {keys[-1]}")
    last = parse_hourly_key(keys[-1]) + timedelta(hours=1)
    return SyncOut(backfill_id=backfill_id, partitions=keys, partition_count=len(keys), asset=HOURLY_ASSET,
                   start=parse_hourly_key(keys[0]).isoformat(), end=last.isoformat(),
                   ui_url=f"{client.ui_url}/runs/b/{backfill_id}")


@router.post("/entities/discover", response_model=DiscoverOut, status_code=202, summary="Discover entities",
             tags=["entities"])
def discover(state: ApiState = Depends(api_state)) -> DiscoverOut:
    """Launches ``energy_entities_job``: the entities and roles of Home Assistant's energy preferences are
    upserted (a tracked flag set here is kept). Returns the run id; ``GET /api/entities`` shows the result
    once the run has finished."""
    client = graphql(state)
    run_id = client.launch_job(DISCOVERY_JOB, tags={"energy_pipeline/launched_by": "api"})
    return DiscoverOut(run_id=run_id, job_name=DISCOVERY_JOB, ui_url=f"{client.ui_url}/runs/{run_id}")


def _entity_rows(state: ApiState, entity_id: str, records: list[SyncRecord]) -> dict[str, int]:
    """Rows of ``entity_id`` stored in each record's hours from the record's asset (one read for all)."""
    spans = {r.id: r.time_range() for r in records if r.kind in SOURCE_OF_KIND}
    ranges = [s for s in spans.values() if s is not None]
    if not ranges:
        return {}
    rows = state.timeseries.read_statistics([entity_id], min(s[0] for s in ranges), max(s[1] for s in ranges))
    by_source: dict[str, list[datetime]] = {}
    for row in rows:
        by_source.setdefault(row.source, []).append(row.ts)
    counts = {}
    for record in records:
        span = spans.get(record.id)
        if span is None:
            continue
        stamps = sorted(by_source.get(SOURCE_OF_KIND[record.kind], []))
        counts[record.id] = bisect.bisect_left(stamps, span[1]) - bisect.bisect_left(stamps, span[0])
    return counts


@router.get("/sync/log", response_model=SyncLogOut, summary="Recent syncs, migrations and discoveries")
def sync_log(limit: int = Query(default=20, ge=1, le=MAX_LOG, description="Most entries returned"),
             entity_id: str | None = Query(default=None, description="Only what concerns this entity"),
             state: ApiState = Depends(api_state)) -> SyncLogOut:
    """Runs and backfills of ``hourly_energy_statistics``, ``legacy_energy_statistics`` and ``energy_entities``,
    newest first, from Dagster: status, partitions, rows written (materialization metadata ``rows_written``),
    duration and error (the root cause of the first failed step)."""
    tz = ZoneInfo(state.time_zone())
    if entity_id is not None:
        state.entities([entity_id])  # 404 for an unknown id
    client = graphql(state)
    records = client.sync_log(min(MAX_LOG, limit * 3) if entity_id else limit)
    counts: dict[str, int] = {}
    if entity_id is not None:
        counts = _entity_rows(state, entity_id, records)
        records = [r for r in records if r.kind in SOURCE_OF_KIND and (counts.get(r.id, 0) > 0 or not r.succeeded)]
    records = records[:limit]
    client.add_details(records)

    def when(epoch: float | None) -> str | None:
        return None if epoch is None else local_iso(datetime.fromtimestamp(epoch, UTC), tz)

    entries = []
    for record in records:
        span = record.time_range()
        link = f"/runs/b/{record.id}" if record.type == "backfill" else f"/runs/{record.id}"
        entries.append(SyncLogEntryOut(
            type=record.type, id=record.id, kind=record.kind, assets=record.assets, status=record.status,  # type: ignore[arg-type]
            job_name=record.job_name, backfill_id=record.backfill_id, title=record.title,
            partition_first=record.partition_first, partition_last=record.partition_last,
            partition_count=record.partition_count, hours_start=local_iso(span[0], tz) if span else None,
            hours_end=local_iso(span[1], tz) if span else None, created_at=when(record.created_at),
            started_at=when(record.started_at), ended_at=when(record.ended_at),
            duration_s=None if record.duration_s is None else round(record.duration_s, 3),
            rows_written=record.rows_written, entity_rows=counts.get(record.id) if entity_id else None,
            error=record.error, metadata=record.metadata, run_ids=record.run_ids, ui_url=client.ui_url + link))
    return SyncLogOut(dagster_url=client.ui_url, entity_id=entity_id, entries=entries)

