"""``energy-pipeline simulate-ha``: a simulated Home Assistant for demos, tests and benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from energy_pipeline.simulator.house import SimulatedHouse
from energy_pipeline.simulator.server import HomeAssistantSimulator

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("simulate-ha", help="run a simulated Home Assistant (WebSocket API)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8123, help="port (default 8123; 0 = any free port)")
    parser.add_argument("--token", required=True, help="the access token clients must present")
    parser.add_argument("--days", type=float, default=30, help="days of history (default 30)")
    parser.add_argument("--tz", default="Europe/Berlin", help="HA time zone (default Europe/Berlin)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulated house (default 1)")
    parser.add_argument("--event-rate", type=float, default=None,
                        help="state changes per second per entity (default: one per minute)")
    parser.add_argument("--total-event-rate", type=float, default=None,
                        help="state changes per second over all entities")
    parser.add_argument("--as-fast-as-possible", action="store_true", help="send events as fast as possible")
    parser.add_argument("--extra-devices", type=int, default=0, help="extra device meters (default 0)")
    parser.add_argument("--water", action="store_true", help="add a water meter")
    parser.add_argument("--no-energy-prefs", action="store_true",
                        help="answer energy/get_prefs with not_found (energy dashboard not configured)")
    parser.add_argument("--grid-format", choices=("flow", "single"), default="flow",
                        help="energy prefs grid format: flow_from/flow_to lists or single stat_energy_from/to")
    parser.set_defaults(func=run_simulator)


def run_simulator(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):  # websockets logs every connection at INFO: too chatty here
        logging.getLogger("energy_pipeline.simulator.wire").setLevel(logging.WARNING)
    house = SimulatedHouse(seed=args.seed, days=args.days, tz=args.tz, extra_devices=args.extra_devices,
                           water=args.water, energy_configured=not args.no_energy_prefs,
                           grid_format=args.grid_format)
    simulator = HomeAssistantSimulator(house, token=args.token, host=args.host, port=args.port,
                                       event_rate=args.event_rate, total_event_rate=args.total_event_rate,
                                       as_fast_as_possible=args.as_fast_as_possible)
    asyncio.run(_serve(simulator))
    return 0


async def _serve(simulator: HomeAssistantSimulator) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await simulator.start_async()
    house = simulator.house
    log.info("simulated Home Assistant %s at %s (HA_URL=%s), %d meters, history from %s, time zone %s",
             "2025.4.4", simulator.url, simulator.http_url, len(house.meters), house.start.isoformat(), house.tz_name)
    print(f"simulator listening on {simulator.url}", flush=True)
    try:
        await stop.wait()
    finally:
        log.info("stopping the simulator")
        await simulator.stop_async()
