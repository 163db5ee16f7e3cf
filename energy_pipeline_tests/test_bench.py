"""Smoke test of the benchmarks: every module runs with tiny sizes (``--quick``) and writes its JSON.

It runs ``python -m bench --quick`` (what ``make bench`` runs, at toy sizes) into a temporary directory:
the numbers are meaningless at these sizes, so only the shape of the results is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = ("backfill", "migration", "live_ingest", "chart_queries", "footprint", "questdb_write")


@pytest.mark.timeout(240)
def test_every_benchmark_runs_quick_and_writes_its_json(tmp_path: Path) -> None:
    completed = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out-dir", str(tmp_path)], cwd=REPO,
                               capture_output=True, text=True, timeout=230)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["quick"] is True
    assert results["machine"]["nproc"] >= 1 and results["machine"]["cpu_model"]
    assert tuple(results["benchmarks"]) == BENCHMARKS
    for name in BENCHMARKS:
        own = json.loads((tmp_path / "results" / f"{name}.json").read_text())
        assert own["name"] == name and own["quick"] is True and own["error"] is None, own.get("error")
        assert own["rows"], f"{name} reported nothing"
        assert all(isinstance(row["metric"], str) for row in own["rows"])
    markdown = (tmp_path / "RESULTS.md").read_text()
    assert "nproc" in markdown and "| benchmark |" in markdown
