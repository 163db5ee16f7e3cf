"""``energy-pipeline demo``: everything on the embedded default, one command, clean stop on Ctrl-C.

Starts the Home Assistant simulator (or uses ``HA_URL``/``HA_TOKEN`` when both are set, see
:func:`choose_home_assistant`), discovers the entities, starts the Dagster UI and daemon (``dagster dev``)
and the chart API, then launches backfills of the last 7 days through the webserver so they show in the
UI. Children run in their own process groups (``dagster dev`` ignores signals otherwise) and are stopped
by group on exit.
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

from energy_pipeline.config import Config, load_config
from energy_pipeline.orchestration import DagsterGraphQLClient
from energy_pipeline.storage.factory import open_documents

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


@dataclass(frozen=True)
class HomeAssistantChoice:
    """Which Home Assistant the demo talks to; ``simulator_command`` is None for the user's own."""

    url: str
    token: str = field(repr=False)
    simulator_command: list[str] | None
    message: str

    @property
    def simulated(self) -> bool:
        return self.simulator_command is not None


def choose_home_assistant(ha_url: str | None, ha_token: str | None, cli: str, port: int,
                          saved_ha_url: str | None = None) -> HomeAssistantChoice:
    """The user's Home Assistant when both ``HA_URL`` and ``HA_TOKEN`` are set, else the simulator on ``port``.

    One of the two alone is not enough to reach a real house, so it falls back to the simulator and says
    which variable is missing. ``saved_ha_url`` (a URL saved through the settings API) is only warned about:
    saved settings win over the environment in every run, so they would redirect the demo's runs."""
    warning = ""
    if saved_ha_url:
        warning = (f"\nNote: a Home Assistant URL is saved in the settings ({saved_ha_url}); saved settings win over "
                   "HA_URL/HA_TOKEN in every run. Remove it in the page's settings view (or PUT /api/settings "
                   '{"ha_url": null, "ha_token": null}) to use the environment\'s Home Assistant.')
    if ha_url and ha_token:
        return HomeAssistantChoice(url=ha_url, token=ha_token, simulator_command=None,
                                   message=f"Using your Home Assistant at {ha_url} (HA_URL and HA_TOKEN are set)."
                                   + warning)
    note = ""
    if ha_url or ha_token:
        have, missing = ("HA_URL", "HA_TOKEN") if ha_url else ("HA_TOKEN", "HA_URL")
        note = f" {have} is set but {missing} is not: set both to use your own Home Assistant."
    command = [cli, "simulate-ha", "--port", str(port), "--token", SIMULATOR_TOKEN, "--days", "30"]
    return HomeAssistantChoice(
        url=f"http://127.0.0.1:{port}", token=SIMULATOR_TOKEN, simulator_command=command,
        message=f"Home Assistant simulator on ws://127.0.0.1:{port}/api/websocket (set HA_URL and HA_TOKEN to use "
                f"a real one).{note}{warning}")


def saved_ha_url(config: Config) -> str | None:
    """The HA URL saved through the settings API, if the document store can be read (best effort)."""
    try:
        store = open_documents(config)
        try:
            store.ensure_schema()
            return store.get_settings().get("ha_url") or None
        finally:
            store.close()
    except Exception:  # a store that is down must not stop the demo; the runs will say so
        return None


DEMO_DESCRIPTION = """Start everything on the embedded default: a Home Assistant (yours when HA_URL and HA_TOKEN are
both set, else the simulator), the Dagster UI and daemon, and the chart API; discover the entities and backfill
the last days. Ctrl-C stops everything."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run simulator, Dagster UI, API and a first backfill locally",
                                   description=DEMO_DESCRIPTION,
                                   epilog="Real Home Assistant: create a long-lived access token (your profile -> "
                                          "Security -> Long-lived access tokens -> Create token), then "
                                          "HA_URL=http://homeassistant.local:8123 HA_TOKEN=... make demo.")
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
        choice = choose_home_assistant(config.ha_url, config.ha_token, cli, args.ha_port, saved_ha_url(config))
        if choice.simulator_command is not None:
            if not port_is_free(args.ha_port):
                raise RuntimeError(f"port {args.ha_port} is taken: stop what uses it or pass --ha-port")
            simulator = processes.start(choice.simulator_command, env, logs / "simulator.log")
            wait_for_port(args.ha_port, 60, simulator)
        env.update(HA_URL=choice.url, HA_TOKEN=choice.token)
        print(choice.message)

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
