"""The pure insight computations against answers computed by hand (comments show the arithmetic).

Europe/Berlin DST in 2026: spring forward on Sunday 29 March (02:00 -> 03:00, the local day has 23 hours),
fall back on Sunday 25 October (03:00 -> 02:00, the local hour 02:00 happens twice, the day has 25 hours).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from energy_pipeline import insights
from energy_pipeline.storage.buckets import bucket_boundaries
from energy_pipeline.storage.documents import EntityRecord
from energy_pipeline.storage.timeseries import StatisticRow
from energy_pipeline.tariffs import parse_tariff

BERLIN = "Europe/Berlin"
TZ = ZoneInfo(BERLIN)
H = timedelta(hours=1)

GRID, EXPORT, SOLAR = "sensor.grid", "sensor.export", "sensor.solar"
CHARGE, DISCHARGE = "sensor.bat_in", "sensor.bat_out"
FRIDGE, OVEN, GAS, WATER = "sensor.fridge", "sensor.oven", "sensor.gas", "sensor.water"
RECORDS = {
    GRID: EntityRecord(GRID, "Grid", "kWh", "grid_import"),
    EXPORT: EntityRecord(EXPORT, "Export", "kWh", "grid_export"),
    SOLAR: EntityRecord(SOLAR, "Solar", "kWh", "solar"),
    CHARGE: EntityRecord(CHARGE, "Battery in", "kWh", "battery_in"),
    DISCHARGE: EntityRecord(DISCHARGE, "Battery out", "kWh", "battery_out"),
    FRIDGE: EntityRecord(FRIDGE, "Fridge", "Wh", "device"),  # Wh: converted to kWh
    OVEN: EntityRecord(OVEN, "Oven", "kWh", "device"),
    GAS: EntityRecord(GAS, "Gas", "m³", "gas"),
    WATER: EntityRecord(WATER, "Water", "L", "water"),
}


def local(year: int, month: int, day: int, hour: int = 0, fold: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=TZ, fold=fold).astimezone(UTC)


def rows(entity_id: str, start: datetime, hours: int,
         change: float | Callable[[datetime], float]) -> list[StatisticRow]:
    out = []
    for i in range(hours):
        ts = start + i * H
        out.append(StatisticRow(ts, entity_id, change(ts) if callable(change) else change))
    return out


def data_of(ids: list[str], all_rows: list[StatisticRow], start: datetime, end: datetime) -> insights.Hourly:
    meters = insights.energy_meters([RECORDS[e] for e in ids])
    return insights.hourly_from_rows(all_rows, meters, start, end)


def test_energy_meters_exclude_gas_water_and_convert_units() -> None:
    meters = insights.energy_meters(RECORDS.values())
    assert [m.entity_id for m in meters] == [GRID, EXPORT, SOLAR, CHARGE, DISCHARGE, FRIDGE, OVEN]
    assert {m.entity_id: m.factor for m in meters}[FRIDGE] == 0.001
    odd = insights.energy_meters([EntityRecord("sensor.kwh_gas", unit="kWh", role="gas"),
                                  EntityRecord("sensor.legacy", unit=None, role=None),
                                  EntityRecord("sensor.volume", unit="m³", role="device")])
    assert [m.entity_id for m in odd] == ["sensor.legacy"]  # no unit = kWh (legacy rows); gas role never


def test_house_formula_and_negative_rest_in_a_sunny_hour() -> None:
    start = datetime(2026, 6, 1, 10, tzinfo=UTC)
    data = data_of([GRID, EXPORT, FRIDGE, OVEN], [
        # 10:00 sunny: export 3.0 exceeds import 0.5 and the solar production is not metered
        StatisticRow(start, GRID, 0.5), StatisticRow(start, EXPORT, 3.0),
        StatisticRow(start, FRIDGE, 400.0), StatisticRow(start, OVEN, 0.0),
        # 11:00 cloudy
        StatisticRow(start + H, GRID, 2.0), StatisticRow(start + H, EXPORT, 0.0),
        StatisticRow(start + H, FRIDGE, 100.0), StatisticRow(start + H, OVEN, 1.0),
    ], start, start + 2 * H)
    result = insights.breakdown(data)
    # house: (0.5 - 3.0) + (2.0 - 0.0) = -0.5; devices: fridge 0.4 + 0.1 = 0.5, oven 1.0; rest -0.5 - 1.5 = -2.0
    assert result.house == pytest.approx(-0.5)
    assert [(m.entity_id, round(v, 9)) for m, v in result.devices] == [(OVEN, 1.0), (FRIDGE, 0.5)]
    assert result.rest == pytest.approx(-2.0) and result.rest_negative
    # per hour: 10:00 house -2.5, devices 0.4 -> rest -2.9; 11:00 house 2.0, devices 1.1 -> rest 0.9
    assert [(h.start, round(h.house, 9), round(h.rest, 9)) for h in result.negative_rest_hours] == [
        (start, -2.5, -2.9)]
    assert result.components == {"grid_import": 2.5, "grid_export": 3.0}


def test_house_formula_with_solar_and_battery() -> None:
    hour = datetime(2026, 6, 1, 12, tzinfo=UTC)
    data = data_of([GRID, EXPORT, SOLAR, CHARGE, DISCHARGE, OVEN], [
        StatisticRow(hour, GRID, 1.0), StatisticRow(hour, SOLAR, 4.0), StatisticRow(hour, EXPORT, 3.0),
        StatisticRow(hour, CHARGE, 0.5), StatisticRow(hour, DISCHARGE, 0.2), StatisticRow(hour, OVEN, 1.2),
    ], hour, hour + H)
    # 1.0 + 4.0 - 3.0 + 0.2 - 0.5 = 1.7; rest 1.7 - 1.2 = 0.5
    result = insights.breakdown(data)
    assert result.house == pytest.approx(1.7) and result.rest == pytest.approx(0.5) and not result.rest_negative
    assert result.negative_rest_hours == []


def test_breakdown_needs_grid_import() -> None:
    hour = datetime(2026, 6, 1, tzinfo=UTC)
    with pytest.raises(insights.InsightError, match="grid_import"):
        insights.breakdown(data_of([OVEN], [StatisticRow(hour, OVEN, 1.0)], hour, hour + H))


def test_negative_change_is_left_out_and_reported_not_added() -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    all_rows = [*rows(GRID, start, 4, 2.0), *rows(OVEN, start, 4, 1.0)]
    all_rows[5] = StatisticRow(start + H, OVEN, -5.0)  # oven, 01:00: a fault
    all_rows[2] = StatisticRow(start + 2 * H, GRID, -1.0)  # grid, 02:00: the house hour becomes incomplete
    data = data_of([GRID, OVEN], all_rows, start, start + 4 * H)
    assert [(n.entity_id, n.ts, n.change) for n in data.negative] == [(OVEN, start + H, -5.0),
                                                                    (GRID, start + 2 * H, -1.0)]
    top = insights.top_consumers(data, 5)
    # oven: 3 valid hours x 1.0 = 3.0 (not 3.0 - 5.0, not 4.0); house: 3 complete hours x 2.0 = 6.0
    assert top.consumers[0].kwh == 3.0 and top.consumers[0].hours == 3
    assert (top.total, top.basis) == (6.0, "house") and top.consumers[0].share == 0.5
    house = insights.house_consumption(data)
    assert house.incomplete == [start + 2 * H] and sorted(house.kwh) == [start, start + H, start + 3 * H]
    assert insights.peaks(data).overall == insights.Peak(start, 2.0)


def test_meter_reset_uses_change_not_state() -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    # the fridge meter resets to 0 at 02:00; HA's sum stays continuous, so change stays positive
    states = [1000.0, 1100.0, 50.0, 150.0]
    sums = [5000.0, 5100.0, 5150.0, 5250.0]
    changes = [100.0, 100.0, 50.0, 100.0]
    fridge = [StatisticRow(start + i * H, FRIDGE, changes[i], sum=sums[i], state=states[i]) for i in range(4)]
    data = data_of([FRIDGE], fridge, start, start + 4 * H)
    top = insights.top_consumers(data, 5)
    assert top.consumers[0].kwh == pytest.approx(0.35) and (top.total, top.basis) == (pytest.approx(0.35), "devices")
    assert insights.peaks(data).entities[0][1] == insights.Peak(start, pytest.approx(0.1))


def test_top_consumers_rank_share_limit_and_basis() -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    all_rows = [*rows(GRID, start, 2, 5.0), *rows(OVEN, start, 2, 1.5), *rows(FRIDGE, start, 2, 1500.0),
                StatisticRow(start, "sensor.tv", 0.5)]
    records = [RECORDS[GRID], RECORDS[OVEN], RECORDS[FRIDGE], EntityRecord("sensor.tv", unit="kWh", role="device")]
    data = insights.hourly_from_rows(all_rows, insights.energy_meters(records), start, start + 2 * H)
    result = insights.top_consumers(data, 2)
    # house 10.0; oven 3.0 and fridge 3.0 tie -> by id (sensor.fridge < sensor.oven); tv 0.5 cut by the limit
    assert [(c.meter.entity_id, c.kwh, c.share) for c in result.consumers] == [
        (FRIDGE, pytest.approx(3.0), pytest.approx(0.3)), (OVEN, 3.0, 0.3)]
    assert (result.total, result.basis, result.device_count) == (10.0, "house", 3)
    assert result.devices_total == pytest.approx(6.5)
    without_house = insights.hourly_from_rows(all_rows, insights.energy_meters(records[1:]), start, start + 2 * H)
    result = insights.top_consumers(without_house, 5)
    assert (result.total, result.basis) == (pytest.approx(6.5), "devices")
    assert result.consumers[2].share == pytest.approx(0.5 / 6.5)


def test_peaks_per_entity_and_overall_earliest_on_tie() -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    grid = [1.0, 3.0, 3.0, 2.0]
    oven = [0.0, 0.5, 2.5, 0.0]
    data = data_of([GRID, OVEN, SOLAR], [
        *[StatisticRow(start + i * H, GRID, v) for i, v in enumerate(grid)],
        *[StatisticRow(start + i * H, OVEN, v) for i, v in enumerate(oven)],
        *rows(SOLAR, start, 4, lambda ts: 1.0 if ts == start + 3 * H else 0.0),
    ], start, start + 4 * H)
    result = insights.peaks(data)
    # house = grid + solar: 1, 3, 3, 3 -> the first of the three 3.0 hours
    assert result.overall == insights.Peak(start + H, 3.0) and result.basis == "house"
    peaks = {m.entity_id: p for m, p in result.entities}
    assert peaks[GRID] == insights.Peak(start + H, 3.0) and peaks[OVEN] == insights.Peak(start + 2 * H, 2.5)
    assert peaks[SOLAR] == insights.Peak(start + 3 * H, 1.0)


def test_timeline_stacks_devices_and_rest_on_a_25_hour_day() -> None:
    start, end = local(2026, 10, 24), local(2026, 10, 26)  # Saturday and the 25-hour Sunday
    all_rows = [*rows(GRID, start, 49, 1.0), *rows(OVEN, start, 49, 0.25)]
    data = data_of([GRID, OVEN], all_rows, start, end)
    bounds = bucket_boundaries(start, end, "day", TZ)
    result = insights.timeline(data, bounds)
    assert [int((b - a) / H) for a, b in pairwise(bounds)] == [24, 25]
    assert result.house == [24.0, 25.0] and result.series[0][1] == [6.0, 6.25]
    assert result.rest == [18.0, 18.75]
    chosen = insights.timeline(data, bounds, [GRID])
    assert chosen.series[0][1] == [24.0, 25.0] and chosen.rest == [0.0, 0.0]


def test_heatmap_in_the_autumn_dst_week() -> None:
    start, end = local(2026, 10, 19), local(2026, 10, 26)  # Monday .. Monday: 169 hours
    assert (end - start) / H == 169
    # consumption = 1 + the local hour, so each slot's average is known; Thursday gets 10 more at 18:00
    def value(ts: datetime) -> float:
        here = ts.astimezone(TZ)
        return 1.0 + here.hour + (10.0 if here.weekday() == 3 and here.hour == 18 else 0.0)

    data = data_of([GRID], rows(GRID, start, 169, value), start, end)
    cells = {(c.weekday, c.hour): c for c in insights.heatmap(insights.overall_hourly(data)[0], BERLIN)}
    assert len(cells) == 168
    assert (cells[(0, 0)].average, cells[(0, 0)].samples) == (1.0, 1)
    assert cells[(3, 18)].average == 29.0  # 1 + 18 + 10
    # Sunday 02:00 happened twice (02:00 CEST and 02:00 CET): both hours are added into the one slot
    assert (cells[(6, 2)].average, cells[(6, 2)].samples) == (6.0, 1)
    assert (cells[(6, 3)].average, cells[(6, 3)].samples) == (4.0, 1)


def test_heatmap_in_the_spring_dst_week_averages_over_days_present() -> None:
    start, end = local(2026, 3, 16), local(2026, 3, 30)  # two weeks; the second has the 23-hour Sunday
    hours = int((end - start) / H)
    assert hours == 2 * 168 - 1
    # the second week consumes twice as much
    data = data_of([GRID], rows(GRID, start, hours, lambda ts: 2.0 if ts >= local(2026, 3, 23) else 1.0),
                   start, end)
    cells = {(c.weekday, c.hour): c for c in insights.heatmap(insights.overall_hourly(data)[0], BERLIN)}
    assert (cells[(2, 14)].average, cells[(2, 14)].samples) == (1.5, 2)  # (1 + 2) / 2 days
    # Sunday 29 March has no 02:00: only the first Sunday is a sample for that slot
    assert (cells[(6, 2)].average, cells[(6, 2)].samples) == (1.0, 1)
    assert (cells[(6, 3)].average, cells[(6, 3)].samples) == (1.5, 2)


def test_baseload_median_of_night_minima_with_dst_and_incomplete_nights() -> None:
    minima = {date(2026, 3, 27): 0.3, date(2026, 3, 28): 0.5, date(2026, 3, 29): 0.4, date(2026, 3, 30): 0.2}
    start, end = local(2026, 3, 27), local(2026, 3, 31)
    values = {}
    hour = start
    while hour < end:
        here = hour.astimezone(TZ)
        # 03:00 is each night's lowest hour; other hours use 1.0 (the day) or minimum + 0.1 (the night)
        night = here.hour < 5
        values[hour] = (minima[here.date()] if here.hour == 3 else minima[here.date()] + 0.1) if night else 1.0
        hour += H
    del values[local(2026, 3, 30, 1)]  # the last night misses 01:00: skipped
    result = insights.baseload(values, BERLIN)
    assert [(n.day, n.minimum, n.hours, n.hours_expected) for n in result.nights] == [
        (date(2026, 3, 27), 0.3, 5, 5), (date(2026, 3, 28), 0.5, 5, 5),
        (date(2026, 3, 29), 0.4, 4, 4),  # spring-forward night: 00, 01, 03, 04
        (date(2026, 3, 30), None, 4, 5)]
    assert result.kw == 0.4 and result.nights_used == 3  # median of 0.3, 0.5, 0.4
    autumn = insights.night_hours(date(2026, 10, 25), TZ)
    assert len(autumn) == 6  # 02:00 twice


def test_baseload_cost_at_the_tariff_in_force() -> None:
    tariff = parse_tariff({"currency": "EUR", "versions": [
        {"effective_from": "2026-01-01", "daily_charge": 0.5, "prices": [
            {"start": "07:00", "end": "22:00", "price_per_kwh": 0.30},
            {"start": "22:00", "end": "07:00", "price_per_kwh": 0.20}]},
        {"effective_from": "2027-01-01", "prices": [{"start": "00:00", "end": "00:00", "price_per_kwh": 1.0}]}]})
    cost = insights.baseload_cost(0.4, tariff, date(2026, 6, 1))
    # average price (15 x 0.30 + 9 x 0.20) / 24 = 0.2625; 0.4 kW x 8760 h x 0.2625 = 919.8 (no daily charge)
    assert cost is not None and cost.average_price_per_kwh == pytest.approx(0.2625)
    assert cost.per_year == pytest.approx(919.8) and cost.currency == "EUR"
    assert insights.baseload_cost(0.4, tariff, date(2025, 12, 31)) is None  # no version in force yet
    assert insights.baseload_cost(0.4, None, date(2026, 6, 1)) is None
    assert insights.baseload_cost(None, tariff, date(2026, 6, 1)) is None


def test_self_sufficiency_per_bucket_with_battery() -> None:
    start = local(2026, 6, 1)
    # hour 0 (night): import 1.0, battery discharges 0.5 -> house 1.5, self-sufficiency 1/3, all from battery
    # hour 1 (sunny): import 0.0, solar 3.0, export 1.0, charge 1.0 -> house 1.0, self-sufficiency 1, solar 1
    # hour 2 (grid charging): import 3.0, charge 2.0 -> house 1.0; 1 - 3/1 = -2 -> clipped to 0
    data = data_of([GRID, SOLAR, EXPORT, CHARGE, DISCHARGE], [
        StatisticRow(start, GRID, 1.0), StatisticRow(start, SOLAR, 0.0), StatisticRow(start, EXPORT, 0.0),
        StatisticRow(start, CHARGE, 0.0), StatisticRow(start, DISCHARGE, 0.5),
        StatisticRow(start + H, GRID, 0.0), StatisticRow(start + H, SOLAR, 3.0), StatisticRow(start + H, EXPORT, 1.0),
        StatisticRow(start + H, CHARGE, 1.0), StatisticRow(start + H, DISCHARGE, 0.0),
        StatisticRow(start + 2 * H, GRID, 3.0), StatisticRow(start + 2 * H, SOLAR, 0.0),
        StatisticRow(start + 2 * H, EXPORT, 0.0), StatisticRow(start + 2 * H, CHARGE, 2.0),
        StatisticRow(start + 2 * H, DISCHARGE, 0.0),
    ], start, start + 3 * H)
    bounds = [start, start + H, start + 2 * H, start + 3 * H]
    buckets, total = insights.self_sufficiency(data, bounds)
    assert [b.consumption for b in buckets] == [1.5, 1.0, 1.0]
    assert [b.self_sufficiency for b in buckets] == [pytest.approx(1 / 3), 1.0, 0.0]
    assert [b.battery_share for b in buckets] == [pytest.approx(1 / 3), 0.0, 0.0]
    assert [b.solar_share for b in buckets] == [0.0, 1.0, 0.0]
    # whole range: house 3.5, import 4.0 -> 1 - 4/3.5 < 0 -> 0 (energy went into the battery)
    assert (total.consumption, total.grid_import, total.self_sufficiency) == (3.5, 4.0, 0.0)
    assert (total.solar, total.battery_discharge) == (3.0, 0.5)


def test_self_sufficiency_solar_only_and_errors() -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    data = data_of([GRID, SOLAR], [*rows(GRID, start, 2, 1.0), StatisticRow(start, SOLAR, 3.0),
                                   StatisticRow(start + H, SOLAR, 1.0)], start, start + 2 * H)
    buckets, total = insights.self_sufficiency(data, [start, start + 2 * H])
    # house 2.0 + 4.0 = 6.0, import 2.0 -> 2/3; no battery meter -> battery_share null
    assert buckets[0].self_sufficiency == pytest.approx(2 / 3) and buckets[0].battery_share is None
    assert buckets[0].solar_share == pytest.approx(2 / 3) and total.consumption == 6.0
    with pytest.raises(insights.InsightError, match="solar, battery_in or battery_out"):
        insights.self_sufficiency(data_of([GRID], rows(GRID, start, 1, 1.0), start, start + H), [start, start + H])
    empty = insights.self_sufficiency(data_of([GRID, SOLAR], [], start, start + H), [start, start + H])
    assert empty[0][0].self_sufficiency is None and empty[1].consumption is None
