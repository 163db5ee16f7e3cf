"""Benchmark 5: footprint of ``make demo`` — peak memory of its processes and time until the UI answers.

Runs ``energy-pipeline demo`` (what ``make demo`` runs) with a temporary ``ENERGY_PIPELINE_HOME`` and free
ports: simulator, Dagster UI + daemon (``dagster dev``: webserver, daemon, code servers, run workers),
the chart API, the first 7-day backfill and the stream run the daemon's sensor starts. Every 0.25 s the
process tree under the demo is read from ``/proc``: resident set (RSS) and proportional set (PSS, shared
pages split between the processes sharing them, so the PSS total is what the demo really costs). Once
the backfills are done and the stream run is streaming (or has not started within 3 minutes), the demo
is stopped with SIGTERM, as Ctrl-C would.

``--quick`` runs only the simulator and the API (no Dagster): it checks the measuring code, nothing more.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import (
    BIN,
    BenchResult,
    Child,
    clean_env,
    free_port,
    log,
    run_benchmark,
    scratch_dir,
    start_child,
)
from energy_pipeline.simulator.server import wait_for

NAME = "footprint"
TITLE = "Footprint: peak memory of `make demo`'s processes and time until the Dagster UI answers"
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
COMPONENTS = (
    ("simulate-ha", "HA simulator"),
    ("energy-pipeline api", "chart API"),
    ("dagster_webserver", "Dagster webserver"),
    ("dagster._daemon", "Dagster daemon"),
    ("dagster-daemon", "Dagster daemon"),
    ("code-server", "Dagster code server"),
    ("api grpc", "Dagster code server"),
    ("execute_run", "Dagster run worker"),
    ("multiprocessing.spawn", "Dagster run/step workers (spawned)"),
    ("multiprocessing.resource_tracker", "multiprocessing resource trackers"),
    ("tail -F", "compute-log tails"),
    ("watch_orphans", "Dagster orphan watcher"),
    ("asset materialize", "discovery run (CLI)"),
    ("dagster dev", "dagster dev (supervisor)"),
    ("energy-pipeline demo", "demo launcher"),
)


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, default=7, help="days the demo backfills (default 7, as make demo)")
    parser.add_argument("--stream-wait", type=float, default=180.0, help="seconds to wait for the stream run")


def classify(cmdline: str) -> str:
    for needle, name in COMPONENTS:
        if needle in cmdline:
            return name
    return "other"


def _proc_tree(roots: list[int]) -> list[int]:
    parents: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents[ppid].append(int(entry))
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def _memory_kb(pid: int) -> tuple[int, int] | None:
    """(RSS, PSS) in kB, or None when the process is gone."""
    try:
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
        pss = 0
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
                break
        return rss, pss
    except (OSError, ValueError, IndexError):
        return None


class Sampler(threading.Thread):
    def __init__(self, roots: list[int], interval: float = 0.25):
        super().__init__(name="bench-sampler", daemon=True)
        self.roots = roots
        self.interval = interval
        self.stop_event = threading.Event()
        self.started_at = time.monotonic()
        self.peak_rss = self.peak_pss = 0
        self.peak_rss_at = 0.0
        self.peak_processes = 0
        self.component_peak_rss: dict[str, int] = defaultdict(int)
        self.component_peak_pss: dict[str, int] = defaultdict(int)
        self.cmdlines: dict[int, str] = {}
        self.series: list[tuple[float, int, int]] = []

    def cmdline(self, pid: int) -> str:
        if pid not in self.cmdlines:
            try:
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                return ""
            self.cmdlines[pid] = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        return self.cmdlines[pid]

    def sample(self) -> None:
        total_rss = total_pss = 0
        by_component_rss: dict[str, int] = defaultdict(int)
        by_component_pss: dict[str, int] = defaultdict(int)
        pids = _proc_tree(self.roots)
        for pid in pids:
            memory = _memory_kb(pid)
            if memory is None:
                continue
            component = classify(self.cmdline(pid))
            total_rss += memory[0]
            total_pss += memory[1]
            by_component_rss[component] += memory[0]
            by_component_pss[component] += memory[1]
        now = time.monotonic() - self.started_at
        self.series.append((round(now, 2), total_rss, total_pss))
        if total_rss > self.peak_rss:
            self.peak_rss, self.peak_rss_at, self.peak_processes = total_rss, now, len(pids)
        self.peak_pss = max(self.peak_pss, total_pss)
        for component, value in by_component_rss.items():
            self.component_peak_rss[component] = max(self.component_peak_rss[component], value)
        for component, value in by_component_pss.items():
            self.component_peak_pss[component] = max(self.component_peak_pss[component], value)

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            time.sleep(self.interval)


class LineReader(threading.Thread):
    """The demo's stdout, line by line, with the time each line arrived."""

    def __init__(self, stream: Any, started: float, log_path: Path):
        super().__init__(name="bench-demo-stdout", daemon=True)
        self.stream, self.started, self.log_path = stream, started, log_path
        self.lines: list[tuple[float, str]] = []

    def run(self) -> None:
        with open(self.log_path, "a") as log_file:
            for raw in iter(self.stream.readline, b""):
                line = raw.decode(errors="replace").rstrip()
                self.lines.append((time.monotonic() - self.started, line))
                log_file.write(line + "\n")

    def first(self, pattern: str) -> tuple[float, str] | None:
        for when, line in list(self.lines):
            if re.search(pattern, line):
                return when, line
        return None


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except Exception:
        return False


