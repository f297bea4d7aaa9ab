"""``--store atreyu``: GammaScalping on atreyu_backtrader_api's IBStore (IB's official
``ibapi`` underneath), Backtrader-style: ``IBStore(...)``, ``store.getdata(...)``,
``store.getbroker()``.

atreyu's feeds carry OHLCV only. The feed class here (a subclass of its ``IBData``,
registered as the store's ``DataCls`` so ``getdata`` builds it) adds what the strategy
reads: the stock's bid/ask (tick-by-tick BID_ASK, which atreyu puts in open/close),
each option's contract (strike, expiry, right) and mid (tick-by-tick MIDPOINT; no
greeks, so the strategy solves implied vol from the mid and prices the leg itself),
and ``backfill`` = 1 on every bar not delivered live (atreyu's backfill after a
reconnect arrives DELAYED): no order is ever sent on history.

Not covered by atreyu and so not here: quote age (no S2 DATA_LAG), orderRef tagging
and today's-hedges restore, paper fills (its broker always sends orders to IB).
"""
from __future__ import annotations

import datetime as dt
import logging
import math

import backtrader as bt

log = logging.getLogger("bifrost.atreyu")
NAN = math.nan
INSTALL = ("--store atreyu needs atreyu_backtrader_api, which is not on PyPI: install IB's "
           "TWS API 10.x (pip install <twsapi>/source/pythonclient) and then "
           "pip install git+https://github.com/atreyuxtrading/atreyu-backtrader-api")


def leg_spec(text: str) -> tuple[str, float, str]:
    """``EXPIRY:STRIKE:RIGHT`` (e.g. ``20260206:170:C``) -> ("20260206", 170.0, "C")."""
    parts = text.split(":")
    try:
        expiry, strike, right = parts
        dt.datetime.strptime(expiry, "%Y%m%d")
        k = float(strike)
        right = right.upper()[:1]
        if not (k > 0) or right not in ("C", "P"):
            raise ValueError
    except ValueError:
        raise ValueError(f"--leg: got {text!r}, expected EXPIRY:STRIKE:RIGHT like 20260206:170:C") from None
    return expiry, k, right


def bid_ask_mid(bid, ask) -> tuple[float, float, float]:
    """Two-sided quote or NaN throughout (missing, non-positive, crossed)."""
    try:
        bid, ask = float(bid), float(ask)
    except (TypeError, ValueError):
        return NAN, NAN, NAN
    if not (bid > 0 and ask > 0 and ask >= bid and math.isfinite(bid) and math.isfinite(ask)):
        return NAN, NAN, NAN
    return bid, ask, 0.5 * (bid + ask)


def feed_class(atreyu):
    """The bifrost feed on atreyu's IBData, registered as the store's DataCls."""

    class BifrostIBData(atreyu.IBData):
        lines = ("bid", "ask", "iv", "delta", "gamma", "vega", "theta", "strike", "expiry",
                 "right", "backfill")

        def _load(self):
            if getattr(self, "_stopped", False):
                return False                       # a stop signal: no more bars, no orders
            ret = super()._load()
            if ret:
                self._bifrost_lines()
            return ret

        def _bifrost_lines(self):
            ln = self.lines
            live = self._state == self._ST_LIVE and self._laststatus == self.LIVE
            ln.backfill[0] = 0.0 if live else 1.0
            if self.p.secType == "OPT":
                ln.strike[0] = float(self.p.strike)
                ln.expiry[0] = float(dt.datetime.strptime(str(self.p.expiry)[:8], "%Y%m%d").toordinal())
                ln.right[0] = 1.0 if str(self.p.right).upper().startswith("C") else -1.0
                mid = ln.close[0] if ln.close[0] > 0 else NAN     # MIDPOINT ticks: close is the mid
                for name in ("open", "high", "low", "close"):
                    getattr(ln, name)[0] = mid
            elif str(self.p.what).upper() == "BID_ASK":
                bid, ask, mid = bid_ask_mid(ln.open[0], ln.close[0])   # atreyu: open=bid, close=ask
                ln.bid[0], ln.ask[0] = bid, ask
                for name in ("open", "high", "low", "close"):
                    getattr(ln, name)[0] = mid

    atreyu.IBStore.DataCls = BifrostIBData
    return BifrostIBData


def build(atreyu, cfg: dict, legs: list[str], stopper):
    """Cerebro with the stock and ``legs`` from atreyu's store and its broker, and the
    same strategy and sizer as our own store gets."""
    from bifrost.config import ConfigError
    from runners.wiring import add_hedging
    if cfg["gates"]["strategy"]["structure"]["manage"]:
        raise ConfigError("gates.strategy.structure.manage: --store atreyu only hedges held legs "
                          "(its feeds carry no option quotes to open or roll at); set it to false")
    if cfg["gates"]["guard"]["risk"]["paper_trade"]:
        raise ConfigError("gates.guard.risk.paper_trade: --store atreyu sends every order to IB "
                          "(its broker has no local paper fills); point it at a paper account and "
                          "set paper_trade=false, or use the default store")
    try:
        specs = [leg_spec(x) for x in legs]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    ib, symbol = cfg["ib"], cfg["symbol"]
    store = atreyu.IBStore(host=ib["host"], port=ib["port"], clientId=ib["client_id"],
                           timeout=ib["retry_seconds"])
    feed_class(atreyu)
    common = dict(exchange="SMART", currency="USD", timeframe=bt.TimeFrame.Ticks,
                  backfill_start=False, backfill=True)
    cerebro = bt.Cerebro(stdstats=False, runonce=False, preload=False, quicknotify=True)
    stock = store.getdata(dataname=symbol, secType="STK", what="BID_ASK", **common)
    cerebro.adddata(stock, name=symbol)
    datas = [stock]
    for expiry, strike, right in specs:
        d = store.getdata(dataname=symbol, secType="OPT", expiry=expiry, strike=strike, right=right,
                          multiplier=100, what="MIDPOINT", **common)
        cerebro.adddata(d, name=f"{symbol}-{expiry}-{strike:g}{right}")
        datas.append(d)
    if not specs:
        log.warning("no --leg given: nothing to hedge with --store atreyu")
    broker = store.getbroker()
    cerebro.setbroker(broker)
    add_hedging(cerebro, cfg)
    log.warning("=== atreyu_backtrader_api store: LIVE orders through its IBBroker (%d leg(s)) ===",
                len(specs))
    stopper.cerebro, stopper.broker, stopper.datas = cerebro, broker, datas
    return cerebro
