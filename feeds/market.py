"""A market as plain arrays: the underlying's bars and option "slots".

Every source (synthetic, csv, chain) produces a ``Market``; ``add_feeds`` turns it into
Backtrader feeds. Times are Backtrader date numbers (days, ``toordinal()`` based, naive
America/New_York), so ``int(t)`` is the date's ordinal.

Option slots: rolling a straddle every few days would need a feed per contract, and
Backtrader's cost grows with the number of feeds. A slot is one ``OptionData`` feed
that carries successive contracts in time, its contract in its lines. Slots come in
call/put pairs used in rotation: a pair takes a new contract only after its previous
one has been out of use for ``SLOT_IDLE_BARS`` bars, by when the strategy (which applies
the same roll rule) has closed it. So at most a few pairs carry a year of rolls, and
positions, cash and broker value stay exact.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

import numpy as np

from bifrost import structure
from bifrost.guards import outside_trading_hours
from bifrost.pricing import bs_arrays

SLOT_IDLE_BARS = 3
EXPIRY_HOUR = 16.0 / 24.0       # options expire at 16:00 on the expiry date


@dataclass
class Market:
    symbol: str
    dt: np.ndarray                       # Backtrader date numbers
    close: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    volume: np.ndarray
    implied_vol: np.ndarray              # the options' implied vol per bar (for reports)
    slots: list[dict] = field(default_factory=list)   # column dicts for OptionData
    source: str = "synthetic"

    def __len__(self) -> int:
        return len(self.dt)


def bt_num(t: _dt.datetime) -> float:
    """A naive datetime as a Backtrader date number (ordinal + day fraction)."""
    return t.toordinal() + (t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6) / 86400.0


def bt_datetime(num: float) -> _dt.datetime:
    """A Backtrader date number back to a naive datetime (to the second)."""
    day = int(num)
    return _dt.datetime.fromordinal(day) + _dt.timedelta(seconds=round((num - day) * 86400.0))


def stock_quote(close: np.ndarray, spread_bps: float):
    half = close * spread_bps / 2e4
    return close - half, close + half


def fridays(first_ord: int, last_ord: int) -> list[int]:
    """Weekly expiries (every Friday) between two ordinals."""
    start = first_ord + (4 - (first_ord - 1) % 7) % 7  # ordinal 1 (0001-01-01) is a Monday
    return list(range(start, last_ord + 1, 7))


def plan_slots(dtn: np.ndarray, spot: np.ndarray, choose, min_dte: int, band: float,
               tradable=None, closable=None):
    """Walk the bars with the strategy's roll rule and give each straddle it will hold a
    slot pair. ``choose(i, today_ord)`` returns (strike, expiry_ord) or None;
    ``tradable(i)``: the strategy may open or roll at bar i (regular hours);
    ``closable(i, (strike, expiry_ord))``: both legs of that straddle are quoted at bar
    i, so the strategy can close it (default: always). As the strategy does, a due roll
    with nothing to roll into unwinds: the pair is released.
    Returns a list of pairs, each (strike array, expiry array) with NaN where unused."""
    n = len(dtn)
    pairs: list[dict] = []
    held = None
    held_pair = None
    for i in range(n):
        today = int(dtn[i])
        if held is not None and not structure.needs_roll(held[0], held[1], spot[i], today, min_dte, band):
            continue
        if not spot[i] > 0 or (tradable is not None and not tradable(i)):
            continue                     # the strategy makes no structure decision here
        if held is not None and closable is not None and not closable(i, held):
            continue                     # it waits for a quote to close at
        new = choose(i, today)
        if new == held:
            continue
        if held_pair is not None:
            held_pair["released"] = i
        if new is None:                  # unwound: nothing held until a straddle qualifies
            held = held_pair = None
            continue
        # a released pair still quoting this contract takes it back: one contract, one pair
        again = [p for p in pairs if p["released"] is not None
                 and (p["strike"][i], p["expiry"][i]) == new]
        if again:
            again[0]["released"] = None
            held, held_pair = new, again[0]
            continue
        free = [p for p in pairs if p is not held_pair and p["released"] is not None
                and i - p["released"] >= SLOT_IDLE_BARS]
        pair = free[0] if free else None
        if pair is None:
            pair = {"strike": np.full(n, np.nan), "expiry": np.full(n, np.nan), "released": None}
            pairs.append(pair)
        pair["strike"][i:] = new[0]
        pair["expiry"][i:] = new[1]
        pair["released"] = None
        held, held_pair = new, pair
    return [(p["strike"], p["expiry"]) for p in pairs]


def model_option_slots(dtn, spot, iv, cfg: dict) -> list[dict]:
    """Options priced by Black-Scholes at ``iv`` on a strike grid with weekly expiries,
    quoted with the config's spread model; greeks included as a vendor would."""
    st = cfg["gates"]["strategy"]["structure"]
    mkt = cfg["market"]
    step = mkt["synthetic"]["strike_step"] if mkt["source"] == "synthetic" else mkt["csv"]["strike_step"]
    rate = cfg["greeks"]["risk_free_rate"]
    expiries = fridays(int(dtn[0]), int(dtn[-1]) + st["max_dte"] + 7)

    rth_only = cfg["gates"]["strategy"]["trading_hours_only"]

    def tradable(i):                     # the strategy does not roll outside regular hours
        return not (rth_only and outside_trading_hours(bt_datetime(dtn[i])))

    def choose(i, today):
        pairs = structure.listed_pairs(spot[i], today, step,
                                       [e for e in expiries if today <= e <= today + st["max_dte"]])
        return structure.choose_straddle(spot[i], today, pairs, st["min_dte"], st["max_dte"], st["atm_band_pct"])

    spread = mkt["spread"]
    slots = []
    for strikes, expiry in plan_slots(dtn, spot, choose, st["min_dte"], st["atm_band_pct"],
                                      tradable=tradable):
        tau = (expiry + EXPIRY_HOUR - dtn) / 365.0
        live = np.isfinite(strikes) & (tau > 0)
        for right in (1, -1):
            price, delta, gamma, vega, theta = bs_arrays(right, spot, np.where(live, strikes, 1.0),
                                                         np.where(live, tau, 0.0), iv, rate)
            full = np.maximum(spread["option_min"], spread["option_pct"] / 100.0 * price)
            nan_if_dead = lambda a: np.where(live, a, np.nan)
            bid = nan_if_dead(np.maximum(price - full / 2, 0.0))
            ask = nan_if_dead(price + full / 2)
            mid = nan_if_dead(price)
            slots.append({
                "datetime": dtn, "open": mid, "high": mid, "low": mid, "close": mid,
                "volume": np.zeros_like(mid), "bid": bid, "ask": ask,
                "iv": nan_if_dead(np.broadcast_to(iv, mid.shape).astype(float)),
                "delta": nan_if_dead(delta), "gamma": nan_if_dead(gamma),
                "vega": nan_if_dead(vega), "theta": nan_if_dead(theta),
                "strike": nan_if_dead(strikes), "expiry": nan_if_dead(expiry),
                "right": np.full_like(mid, float(right)),
            })
    return slots
