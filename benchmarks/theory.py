"""The backtest against option-hedging theory, on many synthetic GBM paths.

    .venv/bin/python benchmarks/theory.py [--paths 200] [--workers 2] [--seed 1000]

Zero costs, rate, drift and guards; one straddle of 10 contracts per leg. Prints:

1. the gamma-scalping identity: per path, hedged P&L vs
   sum 0.5 * Gamma * (dS^2 - iv^2 S^2 dt) (Gamma = net_gamma of the previous bar, dt in
   calendar years from the bars' datetimes): correlation, slope, residual vs theta;
2. mean P&L +- standard error vs Ahmad-Wilmott E[P&L] = Straddle(s_r^2 t + s_i^2 (T - t))
   - Straddle(s_i^2 T), for s_r == s_i (over a week without and with a weekend) and
   s_r != s_i; the same with the default 3% ATM band and DTE window (rolls happen);
3. band hedging on one session of 1-minute bars (no overnight gap, which forces a hedge
   every morning whatever the band): hedges, shares traded and std P&L for H and H/2
   against the theory (E[QV] / H^2, E[QV] / H, H * sqrt(E[int s^2 S^2 dt] / 6)) and the
   theory ratios 4, 2, 1/2. "theory*" moves the band by Broadie-Glasserman-Kou's
   0.5826 * (per-bar delta move) for discretely monitored bars.
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from runners.backtest import run_backtest  # noqa: E402

CONTRACTS = 10
MULTIPLIER = 100
STRIKE_STEP = 5.0
MONDAY, WEDNESDAY = "2026-01-05", "2026-01-07"
BGK = 0.5826                       # -zeta(1/2) / sqrt(2 pi): discrete-monitoring shift

THEORY = [
    "broker.stock.commission_per_share=0", "broker.stock.min_commission=0",
    "broker.stock.slippage_bps=0", "broker.option.commission_per_contract=0",
    "broker.option.slippage_pct=0", "market.spread.stock_bps=0",
    "market.spread.option_pct=0", "market.spread.option_min=0",
    "greeks.risk_free_rate=0", "market.synthetic.mu=0", "market.synthetic.earnings_dates=[]",
    "gates.intent.hedge.cooldown_seconds=null", "gates.intent.hedge.min_price_move_pct=null",
    "gates.guard.risk.max_daily_hedge_count=null", "gates.guard.risk.max_position_shares=null",
    "gates.guard.risk.max_daily_loss_usd=null", "gates.intent.hedge.min_hedge_shares=1",
    "gates.intent.hedge.max_hedge_shares_per_order=1000000",
    "gates.state.delta.max_delta_limit=1000000",
    f"gates.strategy.structure.contracts={CONTRACTS}",
    f"gates.strategy.structure.multiplier={MULTIPLIER}",
    f"market.synthetic.strike_step={STRIKE_STEP}",
]
NO_ROLL = ["gates.strategy.structure.atm_band_pct=0.5", "gates.strategy.structure.min_dte=14",
           "gates.strategy.structure.max_dte=35"]
MIN_DTE, MAX_DTE = 14, 35


def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def straddle(spot: float, strike: float, var: float) -> float:
    sd = math.sqrt(var)
    d1 = (math.log(spot / strike) + 0.5 * var) / sd
    d2 = d1 - sd
    return (spot * _ncdf(d1) - strike * _ncdf(d2)) + (strike * _ncdf(-d2) - spot * _ncdf(-d1))


def held_contract(spot: float, today_ord: int) -> tuple[float, float]:
    fridays = [d for d in range(today_ord + MIN_DTE, today_ord + MAX_DTE + 1)
               if dt.date.fromordinal(d).weekday() == 4]
    strikes = [round(spot / STRIKE_STEP) * STRIKE_STEP + k * STRIKE_STEP for k in (-1, 0, 1)]
    strike = min(strikes, key=lambda k: (abs(k - spot), k))
    return strike, max(fridays) + 16.0 / 24.0


def run_path(task: tuple) -> dict:
    """One backtest; ``task`` = (seed, sigma, iv, start, days, bar_minutes, band, rolls)."""
    seed, sigma, iv, start, days, bar_minutes, band, rolls = task
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
    gamma = np.asarray(s["net_gamma"], dtype=float)[:-1]
    ds = np.diff(spot)
    dt_years = np.diff(t) / 365.0
    theta = 0.5 * gamma * iv * iv * spot[:-1] ** 2 * dt_years
    out = {
        "pnl": m["total_pnl"], "costs": m["costs"],
        "identity": float(np.sum(0.5 * gamma * ds * ds) - np.sum(theta)),
        "theta": float(np.sum(theta)),
        "hedges": m["hedge_count"], "shares": m["shares_traded"],
        "contracts": m["option_contracts_traded"],
        # band theory inputs, from bar 2 on (bar 0 buys, bar 1 hedges the opening delta)
        "qv": float(np.sum((gamma[1:] * ds[1:]) ** 2)),
        "bars": len(ds) - 1,
        "s2dt": float(np.sum(sigma * sigma * spot[1:-1] ** 2 * dt_years[1:])),
    }
    # the hedge of the straddle's opening delta (bar 1) is not part of the band's count
    first = [h for h in res.hedges if h.get("status") == "Completed"]
    opening = [h for h in first if h["datetime"] == _bar_text(t[1])]
    out["hedges_band"] = out["hedges"] - len(opening)
    out["shares_band"] = out["shares"] - sum(abs(h["shares"]) for h in opening)
    if rolls:
        out["aw"] = 0.0 if sigma == iv else math.nan
    else:
        strike, expiry = held_contract(spot[0], int(t[0]))
        held = (t[-1] - t[0]) / 365.0
        tau0 = (expiry - t[0]) / 365.0
        out["aw"] = CONTRACTS * MULTIPLIER * (
            straddle(spot[0], strike, sigma ** 2 * held + iv ** 2 * (tau0 - held))
            - straddle(spot[0], strike, iv ** 2 * tau0))
    return out


def _bar_text(num: float) -> str:
    day = int(num)
    secs = round((num - day) * 86400.0)
    return (dt.datetime.fromordinal(day) + dt.timedelta(seconds=secs)).strftime("%Y-%m-%d %H:%M:%S")


def run_set(pool, n, seed0, sigma, iv, start=MONDAY, days=5, bar_minutes=5, band=2.0, rolls=False):
    tasks = [(seed0 + i, sigma, iv, start, days, bar_minutes, band, rolls) for i in range(n)]
    rows = pool.map(run_path, tasks, chunksize=max(1, n // 16))
    return {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0]}


def mean_se(x):
    return float(np.mean(x)), float(np.std(x, ddof=1) / math.sqrt(len(x)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--paths", type=int, default=200, help="paths per case (default %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="processes (default %(default)s)")
    p.add_argument("--seed", type=int, default=1000, help="first seed (default %(default)s)")
    p.add_argument("--band", type=float, default=24.0, help="band H in shares (default %(default)s)")
    args = p.parse_args(argv)
    n = args.paths
    t0 = time.perf_counter()
    with mp.Pool(args.workers) as pool:
        cases = [
            ("s_r=s_i=0.35 Mon-Fri", dict(sigma=0.35, iv=0.35)),
            ("s_r=s_i=0.35 Wed-Tue (weekend)", dict(sigma=0.35, iv=0.35, start=WEDNESDAY)),
            ("s_r=0.50 > s_i=0.30 Mon-Fri", dict(sigma=0.5, iv=0.3)),
            ("s_r=0.30 < s_i=0.50 Mon-Fri", dict(sigma=0.3, iv=0.5)),
            ("s_r=s_i=0.35 10d, rolls on", dict(sigma=0.35, iv=0.35, days=10, rolls=True)),
        ]
        results = [(name, run_set(pool, n, args.seed + 10_000 * i, **kw))
                   for i, (name, kw) in enumerate(cases)]
        h = args.band
        wide = run_set(pool, n, args.seed + 90_000, 0.35, 0.35, days=1, bar_minutes=1, band=h)
        narrow = run_set(pool, n, args.seed + 90_000, 0.35, 0.35, days=1, bar_minutes=1, band=h / 2)
    secs = time.perf_counter() - t0

    print(f"theory benchmark: {n} paths per case, {args.workers} workers, {secs:.1f} s\n")
    print("1-2. identity and expected P&L (5-minute bars, band H=2 shares: a hedge ~every bar)")
    hdr = (f"{'case':<31}{'corr':>7}{'slope':>7}{'resid/theta':>12}{'mean P&L':>10}"
           f"{'+- s.e.':>9}{'A-W E[P&L]':>11}{'z':>7}{'rolls/path':>11}")
    print(hdr)
    print("-" * len(hdr))
    for name, r in results:
        corr = np.corrcoef(r["pnl"], r["identity"])[0, 1]
        slope = np.polyfit(r["identity"], r["pnl"], 1)[0]
        resid = np.mean(r["pnl"] - r["identity"]) / np.mean(r["theta"])
        mean, se = mean_se(r["pnl"])
        aw = float(np.mean(r["aw"]))
        rolls = (np.mean(r["contracts"]) - 2 * CONTRACTS) / (4 * CONTRACTS)   # a roll: 2 legs out, 2 in
        print(f"{name:<31}{corr:>7.4f}{slope:>7.3f}{resid:>12.4f}{mean:>10.1f}{se:>9.1f}"
              f"{aw:>11.1f}{(mean - aw) / se:>7.2f}{rolls:>11.2f}")
    assert all(np.all(r["costs"] == 0) for _, r in results)

    print(f"\n3. band hedging: one session of 1-minute bars, s_r = s_i = 0.35, H = {h:g} and {h / 2:g}")
    rows = []
    for band, r in ((h, wide), (h / 2, narrow)):
        qv = np.mean(r["qv"])
        step = math.sqrt(qv / np.mean(r["bars"]))          # per-bar delta move, rms
        h_eff = band + BGK * step
        rows.append({
            "H": band, "step": step,
            "hedges": np.mean(r["hedges_band"]), "hedges_th": qv / band ** 2,
            "hedges_th2": qv / h_eff ** 2,
            "shares": np.mean(r["shares_band"]), "shares_th": qv / band,
            "shares_th2": qv / h_eff,
            "std": np.std(r["pnl"], ddof=1), "std_band": np.std(r["pnl"] - r["identity"], ddof=1),
            "std_th": band * math.sqrt(np.mean(r["s2dt"]) / 6.0),
        })
    hdr = (f"{'H':>6}{'step':>6}{'hedges':>8}{'theory':>8}{'theory*':>8}{'shares':>8}{'theory':>8}"
           f"{'theory*':>8}{'std P&L':>9}{'std(P&L-id)':>12}{'theory':>8}")
    print(hdr)
    print("-" * len(hdr))
    for x in rows:
        print(f"{x['H']:>6g}{x['step']:>6.1f}{x['hedges']:>8.1f}{x['hedges_th']:>8.1f}"
              f"{x['hedges_th2']:>8.1f}{x['shares']:>8.0f}{x['shares_th']:>8.0f}{x['shares_th2']:>8.0f}"
              f"{x['std']:>9.1f}{x['std_band']:>12.1f}{x['std_th']:>8.1f}")
    a, b = rows
    print(f"{'H/2 : H':>12}{b['hedges'] / a['hedges']:>8.2f}{4:>8}{b['hedges_th2'] / a['hedges_th2']:>8.2f}"
          f"{b['shares'] / a['shares']:>8.2f}{2:>8}{b['shares_th2'] / a['shares_th2']:>8.2f}"
          f"{b['std'] / a['std']:>9.2f}{b['std_band'] / a['std_band']:>12.2f}{0.5:>8}")
    print("(hedges and shares exclude the opening hedge of the straddle's initial delta; "
          "std(P&L-id) is the band's hedging error alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
