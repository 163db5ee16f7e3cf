"""``energy-pipeline ha check``: prove the HA connection works and show what would be tracked.

Uses ``HA_URL``/``HA_TOKEN`` from the environment (``energy_pipeline.config``). Exit 0 on success;
2 with one clear line on stderr when the URL is bad or missing, the token is rejected or missing,
or the host cannot be reached; 1 on any other Home Assistant error.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from energy_pipeline.config import ConfigError, load_config
from energy_pipeline.homeassistant.client import HomeAssistantSyncClient
from energy_pipeline.homeassistant.models import (
    HomeAssistantAuthError,
    HomeAssistantConnectionError,
    HomeAssistantError,
    InvalidHomeAssistantUrlError,
)

EXIT_OK, EXIT_HA_ERROR, EXIT_SETUP = 0, 1, 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ha", help="Home Assistant connection tools")
    commands = parser.add_subparsers(dest="ha_command", required=True)
    check = commands.add_parser("check", help="connect, show HA version, time zone, energy entities and "
                                              "their consumption over the last 24 hours")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--timeout", type=float, default=10.0, help="connect timeout in seconds (default 10)")
    check.set_defaults(func=run_check)


def collect(url: str, token: str, *, timeout: float = 10.0, now: datetime | None = None) -> dict[str, Any]:
    """Everything ``ha check`` reports, as one JSON-ready dict."""
    end = now or datetime.now(UTC)
    # One attempt: a check answers at once, with one line, instead of retrying in silence.
    with HomeAssistantSyncClient(url, token, connect_attempts=1, connect_timeout=timeout) as ha:
        config = ha.get_config()
        entities = ha.discover_entities()
        ids = [e.statistic_id for e in entities]
        rows = ha.statistics_during_period(ids, end - timedelta(hours=24), end, "hour", types=["change"]) if ids \
            else {}
        return {
            "ha_version": ha.ha_version or config.version,
            "time_zone": config.time_zone,
            "entities": [{"statistic_id": e.statistic_id, "role": e.role, "unit": e.unit, "has_sum": e.has_sum}
                         for e in entities],
            "last_24h": {sid: round(sum(r.change for r in rows.get(sid, []) if r.change is not None), 6)
                         for sid in ids},
        }


def run_check(args: argparse.Namespace) -> int:
    try:
        config = load_config()
        if not config.ha_url:
            raise _SetupError("HA_URL is not set; example: HA_URL=http://homeassistant.local:8123")
        if not config.ha_token:
            raise _SetupError("HA_TOKEN is not set; create a long-lived access token in your HA profile")
        report = collect(config.ha_url, config.ha_token, timeout=args.timeout)
    except (_SetupError, ConfigError, InvalidHomeAssistantUrlError, HomeAssistantAuthError,
            HomeAssistantConnectionError) as exc:
        print(f"ha check failed: {_one_line(exc)}", file=sys.stderr)
        return EXIT_SETUP
    except HomeAssistantError as exc:
        print(f"ha check failed: {_one_line(exc)}", file=sys.stderr)
        return EXIT_HA_ERROR
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        _print_text(report)
    return EXIT_OK


def _print_text(report: dict[str, Any]) -> None:
    print(f"Home Assistant {report['ha_version']}, time zone {report['time_zone']}")
    entities = report["entities"]
    if not entities:
        print("no energy statistics found (configure the energy dashboard, or add total_increasing meters)")
        return
    width = max(len(e["statistic_id"]) for e in entities)
    print(f"{len(entities)} energy statistics (last 24 h = sum of hourly change):")
    for e in entities:
        total = report["last_24h"].get(e["statistic_id"], 0.0)
        unit = e["unit"] or ""
        print(f"  {e['statistic_id']:<{width}}  {e['role']:<12} {unit:<4} last 24 h: {total:.3f} {unit}".rstrip())


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class _SetupError(Exception):
    pass
