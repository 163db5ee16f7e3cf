"""``energy-pipeline``: one command with subcommands.

Each subcommand lives next to the code it drives and exposes ``register(subparsers)``; this module
only lists them, so adding a command is one line here.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

from energy_pipeline.config import ENV_VARS, ConfigError, load_config

SUBCOMMAND_MODULES: tuple[str, ...] = (
    "energy_pipeline.cli",  # config
    "energy_pipeline.homeassistant.check", "energy_pipeline.simulator.cli",  # ha check, simulate-ha
    "energy_pipeline.demo",
    "energy_pipeline.api.cli",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="validate the environment and show the chosen backends")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_config)
    backfill = subparsers.add_parser(
        "backfill", help="launch a backfill through the running Dagster webserver (it shows in the UI)")
    backfill.add_argument("asset", choices=sorted(BACKFILL_ASSETS), help="partitioned asset to backfill")
    backfill.add_argument("--from", dest="first", required=True,
                          help="first partition key, e.g. 2026-11-01-00:00 (hourly), 2026-11-01 (daily/monthly)")
    backfill.add_argument("--to", dest="last", required=True, help="last partition key (inclusive)")
    backfill.set_defaults(func=run_backfill)


BACKFILL_ASSETS = ("daily_energy_summary", "hourly_energy_statistics", "legacy_energy_statistics")


def run_backfill(args: argparse.Namespace) -> int:
    """Partition keys are resolved from the asset's own partitions, so a bad key fails before launching."""
    import dagster as dg

    from energy_pipeline.definitions import defs
    from energy_pipeline.orchestration import DagsterGraphQLClient, DagsterGraphQLError, DagsterUnavailableError

    asset = defs.get_repository_def().assets_defs_by_key[dg.AssetKey(args.asset)]
    partitions = asset.partitions_def
    for key in (args.first, args.last):
        if not partitions.has_partition_key(key):
            keys = partitions.get_partition_keys()
            print(f"{key!r} is not a partition of {args.asset} (they run from {keys[0]} to {keys[-1]})",
                  file=sys.stderr)
            return 2
    keys = partitions.get_partition_keys_in_range(dg.PartitionKeyRange(args.first, args.last))
    client = DagsterGraphQLClient(load_config().dagster_graphql_url)
    try:
        backfill_id = client.launch_asset_backfill(args.asset, list(keys), title=f"cli: {args.first}..{args.last}")
    except (DagsterUnavailableError, DagsterGraphQLError) as exc:
        print(f"backfill not launched: {exc}", file=sys.stderr)
        return 2
    print(f"backfill {backfill_id}: {len(keys)} partitions of {args.asset}")
    return 0


def run_config(args: argparse.Namespace) -> int:
    config = load_config()
    shown = {
        "timeseries_backend": config.timeseries_backend,
        "documents_backend": config.documents_backend,
        "home": str(config.home),
        "ha_url": config.ha_url,
        "ha_token": "configured" if config.ha_token else "not configured",
        "secret_key": "configured" if config.secret_key else "not configured",
        "time_zone": config.time_zone,
    }
    if args.json:
        print(json.dumps(shown))
    else:
        for key, value in shown.items():
            print(f"{key:20} {value}")
        print("\nvariables:", ", ".join(v.name for v in ENV_VARS))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="energy-pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # one line per HTTP request drowns what matters
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
