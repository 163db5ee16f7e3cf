"""Both compose files, as rendered by the real compose implementation (no engine needed)."""

from __future__ import annotations

from typing import Any

import pytest

from energy_pipeline_tests.docker.conftest import (
    APP_SERVICES,
    DATABASES,
    DEV_COMPOSE,
    DEV_SERVICES,
    PROD_COMPOSE,
    PROD_SERVICES,
    TEST_POSTGRES_PASSWORD,
    load_yaml,
    make_project_copy,
    mounts,
    published_ports,
    rendered_environment,
    run_compose,
)

BOTH = pytest.mark.parametrize("which", ["dev", "prod"])


@pytest.fixture
def rendered(request: pytest.FixtureRequest, which: str) -> dict[str, Any]:
    return request.getfixturevalue(f"rendered_{which}")


def test_services(rendered_dev, rendered_prod):
    assert set(rendered_prod["services"]) == PROD_SERVICES
    assert set(rendered_dev["services"]) == DEV_SERVICES
    assert rendered_dev["services"]["ha-simulator"]["profiles"] == ["simulator"]
    for name in PROD_SERVICES:
        assert not rendered_dev["services"][name].get("profiles"), f"{name} must start without a profile"


@BOTH
def test_every_service_has_a_healthcheck(rendered, which):
    for name, service in rendered["services"].items():
        check = service.get("healthcheck") or {}
        assert not check.get("disable"), name
        test = check.get("test")
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, (name, test)


