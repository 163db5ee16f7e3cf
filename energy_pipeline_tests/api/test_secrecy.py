"""The Home Assistant token never appears in a response body or a log line, whatever the route and outcome."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from energy_pipeline.simulator.house import SimulatedHouse
from energy_pipeline.simulator.server import HomeAssistantSimulator
from energy_pipeline_tests.api.conftest import GRID, LiveApi, add_entities

ENV_TOKEN = "env-token-Zq8vN3kLm0pX"
SAVED_TOKEN = "saved-token-Ye7tR2wQs9cV"
WRONG_TOKEN = "wrong-token-Hx4bJ6uDf1gA"
SECRET_KEY = "secrecy-test-secret-key-0123456789"


def test_token_never_in_responses_or_logs(live_api_factory: Callable[..., LiveApi],
                                          caplog: pytest.LogCaptureFixture) -> None:
    with HomeAssistantSimulator(SimulatedHouse(seed=4, days=1), token=SAVED_TOKEN) as sim:
        live = live_api_factory({"HA_URL": sim.http_url, "HA_TOKEN": ENV_TOKEN,
                                 "ENERGY_PIPELINE_SECRET_KEY": SECRET_KEY})
        add_entities(live.documents)
        client = live.client()
        responses: list[httpx.Response] = []

        def call(method: str, url: str, **kwargs: object) -> httpx.Response:
            response = client.request(method, url, **kwargs)
            responses.append(response)
            return response

        call("GET", "/api/settings")
        call("GET", "/api/status")  # env token is wrong for the simulator: an auth failure is reported
        call("POST", "/api/settings/test-connection")
        assert call("PUT", "/api/settings", json={"ha_token": SAVED_TOKEN}).status_code == 200
        assert call("POST", "/api/settings/test-connection").json()["ok"] is True
        call("POST", "/api/settings/test-connection", json={"ha_token": WRONG_TOKEN})
        call("POST", "/api/settings/test-connection", json={"ha_url": "ftp://nowhere", "ha_token": WRONG_TOKEN})
        call("POST", "/api/settings/test-connection", json={"ha_url": "http://127.0.0.1:9", "ha_token": WRONG_TOKEN})
        call("PUT", "/api/settings", json={"ha_token": WRONG_TOKEN, "ha_url": "not a url"})
        call("PUT", "/api/settings", json={"ha_token": WRONG_TOKEN, "unknown": True})
        call("PUT", "/api/settings", json={"ha_token": [WRONG_TOKEN]})
        call("PUT", "/api/settings", content=f'{{"ha_token": "{WRONG_TOKEN}"'.encode(),
             headers={"Content-Type": "application/json"})
        call("GET", "/api/settings")
        call("GET", "/api/status")
        call("GET", "/api/health")
        call("GET", "/api/entities")
        call("PUT", f"/api/entities/{GRID}", json={"tracked": True})
        call("GET", f"/api/statistics/{GRID}")
        call("POST", "/api/statistics/compare", json={"entity_ids": [GRID]})
        call("GET", "/api/statistics/export.csv", params={"entity_ids": GRID})
        call("GET", f"/api/readings/{GRID}")
        call("GET", "/openapi.json")
        call("GET", "/")

    assert len(responses) == 23
    stored = live.documents.get_settings()["ha_token"]
    for response in responses:
        for secret in (ENV_TOKEN, SAVED_TOKEN, WRONG_TOKEN, SECRET_KEY, stored):
            assert secret not in response.text, (response.request.url, response.text)
    log_text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records) + caplog.text
    assert "uvicorn.access" in log_text  # the access log was captured
    for secret in (ENV_TOKEN, SAVED_TOKEN, WRONG_TOKEN, SECRET_KEY):
        assert secret not in log_text
