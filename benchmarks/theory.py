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
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from theory_harness import CONTRACTS, MONDAY, WEDNESDAY, run_path as _run_path  # noqa: E402

BGK = 0.5826                       # -zeta(1/2) / sqrt(2 pi): discrete-monitoring shift


def run_path(task: tuple) -> dict:
    """One backtest for a pool worker; ``task`` = (seed, sigma, iv, start, days,
    bar_minutes, band, rolls)."""
    seed, sigma, iv, start, days, bar_minutes, band, rolls = task
    return _run_path(seed, sigma, iv, start=start, days=days, bar_minutes=bar_minutes,
                     band=band, rolls=rolls)


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
        rolls = (np.mean(r["contracts_traded"]) - 2 * CONTRACTS) / (4 * CONTRACTS)   # a roll: 2 legs out, 2 in
        print(f"{name:<31}{corr:>7.4f}{slope:>7.3f}{resid:>12.4f}{mean:>10.1f}{se:>9.1f}"
              f"{aw:>11.1f}{(mean - aw) / se:>7.2f}{rolls:>11.2f}")
    assert all(np.all(r["costs"] == 0) for _, r in results)

    print(f"\n3. band hedging: one session of 1-minute bars, s_r = s_i = 0.35, H = {h:g} and {h / 2:g}")
    rows = []
    for band, r in ((h, wide), (h / 2, narrow)):
        qv = np.mean(r["delta_qv"])
        step = math.sqrt(qv / np.mean(r["bars"]))          # per-bar delta move, rms
        h_eff = band + BGK * step
        rows.append({
            "H": band, "step": step,
            "hedges": np.mean(r["band_hedges"]), "hedges_th": qv / band ** 2,
            "hedges_th2": qv / h_eff ** 2,
            "shares": np.mean(r["band_shares"]), "shares_th": qv / band,
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