@BOTH
def test_startup_waits_for_health(rendered, which):
    services = rendered["services"]
    for name in ("code", "webserver", "daemon", "api"):
        depends = services[name]["depends_on"]
        assert isinstance(depends, dict), name
        for dependency, spec in depends.items():
            assert dependency in services, (name, dependency)
            assert spec["condition"] in ("service_healthy", "service_started"), (name, dependency)
    assert {k for k, v in services["code"]["depends_on"].items() if v["condition"] == "service_healthy"} \
        == set(DATABASES)
    for name in ("webserver", "daemon"):
        assert services[name]["depends_on"]["code"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_production_publishes_no_database_port(rendered_prod):
    services = rendered_prod["services"]
    for name in DATABASES:
        assert published_ports(services[name]) == [], f"{name} must not publish a port in production"
        assert not services[name].get("ports"), name
    assert {p[2] for p in published_ports(services["webserver"])} == {"3000"}
    assert {p[2] for p in published_ports(services["api"])} == {"8000"}
    for name in ("code", "daemon"):
        assert not published_ports(services[name]), name


def test_development_publishes_on_loopback_only(rendered_dev):
    ports = {name: published_ports(service) for name, service in rendered_dev["services"].items()}
    assert all(host_ip == "127.0.0.1" for service_ports in ports.values() for host_ip, _, _ in service_ports), ports
    assert {p[2] for p in ports["questdb"]} == {"9000", "8812", "9003"}
    assert {p[2] for p in ports["webserver"]} == {"3000"}
    assert {p[2] for p in ports["api"]} == {"8000"}
    assert {p[2] for p in ports["ha-simulator"]} == {"8123"}


def test_production_operations(rendered_prod):
    for name, service in rendered_prod["services"].items():
        assert service.get("restart") in ("unless-stopped", "always"), name
        logging = service.get("logging") or {}
        assert logging.get("driver") == "json-file", name
        assert logging["options"]["max-size"] and int(logging["options"]["max-file"]) >= 2, name
        limits = (service.get("deploy") or {}).get("resources", {}).get("limits", {})
        assert service.get("mem_limit") or limits.get("memory"), f"{name} has no memory limit"
        assert service.get("cpus") or limits.get("cpus"), f"{name} has no CPU limit"


@BOTH
def test_secrets_come_from_the_env_file(rendered, which):
    services = rendered["services"]
    assert rendered_environment(services["postgres"])["POSTGRES_PASSWORD"] == TEST_POSTGRES_PASSWORD
    for name in ("code", "webserver", "daemon", "api"):
        env = rendered_environment(services[name])
        assert env["DAGSTER_POSTGRES_PASSWORD"] == TEST_POSTGRES_PASSWORD, name
        assert env["DAGSTER_POSTGRES_USER"] == rendered_environment(services["postgres"])["POSTGRES_USER"]
        assert env["DAGSTER_POSTGRES_DB"] == rendered_environment(services["postgres"])["POSTGRES_DB"]
        assert env["DAGSTER_POSTGRES_HOST"] == "postgres"
        assert env["ENERGY_PIPELINE_HOME"] == "/data", "the data volume is mounted at /data"
    raw = load_yaml(DEV_COMPOSE if which == "dev" else PROD_COMPOSE)
    for name, service in raw["services"].items():
        for value in (service.get("environment") or {}).values():
            assert "PASSWORD" not in str(value) or "${" in str(value), f"{name}: literal secret in the compose file"


def test_production_refuses_to_start_without_a_postgres_password(tmp_path):
    project = make_project_copy(tmp_path, {"DAGSTER_POSTGRES_PASSWORD": None})
    result = run_compose(project, ["docker-compose.prod.yml"], "config")
    assert result.returncode != 0
    assert "DAGSTER_POSTGRES_PASSWORD" in result.stderr


@BOTH
def test_named_volumes_and_the_network_match_the_run_launcher(rendered, which, dagster_config):
    launcher = dagster_config["run_launcher"]["config"]
    networks = rendered["networks"]
    assert len(networks) == 1, "one network for everything"
    (key, network), = networks.items()
    assert network["name"] == launcher["network"] == "energy_pipeline"
    for name, service in rendered["services"].items():
        assert list(service["networks"]) == [key], name

    volume_names = {key: spec["name"] for key, spec in rendered["volumes"].items()}
    assert set(volume_names.values()) == {
        "energy_pipeline_postgres", "energy_pipeline_mongodb", "energy_pipeline_questdb",
        "energy_pipeline_data", "energy_pipeline_legacy"}
    # Run containers get the same volumes, by their fixed names, at the same paths as the services.
    run_mounts = {}
    for spec in launcher["container_kwargs"]["volumes"]:
        source, target = spec.split(":")[:2]
        run_mounts[target] = source
    code_mounts = {target: volume_names.get(source, source)
                   for target, source in mounts(rendered["services"]["code"]).items()}
    assert run_mounts == code_mounts == {"/data": "energy_pipeline_data", "/legacy": "energy_pipeline_legacy"}
    for name in APP_SERVICES:
        service_mounts = mounts(rendered["services"][name])
        assert volume_names[service_mounts["/data"]] == "energy_pipeline_data", name
    database_paths = {"postgres": "/var/lib/postgresql/data", "mongodb": "/data/db", "questdb": "/var/lib/questdb"}
    for name, path in database_paths.items():
        assert mounts(rendered["services"][name])[path] in rendered["volumes"], name


@BOTH
def test_docker_socket_for_the_processes_that_launch_runs(rendered, which):
    for name in ("webserver", "daemon"):
        service = rendered["services"][name]
        assert mounts(service)["/var/run/docker.sock"] == "/var/run/docker.sock", name
        assert service.get("group_add"), f"{name}: the non-root user must join the socket's group"
    for name in ("code", "api", *DATABASES):
        assert "/var/run/docker.sock" not in mounts(rendered["services"][name]), name


@BOTH
def test_runs_use_the_code_servers_image(rendered, which):
    services = rendered["services"]
    image = services["code"]["image"]
    assert rendered_environment(services["code"])["DAGSTER_CURRENT_IMAGE"] == image
    for name in (*APP_SERVICES, *(["ha-simulator"] if which == "dev" else [])):
        assert services[name]["image"] == image, name
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile", name
        assert services[name].get("init") is True, name


@BOTH
def test_database_images_are_pinned(rendered, which):
    for name in DATABASES:
        image = rendered["services"][name]["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest" and any(c.isdigit() for c in tag), image
    assert rendered["services"]["questdb"]["image"].startswith("questdb/questdb:")
    assert rendered["services"]["mongodb"]["image"].startswith("mongo:")
    assert rendered["services"]["postgres"]["image"].startswith("postgres:")


def test_the_two_files_run_the_same_programs(rendered_dev, rendered_prod):
    for name in PROD_SERVICES:
        dev, prod = rendered_dev["services"][name], rendered_prod["services"][name]
        assert dev.get("command") == prod.get("command"), name
        assert dev["healthcheck"]["test"] == prod["healthcheck"]["test"], name
        assert set(rendered_environment(dev)) == set(rendered_environment(prod)), name
        assert dev["image"] == prod["image"], name
