"""The backtest against option-hedging theory on the synthetic GBM market.

Everything that is not theory is switched off (costs, spreads, rate, drift, guards), the
straddle is held without a roll, and the hedge band is small (a hedge nearly every bar)
unless the band itself is under test. On a correct backtest:

* gamma-scalping identity: per path, hedged P&L ~= sum over bars of
  0.5 * Gamma * (dS^2 - iv^2 * S^2 * dt), with Gamma = net_gamma of the previous bar and
  dt in calendar years (ACT/365, nights and weekends included);
* Ahmad & Wilmott: with drift = rate = 0, E[P&L] = Straddle(S0, var = s_r^2 t + s_i^2 (T - t))
  - Straddle(S0, var = s_i^2 T) exactly, for any hedge rule (the stock is a martingale);
  zero when realised vol == implied vol, positive above, negative below;
* band hedging: halving the band H ~quadruples the hedges and ~doubles the shares traded.

Checked by simulating mistakes in a scratch script (monkeypatching, no project edit):
option marks on trading-time tau (252 x 6.5 h) or on calendar days / 252 fail the
identity residual (20-70% of theta) and the zero-mean and Ahmad-Wilmott tests; a GBM that
skips nights, or runs on a 252 x 6.5 h trading clock, fails the zero-mean (up to -130
s.e.), Ahmad-Wilmott and identity tests; a GBM that skips weekends fails the zero-mean
test over the weekend horizon (-3.8 s.e.); hedging at epsilon_band or at 2H instead of
H fails the band test.

Seeds are fixed: the file is deterministic and runs in ~15 s on one core.
"""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

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
    # one straddle, no roll
    f"gates.strategy.structure.contracts={CONTRACTS}",
    f"gates.strategy.structure.multiplier={MULTIPLIER}",
    "gates.strategy.structure.atm_band_pct=0.5",
    f"gates.strategy.structure.min_dte={MIN_DTE}", f"gates.strategy.structure.max_dte={MAX_DTE}",
    f"market.synthetic.strike_step={STRIKE_STEP}",
]


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


# -- one path ----------------------------------------------------------------------------
def run_path(seed: int, sigma: float, iv: float, *, start: str = MONDAY, days: int = 5,
             bar_minutes: int = 5, band: float = 2.0) -> dict:
    res = run_backtest(None, THEORY + [
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
    strike, expiry = held_contract(spot[0], int(t[0]))
    held = (t[-1] - t[0]) / 365.0
    tau0 = (expiry - t[0]) / 365.0
    shares = CONTRACTS * MULTIPLIER
    # the hedge of the straddle's opening delta (sent with the straddle, bar 0) is not
    # the band's doing
    bar0 = dt.datetime.fromordinal(int(t[0])) + dt.timedelta(seconds=round(t[0] % 1 * 86400))
    opening = [h for h in res.hedges if h["datetime"] == bar0.strftime("%Y-%m-%d %H:%M:%S")]
    return {
        "pnl": m["total_pnl"], "costs": m["costs"],
        "identity": float(np.sum(0.5 * gamma * ds * ds) - np.sum(theta)),
        "theta": float(np.sum(theta)),                      # what the identity says decays
        "aw": shares * (straddle(spot[0], strike, sigma ** 2 * held + iv ** 2 * (tau0 - held))
                        - straddle(spot[0], strike, iv ** 2 * tau0)),
        "hedges": m["hedge_count"], "shares_traded": m["shares_traded"],
        "contracts_traded": m["option_contracts_traded"],
        "band_hedges": m["hedge_count"] - len(opening),
        "band_shares": m["shares_traded"] - sum(abs(h["shares"]) for h in opening),
        "delta_qv": float(np.sum((gamma * ds) ** 2)),              # sum (Gamma dS)^2
        "bars": len(ds),
        "s2dt": float(np.sum(sigma * sigma * spot[:-1] ** 2 * dt_years)),
    }


def run_paths(n: int, seed0: int, sigma: float, iv: float, **kw) -> dict:
    rows = [run_path(seed0 + i, sigma, iv, **kw) for i in range(n)]
    out = {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0]}
    for r in rows:                        # the theory set-up itself: no cost, no roll
        assert r["costs"] == 0.0
        assert r["contracts_traded"] == 2 * CONTRACTS
    return out


def mean_se(x: np.ndarray) -> tuple[float, float]:
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))


N_FAIR = 24          # paths per horizon at realised == implied vol
N_MISMATCH = 16      # paths per realised != implied case


@pytest.fixture(scope="module", params=[MONDAY, WEDNESDAY], ids=["mon-fri", "over-weekend"])
def fair(request):
    """Realised vol == implied vol == 0.35, 5 business days of 5-minute bars."""
    return run_paths(N_FAIR, 100, 0.35, 0.35, start=request.param)


