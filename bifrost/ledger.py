"""P&L split, greek attribution and risk figures from per-bar records: pure numpy.

The P&L analyzer records each bar (time, spot, value, every instrument's mid and
position, the counted legs' greeks) and the cash paid at each fill; everything here is
computed from those arrays at the end, so the per-bar cost of measuring stays small.

Conventions, the same as the strategy's: P&L is at mid, a position's mark is
size x mid x multiplier minus the cash paid for it at its fill prices; when an
instrument has no price in a bar its last mark stands. Attribution per bar and per
counted leg uses the greeks of the bar before: delta dS, 1/2 gamma dS^2, theta dt,
vega d(iv); time is calendar time (ACT/365).
"""
from __future__ import annotations

import math

import numpy as np

from bifrost.pricing import DAYS_PER_YEAR


def marks(prices: np.ndarray, sizes: np.ndarray, mult: np.ndarray) -> np.ndarray:
    """Mark of every position, (bars, instruments): size x price x multiplier, 0 when
    flat, the last mark when the price is missing (0 before any)."""
    with np.errstate(invalid="ignore"):
        m = np.where(sizes != 0, sizes * prices * mult, 0.0)
    missing = np.isnan(m)
    if missing.any():
        n, k = m.shape
        last = np.where(missing, -1, np.arange(n)[:, None])
        np.maximum.accumulate(last, axis=0, out=last)
        padded = np.vstack([np.zeros((1, k)), m])      # row 0: before the first bar
        m = padded[last + 1, np.arange(k)]
    return m


def cumulative_pnl(prices: np.ndarray, sizes: np.ndarray, mult: np.ndarray,
                   cash: np.ndarray) -> np.ndarray:
    """Cumulative P&L at mid per instrument and bar: mark minus the cash paid so far."""
    return marks(prices, sizes, mult) - np.cumsum(cash, axis=0)


def attribution(now: np.ndarray, spot: np.ndarray, shares: np.ndarray, greeks: np.ndarray,
                counted: np.ndarray) -> dict[str, np.ndarray]:
    """Per-bar greek P&L (arrays of length bars, 0 at the first bar), summed over legs.

    ``shares`` (bars, legs): position x multiplier after each bar; ``greeks`` (bars,
    legs, 5): delta, gamma, vega, theta, iv per share; ``counted`` (bars, legs): the
    leg counted at that bar (its greeks are known). A bar's P&L uses the legs counted
    and held at the bar before."""
    n = len(now)
    out = {k: np.zeros(n) for k in ("delta", "gamma", "theta", "vega")}
    if n < 2 or shares.shape[1] == 0:
        return out
    ds = (spot[1:] - spot[:-1])[:, None]
    dt_years = ((now[1:] - now[:-1]) / DAYS_PER_YEAR)[:, None]
    sh = shares[:-1]
    g = greeks[:-1]
    live = counted[:-1] & (sh != 0)
    iv_then = g[..., 4]
    iv_now = np.where(counted[1:], greeks[1:, :, 4], iv_then)   # not counted now: no change
    with np.errstate(invalid="ignore"):
        out["delta"][1:] = np.where(live, sh * g[..., 0] * ds, 0.0).sum(axis=1)
        out["gamma"][1:] = np.where(live, 0.5 * sh * g[..., 1] * ds * ds, 0.0).sum(axis=1)
        out["theta"][1:] = np.where(live, sh * g[..., 3] * dt_years, 0.0).sum(axis=1)
        moved = live & np.isfinite(iv_now) & np.isfinite(iv_then)
        out["vega"][1:] = np.where(moved, sh * g[..., 2] * (iv_now - iv_then), 0.0).sum(axis=1)
    return out


def bar_implied_vol(greeks: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """Mean implied vol of the counted legs per bar (NaN when none has one)."""
    iv = greeks[..., 4]
    ok = counted & np.isfinite(iv)
    n_ok = ok.sum(axis=1)
    total = np.where(ok, iv, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_ok > 0, total / np.maximum(n_ok, 1), np.nan)


def realized_vol(now: np.ndarray, spot: np.ndarray) -> float | None:
    """sqrt(sum of squared log returns / elapsed calendar years), over bars where both
    spots are positive; None without any."""
    if len(spot) < 2:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (spot[:-1] > 0) & (spot[1:] > 0)
        r = np.log(spot[1:][ok] / spot[:-1][ok])
    years = float(((now[1:] - now[:-1]) / DAYS_PER_YEAR)[ok].sum())
    return math.sqrt(float((r * r).sum()) / years) if years > 0 else None


def daily_values(now: np.ndarray, value: np.ndarray, start_value: float) -> np.ndarray:
    """The start value, then the value at each trading day's last bar."""
    if not len(now):
        return np.array([start_value])
    day = np.floor(now)
    last = np.flatnonzero(np.append(day[1:] != day[:-1], True))
    return np.concatenate([[start_value], value[last]])


def sharpe(daily: np.ndarray, start_value: float) -> float | None:
    """Daily returns on the starting capital, annualised with 252 days."""
    if len(daily) <= 2:
        return None
    rets = np.diff(daily) / start_value
    sd = rets.std(ddof=1)
    return float(rets.mean() / sd * math.sqrt(252.0)) if sd > 0 else None


def max_drawdown(value: np.ndarray, start_value: float) -> tuple[float, float]:
    """Largest fall from a running peak (the start value included): dollars and
    percent of that peak."""
    if not len(value):
        return 0.0, 0.0
    peak = np.maximum.accumulate(np.concatenate([[start_value], value]))[1:]
    dd = peak - value
    i = int(np.argmax(dd))
    if not dd[i] > 0:
        return 0.0, 0.0
    return float(dd[i]), float(dd[i] / peak[i] * 100.0)
