"""Run GammaScalping live against Interactive Brokers (TWS or IB Gateway).

    python runners/live.py [--config configs/live.yaml] [--set dotted.key=value ...]

Connects (retrying while TWS/Gateway is down), reports the account, positions, the
legs found, then hedges with the same strategy, sizer and guards as the backtest.
``gates.guard.risk.paper_trade: true`` (the default) sends no order to IB. SIGINT or
SIGTERM stops within seconds with exit code 0; no order leaves after the signal.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import signal
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import backtrader as bt  # noqa: E402

from bifrost.config import ConfigError, load_config  # noqa: E402
from runners.backtest import ROOT_DIR, add_config_args  # noqa: E402

log = logging.getLogger("bifrost.live")
DEFAULT_LIVE = ROOT_DIR / "configs" / "live.yaml"


class Stopper:
    """SIGINT/SIGTERM: refuse new orders at once, then stop cerebro's loop."""

    def __init__(self):
        self.stopped = False
        self.cerebro = None
        self.broker = None
        self.datas = []

    def __call__(self, signum, frame):
        if not self.stopped:
            log.warning("signal %s: stopping, no new orders", signum)
        self.stopped = True
        if self.broker is not None:
            self.broker.accepting = False
        for d in self.datas:
            d._stopped = True
        if self.cerebro is not None:
            self.cerebro.runstop()


def connect_until_up(store, cfg, stopper) -> bool:
    """Try to connect until it works or a signal arrives; never die because IB is down."""
    wait = cfg["ib"]["retry_seconds"]
    while not stopper.stopped:
        if store.connect():
            return True
        log.warning("TWS/Gateway not reachable at %s:%s; retrying in %.0f s (Ctrl-C to quit)",
                    store.host, store.port, wait)
        end = time.monotonic() + wait
        while time.monotonic() < end and not stopper.stopped:
            time.sleep(0.1)
    return False


def find_legs(store, symbol: str, cfg: dict, today: dt.date) -> list:
    """Option positions of ``symbol`` inside the DTE window (the ATM band is judged on
    each bar by the strategy, against the live spot)."""
    st = cfg["gates"]["strategy"]["structure"]
    legs = []
    for p in store.ib.positions():
        c = p.contract
        if c.secType != "OPT" or c.symbol != symbol or not p.position:
            continue
        expiry = dt.datetime.strptime(c.lastTradeDateOrContractMonth[:8], "%Y%m%d").date()
        dte = (expiry - today).days
        inside = st["min_dte"] <= dte <= st["max_dte"]
        log.info("option position %s %s %s x%s, DTE %d%s", c.right, c.strike, expiry, p.position,
                 dte, "" if inside else " (outside the DTE window: not hedged)")
        if inside:
            legs.append(c)
    return legs


def chain_candidates(store, stock, cfg: dict, today: dt.date, spot: float) -> list:
    """Options the strategy may open or roll into (``structure.manage: true``): from
    the chain (reqSecDefOptParams), expiries in the DTE window and strikes within the
    ATM band plus a margin for the spot to move, both rights, qualified."""
    from stores.ibclient import require
    ibi = require()
    st = cfg["gates"]["strategy"]["structure"]
    chains = store.ib.reqSecDefOptParams(stock.symbol, "", stock.secType, stock.conId)
    chain = next((c for c in chains if c.exchange == "SMART"), chains[0] if chains else None)
    if chain is None or not (spot > 0):
        log.error("no option chain for %s (or no spot): cannot manage the structure", stock.symbol)
        return []
    lo_day, hi_day = today + dt.timedelta(days=st["min_dte"]), today + dt.timedelta(days=st["max_dte"])
    expiries = [e for e in chain.expirations
                if lo_day <= dt.datetime.strptime(e[:8], "%Y%m%d").date() <= hi_day]
    reach = st["atm_band_pct"] + 0.07                # room for the spot to move before a restart
    strikes = [k for k in chain.strikes if abs(k - spot) / spot <= reach]
    wanted = [ibi.Option(stock.symbol, e, k, r, "SMART", tradingClass=chain.tradingClass,
                         multiplier=chain.multiplier, currency="USD")
              for e in expiries for k in strikes for r in ("C", "P")]
    got = store.qualify(*wanted) if wanted else []
    log.info("structure management: %d candidate legs (%d expiries x %d strikes x 2)",
             len(got), len(expiries), len(strikes))
    return got


