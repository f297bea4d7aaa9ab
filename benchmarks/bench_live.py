"""Latency of the live path: tick received -> order sent, through the paper gateway.

    .venv/bin/python benchmarks/bench_live.py [--seconds 30] [--speed 600]

Runs ibsim in a thread and the live wiring (runners.live.build: IBStore, feeds,
IBBroker, GammaScalping) in this process, with a hair-trigger config (hedge at 1 share,
no cooldown, no price-move or count limits) so nearly every quote change sends an order.
Latency: from the moment ib_insync delivered the newest tick to the store, to the
broker's placeOrder call. Prints count, p50, p90, p99 and max.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bifrost.config import load_config  # noqa: E402
from ibsim.server import SimThread  # noqa: E402
from runners.backtest import ROOT_DIR  # noqa: E402
from runners.live import Stopper, build  # noqa: E402
from stores.ibstore import IBStore  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--speed", type=float, default=600.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sim = SimThread({"speed": args.speed, "clock": {"skip_closed": True, "quote_refresh_seconds": 0.05}})
    port = sim.start()
    cfg = load_config(ROOT_DIR / "configs" / "sim.yaml", [
        f"ib.port={port}", "ib.client_id=99",
        "gates.state.delta.epsilon_band=0.5", "gates.state.delta.threshold_hedge_shares=1",
        "gates.intent.hedge.min_hedge_shares=1", "gates.intent.hedge.cooldown_seconds=null",
        "gates.intent.hedge.min_price_move_pct=null", "gates.guard.risk.max_daily_hedge_count=null",
        "gates.guard.risk.max_position_shares=null", "gates.guard.risk.max_daily_loss_usd=null"])
    ib = cfg["ib"]
    store = IBStore(host=ib["host"], port=ib["port"], client_id=ib["client_id"],
                    timestamps=ib["timestamps"])
    stopper = Stopper()
    assert store.connect(), "could not connect to the simulator"
    cerebro = build(cfg, store, stopper)
    threading.Timer(args.seconds, stopper, args=(0, None)).start()
    cerebro.run()
    store.stop()
    ticks = sim.state()["stats"]
    sim.stop()
    lat = sorted(x * 1000.0 for x in stopper.broker.latencies)
    if not lat:
        print("no orders were sent")
        return
    q = statistics.quantiles(lat, n=100, method="inclusive")   # never past the largest sample
    print(f"ticks {store.ticks}  orders {len(lat)}  tick->order ms: p50 {q[49]:.3f}  p90 {q[89]:.3f}  "
          f"p99 {q[98]:.3f}  max {lat[-1]:.3f}   (sim stats {ticks})")


if __name__ == "__main__":
    main()
