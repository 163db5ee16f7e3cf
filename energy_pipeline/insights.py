"""Insights from hourly consumption: top consumers, peaks, breakdown, timeline, heatmap, baseload, self-sufficiency.

Pure functions over hourly rows (no store, no HTTP), so every figure can be checked against a hand-computed
answer. The API (``energy_pipeline.api.routes.insights``) reads the rows and shapes the JSON.

Rules, chosen so that no figure is silently wrong:

* Every figure comes from the hourly ``change`` (never ``sum`` or ``state``: HA keeps ``sum`` continuous across
  meter resets, so ``change`` is the consumption even in the hour a meter was reset). Values are converted to
  kWh (Wh, kWh, MWh); entities with another unit (gas m³, water) and the roles ``gas``/``water`` take no part.
* A **negative change** is not a consumption: HA never produces one for a ``total_increasing`` meter, so one
  in the data is a fault (a corrected sum, a broken meter, a bad import). That hour of that entity is left out
  of every figure (neither subtracted nor counted as zero) and listed in ``negative_changes``, so the caller can
  show it. Leaving it in would silently deflate totals; clamping it to zero would silently hide it.
* **House consumption** per hour = grid import + solar production − grid export + battery discharge
  (``battery_out``) − battery charge (``battery_in``), summed over every tracked entity of each role (several
  import meters of a two-rate tariff add up). It needs a ``grid_import`` entity; the other roles are optional
  (a house without solar has no solar meter). An hour counts only when every tracked meter of the formula has a
  valid value for it; other hours are *incomplete*, left out and counted.
* A device's consumption is the sum of its own valid hours; the **rest** (unmeasured consumption) = house −
  sum of devices. A negative rest (meters disagree, e.g. export metered but the solar production that fed it
  is not) is reported as is, with a flag and the hours where it happens, never clipped.
* Hour-of-day figures are in the house's local time. In the autumn DST change the repeated local hour is
  added into its local hour slot (that day keeps its 25 hours of energy); in spring the skipped hour simply
  does not occur (its slot has one sample fewer).
"""

from __future__ import annotations

import bisect
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from energy_pipeline.storage.documents import EntityRecord
from energy_pipeline.storage.timeseries import StatisticRow
from energy_pipeline.tariffs import Tariff, kwh_factor

HOUR = timedelta(hours=1)
HOURS_PER_YEAR = 24 * 365
NON_ENERGY_ROLES = frozenset({"gas", "water"})
# Sign of each role in the house consumption formula.
HOUSE_SIGNS: dict[str, int] = {"grid_import": 1, "solar": 1, "battery_out": 1, "grid_export": -1, "battery_in": -1}
FLOW_ROLES: tuple[str, ...] = tuple(HOUSE_SIGNS)
SELF_SUPPLY_ROLES = frozenset({"solar", "battery_in", "battery_out"})
NIGHT_START_HOUR = 0
NIGHT_END_HOUR = 5  # exclusive: the local hours 00:00 .. 04:00 start inside the night window
TOLERANCE = 1e-9  # below this, a difference is floating-point noise


class InsightError(ValueError):
    """An insight cannot be computed from the tracked entities (e.g. no solar or battery); says what is missing."""


@dataclass(frozen=True)
class Meter:
    """An energy entity taking part in the insights; ``factor`` converts its unit to kWh."""

    entity_id: str
    name: str | None
    role: str | None
    unit: str | None
    factor: float


@dataclass(frozen=True)
class NegativeChange:
    """An hour left out because its change is negative (a fault, not a consumption)."""

    entity_id: str
    ts: datetime
    change: float


def energy_meters(records: Iterable[EntityRecord]) -> list[Meter]:
    """The records measured in an energy unit, gas and water excluded (ordered as given)."""
    out = []
    for record in records:
        factor = kwh_factor(record.unit)
        if factor is None or record.role in NON_ENERGY_ROLES:
            continue
        out.append(Meter(record.entity_id, record.name, record.role, record.unit, factor))
    return out


