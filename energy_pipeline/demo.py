"""``energy-pipeline demo``: everything on the embedded default, one command, clean stop on Ctrl-C.

Starts the Home Assistant simulator (or uses ``HA_URL``/``HA_TOKEN`` when both are set), discovers
the entities, starts the Dagster UI and daemon (``dagster dev``) and the chart API, then launches
backfills of the last 7 days through the webserver so they show in the UI. Children run in their own
process groups (``dagster dev`` ignores signals otherwise) and are stopped by group on exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from energy_pipeline.config import load_config
from energy_pipeline.orchestration import DagsterGraphQLClient

SIMULATOR_TOKEN = "demo-simulator-token"
DAGSTER_YAML = """\
# Local instance of `make demo` (SQLite storage under this folder).
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 3
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run simulator, Dagster UI, API and a first backfill locally")
    parser.add_argument("--dagster-port", type=int, default=3000)
    parser.add_argument("--api-port", type=int, default=8000)
    parser.add_argument("--ha-port", type=int, default=8123)
    parser.add_argument("--days", type=int, default=7, help="days of statistics to materialize at start")
    parser.add_argument("--exit-after-backfill", action="store_true",
                        help="stop everything once the first backfill finished (for tests)")
    parser.set_defaults(func=run_demo)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_for_port(port: int, deadline_s: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + deadline_s
    while port_is_free(port):
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with code {process.returncode} before listening")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {deadline_s:.0f} s")
        time.sleep(0.3)


@dataclass
class Processes:
    """Children started in their own sessions; stopped by process group, newest first."""

    started: list[subprocess.Popen] = field(default_factory=list)

    def start(self, args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(args, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.started.append(process)
        return process

    def stop_all(self, grace_s: float = 15.0) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + grace_s
        for process in self.started:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def hourly_keys(days: int, now: datetime) -> list[str]:
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hours = [end - timedelta(hours=h) for h in range(days * 24, 0, -1)]
    return [h.strftime("%Y-%m-%d-%H:%M") for h in hours]


def daily_keys(days: int, now: datetime) -> list[str]:
    today = now.date()
    return [(today - timedelta(days=d)).isoformat() for d in range(days, 0, -1)]


def run_demo(args: argparse.Namespace) -> int:
    config = load_config()
    home = config.home.resolve()
    dagster_home = home / "dagster"
    logs = home / "logs"
    for folder in (dagster_home, logs):
        folder.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    env = dict(os.environ, DAGSTER_HOME=str(dagster_home), ENERGY_PIPELINE_HOME=str(home),
               PYTHONUNBUFFERED="1")
    bin_dir = Path(sys.executable).parent
    cli = str(bin_dir / "energy-pipeline")
    processes = Processes()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        if config.ha_url and config.ha_token:
            print(f"Using your Home Assistant at {config.ha_url} (HA_URL and HA_TOKEN are set).")
        else:
            if not port_is_free(args.ha_port):
                raise RuntimeError(f"port {args.ha_port} is taken: stop what uses it or pass --ha-port")
            simulator = processes.start(
                [cli, "simulate-ha", "--port", str(args.ha_port), "--token", SIMULATOR_TOKEN, "--days", "30"],
                env, logs / "simulator.log")
            wait_for_port(args.ha_port, 60, simulator)
            env.update(HA_URL=f"http://127.0.0.1:{args.ha_port}", HA_TOKEN=SIMULATOR_TOKEN)
            print(f"Home Assistant simulator on ws://127.0.0.1:{args.ha_port}/api/websocket "
                  "(set HA_URL and HA_TOKEN to use a real one).")

        print("Discovering entities (energy_entities) ...")
        subprocess.run([str(bin_dir / "dagster"), "asset", "materialize", "-m", "energy_pipeline.definitions",
                        "--select", "energy_entities"], env=env, check=True,
                       stdout=open(logs / "discovery.log", "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115

        for port, what in ((args.dagster_port, "--dagster-port"), (args.api_port, "--api-port")):
            if not port_is_free(port):
                raise RuntimeError(f"port {port} is taken: stop what uses it or pass {what}")
        dagster = processes.start([str(bin_dir / "dagster"), "dev", "-h", "127.0.0.1", "-p",
                                   str(args.dagster_port), "-m", "energy_pipeline.definitions"],
                                  env, logs / "dagster.log")
        api = processes.start([cli, "api", "--host", "127.0.0.1", "--port", str(args.api_port)],
                              env, logs / "api.log")
        graphql = DagsterGraphQLClient(f"http://127.0.0.1:{args.dagster_port}/graphql")
        wait_for_port(args.dagster_port, 180, dagster)
        graphql.wait_until_up(180)
        wait_for_port(args.api_port, 60, api)
        print(f"\n  Dagster UI  http://127.0.0.1:{args.dagster_port}\n  Chart API   http://127.0.0.1:{args.api_port}\n")

        now = datetime.now(UTC)
        hourly = graphql.launch_asset_backfill("hourly_energy_statistics", hourly_keys(args.days, now),
                                               title=f"demo: last {args.days} days")
        print(f"Backfill {hourly} of the last {args.days} days of hourly statistics launched; watch it in the UI.")
        wait_for_backfill(graphql, hourly)
        from energy_pipeline.defs.ha_statistics.partitions import daily_partitions_def

        local_now = now.astimezone(ZoneInfo(daily_partitions_def.timezone or "UTC"))
        daily = graphql.launch_asset_backfill("daily_energy_summary", daily_keys(args.days, local_now),
                                              title=f"demo: daily summaries of the last {args.days} days")
        wait_for_backfill(graphql, daily)
        print(f"Daily summaries done (backfill {daily}). Logs in {logs}. Ctrl-C stops everything.")
        if args.exit_after_backfill:
            return 0
        while all(p.poll() is None for p in processes.started):
            time.sleep(1.0)
        failed = [p for p in processes.started if p.poll() is not None]
        print(f"{failed[0].args[0]} stopped (code {failed[0].returncode}); see {logs}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping ...")
        return 0
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"demo failed: {exc}; see the logs in {logs}", file=sys.stderr)
        return 1
    finally:
        processes.stop_all()


def wait_for_backfill(graphql: DagsterGraphQLClient, backfill_id: str, deadline_s: float = 900) -> str:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        status = graphql.backfill_status(backfill_id)
        if status in {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}:
            print(f"  backfill {backfill_id}: {status}")
            return status
        time.sleep(2.0)
    raise RuntimeError(f"backfill {backfill_id} did not finish within {deadline_s:.0f} s")
