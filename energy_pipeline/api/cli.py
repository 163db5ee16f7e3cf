"""``energy-pipeline api``: serve the API and the chart page with uvicorn."""

from __future__ import annotations

import argparse

# Open server-sent event streams never end on their own: give them this long on shutdown.
GRACEFUL_SHUTDOWN_S = 5


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("api", help="serve the chart/settings/status HTTP API and the chart page")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(func=run_api)


def run_api(args: argparse.Namespace) -> int:
    import uvicorn

    from energy_pipeline.api.app import create_app
    from energy_pipeline.config import load_config

    app = create_app(load_config())
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    return 0
