"""Commission schemes that charge the real cost of a fill at mid.

Fills happen at the mid (the feed's close; cheat-on-close, so at the decision bar's
quote). The scheme adds commission, half the spread quoted when the broker executes
the order, and slippage, and keeps the split in ``costs`` so the P&L can say where the
money went.
"""
from __future__ import annotations

import math

import backtrader as bt

from bifrost.costs import option_costs, stock_costs


class _QuotedCommission(bt.CommInfoBase):
    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_FIXED),
        ("data", None),            # the feed whose bid/ask gives the spread
    )

    def __init__(self):
        super().__init__()
        self.costs = {"commission": 0.0, "spread": 0.0, "slippage": 0.0}

    def _half_spread(self) -> float:
        d = self.p.data
        if d is None or not hasattr(d.lines, "bid") or not len(d):
            return 0.0
        bid, ask = d.bid[0], d.ask[0]
        if not (math.isfinite(bid) and math.isfinite(ask)) or ask < bid:
            return 0.0
        return 0.5 * (ask - bid)

    def _split(self, size, price, half_spread):  # pragma: no cover - abstract
        raise NotImplementedError

    def _getcommission(self, size, price, pseudoexec):
        parts = self._split(size, price, self._half_spread())
        if not pseudoexec:    # the broker's confirmation of a real fill: keep the split
            c = self.costs
            c["commission"] += parts[0]
            c["spread"] += parts[1]
            c["slippage"] += parts[2]
        return parts[0] + parts[1] + parts[2]


class StockCommission(_QuotedCommission):
    params = (("per_share", 0.005), ("min_commission", 1.0), ("slippage_bps", 0.0))

    def _split(self, size, price, half_spread):
        return stock_costs(size, price, half_spread, self.p.per_share,
                           self.p.min_commission, self.p.slippage_bps)


class OptionCommission(_QuotedCommission):
    """Options quoted per share, valued and settled per contract (``mult`` shares)."""
    params = (("mult", 100), ("per_contract", 0.65), ("slippage_pct", 0.0))

    def _split(self, size, price, half_spread):
        return option_costs(size, price, half_spread, self.p.mult, self.p.per_contract,
                            self.p.slippage_pct)

    def getsize(self, price, cash):
        return int(cash // (price * self.p.mult))

    def getoperationcost(self, size, price):
        return abs(size) * price * self.p.mult

    def getvaluesize(self, size, price):
        return size * price * self.p.mult if size else 0.0   # a flat slot may have no price

    def getvalue(self, position, price):
        return self.getvaluesize(position.size, price)
