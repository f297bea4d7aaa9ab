"""The hedge sizer: the strategy's delta need, in whole shares, within the limits."""
from __future__ import annotations

import backtrader as bt

from bifrost.guards import hedge_size


class HedgeSizer(bt.Sizer):
    """Reads ``strategy.hedge_need`` (signed shares that bring net delta to zero) and
    returns whole shares: capped at ``max_hedge_shares_per_order`` and so that the stock
    position stays within ``max_position_shares`` (0/None = no cap); 0 when the result is
    under ``min_hedge_shares``. ``last_reason`` says why a size came out 0."""

    params = (
        ("min_hedge_shares", 10),
        ("max_hedge_shares_per_order", 500),
        ("max_position_shares", 2000),
    )

    last_reason = None

    def _getsizing(self, comminfo, cash, data, isbuy):
        need = getattr(self.strategy, "hedge_need", 0.0)
        if (need > 0) != isbuy:
            self.last_reason = "side_mismatch"
            return 0
        position = self.strategy.getposition(data).size
        size, self.last_reason = hedge_size(need, position, self.p.min_hedge_shares,
                                            self.p.max_hedge_shares_per_order,
                                            self.p.max_position_shares)
        return abs(size)
