"""Backtest the gamma-scalping strategy on one market.

    python runners/backtest.py [--config FILE] [--set dotted.key=value ...] [--out DIR] [--json]

Python: ``from runners.backtest import run_backtest``; ``run_backtest(config)`` takes a
path or a nested dict (merged over the defaults and validated) and returns a
``BacktestResult``. It prints nothing and touches no global state, so a sweep can call
it thousands of times.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):          # `python runners/backtest.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import backtrader as bt

from analyzers.pnl import PnLAnalyzer
from brokers.backtest import LeanBackBroker
from bifrost.config import ConfigError, load_config
from feeds.errors import DataError
from feeds.loader import load_market
from feeds.market import Market
from runners.wiring import add_hedging, add_market

log = logging.getLogger("bifrost.backtest")

ROOT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT_DIR / "configs" / "default.yaml"


@dataclass
class BacktestResult:
    metrics: dict
    config: dict
    hedges: list = field(default_factory=list)
    refusals: list = field(default_factory=list)
    series: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"metrics": self.metrics, "seconds": self.seconds, "config": self.config,
                "hedges": self.hedges, "refusals": self.refusals}


def run_backtest(config=None, overrides=None, market: Market | None = None,
                 keep_series: bool = True) -> BacktestResult:
    """Run one backtest. ``config``: a path, a nested dict, an already validated
    config, or None for the embedded defaults. ``market``: a prebuilt Market to reuse
    (a sweep builds it once); otherwise it is loaded from the config."""
    t0 = time.perf_counter()
    cfg = load_config(config, overrides)
    if market is None:
        market = load_market(cfg)
    cerebro = bt.Cerebro(stdstats=False, runonce=True, preload=True, maxcpus=1)
    cerebro.setbroker(LeanBackBroker())
    cerebro.broker.setcash(cfg["broker"]["cash"])
    cerebro.broker.set_coc(True)      # fills at the quote the decision saw
    add_market(cerebro, market, cfg)
    add_hedging(cerebro, cfg)
    cerebro.addanalyzer(PnLAnalyzer, _name="pnl", keep_series=keep_series)
    strat = cerebro.run()[0]
    pnl = strat.analyzers.pnl
    guards = strat.analyzers.guards.get_analysis()
    metrics = pnl.get_analysis()
    metrics["bars"] = len(market)
    return BacktestResult(metrics=metrics, config=cfg, hedges=guards["hedges"],
                          refusals=guards["refusals"],
                          series=pnl.series if keep_series else {},
                          seconds=time.perf_counter() - t0)


# -- command line ------------------------------------------------------------------
def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def summary_table(m: dict) -> str:
    rows = [
        ("Total P&L", m["total_pnl"]), ("  option P&L (at mid)", m["option_pnl"]),
        ("  hedge P&L (at mid)", m["hedge_pnl"]), ("  costs", -m["costs"]),
        ("    commission", -m["costs_split"]["commission"]),
        ("    half-spreads", -m["costs_split"]["spread"]),
        ("    slippage", -m["costs_split"]["slippage"]),
        ("Attribution: gamma", m["attribution"]["gamma"]), ("  theta", m["attribution"]["theta"]),
        ("  vega", m["attribution"]["vega"]), ("  option delta", m["attribution"]["delta"]),
        ("  unexplained", m["attribution"]["unexplained"]),
        ("Hedges", m["hedge_count"]), ("Shares traded", m["shares_traded"]),
        ("Sharpe (daily, annualised)", m["sharpe"]),
        ("Max drawdown $", m["max_drawdown"]), ("Max drawdown %", m["max_drawdown_pct"]),
        ("Realised vol", m["realized_vol"]), ("Implied vol", m["implied_vol"]),
        ("Bars", m["bars"]),
    ]
    blocks = m["block_reasons"] or {}
    rows += [("Guard blocks", sum(blocks.values()))]
    rows += [(f"  {k}", v) for k, v in sorted(blocks.items(), key=lambda kv: -kv[1])]
    width = max(len(r[0]) for r in rows) + 2
    return "\n".join(f"{k:<{width}}{_fmt(v):>16}" for k, v in rows)


def write_outputs(result: BacktestResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "result.json", "w", encoding="utf-8") as fh:
        json.dump(result.to_json(), fh, indent=2, default=str)
    if result.series:
        write_series(result.series, out / "series.csv")
    cols = ["datetime", "side", "shares", "decision_price", "fill_price", "commission",
            "net_delta_before", "net_delta_after", "state", "force", "status"]
    with open(out / "hedges.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(result.hedges)


def write_series(series: dict, path: Path) -> None:
    """Per-bar series as CSV; datetime written as ISO text (exchange-local)."""
    names = list(series)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for row in zip(*(series[n] for n in names)):
            row = list(row)
            row[0] = bt.num2date(row[0]).isoformat(sep=" ")
            w.writerow(row)


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: %(default)s)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a dotted config key with a YAML-typed value (repeatable)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_config_args(p)
    p.add_argument("--out", default=None, help="output folder (default: reports/backtest-<time>)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout only")
    p.add_argument("--no-report", action="store_true",
                   help="do not write report.html (the Bokeh page; needs the plots extra)")
    args = p.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        result = run_backtest(args.config, args.sets)
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("reports") / time.strftime("backtest-%Y%m%d-%H%M%S")
    write_outputs(result, out)
    page = None
    if not args.no_report:
        try:
            from plots.backtest_page import write_backtest_page
        except ImportError as exc:               # bokeh is an extra: the run still counts
            log.warning("no report.html (pip install -e '.[plots]'): %s", exc)
        else:
            page = write_backtest_page(out)
    if args.json:
        json.dump(result.metrics, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(summary_table(result.metrics))
        written = ("result.json, hedges.csv, series.csv and report.html" if page
                   else "result.json, hedges.csv and series.csv")
        print(f"\nwrote {written} to {out} ({result.seconds:.2f} s)")
    return 0




if __name__ == "__main__":
    sys.exit(main())