def _stream_status(api_port: int) -> str | None:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{api_port}/api/status", timeout=5).json().get("stream", {}).get("status")
    except Exception:
        return None


def body(args: argparse.Namespace, result: BenchResult) -> None:
    with scratch_dir(NAME, args.keep) as scratch:
        if args.quick:
            quick_footprint(scratch, result)
        else:
            demo_footprint(scratch, result, args)


def quick_footprint(scratch: Path, result: BenchResult) -> None:
    home = scratch / "home"
    env = clean_env(ENERGY_PIPELINE_HOME=str(home))
    ha_port, api_port = free_port(), free_port()
    started = time.monotonic()
    children = [
        start_child([str(BIN / "energy-pipeline"), "simulate-ha", "--port", str(ha_port), "--token", "t", "--days",
                     "2"], env, scratch / "simulator.log", "simulator", cwd=scratch),
        start_child([str(BIN / "energy-pipeline"), "api", "--port", str(api_port), "--log-level", "warning"], env,
                    scratch / "api.log", "api", cwd=scratch),
    ]
    sampler = Sampler([c.pid for c in children])
    sampler.start()
    try:
        if not wait_for(lambda: _answers(f"http://127.0.0.1:{api_port}/api/health"), 60, 0.1):
            raise RuntimeError(f"the API did not answer: {children[1].log_tail()}")
        api_s = time.monotonic() - started
        time.sleep(1.0)
    finally:
        sampler.stop_event.set()
        sampler.join(5)
        for child in children:
            child.stop()
    result.params.update(mode="quick: simulator + API only, no Dagster")
    result.add("time from start to the API answering", api_s, "s")
    report_memory(result, sampler)


