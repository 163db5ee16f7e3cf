"""The whole Definitions loads, and its shape is what the UI and the docs promise."""

import os
import subprocess
import sys

import dagster as dg

from energy_pipeline.definitions import defs


def test_asset_keys_jobs_schedules_and_checks_snapshot():
    repo = defs.get_repository_def()
    assert sorted(k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()) == [
        "daily_energy_summary", "energy_entities", "hourly_energy_statistics", "legacy_energy_statistics",
    ]
    assert sorted(c.name for c in repo.asset_graph.asset_check_keys) == [
        "migration_row_counts_match", "readings_reconcile_with_statistics",
        "statistics_change_is_not_negative", "statistics_have_no_duplicates",
        "statistics_have_no_gaps",
    ]
    assert {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")} >= {
        "energy_entities_job", "hourly_energy_statistics_job", "daily_energy_summary_job", "legacy_migration_job",
        "ha_event_stream_job",
    }
    assert sorted(s.name for s in repo.schedule_defs) == ["hourly_energy_statistics_schedule"]
    assert sorted(s.name for s in repo.sensor_defs) == ["ha_event_stream_sensor", "hourly_statistics_generated_sensor"]
    assert set(defs.resources) >= {"home_assistant", "timeseries", "documents"}


def _assets():
    return {k.to_user_string(): a for k, a in defs.get_repository_def().assets_defs_by_key.items()}


def test_every_asset_has_description_group_and_store_kind():
    for name, asset in _assets().items():
        spec = next(s for s in asset.specs if s.key.to_user_string() == name)
        assert spec.description, name
        assert spec.group_name in {"ha_statistics", "migration"}, name
        assert spec.kinds & {"sqlite", "questdb", "mongodb", "homeassistant"}, name


def test_hourly_asset_batches_partitions_into_few_runs():
    assets = _assets()
    assert assets["hourly_energy_statistics"].partitions_def.get_cron_schedule() == "0 * * * *"
    policy = assets["hourly_energy_statistics"].backfill_policy
    assert policy.max_partitions_per_run >= 24 * 28


def test_dagster_validates_the_definitions(tmp_path):
    # The repository's own dagster.yaml is the compose instance (Postgres); validate on a local one.
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-m",
                             "energy_pipeline.definitions"], capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "Validation successful" in result.stdout + result.stderr


def test_production_environment_selects_production_resources(monkeypatch):
    from energy_pipeline.config import load_config
    from energy_pipeline.defs.resources import build_resources

    env = {"MONGODB_URI": "mongodb://db:27017", "QUESTDB_ADDR": "http::addr=q:9000;",
           "QUESTDB_PG_DSN": "postgresql://admin:quest@q:8812/qdb", "HA_URL": "http://ha:8123", "HA_TOKEN": "t"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    resources = build_resources(load_config())
    assert isinstance(resources["timeseries"].questdb_addr, dg.EnvVar)
    assert isinstance(resources["documents"].mongodb_uri, dg.EnvVar)
    assert resources["home_assistant"].url == "http://ha:8123"
    embedded = build_resources(load_config({}))
    assert embedded["timeseries"].questdb_addr is None and embedded["documents"].mongodb_uri is None
