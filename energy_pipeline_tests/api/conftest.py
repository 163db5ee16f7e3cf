"""A live API under real uvicorn on 127.0.0.1:<free port>, with its stores in ``tmp_path``.

The server runs in a thread of the test process, so tests can write data through their own store
objects (the same SQLite files, as Dagster processes would) and swap a store for a failing one. Its
log records propagate to the root logger, so ``caplog`` sees uvicorn's access log too.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from energy_pipeline.api.app import create_app
from energy_pipeline.config import load_config
from energy_pipeline.storage.documents import DocumentStore, EntityRecord
from energy_pipeline.storage.factory import open_documents, open_timeseries
from energy_pipeline.storage.timeseries import StatisticRow, TimeSeriesStore
from energy_pipeline_tests.conftest import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 30
SERVER_ENV = ("HA_URL", "HA_TOKEN", "MONGODB_URI", "QUESTDB_ADDR", "QUESTDB_PG_DSN", "ENERGY_PIPELINE_SECRET_KEY",
              "ENERGY_PIPELINE_TIME_ZONE")


@dataclass
class LiveApi:
    """A running server plus stores opened on the same files for writing test data."""

    url: str
    app: Any
    server: uvicorn.Server
    thread: threading.Thread
    timeseries: TimeSeriesStore
    documents: DocumentStore
    home: Path
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def state(self) -> Any:
        return self.app.state.api

    def client(self, **kwargs: Any) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 15.0), **kwargs)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.timeseries.close()
        self.documents.close()


def start_server(app: Any, home: Path) -> LiveApi:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level="info",
                            access_log=True, timeout_graceful_shutdown=2, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn exited during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 20 s")
        time.sleep(0.02)
    config_ = app.state.api.config
    return LiveApi(url=f"http://127.0.0.1:{port}", app=app, server=server, thread=thread,
                   timeseries=open_timeseries(config_), documents=open_documents(config_), home=home)


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Path]:
    """Set the server's environment (home in ``tmp_path``, no servers configured) plus ``overrides``."""

    def apply(**overrides: str) -> Path:
        home = tmp_path / "home"
        for name in SERVER_ENV:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("ENERGY_PIPELINE_HOME", str(home))
        for name, value in overrides.items():
            monkeypatch.setenv(name, value)
        return home

    return apply


@pytest.fixture
def live_api_factory(api_env: Callable[..., Path]) -> Iterator[Callable[..., LiveApi]]:
    """Start servers with a given environment; each is stopped after the test."""
    started: list[LiveApi] = []

    def make(env: dict[str, str] | None = None, **app_kwargs: Any) -> LiveApi:
        home = api_env(**(env or {}))
        app_kwargs.setdefault("poll_interval_s", 0.1)
        app_kwargs.setdefault("heartbeat_interval_s", 0.5)  # stream readers in tests wake up often
        live = start_server(create_app(load_config(), **app_kwargs), home)
        started.append(live)
        return live

    yield make
    for live in started:
        live.stop()


@pytest.fixture
def live_api(live_api_factory: Callable[..., LiveApi]) -> LiveApi:
    return live_api_factory()


@pytest.fixture
def client(live_api: LiveApi) -> httpx.Client:
    return live_api.client()


# -- test data -------------------------------------------------------------------------------------------

GRID = "sensor.grid_import"
SOLAR = "sensor.solar_production"
PEER = "ha_peer:house_total"


def add_entities(documents: DocumentStore, *records: EntityRecord) -> None:
    documents.upsert_entities(records or [
        EntityRecord(GRID, name="Grid import", unit="kWh", role="grid_import"),
        EntityRecord(SOLAR, name="Solar", unit="kWh", role="solar"),
        EntityRecord(PEER, name="Peer total", unit="kWh", role="device", tracked=False),
    ])


def hourly(entity_id: str, start: datetime, hours: int, change: float | Callable[[int], float] = 1.0,
           source: str = "ha") -> list[StatisticRow]:
    """``hours`` consecutive hourly rows from ``start`` (aware); ``change`` may depend on the index."""
    rows = []
    total = 0.0
    for i in range(hours):
        value = change(i) if callable(change) else change
        total += value
        rows.append(StatisticRow(ts=start.astimezone(UTC) + timedelta(hours=i), entity_id=entity_id, change=value,
                                 sum=total, state=total, source=source))
    return rows


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Capture INFO and up (uvicorn's access log is INFO) so the secrecy tests see every line."""
    caplog.set_level(logging.INFO)


# -- headless Chromium ---------------------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium driven by chromedriver (Debian packages chromium, chromium-driver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMEDRIVER.exists() or shutil.which("chromedriver"), "chromium is installed but chromedriver is not"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                     "--window-size=1280,1600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def page_attrs(driver: Any, css: str, *names: str) -> list[dict[str, str | None]]:
    """Attributes of every element matching ``css``, read in one script (charts redraw at any time)."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map("
        "e => Object.fromEntries(arguments[1].map(n => [n, e.getAttribute(n)])));", css, list(names))
