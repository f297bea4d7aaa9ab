"""The backtest broker: Backtrader's BackBroker, minus per-bar work our instruments
never need. BackBroker computes credit interest (two datetime conversions) and a
futures cash adjustment for every open position on every bar; with stock-like
instruments and no interest both are zero, and skipping them saves about an eighth of
a year's backtest. Any commission scheme that charges interest or is futures-like
gets the full BackBroker path."""
from __future__ import annotations

import backtrader as bt
from backtrader.brokers.bbroker import BackBroker


class LeanBackBroker(BackBroker):
    def start(self):
        super().start()
        self._lean = None

    def _can_be_lean(self) -> bool:
        infos = list(self.comminfo.values())
        return all(ci.stocklike and not ci.p.interest for ci in infos if ci is not None)

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
        self._get_value()
