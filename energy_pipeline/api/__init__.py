"""HTTP API for charts, settings and status, and the chart page (``energy-pipeline api``).

``create_app`` is imported lazily so that building the CLI does not import FastAPI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from energy_pipeline.api.app import create_app

        return create_app
    raise AttributeError(name)
