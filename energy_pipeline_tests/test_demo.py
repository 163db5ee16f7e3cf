"""``make demo``'s choice between the user's Home Assistant and the simulator, and the command's help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from energy_pipeline.demo import SIMULATOR_TOKEN, choose_home_assistant

CLI = "/venv/bin/energy-pipeline"
TOKEN = "real-long-lived-token-abcdef"


def test_both_set_uses_the_real_home_assistant_and_no_simulator() -> None:
    choice = choose_home_assistant("http://homeassistant.local:8123", TOKEN, CLI, 8123)
    assert choice.simulator_command is None and not choice.simulated
    assert (choice.url, choice.token) == ("http://homeassistant.local:8123", TOKEN)
    assert choice.message == ("Using your Home Assistant at http://homeassistant.local:8123 (HA_URL and HA_TOKEN "
                              "are set).")
    assert TOKEN not in choice.message and TOKEN not in repr(choice)


@pytest.mark.parametrize(("url", "token", "note"), [
    (None, None, ""),
    ("", "", ""),
    ("http://homeassistant.local:8123", None, " HA_URL is set but HA_TOKEN is not: set both"),
    (None, TOKEN, " HA_TOKEN is set but HA_URL is not: set both"),
])
def test_one_or_none_set_starts_the_simulator(url: str | None, token: str | None, note: str) -> None:
    choice = choose_home_assistant(url, token, CLI, 18123)
    assert choice.simulated
    assert choice.simulator_command == [CLI, "simulate-ha", "--port", "18123", "--token", SIMULATOR_TOKEN,
                                        "--days", "30"]
    assert (choice.url, choice.token) == ("http://127.0.0.1:18123", SIMULATOR_TOKEN)  # what the runs get
    assert choice.message.startswith("Home Assistant simulator on ws://127.0.0.1:18123/api/websocket")
    assert note in choice.message
    if token:
        assert token not in choice.message


def test_a_saved_url_is_warned_about() -> None:
    choice = choose_home_assistant(None, None, CLI, 8123, saved_ha_url="http://saved.local:8123")
    assert choice.simulated and "saved in the settings (http://saved.local:8123)" in choice.message
    assert "win over HA_URL/HA_TOKEN" in choice.message


def test_demo_help() -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "energy-pipeline"), "demo", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for text in ("--ha-port", "--dagster-port", "--api-port", "HA_URL", "HA_TOKEN", "Long-lived access tokens"):
        assert text in result.stdout, text
