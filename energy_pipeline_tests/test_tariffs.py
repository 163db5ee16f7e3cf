"""Tariff math with hand-computed numbers: time-of-use windows, versions, daily charges, DST, validation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from energy_pipeline.storage.buckets import bucket_boundaries
from energy_pipeline.tariffs import EXAMPLE_TARIFF, TariffError, kwh_factor, parse_tariff, priced_factor

BERLIN = "Europe/Berlin"
TZ = ZoneInfo(BERLIN)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)


def every_hour(start: datetime, end: datetime, kwh: float = 1.0) -> list[tuple[datetime, float]]:
    out, hour = [], start.astimezone(UTC)
    while hour < end.astimezone(UTC):
        out.append((hour, kwh))
        hour += timedelta(hours=1)
    return out


def flat(price: float, effective_from: str = "2026-01-01", daily: float = 0.0) -> dict:
    return {"effective_from": effective_from, "daily_charge": daily,
            "prices": [{"start": "00:00", "end": "00:00", "price_per_kwh": price}]}


WORKDAY_NIGHT = {
    "currency": "EUR",
    "versions": [{
        "effective_from": "2026-01-01", "daily_charge": 0.5,
        "prices": [
            {"start": "07:00", "end": "22:00", "price_per_kwh": 0.30, "weekdays": ["mon", "tue", "wed", "thu", "fri"]},
            {"start": "22:00", "end": "07:00", "price_per_kwh": 0.20, "weekdays": ["mon", "tue", "wed", "thu"]},
            # Friday night runs into the weekend price: the window starts on Friday and ends Saturday 07:00
            {"start": "22:00", "end": "07:00", "price_per_kwh": 0.10, "weekdays": ["fri"]},
            {"start": "07:00", "end": "22:00", "price_per_kwh": 0.15, "weekdays": ["sat", "sun"]},
            {"start": "22:00", "end": "07:00", "price_per_kwh": 0.12, "weekdays": ["sat"]},
            # Sunday night until Monday 07:00 is the workday night price
            {"start": "22:00", "end": "07:00", "price_per_kwh": 0.20, "weekdays": ["sun"]},
        ],
    }],
}


def test_prices_per_local_hour_with_wrapping_windows_and_weekdays() -> None:
    tariff = parse_tariff(WORKDAY_NIGHT)
    # 2026-06-05 is a Friday
    assert tariff.price_at(local(2026, 6, 5, 6)) == 0.20  # Thursday night's window, Friday morning
    assert tariff.price_at(local(2026, 6, 5, 7)) == 0.30
    assert tariff.price_at(local(2026, 6, 5, 21)) == 0.30
    assert tariff.price_at(local(2026, 6, 5, 22)) == 0.10
    assert tariff.price_at(local(2026, 6, 6, 3)) == 0.10  # Saturday 03:00: still Friday's night window
    assert tariff.price_at(local(2026, 6, 6, 7)) == 0.15
    assert tariff.price_at(local(2026, 6, 7, 23)) == 0.20  # Sunday night
    assert tariff.price_at(local(2026, 6, 8, 6)) == 0.20  # ... until Monday 07:00


def test_cost_of_a_week_by_hand() -> None:
    """1 kWh every hour from Monday 1 June to Monday 8 June 2026 (CEST, no DST change).

    Workday day hours: 5 days x 15 h x 0.30 = 22.50. Night hours 22-07 are 9 h per night, each night priced by
    the weekday it starts on, 00-07 Monday morning belongs to Sunday night (0.20) and 22-24 of Sunday too:
    Mon 00-07: 7 x 0.20 (Sunday 31 May's night) = 1.40; nights starting Mon-Thu: 4 x 9 x 0.20 = 7.20;
    Friday night 9 x 0.10 = 0.90; weekend day 2 x 15 x 0.15 = 4.50; Saturday night 9 x 0.12 = 1.08;
    Sunday 22-24: 2 x 0.20 = 0.40. Energy = 37.98. Daily charges: 7 whole days x 0.50 = 3.50.
    """
    tariff = parse_tariff(WORKDAY_NIGHT)
    bounds = bucket_boundaries(local(2026, 6, 1), local(2026, 6, 8), "week", TZ)
    [cost] = tariff.bucket_costs(bounds, every_hour(local(2026, 6, 1), local(2026, 6, 8)), BERLIN)
    assert cost.energy == pytest.approx(37.98)
    assert cost.fixed == pytest.approx(3.50)
    assert cost.total == pytest.approx(41.48)


def test_a_price_change_applies_from_its_date_only() -> None:
    tariff = parse_tariff({"currency": "EUR", "versions": [flat(0.40, "2026-03-15", daily=2.0),
                                                           flat(0.30, "2026-01-01", daily=1.0)]})
    assert [v.effective_from for v in tariff.versions] == [date(2026, 1, 1), date(2026, 3, 15)]
    assert tariff.price_at(local(2026, 3, 14, 23)) == 0.30
    assert tariff.price_at(local(2026, 3, 15, 0)) == 0.40
    # March 2026 in Berlin: 743 hours (spring forward on the 29th). 1..14 March: 14 x 24 = 336 h at 0.30;
    # 15..31 March: 743 - 336 = 407 h at 0.40. Daily charges: 14 x 1.00 + 17 x 2.00 = 48.00.
    bounds = bucket_boundaries(local(2026, 3, 1), local(2026, 4, 1), "month", TZ)
    [march] = tariff.bucket_costs(bounds, every_hour(local(2026, 3, 1), local(2026, 4, 1)), BERLIN)
    assert march.energy == pytest.approx(336 * 0.30 + 407 * 0.40)
    assert march.fixed == pytest.approx(48.0)
    # The earlier version's costs are unchanged by the later one: same as a tariff that never changed.
    old_only = parse_tariff({"currency": "EUR", "versions": [flat(0.30, "2026-01-01", daily=1.0)]})
    feb = bucket_boundaries(local(2026, 2, 1), local(2026, 3, 1), "month", TZ)
    hours = every_hour(local(2026, 2, 1), local(2026, 3, 1))
    assert tariff.bucket_costs(feb, hours, BERLIN) == old_only.bucket_costs(feb, hours, BERLIN)


def test_daily_charge_only_for_whole_days_in_the_bucket() -> None:
    tariff = parse_tariff({"currency": "EUR", "versions": [flat(0.0, daily=1.5)]})
    hours = bucket_boundaries(local(2026, 6, 1), local(2026, 6, 2), "hour", TZ)
    assert {c.fixed for c in tariff.bucket_costs(hours, [], BERLIN)} == {0.0}
    days = bucket_boundaries(local(2026, 3, 28), local(2026, 3, 31), "day", TZ)  # includes the 23-hour day
    assert [c.fixed for c in tariff.bucket_costs(days, [], BERLIN)] == [1.5, 1.5, 1.5]
    # an arbitrary span from 12:00 to 12:00 two days later holds exactly one whole local day
    [span] = tariff.bucket_costs([local(2026, 6, 1, 12).astimezone(UTC), local(2026, 6, 3, 12).astimezone(UTC)],
                                 [], BERLIN)
    assert span.fixed == 1.5


def test_fall_back_repeats_the_local_hour_at_its_price() -> None:
    tariff = parse_tariff({"currency": "EUR", "versions": [{"effective_from": "2026-01-01", "prices": [
        {"start": "02:00", "end": "03:00", "price_per_kwh": 1.0},
        {"start": "03:00", "end": "02:00", "price_per_kwh": 0.1}]}]})
    bounds = bucket_boundaries(local(2026, 10, 25), local(2026, 10, 26), "day", TZ)
    [day] = tariff.bucket_costs(bounds, every_hour(local(2026, 10, 25), local(2026, 10, 26)), BERLIN)
    assert day.energy == pytest.approx(2 * 1.0 + 23 * 0.1)  # 25 hours, 02:00 twice
    spring = bucket_boundaries(local(2026, 3, 29), local(2026, 3, 30), "day", TZ)
    [short] = tariff.bucket_costs(spring, every_hour(local(2026, 3, 29), local(2026, 3, 30)), BERLIN)
    assert short.energy == pytest.approx(23 * 0.1)  # 02:00 does not exist that day


def test_no_cost_for_buckets_before_the_first_version_and_hours_outside_the_bounds() -> None:
    tariff = parse_tariff({"currency": "EUR", "versions": [flat(1.0, "2026-02-01", daily=1.0)]})
    bounds = bucket_boundaries(local(2026, 1, 31), local(2026, 2, 2), "day", TZ)
    before, after = tariff.bucket_costs(bounds, every_hour(local(2026, 1, 30), local(2026, 2, 5), 2.0), BERLIN)
    assert before is None
    assert after.energy == pytest.approx(48.0) and after.fixed == 1.0


def test_round_trip_and_normalisation() -> None:
    tariff = parse_tariff({"currency": "EUR", "versions": [{"effective_from": "2026-01-01", "prices": [
        {"start": "00:00:00", "end": "24:00", "price_per_kwh": 1, "weekdays": ["Sunday", "mon", "tue", "wed",
                                                                               "thu", "fri", "sat"]}]}]})
    as_dict = tariff.to_dict()
    assert as_dict == {"currency": "EUR", "versions": [{"effective_from": "2026-01-01", "daily_charge": 0.0,
                                                        "prices": [{"start": "00:00", "end": "24:00",
                                                                    "price_per_kwh": 1.0,
                                                                    "weekdays": ["mon", "tue", "wed", "thu", "fri",
                                                                                 "sat", "sun"]}]}]}
    assert parse_tariff(as_dict).to_dict() == as_dict
    assert parse_tariff(EXAMPLE_TARIFF).currency == "EUR"


def problems(raw: object) -> list[str]:
    with pytest.raises(TariffError) as info:
        parse_tariff(raw)
    return info.value.problems


def test_overlapping_windows_name_the_hours() -> None:
    [problem] = problems({"currency": "EUR", "versions": [{"effective_from": "2026-01-01", "prices": [
        {"start": "00:00", "end": "12:00", "price_per_kwh": 0.2},
        {"start": "10:00", "end": "00:00", "price_per_kwh": 0.3}]}]})
    assert problem.startswith("versions[0].prices[0] (00:00-12:00 every day) and prices[1] (10:00-00:00 every day)")
    assert "mon 10:00-12:00" in problem and "sun 10:00-12:00" in problem


def test_uncovered_hours_are_named() -> None:
    [problem] = problems({"currency": "EUR", "versions": [{"effective_from": "2026-01-01", "prices": [
        {"start": "06:00", "end": "22:00", "price_per_kwh": 0.2},
        {"start": "22:00", "end": "06:00", "price_per_kwh": 0.1, "weekdays": ["mon", "tue", "wed", "thu", "fri"]}]}]})
    # no night price starting Saturday or Sunday: Sat 22-24, Sun 00-06 and 22-24, Mon 00-06
    assert "no price for mon 00:00-06:00; sat 22:00-24:00; sun 00:00-06:00, 22:00-24:00" in problem


@pytest.mark.parametrize(("raw", "expected"), [
    ("flat", "tariff: must be an object"),
    ({"currency": "euro", "versions": [flat(0.1)]}, "currency: must be an ISO 4217 code"),
    ({"currency": "EUR", "versions": []}, "versions: must be a non-empty list"),
    ({"currency": "EUR", "versions": [flat(-0.1)]}, "versions[0].prices[0].price_per_kwh: must not be negative"),
    ({"currency": "EUR", "versions": [flat(0.1, daily=-1)]}, "versions[0].daily_charge: must not be negative"),
    ({"currency": "EUR", "versions": [flat(float("nan"))]}, "must be a finite number"),
    ({"currency": "EUR", "versions": [flat(1e300)]}, "implausibly large"),
    ({"currency": "EUR", "versions": [flat(True)]}, "must be a number"),
    ({"currency": "EUR", "versions": [flat(0.1, "2026-02-30")]}, "effective_from: must be a local date"),
    ({"currency": "EUR", "versions": [flat(0.1), flat(0.2)]}, "2 versions take effect on 2026-01-01"),
    ({"currency": "EUR", "versions": [{"effective_from": "2026-01-01", "prices": [
        {"start": "07:30", "end": "07:30", "price_per_kwh": 0.1}]}]}, "not on the hour"),
    ({"currency": "EUR", "versions": [{"effective_from": "2026-01-01", "prices": [
        {"start": "24:00", "end": "07:00", "price_per_kwh": 0.1}]}]}, "24:00 is only allowed as an end"),
    ({"currency": "EUR", "versions": [{"effective_from": "2026-01-01", "prices": [
        {"start": "7", "end": "07:00", "price_per_kwh": 0.1}]}]}, "must be a local time \"HH:MM\""),
    ({"currency": "EUR", "versions": [{"effective_from": "2026-01-01", "prices": [
        {"start": "00:00", "end": "00:00", "price_per_kwh": 0.1, "weekdays": ["funday"]}]}]},
     "'funday' is not a weekday"),
    ({"currency": "EUR", "versions": [{"effective_from": "2026-01-01", "prices": [
        {"start": "00:00", "end": "00:00", "price_per_kwh": 0.1, "weekdays": ["mon", "mon"]}]}]}, "listed twice"),
    ({"currency": "EUR", "versions": [{"effective_from": "2026-01-01", "prices": []}]}, "prices: must be a non-empty"),
    ({"currency": "EUR", "versions": [flat(0.1)], "vat": 0.2}, "unknown field(s) vat"),
])
def test_validation_messages(raw: object, expected: str) -> None:
    assert any(expected in p for p in problems(raw)), problems(raw)


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"currency": "eur", "versions": [flat(-1.0), flat(0.1, "bad-date")]})
    assert len(found) == 3


def test_energy_units() -> None:
    assert kwh_factor("kWh") == 1.0 and kwh_factor("Wh") == 0.001 and kwh_factor("MWh") == 1000.0
    assert kwh_factor(None) == 1.0
    assert kwh_factor("m³") is None


def test_only_energy_bought_from_the_grid_is_priced() -> None:
    assert priced_factor("kWh", "grid_import") == 1.0 and priced_factor("Wh", "device") == 0.001
    assert priced_factor("kWh", None) == 1.0
    for role in ("solar", "grid_export", "battery_in", "battery_out", "gas", "water"):
        assert priced_factor("kWh", role) is None
    assert priced_factor("m³", "device") is None
