"""The compose services' own commands and healthchecks, run outside containers on loopback.

The code server, the webserver and the API are started with the argv of docker-compose.yml
(127.0.0.1 instead of 0.0.0.0, free ports instead of the fixed ones), a temporary DAGSTER_HOME with
an SQLite instance, and the embedded stores in a temporary ENERGY_PIPELINE_HOME. The webserver must
load the `energy_pipeline` location from the code server, and the healthcheck commands of the
compose file must pass against the running processes (and fail against a closed port).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from threading import Thread

import pytest
import yaml

from energy_pipeline.config import ENV_VARS
from energy_pipeline_tests.conftest import free_port
from energy_pipeline_tests.docker.conftest import DEV_COMPOSE, WORKSPACE_YAML, load_yaml

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
EXPECTED_ASSETS = {"energy_entities", "hourly_energy_statistics", "daily_energy_summary", "legacy_energy_statistics"}
CONTAINER_PORTS = {"code": "4000", "webserver": "3000", "api": "8000"}


def localize(argv: list[str], container_port: str, port: int) -> list[str]:
    """The compose argv for this machine: loopback, a free port, programs from this venv."""
    out = ["127.0.0.1" if part == "0.0.0.0" else part for part in argv]
    out = [str(port) if part == container_port else part for part in out]
    program = BIN / out[0]
    if out[0] == "python":
        return [sys.executable, *out[1:]]
    assert program.exists(), f"{out[0]} is not installed in {BIN}"
    return [str(program), *out[1:]]


def localize_healthcheck(test: list[str], container_port: str, port: int) -> list[str]:
    assert test[0] == "CMD", test
    return [part.replace(f"127.0.0.1:{container_port}", f"127.0.0.1:{port}") for part in
            localize(test[1:], container_port, port)]


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    ports: dict[str, int]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str]) -> None:
        log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        self.processes[name] = subprocess.Popen(argv, cwd=self.env["DAGSTER_HOME"], env=self.env, stdout=log,
                                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True)
        log.close()

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")[-4000:]

    def wait_for_port(self, name: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                pytest.fail(f"{name} exited with {self.processes[name].returncode}:\n{self.log(name)}")
            with socket.socket() as sock:
                sock.settimeout(1)
                if sock.connect_ex(("127.0.0.1", self.ports[name])) == 0:
                    return
            time.sleep(0.3)
        pytest.fail(f"{name} did not listen within {START_TIMEOUT_S:.0f} s:\n{self.log(name)}")

    def healthcheck(self, name: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        test = load_yaml(DEV_COMPOSE)["services"][name]["healthcheck"]["test"]
        argv = localize_healthcheck(test, CONTAINER_PORTS[name], self.ports[name])
        return subprocess.run(argv, env=self.env, cwd=self.env["DAGSTER_HOME"], capture_output=True, text=True,
                              timeout=timeout)

    def wait_healthy(self, name: str, deadline: float) -> None:
        last = None
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                pytest.fail(f"{name} exited with {self.processes[name].returncode}:\n{self.log(name)}")
            last = self.healthcheck(name, timeout=max(5.0, deadline - time.monotonic()))
            if last.returncode == 0:
                return
            time.sleep(1)
        pytest.fail(f"{name}'s compose healthcheck never passed: {last and last.stdout + last.stderr}\n"
                    f"{self.log(name)}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the group: code-server start has a child
            process.wait(timeout=STOP_TIMEOUT_S)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("local-stack")
    dagster_home, data = home / "dagster_home", home / "data"
    dagster_home.mkdir()
    data.mkdir()
    # SQLite instance instead of the Postgres one; everything else as in the image.
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    ports = {name: free_port() for name in CONTAINER_PORTS}
    workspace = load_yaml(WORKSPACE_YAML)
    (grpc,) = [entry["grpc_server"] for entry in workspace["load_from"]]
    assert grpc["host"] == "code" and str(grpc["port"]) == CONTAINER_PORTS["code"]
    grpc.update(host="127.0.0.1", port=ports["code"])
    (dagster_home / "workspace.yaml").write_text(yaml.safe_dump(workspace))

    env = {k: v for k, v in os.environ.items()
           if k not in {spec.name for spec in ENV_VARS} and not k.startswith("DAGSTER_")}
    env.update(DAGSTER_HOME=str(dagster_home), ENERGY_PIPELINE_HOME=str(data), PYTHONUNBUFFERED="1",
               ENERGY_PIPELINE_START_DATE=time.strftime("%Y-%m-%d", time.gmtime(time.time() - 3 * 86400)),
               ENERGY_PIPELINE_TIME_ZONE="Europe/Berlin", DAGSTER_CURRENT_IMAGE="energy-pipeline:latest",
               DAGSTER_GRAPHQL_URL=f"http://127.0.0.1:{ports['webserver']}/graphql")
    services = load_yaml(DEV_COMPOSE)["services"]
    result = Stack(home=home, env=env, ports=ports)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        result.start("code", localize(services["code"]["command"], CONTAINER_PORTS["code"], ports["code"]))
        result.start("api", localize(services["api"]["command"], CONTAINER_PORTS["api"], ports["api"]))
        result.wait_for_port("code", deadline)
        result.wait_healthy("code", deadline)  # compose: webserver depends on code being healthy
        result.start("webserver", localize(services["webserver"]["command"], CONTAINER_PORTS["webserver"],
                                           ports["webserver"]))
        result.wait_for_port("webserver", deadline)
        result.wait_for_port("api", deadline)
        yield result
    finally:
        result.stop()


def graphql(stack: Stack, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{stack.ports['webserver']}/graphql",
                                     data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
  assetNodes { assetKey { path } }
}
"""


