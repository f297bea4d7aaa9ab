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

import array
import math

import backtrader as bt
import numpy as np

from bifrost import ledger
from brokers import position_reader


SERIES_COLUMNS = ("datetime", "value", "spot", "net_delta", "net_gamma", "option_pnl",
                  "hedge_pnl", "costs", "gamma_pnl", "theta_pnl", "vega_pnl", "delta_pnl",
                  "implied_vol")
_HEAD = 6      # per-bar record: datetime, spot, value, net delta, net gamma, charged so far


class PnLAnalyzer(bt.Analyzer):
    """Needs a strategy exposing ``net_delta``, ``net_gamma`` and ``leg_greeks``
    (GammaScalping does) for the series and the attribution. Each bar it only records
    (time, spot, value, every instrument's mid and position, the legs' greeks); the
    figures are computed from those records by ``bifrost.ledger`` when asked for."""
    params = (("keep_series", True),)

    def start(self):
        s = self.strategy
        self.stock = s.datas[0]
        self.options = [d for d in s.datas[1:] if hasattr(d.lines, "strike")]
        self.instruments = [self.stock] + self.options
        self.mult = np.array([1.0] + [float(getattr(d.p, "multiplier", 1)) for d in self.options])
        self.column = {d: j for j, d in enumerate(self.instruments)}
        self.start_value = s.broker.getvalue()
        self.seen = {}                    # order ref -> (executed size, cost, comm) seen
        self.charged = 0.0                # everything the broker charged as commission
        broker = s.broker
        self._position = position_reader(broker)
        lines = self.stock.lines
        self._dt, self._close = lines.datetime, lines.close
        self._close_bufs = [d.lines.close for d in self.instruments]    # looked up once
        self._cis = [c for c in (broker.getcommissioninfo(d) for d in self.instruments)
                     if hasattr(c, "costs")]
        self.hedge_fills = 0
        self.shares_traded = 0.0
        self.option_contracts_traded = 0.0
        self._flat = array.array("d")     # per bar: _HEAD fields, every mid, every position
        self._legs_per_bar = array.array("i")   # per bar: how many legs were counted
        self._gflat = array.array("d")    # per counted leg: column, then its 5 greeks
        self._fills = []                  # (bar, column, cash paid at fill prices)
        self._cache = None
        # a strategy with GammaScalping's net_delta, net_gamma and leg_greeks
        self._hedger = all(hasattr(s, a) for a in ("net_delta", "net_gamma", "leg_greeks"))

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
        j = self.column.get(d)
        if j is not None:                 # booked in the bar the strategy sees it in
            self._fills.append((len(self._legs_per_bar), j, (total_cost - cost) * self.mult[j]))
        self.charged += ex.comm - comm
        self.seen[order.ref] = (ex.size, total_cost, ex.comm)
        if d is self.stock:
            self.shares_traded += abs(new_size)
            if order.status == order.Completed and order.info.get("purpose") != "unwind":
                self.hedge_fills += 1             # closing the hedge of an unwound straddle is no hedge
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
        dt, close, position = self._dt, self._close, self._position
        flat = self._flat
        hedger = self._hedger
        flat.extend((dt.array[dt._idx], close.array[close._idx], s.broker.getvalue(),
                     s.net_delta if hedger else math.nan, s.net_gamma if hedger else math.nan,
                     self.charged))
        # close[0] read directly; NaN before an instrument's first bar
        flat.extend([c.array[c._idx] if c.lencount else math.nan for c in self._close_bufs])
        flat.extend([position(d).size for d in self.instruments])
        # the counted legs' greeks, flat (column, delta, gamma, vega, theta, iv): kept
        # as floats, not per-bar dicts, so a year of records adds nothing for the GC
        legs = s.leg_greeks if hedger else {}
        column, gflat = self.column, self._gflat
        for d, g in legs.items():
            gflat.append(column[d])
            gflat.extend(g)
        self._legs_per_bar.append(len(legs))

    # -- the figures -------------------------------------------------------------------
    def _computed(self) -> dict:
        n = len(self._legs_per_bar)
        if self._cache is not None and self._cache["n"] == n:
            return self._cache
        k = len(self.instruments)
        rec = np.frombuffer(self._flat, dtype=float).reshape(n, _HEAD + 2 * k)
        now, spot, value = rec[:, 0], rec[:, 1], rec[:, 2]
        prices, sizes = rec[:, _HEAD:_HEAD + k], rec[:, _HEAD + k:]
        cash = np.zeros((n, k))
        for bar, j, paid in self._fills:
            if bar < n:                   # paid after the last bar: never seen by a bar
                cash[bar, j] += paid
        pnl = ledger.cumulative_pnl(prices, sizes, self.mult, cash)
        legs = len(self.options)
        greeks = np.full((n, legs, 5), np.nan)
        counted = np.zeros((n, legs), dtype=bool)
        per_bar = np.frombuffer(self._legs_per_bar, dtype=np.int32)[:n]
        g = np.frombuffer(self._gflat, dtype=float).reshape(-1, 6)[:int(per_bar.sum())]
        bar = np.repeat(np.arange(n), per_bar)
        leg = g[:, 0].astype(int) - 1                    # column 0 is the stock
        greeks[bar, leg] = g[:, 1:]
        counted[bar, leg] = True
        attr = ledger.attribution(now, spot, sizes[:, 1:] * self.mult[1:], greeks, counted)
        self._cache = {
            "n": n, "now": now, "spot": spot, "value": value, "net_delta": rec[:, 3],
            "net_gamma": rec[:, 4], "costs": rec[:, 5],
            "option": pnl[:, 1:].sum(axis=1), "hedge": pnl[:, 0],
            "attr": {name: np.cumsum(a) for name, a in attr.items()},
            "iv": ledger.bar_implied_vol(greeks, counted),
        }
        return self._cache

    @property
    def series(self) -> dict:
        """Per-bar columns (SERIES_COLUMNS) as lists; empty without keep_series."""
        if not self.p.keep_series or not self._legs_per_bar:
            return {name: [] for name in SERIES_COLUMNS}
        c = self._computed()
        a = c["attr"]
        cols = (c["now"], c["value"], c["spot"], c["net_delta"], c["net_gamma"], c["option"],
                c["hedge"], c["costs"], a["gamma"], a["theta"], a["vega"], a["delta"], c["iv"])
        return {name: col.tolist() for name, col in zip(SERIES_COLUMNS, cols)}

    def get_analysis(self):
        s = self.strategy
        end_value = s.broker.getvalue()
        costs = self._costs()
        cost_total = sum(costs.values())
        total = end_value - self.start_value
        if self._legs_per_bar:
            c = self._computed()
            option_pnl, hedge_pnl = float(c["option"][-1]), float(c["hedge"][-1])
            attr = {name: float(a[-1]) for name, a in c["attr"].items()}
            daily = ledger.daily_values(c["now"], c["value"], self.start_value)
            dd, dd_pct = ledger.max_drawdown(c["value"], self.start_value)
            rv = ledger.realized_vol(c["now"], c["spot"])
            iv = c["iv"][np.isfinite(c["iv"])]
        else:
            option_pnl = hedge_pnl = dd = dd_pct = 0.0
            attr = {"delta": 0.0, "gamma": 0.0, "theta": 0.0, "vega": 0.0}
            daily, rv, iv = np.array([self.start_value]), None, np.array([])
        guards = s.analyzers.getbyname("guards").get_analysis() if hasattr(s, "guards") else {}
        return {
            "total_pnl": total,
            "option_pnl": option_pnl,
            "hedge_pnl": hedge_pnl,
            "costs": cost_total,
            "costs_split": costs,
            "attribution": dict(attr, unexplained=option_pnl - sum(attr.values())),
            "hedge_count": self.hedge_fills,
            "shares_traded": self.shares_traded,
            "option_contracts_traded": self.option_contracts_traded,
            "sharpe": ledger.sharpe(daily, self.start_value),
            "max_drawdown": dd,
            "max_drawdown_pct": dd_pct,
            "realized_vol": rv,
            "implied_vol": float(iv.mean()) if len(iv) else None,
            "block_reasons": dict(guards.get("block_reasons", {})),
            "start_value": self.start_value,
            "end_value": end_value,
        }
