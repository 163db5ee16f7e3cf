"""dagster.yaml and workspace.yaml, checked by Dagster's own loaders and config schemas.

Nothing connects: the Postgres storage and the Docker launcher are resolved to their classes and
their config is validated against those classes' schemas, with the env vars resolved.
"""

from __future__ import annotations

import shutil
import tomllib

import pytest

from energy_pipeline_tests.docker.conftest import DAGSTER_YAML, DEV_COMPOSE, ROOT, WORKSPACE_YAML, load_yaml

POSTGRES_ENV = {
    "DAGSTER_POSTGRES_USER": "dagster",
    "DAGSTER_POSTGRES_PASSWORD": "secret-for-the-test",
    "DAGSTER_POSTGRES_HOST": "postgres",
    "DAGSTER_POSTGRES_DB": "dagster",
}


@pytest.fixture
def instance_ref(tmp_path, clean_env):
    from dagster._core.instance.ref import InstanceRef

    for name, value in POSTGRES_ENV.items():
        clean_env.setenv(name, value)
    shutil.copy2(DAGSTER_YAML, tmp_path / "dagster.yaml")
    return InstanceRef.from_dir(str(tmp_path))


def _validated(class_data):
    """The ConfigurableClass named by ``class_data``, and its config processed by its own schema."""
    import yaml
    from dagster._config import process_config
    from dagster._serdes import ConfigurableClass
    from dagster._serdes.config_class import class_from_code_pointer

    klass = class_from_code_pointer(class_data.module_name, class_data.class_name)
    assert issubclass(klass, ConfigurableClass), klass
    result = process_config(klass.config_type(), yaml.safe_load(class_data.config_yaml) or {})
    assert result.success, [error.message for error in result.errors or []]
    return klass, result.value


