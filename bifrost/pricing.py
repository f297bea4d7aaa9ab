"""Black-Scholes prices, greeks and implied volatility.

Time convention (used everywhere: synthetic market, pricing, theta, attribution):
calendar time, ACT/365, nights and weekends included. ``tau`` is in years, volatility
is per sqrt(calendar year), theta is per calendar year. The synthetic market moves the
underlying over every elapsed second (overnight gaps included) so realised and implied
vol are measured on the same clock.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

SECONDS_PER_YEAR = 365.0 * 86400.0
DAYS_PER_YEAR = 365.0
CALL = 1
PUT = -1
_SQRT_2PI = math.sqrt(2.0 * math.pi)


def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _npdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / _SQRT_2PI


def bs_price(right: int, spot: float, strike: float, tau: float, vol: float,
             rate: float = 0.0) -> float:
    """Black-Scholes price per share; at or after expiry, intrinsic value."""
    if tau <= 0.0 or vol <= 0.0:
        fwd_intr = spot - strike * math.exp(-rate * max(tau, 0.0))
        return max(right * fwd_intr, 0.0)
    sd = vol * math.sqrt(tau)
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * tau) / sd
    d2 = d1 - sd
    disc = strike * math.exp(-rate * tau)
    if right == CALL:
        return spot * _ncdf(d1) - disc * _ncdf(d2)
    return disc * _ncdf(-d2) - spot * _ncdf(-d1)


def bs_greeks(right: int, spot: float, strike: float, tau: float, vol: float,
              rate: float = 0.0) -> tuple[float, float, float, float]:
    """(delta, gamma, vega, theta) per share; vega per 1.00 of vol, theta per year.

    Returns NaNs when the inputs cannot be priced, so callers fail closed (D4/S1)."""
    if not (tau > 0.0 and vol > 0.0 and spot > 0.0 and strike > 0.0):
        nan = float("nan")
        return nan, nan, nan, nan
    sq = math.sqrt(tau)
    sd = vol * sq
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * tau) / sd
    d2 = d1 - sd
    pdf = _npdf(d1)
    disc = strike * math.exp(-rate * tau)
    gamma = pdf / (spot * sd)
    vega = spot * pdf * sq
    if right == CALL:
        delta = _ncdf(d1)
        theta = -spot * pdf * vol / (2.0 * sq) - rate * disc * _ncdf(d2)
    else:
        delta = _ncdf(d1) - 1.0
        theta = -spot * pdf * vol / (2.0 * sq) + rate * disc * _ncdf(-d2)
    return delta, gamma, vega, theta


def implied_vol(right: int, price: float, spot: float, strike: float, tau: float,
                rate: float = 0.0, lo: float = 1e-4, hi: float = 5.0,
                tol: float = 1e-8) -> float:
    """Vol that reproduces ``price``; NaN when no vol in [lo, hi] does (bad quote)."""
    if not (price > 0.0 and spot > 0.0 and strike > 0.0 and tau > 0.0):
        return float("nan")
    intrinsic = max(right * (spot - strike * math.exp(-rate * tau)), 0.0)
    if price <= intrinsic or price >= (spot if right == CALL else strike):
        return float("nan")
    vol = 0.5
    # Newton with a bisection fallback keeps this robust near the wings.
    a, b = lo, hi
    for _ in range(60):
        p = bs_price(right, spot, strike, tau, vol, rate)
        diff = p - price
        if abs(diff) < tol:
            return vol
        if diff > 0:
            b = vol
        else:
            a = vol
        vega = bs_greeks(right, spot, strike, tau, vol, rate)[2]
        step = diff / vega if vega > 1e-12 else 0.0
        nxt = vol - step
        vol = nxt if a < nxt < b and step != 0.0 else 0.5 * (a + b)
        if b - a < tol:
            return vol
    return vol if abs(bs_price(right, spot, strike, tau, vol, rate) - price) < 1e-5 * price else float("nan")


def bs_arrays(right, spot, strike, tau, vol, rate: float = 0.0):
    """Vectorised price, delta, gamma, vega, theta over numpy arrays (same formulas)."""
    right = np.asarray(right, dtype=float)
    spot = np.asarray(spot, dtype=float)
    strike = np.asarray(strike, dtype=float)
    tau = np.asarray(tau, dtype=float)
    vol = np.asarray(vol, dtype=float)
    live = (tau > 0) & (vol > 0) & (spot > 0) & (strike > 0)
    t = np.where(live, tau, 1.0)
    v = np.where(live, vol, 1.0)
    k = np.where(strike > 0, strike, 1.0)
    s = np.where(spot > 0, spot, 1.0)
    sq = np.sqrt(t)
    sd = v * sq
    d1 = (np.log(s / k) + (rate + 0.5 * v * v) * t) / sd
    d2 = d1 - sd
    pdf = np.exp(-0.5 * d1 * d1) / _SQRT_2PI
    disc = k * np.exp(-rate * t)
    is_call = right > 0
    nd1, nd2 = ndtr(d1), ndtr(d2)
    price = np.where(is_call, s * nd1 - disc * nd2, disc * (1 - nd2) - s * (1 - nd1))
    delta = np.where(is_call, nd1, nd1 - 1.0)
    gamma = pdf / (s * sd)
    vega = s * pdf * sq
    theta = -s * pdf * v / (2 * sq) + np.where(is_call, -rate * disc * nd2, rate * disc * (1 - nd2))
    intrinsic = np.maximum(right * (spot - strike * np.exp(-rate * np.maximum(tau, 0.0))), 0.0)
    nan = np.nan
    price = np.where(live, price, intrinsic)
    delta = np.where(live, delta, nan)
    gamma = np.where(live, gamma, nan)
    vega = np.where(live, vega, nan)
    theta = np.where(live, theta, nan)
    return price, delta, gamma, vega, theta
