"""Speed of one backtest: the default strategy against an empty strategy on the very
same feeds, in one process.

    .venv/bin/python benchmarks/bench_backtest.py [--days 252] [--repeat 3]

Three runs, interleaved so drift hits all alike, on the same market, broker and feeds:
- empty: a strategy whose next() does nothing;
- strategy: GammaScalping with the default config (its guard analyzer and sizer);
- backtest: the whole ``run_backtest`` (the strategy plus the P&L analyzer and the
  result: metrics, series, hedges).
Prints median wall and CPU times, bars/s and the ratios to the empty strategy (goal:
ratio <= 1.5, and one year of 5-minute bars in <= 10 s on one core).
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import backtrader as bt  # noqa: E402

from bifrost.config import load_config  # noqa: E402
from brokers.backtest import LeanBackBroker  # noqa: E402
from feeds.loader import load_market  # noqa: E402
from runners.backtest import run_backtest  # noqa: E402
from runners.wiring import add_hedging, add_market  # noqa: E402


class Empty(bt.Strategy):
    def next(self):
        pass


def _cerebro(cfg, market) -> bt.Cerebro:
    cerebro = bt.Cerebro(stdstats=False, runonce=True, preload=True, maxcpus=1)
    cerebro.setbroker(LeanBackBroker())             # the same broker the backtest uses
    cerebro.broker.setcash(cfg["broker"]["cash"])
    cerebro.broker.set_coc(True)
    add_market(cerebro, market, cfg)
    return cerebro


def run_empty(cfg, market) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    cerebro = _cerebro(cfg, market)
    cerebro.addstrategy(Empty)
    cerebro.run()
    return time.perf_counter() - t0, time.process_time() - c0


def run_strategy(cfg, market) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    cerebro = _cerebro(cfg, market)
    add_hedging(cerebro, cfg)
    cerebro.run()
    return time.perf_counter() - t0, time.process_time() - c0


def run_full(cfg, market) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    run_backtest(cfg, market=market)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=252)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cfg = load_config(overrides=[f"market.synthetic.days={args.days}"])
    t0 = time.perf_counter()
    market = load_market(cfg)
    build = time.perf_counter() - t0
    runs = {"empty": [], "strategy": [], "backtest": []}
    timed = {"empty": run_empty, "strategy": run_strategy, "backtest": run_full}
    for _ in range(args.repeat):               # interleaved, so drift hits all alike
        for name, fn in timed.items():
            gc.collect()                       # the runs before left cyclic garbage: not this run's cost
            runs[name].append(fn(cfg, market))
    n = len(market)
    print(f"bars {n} (5-min, {args.days} days), feeds {1 + len(market.slots)}, market build {build:.2f} s")
    for label, i in (("wall", 0), ("cpu", 1)):
        med = {k: statistics.median(r[i] for r in v) for k, v in runs.items()}
        e = med["empty"]
        print(f"{label:4}  empty {e:5.2f} s ({n / e:,.0f} bars/s)   "
              f"GammaScalping {med['strategy']:5.2f} s ({n / med['strategy']:,.0f} bars/s) ratio {med['strategy'] / e:.2f}   "
              f"whole backtest {med['backtest']:5.2f} s ({n / med['backtest']:,.0f} bars/s) ratio {med['backtest'] / e:.2f}")


if __name__ == "__main__":
    main()
