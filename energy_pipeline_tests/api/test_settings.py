"""Settings over real HTTP: masked token, validation, immediate effect, and the connection test against the
Home Assistant simulator (success, bad token, unreachable, bad URL, timeout)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from energy_pipeline.simulator.house import SimulatedHouse
from energy_pipeline.simulator.server import HomeAssistantSimulator
from energy_pipeline_tests.api.conftest import GRID, LiveApi, add_entities, hourly
from energy_pipeline_tests.conftest import free_port

SIM_TOKEN = "simulator-api-test-token-0123456789"
SECRET_KEY = "api-tests-secret-key-0123456789abcdef"


@pytest.fixture(scope="module")
def simulator() -> Iterator[HomeAssistantSimulator]:
    with HomeAssistantSimulator(SimulatedHouse(seed=5, days=2, tz="Europe/Berlin"), token=SIM_TOKEN) as sim:
        yield sim


def test_defaults_and_environment(live_api_factory: Callable[..., LiveApi]) -> None:
    bare = live_api_factory().client().get("/api/settings").json()
    assert bare["ha_url"] is None and bare["ha_token_configured"] is False
    assert bare["effective_time_zone"] == "UTC" and bare["tariff"] is None
    env = live_api_factory({"HA_URL": "http://ha.local:8123", "HA_TOKEN": "env-token-abcdef"})
    shown = env.client().get("/api/settings")
    body = shown.json()
    assert (body["ha_url"], body["ha_url_source"]) == ("http://ha.local:8123", "environment")
    assert (body["ha_token_configured"], body["ha_token_source"]) == (True, "environment")
    assert "env-token-abcdef" not in shown.text


def test_put_saves_encrypts_and_removes(live_api_factory: Callable[..., LiveApi]) -> None:
    live = live_api_factory({"ENERGY_PIPELINE_SECRET_KEY": SECRET_KEY, "HA_URL": "http://env.local:8123"})
    client = live.client()
    response = client.put("/api/settings", json={"ha_url": "http://saved.local:8123", "ha_token": "saved-token-xyz"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ha_url"] == "http://saved.local:8123" and body["ha_url_source"] == "settings"
    assert body["ha_token_configured"] and body["ha_token_encrypted"] and body["secret_key_configured"]
    assert "saved-token-xyz" not in response.text
    stored = live.documents.get_settings()["ha_token"]
    assert stored.startswith("fernet:") and "saved-token-xyz" not in stored
    # omitted fields stay; null removes the saved value and the environment applies again
    body = client.put("/api/settings", json={"time_zone": "Europe/Paris"}).json()
    assert body["ha_url"] == "http://saved.local:8123" and body["effective_time_zone"] == "Europe/Paris"
    body = client.put("/api/settings", json={"ha_url": None, "ha_token": ""}).json()
    assert body["ha_url"] == "http://env.local:8123" and body["ha_url_source"] == "environment"
    assert body["ha_token_configured"] is False


def test_put_validation_errors(live_api: LiveApi, client: httpx.Client) -> None:
    cases = [
        ({"ha_url": "homeassistant.local"}, 400, "invalid_setting", "ha_url"),
        ({"time_zone": "Mars/Olympus"}, 400, "invalid_setting", "time_zone"),
        ({"ha_url": "http://["}, 400, "invalid_setting", "IPv6"),
        ({"time_zone": "../../etc/passwd"}, 400, "invalid_setting", "time_zone"),
        ({"tariff": {"currency": "EUR", "versions": [{"effective_from": "2026-01-01", "prices": [
            {"start": "07:00", "end": "22:00", "price_per_kwh": 0.3}]}]}}, 400, "invalid_tariff",
         "no price for mon 00:00-07:00, 22:00-24:00"),
        ({"tariff": "cheap"}, 422, "validation_error", "tariff"),
        ({"colour": "blue"}, 422, "validation_error", "colour"),
        ({"ha_token": 12345}, 422, "validation_error", "ha_token"),
    ]
    for body, status, code, text in cases:
        response = client.put("/api/settings", json=body)
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == code and text in error["message"], (body, error)
    assert live_api.documents.get_settings() == {}


def test_time_zone_and_tariff_take_effect_without_restart(live_api: LiveApi, client: httpx.Client) -> None:
    add_entities(live_api.documents)
    from datetime import UTC, datetime

    live_api.timeseries.write_statistics(hourly(GRID, datetime(2026, 3, 28, 12, tzinfo=UTC), 48))
    params = {"start": "2026-03-29", "end": "2026-03-30", "period": "day"}
    assert client.get(f"/api/statistics/{GRID}", params=params).json()["buckets"][0]["hours"] == 24  # UTC
    client.put("/api/settings", json={"time_zone": "Europe/Berlin"})
    body = client.get(f"/api/statistics/{GRID}", params=params).json()
    assert body["time_zone"] == "Europe/Berlin" and body["buckets"][0]["hours"] == 23
    client.put("/api/settings", json={"tariff": {"currency": "CHF", "versions": [{"effective_from": "2026-01-01",
               "prices": [{"start": "00:00", "end": "24:00", "price_per_kwh": 0.5}]}]}})
    body = client.get(f"/api/statistics/{GRID}", params=params).json()
    assert body["currency"] == "CHF" and body["total"]["cost"] == pytest.approx(23 * 0.5)
    saved = client.get("/api/settings").json()["tariff"]
    assert saved["versions"][0] == {"effective_from": "2026-01-01", "daily_charge": 0.0,
                                    "prices": [{"start": "00:00", "end": "24:00", "price_per_kwh": 0.5}]}


# -- connection test --------------------------------------------------------------------------------------

def test_connection_with_the_saved_settings(live_api: LiveApi, client: httpx.Client,
                                            simulator: HomeAssistantSimulator) -> None:
    not_configured = client.post("/api/settings/test-connection")
    assert not_configured.status_code == 400
    assert not_configured.json()["ok"] is False and not_configured.json()["error_code"] == "not_configured"
    client.put("/api/settings", json={"ha_url": simulator.http_url, "ha_token": SIM_TOKEN})
    response = client.post("/api/settings/test-connection")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True and body["ha_version"] and body["time_zone"] == "Europe/Berlin"
    assert body["error"] is None and SIM_TOKEN not in response.text
    # the saved token goes to the saved URL only: another URL needs its own token
    elsewhere = client.post("/api/settings/test-connection", json={"ha_url": "http://127.0.0.1:9"})
    assert elsewhere.status_code == 400 and elsewhere.json()["error_code"] == "not_configured"
    assert "only sent to the saved URL" in elsewhere.json()["error"]
    same = client.post("/api/settings/test-connection", json={"ha_url": simulator.http_url})
    assert same.status_code == 200 and same.json()["ok"] is True


def test_connection_outcomes_are_distinguishable(live_api_factory: Callable[..., LiveApi],
                                                 simulator: HomeAssistantSimulator) -> None:
    client = live_api_factory(ha_timeout_s=0.5).client()
    ok = client.post("/api/settings/test-connection", json={"ha_url": simulator.url, "ha_token": SIM_TOKEN})
    assert ok.status_code == 200 and ok.json()["ok"] is True
    outcomes = {
        "auth_invalid": ({"ha_url": simulator.url, "ha_token": "wrong-token-123456"}, 401, "rejected"),
        "unreachable": ({"ha_url": f"http://127.0.0.1:{free_port()}", "ha_token": SIM_TOKEN}, 502, "refused"),
        "invalid_url": ({"ha_url": "ftp://example.org", "ha_token": SIM_TOKEN}, 400, "invalid Home Assistant URL"),
    }
    for code, (body, status, text) in outcomes.items():
        response = client.post("/api/settings/test-connection", json=body)
        assert response.status_code == status, (code, response.text)
        result = response.json()
        assert result["ok"] is False and result["error_code"] == code, result
        assert text in result["error"], result
        assert SIM_TOKEN not in response.text and "wrong-token-123456" not in response.text
    broken = client.post("/api/settings/test-connection", json={"ha_url": "http://[", "ha_token": SIM_TOKEN})
    assert broken.status_code == 400 and broken.json()["error_code"] == "invalid_url"
    simulator.set_reply_delay(2.0)
    try:
        slow = client.post("/api/settings/test-connection", json={"ha_url": simulator.url, "ha_token": SIM_TOKEN})
    finally:
        simulator.set_reply_delay(0.0)
    assert slow.status_code == 504 and slow.json()["error_code"] == "timeout", slow.text
    assert client.post("/api/settings/test-connection", json={"url": "x"}).status_code == 422


def test_undecryptable_saved_token_is_reported(live_api_factory: Callable[..., LiveApi]) -> None:
    live = live_api_factory({"ENERGY_PIPELINE_SECRET_KEY": SECRET_KEY})
    live.client().put("/api/settings", json={"ha_url": "http://ha.local:8123", "ha_token": "tok-abcdef"})
    other = live_api_factory({"ENERGY_PIPELINE_SECRET_KEY": "another-secret-key-0123456789"})
    response = other.client().post("/api/settings/test-connection")
    assert response.status_code == 400
    assert response.json()["error_code"] == "secret_key"
    assert "ENERGY_PIPELINE_SECRET_KEY" in response.json()["error"]
