"""Speed of one backtest: the default strategy against an empty strategy on the very
same feeds, in one process.

    .venv/bin/python benchmarks/bench_backtest.py [--days 252] [--repeat 3]

Prints the bars, both median times, bars/s and the ratio (goal: ratio <= 1.5, and one
year of 5-minute bars in <= 10 s on one core).
"""
from __future__ import annotations

import argparse
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
from runners.wiring import add_market  # noqa: E402


class Empty(bt.Strategy):
    def next(self):
        pass


def run_empty(cfg, market) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    cerebro = bt.Cerebro(stdstats=False, runonce=True, preload=True, maxcpus=1)
    cerebro.setbroker(LeanBackBroker())             # the same broker the backtest uses
    cerebro.broker.setcash(cfg["broker"]["cash"])
    cerebro.broker.set_coc(True)
    add_market(cerebro, market, cfg)
    cerebro.addstrategy(Empty)
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
    empty, full = [], []
    for _ in range(args.repeat):               # interleaved, so drift hits both alike
        empty.append(run_empty(cfg, market))
        full.append(run_full(cfg, market))
    n = len(market)
    print(f"bars {n} (5-min, {args.days} days), feeds {1 + len(market.slots)}, market build {build:.2f} s")
    for label, i in (("wall", 0), ("cpu", 1)):
        e = statistics.median(r[i] for r in empty)
        f = statistics.median(r[i] for r in full)
        print(f"{label:4}  empty strategy {e:6.2f} s ({n / e:,.0f} bars/s)   "
              f"GammaScalping {f:6.2f} s ({n / f:,.0f} bars/s)   ratio {f / e:.2f}   "
              f"runs {['%.2f/%.2f' % (a[i], b[i]) for a, b in zip(empty, full)]}")


if __name__ == "__main__":
    main()
