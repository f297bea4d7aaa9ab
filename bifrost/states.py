"""The six-dimensional state (O, D, M, L, E, S) as pure functions of one instant.

Same values, thresholds and boundaries as the reference engine: |delta| == epsilon is
D0, |delta| == threshold is D2, lag == threshold is S0, spread == wide_spread_pct is L1.
Nothing here remembers anything: every state clears as soon as its inputs do.
"""
from __future__ import annotations

import math
from enum import IntEnum
from typing import NamedTuple


class O(IntEnum):
    NONE = 0
    LONG_GAMMA = 1
    SHORT_GAMMA = 2


class D(IntEnum):
    IN_BAND = 0
    MINOR = 1
    HEDGE_NEEDED = 2
    FORCE_HEDGE = 3
    INVALID = 4


class M(IntEnum):
    QUIET = 0
    NORMAL = 1
    TREND = 2
    CHOPPY_HIGHVOL = 3
    GAP = 4
    STALE = 5


class L(IntEnum):
    NORMAL = 0
    WIDE = 1
    EXTREME_WIDE = 2
    NO_QUOTE = 3


class E(IntEnum):
    IDLE = 0
    ORDER_WORKING = 1
    PARTIAL_FILL = 2
    DISCONNECTED = 3
    BROKER_ERROR = 4


class S(IntEnum):
    OK = 0
    GREEKS_BAD = 1
    DATA_LAG = 2
    RISK_HALT = 3


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def classify_option(n_legs: int, gamma_shares: float) -> O:
    if n_legs == 0 or not _finite(gamma_shares) or gamma_shares == 0:
        return O.NONE
    return O.LONG_GAMMA if gamma_shares > 0 else O.SHORT_GAMMA


def classify_delta(net_delta: float, epsilon_band: float, threshold: float,
                   max_delta_limit: float) -> D:
    if not _finite(net_delta):
        return D.INVALID
    a = abs(net_delta)
    if a <= epsilon_band:
        return D.IN_BAND
    if a >= max_delta_limit:
        return D.FORCE_HEDGE
    if a >= threshold:
        return D.HEDGE_NEEDED
    return D.MINOR


def spread_pct(bid: float, ask: float) -> float:
    """100 * (ask - bid) / mid; NaN when there is no usable two-sided quote."""
    if not (_finite(bid) and _finite(ask)) or bid <= 0 or ask < bid:
        return math.nan
    return 100.0 * (ask - bid) / (0.5 * (ask + bid))


def classify_liquidity(bid: float, ask: float, wide_pct: float, extreme_pct: float) -> L:
    sp = spread_pct(bid, ask)
    if not _finite(sp):
        return L.NO_QUOTE
    if sp >= extreme_pct:
        return L.EXTREME_WIDE
    if sp >= wide_pct:
        return L.WIDE
    return L.NORMAL


def classify_market(returns: list[float], window_years: float, implied_vol: float,
                    quote_age_ms: float, stale_ms: float, gap_pct: float) -> M:
    """Regime from the returns inside the vol window (oldest first).

    STALE when the quote is older than ``stale_ms``; GAP when the last return is at
    least ``gap_pct`` percent; otherwise realised vol over the window against implied:
    above 2x is CHOPPY_HIGHVOL, a net move that is most of the path is TREND, under
    half is QUIET, else NORMAL. Informational: the hedge gate does not use M."""
    if not _finite(quote_age_ms) or quote_age_ms > stale_ms:
        return M.STALE
    if not returns:
        return M.NORMAL
    if abs(returns[-1]) * 100.0 >= gap_pct:
        return M.GAP
    if window_years <= 0 or not _finite(implied_vol) or implied_vol <= 0:
        return M.NORMAL
    ss = sum(r * r for r in returns)
    rv = math.sqrt(ss / window_years)
    if rv > 2.0 * implied_vol:
        return M.CHOPPY_HIGHVOL
    path = sum(abs(r) for r in returns)
    if len(returns) >= 3 and path > 0 and abs(sum(returns)) >= 0.8 * path and rv >= 0.5 * implied_vol:
        return M.TREND
    if rv < 0.5 * implied_vol:
        return M.QUIET
    return M.NORMAL


def classify_execution(connected: bool, broker_error: bool, order_working: bool,
                       partial_fill: bool) -> E:
    if not connected:
        return E.DISCONNECTED
    if broker_error:
        return E.BROKER_ERROR
    if partial_fill:
        return E.PARTIAL_FILL
    if order_working:
        return E.ORDER_WORKING
    return E.IDLE


def classify_system(risk_halt: bool, greeks_ok: bool, lag_ms: float, lag_threshold_ms: float) -> S:
    if risk_halt:
        return S.RISK_HALT
    if not greeks_ok:
        return S.GREEKS_BAD
    if not _finite(lag_ms) or lag_ms > lag_threshold_ms:
        return S.DATA_LAG
    return S.OK


class State(NamedTuple):
    """One instant's (O, D, M, L, E, S); a tuple because it is built every bar."""
    o: O
    d: D
    m: M
    l: L  # noqa: E741 - the reference's name
    e: E
    s: S

    def code(self) -> str:
        return f"O{int(self.o)} D{int(self.d)} M{int(self.m)} L{int(self.l)} E{int(self.e)} S{int(self.s)}"


def gate_block(state: State) -> str | None:
    """Why the state forbids a hedge now, or None when the gate passes.

    Gate: (O1 or O2) and (D2 or D3) and (L0 or L1) and E0 and S0. Checked so the most
    fundamental cause is named first."""
    if state.d is D.INVALID:
        return "delta_invalid"
    if state.s is not S.OK:
        return "system_" + state.s.name.lower()
    if state.o is O.NONE:
        return "no_option_position"
    if state.d not in (D.HEDGE_NEEDED, D.FORCE_HEDGE):
        return "in_band"
    if state.e is not E.IDLE:
        return "execution_" + state.e.name.lower()
    if state.l not in (L.NORMAL, L.WIDE):
        return "liquidity_" + state.l.name.lower()
    return None
