"""Results: P&L split (options, hedge, costs), greek attribution, hedge activity,
risk figures and realised vs implied vol; plus the per-bar series reports draw.

P&L is measured at mid: each position's mark (size x mid x multiplier) minus the cash
paid for it at its fill price; costs are the commissions, half-spreads and slippage the
commission schemes charged. So ``total_pnl == option_pnl + hedge_pnl - costs``.
Attribution, per bar and per counted leg, with the greeks of the bar before:
delta dS, 1/2 gamma dS^2, theta dt, vega d(iv); the rest of the option P&L is
``unexplained``.
"""
from __future__ import annotations

import math

import backtrader as bt
import numpy as np

from bifrost.pricing import DAYS_PER_YEAR
from brokers import position_reader


SERIES_COLUMNS = ("datetime", "value", "spot", "net_delta", "net_gamma", "option_pnl",
                  "hedge_pnl", "costs", "gamma_pnl", "theta_pnl", "vega_pnl", "delta_pnl",
                  "implied_vol")


class PnLAnalyzer(bt.Analyzer):
    """Needs a strategy exposing ``net_delta``, ``net_gamma`` and ``leg_greeks``
    (GammaScalping does) for the series and the attribution."""
    params = (("keep_series", True),)

    @property
    def series(self) -> dict:
        """Per-bar columns (SERIES_COLUMNS) as lists; empty without keep_series."""
        cols = list(zip(*self._rows)) if self._rows else [()] * len(SERIES_COLUMNS)
        return {name: list(col) for name, col in zip(SERIES_COLUMNS, cols)}

    def start(self):
        s = self.strategy
        self.stock = s.datas[0]
        self.options = [d for d in s.datas[1:] if hasattr(d.lines, "strike")]
        self.mult = {d: float(getattr(d.p, "multiplier", 1)) for d in self.options}
        self.mult[self.stock] = 1.0
        self.start_value = s.broker.getvalue()
        self.cash_flow = {d: 0.0 for d in [self.stock] + self.options}   # paid at fill prices
        self.mark = {d: 0.0 for d in self.cash_flow}
        self.seen = {}                    # order ref -> (executed size, cost, comm) seen
        self.charged = 0.0                # everything the broker charged as commission
        self.pnl = {"option": 0.0, "hedge": 0.0}
        self.attr = {"delta": 0.0, "gamma": 0.0, "theta": 0.0, "vega": 0.0}
        broker = s.broker
        self._position = position_reader(broker)
        self._closes = [(d, d.lines.close) for d in self.cash_flow]   # buffers looked up once
        self._cis = [c for c in (broker.getcommissioninfo(d) for d in self.cash_flow)
                     if hasattr(c, "costs")]
        self.hedge_fills = 0
        self.shares_traded = 0.0
        self.option_contracts_traded = 0.0
        self._prev = None                 # (now_num, spot, {data: (pos, greeks, iv)})
        self._daily = [self.start_value]  # value at each day's last bar, after the start
        self._day = None
        self._peak = self.start_value
        self._dd = (0.0, 0.0)             # max drawdown in dollars and percent of the peak
        self._sumsq = 0.0
        self._years = 0.0
        self._iv_sum = 0.0
        self._iv_n = 0
        self._rows = []                   # one tuple per bar, SERIES_COLUMNS order

    def notify_order(self, order):
        if not order.executed.size:
            return
        ex = order.executed
        size, cost, comm = self.seen.get(order.ref, (0.0, 0.0, 0.0))
        new_size = ex.size - size
        if not new_size:
            return
        total_cost = ex.size * ex.price
        d = order.data
        self.cash_flow[d] = self.cash_flow.get(d, 0.0) + (total_cost - cost) * self.mult.get(d, 1.0)
        self.charged += ex.comm - comm
        self.seen[order.ref] = (ex.size, total_cost, ex.comm)
        if d is self.stock:
            self.shares_traded += abs(new_size)
            if order.status == order.Completed:
                self.hedge_fills += 1
        else:
            self.option_contracts_traded += abs(new_size)
        if not order.alive():
            self.seen.pop(order.ref, None)

    def _costs(self) -> dict:
        """The broker's charges split by kind; spread and slippage come from the
        commission schemes, the commission is what remains of the total charged."""
        spread = sum(ci.costs["spread"] for ci in self._cis)
        slip = sum(ci.costs["slippage"] for ci in self._cis)
        return {"commission": self.charged - spread - slip, "spread": spread, "slippage": slip}

    def next(self):
        s = self.strategy
        stock = self.stock
        now = stock.datetime[0]
        spot = stock.close[0]
        position = self._position
        # marks at mid; P&L = change in mark minus cash paid this bar
        marks, cash_flow, pnl = self.mark, self.cash_flow, self.pnl
        for d, close in self._closes:
            pos = position(d).size
            if not pos and not marks[d] and not cash_flow[d]:
                continue                             # flat and untouched: nothing to book
            if pos:
                # close[0] read directly (the hot path); no bars yet: no price
                px = close.array[close.idx] if close.lencount else math.nan
                mark = pos * px * self.mult[d]
                if mark != mark:
                    mark = marks[d]                  # no price this bar: keep the last mark
            else:
                mark = 0.0
            change = mark - marks[d] - cash_flow[d]
            cash_flow[d] = 0.0
            marks[d] = mark
            pnl["hedge" if d is stock else "option"] += change
        legs = {}
        greeks = getattr(s, "leg_greeks", {})
        iv_bar, iv_n = 0.0, 0
        for d, g in greeks.items():
            legs[d] = (position(d).size * self.mult[d], g)
            if math.isfinite(g[4]):
                iv_bar += g[4]
                iv_n += 1
        if iv_n:
            self._iv_sum += iv_bar / iv_n
            self._iv_n += 1
        prev = self._prev
        if prev is not None:
            pnow, pspot, plegs = prev
            ds = spot - pspot
            dt_years = (now - pnow) / DAYS_PER_YEAR
            if pspot > 0 and spot > 0:
                self._sumsq += math.log(spot / pspot) ** 2
                self._years += dt_years
            for d, (shares, g) in plegs.items():
                if not shares:
                    continue
                iv_now = greeks.get(d, (0, 0, 0, 0, g[4]))[4]
                a = self.attr
                a["delta"] += shares * g[0] * ds
                a["gamma"] += 0.5 * shares * g[1] * ds * ds
                a["theta"] += shares * g[3] * dt_years
                if math.isfinite(iv_now) and math.isfinite(g[4]):
                    a["vega"] += shares * g[2] * (iv_now - g[4])
        self._prev = (now, spot, legs)
        value = s.broker.getvalue()
        day = int(now)
        if day != self._day:
            self._daily.append(value)
            self._day = day
        else:
            self._daily[-1] = value
        if value > self._peak:
            self._peak = value
        elif self._peak - value > self._dd[0]:
            self._dd = (self._peak - value, (self._peak - value) / self._peak * 100.0)
        if self.p.keep_series:
            a = self.attr
            self._rows.append((now, value, spot, s.net_delta, s.net_gamma, self.pnl["option"],
                               self.pnl["hedge"], self.charged, a["gamma"], a["theta"], a["vega"],
                               a["delta"], iv_bar / iv_n if iv_n else math.nan))

    def get_analysis(self):
        s = self.strategy
        end_value = s.broker.getvalue()
        costs = self._costs()
        cost_total = sum(costs.values())
        total = end_value - self.start_value
        daily = self._daily
        sharpe = None
        if len(daily) > 2:
            rets = np.diff(daily) / self.start_value
            sd = rets.std(ddof=1)
            if sd > 0:
                sharpe = float(rets.mean() / sd * math.sqrt(252.0))
        dd, dd_pct = self._dd
        guards = s.analyzers.getbyname("guards").get_analysis() if hasattr(s, "guards") else {}
        return {
            "total_pnl": total,
            "option_pnl": self.pnl["option"],
            "hedge_pnl": self.pnl["hedge"],
            "costs": cost_total,
            "costs_split": costs,
            "attribution": dict(self.attr, unexplained=self.pnl["option"] - sum(self.attr.values())),
            "hedge_count": self.hedge_fills,
            "shares_traded": self.shares_traded,
            "option_contracts_traded": self.option_contracts_traded,
            "sharpe": sharpe,
            "max_drawdown": dd,
            "max_drawdown_pct": dd_pct,
            "realized_vol": math.sqrt(self._sumsq / self._years) if self._years > 0 else None,
            "implied_vol": self._iv_sum / self._iv_n if self._iv_n else None,
            "block_reasons": dict(guards.get("block_reasons", {})),
            "start_value": self.start_value,
            "end_value": end_value,
        }