def test_instance_config_validates_with_dagsters_schema(tmp_path, clean_env):
    from dagster._core.instance.config import dagster_instance_config

    for name, value in POSTGRES_ENV.items():
        clean_env.setenv(name, value)
    shutil.copy2(DAGSTER_YAML, tmp_path / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    assert config["telemetry"] == {"enabled": False}
    assert set(config["storage"]) == {"postgres"}


def test_postgres_storage_resolves_from_the_environment(instance_ref):
    from dagster_postgres import DagsterPostgresStorage

    for class_data in (instance_ref.storage_data, instance_ref.run_storage_data,
                       instance_ref.event_storage_data, instance_ref.schedule_storage_data):
        assert class_data.module_name == "dagster_postgres"
    klass, value = _validated(instance_ref.storage_data)
    assert klass is DagsterPostgresStorage
    db = value["postgres_db"]
    assert (db["username"], db["password"], db["hostname"], db["db_name"], db["port"]) == (
        "dagster", "secret-for-the-test", "postgres", "dagster", 5432)


def test_postgres_storage_needs_its_variables(tmp_path, clean_env):
    from dagster._config import process_config
    from dagster_postgres import DagsterPostgresStorage

    clean_env.setenv("DAGSTER_POSTGRES_USER", "dagster")
    storage = load_yaml(DAGSTER_YAML)["storage"]["postgres"]
    result = process_config(DagsterPostgresStorage.config_type(), storage)
    assert not result.success
    assert "DAGSTER_POSTGRES_HOST" in " ".join(error.message for error in result.errors)


def test_queued_run_coordinator_leaves_room_for_the_stream(instance_ref):
    from dagster._core.run_coordinator import QueuedRunCoordinator

    klass, value = _validated(instance_ref.run_coordinator_data)
    assert klass is QueuedRunCoordinator
    limits = {(item["key"], item.get("value")): item["limit"] for item in value["tag_concurrency_limits"]}
    assert value["max_concurrent_runs"] == 4
    assert limits[("dagster/backfill", None)] == 2
    assert limits[("dagster/schedule_name", None)] == 1
    assert limits[("dagster/sensor_name", "hourly_statistics_generated_sensor")] == 1
    assert limits[("energy_pipeline/stream", None)] == 1
    # Backfills and the hourly catch-up (schedule or its event-driven twin, one per hour) never take
    # the last slot: the stream run gets it.
    assert limits[("dagster/backfill", None)] + limits[("dagster/schedule_name", None)] + 1 \
        <= value["max_concurrent_runs"]
    coordinator = instance_ref.run_coordinator_data.rehydrate(as_type=QueuedRunCoordinator)
    assert coordinator.get_run_queue_config().max_concurrent_runs == 4


def test_concurrency_tags_match_the_definitions(dagster_config):
    """The tags and names the limits rely on exist in the code location."""
    import dagster as dg

    from energy_pipeline.definitions import defs

    limits = dagster_config["run_coordinator"]["config"]["tag_concurrency_limits"]
    sensors = {sensor.name: sensor for sensor in defs.sensors or []}
    schedules = {schedule.name for schedule in defs.schedules or []}
    assert "hourly_energy_statistics_schedule" in schedules
    for limit in limits:
        if limit["key"] == "dagster/sensor_name":
            assert limit["value"] in sensors, f"no sensor {limit['value']} in the definitions"
    stream_keys = [limit["key"] for limit in limits if not limit["key"].startswith("dagster/")]
    assert stream_keys == ["energy_pipeline/stream"]
    stream_jobs = [job for job in defs.jobs or [] if isinstance(job, dg.JobDefinition)
                   and stream_keys[0] in (job.tags or {})]
    assert len(stream_jobs) == 1, "exactly one job carries the stream tag"
    stream_sensors = [s for s in sensors.values() if any(t.job_name == stream_jobs[0].name for t in s.targets)]
    assert stream_sensors, "a sensor starts the stream job"


def test_docker_run_launcher(instance_ref):
    from dagster_docker import DockerRunLauncher

    klass, value = _validated(instance_ref.run_launcher_data)
    assert klass is DockerRunLauncher
    launcher = instance_ref.run_launcher_data.rehydrate(as_type=DockerRunLauncher)  # no engine contacted
    assert launcher.networks == ["energy_pipeline"]
    kwargs = launcher.container_kwargs
    assert {"energy_pipeline_data:/data", "energy_pipeline_legacy:/legacy:ro"} <= set(kwargs["volumes"])
    assert kwargs["init"] is True
    assert len(value["env_vars"]) == len(set(value["env_vars"])), "duplicate env_vars"
    assert all("=" not in name for name in value["env_vars"]), "values come from the daemon's environment"


def test_artifacts_and_compute_logs_are_on_the_shared_volume(instance_ref):
    _, artifacts = _validated(instance_ref.local_artifact_storage_data)
    _, logs = _validated(instance_ref.compute_logs_data)
    assert artifacts["base_dir"].startswith("/data/")
    assert logs["base_dir"].startswith("/data/")
    assert instance_ref.settings["run_monitoring"]["enabled"] is True


def test_workspace_loads_and_points_at_the_code_service():
    from dagster._core.remote_origin import GrpcServerCodeLocationOrigin
    from dagster._core.workspace.config_schema import process_workspace_config
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    assert process_workspace_config(load_yaml(WORKSPACE_YAML)).success
    (origin,) = location_origins_from_yaml_paths([str(WORKSPACE_YAML)])
    assert isinstance(origin, GrpcServerCodeLocationOrigin)

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    location_name = pyproject["tool"]["dagster"]["code_location_name"]
    assert origin.location_name == location_name == "energy_pipeline"

    compose = load_yaml(DEV_COMPOSE)
    assert origin.host in compose["services"], "workspace.yaml must name the code service"
    command = compose["services"][origin.host]["command"]
    assert command[command.index("-p") + 1] == str(origin.port)
    assert command[command.index("--location-name") + 1] == location_name
