"""Which option legs count, which straddle to hold, and when to roll it.

Dates are proleptic ordinals (``date.toordinal()``) so the hot path needs no datetime
objects; DTE is whole calendar days from today to the expiry date."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Contract:
    right: int          # +1 call, -1 put
    strike: float
    expiry_ord: int     # expiry date as an ordinal; expires 16:00 New York that day


def leg_counts(strike: float, expiry_ord: int, spot: float, today_ord: int,
               min_dte: int, max_dte: int, band: float) -> bool:
    """A leg counts toward delta inside the DTE window and the ATM band."""
    if not (spot > 0 and math.isfinite(strike)):
        return False
    dte = expiry_ord - today_ord
    return min_dte <= dte <= max_dte and abs(strike - spot) / spot <= band


def needs_roll(strike: float, expiry_ord: int, spot: float, today_ord: int,
               min_dte: int, band: float) -> bool:
    """Roll when DTE falls below the window or the strike leaves the band; never on
    an unknown spot (NaN or <= 0), which is no reason to trade."""
    if not spot > 0:
        return False
    return expiry_ord - today_ord < min_dte or abs(strike - spot) / spot > band


def choose_straddle(spot: float, today_ord: int, pairs, min_dte: int, max_dte: int,
                    band: float):
    """Pick (strike, expiry_ord) from ``pairs`` (iterable of available straddles):
    the latest expiry inside the DTE window (fewest rolls), then the strike nearest
    spot (ties to the lower strike); None when nothing qualifies."""
    best = None
    best_key = None
    if not spot > 0:
        return None
    for strike, expiry_ord in pairs:
        dte = expiry_ord - today_ord
        if not (min_dte <= dte <= max_dte) or abs(strike - spot) / spot > band:
            continue
        key = (-expiry_ord, abs(strike - spot), strike)
        if best_key is None or key < best_key:
            best, best_key = (strike, expiry_ord), key
    return best


def listed_pairs(spot: float, today_ord: int, strike_step: float, expiries, n_strikes: int = 2):
    """Strikes on a ``strike_step`` grid around spot, for every listed expiry."""
    base = round(spot / strike_step) * strike_step
    strikes = [base + k * strike_step for k in range(-n_strikes, n_strikes + 1)]
    return [(k, e) for e in expiries if e >= today_ord for k in strikes if k > 0]
