"""Backend choice: production servers when configured, embedded SQLite otherwise."""

from __future__ import annotations

import logging

from energy_pipeline.config import Config
from energy_pipeline.storage.documents import DocumentStore
from energy_pipeline.storage.timeseries import TimeSeriesStore

log = logging.getLogger(__name__)


def open_timeseries(config: Config) -> TimeSeriesStore:
    """QuestDB when ``QUESTDB_ADDR`` is set, else SQLite under ``ENERGY_PIPELINE_HOME``."""
    if config.questdb_addr:
        from energy_pipeline.storage.questdb import QuestDBTimeSeriesStore

        store: TimeSeriesStore = QuestDBTimeSeriesStore(config.questdb_addr, config.questdb_pg_dsn or "")
    else:
        from energy_pipeline.storage.sqlite_timeseries import SQLiteTimeSeriesStore

        store = SQLiteTimeSeriesStore(config.home / "timeseries.sqlite3")
    log.info("time-series store: %s", store.backend)
    return store


def open_documents(config: Config) -> DocumentStore:
    """MongoDB when ``MONGODB_URI`` is set, else SQLite under ``ENERGY_PIPELINE_HOME``."""
    if config.mongodb_uri:
        from energy_pipeline.storage.mongo import MongoDocumentStore

        store: DocumentStore = MongoDocumentStore(config.mongodb_uri)
    else:
        from energy_pipeline.storage.sqlite_documents import SQLiteDocumentStore

        store = SQLiteDocumentStore(config.home / "documents.sqlite3")
    log.info("document store: %s", store.backend)
    return store
