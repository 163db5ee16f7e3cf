"""The chart page in headless Chromium: bars drawn from stored statistics, and a reading stored after the
page loaded showing up in the live chart through the server-sent event stream."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from energy_pipeline.storage.timeseries import Reading
from energy_pipeline_tests.api.conftest import CHROMIUM, GRID, SOLAR, WAIT_S, LiveApi, add_entities, hourly

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed "
                                "(apt-get install chromium chromium-driver); CI always installs it")


def test_page_and_its_assets_are_served_without_any_external_url(live_api: LiveApi, client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/app.css").text):
        urls = re.findall(r"https?://[^\s\"')]+", text)
        assert all(u.startswith("http://www.w3.org/") for u in urls), urls  # only the SVG namespace


def test_bars_render_and_live_readings_arrive(live_api: LiveApi, browser: object, tmp_path: Path) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    add_entities(live_api.documents)
    live_api.documents.update_settings({"ha_time_zone": "Europe/Berlin"})
    client = live_api.client()
    client.put("/api/settings", json={"tariff": {"currency": "EUR", "versions": [{
        "effective_from": "2020-01-01", "daily_charge": 0.5,
        "prices": [{"start": "00:00", "end": "00:00", "price_per_kwh": 0.3}]}]}})
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    live_api.timeseries.write_statistics(hourly(GRID, now - timedelta(days=9), 24 * 9, 0.5))
    live_api.timeseries.write_statistics(hourly(SOLAR, now - timedelta(days=3), 24 * 3, 1.0))
    live_api.timeseries.write_readings([Reading(datetime.now(UTC) - timedelta(minutes=10 - i), GRID, 1000.0 + i)
                                        for i in range(5)])
    live_api.documents.update_stream_state({"status": "streaming", "connected_since": now})
    live_api.documents.record_check_result("statistics_have_no_gaps", {"passed": True, "checked_at": now,
                                                                       "description": "no gaps"})

    driver = browser
    wait = WebDriverWait(driver, WAIT_S, ignored_exceptions=[StaleElementReferenceException])

    def attrs(css: str, *names: str) -> list[dict[str, str | None]]:
        """Attributes of every element matching ``css``, read in one script (charts redraw at any time)."""
        return driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map("
            "e => Object.fromEntries(arguments[1].map(n => [n, e.getAttribute(n)])));", css, list(names))

    driver.get(live_api.url + "/")
    wait.until(lambda d: attrs("body", "data-ready")[0]["data-ready"] == "true")
    try:
        bars = attrs("#consumption-chart rect.bar", "data-entity-id", "data-bucket-start", "data-value", "height")
        # day period over the last 7 local days; both tracked entities are preselected
        grid_bars = [b for b in bars if b["data-entity-id"] == GRID]
        solar_bars = [b for b in bars if b["data-entity-id"] == SOLAR]
        assert len(grid_bars) == 7, grid_bars
        assert 3 <= len(solar_bars) <= 4
        full_day = [float(b["data-value"]) for b in grid_bars][1:-1]
        assert all(v in (11.5, 12.0, 12.5) for v in full_day), full_day  # 24 (23/25 on a DST day) x 0.5 kWh
        assert all(float(b["height"]) > 0 for b in bars)
        assert driver.find_element(By.ID, "cost-section").is_displayed()
        cost_bars = attrs("#cost-chart rect.bar", "data-entity-id")
        assert cost_bars and {b["data-entity-id"] for b in cost_bars} == {GRID}  # solar production is not priced
        assert attrs("#stream-status", "data-status") == [{"data-status": "streaming"}]
        assert attrs("#check-status li[data-check='statistics_have_no_gaps']", "data-passed") == [
            {"data-passed": "true"}]
        csv_link = driver.find_element(By.ID, "csv-link").get_attribute("href")
        assert "/api/statistics/export.csv?" in csv_link and "period=day" in csv_link
        assert httpx.get(csv_link).text.startswith("bucket_start,entity_id,consumption,cost")

        line = f"#live-chart path.line[data-entity-id='{GRID}']"
        wait.until(lambda d: attrs(line, "data-points") == [{"data-points": "5"}])
        wait.until(lambda d: attrs("#live-state", "data-state")[0]["data-state"] == "open")

        live_api.timeseries.write_readings([Reading(datetime.now(UTC), GRID, 1234.5)])
        wait.until(lambda d: attrs(line, "data-last-value", "data-points") == [
            {"data-last-value": "1234.5", "data-points": "6"}])

        # choosing another period redraws from the API: week bars start on Monday
        driver.find_element(By.CSS_SELECTOR, "#period option[value='week']").click()

        def weekly(d: object) -> bool:
            starts = [b["data-bucket-start"] for b in attrs("#consumption-chart rect.bar", "data-bucket-start")]
            return bool(starts) and all(datetime.fromisoformat(s).weekday() == 0 for s in starts)

        wait.until(weekly)
        assert attrs("#error", "hidden") == [{"hidden": ""}]
    except Exception:
        driver.save_screenshot(str(tmp_path / "chart-page.png"))
        print("browser log:", driver.get_log("browser"))
        raise