def demo_footprint(scratch: Path, result: BenchResult, args: argparse.Namespace) -> None:
    home = scratch / "home"
    dagster_port, api_port, ha_port = free_port(), free_port(), free_port()
    env = clean_env(ENERGY_PIPELINE_HOME=str(home))
    result.params.update(command=f"energy-pipeline demo --days {args.days} (what `make demo` runs)",
                         sample_interval_s=0.25)
    started = time.monotonic()
    demo = subprocess.Popen([str(BIN / "energy-pipeline"), "demo", "--dagster-port", str(dagster_port),
                             "--api-port", str(api_port), "--ha-port", str(ha_port), "--days", str(args.days)],
                            env=env, cwd=str(scratch), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=open(scratch / "demo.stderr.log", "wb"), start_new_session=True)  # noqa: SIM115
    child = Child(demo, "demo", scratch / "demo.stderr.log")
    reader = LineReader(demo.stdout, started, scratch / "demo.stdout.log")
    reader.start()
    sampler = Sampler([demo.pid])
    sampler.start()
    marks: dict[str, float] = {}
    try:
        while "ui" not in marks or "api" not in marks:
            if demo.poll() is not None:
                raise RuntimeError(f"the demo exited early ({demo.returncode}): {child.log_tail()}")
            if time.monotonic() - started > 300:
                raise RuntimeError("the Dagster UI did not answer within 300 s")
            if "ui" not in marks and _answers(f"http://127.0.0.1:{dagster_port}/server_info"):
                marks["ui"] = time.monotonic() - started
                log(NAME, f"Dagster UI answers after {marks['ui']:.1f} s")
            if "api" not in marks and _answers(f"http://127.0.0.1:{api_port}/api/health"):
                marks["api"] = time.monotonic() - started
            time.sleep(0.25)
        if not wait_for(lambda: reader.first(r"Daily summaries done") is not None or demo.poll() is not None, 900,
                          0.5):
            raise RuntimeError("the demo's backfills did not finish within 900 s")
        if demo.poll() is not None:
            raise RuntimeError(f"the demo exited ({demo.returncode}): {child.log_tail()}")
        marks["backfills"] = reader.first(r"Daily summaries done")[0]  # type: ignore[index]
        log(NAME, f"backfills done after {marks['backfills']:.1f} s; waiting for the stream run")
        if wait_for(lambda: _stream_status(api_port) == "streaming", args.stream_wait, 1.0):
            marks["stream"] = time.monotonic() - started
            time.sleep(10.0)  # let the stream run settle at its working size
        else:
            result.note(f"the stream run was not streaming {args.stream_wait:.0f} s after the backfills")
    finally:
        sampler.stop_event.set()
        sampler.join(5)
        stop_demo(child, sampler)
    launched = reader.first(r"Backfill \S+ of the last")
    completed = [(when, line) for when, line in reader.lines if re.search(r"backfill \S+: COMPLETED", line)]
    result.add("time from start to the Dagster UI answering", marks["ui"], "s")
    result.add("time from start to the chart API answering", marks["api"], "s")
    if launched and completed:
        result.add(f"first backfill ({args.days} days of hours) launched → completed, via the daemon",
                   completed[0][0] - launched[0], "s")
    result.add("time from start to both backfills done", marks["backfills"], "s")
    if "stream" in marks:
        result.add("time from start to the stream run streaming", marks["stream"], "s")
    report_memory(result, sampler)
    result.data["marks_s"] = marks
    result.data["demo_output"] = [line for _, line in reader.lines][-20:]


def stop_demo(child: Child, sampler: Sampler) -> None:
    """SIGTERM to the demo (it stops its children's process groups); anything left is stopped by pid."""
    seen = list(sampler.cmdlines)
    child.stop(grace_s=60)
    time.sleep(1.0)
    for pid in seen:
        if pid == child.pid or not Path(f"/proc/{pid}").exists():
            continue
        try:
            if os.getpgid(pid) == pid:  # a group the demo started for one of its children
                os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass


def report_memory(result: BenchResult, sampler: Sampler) -> None:
    mb = 1024
    result.add("peak RSS, all processes together", sampler.peak_rss / mb, "MB",
               baseline=f"{sampler.peak_processes} processes at the peak ({sampler.peak_rss_at:.0f} s in)")
    result.add("peak PSS, all processes together (shared pages split)", sampler.peak_pss / mb, "MB")
    for component, value in sorted(sampler.component_peak_rss.items(), key=lambda kv: -kv[1]):
        result.add(f"peak RSS: {component}", value / mb, "MB",
                   baseline=f"PSS {sampler.component_peak_pss.get(component, 0) / mb:.0f} MB")
    result.data["series_s_rss_pss_kb"] = sampler.series[:: max(1, len(sampler.series) // 400)]
    result.data["processes"] = {str(pid): cmd[:300] for pid, cmd in sampler.cmdlines.items()}


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(NAME, TITLE, argv, __doc__.splitlines()[0], body, add_flags)


if __name__ == "__main__":
    raise SystemExit(main())