def make_store(cfg: dict):
    """Our IBStore from the ``ib`` config keys (ImportError without ib_insync/ib_async)."""
    from stores.ibstore import IBStore
    ib = cfg["ib"]
    return IBStore(host=ib["host"], port=ib["port"], client_id=ib["client_id"],
                   timeout=ib["connect_timeout"], account=ib["account"],
                   timestamps=ib["timestamps"], reconnect_max_seconds=ib["reconnect_max_seconds"],
                   backfill_bar_minutes=ib["backfill_bar_minutes"],
                   data_retry_seconds=ib["retry_seconds"])


def add_slots(cerebro, cfg: dict, store, stock, legs: list, broker) -> list:
    """``ib.spare_slots`` option feeds with no contract, and the planner that moves
    contracts between all option feeds while running (``stores.slots``)."""
    from brokers.commissions import OptionCommission
    from feeds.ibdata import IBOptionData
    from stores.slots import SlotPlanner
    st = cfg["gates"]["strategy"]["structure"]
    spares = []
    for i in range(cfg["ib"]["spare_slots"]):
        d = IBOptionData(store=store, contract=None, multiplier=st["multiplier"])
        name = f"{cfg['symbol']}-slot{i}"
        cerebro.adddata(d, name=name)
        broker.addcommissioninfo(OptionCommission(data=d, mult=float(st["multiplier"]),
                                                  per_contract=cfg["broker"]["option"]["commission_per_contract"]),
                                 name=name)
        spares.append(d)
    store.slots = SlotPlanner(store, legs + spares, cfg["symbol"], st, st["manage"], stock=stock)
    log.info("option slots: %d with legs, %d spare", len(legs), len(spares))
    return spares


def build(cfg: dict, store, stopper, strategy=None):
    from brokers.commissions import OptionCommission, StockCommission
    from runners.wiring import add_hedging
    from stores.ibclient import require

    ibi = require()
    symbol = cfg["symbol"]
    for v in store.ib.accountValues():
        if v.tag in ("NetLiquidation", "TotalCashValue", "AvailableFunds") and v.currency == "USD":
            log.info("account %s %s: %s", v.account, v.tag, v.value)
    stock = store.qualify(ibi.Stock(symbol, "SMART", "USD"))
    if not stock:
        raise ConfigError(f"symbol: {symbol!r} is not a stock IB knows (SMART/USD)")
    # the server's clock (TWS, or the simulator's market time) dates the DTE window
    from stores.ibstore import ny_naive
    today = ny_naive(store.ib.reqCurrentTime()).date()
    legs = store.qualify(*find_legs(store, symbol, cfg, today)) if store.ib.positions() else []
    if cfg["gates"]["strategy"]["structure"]["manage"]:
        [ticker] = store.ib.reqTickers(stock[0])
        held = {c.conId for c in legs}
        legs += [c for c in chain_candidates(store, stock[0], cfg, today, ticker.marketPrice())
                 if c.conId not in held]
    elif not legs:
        log.warning("no option legs of %s in the DTE window: nothing to hedge until there are", symbol)
    cerebro = bt.Cerebro(stdstats=False, runonce=False, preload=False, quicknotify=True)
    b = cfg["broker"]
    broker = store.getbroker(paper_trade=cfg["gates"]["guard"]["risk"]["paper_trade"],
                             order_ref=cfg["ib"]["order_ref"], order_type=cfg["order"]["order_type"],
                             order_timeout=cfg["ib"]["order_timeout_seconds"])
    cerebro.setbroker(broker)
    cerebro.addstore(store)
    stock_data = store.getdata(stock[0])
    cerebro.adddata(stock_data, name=symbol)
    broker.addcommissioninfo(StockCommission(data=stock_data, per_share=b["stock"]["commission_per_share"],
                                             min_commission=b["stock"]["min_commission"]), name=symbol)
    datas = [stock_data]
    for c in legs:
        d = store.getdata(c)
        name = c.localSymbol or f"{symbol}-{c.right}{c.strike}-{c.lastTradeDateOrContractMonth}"
        cerebro.adddata(d, name=name)
        broker.addcommissioninfo(OptionCommission(data=d, mult=float(c.multiplier or 100),
                                                  per_contract=b["option"]["commission_per_contract"]),
                                 name=name)
        datas.append(d)
    datas += add_slots(cerebro, cfg, store, stock[0], datas[1:], broker)
    add_hedging(cerebro, cfg, strategy)
    stopper.cerebro, stopper.broker, stopper.datas = cerebro, broker, datas
    return cerebro


