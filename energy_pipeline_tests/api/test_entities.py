"""Entities over real HTTP: listing with filters, tracking, ids with dots and colons."""

from __future__ import annotations

import httpx

from energy_pipeline_tests.api.conftest import GRID, PEER, SOLAR, LiveApi, add_entities


def test_lists_entities_with_filters(live_api: LiveApi, client: httpx.Client) -> None:
    add_entities(live_api.documents)
    everything = client.get("/api/entities").json()["entities"]
    assert [e["entity_id"] for e in everything] == [PEER, GRID, SOLAR]
    assert everything[1] | {"created_at": None, "updated_at": None} == {
        "entity_id": GRID, "name": "Grid import", "unit": "kWh", "role": "grid_import", "tracked": True,
        "source": None, "has_sum": True, "created_at": None, "updated_at": None}
    assert [e["entity_id"] for e in client.get("/api/entities", params={"role": "solar"}).json()["entities"]] == [SOLAR]
    untracked = client.get("/api/entities", params={"tracked": "false"}).json()["entities"]
    assert [e["entity_id"] for e in untracked] == [PEER]
    tracked = client.get("/api/entities", params={"tracked": "true", "role": "grid_import"}).json()["entities"]
    assert [e["entity_id"] for e in tracked] == [GRID]


def test_unknown_role_is_a_json_422(live_api: LiveApi, client: httpx.Client) -> None:
    response = client.get("/api/entities", params={"role": "nuclear"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "role" in error["message"]


def test_put_tracked_with_dots_and_colons_in_the_id(live_api: LiveApi, client: httpx.Client) -> None:
    add_entities(live_api.documents)
    response = client.put(f"/api/entities/{PEER}", json={"tracked": True})
    assert response.status_code == 200, response.text
    assert response.json()["entity_id"] == PEER and response.json()["tracked"] is True
    assert live_api.documents.get_entity(PEER).tracked is True
    response = client.put(f"/api/entities/{GRID}", json={"tracked": False})
    assert response.json()["tracked"] is False
    assert [e.entity_id for e in live_api.documents.list_entities(tracked=False)] == [GRID]


def test_put_unknown_entity_is_404(live_api: LiveApi, client: httpx.Client) -> None:
    response = client.put("/api/entities/sensor.nope", json={"tracked": True})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_entity"
    assert "sensor.nope" in response.json()["error"]["message"]


def test_put_needs_a_boolean(live_api: LiveApi, client: httpx.Client) -> None:
    add_entities(live_api.documents)
    for body in ({"tracked": "maybe"}, {}, {"tracked": True, "extra": 1}):
        response = client.put(f"/api/entities/{GRID}", json=body)
        assert response.status_code == 422, body
        assert set(response.json()["error"]) >= {"code", "message"}
    response = client.put(f"/api/entities/{GRID}", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
