"""The FastAPI application: charts, settings and status over the two stores, plus the chart page at ``/``.

Stores are opened once per app from the configuration (embedded SQLite or the production servers) and
kept on ``app.state``. Nothing is cached that another process may change: settings, entities and the
time zone are read per request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from energy_pipeline.api.errors import install_error_handlers, redact
from energy_pipeline.api.homeassistant import HAStatusCache
from energy_pipeline.api.routes import entities, insights, operations, readings, settings, statistics, status
from energy_pipeline.api.state import ApiState, GuardedStore
from energy_pipeline.config import Config, load_config
from energy_pipeline.storage.factory import open_documents, open_timeseries

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"

DESCRIPTION = """Home energy from Home Assistant: consumption per calendar bucket (in the house's time zone,
DST-correct), cost from a versioned time-of-use tariff, insights (top consumers, peaks, breakdown, heatmap,
baseload, self-sufficiency), live readings, settings, pipeline status, and syncs run through Dagster.

Times are ISO 8601; a time without offset is read in the house's time zone. Errors are
`{"error": {"code", "message"}}`."""


def create_app(config: Config | None = None, *, poll_interval_s: float = 0.5, heartbeat_interval_s: float = 15.0,
               ha_timeout_s: float = 5.0, ha_status_ttl_s: float = 30.0, dagster_timeout_s: float = 10.0) -> FastAPI:
    """Build the app; ``config`` defaults to the environment (:func:`load_config`)."""
    config = config or load_config()
    timeseries = open_timeseries(config)
    documents = open_documents(config)
    state = ApiState(
        config=config,
        timeseries=GuardedStore(timeseries, f"time-series store ({timeseries.backend})"),  # type: ignore[arg-type]
        documents=GuardedStore(documents, f"document store ({documents.backend})"),  # type: ignore[arg-type]
        poll_interval_s=poll_interval_s, heartbeat_interval_s=heartbeat_interval_s,
        ha_timeout_s=ha_timeout_s, ha_status_ttl_s=ha_status_ttl_s, dagster_timeout_s=dagster_timeout_s,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for store in (timeseries, documents):
            try:
                store.ensure_schema()
            except Exception as exc:  # start anyway: requests answer 503 naming the store until it is back
                log.warning("%s store (%s) not ready at start-up: %s", type(store).__name__, store.backend,
                            redact(str(exc), (config.mongodb_uri or "", config.questdb_pg_dsn or "")))
        yield
        for store in (timeseries, documents):
            try:
                store.close()
            except Exception as exc:  # closing is best effort
                log.debug("closing %s failed: %s", store.backend, exc)

    app = FastAPI(title="energy_pipeline API", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.api = state
    app.state.ha_status = HAStatusCache(ttl_s=ha_status_ttl_s, timeout_s=min(ha_timeout_s, 3.0))
    install_error_handlers(app, state.known_secrets)
    for module in (entities, statistics, readings, settings, status, insights, operations):
        app.include_router(module.router)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return app
