from datetime import date
from pathlib import Path

import pytest

from energy_pipeline.config import ENV_VARS, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_choose_embedded_backends():
    config = load_config({})
    assert config.timeseries_backend == "sqlite"
    assert config.documents_backend == "sqlite"
    assert config.home == Path("./.energy_pipeline")


def test_servers_choose_production_backends():
    config = load_config({
        "MONGODB_URI": "mongodb://db:27017",
        "QUESTDB_ADDR": "http::addr=questdb:9000;",
        "QUESTDB_PG_DSN": "postgresql://admin:quest@questdb:8812/qdb",
    })
    assert (config.timeseries_backend, config.documents_backend) == ("questdb", "mongodb")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"HA_URL": "homeassistant.local"}, "HA_URL"),
        ({"HA_URL": "ftp://x"}, "HA_URL"),
        ({"MONGODB_URI": "localhost:27017"}, "MONGODB_URI"),
        ({"QUESTDB_ADDR": "localhost:9000"}, "QUESTDB_ADDR"),
        ({"QUESTDB_ADDR": "http::addr=localhost:9000;"}, "QUESTDB_PG_DSN"),
        ({"ENERGY_PIPELINE_SECRET_KEY": "short"}, "ENERGY_PIPELINE_SECRET_KEY"),
        ({"ENERGY_PIPELINE_TIME_ZONE": "Mars/Olympus"}, "ENERGY_PIPELINE_TIME_ZONE"),
        ({"ENERGY_PIPELINE_START_DATE": "yesterday"}, "ENERGY_PIPELINE_START_DATE"),
        ({"ENERGY_PIPELINE_START_DATE": "2999-01-01"}, "ENERGY_PIPELINE_START_DATE"),
        ({"DAGSTER_GRAPHQL_URL": "localhost:3000"}, "DAGSTER_GRAPHQL_URL"),
    ],
)
def test_malformed_values_name_the_variable_and_an_example(env, variable):
    with pytest.raises(ConfigError) as info:
        load_config(env)
    assert info.value.variable == variable
    assert str(info.value).startswith(f"{variable}: ")
    assert f"Example of a good value: {variable}=" in str(info.value)


def test_secrets_are_not_in_repr():
    config = load_config({"HA_TOKEN": "super-secret-token", "ENERGY_PIPELINE_SECRET_KEY": "k" * 32,
                          "MONGODB_URI": "mongodb://user:pw-secret@db"})
    text = repr(config)
    assert "super-secret-token" not in text and "pw-secret" not in text and "k" * 32 not in text


def test_start_date_parsed():
    assert load_config({"ENERGY_PIPELINE_START_DATE": "2025-03-01"}).start_date == date(2025, 3, 1)


def test_env_example_lists_every_variable():
    text = (ROOT / ".env.example").read_text()
    for spec in ENV_VARS:
        assert f"\n{spec.name}=" in text, spec.name


def test_cli_config_reports_backends_and_bad_values(tmp_path):
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "energy_pipeline.cli", "config", "--json"],
                        capture_output=True, text=True, env={"ENERGY_PIPELINE_HOME": str(tmp_path)})
    assert ok.returncode == 0, ok.stderr
    assert '"timeseries_backend": "sqlite"' in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "energy_pipeline.cli", "config"], capture_output=True, text=True,
                         env={"HA_URL": "nonsense"})
    assert bad.returncode == 2
    assert "HA_URL" in bad.stderr and "Example of a good value" in bad.stderr
