"""One synthetic-GBM path under hedging theory: the set-up the theory tests and
``benchmarks/theory.py`` share.

Everything that is not theory is off (costs, spreads, rate, drift, guards); one
straddle of ``CONTRACTS`` per leg, held without a roll unless ``rolls``. ``run_path``
returns the hedged P&L with what theory says about it, computed from the backtest's
per-bar series."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np

from runners.backtest import run_backtest

CONTRACTS = 10
MULTIPLIER = 100
MIN_DTE, MAX_DTE = 14, 35           # with a 0.5 ATM band: no roll within two weeks
STRIKE_STEP = 5.0
MONDAY = "2026-01-05"               # Mon-Fri: no weekend inside the horizon
WEDNESDAY = "2026-01-07"            # Wed-Tue: a weekend inside the horizon

THEORY = [
    # no costs
    "broker.stock.commission_per_share=0", "broker.stock.min_commission=0",
    "broker.stock.slippage_bps=0", "broker.option.commission_per_contract=0",
    "broker.option.slippage_pct=0", "market.spread.stock_bps=0",
    "market.spread.option_pct=0", "market.spread.option_min=0",
    # no rate, no drift, no earnings
    "greeks.risk_free_rate=0", "market.synthetic.mu=0", "market.synthetic.earnings_dates=[]",
    # no guards
    "gates.intent.hedge.cooldown_seconds=null", "gates.intent.hedge.min_price_move_pct=null",
    "gates.guard.risk.max_daily_hedge_count=null", "gates.guard.risk.max_position_shares=null",
    "gates.guard.risk.max_daily_loss_usd=null", "gates.intent.hedge.min_hedge_shares=1",
    "gates.intent.hedge.max_hedge_shares_per_order=1000000",
    "gates.state.delta.max_delta_limit=1000000",
    # one straddle
    f"gates.strategy.structure.contracts={CONTRACTS}",
    f"gates.strategy.structure.multiplier={MULTIPLIER}",
    f"market.synthetic.strike_step={STRIKE_STEP}",
]
NO_ROLL = ["gates.strategy.structure.atm_band_pct=0.5",
           f"gates.strategy.structure.min_dte={MIN_DTE}", f"gates.strategy.structure.max_dte={MAX_DTE}"]


# -- an independent Black-Scholes (the project's pricing is what is under test) ------------
def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def straddle(spot: float, strike: float, var: float) -> float:
    """Call + put per share, zero rate, total variance ``var``."""
    sd = math.sqrt(var)
    d1 = (math.log(spot / strike) + 0.5 * var) / sd
    d2 = d1 - sd
    return (spot * _ncdf(d1) - strike * _ncdf(d2)) + (strike * _ncdf(-d2) - spot * _ncdf(-d1))


def held_contract(spot: float, today_ord: int) -> tuple[float, float]:
    """The straddle the strategy must buy: the latest Friday expiry inside the DTE window,
    the listed strike nearest spot (ties to the lower). Returns (strike, expiry as a
    Backtrader date number at 16:00)."""
    fridays = [d for d in range(today_ord + MIN_DTE, today_ord + MAX_DTE + 1)
               if dt.date.fromordinal(d).weekday() == 4]
    strikes = [round(spot / STRIKE_STEP) * STRIKE_STEP + k * STRIKE_STEP for k in (-1, 0, 1)]
    strike = min(strikes, key=lambda k: (abs(k - spot), k))
    return strike, max(fridays) + 16.0 / 24.0


def run_path(seed: int, sigma: float, iv: float, *, start: str = MONDAY, days: int = 5,
             bar_minutes: int = 5, band: float = 2.0, rolls: bool = False) -> dict:
    res = run_backtest(None, THEORY + ([] if rolls else NO_ROLL) + [
        f"market.synthetic.seed={seed}", f"market.synthetic.sigma={sigma}",
        f"market.synthetic.implied_vol={iv}", f"market.synthetic.start='{start}'",
        f"market.synthetic.days={days}", f"market.synthetic.bar_minutes={bar_minutes}",
        f"gates.state.delta.threshold_hedge_shares={band}",
        f"gates.state.delta.epsilon_band={band / 2}",
    ])
    m, s = res.metrics, res.series
    t = np.asarray(s["datetime"], dtype=float)
    spot = np.asarray(s["spot"], dtype=float)
    gamma = np.asarray(s["net_gamma"], dtype=float)[:-1]     # the previous bar's
    ds = np.diff(spot)
    dt_years = np.diff(t) / 365.0
    theta = 0.5 * gamma * iv * iv * spot[:-1] ** 2 * dt_years
    if rolls:                            # no single held contract: only sigma == iv is known
        aw = 0.0 if sigma == iv else math.nan
    else:
        strike, expiry = held_contract(spot[0], int(t[0]))
        held = (t[-1] - t[0]) / 365.0
        tau0 = (expiry - t[0]) / 365.0
        aw = CONTRACTS * MULTIPLIER * (
            straddle(spot[0], strike, sigma ** 2 * held + iv ** 2 * (tau0 - held))
            - straddle(spot[0], strike, iv ** 2 * tau0))
    # the hedge of the straddle's opening delta (sent with the straddle, bar 0) is not
    # the band's doing
    bar0 = dt.datetime.fromordinal(int(t[0])) + dt.timedelta(seconds=round(t[0] % 1 * 86400))
    opening = [h for h in res.hedges if h["datetime"] == bar0.strftime("%Y-%m-%d %H:%M:%S")]
    return {
        "pnl": m["total_pnl"], "costs": m["costs"],
        "identity": float(np.sum(0.5 * gamma * ds * ds) - np.sum(theta)),
        "theta": float(np.sum(theta)),                      # what the identity says decays
        "aw": aw,
        "hedges": m["hedge_count"], "shares_traded": m["shares_traded"],
        "contracts_traded": m["option_contracts_traded"],
        "band_hedges": m["hedge_count"] - len(opening),
        "band_shares": m["shares_traded"] - sum(abs(h["shares"]) for h in opening),
        "delta_qv": float(np.sum((gamma * ds) ** 2)),              # sum (Gamma dS)^2
        "bars": len(ds),
        "s2dt": float(np.sum(sigma * sigma * spot[:-1] ** 2 * dt_years)),
    }
