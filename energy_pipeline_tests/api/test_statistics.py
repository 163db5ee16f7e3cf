"""Statistics over real HTTP: calendar buckets in the house's zone (DST days, Monday weeks), compare, CSV,
range checks, and cost from a tariff across a price change."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from energy_pipeline_tests.api.conftest import GRID, PEER, SOLAR, LiveApi, add_entities, hourly

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


@pytest.fixture
def berlin_api(live_api: LiveApi) -> LiveApi:
    """Entities discovered from a house in Europe/Berlin (the zone discovery records)."""
    add_entities(live_api.documents)
    live_api.documents.update_settings({"ha_time_zone": "Europe/Berlin"})
    return live_api


def test_spring_forward_day_has_23_hours(berlin_api: LiveApi, client: httpx.Client) -> None:
    berlin_api.timeseries.write_statistics(hourly(GRID, berlin(2026, 3, 28), 24 * 4))
    body = client.get(f"/api/statistics/{GRID}", params={"start": "2026-03-28", "end": "2026-03-31",
                                                          "period": "day"}).json()
    assert body["time_zone"] == "Europe/Berlin"
    assert [(b["start"], b["hours"], b["consumption"]) for b in body["buckets"]] == [
        ("2026-03-28T00:00:00+01:00", 24, 24.0),
        ("2026-03-29T00:00:00+01:00", 23, 23.0),
        ("2026-03-30T00:00:00+02:00", 24, 24.0),
    ]
    assert body["total"]["consumption"] == 71.0
    assert body["currency"] is None and body["total"]["cost"] is None


def test_fall_back_day_has_25_hours_and_the_repeated_hour_twice(berlin_api: LiveApi, client: httpx.Client) -> None:
    berlin_api.timeseries.write_statistics(hourly(GRID, berlin(2026, 10, 24), 24 * 3 + 1, lambda i: i + 1.0))
    body = client.get(f"/api/statistics/{GRID}", params={"start": "2026-10-25", "end": "2026-10-26",
                                                          "period": "day"}).json()
    [day] = body["buckets"]
    assert (day["start"], day["end"], day["hours"], day["hours_with_data"]) == (
        "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00", 25, 25)
    assert day["consumption"] == sum(range(25, 50))  # hours 24..48 of the series, change = index + 1
    hours = client.get(f"/api/statistics/{GRID}", params={"start": "2026-10-25T01:00", "end": "2026-10-25T04:00",
                                                           "period": "hour"}).json()["buckets"]
    assert [b["start"] for b in hours] == ["2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00",
                                           "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]


def test_spring_forward_hours_skip_two_oclock(berlin_api: LiveApi, client: httpx.Client) -> None:
    berlin_api.timeseries.write_statistics(hourly(GRID, berlin(2026, 3, 29), 6))
    hours = client.get(f"/api/statistics/{GRID}", params={"start": "2026-03-29T00:00", "end": "2026-03-29T05:00",
                                                           "period": "hour"}).json()["buckets"]
    assert [b["start"] for b in hours] == ["2026-03-29T00:00:00+01:00", "2026-03-29T01:00:00+01:00",
                                           "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"]


def test_weeks_start_on_monday_and_months_on_the_first(berlin_api: LiveApi, client: httpx.Client) -> None:
    berlin_api.timeseries.write_statistics(hourly(GRID, berlin(2026, 3, 1), 24 * 45))
    weeks = client.get(f"/api/statistics/{GRID}", params={"start": "2026-03-25T12:00", "end": "2026-04-01",
                                                          "period": "week"}).json()
    assert [(b["start"], b["hours"], b["consumption"]) for b in weeks["buckets"]] == [
        ("2026-03-23T00:00:00+01:00", 167, 167.0),  # Monday; the week holds the 23-hour Sunday
        ("2026-03-30T00:00:00+02:00", 168, 168.0),
    ]
    assert weeks["start"] == "2026-03-23T00:00:00+01:00" and weeks["end"] == "2026-04-06T00:00:00+02:00"
    assert datetime.fromisoformat(weeks["buckets"][0]["start"]).weekday() == 0
    months = client.get(f"/api/statistics/{GRID}", params={"start": "2026-03-15", "end": "2026-04-02",
                                                           "period": "month"}).json()["buckets"]
    assert [(b["start"], b["hours"], b["hours_with_data"]) for b in months] == [
        ("2026-03-01T00:00:00+01:00", 743, 743),
        ("2026-04-01T00:00:00+02:00", 720, 24 * 45 - 743),
    ]


def test_naive_times_are_house_time_and_offsets_are_respected(berlin_api: LiveApi, client: httpx.Client) -> None:
    berlin_api.timeseries.write_statistics(hourly(GRID, berlin(2026, 6, 1), 48, lambda i: float(i)))
    naive = client.get(f"/api/statistics/{GRID}", params={"start": "2026-06-01T10:00", "end": "2026-06-01T12:00"})
    assert [b["consumption"] for b in naive.json()["buckets"]] == [10.0, 11.0]
    utc = client.get(f"/api/statistics/{GRID}", params={"start": "2026-06-01T08:00:00Z", "end": "2026-06-01T10:00Z"})
    assert [b["start"] for b in utc.json()["buckets"]] == ["2026-06-01T10:00:00+02:00", "2026-06-01T11:00:00+02:00"]
    # a "+" sent unencoded arrives as a space and is still understood
    raw = client.get(f"/api/statistics/{GRID}?start=2026-06-01T10:00:00+02:00&end=2026-06-01T11:00:00+02:00")
    assert raw.status_code == 200 and raw.json()["buckets"][0]["consumption"] == 10.0


def test_default_range_is_the_last_seven_days(berlin_api: LiveApi, client: httpx.Client) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    berlin_api.timeseries.write_statistics(hourly(GRID, now - timedelta(days=10), 24 * 10))
    body = client.get(f"/api/statistics/{GRID}").json()
    assert body["period"] == "hour"
    assert len(body["buckets"]) in (168, 169)
    assert body["total"]["consumption"] == pytest.approx(sum(b["hours_with_data"] for b in body["buckets"]))
    assert 167 <= body["total"]["consumption"] <= 168


def test_bad_ranges_are_400_not_500(berlin_api: LiveApi, client: httpx.Client) -> None:
    cases = {
        (("start", "2026-03-02"), ("end", "2026-03-01")): "invalid_range",
        (("start", "2026-03-01"), ("end", "2026-03-01")): "invalid_range",
        (("start", "2020-01-01"), ("end", "2026-01-01"), ("period", "hour")): "range_too_large",
        (("start", "yesterday"),): "invalid_time",
        (("start", "2026-13-01"),): "invalid_time",
        (("start", "0001-01-01T00:00:00+14:00"),): "invalid_time",
        (("end", "9999-12-31"),): "time_out_of_range",
    }
    for params, code in cases.items():
        response = client.get(f"/api/statistics/{GRID}", params=dict(params))
        assert response.status_code == 400, (params, response.text)
        assert response.json()["error"]["code"] == code, params
    long_months = client.get(f"/api/statistics/{GRID}", params={"start": "1990-01-01", "end": "2030-01-01",
                                                                "period": "month"})
    assert long_months.status_code == 200 and len(long_months.json()["buckets"]) == 480
    assert client.get(f"/api/statistics/{GRID}", params={"period": "year"}).status_code == 422


def test_unknown_entity_is_404_but_legacy_data_without_a_record_is_served(berlin_api: LiveApi,
                                                                          client: httpx.Client) -> None:
    assert client.get("/api/statistics/sensor.unknown").status_code == 404
    berlin_api.timeseries.write_statistics(hourly("sensor.legacy_only", berlin(2026, 1, 1), 24, source="legacy"))
    body = client.get("/api/statistics/sensor.legacy_only", params={"start": "2026-01-01", "end": "2026-01-02",
                                                                    "period": "day"}).json()
    assert body["buckets"][0]["consumption"] == 24.0 and body["name"] is None


def test_compare_aligns_buckets_with_null_for_no_data(berlin_api: LiveApi, client: httpx.Client) -> None:
    berlin_api.timeseries.write_statistics(hourly(GRID, berlin(2026, 5, 1), 72, 0.5))
    berlin_api.timeseries.write_statistics(hourly(SOLAR, berlin(2026, 5, 2), 24, 2.0))
    response = client.post("/api/statistics/compare", json={
        "entity_ids": [SOLAR, GRID, PEER], "start": "2026-05-01", "end": "2026-05-04", "period": "day"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [b["start"] for b in body["buckets"]] == ["2026-05-01T00:00:00+02:00", "2026-05-02T00:00:00+02:00",
                                                     "2026-05-03T00:00:00+02:00"]
    series = {s["entity_id"]: s for s in body["series"]}
    assert [s["entity_id"] for s in body["series"]] == [SOLAR, GRID, PEER]
    assert series[GRID]["consumption"] == [12.0, 12.0, 12.0]
    assert series[SOLAR]["consumption"] == [None, 48.0, None]
    assert series[SOLAR]["hours_with_data"] == [0, 24, 0]
    assert series[PEER]["consumption"] == [None, None, None] and series[PEER]["total"]["consumption"] is None
    assert series[SOLAR]["total"]["consumption"] == 48.0


def test_compare_validation(berlin_api: LiveApi, client: httpx.Client) -> None:
    too_many = client.post("/api/statistics/compare", json={"entity_ids": [f"sensor.e{i}" for i in range(11)]})
    assert too_many.status_code == 422
    assert client.post("/api/statistics/compare", json={"entity_ids": []}).status_code == 422
    twice = client.post("/api/statistics/compare", json={"entity_ids": [GRID, GRID]})
    assert twice.status_code == 400 and "twice" in twice.json()["error"]["message"]
    unknown = client.post("/api/statistics/compare", json={"entity_ids": [GRID, "sensor.nope"]})
    assert unknown.status_code == 404 and "sensor.nope" in unknown.json()["error"]["message"]


def test_export_csv(berlin_api: LiveApi, client: httpx.Client) -> None:
    berlin_api.timeseries.write_statistics(hourly(GRID, berlin(2026, 3, 29), 23 + 24, 1.5))
    response = client.get("/api/statistics/export.csv", params={
        "entity_ids": f"{GRID},{SOLAR}", "start": "2026-03-29", "end": "2026-03-31", "period": "day"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows == [
        ["bucket_start", "entity_id", "consumption", "cost"],
        ["2026-03-29T00:00:00+01:00", GRID, "34.5", ""],
        ["2026-03-29T00:00:00+01:00", SOLAR, "", ""],
        ["2026-03-30T00:00:00+02:00", GRID, "36.0", ""],
        ["2026-03-30T00:00:00+02:00", SOLAR, "", ""],
    ]
    assert client.get("/api/statistics/export.csv").status_code == 422
    assert client.get("/api/statistics/export.csv", params={"entity_ids": ","}).status_code == 400


# -- cost -------------------------------------------------------------------------------------------------

TARIFF = {
    "currency": "EUR",
    "versions": [
        {"effective_from": "2026-01-01", "daily_charge": 1.0, "prices": [
            {"start": "07:00", "end": "22:00", "price_per_kwh": 0.30},
            {"start": "22:00", "end": "07:00", "price_per_kwh": 0.20}]},
        {"effective_from": "2026-03-30", "daily_charge": 1.2, "prices": [
            {"start": "07:00", "end": "22:00", "price_per_kwh": 0.40},
            {"start": "22:00", "end": "07:00", "price_per_kwh": 0.25}]},
    ],
}


def test_cost_across_a_price_change_on_a_dst_day(berlin_api: LiveApi, client: httpx.Client) -> None:
    """1 kWh every hour of 29 and 30 March 2026 (Berlin), prices change on the 30th.

    29th (23 h, old prices): night hours 00, 01, 03-06, 22, 23 = 8 x 0.20 = 1.60; day 07-21 = 15 x 0.30 = 4.50;
    daily charge 1.00 -> 7.10. 30th (new prices): night 00-06, 22, 23 = 9 x 0.25 = 2.25; day 15 x 0.40 = 6.00;
    daily charge 1.20 -> 9.45. Total 16.55.
    """
    berlin_api.timeseries.write_statistics(hourly(GRID, berlin(2026, 3, 29), 23 + 24))
    saved = client.put("/api/settings", json={"tariff": TARIFF})
    assert saved.status_code == 200, saved.text
    body = client.get(f"/api/statistics/{GRID}", params={"start": "2026-03-29", "end": "2026-03-31",
                                                          "period": "day"}).json()
    assert body["currency"] == "EUR"
    got = [(b["consumption"], b["energy_cost"], b["fixed_cost"], b["cost"]) for b in body["buckets"]]
    assert got == [(23.0, pytest.approx(6.10), 1.0, pytest.approx(7.10)),
                   (24.0, pytest.approx(8.25), 1.2, pytest.approx(9.45))]
    assert body["total"]["cost"] == pytest.approx(16.55)

    hours = client.get(f"/api/statistics/{GRID}", params={"start": "2026-03-30T05:00", "end": "2026-03-30T08:00",
                                                           "period": "hour"}).json()["buckets"]
    assert [(b["start"][11:16], b["cost"], b["fixed_cost"]) for b in hours] == [
        ("05:00", 0.25, 0.0), ("06:00", 0.25, 0.0), ("07:00", 0.40, 0.0)]

    # The week of Monday 23 March holds 7 whole days of the old version (7 x 1.00) and only the 29th has data.
    week = client.get(f"/api/statistics/{GRID}", params={"start": "2026-03-29", "end": "2026-03-30",
                                                         "period": "week"}).json()["buckets"][0]
    assert (week["start"], week["energy_cost"], week["fixed_cost"]) == ("2026-03-23T00:00:00+01:00",
                                                                       pytest.approx(6.10), 7.0)
    csv_rows = list(csv.reader(io.StringIO(client.get("/api/statistics/export.csv", params={
        "entity_ids": GRID, "start": "2026-03-29", "end": "2026-03-31", "period": "day"}).text)))
    assert [float(r[3]) for r in csv_rows[1:]] == [pytest.approx(7.10), pytest.approx(9.45)]


def test_no_cost_before_the_first_version_nor_for_water_or_solar(berlin_api: LiveApi, client: httpx.Client) -> None:
    from energy_pipeline.storage.documents import EntityRecord

    berlin_api.documents.upsert_entities([EntityRecord("sensor.water", name="Water", unit="m³", role="water")])
    berlin_api.timeseries.write_statistics(hourly(GRID, berlin(2025, 12, 31), 48))
    berlin_api.timeseries.write_statistics(hourly("sensor.water", berlin(2026, 1, 1), 24, 0.01))
    berlin_api.timeseries.write_statistics(hourly(SOLAR, berlin(2026, 1, 1), 24, 0.2))
    client.put("/api/settings", json={"tariff": TARIFF})
    body = client.post("/api/statistics/compare", json={"entity_ids": [GRID, "sensor.water", SOLAR],
                                                        "start": "2025-12-31", "end": "2026-01-02",
                                                        "period": "day"}).json()
    grid, water, solar = body["series"]
    assert solar["consumption"][1] == pytest.approx(4.8) and solar["cost"] == [None, None]  # production
    assert grid["consumption"] == [24.0, 24.0]
    assert grid["cost"][0] is None  # 31 December: no price was in force
    assert grid["cost"][1] == pytest.approx(9 * 0.20 + 15 * 0.30 + 1.0)
    assert water["cost"] == [None, None] and water["consumption"][1] == pytest.approx(0.24)
    assert body["currency"] == "EUR"
