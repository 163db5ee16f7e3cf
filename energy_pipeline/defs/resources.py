"""Dagster resources, chosen by environment: production servers when configured, embedded otherwise."""

from __future__ import annotations

from functools import cached_property

import dagster as dg

from energy_pipeline.config import Config, load_config
from energy_pipeline.storage.documents import DocumentStore
from energy_pipeline.storage.factory import open_documents, open_timeseries
from energy_pipeline.storage.timeseries import TimeSeriesStore


class TimeSeriesResource(dg.ConfigurableResource):
    """Hourly statistics, readings and daily summaries: QuestDB, or SQLite under ``home``."""

    questdb_addr: str | None = None
    questdb_pg_dsn: str | None = None
    home: str = ".energy_pipeline"

    @cached_property
    def store(self) -> TimeSeriesStore:
        store = open_timeseries(Config(questdb_addr=self.questdb_addr, questdb_pg_dsn=self.questdb_pg_dsn,
                                       home=_path(self.home)))
        store.ensure_schema()
        return store


class DocumentsResource(dg.ConfigurableResource):
    """Settings, entities, stream state and sync log: MongoDB, or SQLite under ``home``."""

    mongodb_uri: str | None = None
    home: str = ".energy_pipeline"

    @cached_property
    def store(self) -> DocumentStore:
        store = open_documents(Config(mongodb_uri=self.mongodb_uri, home=_path(self.home)))
        store.ensure_schema()
        return store


def _path(value: str):
    from pathlib import Path

    return Path(value)


def build_resources(config: Config | None = None) -> dict[str, dg.ConfigurableResource]:
    """The one place that decides local vs production: servers set in the environment win."""
    config = config or load_config()
    home = str(config.home)
    if config.questdb_addr:
        timeseries = TimeSeriesResource(questdb_addr=dg.EnvVar("QUESTDB_ADDR"),
                                        questdb_pg_dsn=dg.EnvVar("QUESTDB_PG_DSN"), home=home)
    else:
        timeseries = TimeSeriesResource(home=home)
    documents = (DocumentsResource(mongodb_uri=dg.EnvVar("MONGODB_URI"), home=home)
                 if config.mongodb_uri else DocumentsResource(home=home))
    return {"timeseries": timeseries, "documents": documents}
