"""``/api/statistics``: consumption (and cost) per local calendar bucket, for charts and CSV.

``export.csv`` is declared before ``{entity_id}`` so it is not taken for an entity id.
"""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from energy_pipeline.api.errors import ERROR_RESPONSES
from energy_pipeline.api.schemas import (
    MAX_COMPARE,
    Bucket,
    BucketValues,
    CompareIn,
    CompareOut,
    CompareSeries,
    PeriodName,
    StatisticsOut,
    Total,
)
from energy_pipeline.api.series import Series, bucket_list, build_series, resolve_window
from energy_pipeline.api.state import ApiState, api_state, check_ids, local_iso, split_ids

router = APIRouter(prefix="/api/statistics", tags=["statistics"], responses=ERROR_RESPONSES)
MAX_EXPORT = 50

START_DOC = "ISO 8601 date or date-time; naive = the house's time zone; default: end - 7 days"
END_DOC = "ISO 8601 date or date-time (exclusive); default: now"
PERIOD_DOC = "Calendar bucket in the house's time zone (weeks start on Monday)"


def _currency(series: Series, currency: str | None) -> str | None:
    return currency if series.priced else None


@router.get("/export.csv", summary="Consumption and cost as CSV",
            response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "bucket_start, entity_id, consumption, cost (empty = no data)"}})
def export_csv(entity_ids: str = Query(description="Comma-separated entity ids", examples=["sensor.a,sensor.b"]),
               start: str | None = Query(default=None, description=START_DOC),
               end: str | None = Query(default=None, description=END_DOC),
               period: PeriodName = Query(default="day", description=PERIOD_DOC),
               state: ApiState = Depends(api_state)) -> Response:
    """One row per bucket and entity; an empty cell is a bucket without stored hours (or without a price)."""
    ids = split_ids(entity_ids, max_count=MAX_EXPORT) or []
    window = resolve_window(state, start, end, period)
    series, _ = build_series(state, ids, window)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["bucket_start", "entity_id", "consumption", "cost"])
    for index, bucket in enumerate(bucket_list(window)):
        for item in series:
            consumption, cost = item.consumption[index], item.cost[index]
            writer.writerow([bucket["start"], item.entity_id, "" if consumption is None else str(consumption),
                             "" if cost is None else str(cost)])
    filename = f"energy_{period}_{window.start.date().isoformat()}_{window.end.date().isoformat()}.csv"
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.post("/compare", response_model=CompareOut, summary="Compare entities on the same buckets")
def compare(body: CompareIn, state: ApiState = Depends(api_state)) -> CompareOut:
    """Every series has exactly one value per bucket of ``buckets``; ``null`` marks a bucket without stored
    hours (no data), which is different from a measured 0."""
    check_ids(body.entity_ids, "entity_ids", MAX_COMPARE)
    window = resolve_window(state, body.start, body.end, body.period)
    series, tariff = build_series(state, list(body.entity_ids), window)
    priced = [s for s in series if s.priced]
    return CompareOut(
        period=window.period, time_zone=window.time_zone, start=local_iso(window.start, window.tz),
        end=local_iso(window.end, window.tz), currency=tariff.currency if tariff and priced else None,
        buckets=[Bucket(**b) for b in bucket_list(window)],
        series=[CompareSeries(entity_id=s.entity_id, name=s.record.name if s.record else None,
                              unit=s.record.unit if s.record else None, consumption=s.consumption,
                              hours_with_data=s.hours_with_data, cost=s.cost, total=Total(**s.total()))
                for s in series],
    )


@router.get("/{entity_id}", response_model=StatisticsOut, summary="Consumption per bucket of one entity")
def statistics(entity_id: str,
               start: str | None = Query(default=None, description=START_DOC),
               end: str | None = Query(default=None, description=END_DOC),
               period: PeriodName = Query(default="hour", description=PERIOD_DOC),
               state: ApiState = Depends(api_state)) -> StatisticsOut:
    """Consumption = sum of hourly ``change`` per bucket; the range is widened to whole buckets; a bucket
    without stored hours has ``null``. Cost (when a tariff is saved and the entity is energy bought from the
    grid: grid_import, device or no role) = hourly consumption x the price of that local hour, plus the
    daily charge of each whole local day in the bucket (so hour buckets carry no daily charge)."""
    window = resolve_window(state, start, end, period)
    (series,), tariff = build_series(state, [entity_id], window)
    buckets = [
        BucketValues(**b, hours_with_data=series.hours_with_data[i], consumption=series.consumption[i],
                     cost=series.cost[i], energy_cost=series.energy_cost[i], fixed_cost=series.fixed_cost[i])
        for i, b in enumerate(bucket_list(window))
    ]
    return StatisticsOut(
        entity_id=entity_id, name=series.record.name if series.record else None,
        unit=series.record.unit if series.record else None, period=window.period, time_zone=window.time_zone,
        start=local_iso(window.start, window.tz), end=local_iso(window.end, window.tz),
        currency=_currency(series, tariff.currency if tariff else None), buckets=buckets,
        total=Total(**series.total()),
    )