def run_atreyu(cfg: dict, legs: list) -> int:
    """``--store atreyu``: atreyu_backtrader_api's IBStore/IBData/IBBroker when importable."""
    try:
        import atreyu_backtrader_api as atreyu
    except ImportError:
        from stores.atreyu import INSTALL
        print(f"error: {INSTALL}", file=sys.stderr)
        return 2
    from stores.atreyu import build as build_atreyu
    stopper = Stopper()
    signal.signal(signal.SIGINT, stopper)
    signal.signal(signal.SIGTERM, stopper)
    try:
        cerebro = build_atreyu(atreyu, cfg, legs, stopper)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    strat = cerebro.run()[0]
    guards = strat.analyzers.guards.get_analysis()
    broker = stopper.broker
    final = {"cash": round(broker.getcash(), 2),
             "positions": {d._name: broker.getposition(d).size for d in stopper.datas},
             "hedges": len(guards["hedges"]), "blocks": guards["block_reasons"]}
    log.warning("final: %s", json.dumps(final))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_config_args(p)
    p.set_defaults(config=str(DEFAULT_LIVE))
    p.add_argument("--store", choices=("ib", "atreyu"), default="ib",
                   help="ib: our ib_insync store (default); atreyu: atreyu_backtrader_api's IBStore")
    p.add_argument("--leg", action="append", default=[], metavar="EXPIRY:STRIKE:RIGHT",
                   help="--store atreyu: an option leg held, e.g. 20260206:170:C (repeatable)")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    from runners.logwriter import LogWriter
    writer = LogWriter(sys.stderr)
    writer.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO), handlers=[writer])
    try:
        return run(args)
    finally:
        writer.close()


def run(args) -> int:
    try:
        cfg = load_config(args.config, args.sets)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.store == "atreyu":
        return run_atreyu(cfg, args.leg)
    try:
        store = make_store(cfg)
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stopper = Stopper()
    signal.signal(signal.SIGINT, stopper)
    signal.signal(signal.SIGTERM, stopper)
    mode = "PAPER TRADE: orders fill locally, nothing is sent to IB" \
        if cfg["gates"]["guard"]["risk"]["paper_trade"] else "LIVE: real orders are sent to IB"
    log.warning("=== %s ===", mode)
    if not connect_until_up(store, cfg, stopper):
        return 0
    try:
        cerebro = build(cfg, store, stopper)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        store.stop()
        return 2
    if stopper.stopped:
        store.stop()
        return 0
    strat = cerebro.run()[0]
    guards = strat.analyzers.guards.get_analysis()
    broker = stopper.broker
    final = {"cash": round(broker.getcash(), 2),
             "positions": {str(d.contract.conId): broker.getposition(d).size for d in stopper.datas
                           if d.contract is not None},
             "hedges": len(guards["hedges"]), "blocks": guards["block_reasons"]}
    log.warning("final: %s", json.dumps(final))
    store.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
