"""Fixtures: a simulated house and a simulator on a real socket (background thread)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from energy_pipeline.simulator.house import SimulatedHouse
from energy_pipeline.simulator.server import HomeAssistantSimulator

TOKEN = "simulator-test-token-1234567890"


@pytest.fixture
def simulator() -> Iterator[HomeAssistantSimulator]:
    """A fresh simulator per test (fault injection changes its state); 5 events/s per entity."""
    with HomeAssistantSimulator(SimulatedHouse(seed=3, days=3), token=TOKEN, event_rate=5) as sim:
        yield sim