def test_webserver_loads_the_location_from_the_code_server(stack):
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        data = graphql(stack, WORKSPACE_QUERY)["data"]
        entries = data["workspaceOrError"].get("locationEntries") or []
        # A loaded location is a RepositoryLocation; a failed one a PythonError; None while loading.
        loaded = [e for e in entries if (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"]
        if loaded or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert [e["name"] for e in entries] == ["energy_pipeline"], entries
    assert loaded, f"location did not load: {entries}\n{stack.log('code')}\n{stack.log('webserver')}"
    assets = {"/".join(node["assetKey"]["path"]) for node in data["assetNodes"]}
    assert assets >= EXPECTED_ASSETS, assets


@pytest.mark.parametrize("name", ["code", "webserver", "api"])
def test_compose_healthcheck_passes(stack, name):
    stack.wait_healthy(name, time.monotonic() + START_TIMEOUT_S)


@pytest.mark.parametrize("name", ["code", "webserver", "api"])
def test_compose_healthcheck_fails_on_a_closed_port(stack, name):
    test = load_yaml(DEV_COMPOSE)["services"][name]["healthcheck"]["test"]
    argv = localize_healthcheck(test, CONTAINER_PORTS[name], free_port())
    result = subprocess.run(argv, env=stack.env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


class _Health(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"Status: Healthy"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_questdb_healthcheck_script():
    """The QuestDB image has no curl: its healthcheck is a bash script; run it against a stand-in."""
    test = load_yaml(DEV_COMPOSE)["services"]["questdb"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"]
    script = test[3].replace("$$", "$")  # compose's escape for a literal $
    server = HTTPServer(("127.0.0.1", 0), _Health)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ok = subprocess.run(["bash", "-c", script.replace("/9003", f"/{server.server_port}")],
                            capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
    finally:
        server.shutdown()
        server.server_close()
    closed = subprocess.run(["bash", "-c", script.replace("/9003", f"/{free_port()}")], capture_output=True,
                            text=True, timeout=30)
    assert closed.returncode != 0
