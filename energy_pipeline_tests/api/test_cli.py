"""``energy-pipeline api`` starts uvicorn with the app on the given host and port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from energy_pipeline.cli import build_parser
from energy_pipeline_tests.conftest import free_port


def test_api_subcommand_is_registered() -> None:
    args = build_parser().parse_args(["api", "--host", "127.0.0.1", "--port", "8123"])
    assert (args.command, args.host, args.port) == ("api", "127.0.0.1", 8123)
    defaults = build_parser().parse_args(["api"])
    assert (defaults.host, defaults.port) == ("127.0.0.1", 8000)


def test_api_command_serves_health_and_the_page(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HA_URL", "HA_TOKEN", "MONGODB_URI", "QUESTDB_ADDR")}
    env["ENERGY_PIPELINE_HOME"] = str(tmp_path / "home")
    log_path = tmp_path / "api.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "energy_pipeline.cli", "api", "--host", "127.0.0.1",
                                    "--port", str(port)], env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the API did not start:\n" + log_path.read_text()
                time.sleep(0.2)
        assert response.status_code == 200 and response.json()["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        assert (tmp_path / "home" / "documents.sqlite3").exists()
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    # uvicorn shuts down cleanly, then re-raises the signal so the exit status tells it was terminated
    assert process.returncode in (0, -signal.SIGTERM), log_path.read_text()
    assert "Application shutdown complete" in log_path.read_text()
