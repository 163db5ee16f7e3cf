"""``/api/insights/*`` over real HTTP, on data written through the stores, against hand-computed answers.

The main data set is the autumn DST week in Europe/Berlin (Monday 19 .. Monday 26 October 2026, 169 hours:
Sunday 25 October has 25, its 02:00 happens twice). Per hour, in kWh:

* grid import: 0.40 + 0.05 x weekday (Mon 0.40 .. Sun 0.70) in the local hours 00:00-04:00, 3.0 on Thursday
  at 18:00, 1.0 otherwise. Night hours: 5 x (0.40+0.45+0.50+0.55+0.60+0.65) + 6 x 0.70 = 19.95; day hours:
  169 - 36 = 133, one of them 3.0 -> 135.0; total 154.95.
* solar 4.0 and export 3.5 on Wednesday at 12:00, 0 otherwise -> house = 154.95 + 4.0 - 3.5 = 155.45.
* fridge (Wh): 100 every hour (0.1 kWh) -> 16.9; its meter resets on Wednesday (state drops, sum continuous).
* oven: 0.5 every day at 18:00 -> 3.5; plus a faulty row of -2.0 on Monday at 03:00 (left out, reported).
* gas (m³) and an untracked TV: present in the store, absent from every insight.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from energy_pipeline.storage.documents import EntityRecord
from energy_pipeline.storage.timeseries import StatisticRow
from energy_pipeline_tests.api.conftest import LiveApi

TZ = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)
GRID, SOLAR, EXPORT = "sensor.grid_import", "sensor.solar_production", "sensor.grid_export"
FRIDGE, OVEN, GAS, TV = "sensor.fridge_energy", "sensor.oven_energy", "sensor.gas_meter", "sensor.tv_energy"
WEEK = {"start": "2026-10-19", "end": "2026-10-26"}
APPROX = {"abs": 1e-6}


def local(day: int, hour: int = 0, month: int = 10, fold: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=TZ, fold=fold).astimezone(UTC)


def grid(ts: datetime) -> float:
    here = ts.astimezone(TZ)
    if here.hour < 5:
        return 0.40 + 0.05 * here.weekday()
    return 3.0 if (here.weekday(), here.hour) == (3, 18) else 1.0


def series(entity_id: str, start: datetime, hours: int, value: Callable[[datetime], float]) -> list[StatisticRow]:
    return [StatisticRow(start + i * H, entity_id, value(start + i * H)) for i in range(hours)]


def sunny(ts: datetime, amount: float) -> float:
    here = ts.astimezone(TZ)
    return amount if (here.weekday(), here.hour) == (2, 12) else 0.0


@pytest.fixture
def house(live_api: LiveApi) -> LiveApi:
    live_api.documents.update_settings({"ha_time_zone": "Europe/Berlin"})
    live_api.documents.upsert_entities([
        EntityRecord(GRID, "Grid import", "kWh", "grid_import"), EntityRecord(SOLAR, "Solar", "kWh", "solar"),
        EntityRecord(EXPORT, "Grid export", "kWh", "grid_export"), EntityRecord(FRIDGE, "Fridge", "Wh", "device"),
        EntityRecord(OVEN, "Oven", "kWh", "device"), EntityRecord(GAS, "Gas", "m³", "gas"),
        EntityRecord(TV, "TV", "kWh", "device", tracked=False),
    ])
    start, hours = local(19), 169
    assert local(26) - start == hours * H
    rows = [*series(GRID, start, hours, grid), *series(SOLAR, start, hours, lambda ts: sunny(ts, 4.0)),
            *series(EXPORT, start, hours, lambda ts: sunny(ts, 3.5)),
            *series(GAS, start, hours, lambda ts: 1.0), *series(TV, start, hours, lambda ts: 5.0),
            *series(OVEN, start, hours, lambda ts: 0.5 if ts.astimezone(TZ).hour == 18 else 0.0)]
    total = 0.0
    for i in range(hours):  # the fridge: sum continuous, state reset to 0 on Wednesday 00:00
        ts = start + i * H
        total += 100.0
        state = total if ts < local(21) else total - 5400.0
        rows.append(StatisticRow(ts, FRIDGE, 100.0, sum=total, state=state))
    rows = [r for r in rows if not (r.entity_id == OVEN and r.ts == local(19, 3))]
    rows.append(StatisticRow(local(19, 3), OVEN, -2.0))
    live_api.timeseries.write_statistics(rows)
    return live_api


def get(client: httpx.Client, path: str, **params: object) -> dict:
    response = client.get(f"/api/insights/{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_range_and_issues_are_reported(house: LiveApi) -> None:
    body = get(house.client(), "top-consumers", **WEEK)
    assert (body["start"], body["end"], body["hours"]) == ("2026-10-19T00:00:00+02:00", "2026-10-26T00:00:00+01:00",
                                                           169)
    assert body["period"] is None and body["time_zone"] == "Europe/Berlin" and body["unit"] == "kWh"
    assert body["issues"] == {"negative_change_count": 1, "incomplete_house_hours": 0, "negative_changes": [
        {"entity_id": OVEN, "start": "2026-10-19T03:00:00+02:00", "change": -2.0}]}


def test_top_consumers(house: LiveApi) -> None:
    body = get(house.client(), "top-consumers", limit=5, **WEEK)
    assert (body["total"], body["total_basis"]) == (pytest.approx(155.45, **APPROX), "house")
    assert body["devices_total"] == pytest.approx(20.4, **APPROX) and body["device_count"] == 2
    # fridge 16.9 (the reset does not matter), oven 3.5 (the -2.0 row left out); the untracked TV is absent
    assert [(c["rank"], c["entity_id"], c["consumption"], c["hours"]) for c in body["consumers"]] == [
        (1, FRIDGE, pytest.approx(16.9, **APPROX), 169), (2, OVEN, pytest.approx(3.5, **APPROX), 168)]
    assert body["consumers"][0]["share"] == pytest.approx(16.9 / 155.45, abs=1e-5)
    assert body["consumers"][1]["share"] == pytest.approx(3.5 / 155.45, abs=1e-5)
    assert [c["entity_id"] for c in get(house.client(), "top-consumers", limit=1, **WEEK)["consumers"]] == [FRIDGE]


def test_peak(house: LiveApi) -> None:
    body = get(house.client(), "peak", **WEEK)
    assert body["overall"] == {"start": "2026-10-22T18:00:00+02:00", "end": "2026-10-22T19:00:00+02:00",
                               "consumption": 3.0}
    assert body["overall_basis"] == "house"
    peaks = {e["entity_id"]: e["peak"] for e in body["entities"]}
    assert set(peaks) == {GRID, SOLAR, EXPORT, FRIDGE, OVEN}  # no gas, no untracked TV
    assert peaks[OVEN]["start"] == "2026-10-19T18:00:00+02:00"  # seven 0.5 hours: the earliest
    assert (peaks[SOLAR]["start"], peaks[SOLAR]["consumption"]) == ("2026-10-21T12:00:00+02:00", 4.0)
    assert (peaks[FRIDGE]["start"], peaks[FRIDGE]["consumption"]) == ("2026-10-19T00:00:00+02:00", 0.1)


def test_breakdown(house: LiveApi) -> None:
    body = get(house.client(), "breakdown", **WEEK)
    assert body["house"] == pytest.approx(155.45, **APPROX)
    assert body["components"] == {"grid_export": 3.5, "grid_import": pytest.approx(154.95, **APPROX), "solar": 4.0}
    assert [(d["entity_id"], d["consumption"]) for d in body["devices"]] == [
        (FRIDGE, pytest.approx(16.9, **APPROX)), (OVEN, pytest.approx(3.5, **APPROX))]
    assert body["rest"] == pytest.approx(135.05, **APPROX) and body["rest_negative"] is False
    assert body["rest_share"] == pytest.approx(135.05 / 155.45, abs=1e-5)
    assert (body["negative_rest_hour_count"], body["hours_used"]) == (0, 169)


def test_timeline_by_day_over_the_25_hour_sunday(house: LiveApi) -> None:
    body = get(house.client(), "timeline", group_by="day", **WEEK)
    assert [b["hours"] for b in body["buckets"]] == [24, 24, 24, 24, 24, 24, 25]
    by_id = {s["entity_id"]: s["consumption"] for s in body["series"]}
    assert set(by_id) == {FRIDGE, OVEN}
    assert by_id[FRIDGE] == pytest.approx([2.4] * 6 + [2.5], **APPROX)
    assert by_id[OVEN] == pytest.approx([0.5] * 7, **APPROX)
    # house per day: night 5 (Sunday 6) x (0.40 + 0.05 x weekday) + 19 day hours, Wed +0.5 (solar - export),
    # Thu +2.0 (the 3.0 hour)
    house_days = [2.0 + 19, 2.25 + 19, 2.5 + 19.5, 2.75 + 21, 3.0 + 19, 3.25 + 19, 4.2 + 19]
    assert body["house"] == pytest.approx(house_days, **APPROX)
    assert body["rest"] == pytest.approx([h - f - o for h, f, o in zip(house_days, by_id[FRIDGE], by_id[OVEN],
                                                                        strict=True)], **APPROX)
    hourly = get(house.client(), "timeline", group_by="hour", entity_ids=GRID, **WEEK)
    assert len(hourly["buckets"]) == 169 and hourly["series"][0]["consumption"][0] == 0.4
    assert hourly["rest"][0] == 0.0  # grid import alone is the whole house at night


def test_heatmap_in_the_dst_week(house: LiveApi) -> None:
    body = get(house.client(), "heatmap", **WEEK)
    assert body["basis"] == "house" and len(body["cells"]) == 168
    cells = {(c["weekday"], c["hour"]): c for c in body["cells"]}
    assert (cells[(0, 3)]["average"], cells[(0, 3)]["samples"]) == (0.4, 1)
    assert cells[(2, 12)]["average"] == pytest.approx(1.5, **APPROX)  # 1.0 + 4.0 solar - 3.5 export
    assert cells[(3, 18)]["average"] == 3.0 and body["max_average"] == 3.0
    # Sunday 02:00 happened twice: both hours of 0.70 add up in the one slot, one sample (the day)
    assert (cells[(6, 2)]["average"], cells[(6, 2)]["samples"]) == (pytest.approx(1.4, **APPROX), 1)
    oven = get(house.client(), "heatmap", entity_id=OVEN, **WEEK)
    assert oven["basis"] == "entity" and {(c["weekday"], c["hour"]) for c in oven["cells"]
                                          if c["average"]} == {(d, 18) for d in range(7)}


def test_baseload_and_its_cost(house: LiveApi) -> None:
    client = house.client()
    body = get(client, "baseload", **WEEK)
    # nightly minima 0.40 .. 0.70 (Monday .. Sunday, the 6-hour DST night included): median 0.55 (Thursday)
    assert body["baseload_kw"] == pytest.approx(0.55, **APPROX) and body["nights_used"] == 7
    assert [(n["date"], n["hours"], n["hours_expected"]) for n in body["nights"]][-1] == ("2026-10-25", 6, 6)
    assert body["cost_per_year"] is None and body["currency"] is None  # no tariff saved
    saved = client.put("/api/settings", json={"tariff": {"currency": "EUR", "versions": [{
        "effective_from": "2020-01-01", "daily_charge": 0.5,
        "prices": [{"start": "00:00", "end": "00:00", "price_per_kwh": 0.25}]}]}})
    assert saved.status_code == 200, saved.text
    body = get(client, "baseload", **WEEK)
    assert (body["cost_per_year"], body["currency"]) == (1204.5, "EUR")  # 0.55 kW x 8760 h x 0.25
    assert body["average_price_per_kwh"] == 0.25


def test_self_sufficiency(house: LiveApi) -> None:
    body = get(house.client(), "self-sufficiency", group_by="day", **WEEK)
    wednesday = body["buckets"][2]
    # house 22.0, import 21.5 -> 0.5 / 22.0 covered by the sun; no battery meter
    assert (wednesday["consumption"], wednesday["grid_import"], wednesday["solar"]) == (
        pytest.approx(22.0, **APPROX), pytest.approx(21.5, **APPROX), 4.0)
    assert wednesday["self_sufficiency"] == pytest.approx(0.5 / 22.0, abs=1e-6)
    assert wednesday["battery_share"] is None and wednesday["solar_share"] == wednesday["self_sufficiency"]
    assert body["buckets"][0]["self_sufficiency"] == 0.0
    assert body["total"]["self_sufficiency"] == pytest.approx(0.5 / 155.45, abs=1e-6)


def test_a_sunny_hour_with_unmetered_solar_gives_a_negative_rest(live_api: LiveApi, client: httpx.Client) -> None:
    live_api.documents.update_settings({"ha_time_zone": "Europe/Berlin"})
    live_api.documents.upsert_entities([EntityRecord(GRID, "Grid", "kWh", "grid_import"),
                                        EntityRecord(EXPORT, "Export", "kWh", "grid_export"),
                                        EntityRecord(OVEN, "Oven", "kWh", "device")])
    noon = local(21, 12)
    live_api.timeseries.write_statistics([
        StatisticRow(noon, GRID, 0.5), StatisticRow(noon, EXPORT, 3.0), StatisticRow(noon, OVEN, 0.4),
        StatisticRow(noon + H, GRID, 2.0), StatisticRow(noon + H, EXPORT, 0.0), StatisticRow(noon + H, OVEN, 1.0),
    ])
    body = get(client, "breakdown", start="2026-10-21T12:00", end="2026-10-21T14:00")
    # house (0.5 - 3.0) + 2.0 = -0.5, devices 1.4 -> rest -1.9: reported, not clipped
    assert body["house"] == -0.5 and body["rest"] == pytest.approx(-1.9, **APPROX) and body["rest_negative"] is True
    assert body["negative_rest_hour_count"] == 1
    assert body["negative_rest_hours"] == [{"start": "2026-10-21T12:00:00+02:00", "end": "2026-10-21T13:00:00+02:00",
                                            "house": -2.5, "devices": 0.4, "rest": -2.9}]
    response = client.get("/api/insights/self-sufficiency", params={"start": "2026-10-21", "end": "2026-10-22"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "no_solar_or_battery"
    assert "solar, battery_in or battery_out" in response.json()["error"]["message"]


def test_current_and_previous_period(live_api: LiveApi, client: httpx.Client) -> None:
    live_api.documents.update_settings({"ha_time_zone": "Europe/Berlin"})
    live_api.documents.upsert_entities([EntityRecord(OVEN, "Oven", "kWh", "device")])
    today = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = (today - timedelta(hours=12)).replace(hour=0)
    live_api.timeseries.write_statistics([StatisticRow(today.astimezone(UTC), OVEN, 2.0),
                                          StatisticRow(yesterday.astimezone(UTC), OVEN, 3.0)])
    body = get(client, "top-consumers", period="day")
    assert body["period"] == "day" and datetime.fromisoformat(body["start"]) == today
    assert (body["total"], body["total_basis"]) == (2.0, "devices")  # no grid import: the devices' sum
    body = get(client, "top-consumers", period="day", offset=-1)
    assert datetime.fromisoformat(body["start"]) == yesterday and body["total"] == 3.0
    week = get(client, "top-consumers")
    assert week["period"] == "week" and datetime.fromisoformat(week["start"]).weekday() == 0
    month = get(client, "top-consumers", period="month")
    assert datetime.fromisoformat(month["start"]).day == 1 and month["hours"] in range(28 * 24 - 1, 31 * 24 + 2)


def test_bad_requests_answer_4xx_in_the_error_shape(live_api: LiveApi, client: httpx.Client) -> None:
    live_api.documents.upsert_entities([EntityRecord(OVEN, "Oven", "kWh", "device"),
                                        EntityRecord(GAS, "Gas", "m³", "gas")])
    cases = [
        ("breakdown", {}, 422, "no_grid_import"),
        ("self-sufficiency", {}, 422, "no_solar_or_battery"),
        ("peak", {"period": "day", "start": "2026-01-01"}, 400, "conflicting_range"),
        ("peak", {"start": "2026-02-01", "end": "2026-01-01"}, 400, "invalid_range"),
        ("peak", {"start": "2020-01-01", "end": "2026-01-01"}, 400, "range_too_large"),
        ("peak", {"start": "yesterday"}, 400, "invalid_time"),
        ("peak", {"period": "year"}, 422, "validation_error"),
        ("peak", {"offset": 1}, 422, "validation_error"),
        ("top-consumers", {"limit": 21}, 422, "validation_error"),
        ("top-consumers", {"limit": 0}, 422, "validation_error"),
        ("heatmap", {"entity_id": "sensor.nope"}, 404, "unknown_entity"),
        ("heatmap", {"entity_id": GAS}, 422, "not_an_energy_entity"),
        ("timeline", {"entity_ids": "sensor.nope"}, 404, "unknown_entity"),
        ("timeline", {"entity_ids": GAS}, 422, "not_a_tracked_energy_entity"),
        ("timeline", {"group_by": "week"}, 422, "validation_error"),
    ]
    for path, params, status, code in cases:
        response = client.get(f"/api/insights/{path}", params=params)
        assert response.status_code == status, (path, params, response.text)
        assert response.json()["error"]["code"] == code, (path, params, response.text)


def test_empty_house_gives_empty_figures(live_api: LiveApi, client: httpx.Client) -> None:
    for path in ("top-consumers", "peak", "timeline", "heatmap", "baseload"):
        body = get(client, path)
        assert body["issues"]["negative_change_count"] == 0, path
    assert get(client, "top-consumers")["consumers"] == []
    assert get(client, "peak")["overall"] is None
    assert get(client, "baseload")["baseload_kw"] is None
    assert get(client, "heatmap")["max_average"] is None
