"""Run the paper IB gateway simulator (TWS protocol, server version 176) on 127.0.0.1.

    python runners/ibsim.py [--config configs/ibsim.yaml] [--set key=value ...]
                            [--port 7497] [--speed 1] [--control-port 0] [--quiet]

Streams the seeded synthetic market (``--speed X``: X market seconds per wall second)
to any number of ib_insync/ibapi clients until SIGINT/SIGTERM (exit 0). Logs
connections, orders, fills and faults to stderr. ``--control-port N`` opens the JSON
control endpoint (POST /fault, POST /clear, POST /advance, GET /state, GET /faults).
Exit code 2 with one line naming the key on a bad config.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

if __package__ in (None, ""):          # `python runners/ibsim.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bifrost.config import ConfigError                     # noqa: E402
from ibsim import IBSim, SimConfigError                    # noqa: E402

ROOT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT_DIR / "configs" / "ibsim.yaml"
log = logging.getLogger("ibsim")


async def serve(sim: IBSim) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await sim.start()
    print(f"ibsim ready on 127.0.0.1:{sim.port}"
          + (f", control http://127.0.0.1:{sim.control_port}" if sim.control_port else ""),
          file=sys.stderr, flush=True)
    await stop.wait()
    log.info("signal received, stopping")
    await sim.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="sim YAML config (default: %(default)s)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a dotted sim config key with a YAML-typed value (repeatable)")
    p.add_argument("--port", type=int, default=None, help="API port (default: the config's, 7497)")
    p.add_argument("--speed", type=float, default=None, help="market seconds per wall second (default 1)")
    p.add_argument("--control-port", type=int, default=None, help="JSON control endpoint port (0 = off)")
    p.add_argument("--quiet", action="store_true", help="log warnings only")
    args = p.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sets = list(args.sets)
    for key, val in (("port", args.port), ("speed", args.speed), ("control_port", args.control_port)):
        if val is not None:
            sets.append(f"{key}={val}")
    try:
        sim = IBSim(args.config, sets)
    except (SimConfigError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(sim))
    except OSError as exc:                                  # port in use
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
