"""The insights on the chart page and the settings view, in headless Chromium against the live API (and, for
the connection test, the Home Assistant simulator)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from energy_pipeline.simulator.house import HA_VERSION, SimulatedHouse
from energy_pipeline.simulator.server import HomeAssistantSimulator
from energy_pipeline.storage.documents import EntityRecord
from energy_pipeline_tests.api.conftest import (
    CHROMIUM,
    GRID,
    PEER,
    SOLAR,
    WAIT_S,
    LiveApi,
    add_entities,
    hourly,
    page_attrs,
)
from energy_pipeline_tests.conftest import free_port

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed "
                                "(apt-get install chromium chromium-driver); CI always installs it")

SIM_TOKEN = "settings-page-token-0123456789abcdef"
TZ = ZoneInfo("Europe/Berlin")
EXPORT, FRIDGE, OVEN = "sensor.grid_export", "sensor.fridge_energy", "sensor.oven_energy"


@pytest.fixture(scope="module")
def simulator() -> Iterator[HomeAssistantSimulator]:
    house = SimulatedHouse(seed=6, days=1, tz="Europe/Berlin", ensure_dst_in_history=False)
    with HomeAssistantSimulator(house, token=SIM_TOKEN) as sim:
        yield sim


def waiter(driver: Any) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, ignored_exceptions=[StaleElementReferenceException])


def debug_on_failure(driver: Any, tmp_path: Path, name: str) -> None:
    driver.save_screenshot(str(tmp_path / f"{name}.png"))
    print("browser log:", driver.get_log("browser"))


def text(driver: Any, element_id: str) -> str:
    return driver.execute_script("return document.getElementById(arguments[0]).textContent", element_id)


def fill(driver: Any, element_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, element_id)
    field.clear()
    if value:
        field.send_keys(value)


def test_insights_are_shown_on_the_chart_page(live_api: LiveApi, browser: Any, tmp_path: Path) -> None:
    """Last week: grid import 1.0 kWh every hour, fridge 0.2, oven 0.1, and one sunny hour (Wednesday 12:00)
    exporting 3.0 kWh with no solar meter: the rest of that hour is 1.0 - 3.0 - 0.3 = -2.3."""
    from selenium.webdriver.common.by import By

    live_api.documents.update_settings({"ha_time_zone": "Europe/Berlin"})
    live_api.documents.upsert_entities([
        EntityRecord(GRID, "Grid import", "kWh", "grid_import"), EntityRecord(EXPORT, "Grid export", "kWh",
                                                                              "grid_export"),
        EntityRecord(FRIDGE, "Fridge", "kWh", "device"), EntityRecord(OVEN, "Oven", "kWh", "device")])
    today = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = (today - timedelta(days=today.weekday() + 7)).replace(tzinfo=None)
    start = monday.replace(tzinfo=TZ).astimezone(UTC)
    end = (monday + timedelta(days=7)).replace(tzinfo=TZ).astimezone(UTC)
    hours = int((end - start) / timedelta(hours=1))
    sunny = (monday + timedelta(days=2, hours=12)).replace(tzinfo=TZ).astimezone(UTC)
    live_api.timeseries.write_statistics([
        *hourly(GRID, start, hours, 1.0), *hourly(FRIDGE, start, hours, 0.2), *hourly(OVEN, start, hours, 0.1),
        *hourly(EXPORT, start, hours, lambda i: 3.0 if start + timedelta(hours=i) == sunny else 0.0)])

    driver = browser
    wait = waiter(driver)
    driver.get(live_api.url + "/")
    wait.until(lambda d: page_attrs(d, "body", "data-ready")[0]["data-ready"] == "true")
    try:
        driver.find_element(By.CSS_SELECTOR, "#insights-period option[value='week:-1']").click()
        wait.until(lambda d: page_attrs(d, "#top-consumers", "data-rows") == [{"data-rows": "2"}] and
                   page_attrs(d, "#heatmap", "data-cells") == [{"data-cells": "168"}])
        rows = page_attrs(driver, "#top-consumers tbody tr", "data-entity-id", "data-share")
        house = hours * 1.0 - 3.0
        assert [r["data-entity-id"] for r in rows] == [FRIDGE, OVEN]
        assert float(rows[0]["data-share"] or 0) == pytest.approx(0.2 * hours / house, abs=1e-5)
        cells = page_attrs(driver, "#heatmap rect.cell", "data-weekday", "data-hour", "data-value", "data-samples")
        by_slot = {(c["data-weekday"], c["data-hour"]): c for c in cells}
        assert len(cells) == 168 and by_slot[("0", "3")]["data-value"] == "1"
        assert by_slot[("2", "12")]["data-value"] == "-2"  # 1.0 - 3.0 export, averaged over one Wednesday
        parts = page_attrs(driver, "#breakdown rect.part", "data-part", "data-value")
        assert [p["data-part"] for p in parts] == [FRIDGE, OVEN, "rest"]
        assert float(parts[2]["data-value"] or 0) == pytest.approx(house - 0.3 * hours, abs=1e-5)
        breakdown = page_attrs(driver, "#breakdown", "data-rest-negative", "data-negative-hours")[0]
        assert breakdown == {"data-rest-negative": "false", "data-negative-hours": "1"}
        assert driver.find_element(By.ID, "breakdown-warning").is_displayed()
        assert "1 hour(s)" in text(driver, "breakdown-warning") and "-2.3" in text(driver, "breakdown-warning")
        assert float(page_attrs(driver, "#baseload", "data-kw")[0]["data-kw"] or 0) == 1.0
        assert "kW always on" in text(driver, "baseload")
    except Exception:
        debug_on_failure(driver, tmp_path, "insights")
        raise


def test_settings_view(live_api_factory: Callable[..., LiveApi], simulator: HomeAssistantSimulator, browser: Any,
                       tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    live_api = live_api_factory({"DAGSTER_GRAPHQL_URL": f"http://127.0.0.1:{free_port()}/graphql"})
    add_entities(live_api.documents)  # grid import and solar tracked, a peer device untracked
    live_api.documents.update_settings({"ha_time_zone": "Europe/Berlin"})
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    live_api.timeseries.write_statistics([*hourly(GRID, now - timedelta(days=3), 72, 0.5),
                                          *hourly(SOLAR, now - timedelta(days=3), 72, 0.25)])
    api = live_api.client()

    driver = browser
    wait = waiter(driver)

    def bars() -> set[str | None]:
        return {b["data-entity-id"] for b in page_attrs(driver, "#consumption-chart rect.bar", "data-entity-id")}

    def click(element_id: str) -> None:
        driver.find_element(By.ID, element_id).click()

    driver.get(live_api.url + "/")
    wait.until(lambda d: page_attrs(d, "body", "data-ready")[0]["data-ready"] == "true")
    try:
        assert bars() == {GRID, SOLAR}
        click("show-settings")
        wait.until(lambda d: page_attrs(d, "body", "data-view-ready")[0]["data-view-ready"] == "settings")
        assert driver.find_element(By.ID, "settings-view").is_displayed()
        assert not driver.find_element(By.ID, "charts-view").is_displayed()
        assert page_attrs(driver, "#ha-token-state", "data-configured") == [{"data-configured": "false"}]

        # save URL and token: the token field is write-only
        fill(driver, "ha-url", simulator.http_url)
        fill(driver, "ha-token", SIM_TOKEN)
        click("save-connection")
        wait.until(lambda d: page_attrs(d, "#ha-token-state", "data-configured") == [{"data-configured": "true"}])
        assert "saved here" in text(driver, "ha-token-state")
        assert driver.find_element(By.ID, "ha-token").get_attribute("value") == ""
        saved = api.get("/api/settings").json()
        assert (saved["ha_url"], saved["ha_token_configured"], saved["ha_token_source"]) == (
            simulator.http_url, True, "settings")
        assert SIM_TOKEN not in driver.page_source

        # test the connection: HA's version, or the exact error
        click("test-connection")
        wait.until(lambda d: page_attrs(d, "#connection-result", "data-ok") == [{"data-ok": "true"}])
        assert text(driver, "connection-result").startswith(f"Connected: Home Assistant {HA_VERSION}")
        fill(driver, "ha-token", "wrong-token-0123456789")
        click("test-connection")
        wait.until(lambda d: page_attrs(d, "#connection-result", "data-ok") == [{"data-ok": "false"}])
        assert text(driver, "connection-result").startswith("auth_invalid: Home Assistant rejected the access token")
        fill(driver, "ha-token", "")

        # the entities with their roles; untracking one takes it off the charts
        rows = page_attrs(driver, "#entity-table tbody tr", "data-entity-id", "data-tracked")
        assert rows == [{"data-entity-id": PEER, "data-tracked": "false"},
                        {"data-entity-id": GRID, "data-tracked": "true"},
                        {"data-entity-id": SOLAR, "data-tracked": "true"}]
        roles = driver.execute_script("return [...document.querySelectorAll('#entity-table tbody tr')].map("
                                      "r => r.children[2].textContent)")
        assert roles == ["device", "grid_import", "solar"]
        driver.find_element(By.CSS_SELECTOR, f"#entity-table tr[data-entity-id='{SOLAR}'] input.tracked-toggle").click()
        wait.until(lambda d: page_attrs(d, f"#entity-table tr[data-entity-id='{SOLAR}']", "data-tracked") == [
            {"data-tracked": "false"}])
        assert api.get("/api/entities", params={"tracked": False}).json()["entities"][-1]["entity_id"] == SOLAR
        click("show-charts")
        wait.until(lambda d: bars() == {GRID})
        assert page_attrs(driver, f"#entity-list input[data-entity-id='{SOLAR}']", "checked") == [{"checked": None}]

        # the time-zone override
        click("show-settings")
        wait.until(lambda d: page_attrs(d, "body", "data-view-ready")[0]["data-view-ready"] == "settings")
        fill(driver, "time-zone-input", "Europe/Paris")
        click("save-time-zone")
        wait.until(lambda d: page_attrs(d, "#time-zone-state", "data-zone") == [{"data-zone": "Europe/Paris"}])
        assert api.get("/api/settings").json()["time_zone"] == "Europe/Paris"
        fill(driver, "time-zone-input", "Mars/Olympus")
        click("save-time-zone")
        wait.until(lambda d: page_attrs(d, "#settings-message", "data-kind") == [{"data-kind": "error"}])
        assert "Mars/Olympus" in text(driver, "settings-message")

        # the tariff editor: a whole-day price, then an invalid one with the API's exact complaint
        fill(driver, "tariff-currency", "EUR")
        block = "#tariff-versions .tariff-version"
        driver.execute_script(f"document.querySelector('{block} .version-from').value = '2020-01-01'")
        fill_css = driver.find_element
        fill_css(By.CSS_SELECTOR, f"{block} .version-daily").send_keys("0.4")
        price = fill_css(By.CSS_SELECTOR, f"{block} .window-price")
        price.send_keys("0.3")
        click("save-tariff")
        wait.until(lambda d: page_attrs(d, "#tariff-state", "data-saved") == [{"data-saved": "true"}])
        tariff = api.get("/api/settings").json()["tariff"]
        assert tariff == {"currency": "EUR", "versions": [{"effective_from": "2020-01-01", "daily_charge": 0.4,
                          "prices": [{"start": "00:00", "end": "00:00", "price_per_kwh": 0.3}]}]}
        end = fill_css(By.CSS_SELECTOR, f"{block} .window-end")
        end.clear()
        end.send_keys("07:00")
        click("save-tariff")
        wait.until(lambda d: page_attrs(d, "#settings-message", "data-kind") == [{"data-kind": "error"}] and
                   "invalid_tariff" in text(d, "settings-message"))
        assert "no price for mon 07:00-24:00" in text(driver, "settings-message")
        assert api.get("/api/settings").json()["tariff"] == tariff  # unchanged
        click("remove-tariff")
        wait.until(lambda d: page_attrs(d, "#tariff-state", "data-saved") == [{"data-saved": "false"}])
        assert api.get("/api/settings").json()["tariff"] is None

        # without a Dagster webserver the pipeline panel says so, in words
        wait.until(lambda d: "is not reachable" in text(d, "sync-log"))
        assert SIM_TOKEN not in driver.page_source
    except Exception:
        debug_on_failure(driver, tmp_path, "settings")
        raise
