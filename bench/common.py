"""Shared helpers of the benchmarks: results, tables, statistics, environment, processes, machine info.

Every benchmark module has ``main(argv)`` that parses the common flags (``--quick``, ``--out``,
``--keep``), runs, prints its table and writes one JSON file. Numbers that decide a target are always
ratios against a baseline measured in the same run, or medians / percentiles of several repetitions:
the machine is shared, so an absolute time is only ever reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
PYTHON = sys.executable
BIN = Path(PYTHON).parent

# Variables that point the code at servers or change its layout: benchmarks start from none of them.
SERVER_VARIABLES = ("HA_URL", "HA_TOKEN", "MONGODB_URI", "QUESTDB_ADDR", "QUESTDB_PG_DSN", "LEGACY_SQLITE_PATH",
                    "ENERGY_PIPELINE_SECRET_KEY", "ENERGY_PIPELINE_TIME_ZONE", "ENERGY_PIPELINE_START_DATE",
                    "ENERGY_PIPELINE_HOME", "DAGSTER_HOME", "DAGSTER_GRAPHQL_URL")


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------

def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (numpy's default), ``p`` in 0..100."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"n": len(values), "min": min(values) if values else math.nan, "p50": percentile(values, 50),
            "p95": percentile(values, 95), "p99": percentile(values, 99),
            "max": max(values) if values else math.nan,
            "mean": sum(values) / len(values) if values else math.nan}


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------

@dataclass
class Row:
    """One line of a benchmark's table. ``met`` is None when the line has no target."""

    metric: str
    value: float | int | str | None
    unit: str = ""
    baseline: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None

    def shown_value(self) -> str:
        return f"{fmt(self.value)} {self.unit}".strip()


@dataclass
class BenchResult:
    name: str
    title: str
    quick: bool
    params: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    duration_s: float = 0.0
    machine: dict[str, Any] = field(default_factory=lambda: machine_info())
    error: str | None = None

    def add(self, metric: str, value: Any, unit: str = "", **kwargs: Any) -> Row:
        row = Row(metric, value, unit, **kwargs)
        self.rows.append(row)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["targets_met"] = [r.met for r in self.rows if r.met is not None]
        return _clean_json(out)


def _clean_json(value: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_json(v) for v in value]
    return value


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 100:
            return f"{value:.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        if magnitude >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def met_mark(met: bool | None) -> str:
    return "" if met is None else ("MET" if met else "MISSED")


TABLE_HEADER = ("benchmark", "metric", "value", "baseline (same run)", "ratio", "target", "")


def table_rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for row in result.get("rows", []):
        value = f"{fmt(row['value'])} {row['unit']}".strip()
        ratio = "" if row.get("ratio") is None else f"{fmt(row['ratio'])}×"
        rows.append((result["name"], row["metric"], value, row.get("baseline") or "", ratio, row.get("target") or "",
                     met_mark(row.get("met"))))
    if result.get("error"):
        rows.append((result["name"], "ERROR", result["error"][:100], "", "", "", "FAILED"))
    return rows


def text_table(rows: Sequence[Sequence[str]], header: Sequence[str] = TABLE_HEADER) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def markdown_table(rows: Sequence[Sequence[str]], header: Sequence[str] = TABLE_HEADER) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|")

    out = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# Machine
