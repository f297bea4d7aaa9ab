"""The backtest broker: Backtrader's BackBroker, minus per-bar work our instruments
never need. BackBroker computes credit interest (two datetime conversions) and a
futures cash adjustment for every open position on every bar, then values every
position, flat ones included; with stock-like instruments and no interest the first
two are zero and a flat position is worth nothing, so skipping them saves about a
sixth of a year's backtest. Any commission scheme that charges interest or is
futures-like, and fund mode, get the full BackBroker path."""
from __future__ import annotations

import backtrader as bt
from backtrader.brokers.bbroker import BackBroker


class LeanBackBroker(BackBroker):
    def start(self):
        super().start()
        self._lean = None
        self._valued = []              # (position, close buffer, comminfo) per data

    def _can_be_lean(self) -> bool:
        infos = list(self.comminfo.values())
        return (all(ci.stocklike and not ci.p.interest for ci in infos if ci is not None)
                and not self._fundhist and self.p.shortcash)

    def next(self):
        if self._lean is None:
            self._lean = self._can_be_lean()
        if not self._lean:
            return super().next()
        while self._toactivate:
            self._toactivate.popleft().activate()
        if self.p.checksubmit:
            self.check_submitted()
        self._process_order_history()
        self.pending.append(None)              # the same order loop as BackBroker.next
        while True:
            order = self.pending.popleft()
            if order is None:
                break
            if order.expire():
                self.notify(order)
                self._ococheck(order)
                self._bracketize(order, cancel=True)
            elif not order.active():
                self.pending.append(order)
            else:
                self._try_exec(order)
                if order.alive():
                    self.pending.append(order)
                elif order.status == bt.Order.Completed:
                    self._bracketize(order)
        self._lean_value()

    def _lean_value(self) -> None:
        """BackBroker._get_value for stock-like schemes with shortcash, over the
        positions that are open: the same _value, _valuemkt and lever figures."""
        if len(self._valued) != len(self.positions):
            self._valued = [(pos, data.lines.close, self.getcommissioninfo(data))
                            for data, pos in self.positions.items()]
        while self._cash_addition:
            c = self._cash_addition.popleft()
            self._fundshares += c / self._fundval
            self.cash += c
        pos_value = unlever = unrealized = 0.0
        for pos, close, ci in self._valued:
            size = pos.size
            if not size:
                continue                       # flat: worth 0 (a flat slot may have no price)
            price = close.array[close._idx]    # close[0], read directly (feeds.lines)
            value = ci.getvaluesize(size, price)
            pnl = ci.profitandloss(size, pos.price, price)
            pos_value += value
            unrealized += pnl
            if value > 0:                      # long: unlever (BackBroker's order of adds)
                unlever += (value - pnl) / ci.get_leverage()
                unlever += pnl
            else:
                unlever += value
        self._value = self.cash + unlever
        self._fundval = self._value / self._fundshares
        self._valuemkt = unlever
        self._valuelever = self.cash + pos_value
        self._valuemktlever = pos_value
        self._leverage = pos_value / (unlever or 1.0)
        self._unrealized = unrealized
