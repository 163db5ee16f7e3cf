"""``/api/insights``: top consumers, peak hours, breakdown, timeline, heatmap, baseload and self-sufficiency.

The computations live in :mod:`energy_pipeline.insights` (pure, unit-tested); these routes resolve the range,
read the hourly rows of the tracked energy entities and shape the JSON.

Range: ``period=day|week|month`` is the *current* local calendar bucket (today, this week from Monday 00:00,
this month) as a whole -- hours that have not happened yet simply have no data -- and ``offset=-1`` the one
before it (yesterday, last week, ...). An explicit ``start``/``end`` (ISO 8601; naive = the house's zone) is
used as is: the hours starting in ``[start, end)``. Without any of these, the current week.

Entities: the tracked ones (untracking a device takes it out of the insights; its energy becomes part of the
rest) measured in an energy unit; gas and water are excluded. See :mod:`energy_pipeline.insights` for how
negative changes, incomplete hours and a negative rest are handled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query

from energy_pipeline import insights
from energy_pipeline.api.errors import ERROR_RESPONSES, ApiError
from energy_pipeline.api.schemas import (
    BaseloadOut,
    BreakdownOut,
    BreakdownPart,
    ConsumerOut,
    DataIssues,
    EntityPeakOut,
    HeatCellOut,
    HeatmapOut,
    HourOut,
    InsightPeriod,
    NegativeChangeOut,
    NegativeRestHourOut,
    NightOut,
    PeakOut,
    SelfSufficiencyBucket,
    SelfSufficiencyOut,
    SelfSufficiencyValues,
    TimelineOut,
    TimelineSeries,
    TopConsumersOut,
)
from energy_pipeline.api.series import current_tariff
from energy_pipeline.api.state import ApiState, api_state, local_iso, parse_time, split_ids
from energy_pipeline.storage.buckets import bucket_boundaries, bucket_start, next_bucket_start

router = APIRouter(prefix="/api/insights", tags=["insights"], responses=ERROR_RESPONSES)

DEFAULT_PERIOD: InsightPeriod = "week"
DEFAULT_EXPLICIT_RANGE = timedelta(days=7)
MAX_RANGE = timedelta(days=400)
MAX_LISTED = 50
MAX_OFFSET = 120
DIGITS = 6

PERIOD_DOC = ("The current local day, week (from Monday) or month as a whole; default week. Not together with "
              "start/end")
OFFSET_DOC = "0 = the current bucket, -1 = the one before (yesterday, last week, ...)"
START_DOC = "ISO 8601; naive = the house's time zone; default end - 7 days"
END_DOC = "ISO 8601 (exclusive); default now"


@dataclass
class Context:
    """The resolved range and the hourly data of the tracked energy entities."""

    time_zone: str
    period: InsightPeriod | None
    start: datetime
    end: datetime
    data: insights.Hourly

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def iso(self, value: datetime) -> str:
        return local_iso(value, self.tz)

    def hour(self, start: datetime, value: float) -> HourOut:
        return HourOut(start=self.iso(start), end=self.iso(start + insights.HOUR), consumption=_round(value))

    def base(self, house: insights.House | None = None) -> dict[str, object]:
        """The fields every insight has: range, unit and the data issues."""
        if house is None and insights.has_house(self.data):
            house = insights.house_consumption(self.data)
        negative = self.data.negative
        issues = DataIssues(
            negative_change_count=len(negative),
            negative_changes=[NegativeChangeOut(entity_id=n.entity_id, start=self.iso(n.ts), change=n.change)
                              for n in negative[:MAX_LISTED]],
            incomplete_house_hours=len(house.incomplete) if house else 0)
        return {"time_zone": self.time_zone, "period": self.period, "start": self.iso(self.start),
                "end": self.iso(self.end), "hours": int((self.end - self.start) / insights.HOUR), "issues": issues}

    def bounds(self, group_by: Literal["hour", "day"]) -> list[datetime]:
        return bucket_boundaries(self.start, self.end, group_by, self.tz)


def _round(value: float) -> float:
    return round(value, DIGITS)


def _maybe(value: float | None) -> float | None:
    return None if value is None else _round(value)


def _range(state: ApiState, period: InsightPeriod | None, offset: int, start: str | None,
           end: str | None) -> tuple[str, InsightPeriod | None, datetime, datetime]:
    zone = state.time_zone()
    tz = ZoneInfo(zone)
    if start is not None or end is not None:
        if period is not None or offset:
            raise ApiError(400, "conflicting_range", "give either period (and offset) or start/end, not both")
        end_utc = parse_time(end, "end", tz) or datetime.now(UTC)
        start_utc = parse_time(start, "start", tz) or end_utc - DEFAULT_EXPLICIT_RANGE
        if end_utc <= start_utc:
            raise ApiError(400, "invalid_range", f"end ({local_iso(end_utc, tz)}) must be after start "
                           f"({local_iso(start_utc, tz)})")
        if end_utc - start_utc > MAX_RANGE:
            raise ApiError(400, "range_too_large", f"at most {MAX_RANGE.days} days, got "
                           f"{(end_utc - start_utc) / timedelta(days=1):.1f}; shorten the range")
        return zone, None, start_utc, end_utc
    chosen: InsightPeriod = period or DEFAULT_PERIOD
    first = bucket_start(datetime.now(UTC), chosen, tz)
    for _ in range(-offset):
        first = bucket_start(first - timedelta(microseconds=1), chosen, tz)
    return zone, chosen, first, next_bucket_start(first, chosen, tz)


def context(state: ApiState, period: InsightPeriod | None, offset: int, start: str | None, end: str | None,
            extra_ids: list[str] | None = None) -> Context:
    """Resolve the range and read the tracked energy entities' hours (plus ``extra_ids``, e.g. a heatmap's
    entity, whatever their tracked flag)."""
    zone, chosen, start_utc, end_utc = _range(state, period, offset, start, end)
    records = state.documents.list_entities(tracked=True)
    if extra_ids:
        known = {r.entity_id for r in records}
        records += [r for r in state.entities(extra_ids).values() if r is not None and r.entity_id not in known]
    meters = insights.energy_meters(records)
    rows = state.timeseries.read_statistics([m.entity_id for m in meters], start_utc, end_utc) if meters else []
    data = insights.hourly_from_rows(rows, meters, start_utc, end_utc)
    return Context(time_zone=zone, period=chosen, start=start_utc, end=end_utc, data=data)


def _house(ctx: Context) -> insights.House:
    try:
        return insights.house_consumption(ctx.data)
    except insights.InsightError as exc:
        raise ApiError(422, "no_grid_import", str(exc)) from None


def _range_params(period: InsightPeriod | None = Query(default=None, description=PERIOD_DOC),
                  offset: int = Query(default=0, ge=-MAX_OFFSET, le=0, description=OFFSET_DOC),
                  start: str | None = Query(default=None, description=START_DOC),
                  end: str | None = Query(default=None, description=END_DOC)) -> dict[str, object]:
    return {"period": period, "offset": offset, "start": start, "end": end}


@router.get("/top-consumers", response_model=TopConsumersOut, summary="Devices ranked by consumption")
def top_consumers(limit: int = Query(default=5, ge=1, le=20, description="How many devices"),
                  params: dict = Depends(_range_params), state: ApiState = Depends(api_state)) -> TopConsumersOut:
    """Tracked devices (role ``device``) by consumption, each with its share of the total: the house's
    consumption when a grid import meter is tracked (shares then need not add up to 1: the rest is
    unmeasured), else the sum of the devices (``total_basis`` says which)."""
    ctx = context(state, **params)
    result = insights.top_consumers(ctx.data, limit)
    consumers = [ConsumerOut(rank=i + 1, entity_id=c.meter.entity_id, name=c.meter.name,
                             consumption=_round(c.kwh), hours=c.hours, share=_maybe(c.share))
                 for i, c in enumerate(result.consumers)]
    return TopConsumersOut(**ctx.base(), total=_maybe(result.total),  # type: ignore[arg-type]
                           total_basis=result.basis, devices_total=_round(result.devices_total),  # type: ignore[arg-type]
                           device_count=result.device_count, consumers=consumers)


@router.get("/peak", response_model=PeakOut, summary="The hour of highest consumption")
def peak(params: dict = Depends(_range_params), state: ApiState = Depends(api_state)) -> PeakOut:
    """Per tracked energy entity its highest hour, and overall the house's highest hour (house consumption per
    hour; without grid import the hourly sum of the devices). On a tie the earliest hour wins."""
    ctx = context(state, **params)
    result = insights.peaks(ctx.data)
    entities = [EntityPeakOut(entity_id=m.entity_id, name=m.name, role=m.role,
                              peak=ctx.hour(p.start, p.kwh) if p else None) for m, p in result.entities]
    overall = ctx.hour(result.overall.start, result.overall.kwh) if result.overall else None
    return PeakOut(**ctx.base(), overall=overall, overall_basis=result.basis,  # type: ignore[arg-type]
                   entities=entities)


@router.get("/breakdown", response_model=BreakdownOut, summary="House consumption: measured devices and the rest",
            responses={422: {"description": "No grid import entity is tracked"}})
def breakdown(params: dict = Depends(_range_params), state: ApiState = Depends(api_state)) -> BreakdownOut:
    """House consumption = grid import + solar − grid export + battery discharge − battery charge, split into
    the tracked devices and the unmeasured rest. A negative rest (the meters disagree, e.g. export metered but
    not the solar that fed it) is reported with ``rest_negative`` and the hours where it happens."""
    ctx = context(state, **params)
    house = _house(ctx)
    result = insights.breakdown(ctx.data)
    total = result.house

    def share(value: float) -> float | None:
        return _round(value / total) if total is not None and total > insights.TOLERANCE else None

    devices = [BreakdownPart(entity_id=m.entity_id, name=m.name, consumption=_round(v), share=share(v))
               for m, v in result.devices]
    negative = [NegativeRestHourOut(start=ctx.iso(h.start), end=ctx.iso(h.start + insights.HOUR),
                                    house=_round(h.house), devices=_round(h.devices), rest=_round(h.rest))
                for h in result.negative_rest_hours[:MAX_LISTED]]
    return BreakdownOut(**ctx.base(house), house=_maybe(total),  # type: ignore[arg-type]
                        components={k: _round(v) for k, v in sorted(result.components.items())},
                        devices=devices, devices_total=_round(result.devices_total), rest=_maybe(result.rest),
                        rest_share=share(result.rest) if result.rest is not None else None,
                        rest_negative=result.rest_negative, negative_rest_hour_count=len(result.negative_rest_hours),
                        negative_rest_hours=negative, hours_used=result.hours)


@router.get("/timeline", response_model=TimelineOut, summary="Stacked per-entity consumption per hour or day")
def timeline(group_by: Literal["hour", "day"] = Query(default="day", description="Bucket of the series"),
             entity_ids: str | None = Query(default=None, description="Comma-separated tracked energy entities; "
                                            "default: the devices"),
             params: dict = Depends(_range_params), state: ApiState = Depends(api_state)) -> TimelineOut:
    """One series per entity, aligned on local buckets covering the range (only hours inside the range count);
    with a grid import meter also the house's consumption and the rest (house − the series shown), so the
    stacked series plus the rest make the house."""
    ids = split_ids(entity_ids, max_count=50)
    ctx = context(state, **params)
    if ids is not None:
        state.entities(ids)  # 404 for an unknown id
        missing = [e for e in ids if e not in ctx.data.meters]
        if missing:
            raise ApiError(422, "not_a_tracked_energy_entity",
                           f"{', '.join(map(repr, missing))}: not a tracked entity with an energy unit "
                           "(gas and water are not part of the insights)")
    bounds = ctx.bounds(group_by)
    result = insights.timeline(ctx.data, bounds, ids)

    def rounded(values: list[float | None] | None) -> list[float | None] | None:
        return None if values is None else [_maybe(v) for v in values]

    buckets = [{"start": ctx.iso(a), "end": ctx.iso(b), "hours": int((b - a) / insights.HOUR)}
               for a, b in pairwise(bounds)]
    series = [TimelineSeries(entity_id=m.entity_id, name=m.name, role=m.role, consumption=rounded(values) or [])
              for m, values in result.series]
    return TimelineOut(**ctx.base(), group_by=group_by, buckets=buckets, series=series,  # type: ignore[arg-type]
                       house=rounded(result.house), rest=rounded(result.rest))


@router.get("/heatmap", response_model=HeatmapOut, summary="Average consumption per weekday and hour of day")
def heatmap(entity_id: str | None = Query(default=None, description="One energy entity; default the house"),
            params: dict = Depends(_range_params), state: ApiState = Depends(api_state)) -> HeatmapOut:
    """7 x 24 cells (local weekday x local hour): the average over the days present in the range. DST: the
    repeated autumn hour is added into its local hour slot; the skipped spring hour has one sample fewer."""
    ctx = context(state, **params, extra_ids=[entity_id] if entity_id else None)
    basis: Literal["house", "devices", "entity"] | None
    if entity_id is not None:
        if entity_id not in ctx.data.meters:
            raise ApiError(422, "not_an_energy_entity",
                           f"{entity_id!r} is not measured in an energy unit (gas and water are not part of the "
                           "insights)")
        values, basis = ctx.data.kwh[entity_id], "entity"
    else:
        values, basis = insights.overall_hourly(ctx.data)  # type: ignore[assignment]
    cells = insights.heatmap(values, ctx.time_zone)
    averages = [c.average for c in cells if c.average is not None]
    return HeatmapOut(**ctx.base(), entity_id=entity_id, basis=basis,  # type: ignore[arg-type]
                      cells=[HeatCellOut(weekday=c.weekday, hour=c.hour, average=_maybe(c.average),
                                         samples=c.samples) for c in cells],
                      max_average=_maybe(max(averages)) if averages else None)


@router.get("/baseload", response_model=BaseloadOut, summary="Always-on consumption and its yearly cost")
def baseload(params: dict = Depends(_range_params), state: ApiState = Depends(api_state)) -> BaseloadOut:
    """Per night the lowest hourly house consumption between 00:00 and 05:00 local time (nights with a missing
    hour are skipped), then the median over the nights, in kW. Cost per year = kW x 8760 h x the average price
    of the tariff version in force today (the daily charge is not included); null without a tariff."""
    ctx = context(state, **params)
    values, basis = insights.overall_hourly(ctx.data)
    result = insights.baseload(values, ctx.time_zone)
    cost = insights.baseload_cost(result.kw, current_tariff(state), datetime.now(ctx.tz).date())
    nights = [NightOut(date=n.day.isoformat(), minimum=_maybe(n.minimum), hours=n.hours,
                       hours_expected=n.hours_expected) for n in result.nights]
    return BaseloadOut(**ctx.base(), basis=basis, baseload_kw=_maybe(result.kw),  # type: ignore[arg-type]
                       cost_per_year=round(cost.per_year, 2) if cost else None,
                       currency=cost.currency if cost else None,
                       average_price_per_kwh=_round(cost.average_price_per_kwh) if cost else None,
                       nights_used=result.nights_used, nights=nights)


@router.get("/self-sufficiency", response_model=SelfSufficiencyOut,
            summary="Share of consumption covered by solar and battery",
            responses={422: {"description": "No solar or battery entity (or no grid import) is tracked"}})
def self_sufficiency(group_by: Literal["hour", "day"] = Query(default="day", description="Bucket"),
                     params: dict = Depends(_range_params),
                     state: ApiState = Depends(api_state)) -> SelfSufficiencyOut:
    """Per bucket and in total: 1 − grid import / house consumption, split into battery discharge and (the
    remainder) solar used directly; shares clipped to 0..1 (a battery charged from the grid can make import
    exceed consumption), with the energies behind them."""
    ctx = context(state, **params)
    if not ctx.data.with_role(*insights.SELF_SUPPLY_ROLES):
        raise ApiError(422, "no_solar_or_battery",
                       "self-sufficiency needs a tracked entity with role solar, battery_in or battery_out; none "
                       "of the tracked entities has one (GET /api/entities lists the roles)")
    house = _house(ctx)
    bounds = ctx.bounds(group_by)
    buckets, total = insights.self_sufficiency(ctx.data, bounds)

    def values(item: insights.SelfSufficiency) -> dict[str, float | None]:
        return {"consumption": _maybe(item.consumption), "grid_import": _maybe(item.grid_import),
                "solar": _maybe(item.solar), "battery_discharge": _maybe(item.battery_discharge),
                "self_sufficiency": _maybe(item.self_sufficiency), "battery_share": _maybe(item.battery_share),
                "solar_share": _maybe(item.solar_share)}

    out = [SelfSufficiencyBucket(start=ctx.iso(a), end=ctx.iso(b), hours=int((b - a) / insights.HOUR),
                                 **values(item))
           for (a, b), item in zip(pairwise(bounds), buckets, strict=True)]
    return SelfSufficiencyOut(**ctx.base(house), group_by=group_by, buckets=out,  # type: ignore[arg-type]
                              total=SelfSufficiencyValues(**values(total)))