# --------------------------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def memory_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    versions: dict[str, str] = {}
    for package in ("dagster", "pandas", "numpy", "uvicorn", "fastapi", "websockets", "questdb"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[package] = version(package)
    return {"nproc": nproc(), "cpu_model": cpu_model(), "python": platform.python_version(),
            "platform": platform.platform(), "memory_gb": memory_total_gb(), "load_average": load,
            "packages": versions}


def machine_line(machine: dict[str, Any]) -> str:
    return (f"{machine.get('nproc')} CPU(s) (`nproc`), {machine.get('cpu_model')}, Python {machine.get('python')}, "
            f"{machine.get('memory_gb')} GB RAM, dagster {machine.get('packages', {}).get('dagster', '?')}")


# --------------------------------------------------------------------------------------------------
# Environment, files, ports
# --------------------------------------------------------------------------------------------------

def clean_env(**overrides: str) -> dict[str, str]:
    """The current environment without any server/layout variable, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def configure_process_env(**overrides: str) -> None:
    """Set this process's environment before ``energy_pipeline.defs`` is imported (it reads it at import)."""
    for name in SERVER_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update({k: str(v) for k, v in overrides.items()})


@contextlib.contextmanager
def scratch_dir(name: str, keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"energy-bench-{name}-"))
    try:
        yield path
    finally:
        if keep:
            print(f"[{name}] kept scratch directory {path}", flush=True)
        else:
            shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dagster_yaml(base_dir: Path) -> str:
    """A Dagster instance on SQLite in ``base_dir`` (what ``dagster dev`` uses by default), telemetry off."""
    return (f"telemetry:\n  enabled: false\nstorage:\n  sqlite:\n    base_dir: {base_dir}\n")


def dagster_postgres_yaml(url: str) -> str:
    """Postgres instance storage. The driver is named: with SQLAlchemy 2.1 a bare ``postgresql://`` means
    psycopg 3, on which dagster-postgres's ``NOTIFY run_events, $1`` is a syntax error."""
    url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    return f"telemetry:\n  enabled: false\nstorage:\n  postgres:\n    postgres_url: \"{url}\"\n"


# --------------------------------------------------------------------------------------------------
# Processes: started in their own session, stopped by their process-group id (= their pid)
# --------------------------------------------------------------------------------------------------

@dataclass
class Child:
    process: subprocess.Popen
    name: str
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace_s: float = 10.0) -> int | None:
        process = self.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=grace_s)
        return process.returncode

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start_child(args: Sequence[str], env: dict[str, str], log_path: Path, name: str,
                cwd: Path | None = None, stdout: Any = None) -> Child:
    log_file = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    process = subprocess.Popen(list(args), env=env, cwd=str(cwd or REPO), stdin=subprocess.DEVNULL,
                               stdout=stdout if stdout is not None else log_file, stderr=log_file,
                               start_new_session=True)
    log_file.close()
    return Child(process, name, log_path)




def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------------------------------
# Entry point shared by every module
# --------------------------------------------------------------------------------------------------

def parse_args(name: str, argv: Sequence[str] | None, description: str,
               extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test); numbers are not meaningful")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"JSON result file (default bench/results/{name}.json)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    if extra:
        extra(parser)
    return parser.parse_args(argv)


def run_benchmark(name: str, title: str, argv: Sequence[str] | None, description: str,
                  body: Callable[[argparse.Namespace, BenchResult], None],
                  extra: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """Parse flags, run ``body``, print the table, write the JSON. Exit code 1 when the body failed."""
    args = parse_args(name, argv, description, extra)
    result = BenchResult(name=name, title=title, quick=args.quick)
    started = time.perf_counter()
    print(f"[{name}] {title}{' (quick)' if args.quick else ''} on {machine_line(result.machine)}", flush=True)
    try:
        body(args, result)
    except BaseException as exc:  # report what was measured so far, then fail
        import traceback

        result.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        if isinstance(exc, KeyboardInterrupt):
            raise
    result.duration_s = round(time.perf_counter() - started, 1)
    out = args.out or RESULTS_DIR / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = result.to_json()
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(text_table(table_rows(payload)), flush=True)
    for note in result.notes:
        print(f"  - {note}", flush=True)
    print(f"[{name}] done in {result.duration_s:.0f} s; wrote {out}", flush=True)
    return 1 if result.error else 0


def log(name: str, message: str) -> None:
    print(f"[{name}] {time.strftime('%H:%M:%S')} {message}", flush=True)
