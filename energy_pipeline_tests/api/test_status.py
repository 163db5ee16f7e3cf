"""Health and status over real HTTP: store health (503 naming the store), stream state, last stored hour per
tracked entity, check results, and Home Assistant reachability (cached)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from energy_pipeline.simulator.house import SimulatedHouse
from energy_pipeline.simulator.server import HomeAssistantSimulator
from energy_pipeline.storage.timeseries import StoreUnavailableError
from energy_pipeline_tests.api.conftest import GRID, PEER, SOLAR, LiveApi, add_entities, hourly

SIM_TOKEN = "status-test-token-0123456789"


def _broken(*args: object, **kwargs: object) -> None:
    raise StoreUnavailableError("connection refused by the test")


def test_health_ok_and_503_naming_the_failed_store(live_api: LiveApi, client: httpx.Client) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "stores": [
        {"name": "timeseries", "backend": "sqlite", "ok": True, "error": None},
        {"name": "documents", "backend": "sqlite", "ok": True, "error": None}]}
    live_api.state.documents.raw.health = _broken
    try:
        response = client.get("/api/health")
    finally:
        del live_api.state.documents.raw.health
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "store_unavailable"
    assert error["message"].startswith("document store (sqlite) is unavailable")
    assert "time-series" not in error["message"]
    assert [s["ok"] for s in response.json()["stores"]] == [True, False]


def test_a_failing_store_gives_503_on_data_routes(live_api: LiveApi, client: httpx.Client) -> None:
    live_api.state.documents.raw.list_entities = _broken
    try:
        response = client.get("/api/entities")
    finally:
        del live_api.state.documents.raw.list_entities
    assert response.status_code == 503
    assert response.json()["error"]["message"].startswith("document store (sqlite) is unavailable")


def test_status_shows_stream_checks_latest_hours_and_stores(live_api: LiveApi, client: httpx.Client) -> None:
    add_entities(live_api.documents)  # GRID and SOLAR tracked, PEER not
    live_api.documents.update_settings({"ha_time_zone": "Europe/Berlin"})
    live_api.timeseries.write_statistics(hourly(GRID, datetime(2026, 5, 1, tzinfo=UTC), 5))
    live_api.timeseries.write_statistics(hourly(PEER, datetime(2026, 5, 1, tzinfo=UTC), 9))
    live_api.documents.update_stream_state({"status": "streaming",
                                            "connected_since": datetime(2026, 5, 1, 6, tzinfo=UTC)},
                                           {"events_total": 7})
    checked = datetime(2026, 5, 1, 5, 3, tzinfo=UTC)
    live_api.documents.record_check_result("statistics_have_no_gaps", {
        "passed": False, "severity": "WARN", "description": "3 entity-hours missing", "checked_at": checked,
        "window_start": datetime(2026, 5, 1, tzinfo=UTC), "window_end": datetime(2026, 5, 1, 5, tzinfo=UTC)})
    live_api.documents.record_check_result("statistics_have_no_duplicates", {"passed": True, "checked_at": checked})
    response = client.get("/api/status")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["time_zone"] == "Europe/Berlin"
    assert body["stream"] == {"status": "streaming", "connected_since": "2026-05-01T08:00:00+02:00",
                              "events_total": 7}
    assert body["latest_statistics"] == {GRID: "2026-05-01T06:00:00+02:00", SOLAR: None}
    assert [(s["name"], s["backend"], s["ok"]) for s in body["stores"]] == [("timeseries", "sqlite", True),
                                                                          ("documents", "sqlite", True)]
    checks = {c["name"]: c for c in body["checks"]}
    assert checks["statistics_have_no_gaps"]["passed"] is False
    assert checks["statistics_have_no_gaps"]["checked_at"] == "2026-05-01T07:03:00+02:00"
    assert checks["statistics_have_no_gaps"]["description"] == "3 entity-hours missing"
    assert checks["statistics_have_no_duplicates"]["passed"] is True
    assert body["home_assistant"]["configured"] is False


def test_status_still_answers_when_a_store_is_down(live_api: LiveApi, client: httpx.Client) -> None:
    raw = live_api.state.documents.raw
    for name in ("health", "get_settings", "get_stream_state", "list_entities", "latest_check_results"):
        setattr(raw, name, _broken)
    try:
        response = client.get("/api/status")
    finally:
        for name in ("health", "get_settings", "get_stream_state", "list_entities", "latest_check_results"):
            delattr(raw, name)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [s["ok"] for s in body["stores"]] == [True, False]
    assert "connection refused by the test" in body["stores"][1]["error"]
    assert "unavailable" in body["stream"]["error"]


def test_status_probes_home_assistant_and_caches_the_answer(live_api_factory: Callable[..., LiveApi]) -> None:
    with HomeAssistantSimulator(SimulatedHouse(seed=2, days=1, tz="Europe/Vienna"), token=SIM_TOKEN) as sim:
        live = live_api_factory({"HA_URL": sim.http_url, "HA_TOKEN": SIM_TOKEN})
        client = live.client()
        first = client.get("/api/status").json()["home_assistant"]
        assert first["configured"] is True and first["reachable"] is True
        assert first["ha_version"] and first["time_zone"] == "Europe/Vienna" and first["url"] == sim.http_url
        connections = sim.connections_total
        second = client.get("/api/status").json()["home_assistant"]
        assert second == first and sim.connections_total == connections  # cached, no new connection
        # a different saved token is a different question: probed again, and the answer is "rejected"
        client.put("/api/settings", json={"ha_token": "not-the-right-token-000"})
        third = client.get("/api/status").json()["home_assistant"]
        assert third["reachable"] is False and third["error_code"] == "auth_invalid"
        assert sim.connections_total == connections + 1
