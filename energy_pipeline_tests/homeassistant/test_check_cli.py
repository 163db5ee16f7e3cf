"""``energy-pipeline ha check`` as a subprocess against the simulator."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from energy_pipeline.homeassistant.check import collect
from energy_pipeline.simulator.server import HomeAssistantSimulator
from energy_pipeline_tests.homeassistant.conftest import TOKEN


def _check(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("HA_URL", "HA_TOKEN")}
    environment.update(ENERGY_PIPELINE_HOME=str(tmp_path), **env)
    return subprocess.run([sys.executable, "-m", "energy_pipeline.cli", "ha", "check", *args], env=environment,
                          capture_output=True, text=True, timeout=60)


def test_json_report(simulator: HomeAssistantSimulator, tmp_path: Path) -> None:
    done = _check(tmp_path, "--json", HA_URL=simulator.http_url, HA_TOKEN=TOKEN)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"ha_version", "time_zone", "entities", "last_24h"}
    assert (report["ha_version"], report["time_zone"]) == ("2025.4.4", "Europe/Berlin")
    roles = {e["statistic_id"]: e["role"] for e in report["entities"]}
    assert roles["sensor.grid_import_energy"] == "grid_import" and roles["sensor.gas_meter"] == "gas"
    assert all(set(e) == {"statistic_id", "role", "unit", "has_sum"} for e in report["entities"])
    assert set(report["last_24h"]) == set(roles)
    assert report["last_24h"]["sensor.grid_import_energy"] > 0
    assert TOKEN not in done.stdout + done.stderr


def test_last_24h_is_the_sum_of_hourly_change(simulator: HomeAssistantSimulator) -> None:
    report = collect(simulator.url, TOKEN)
    house = simulator.house
    end = house.now()
    from datetime import timedelta

    rows = house.statistics_during_period(["sensor.gas_meter"], end - timedelta(hours=24), end, "hour")
    assert report["last_24h"]["sensor.gas_meter"] == pytest.approx(sum(r["change"] for r in rows["sensor.gas_meter"]),
                                                                 abs=1e-5)


def test_text_report(simulator: HomeAssistantSimulator, tmp_path: Path) -> None:
    done = _check(tmp_path, HA_URL=simulator.url, HA_TOKEN=TOKEN)
    assert done.returncode == 0, done.stderr
    assert "Home Assistant 2025.4.4, time zone Europe/Berlin" in done.stdout
    assert "sensor.heat_pump_energy" in done.stdout and "device" in done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("case", ["bad_token", "unreachable", "bad_url", "no_url", "no_token"])
def test_failures_exit_2_with_one_clear_line(simulator: HomeAssistantSimulator, tmp_path: Path, case: str) -> None:
    env = {
        "bad_token": {"HA_URL": simulator.http_url, "HA_TOKEN": "wrong-token-xyz"},
        "unreachable": {"HA_URL": f"http://127.0.0.1:{_free_port()}", "HA_TOKEN": TOKEN},
        "bad_url": {"HA_URL": "http://127.0.0.1:8123/lovelace", "HA_TOKEN": TOKEN},
        "no_url": {"HA_TOKEN": TOKEN},
        "no_token": {"HA_URL": simulator.http_url},
    }[case]
    done = _check(tmp_path, "--json", **env)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    expected = {"bad_token": "token rejected by Home Assistant", "unreachable": "connection refused",
                "bad_url": "invalid Home Assistant URL", "no_url": "HA_URL is not set",
                "no_token": "HA_TOKEN is not set"}[case]
    assert expected in lines[0]
    assert "wrong-token-xyz" not in done.stderr and TOKEN not in done.stderr
