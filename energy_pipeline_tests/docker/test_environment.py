"""Every variable the code reads reaches every process that needs it, and every command exists."""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import click
import pytest

from energy_pipeline.config import ENV_VARS
from energy_pipeline_tests.docker.conftest import (
    APP_SERVICES,
    DATABASES,
    ENV_EXAMPLE,
    ROOT,
    load_yaml,
    rendered_environment,
)

PACKAGE = ROOT / "energy_pipeline"
# os.environ.get("X"), os.environ["X"], os.getenv("X"), environ.get("X"), dg.EnvVar("X")
_READ_PATTERNS = (
    re.compile(r"""environ(?:\.get)?\s*[\[(]\s*["']([A-Z][A-Z0-9_]*)["']"""),
    re.compile(r"""getenv\(\s*["']([A-Z][A-Z0-9_]*)["']"""),
    re.compile(r"""EnvVar\(\s*["']([A-Z][A-Z0-9_]*)["']"""),
    re.compile(r"""_clean\(\s*env\s*,\s*["']([A-Z][A-Z0-9_]*)["']"""),
)
POSTGRES_VARIABLES = {"DAGSTER_POSTGRES_USER", "DAGSTER_POSTGRES_PASSWORD", "DAGSTER_POSTGRES_HOST",
                      "DAGSTER_POSTGRES_DB"}


def variables_read_by_the_code() -> set[str]:
    names = {spec.name for spec in ENV_VARS}
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for pattern in _READ_PATTERNS:
            for match in pattern.finditer(text):
                # A write (`os.environ["X"] = ...`) is not a read.
                if not re.match(r"\]\s*=[^=]", text[match.end():match.end() + 4]):
                    names.add(match.group(1))
    return names


def env_example_names() -> set[str]:
    return set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.M))


def test_the_scan_finds_the_configuration():
    found = variables_read_by_the_code()
    assert {"HA_URL", "HA_TOKEN", "MONGODB_URI", "QUESTDB_ADDR"} <= found
    assert all(name.isupper() for name in found)


def test_env_example_documents_every_variable():
    text = ENV_EXAMPLE.read_text()
    names = env_example_names()
    needed = variables_read_by_the_code() | POSTGRES_VARIABLES
    assert needed <= names, f"missing from .env.example: {sorted(needed - names)}"
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[A-Z_][A-Z0-9_]*=", line):
            assert index > 0 and lines[index - 1].startswith("#"), f"{line.split('=')[0]} has no comment above it"


def test_every_variable_reaches_the_run_workers(dagster_config):
    env_vars = set(dagster_config["run_launcher"]["config"]["env_vars"])
    needed = variables_read_by_the_code() | POSTGRES_VARIABLES
    assert needed <= env_vars, f"missing from the run launcher's env_vars: {sorted(needed - env_vars)}"


@pytest.mark.parametrize("which", ["dev", "prod"])
def test_every_variable_reaches_the_services(request, which, dagster_config):
    rendered = request.getfixturevalue(f"rendered_{which}")
    needed = variables_read_by_the_code() | POSTGRES_VARIABLES
    for name in APP_SERVICES:
        env = rendered_environment(rendered["services"][name])
        assert needed <= set(env), f"{which} {name} lacks {sorted(needed - set(env))}"
    # The daemon launches the queued runs: it must have every variable the launcher forwards, or
    # the launch fails with "Tried to load environment variable ..., but it was not set".
    daemon_env = rendered_environment(rendered["services"]["daemon"])
    assert set(dagster_config["run_launcher"]["config"]["env_vars"]) <= set(daemon_env)


# ---- commands ------------------------------------------------------------------------------------

def _console_scripts() -> dict[str, str]:
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    scripts.update(pyproject["project"]["scripts"])
    return scripts


def _compose_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every service command and every exec-form healthcheck of both files."""
    out = []
    for path in (ROOT / "docker" / "docker-compose.yml", ROOT / "docker" / "docker-compose.prod.yml"):
        for name, service in load_yaml(path)["services"].items():
            if "command" in service:
                command = service["command"]
                out.append((f"{path.name}:{name}", command if isinstance(command, list) else shlex.split(command)))
            test = service["healthcheck"]["test"]
            if test[0] == "CMD":
                out.append((f"{path.name}:{name}:healthcheck", test[1:]))
    return out


def _click_context(group: click.Command, program: str, args: list[str]) -> click.Context:
    """Parse ``args`` as the click program would, without running it (unknown options fail)."""
    context = click.Context(group, info_name=program)
    command, name = group, program
    while isinstance(command, click.Group):
        name, *args = args
        sub = command.get_command(context, name)
        assert sub is not None, f"{program}: no subcommand {name!r}"
        context = click.Context(sub, info_name=name, parent=context)
        command = sub
    return command.make_context(name, list(args), parent=context.parent)


# Programs that exist in the database images, not in ours.
IMAGE_PROGRAMS = {"mongosh", "bash", "pg_isready"}


@pytest.mark.parametrize(("where", "argv"), _compose_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_compose_command_exists(where, argv, monkeypatch):
    program = argv[0]
    if program in IMAGE_PROGRAMS:
        assert where.split(":")[1] in DATABASES, f"{where}: {program} is not in the energy_pipeline image"
        return
    if program == "python":
        assert argv[1] == "-c"
        compile(argv[2], where, "exec")
        return
    scripts = _console_scripts()
    assert program in scripts, f"{where}: {program} is not a console script of the image"
    module_name = scripts[program].partition(":")[0]
    module = importlib.import_module(module_name)
    if program == "energy-pipeline":
        from energy_pipeline.cli import build_parser

        build_parser().parse_args(argv[1:])  # exits (SystemExit) on an unknown subcommand or flag
        return
    # The image's working directory is DAGSTER_HOME, which holds workspace.yaml like the repo root.
    monkeypatch.chdir(ROOT)
    group = getattr(module, "cli", None)
    assert isinstance(group, click.Command), f"{where}: {module_name}.cli is not a click command"
    context = _click_context(group, program, argv[1:])
    assert context.command.callback is not None


def test_click_parsing_rejects_unknown_options():
    from dagster._cli import cli

    with pytest.raises(click.UsageError):
        _click_context(cli, "dagster", ["api", "grpc-health-check", "-p", "4000", "--no-such-flag"])


def test_simulator_command_matches_its_cli():
    from energy_pipeline.cli import build_parser

    command = load_yaml(ROOT / "docker" / "docker-compose.yml")["services"]["ha-simulator"]["command"]
    args = build_parser().parse_args([part.replace("${HA_TOKEN:-simulator-token}", "token") for part in command[1:]])
    assert (args.command, args.host, args.port, args.token) == ("simulate-ha", "0.0.0.0", 8123, "token")


def test_python_modules_of_the_commands_import():
    importlib.import_module("energy_pipeline.definitions")
    assert Path(importlib.import_module("energy_pipeline.api.app").__file__).exists()