# -- 1. the gamma-scalping identity -------------------------------------------------------
def test_gamma_scalping_identity_per_path(fair):
    pnl, ident = fair["pnl"], fair["identity"]
    assert np.std(ident) > 100.0                           # a real spread to correlate
    assert np.corrcoef(pnl, ident)[0, 1] > 0.99
    slope, _ = np.polyfit(ident, pnl, 1)
    assert 0.9 < slope < 1.1                               # same dollars, not just correlated


def test_option_marks_decay_on_the_calendar_clock(fair):
    """P&L minus identity has no drift: theta is paid over the calendar time the bars'
    datetimes give (ACT/365, nights and weekends). Trading-time tau, or a 252-day
    year, leaves a residual of 20-70% of the theta."""
    resid = fair["pnl"] - fair["identity"]
    theta = fair["theta"].mean()
    assert theta > 500.0
    assert abs(resid.mean()) < 0.05 * theta


# -- 2. expected P&L (Ahmad & Wilmott) ----------------------------------------------------
def test_fair_vol_mean_pnl_is_zero(fair):
    mean, se = mean_se(fair["pnl"])
    assert np.allclose(fair["aw"], 0.0)
    assert se > 0
    assert abs(mean) < 3.0 * se, f"mean {mean:.1f} +- {se:.1f}"
    # meaningful: the MC error is small against the option decay a clock error shifts
    assert 3.0 * se < 0.6 * fair["theta"].mean()


@pytest.mark.parametrize("sigma,iv,sign", [(0.5, 0.3, +1), (0.3, 0.5, -1)],
                         ids=["realised-above", "realised-below"])
def test_vol_mismatch_sign_and_ahmad_wilmott(sigma, iv, sign):
    paths = run_paths(N_MISMATCH, 200, sigma, iv)
    mean, se = mean_se(paths["pnl"])
    aw = float(paths["aw"].mean())
    assert sign * aw > 5.0 * se                             # the effect is well resolved
    assert sign * mean > 3.0 * se                           # right sign, clearly
    assert abs(mean - aw) < 3.5 * se, f"mean {mean:.1f} +- {se:.1f} vs A-W {aw:.1f}"
    # the identity carries the sign path by path too
    assert np.corrcoef(paths["pnl"], paths["identity"])[0, 1] > 0.98


# -- 3. band hedging ------------------------------------------------------------------------
def test_halving_the_band_quadruples_hedges_and_doubles_shares():
    """One session of 1-minute bars (no overnight gap, which would force a hedge every
    morning whatever H). With H well above the per-bar delta move (~3.7 shares here):
    hedges ~ QV / H^2 and shares ~ QV / H, QV = E[sum (Gamma dS)^2]; the band's hedging
    error std ~ H * sqrt(E[sum sigma^2 S^2 dt] / 6). Discrete bars overshoot the band:
    H_eff = H + 0.5826 * per-bar move (Broadie-Glasserman-Kou) makes the counts ~3.4x."""
    n, h = 24, 24.0
    wide = run_paths(n, 300, 0.35, 0.35, days=1, bar_minutes=1, band=h)
    narrow = run_paths(n, 300, 0.35, 0.35, days=1, bar_minutes=1, band=h / 2)
    hedges = narrow["band_hedges"].sum() / wide["band_hedges"].sum()
    shares = narrow["band_shares"].sum() / wide["band_shares"].sum()
    assert wide["band_hedges"].sum() >= 5 * n                # enough hedges to count
    assert 2.5 < hedges < 5.0, hedges                        # theory 4 (3.4 with discrete bars)
    assert 1.4 < shares < 2.6, shares                        # theory 2 (1.85)
    for band, paths in ((h, wide), (h / 2, narrow)):
        qv = paths["delta_qv"].mean()
        h_eff = band + 0.5826 * math.sqrt(qv / paths["bars"].mean())
        # absolute levels: the band is H (not epsilon_band, not 2H)
        assert 0.7 < paths["band_hedges"].mean() / (qv / h_eff ** 2) < 1.4
        assert 0.7 < paths["band_shares"].mean() / (qv / h_eff) < 1.4
        band_error = np.std(paths["pnl"] - paths["identity"], ddof=1)
        assert 0.6 < band_error / (band * math.sqrt(paths["s2dt"].mean() / 6.0)) < 1.6
    # and halving the band halves its hedging error
    assert 0.3 < (np.std(narrow["pnl"] - narrow["identity"]) / np.std(wide["pnl"] - wide["identity"])) < 0.75
