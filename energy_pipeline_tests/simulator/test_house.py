"""The simulated house: statistics, readings and calendar buckets agree with each other and with HA's rules."""

from __future__ import annotations

import bisect
import json
import math
import time
from datetime import UTC, datetime, timedelta

import pytest

from energy_pipeline.simulator.house import Reading, SimulatedHouse

NOW = datetime(2026, 12, 4, 16, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def house() -> SimulatedHouse:
    return SimulatedHouse(seed=1, days=30, now=NOW)


def _ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def _change_from_readings(readings: list[Reading], start: datetime, end: datetime) -> tuple[float, float | None]:
    """HA's recorder rule over numeric readings: add differences, a drop below 90 % is a reset."""
    times = [r.time for r in readings]
    first, last_index = bisect.bisect_left(times, start), bisect.bisect_left(times, end)
    previous = next((r.value for r in reversed(readings[:first]) if r.value is not None), None)
    total, last = 0.0, previous
    for reading in readings[first:last_index]:
        if reading.value is None:
            continue
        if last is not None:
            total += reading.value if reading.value < 0.9 * last else reading.value - last
        last = reading.value
    if previous is None and last is not None:  # the very first bucket starts from the first reading
        total = last - next(r.value for r in readings if r.value is not None)
    return total, last


@pytest.mark.parametrize("period,days", [("hour", 20), ("5minute", 1)])
def test_readings_across_a_bucket_add_up_to_its_change(house: SimulatedHouse, period: str, days: int) -> None:
    start = NOW - timedelta(days=days)
    assert (house.reset_time is not None and start < house.reset_time) or period == "5minute"
    for meter in house.meters:
        rows = house.statistics_during_period([meter.entity_id], start, NOW, period)[meter.entity_id]
        before = house.state_at(meter.entity_id, start - timedelta(hours=2, minutes=30))  # minute 50: numeric
        assert before is not None
        readings = [Reading(meter.entity_id, before[1], before[0], float(before[0])),
                    *house.readings([meter.entity_id], start - timedelta(hours=2, minutes=30))]
        assert rows
        for row in rows:
            change, last = _change_from_readings(readings, _ms(row["start"]), _ms(row["end"]))
            assert math.isclose(change, row["change"], abs_tol=1e-6), (meter.entity_id, row)
            assert last is not None and math.isclose(last, row["state"], abs_tol=1e-9)


def test_meter_reset_drops_the_state_but_keeps_the_sum_continuous(house: SimulatedHouse) -> None:
    reset = house.reset_time
    assert reset is not None and house.start < reset < NOW
    entity = "sensor.heat_pump_energy"
    hour = reset.replace(minute=0, second=0, microsecond=0)
    rows = house.statistics_during_period([entity], hour - timedelta(hours=2), hour + timedelta(hours=3),
                                          "hour")[entity]
    before, at, after = rows[1], rows[2], rows[3]
    assert _ms(at["start"]) == hour
    assert at["state"] < 0.1 * before["state"], "the reading drops to about zero"
    assert at["state"] < 5, "the meter restarts from zero"
    assert at["sum"] > before["sum"] and after["sum"] > at["sum"], "the sum never goes down"
    assert 0 <= at["change"] < 5 and math.isclose(at["change"], at["sum"] - before["sum"])
    readings = house.readings([entity], hour, hour + timedelta(hours=1))
    assert any(r.state == "0.0" for r in readings), "the reset reading is 0"


def _local_day_lengths(house: SimulatedHouse) -> dict[str, float]:
    rows = house.statistics_during_period(["sensor.grid_import_energy"], house.start, house.now(), "day")
    return {_ms(r["start"]).astimezone(house.tz).date().isoformat(): (r["end"] - r["start"]) / 3_600_000
            for r in rows["sensor.grid_import_energy"]}


def test_dst_days_have_23_and_25_hours() -> None:
    spring = SimulatedHouse(seed=2, days=20, now=datetime(2026, 4, 10, 12, tzinfo=UTC))
    autumn = SimulatedHouse(seed=2, days=20, now=datetime(2026, 11, 5, 12, tzinfo=UTC))
    assert _local_day_lengths(spring)["2026-03-29"] == 23
    assert _local_day_lengths(autumn)["2026-10-25"] == 25
    hours = spring.statistics_during_period(["sensor.grid_import_energy"], datetime(2026, 3, 28, 23, tzinfo=UTC),
                                            datetime(2026, 3, 29, 22, tzinfo=UTC), "hour")
    assert len(hours["sensor.grid_import_energy"]) == 23


def test_history_always_contains_a_dst_change() -> None:
    house = SimulatedHouse(seed=1, days=3, now=NOW)
    assert house.start <= datetime(2026, 10, 25, tzinfo=UTC) < NOW
    assert 25.0 in _local_day_lengths(house).values()


def test_day_week_month_reduce_hourly_rows(house: SimulatedHouse) -> None:
    entity = "sensor.gas_meter"
    hourly = house.statistics_during_period([entity], house.start, NOW, "hour")[entity]
    for period in ("day", "week", "month"):
        rows = house.statistics_during_period([entity], house.start, NOW, period)[entity]
        assert sum(r["change"] for r in rows) == pytest.approx(sum(r["change"] for r in hourly))
        assert rows[-1]["sum"] == hourly[-1]["sum"]
        for row in rows:
            local = _ms(row["start"]).astimezone(house.tz)
            assert (local.hour, local.minute) == (0, 0)
            if period == "week":
                assert local.weekday() == 0
            if period == "month":
                assert local.day == 1


def test_first_row_change_is_relative_to_the_row_before_the_window(house: SimulatedHouse) -> None:
    entity = "sensor.solar_production_energy"
    start = NOW - timedelta(days=2)
    rows = house.statistics_during_period([entity], start - timedelta(hours=1), NOW, "hour")[entity]
    window = house.statistics_during_period([entity], start, NOW, "hour")[entity]
    assert window[0]["change"] == pytest.approx(window[0]["sum"] - rows[0]["sum"])


def test_types_units_and_missing_ids_follow_ha(house: SimulatedHouse) -> None:
    start = NOW - timedelta(hours=5)
    default = house.statistics_during_period(["sensor.grid_import_energy"], start, NOW, "hour")
    assert set(default["sensor.grid_import_energy"][0]) == {"start", "end", "sum", "state", "last_reset", "change"}
    chosen = house.statistics_during_period(["sensor.grid_import_energy", "sensor.nope"], start, NOW, "hour",
                                            types=["change"], units={"energy": "Wh"})
    assert list(chosen) == ["sensor.grid_import_energy"]
    row, kwh = chosen["sensor.grid_import_energy"][0], default["sensor.grid_import_energy"][0]
    assert set(row) == {"start", "end", "change"}
    assert row["change"] == pytest.approx(kwh["change"] * 1000)
    mixed = house.statistics_during_period(["sensor.gas_meter", "sensor.outdoor_temperature"], start, NOW, "hour")
    assert set(mixed["sensor.outdoor_temperature"][0]) == {"start", "end", "sum", "state", "mean", "min", "max",
                                                           "last_reset", "change"}
    assert mixed["sensor.gas_meter"][0]["mean"] is None
    assert house.statistics_during_period(["sensor.nope"], start, NOW, "hour") == {}
    assert house.statistics_during_period(["sensor.gas_meter"], NOW + timedelta(days=1), NOW + timedelta(days=2),
                                          "hour") == {}


def test_only_compiled_hours_exist_and_missing_hours_are_absent() -> None:
    now = datetime(2026, 12, 4, 16, 0, 5, tzinfo=UTC)  # 5 s after the hour: not compiled yet (12 s delay)
    missing = datetime(2026, 12, 4, 10, tzinfo=UTC)
    house = SimulatedHouse(seed=1, days=2, now=now, missing_hours=[missing])
    rows = house.statistics_during_period(["sensor.gas_meter"], now - timedelta(hours=8), now,
                                          "hour")["sensor.gas_meter"]
    starts = [_ms(r["start"]) for r in rows]
    assert starts[-1] == datetime(2026, 12, 4, 14, tzinfo=UTC)
    assert missing not in starts
    after = rows[starts.index(datetime(2026, 12, 4, 11, tzinfo=UTC))]
    before = rows[starts.index(datetime(2026, 12, 4, 9, tzinfo=UTC))]
    assert after["change"] == pytest.approx(after["sum"] - before["sum"]), "the gap's energy lands in the next row"
    later = SimulatedHouse(seed=1, days=2, now=now + timedelta(seconds=10), missing_hours=[missing])
    latest = later.statistics_during_period(["sensor.gas_meter"], now - timedelta(hours=2), now, "hour")
    assert _ms(latest["sensor.gas_meter"][-1]["start"]) == datetime(2026, 12, 4, 15, tzinfo=UTC)


def test_unavailable_and_unknown_states_appear(house: SimulatedHouse) -> None:
    readings = house.readings()
    states = {r.state for r in readings if r.value is None}
    assert states == {"unavailable", "unknown"}
    for entity in house.meters:
        for start, end, state in house.windows(entity.entity_id):
            assert start.minute >= 20 and end.minute <= 42 and start.hour == end.hour, "never across an hour"
            assert state in ("unavailable", "unknown")


def test_history_is_the_compressed_format_with_a_start_state(house: SimulatedHouse) -> None:
    start = NOW - timedelta(minutes=30)
    result = house.history(["sensor.grid_import_energy", "sensor.unknown_thing"], start, NOW, no_attributes=True)
    entries = result["sensor.grid_import_energy"]
    assert list(result) == ["sensor.grid_import_energy"]
    assert entries[0]["lu"] == start.timestamp(), "HA imputes the state at start_time"
    assert all(set(e) == {"s", "a", "lu"} and e["a"] == {} for e in entries)
    assert [e["lu"] for e in entries] == sorted(e["lu"] for e in entries)
    assert house.history(["sensor.grid_import_energy"], NOW + timedelta(hours=1), None) == {}
    purged = house.history(["sensor.grid_import_energy"], NOW - timedelta(days=20), NOW - timedelta(days=15))
    assert purged == {}, "raw states older than 10 days are purged, like HA's recorder"


def test_deterministic_per_seed() -> None:
    one = SimulatedHouse(seed=5, days=5, now=NOW).statistics_during_period(["sensor.grid_import_energy"],
                                                                          NOW - timedelta(days=2), NOW, "hour")
    two = SimulatedHouse(seed=5, days=5, now=NOW).statistics_during_period(["sensor.grid_import_energy"],
                                                                          NOW - timedelta(days=2), NOW, "hour")
    other = SimulatedHouse(seed=6, days=5, now=NOW).statistics_during_period(["sensor.grid_import_energy"],
                                                                            NOW - timedelta(days=2), NOW, "hour")
    assert one == two
    assert one != other


def test_energy_prefs_formats() -> None:
    flow = SimulatedHouse(seed=1, days=2, now=NOW, water=True).energy_prefs()
    assert flow is not None
    grid = flow["energy_sources"][0]
    assert grid["flow_from"][0]["stat_energy_from"] == "sensor.grid_import_energy"
    assert grid["flow_to"][0]["stat_energy_to"] == "sensor.grid_export_energy"
    assert {s["type"] for s in flow["energy_sources"]} == {"grid", "solar", "battery", "gas", "water"}
    single = SimulatedHouse(seed=1, days=2, now=NOW, grid_format="single").energy_prefs()
    assert single is not None and single["energy_sources"][0]["stat_energy_to"] == "sensor.grid_export_energy"
    assert SimulatedHouse(seed=1, days=2, now=NOW, energy_configured=False).energy_prefs() is None


def test_a_year_of_hourly_rows_for_20_entities_is_fast() -> None:
    started = time.perf_counter()
    house = SimulatedHouse(seed=1, days=366, now=NOW, extra_devices=12)
    ids = [m.entity_id for m in house.meters]
    assert len(ids) == 20
    result = house.statistics_during_period(ids, NOW - timedelta(days=365), NOW, "hour")
    text = json.dumps(result)
    elapsed = time.perf_counter() - started
    assert sum(len(rows) for rows in result.values()) >= 20 * 8750
    assert len(text) > 10_000_000
    assert elapsed < 6.0, f"a year x 20 entities took {elapsed:.1f} s"
