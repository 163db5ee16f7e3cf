"""``python -m bench`` (``make bench``): every benchmark, one table, ``bench/results.json`` and ``bench/RESULTS.md``.

Each benchmark runs in its own process (``python -m bench.<name>``): they read configuration at import
and must not share one, and one process per benchmark keeps their memory and threads apart. Results of
a full run are merged into ``bench/results.json`` (a partial run with ``--only`` replaces just those
benchmarks); ``--quick`` runs write to ``bench/tmp/quick/`` unless ``--out-dir`` says otherwise, so a smoke
run never overwrites real numbers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_DIR,
    PYTHON,
    REPO,
    machine_info,
    machine_line,
    markdown_table,
    table_rows,
    text_table,
)

BENCHMARKS = ("backfill", "migration", "live_ingest", "chart_queries", "footprint", "questdb_write")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where results.json and RESULTS.md go (default bench/, bench/tmp/quick with --quick)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per benchmark")
    args = parser.parse_args(argv)
    selected = [b.strip() for b in args.only.split(",") if b.strip()] or list(BENCHMARKS)
    skipped = {b.strip() for b in args.skip.split(",") if b.strip()}
    unknown = (set(selected) | skipped) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    selected = [b for b in selected if b not in skipped]
    out_dir = args.out_dir or (BENCH_DIR / "tmp" / "quick" if args.quick else BENCH_DIR)
    per_bench_dir = out_dir / "results"
    per_bench_dir.mkdir(parents=True, exist_ok=True)

    results_path = out_dir / "results.json"
    merged: dict[str, Any] = {}
    if results_path.exists():
        try:
            merged = json.loads(results_path.read_text()).get("benchmarks", {})
        except (OSError, ValueError):
            merged = {}
    started = time.perf_counter()
    for name in selected:
        out = per_bench_dir / f"{name}.json"
        out.unlink(missing_ok=True)
        command = [PYTHON, "-m", f"bench.{name}", "--out", str(out)] + (["--quick"] if args.quick else [])
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        try:
            completed = subprocess.run(command, cwd=str(REPO), timeout=args.timeout)
            code = completed.returncode
        except subprocess.TimeoutExpired:
            code = -1
        if out.exists():
            merged[name] = json.loads(out.read_text())
            if code != 0 and not merged[name].get("error"):
                merged[name]["error"] = f"exited with code {code}"
        else:
            merged[name] = {"name": name, "title": name, "rows": [], "error": f"no result (exit code {code})"}
    total = time.perf_counter() - started
    machine = machine_info()
    ordered = {name: merged[name] for name in BENCHMARKS if name in merged}
    payload = {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "quick": args.quick,
               "machine": machine, "last_invocation_s": round(total, 1), "benchmarks": ordered}
    results_path.write_text(json.dumps(payload, indent=2) + "\n")
    rows = [row for result in ordered.values() for row in table_rows(result)]
    (out_dir / "RESULTS.md").write_text(render_markdown(payload, rows))
    print("\n" + text_table(rows))
    print(f"\nMachine: {machine_line(machine)}")
    print(f"Wrote {results_path} and {out_dir / 'RESULTS.md'} ({total:.0f} s)")
    failed = [name for name in selected if ordered.get(name, {}).get("error")]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def render_markdown(payload: dict[str, Any], rows: list[tuple[str, ...]]) -> str:
    machine = payload["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Generated {payload['generated_at']} by `make bench` (`python -m bench`)"
        + (" with `--quick` (tiny sizes, numbers not meaningful)" if payload["quick"] else "") + ".",
        "",
        f"Machine: `nproc` = {machine['nproc']}, CPU: {machine['cpu_model']}, Python {machine['python']}, "
        f"{machine['memory_gb']} GB RAM, load average at the end {machine['load_average']}, "
        f"dagster {machine['packages'].get('dagster', '?')}. The machine was shared with other work while the "
        "benchmarks ran: every target is a ratio against a baseline measured in the same run, or a percentile "
        "of many repetitions, never an absolute time.",
        "",
        markdown_table(rows),
        "",
    ]
    for result in payload["benchmarks"].values():
        notes = result.get("notes") or []
        header = f"**{result['name']}** — {result.get('title', '')}"
        when = result.get("started_at")
        if when:
            header += f" (run {when}, {result.get('duration_s', 0):.0f} s)"
        lines.append(header)
        params = result.get("params") or {}
        if params:
            lines.append("")
            lines.append("Parameters: " + "; ".join(f"{k} = {v}" for k, v in params.items()))
        for note in notes:
            lines.append(f"- {note}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
