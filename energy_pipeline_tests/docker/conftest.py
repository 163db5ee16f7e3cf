"""Helpers for the compose deployment tests: no Docker engine needed.

The compose files are rendered by the real compose implementation (``docker-compose config``, or
``docker compose config`` where only the plugin exists) inside a throw-away copy of the repository
layout, with a ``.env`` made from ``.env.example``, exactly as docs/deploy.md tells users to do.
Both output dialects are understood: compose v1 (Debian's docker-compose 1.29, short syntax) and
v2 (long syntax for ports and volumes).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "docker"
DEV_COMPOSE = DOCKER_DIR / "docker-compose.yml"
PROD_COMPOSE = DOCKER_DIR / "docker-compose.prod.yml"
DAGSTER_YAML = ROOT / "dagster.yaml"
WORKSPACE_YAML = ROOT / "workspace.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

DATABASES = ("postgres", "mongodb", "questdb")
APP_SERVICES = ("code", "webserver", "daemon", "api")
PROD_SERVICES = {*DATABASES, *APP_SERVICES}
DEV_SERVICES = {*PROD_SERVICES, "ha-simulator"}
TEST_POSTGRES_PASSWORD = "test-password-not-a-secret"
COMPOSE_TIMEOUT_S = 60


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose_command() -> list[str]:
    """The compose implementation to validate with; skips (fails in CI) when there is none."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    message = ("no compose implementation: the `docker-compose` binary is missing "
               "(apt-get install docker-compose; .ci/run installs it)")
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def make_project_copy(target: Path, env_overrides: Mapping[str, str | None] | None = None) -> Path:
    """The repository's deployment files under ``target``, laid out as in the repository, with a
    ``.env`` made from ``.env.example`` the way docs/deploy.md says (password filled in)."""
    shutil.copytree(DOCKER_DIR, target / "docker")
    for name in ("dagster.yaml", "workspace.yaml", "pyproject.toml"):
        shutil.copy2(ROOT / name, target / name)
    values = {"DAGSTER_POSTGRES_PASSWORD": TEST_POSTGRES_PASSWORD, **(env_overrides or {})}
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        name = line.split("=", 1)[0] if "=" in line and not line.startswith("#") else None
        if name in values:
            if values[name] is None:
                continue
            line = f"{name}={values[name]}"
        lines.append(line)
    (target / ".env").write_text("\n".join(lines) + "\n")
    return target


def run_compose(project: Path, files: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [*compose_command(), "--env-file", ".env"]
    for name in files:
        command += ["-f", f"docker/{name}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    # Nothing of the test process's environment may leak into the interpolation.
    for name in re.findall(r"^([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.M):
        env.pop(name, None)
    return subprocess.run([*command, *args], cwd=project, capture_output=True, text=True, env=env,
                          timeout=COMPOSE_TIMEOUT_S)


def render(project: Path, files: list[str], *extra: str) -> dict[str, Any]:
    result = run_compose(project, files, *extra, "config")
    assert result.returncode == 0, f"compose config of {files} failed:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="session")
def rendered_dev(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = make_project_copy(tmp_path_factory.mktemp("compose-dev"))
    return render(project, ["docker-compose.yml"], "--profile", "simulator")


@pytest.fixture(scope="session")
def rendered_prod(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = make_project_copy(tmp_path_factory.mktemp("compose-prod"))
    return render(project, ["docker-compose.prod.yml"])


@pytest.fixture(scope="session")
def dagster_config() -> dict[str, Any]:
    return load_yaml(DAGSTER_YAML)


def published_ports(service: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(host_ip, published, target)`` of every published port, for both output dialects."""
    out = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):  # v2 long syntax
            if port.get("published") in (None, ""):
                continue
            out.append((port.get("host_ip") or "0.0.0.0", str(port["published"]), str(port["target"])))
        else:  # v1 short syntax: [host_ip:]published:target[/protocol]
            parts = str(port).split("/")[0].split(":")
            if len(parts) == 1:
                continue
            host_ip = parts[0] if len(parts) == 3 else "0.0.0.0"
            out.append((host_ip, parts[-2], parts[-1]))
    return out


def mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """``target -> source`` of a service's volumes, for both output dialects."""
    out = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            out[volume["target"]] = volume.get("source", "")
        else:
            source, target = str(volume).split(":")[:2]
            out[target] = source
    return out


def rendered_environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """An environment without any of the deployment's variables (set what a test needs)."""
    for name in list(os.environ):
        if name.startswith(("DAGSTER_", "HA_", "QUESTDB_", "MONGODB_", "ENERGY_PIPELINE_", "LEGACY_")):
            monkeypatch.delenv(name, raising=False)
    yield monkeypatch