@dataclass
class Hourly:
    """Valid hourly kWh per entity in ``[start, end)`` (UTC), plus what was left out and why."""

    meters: dict[str, Meter]
    kwh: dict[str, dict[datetime, float]]
    negative: list[NegativeChange]
    start: datetime
    end: datetime

    def with_role(self, *roles: str) -> list[Meter]:
        return [m for m in self.meters.values() if m.role in roles]

    @property
    def devices(self) -> list[Meter]:
        return self.with_role("device")

    def total(self, entity_id: str) -> float | None:
        values = self.kwh.get(entity_id) or {}
        return sum(values.values()) if values else None


def hourly_from_rows(rows: Iterable[StatisticRow], meters: Sequence[Meter], start: datetime,
                     end: datetime) -> Hourly:
    """Keep the rows of ``meters`` with a change in ``[start, end)``; negative changes are set aside."""
    by_id = {m.entity_id: m for m in meters}
    kwh: dict[str, dict[datetime, float]] = {m.entity_id: {} for m in meters}
    negative: list[NegativeChange] = []
    for row in rows:
        meter = by_id.get(row.entity_id)
        if meter is None or row.change is None or not start <= row.ts < end:
            continue
        if row.change < 0:
            negative.append(NegativeChange(row.entity_id, row.ts, row.change))
            continue
        kwh[row.entity_id][row.ts] = row.change * meter.factor
    negative.sort(key=lambda n: (n.ts, n.entity_id))
    return Hourly(meters=by_id, kwh=kwh, negative=negative, start=start, end=end)


# -- house consumption ---------------------------------------------------------------------------------


@dataclass
class House:
    """House consumption per complete hour, its components, and the hours left out as incomplete."""

    kwh: dict[datetime, float]
    components: dict[str, dict[datetime, float]]  # role -> hour -> kWh (complete hours only)
    incomplete: list[datetime]


def has_house(data: Hourly) -> bool:
    return bool(data.with_role("grid_import"))


def house_consumption(data: Hourly) -> House:
    """Import + solar − export + discharge − charge per hour; raises :class:`InsightError` without grid import."""
    if not has_house(data):
        raise InsightError("the house's consumption needs a tracked entity with role grid_import "
                           "(GET /api/entities lists the roles)")
    flows = data.with_role(*FLOW_ROLES)
    hours: set[datetime] = set()
    for meter in flows:
        hours.update(data.kwh[meter.entity_id])
    flow_ids = {m.entity_id for m in flows}
    hours.update(n.ts for n in data.negative if n.entity_id in flow_ids)  # a fault makes its hour incomplete
    complete: dict[datetime, float] = {}
    components: dict[str, dict[datetime, float]] = {role: {} for role in {m.role for m in flows} if role}
    incomplete = []
    for hour in sorted(hours):
        if not all(hour in data.kwh[m.entity_id] for m in flows):
            incomplete.append(hour)
            continue
        total = 0.0
        for meter in flows:
            value = data.kwh[meter.entity_id][hour]
            role = meter.role or ""
            total += HOUSE_SIGNS[role] * value
            components[role][hour] = components[role].get(hour, 0.0) + value
        complete[hour] = total
    return House(kwh=complete, components=components, incomplete=incomplete)


def overall_hourly(data: Hourly) -> tuple[dict[datetime, float], str | None]:
    """The house's hourly consumption (basis ``house``), or without grid import the hourly sum of the devices
    (basis ``devices``: measured devices only), or nothing (basis ``None``)."""
    if has_house(data):
        return house_consumption(data).kwh, "house"
    devices = data.devices
    if not devices:
        return {}, None
    summed: dict[datetime, float] = defaultdict(float)
    for meter in devices:
        for hour, value in data.kwh[meter.entity_id].items():
            summed[hour] += value
    return dict(sorted(summed.items())), "devices"


# -- top consumers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Consumer:
    meter: Meter
    kwh: float
    hours: int
    share: float | None


