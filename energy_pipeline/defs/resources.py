"""Dagster resources, chosen by environment: production servers when configured, embedded otherwise."""


from functools import cached_property
from pathlib import Path

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
                                       home=Path(self.home)))
        store.ensure_schema()
        return store

    @property
    def backend(self) -> str:
        return "questdb" if self.questdb_addr else "sqlite"


class DocumentsResource(dg.ConfigurableResource):
    """Settings, entities, stream state and sync log: MongoDB, or SQLite under ``home``."""

    mongodb_uri: str | None = None
    home: str = ".energy_pipeline"

    @cached_property
    def store(self) -> DocumentStore:
        store = open_documents(Config(mongodb_uri=self.mongodb_uri, home=Path(self.home)))
        store.ensure_schema()
        return store

    @property
    def backend(self) -> str:
        return "mongodb" if self.mongodb_uri else "sqlite"


class HomeAssistantResource(dg.ConfigurableResource):
    """Connection to Home Assistant. Settings saved through the API win over ``HA_URL``/``HA_TOKEN``,
    and are read at the start of every run, so a changed token needs no restart."""

    url: str | None = None
    token: str | None = None
    secret_key: str | None = None
    documents: DocumentsResource
    command_timeout: float = 60.0

    def settings_service(self):
        from energy_pipeline.storage.secrets import SettingsService

        config = Config(ha_url=self.url, ha_token=self.token, secret_key=self.secret_key)
        return SettingsService(self.documents.store, config)

    def connection(self) -> tuple[str, str]:
        """The effective ``(url, token)``; raises a clear error when either is missing."""
        service = self.settings_service()
        url, token = service.effective_ha_url(), service.effective_ha_token()
        if not url or not token:
            missing = " and ".join(n for n, v in (("HA_URL", url), ("HA_TOKEN", token)) if not v)
            raise dg.Failure(
                f"Home Assistant is not configured: {missing} missing. Set the environment variable(s) "
                "or save them through PUT /api/settings."
            )
        return url, token

    def client(self):
        """A connected-on-enter synchronous client: ``with ha.client() as client: ...``."""
        from energy_pipeline.homeassistant.client import HomeAssistantSyncClient

        url, token = self.connection()
        return HomeAssistantSyncClient(url, token, command_timeout=self.command_timeout)


def _env_or_none(config_value: str | None, name: str) -> dg.EnvVar | None:
    """Pass secrets as ``EnvVar`` (so they are never shown in the UI), but only when set."""
    return dg.EnvVar(name) if config_value else None


def build_resources(config: Config | None = None) -> dict[str, dg.ConfigurableResource]:
    """The one place that decides local vs production: servers set in the environment win."""
    config = config or load_config()
    home = str(config.home)
    timeseries = TimeSeriesResource(questdb_addr=_env_or_none(config.questdb_addr, "QUESTDB_ADDR"),
                                    questdb_pg_dsn=_env_or_none(config.questdb_pg_dsn, "QUESTDB_PG_DSN"),
                                    home=home)
    documents = DocumentsResource(mongodb_uri=_env_or_none(config.mongodb_uri, "MONGODB_URI"), home=home)
    home_assistant = HomeAssistantResource(
        url=config.ha_url, token=_env_or_none(config.ha_token, "HA_TOKEN"),
        secret_key=_env_or_none(config.secret_key, "ENERGY_PIPELINE_SECRET_KEY"), documents=documents,
    )
    return {"timeseries": timeseries, "documents": documents, "home_assistant": home_assistant}
