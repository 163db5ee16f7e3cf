"""All configuration in one place: environment variables, their defaults and their validation.

Everything that reads the environment goes through :func:`load_config`, so a malformed value fails
at start-up with a message that names the variable and shows a good value, instead of deep inside
a Dagster run an hour later.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlparse


class ConfigError(ValueError):
    """A configuration value is malformed; the message names the variable and a good example."""

    def __init__(self, variable: str, problem: str, example: str):
        self.variable = variable
        super().__init__(f"{variable}: {problem}. Example of a good value: {variable}={example}")


@dataclass(frozen=True)
class EnvVarSpec:
    """One supported environment variable, documented once (README table and .env.example follow it)."""

    name: str
    description: str
    example: str
    default: str | None = None
    secret: bool = False


ENV_VARS: tuple[EnvVarSpec, ...] = (
    EnvVarSpec("HA_URL", "Home Assistant base URL or WebSocket URL", "http://homeassistant.local:8123"),
    EnvVarSpec("HA_TOKEN", "Home Assistant long-lived access token", "eyJhbGciOi...", secret=True),
    EnvVarSpec("MONGODB_URI", "MongoDB connection string; unset = embedded SQLite documents",
               "mongodb://localhost:27017"),
    EnvVarSpec("QUESTDB_ADDR", "QuestDB ILP/HTTP client config; unset = embedded SQLite time series",
               "http::addr=localhost:9000;"),
    EnvVarSpec("QUESTDB_PG_DSN", "QuestDB PostgreSQL-wire DSN used for reads",
               "postgresql://admin:quest@localhost:8812/qdb"),
    EnvVarSpec("ENERGY_PIPELINE_HOME", "Directory of the embedded stores and local spill files",
               "./.energy_pipeline", default="./.energy_pipeline"),
    EnvVarSpec("ENERGY_PIPELINE_SECRET_KEY", "Encrypts the HA token at rest when set (any long random string)",
               "change-me-to-32-or-more-random-characters", secret=True),
    EnvVarSpec("ENERGY_PIPELINE_TIME_ZONE", "Override of Home Assistant's time zone for day/week/month buckets",
               "Europe/Berlin"),
    EnvVarSpec("ENERGY_PIPELINE_START_DATE", "First hour partition (UTC date); default 30 days ago",
               "2026-01-01"),
    EnvVarSpec("LEGACY_SQLITE_PATH", "The previous app's energy.db to migrate", "/data/energy.db"),
    EnvVarSpec("DAGSTER_GRAPHQL_URL", "Dagster webserver GraphQL endpoint used by the API",
               "http://127.0.0.1:3000/graphql", default="http://127.0.0.1:3000/graphql"),
)

_QUESTDB_ADDR_RE = re.compile(r"^(http|https|tcp|tcps)::addr=[^;]+(;[a-z_]+=[^;]*)*;?$")
_MIN_SECRET_LENGTH = 16


@dataclass(frozen=True)
class Config:
    """Validated configuration. Optional servers are ``None`` when the embedded backend is used."""

    ha_url: str | None = None
    ha_token: str | None = field(default=None, repr=False)
    mongodb_uri: str | None = field(default=None, repr=False)
    questdb_addr: str | None = None
    questdb_pg_dsn: str | None = field(default=None, repr=False)
    home: Path = Path("./.energy_pipeline")
    secret_key: str | None = field(default=None, repr=False)
    time_zone: str | None = None
    start_date: date | None = None
    legacy_sqlite_path: Path | None = None
    dagster_graphql_url: str = "http://127.0.0.1:3000/graphql"

    @property
    def timeseries_backend(self) -> str:
        return "questdb" if self.questdb_addr else "sqlite"

    @property
    def documents_backend(self) -> str:
        return "mongodb" if self.mongodb_uri else "sqlite"


def _clean(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def validate_http_url(name: str, value: str, example: str, schemes: tuple[str, ...]) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in schemes or not parsed.netloc:
        raise ConfigError(name, f"{value!r} is not a URL with scheme {'/'.join(schemes)} and a host", example)
    return value


def validate_time_zone(name: str, value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(name, f"{value!r} is not an IANA time zone", "Europe/Berlin") from None
    return value


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the environment; raises :class:`ConfigError` on the first bad value."""
    env = os.environ if environ is None else environ
    spec = {v.name: v for v in ENV_VARS}

    ha_url = _clean(env, "HA_URL")
    if ha_url is not None:
        validate_http_url("HA_URL", ha_url, spec["HA_URL"].example, ("http", "https", "ws", "wss"))

    mongodb_uri = _clean(env, "MONGODB_URI")
    if mongodb_uri is not None and not mongodb_uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError("MONGODB_URI", "must start with mongodb:// or mongodb+srv://",
                          spec["MONGODB_URI"].example)

    questdb_addr = _clean(env, "QUESTDB_ADDR")
    if questdb_addr is not None and not _QUESTDB_ADDR_RE.match(questdb_addr):
        raise ConfigError("QUESTDB_ADDR", f"{questdb_addr!r} is not a QuestDB client config string",
                          spec["QUESTDB_ADDR"].example)

    questdb_pg_dsn = _clean(env, "QUESTDB_PG_DSN")
    if questdb_pg_dsn is not None:
        validate_http_url("QUESTDB_PG_DSN", questdb_pg_dsn, spec["QUESTDB_PG_DSN"].example,
                          ("postgresql", "postgres"))
    if questdb_addr and not questdb_pg_dsn:
        raise ConfigError("QUESTDB_PG_DSN", "is required when QUESTDB_ADDR is set (reads use the PG wire port)",
                          spec["QUESTDB_PG_DSN"].example)

    secret_key = _clean(env, "ENERGY_PIPELINE_SECRET_KEY")
    if secret_key is not None and len(secret_key) < _MIN_SECRET_LENGTH:
        raise ConfigError("ENERGY_PIPELINE_SECRET_KEY", f"must be at least {_MIN_SECRET_LENGTH} characters",
                          spec["ENERGY_PIPELINE_SECRET_KEY"].example)

    time_zone = _clean(env, "ENERGY_PIPELINE_TIME_ZONE")
    if time_zone is not None:
        validate_time_zone("ENERGY_PIPELINE_TIME_ZONE", time_zone)

    start_date = None
    raw_start = _clean(env, "ENERGY_PIPELINE_START_DATE")
    if raw_start is not None:
        try:
            start_date = date.fromisoformat(raw_start)
        except ValueError:
            raise ConfigError("ENERGY_PIPELINE_START_DATE", f"{raw_start!r} is not a date (YYYY-MM-DD)",
                              spec["ENERGY_PIPELINE_START_DATE"].example) from None
        if start_date > datetime.now().date():
            raise ConfigError("ENERGY_PIPELINE_START_DATE", "lies in the future",
                              spec["ENERGY_PIPELINE_START_DATE"].example)

    graphql_url = _clean(env, "DAGSTER_GRAPHQL_URL") or spec["DAGSTER_GRAPHQL_URL"].default
    validate_http_url("DAGSTER_GRAPHQL_URL", graphql_url, spec["DAGSTER_GRAPHQL_URL"].example, ("http", "https"))

    legacy = _clean(env, "LEGACY_SQLITE_PATH")
    return Config(
        ha_url=ha_url,
        ha_token=_clean(env, "HA_TOKEN"),
        mongodb_uri=mongodb_uri,
        questdb_addr=questdb_addr,
        questdb_pg_dsn=questdb_pg_dsn,
        home=Path(_clean(env, "ENERGY_PIPELINE_HOME") or spec["ENERGY_PIPELINE_HOME"].default),
        secret_key=secret_key,
        time_zone=time_zone,
        start_date=start_date,
        legacy_sqlite_path=Path(legacy) if legacy else None,
        dagster_graphql_url=graphql_url,
    )