@dataclass
class TopConsumers:
    total: float | None
    basis: str | None  # "house" | "devices" | None
    devices_total: float
    device_count: int
    consumers: list[Consumer]


def top_consumers(data: Hourly, limit: int) -> TopConsumers:
    """Devices ranked by consumption (ties by entity id), each with its share of the total.

    The total is the house's consumption when a grid import meter is tracked (so shares say how much of
    the house each device is, and they need not add up to 1), else the sum of the devices."""
    ranked = [(m, data.total(m.entity_id)) for m in data.devices]
    measured = sorted(((m, v) for m, v in ranked if v is not None), key=lambda mv: (-mv[1], mv[0].entity_id))
    devices_total = sum(v for _, v in measured)
    total: float | None
    if has_house(data):
        house = house_consumption(data).kwh
        total, basis = (sum(house.values()), "house") if house else (None, "house")
    else:
        total, basis = (devices_total, "devices") if measured else (None, None)
    consumers = [Consumer(m, v, len(data.kwh[m.entity_id]), v / total if total and total > TOLERANCE else None)
                 for m, v in measured[:limit]]
    return TopConsumers(total=total, basis=basis, devices_total=devices_total, device_count=len(measured),
                        consumers=consumers)


# -- peak ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peak:
    start: datetime  # UTC hour start
    kwh: float


def peak_of(values: dict[datetime, float]) -> Peak | None:
    """The hour with the highest value; the earliest one on a tie."""
    if not values:
        return None
    hour = min(values, key=lambda h: (-values[h], h))
    return Peak(hour, values[hour])


@dataclass
class Peaks:
    overall: Peak | None
    basis: str | None
    entities: list[tuple[Meter, Peak | None]]


def peaks(data: Hourly) -> Peaks:
    """Per energy entity its highest hour, and overall the house's highest hour (see :func:`overall_hourly`)."""
    overall, basis = overall_hourly(data)
    entities = [(m, peak_of(data.kwh[m.entity_id])) for m in data.meters.values()]
    return Peaks(overall=peak_of(overall), basis=basis, entities=entities)


# -- breakdown -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NegativeRestHour:
    start: datetime
    house: float
    devices: float

    @property
    def rest(self) -> float:
        return self.house - self.devices


@dataclass
class Breakdown:
    house: float | None
    components: dict[str, float]
    devices: list[tuple[Meter, float]]
    devices_total: float
    rest: float | None
    negative_rest_hours: list[NegativeRestHour]
    incomplete_hours: list[datetime]
    hours: int

    @property
    def rest_negative(self) -> bool:
        return self.rest is not None and self.rest < -TOLERANCE


def breakdown(data: Hourly) -> Breakdown:
    """House consumption split into the measured devices and the unmeasured rest (house − devices)."""
    house = house_consumption(data)
    house_total = sum(house.kwh.values()) if house.kwh else None
    devices = sorted(((m, data.total(m.entity_id) or 0.0) for m in data.devices),
                     key=lambda mv: (-mv[1], mv[0].entity_id))
    devices_total = sum(v for _, v in devices)
    negative_hours = []
    for hour, value in house.kwh.items():
        measured = sum(data.kwh[m.entity_id].get(hour, 0.0) for m, _ in devices)
        if value - measured < -TOLERANCE:
            negative_hours.append(NegativeRestHour(hour, value, measured))
    components = {role: sum(values.values()) for role, values in house.components.items()}
    return Breakdown(house=house_total, components=components, devices=devices, devices_total=devices_total,
                     rest=None if house_total is None else house_total - devices_total,
                     negative_rest_hours=negative_hours, incomplete_hours=house.incomplete, hours=len(house.kwh))


# -- timeline ---------------------------------------------------------------------------------------------


def bucket_sums(values: dict[datetime, float], bounds: Sequence[datetime]) -> list[float | None]:
    """Sum of the hourly values in each bucket ``[bounds[i], bounds[i+1])``; None for a bucket without any."""
    out: list[float | None] = [None] * max(len(bounds) - 1, 0)
    for hour, value in values.items():
        index = bisect.bisect_right(bounds, hour) - 1
        if 0 <= index < len(out):
            out[index] = (out[index] or 0.0) + value
    return out


