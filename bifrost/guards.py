"""Guards' arithmetic and hedge sizing: pure functions, no state, no clock.

Each guard returns True when it refuses. A limit of None, 0 or False switches that
guard off. ``first_refusal`` applies them in the reference's order and names the reason.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

RTH_OPEN = dt.time(9, 30)
RTH_CLOSE = dt.time(16, 0)


def _on(limit) -> bool:
    return limit is not None and limit is not False and limit != 0


def outside_trading_hours(now: dt.datetime) -> bool:
    """Regular hours 09:30-16:00 America/New_York (``now`` is exchange-local), Mon-Fri."""
    if now.weekday() >= 5:
        return True
    t = now.time()
    return not (RTH_OPEN <= t <= RTH_CLOSE)


def in_earnings_blackout(day: dt.date, dates: list[dt.date], days_before: int, days_after: int) -> bool:
    """Calendar days [date - before, date + after] around each earnings date."""
    for e in dates:
        if (e - dt.timedelta(days=days_before)) <= day <= (e + dt.timedelta(days=days_after)):
            return True
    return False


def circuit_breaker_tripped(day_pnl: float, max_daily_loss: float | None) -> bool:
    return _on(max_daily_loss) and day_pnl <= -max_daily_loss


def cooling_down(now_s: float, last_hedge_s: float | None, cooldown_s: float | None) -> bool:
    return _on(cooldown_s) and last_hedge_s is not None and now_s - last_hedge_s < cooldown_s


def daily_count_reached(count: int, max_count: int | None) -> bool:
    return _on(max_count) and count >= max_count


def position_limit_exceeded(position_after: float, max_position: int | None) -> bool:
    return _on(max_position) and abs(position_after) > max_position


def spread_too_wide(spread_pct: float, max_spread_pct: float | None) -> bool:
    return _on(max_spread_pct) and (not math.isfinite(spread_pct) or spread_pct > max_spread_pct)


def price_move_too_small(spot: float, last_hedge_price: float | None, min_move_pct: float | None) -> bool:
    if not _on(min_move_pct) or last_hedge_price is None or last_hedge_price <= 0:
        return False
    return abs(spot - last_hedge_price) / last_hedge_price * 100.0 < min_move_pct


def net_delta_limit_exceeded(net_delta_after: float, max_net_delta: float | None) -> bool:
    return _on(max_net_delta) and abs(net_delta_after) > max_net_delta


@dataclass(frozen=True)
class GuardInputs:
    """Everything the guards look at for one prospective hedge order."""
    now: dt.datetime
    now_s: float                 # seconds on the data's clock
    spot: float
    size: int                    # signed order size in shares
    position: float              # stock position before the order
    net_delta: float             # net delta before the order (shares)
    spread_pct: float            # stock quote spread, percent of mid
    day_pnl: float
    daily_count: int
    last_hedge_s: float | None
    last_hedge_price: float | None
    force: bool                  # D3: bypasses the cooldown only


@dataclass(frozen=True)
class GuardLimits:
    max_daily_loss_usd: float | None = 5000.0
    trading_hours_only: bool = True
    earnings_dates: tuple = ()
    blackout_days_before: int = 3
    blackout_days_after: int = 1
    cooldown_seconds: float | None = 60.0
    max_daily_hedge_count: int | None = 50
    max_position_shares: int | None = 2000
    max_net_delta_shares: float | None = None
    max_spread_pct: float | None = None
    min_price_move_pct: float | None = 0.2


def first_refusal(x: GuardInputs, g: GuardLimits) -> str | None:
    """The first guard (reference order) that refuses this order, or None."""
    if circuit_breaker_tripped(x.day_pnl, g.max_daily_loss_usd):
        return "circuit_breaker"
    if g.trading_hours_only and outside_trading_hours(x.now):
        return "outside_rth"
    if g.earnings_dates and in_earnings_blackout(x.now.date(), g.earnings_dates,
                                                 g.blackout_days_before, g.blackout_days_after):
        return "earnings_blackout"
    if not x.force and cooling_down(x.now_s, x.last_hedge_s, g.cooldown_seconds):
        return "cooldown"
    if daily_count_reached(x.daily_count, g.max_daily_hedge_count):
        return "max_daily_hedge_count"
    if position_limit_exceeded(x.position + x.size, g.max_position_shares):
        return "max_position"
    if net_delta_limit_exceeded(x.net_delta + x.size, g.max_net_delta_shares):
        return "max_net_delta"
    if spread_too_wide(x.spread_pct, g.max_spread_pct):
        return "spread_too_wide"
    if price_move_too_small(x.spot, x.last_hedge_price, g.min_price_move_pct):
        return "min_price_move"
    return None


def hedge_size(need: float, position: float, min_shares: int, max_per_order: int,
               max_position: int | None) -> tuple[int, str | None]:
    """Integer shares to trade for ``need`` (signed), capped per order and by the
    position limit; (0, reason) when the result is below ``min_shares``."""
    if not math.isfinite(need):
        return 0, "delta_invalid"
    qty = min(int(round(abs(need))), max_per_order)
    sign = 1 if need > 0 else -1
    if _on(max_position):
        room = max_position - sign * position     # shares we may still add on this side
        if room < qty:
            qty = max(int(math.floor(room)), 0)
            if qty < min_shares:
                return 0, "max_position"
    if qty < min_shares:
        return 0, "below_min_hedge"
    return sign * qty, None


# Every reason a hedge can be refused, for fixed result columns (sweeps) and reports:
# the state gate's (bifrost.states.gate_block), the sizer's, then the guards'.
GATE_REASONS = ("delta_invalid", "system_greeks_bad", "system_data_lag", "system_risk_halt",
                "no_option_position", "execution_order_working", "execution_partial_fill",
                "execution_disconnected", "execution_broker_error", "liquidity_extreme_wide",
                "liquidity_no_quote")
SIZER_REASONS = ("below_min_hedge", "max_position", "side_mismatch")
GUARD_REASONS = ("circuit_breaker", "outside_rth", "earnings_blackout", "cooldown",
                 "max_daily_hedge_count", "max_position", "max_net_delta", "spread_too_wide",
                 "min_price_move")
BLOCK_REASONS = tuple(dict.fromkeys(GATE_REASONS + SIZER_REASONS + GUARD_REASONS))
