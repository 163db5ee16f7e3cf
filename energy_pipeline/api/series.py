"""Consumption (and cost) per calendar bucket for one or many entities, aligned on one bucket list.

The requested range is widened to whole buckets of the period (a "day" bar is always a whole local
day), buckets come from :mod:`energy_pipeline.storage.buckets` in the house's time zone, and
consumption is the store's ``aggregate_consumption`` (sum of hourly ``change``). Cost needs the price
of every hour, so it is computed from the stored hourly rows (one row per entity and hour, the store's
hourly aggregation as is; asking ``aggregate_consumption`` for hour buckets would build one bucket per
hour of the range even where nothing is stored) and rolled up into the same buckets.

A bucket with no stored hour has ``consumption: null`` (and ``cost: null``): "no data" is not "zero".
Cost is only given for energy bought from the grid (``energy_pipeline.tariffs.priced_factor``): solar
production or grid export priced at the import tariff would be a wrong number, so theirs is ``null``.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from energy_pipeline.api.errors import ApiError
from energy_pipeline.api.state import ApiState, local_iso, parse_time
from energy_pipeline.storage.buckets import Period, bucket_boundaries
from energy_pipeline.storage.documents import EntityRecord
from energy_pipeline.tariffs import Tariff, TariffError, parse_tariff, priced_factor

log = logging.getLogger(__name__)
MAX_BUCKETS = 10_000
DEFAULT_RANGE = timedelta(days=7)
# Shortest possible length of a bucket, so (range / shortest) bounds the bucket count before any list
# of boundaries is built (a DST day has 23 hours, February 28 days).
_SHORTEST = {"hour": timedelta(hours=1), "day": timedelta(hours=23), "week": timedelta(days=7, hours=-1),
             "month": timedelta(days=28, hours=-1)}
DIGITS = 6


@dataclass(frozen=True)
class Window:
    """Whole buckets covering the requested range: ``bounds[i]`` .. ``bounds[i+1]`` (aware UTC)."""

    bounds: list[datetime]
    period: Period
    time_zone: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def start(self) -> datetime:
        return self.bounds[0]

    @property
    def end(self) -> datetime:
        return self.bounds[-1]


@dataclass
class Series:
    entity_id: str
    record: EntityRecord | None
    consumption: list[float | None]
    hours_with_data: list[int]
    cost: list[float | None]
    energy_cost: list[float | None]
    fixed_cost: list[float | None]
    priced: bool

    def total(self) -> dict[str, float | None]:
        return {"consumption": _sum(self.consumption), "cost": _sum(self.cost),
                "energy_cost": _sum(self.energy_cost), "fixed_cost": _sum(self.fixed_cost)}


def _sum(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return _round(sum(present)) if present else None


def _round(value: float | None) -> float | None:
    """Rounded for display; a non-finite result (only possible with absurd inputs) is shown as no value."""
    return None if value is None or not math.isfinite(value) else round(value, DIGITS)


def resolve_window(state: ApiState, start: str | None, end: str | None, period: Period) -> Window:
    """Parse the range (default: the 7 days before now), check it and widen it to whole buckets."""
    zone = state.time_zone()
    tz = ZoneInfo(zone)
    end_utc = parse_time(end, "end", tz) or datetime.now(UTC)
    start_utc = parse_time(start, "start", tz) or end_utc - DEFAULT_RANGE
    if end_utc <= start_utc:
        raise ApiError(400, "invalid_range", f"end ({local_iso(end_utc, tz)}) must be after start "
                       f"({local_iso(start_utc, tz)})")
    if (end_utc - start_utc) / _SHORTEST[period] > MAX_BUCKETS + 2:
        raise ApiError(400, "range_too_large", f"the range holds more than {MAX_BUCKETS} {period} buckets; "
                       "shorten it or choose a longer period")
    bounds = bucket_boundaries(start_utc, end_utc, period, tz)
    if len(bounds) - 1 > MAX_BUCKETS:
        raise ApiError(400, "range_too_large", f"the range holds {len(bounds) - 1} {period} buckets, more than "
                       f"{MAX_BUCKETS}; shorten it or choose a longer period")
    return Window(bounds=bounds, period=period, time_zone=zone)


def current_tariff(state: ApiState) -> Tariff | None:
    """The saved tariff; one that no longer validates (saved by an older version or by hand, since
    ``PUT /api/settings`` validates) gives no cost rather than failing the whole chart."""
    raw = state.settings.tariff()
    if not raw:
        return None
    try:
        return parse_tariff(raw)
    except TariffError as exc:
        log.warning("ignoring the saved tariff, save a corrected one with PUT /api/settings: %s", exc)
        return None


def build_series(state: ApiState, entity_ids: list[str], window: Window) -> tuple[list[Series], Tariff | None]:
    """One aligned series per entity (same order as ``entity_ids``); 404 for an unknown id."""
    records = state.entities(entity_ids)
    tariff = current_tariff(state)
    count = len(window.bounds) - 1
    index_of = {b: i for i, b in enumerate(window.bounds[:-1])}
    consumption: dict[str, list[float | None]] = {e: [None] * count for e in entity_ids}
    hours: dict[str, list[int]] = {e: [0] * count for e in entity_ids}
    for bucket in state.timeseries.aggregate_consumption(entity_ids, window.start, window.end, window.period,
                                                         window.time_zone):
        index = index_of.get(bucket.start)
        if index is not None and bucket.entity_id in consumption:
            consumption[bucket.entity_id][index] = _round(bucket.consumption)
            hours[bucket.entity_id][index] = bucket.hours

    factors = {e: priced_factor(r.unit if r else None, r.role if r else None) for e, r in records.items()}
    priced_ids = [e for e in entity_ids if tariff is not None and factors[e] is not None]
    hourly: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    if priced_ids:
        for row in state.timeseries.read_statistics(priced_ids, window.start, window.end):
            if row.change is not None:
                hourly[row.entity_id].append((row.ts, row.change * (factors[row.entity_id] or 0.0)))

    out: list[Series] = []
    for entity_id in entity_ids:
        cost: list[float | None] = [None] * count
        energy: list[float | None] = [None] * count
        fixed: list[float | None] = [None] * count
        priced = tariff is not None and entity_id in priced_ids
        if tariff is not None and priced:
            for i, breakdown in enumerate(tariff.bucket_costs(window.bounds, hourly[entity_id], window.time_zone)):
                if breakdown is not None and consumption[entity_id][i] is not None:
                    cost[i], energy[i], fixed[i] = (_round(breakdown.total), _round(breakdown.energy),
                                                    _round(breakdown.fixed))
        out.append(Series(entity_id=entity_id, record=records[entity_id], consumption=consumption[entity_id],
                          hours_with_data=hours[entity_id], cost=cost, energy_cost=energy, fixed_cost=fixed,
                          priced=priced))
    return out, tariff


def bucket_list(window: Window) -> list[dict[str, object]]:
    """``start``/``end`` as local ISO times with offset, and the bucket's length in hours (23/25 on DST days)."""
    tz = window.tz
    return [{"start": local_iso(a, tz), "end": local_iso(b, tz), "hours": int((b - a) / timedelta(hours=1))}
            for a, b in pairwise(window.bounds)]