@dataclass
class Timeline:
    series: list[tuple[Meter, list[float | None]]]
    house: list[float | None] | None
    rest: list[float | None] | None


def timeline(data: Hourly, bounds: Sequence[datetime], entity_ids: Sequence[str] | None = None) -> Timeline:
    """One aligned series per entity (default: the devices) and, with a house, the house total and the rest,
    so that the stacked devices plus the rest make the house (rest = house − the devices shown)."""
    chosen = [data.meters[e] for e in entity_ids] if entity_ids is not None else data.devices
    series = [(m, bucket_sums(data.kwh[m.entity_id], bounds)) for m in chosen]
    if not has_house(data):
        return Timeline(series=series, house=None, rest=None)
    house = bucket_sums(house_consumption(data).kwh, bounds)
    rest: list[float | None] = []
    for index, value in enumerate(house):
        rest.append(None if value is None else value - sum(s[index] or 0.0 for _, s in series))
    return Timeline(series=series, house=house, rest=rest)


# -- heatmap ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeatCell:
    weekday: int  # 0 = Monday
    hour: int  # local hour of day
    average: float | None
    samples: int  # local days that have this slot


def heatmap(values: dict[datetime, float], time_zone: str) -> list[HeatCell]:
    """Average per (local weekday, local hour) over the days present: 7 x 24 cells, Monday 00:00 first.

    A day's value for a slot is the sum of its UTC hours starting in that local hour (two on the autumn DST
    day); the spring DST day has no value for the skipped hour."""
    tz = ZoneInfo(time_zone)
    per_day: dict[tuple[date, int], float] = defaultdict(float)
    for hour, value in values.items():
        local = hour.astimezone(tz)
        per_day[(local.date(), local.hour)] += value
    sums: dict[tuple[int, int], float] = defaultdict(float)
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for (day, hour), value in per_day.items():
        sums[(day.weekday(), hour)] += value
        counts[(day.weekday(), hour)] += 1
    return [HeatCell(weekday, hour, sums[(weekday, hour)] / counts[(weekday, hour)] if counts[(weekday, hour)]
                     else None, counts[(weekday, hour)])
            for weekday in range(7) for hour in range(24)]


# -- baseload ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Night:
    day: date  # the local date the night window (00:00-05:00) belongs to
    minimum: float | None  # kWh in the lowest hour; None when the window is incomplete
    hours: int
    hours_expected: int


@dataclass
class Baseload:
    kw: float | None
    nights: list[Night]

    @property
    def nights_used(self) -> int:
        return sum(1 for n in self.nights if n.minimum is not None)


def night_hours(day: date, tz: ZoneInfo) -> list[datetime]:
    """UTC hour starts of the local window 00:00-05:00 of ``day`` (4 on a spring DST night, 6 in autumn)."""
    start = datetime(day.year, day.month, day.day, NIGHT_START_HOUR, tzinfo=tz).astimezone(UTC)
    end = datetime(day.year, day.month, day.day, NIGHT_END_HOUR, tzinfo=tz).astimezone(UTC)
    hours, hour = [], start
    while hour < end:
        hours.append(hour)
        hour += HOUR
    return hours


def baseload(values: dict[datetime, float], time_zone: str) -> Baseload:
    """Always-on consumption: per night the lowest hourly consumption between 00:00 and 05:00 local time,
    then the median over the nights. A night with a missing hour in the window is skipped (its minimum
    could be too high). kWh in one hour is the average power in kW over that hour."""
    tz = ZoneInfo(time_zone)
    days = sorted({h.astimezone(tz).date() for h in values
                   if NIGHT_START_HOUR <= h.astimezone(tz).hour < NIGHT_END_HOUR})
    nights = []
    for day in days:
        window = night_hours(day, tz)
        present = [values[h] for h in window if h in values]
        complete = len(present) == len(window)
        nights.append(Night(day, min(present) if complete else None, len(present), len(window)))
    minima = [n.minimum for n in nights if n.minimum is not None]
    return Baseload(kw=statistics.median(minima) if minima else None, nights=nights)


