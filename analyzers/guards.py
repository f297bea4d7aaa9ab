"""Guard and cooldown state, and the record of every hedge and refusal.

The strategy asks ``refusal(...)`` before each hedge order and reports what it sent;
this analyzer keeps the state the guards need (last hedge time and price, the daily
hedge count, the day's starting value for the loss breaker) on the data's clock, and
counts every refusal by reason with its time, so a backtest can answer "why did it not
hedge at 10:42?". All the arithmetic is in ``bifrost.guards``.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections import Counter

import backtrader as bt

from bifrost.guards import GuardInputs, GuardLimits, circuit_breaker_tripped, first_refusal

log = logging.getLogger("bifrost.guards")


class GuardAnalyzer(bt.Analyzer):
    params = (("limits", None),)     # a bifrost.guards.GuardLimits; None = reference defaults

    def start(self):
        self.limits = self.p.limits or GuardLimits()
        self.blocks = Counter()
        self.refusals = []            # (datetime, reason, state code, net delta)
        self.hedges = []              # dicts, fill fields completed by notify_order
        self._hedge_by_ref = {}
        self.day = None
        self.day_start_value = None
        self.daily_count = 0
        self.last_hedge_s = None
        self.last_hedge_price = None

    # -- state on the data's clock -------------------------------------------------
    def observe(self, now_num: float) -> None:
        """Roll the trading day when the date changes: reset the daily hedge count and
        take the broker's value as the day's baseline for the loss breaker."""
        day = int(now_num)
        if day != self.day:
            self.day = day
            self.daily_count = 0
            self.day_start_value = None
        if self.day_start_value is None:
            self.day_start_value = self.strategy.broker.getvalue()

    def restore(self, history: list, today: int) -> None:
        """Today's earlier hedges (data-clock seconds, price) from the broker's
        executions: a restart keeps the daily count, the cooldown and the price
        reference instead of starting afresh."""
        todays = [(s, p) for s, p in history if int(s / 86400.0) == today]
        if not todays:
            return
        self.day = today
        self.daily_count = len(todays)
        self.last_hedge_s, self.last_hedge_price = todays[-1]

    def day_pnl(self) -> float:
        return self.strategy.broker.getvalue() - self.day_start_value

    def risk_halt(self, day_pnl: float | None = None) -> bool:
        """The daily loss breaker (S3), on today's P&L (or the one given, as taken at
        the bar); clears on the next trading day."""
        return circuit_breaker_tripped(self.day_pnl() if day_pnl is None else day_pnl,
                                       self.limits.max_daily_loss_usd)

    # -- the questions the strategy asks ------------------------------------------
    def refusal(self, now: dt.datetime, now_s: float, spot: float, size: int, position: float,
                net_delta: float, spread_pct: float, force: bool) -> str | None:
        return first_refusal(GuardInputs(
            now=now, now_s=now_s, spot=spot, size=size, position=position, net_delta=net_delta,
            spread_pct=spread_pct, day_pnl=self.day_pnl(), daily_count=self.daily_count,
            last_hedge_s=self.last_hedge_s, last_hedge_price=self.last_hedge_price,
            force=force), self.limits)

    def record_block(self, now: dt.datetime, reason: str, state: str, net_delta: float) -> None:
        log.info("%s no hedge: %s (%s, net delta %.1f)", now, reason, state, net_delta)
        self.blocks[reason] += 1
        self.refusals.append((now, reason, state, round(net_delta, 4)))

    def hedge_sent(self, order, now: dt.datetime, now_s: float, spot: float, size: int,
                   net_delta: float, state: str, force: bool) -> None:
        undo = (self.daily_count, self.last_hedge_s, self.last_hedge_price)
        self.daily_count += 1
        self.last_hedge_s = now_s
        self.last_hedge_price = spot
        rec = {"datetime": now, "side": "BUY" if size > 0 else "SELL", "shares": abs(size),
               "decision_price": spot, "net_delta_before": round(net_delta, 4),
               "net_delta_after": round(net_delta + size, 4), "state": state, "force": force,
               "fill_price": None, "commission": None, "status": "Submitted"}
        self.hedges.append(rec)
        if order is not None:
            self._hedge_by_ref[order.ref] = (rec, undo)

    def notify_order(self, order):
        entry = self._hedge_by_ref.get(order.ref)
        if entry is None or order.status in (order.Submitted, order.Accepted):
            return
        rec, undo = entry
        rec["status"] = order.getstatusname()
        if order.status in (order.Rejected, order.Margin) and not order.executed.size:
            # nothing traded: the hedge did not happen, so it arms no cooldown, no
            # price-move reference and no daily count (E4 holds off the retry instead)
            self.daily_count, self.last_hedge_s, self.last_hedge_price = undo
        if order.executed.size:
            rec["fill_price"] = order.executed.price
            rec["commission"] = order.executed.comm
            self.last_hedge_price = order.executed.price
        if not order.alive():
            del self._hedge_by_ref[order.ref]

    def get_analysis(self):
        return {
            "block_reasons": dict(self.blocks),
            "refusals": [{"datetime": t.isoformat(sep=" "), "reason": r, "state": s, "net_delta": d}
                         for t, r, s, d in self.refusals],
            "hedges": [dict(h, datetime=h["datetime"].isoformat(sep=" ")) for h in self.hedges],
        }
