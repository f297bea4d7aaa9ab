"""Trading costs of one fill, split by kind. Everything that separates net P&L from
P&L at mid: commission, half the bid/ask spread, and slippage. All non-negative."""
from __future__ import annotations


def stock_costs(size: float, price: float, half_spread: float, per_share: float,
                min_commission: float, slippage_bps: float) -> tuple[float, float, float]:
    q = abs(size)
    if q == 0:
        return 0.0, 0.0, 0.0
    commission = max(q * per_share, min_commission)
    return commission, q * max(half_spread, 0.0), q * price * slippage_bps / 1e4


def option_costs(size: float, price: float, half_spread: float, multiplier: float,
                 per_contract: float, slippage_pct: float) -> tuple[float, float, float]:
    q = abs(size)
    if q == 0:
        return 0.0, 0.0, 0.0
    return (q * per_contract, q * multiplier * max(half_spread, 0.0),
            q * multiplier * price * slippage_pct / 100.0)
