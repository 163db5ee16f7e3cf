"""The one Dagster ``Definitions`` of energy_pipeline (code location ``energy_pipeline``)."""

from __future__ import annotations

import dagster as dg

from energy_pipeline.defs.resources import build_resources

defs = dg.Definitions(resources=build_resources())
