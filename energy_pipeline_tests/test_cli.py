"""The `energy-pipeline` command's own subcommands (others are tested next to their modules)."""

import os
import subprocess
import sys

from energy_pipeline_tests.conftest import free_port


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "energy_pipeline.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)




def test_every_subcommand_is_registered():
    result = run_cli("--help")
    for command in ("config", "backfill", "demo", "api", "simulate-ha", "ha"):
        assert command in result.stdout


def test_backfill_rejects_a_key_outside_the_partitions():
    result = run_cli("backfill", "hourly_energy_statistics", "--from", "1999-01-01-00:00", "--to", "1999-01-01-05:00")
    assert result.returncode == 2
    assert "'1999-01-01-00:00' is not a partition of hourly_energy_statistics" in result.stderr


def test_backfill_says_clearly_when_the_webserver_is_down():
    port = free_port()
    result = run_cli("backfill", "hourly_energy_statistics", "--from", "2025-01-02-00:00", "--to",
                     "2025-01-02-05:00", DAGSTER_GRAPHQL_URL=f"http://127.0.0.1:{port}/graphql")
    assert result.returncode == 2
    assert f"Dagster webserver at http://127.0.0.1:{port}/graphql is not reachable" in result.stderr
