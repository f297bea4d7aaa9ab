"""Small hand-made markets for scenario tests through a real Cerebro.

A market is a list of bars. Each bar says when it is (a naive New York datetime), the
stock's close and quote, and the *option* net delta in shares that the held straddle
shows on that bar (``opt``): the option feeds carry their own greeks, with the call's
delta set so that ``contracts * multiplier * (call delta + put delta) == opt``. So the
net delta the strategy sees is ``stock position + opt`` and a test scripts exactly
when a hedge is needed.

The straddle is a call and a put at ``STRIKE`` expiring ``EXPIRY`` (inside the default
21-35 DTE window for the dates used here); the strategy buys it itself on the first
regular-hours bar (``gates.strategy.structure.manage`` is on by default), and it is
filled at that bar's close (cheat-on-close), so hedging can start on the next bar.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import backtrader as bt
import numpy as np

from bifrost.config import load_config
from feeds.arrays import OptionData, StockData
from feeds.market import Market
from runners.wiring import add_hedging, add_market

MON = dt.date(2026, 1, 5)            # a Monday
TUE = dt.date(2026, 1, 6)
WED = dt.date(2026, 1, 7)
SAT = dt.date(2026, 1, 10)
EXPIRY = dt.date(2026, 2, 6)         # a Friday: 32 DTE on MON
STRIKE = 100.0
CONTRACTS = 10
MULT = 100
NAN = math.nan


def at(day: dt.date, hhmm: str, sec: int = 0) -> dt.datetime:
    h, m = (int(x) for x in hhmm.split(":"))
    return dt.datetime.combine(day, dt.time(h, m, sec))


def num(t: dt.datetime) -> float:
    """Backtrader date number of a naive datetime."""
    return t.toordinal() + (t.hour * 3600 + t.minute * 60 + t.second) / 86400.0


def minutes(day: dt.date, start: str, n: int, step: int = 1) -> list[dt.datetime]:
    t0 = at(day, start)
    return [t0 + dt.timedelta(minutes=step * k) for k in range(n)]


@dataclass
class Bar:
    t: dt.datetime
    spot: float = 100.0
    opt: float = 0.0                 # option net delta in shares for the held straddle
    bid: float | None = None         # stock quote; None: spot -/+ half of spread_bps
    ask: float | None = None
    spread_bps: float = 1.0
    call_mid: float = 3.0
    put_mid: float = 3.0
    opt_spread: float = 0.10         # full option spread, dollars
    gamma: float = 0.05              # per share, each leg
    greeks: bool = True              # False: greeks lines NaN (the strategy computes them)
    opt_quoted: bool = True          # False: option bid/ask/close NaN


def bars(times, **kw) -> list[Bar]:
    return [Bar(t, **kw) for t in times]


def _quote(b: Bar) -> tuple[float, float]:
    if b.bid is not None or b.ask is not None:
        return (NAN if b.bid is None else b.bid), (NAN if b.ask is None else b.ask)
    half = b.spot * b.spread_bps / 2e4
    return b.spot - half, b.spot + half


def market(rows: list[Bar], strike: float = STRIKE, expiry: dt.date = EXPIRY,
           contracts: int = CONTRACTS, mult: int = MULT) -> Market:
    n = len(rows)
    dtn = np.array([num(b.t) for b in rows])
    close = np.array([b.spot for b in rows], dtype=float)
    q = np.array([_quote(b) for b in rows], dtype=float).reshape(n, 2)
    slots = []
    for right in (1, -1):
        mid = np.array([(b.call_mid if right > 0 else b.put_mid) if b.opt_quoted else NAN
                        for b in rows], dtype=float)
        half = np.array([b.opt_spread / 2 for b in rows])
        if right > 0:
            delta = np.array([0.5 + b.opt / (contracts * mult) for b in rows])
        else:
            delta = np.full(n, -0.5)
        greeks_on = np.array([b.greeks for b in rows])
        gamma = np.array([b.gamma for b in rows], dtype=float)
        nanif = lambda a: np.where(greeks_on, a, NAN)   # noqa: E731
        slots.append({
            "datetime": dtn, "open": mid, "high": mid, "low": mid, "close": mid,
            "volume": np.zeros(n), "bid": mid - half, "ask": mid + half,
            "iv": nanif(np.full(n, 0.35)), "delta": nanif(delta), "gamma": nanif(gamma),
            "vega": nanif(np.full(n, 10.0)), "theta": nanif(np.full(n, -20.0)),
            "strike": np.full(n, float(strike)), "expiry": np.full(n, float(expiry.toordinal())),
            "right": np.full(n, float(right)),
        })
    return Market(symbol="NVDA", dt=dtn, close=close, open=close.copy(), high=close.copy(),
                  low=close.copy(), bid=q[:, 0], ask=q[:, 1], volume=np.zeros(n),
                  implied_vol=np.full(n, 0.35), slots=slots, source="test")


@dataclass
class Result:
    strat: object
    analysis: dict
    hedges: list = field(default_factory=list)      # (datetime, signed shares, status)
    refusals: list = field(default_factory=list)    # (datetime, reason)

    def reasons(self) -> set:
        return {r for _, r in self.refusals}

    def refused_at(self, t: dt.datetime) -> list:
        return [r for when, r in self.refusals if when == t]

    def hedge_times(self) -> list:
        return [t for t, _, _ in self.hedges]

    def hedged_at(self, t: dt.datetime):
        return [s for when, s, _ in self.hedges if when == t]

    def first_hedge_after(self, t: dt.datetime):
        later = [h for h in self.hedges if h[0] > t]
        return later[0] if later else None


def _parse(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s)


def collect(strat) -> Result:
    a = strat.analyzers.guards.get_analysis()
    hedges = [(_parse(h["datetime"]), h["shares"] if h["side"] == "BUY" else -h["shares"], h["status"])
              for h in a["hedges"]]
    refusals = [(_parse(r["datetime"]), r["reason"]) for r in a["refusals"]]
    return Result(strat, a, hedges, refusals)


def run(rows: list[Bar], overrides: dict | None = None, cash: float = 1_000_000.0,
        runonce: bool = True, strategy=None, **market_kw) -> Result:
    """Wire like runners/backtest.py: add_market + add_hedging, cheat-on-close."""
    cfg = load_config(overrides=dict(overrides or {}))
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce, preload=True, maxcpus=1)
    cerebro.broker.setcash(cash)
    cerebro.broker.set_coc(True)
    add_market(cerebro, market(rows, **market_kw), cfg)
    add_hedging(cerebro, cfg, strategy)
    strat = cerebro.run()[0]
    return collect(strat)


def plain_feeds(rows: list[Bar], **market_kw):
    """The same market as bare feeds (no wiring), for drop-in use."""
    m = market(rows, **market_kw)
    stock = StockData(columns={"datetime": m.dt, "open": m.open, "high": m.high, "low": m.low,
                               "close": m.close, "volume": m.volume, "bid": m.bid, "ask": m.ask})
    return stock, [OptionData(columns=c, multiplier=MULT) for c in m.slots]
