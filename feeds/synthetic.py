"""The embedded synthetic market: seeded GBM over regular-hours bars on business days.

The underlying moves over every elapsed calendar second between bars (overnight and
weekend gaps included), matching the calendar-time convention of ``bifrost.pricing``,
so a market with ``sigma == implied_vol`` is fair for a delta-hedged option holder.
Same config, same market, bit for bit.
"""
from __future__ import annotations

import datetime as dt

import numpy as np

from bifrost.pricing import SECONDS_PER_YEAR
from feeds.market import Market, bt_num, model_option_slots, stock_quote


def session_times(start: dt.date, days: int, bar_minutes: int) -> list[dt.datetime]:
    """End-stamped bar times 09:30+bar .. 16:00 on ``days`` business days from start."""
    out = []
    day = start
    per_day = 390 // bar_minutes
    open_ = dt.time(9, 30)
    while len(out) < days * per_day:
        if day.weekday() < 5:
            base = dt.datetime.combine(day, open_)
            out.extend(base + dt.timedelta(minutes=bar_minutes * (k + 1)) for k in range(per_day))
        day += dt.timedelta(days=1)
    return out


def to_bt_num(times) -> np.ndarray:
    """Backtrader date numbers (ordinal + day fraction) for naive datetimes."""
    return np.array([bt_num(t) for t in times])


def gbm_path(dtn: np.ndarray, spot: float, mu: float, sigma: float, seed: int,
             jumps: np.ndarray | None = None) -> np.ndarray:
    """Closes of a GBM at the bar times; the first bar moves over one bar's length.
    ``jumps`` adds log-return shocks (earnings) at chosen bars."""
    rng = np.random.default_rng(seed)
    dtn = np.asarray(dtn, dtype=float)
    step = np.diff(dtn, prepend=dtn[0] - (dtn[1] - dtn[0] if len(dtn) > 1 else 1 / 78)) * 86400.0 / SECONDS_PER_YEAR
    z = rng.standard_normal(len(dtn))
    logret = (mu - 0.5 * sigma * sigma) * step + sigma * np.sqrt(step) * z
    if jumps is not None:
        logret = logret + jumps
    return spot * np.exp(np.cumsum(logret))


def synthetic_market(cfg: dict) -> Market:
    s = cfg["market"]["synthetic"]
    times = session_times(dt.date.fromisoformat(s["start"]), s["days"], s["bar_minutes"])
    dtn = to_bt_num(times)
    jumps = None
    if s["earnings_dates"] and s["earnings_jump_pct"] > 0:
        # earnings after the close: the shock lands in the next session's first bar
        jrng = np.random.default_rng(s["seed"] + 1_000_003)
        jumps = np.zeros(len(dtn))
        day_ord = dtn.astype(int)
        for d in s["earnings_dates"]:
            after = np.nonzero(day_ord > dt.date.fromisoformat(d).toordinal())[0]
            if len(after):
                jumps[after[0]] += jrng.standard_normal() * s["earnings_jump_pct"] / 100.0
    close = gbm_path(dtn, s["spot"], s["mu"], s["sigma"], s["seed"], jumps)
    open_ = np.concatenate(([s["spot"]], close[:-1]))
    bid, ask = stock_quote(close, cfg["market"]["spread"]["stock_bps"])
    iv = np.full(len(dtn), s["implied_vol"])
    return Market(symbol=cfg["symbol"], dt=dtn, close=close, open=open_,
                  high=np.maximum(open_, close), low=np.minimum(open_, close),
                  bid=bid, ask=ask, volume=np.zeros(len(dtn)), implied_vol=iv,
                  slots=model_option_slots(dtn, close, iv, cfg), source="synthetic")
