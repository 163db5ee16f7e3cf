"""Shared test fixtures: a MongoDB-wire server (secantusdb) run as a separate process.

secantusdb is a GPL test tool: it is only ever started as a subprocess (``secantusd-py``), never
imported. CI always installs it (``pip install -e .[dev]``), so a missing binary fails loudly instead
of silently skipping the MongoDB half of the conformance suite.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Definitions read the environment at import: point them at a throw-away home before any test imports
# them, so no test writes into the working tree's ./.energy_pipeline or sees a developer's servers.
_TEST_HOME = Path(os.environ.get("ENERGY_PIPELINE_TEST_HOME") or
                  __import__("tempfile").mkdtemp(prefix="energy-pipeline-tests-"))
os.environ["ENERGY_PIPELINE_HOME"] = str(_TEST_HOME)
os.environ.setdefault("ENERGY_PIPELINE_START_DATE", "2025-01-01")
# Daily partitions are laid out at import in the house's zone: the simulator's Europe/Berlin, with DST.
os.environ.setdefault("ENERGY_PIPELINE_TIME_ZONE", "Europe/Berlin")
for _server_variable in ("HA_URL", "HA_TOKEN", "LEGACY_SQLITE_PATH"):
    os.environ.pop(_server_variable, None)

SECANTUS_START_TIMEOUT_S = 30.0
SECANTUS_STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def secantus_binary() -> str:
    candidate = Path(sys.executable).parent / "secantusd-py"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("secantusd-py")
    if found:
        return found
    pytest.fail("secantusd-py (from the dev dependency secantusdb) is not installed: run "
                "`pip install -e '.[dev]'`; the MongoDB conformance tests need it", pytrace=False)


class SecantusServer:
    """One ``secantusd-py`` process on a fixed port; can be stopped and started again on that port."""

    def __init__(self, storage_path: str, log_path: Path, port: int | None = None):
        self.port = port or free_port()
        self.storage_path = storage_path
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> None:
        command = [secantus_binary(), "--host", "127.0.0.1", "--port", str(self.port),
                   "--storage-path", self.storage_path, "--log-level", "WARNING"]
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        self._wait_for_ping()

    def _wait_for_ping(self) -> None:
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        assert self.process is not None
        deadline = time.monotonic() + SECANTUS_START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"secantusd-py exited with {self.process.returncode} on start:\n{self.log()}",
                            pytrace=False)
            client: MongoClient = MongoClient(self.uri, serverSelectionTimeoutMS=300, connectTimeoutMS=300)
            try:
                client.admin.command("ping")
                return
            except PyMongoError:
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"secantusd-py did not answer a ping within {SECANTUS_START_TIMEOUT_S}s:\n"
                                f"{self.log()}", pytrace=False)
                time.sleep(0.1)
            finally:
                client.close()

    def stop(self) -> None:
        """SIGTERM by pid, then SIGKILL by pid if it does not exit in time."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=SECANTUS_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=SECANTUS_STOP_TIMEOUT_S)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"


@pytest.fixture(scope="session")
def secantus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecantusServer]:
    """One in-memory server for the whole session; tests isolate themselves by database name."""
    server = SecantusServer(":memory:", tmp_path_factory.mktemp("secantus") / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def secantus_server_factory(tmp_path: Path) -> Iterator[Callable[[], SecantusServer]]:
    """Private servers with on-disk storage, for tests that stop and restart them."""
    servers: list[SecantusServer] = []

    def make() -> SecantusServer:
        index = len(servers)
        server = SecantusServer(str(tmp_path / f"secantus-data-{index}"), tmp_path / f"secantus-{index}.log")
        servers.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()