@dataclass(frozen=True)
class BaseloadCost:
    per_year: float
    average_price_per_kwh: float
    currency: str


def baseload_cost(kw: float | None, tariff: Tariff | None, on_day: date) -> BaseloadCost | None:
    """Cost of running ``kw`` all year at the version of ``tariff`` in force on ``on_day``: kW x 8760 h x the
    average price over the 168 hours of a week (a constant load meets every price window in proportion to
    its hours). The daily charge is not part of it (it is paid whatever runs). None without a price."""
    if kw is None or tariff is None:
        return None
    version = tariff.version_on(on_day)
    if version is None:
        return None
    prices = [price for row in version.price_grid() for price in row]
    average = sum(prices) / len(prices)
    return BaseloadCost(per_year=kw * HOURS_PER_YEAR * average, average_price_per_kwh=average,
                        currency=tariff.currency)


# -- self-sufficiency ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SelfSufficiency:
    consumption: float | None
    grid_import: float | None
    solar: float | None
    battery_discharge: float | None
    self_sufficiency: float | None
    battery_share: float | None
    solar_share: float | None


def _clip(value: float) -> float:
    """Into 0..1; floating-point noise around 0 (1/3 - 1/3) becomes 0."""
    return 0.0 if value < TOLERANCE else min(1.0, value)


def _shares(consumption: float | None, grid_import: float | None, solar: float | None,
            battery_out: float | None, has_battery: bool) -> SelfSufficiency:
    if consumption is None or grid_import is None or consumption <= TOLERANCE:
        return SelfSufficiency(consumption, grid_import, solar, battery_out, None, None, None)
    covered = _clip(1.0 - grid_import / consumption)
    battery = _clip((battery_out or 0.0) / consumption) if has_battery else None
    return SelfSufficiency(consumption, grid_import, solar, battery_out, covered, battery,
                           _clip(covered - (battery or 0.0)))


def self_sufficiency(data: Hourly, bounds: Sequence[datetime]) -> tuple[list[SelfSufficiency], SelfSufficiency]:
    """Share of the house's consumption not bought from the grid (1 − import / consumption), per bucket and
    over the whole range, split into battery discharge and (the remainder) solar used directly.

    Shares are clipped to 0..1: a battery charged from the grid makes import exceed consumption in some
    hours, and a negative self-sufficiency means nothing; the energies behind each share are returned too."""
    if not data.with_role(*SELF_SUPPLY_ROLES):
        raise InsightError("self-sufficiency needs a tracked entity with role solar, battery_in or battery_out; "
                           "this house has none (GET /api/entities lists the roles)")
    house = house_consumption(data)
    has_battery = bool(data.with_role("battery_out"))

    def part(role: str) -> dict[datetime, float] | None:
        return house.components.get(role) if data.with_role(role) else None

    grid, solar, battery = part("grid_import") or {}, part("solar"), part("battery_out")
    house_sums = bucket_sums(house.kwh, bounds)
    grid_sums = bucket_sums(grid, bounds)
    solar_sums = None if solar is None else bucket_sums(solar, bounds)
    battery_sums = None if battery is None else bucket_sums(battery, bounds)
    buckets = []
    for index, consumption in enumerate(house_sums):
        buckets.append(_shares(consumption, _at(grid_sums, index, consumption), _at(solar_sums, index, consumption),
                               _at(battery_sums, index, consumption), has_battery))

    def total(values: dict[datetime, float] | None) -> float | None:
        return None if values is None or not house.kwh else sum(values.values())

    overall = _shares(total(house.kwh), total(grid), total(solar), total(battery), has_battery)
    return buckets, overall


def _at(values: list[float | None] | None, index: int, consumption: float | None) -> float | None:
    """A bucket's value of a component, only where the house's consumption is known."""
    if values is None or consumption is None:
        return None
    return values[index] or 0.0
