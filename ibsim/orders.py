"""Orders, fills, executions, commissions, positions and the account (no I/O).

IB conventions: ``avgCost`` is per share for stock and per contract (price x 100)
for options, commissions included; a commission report's realized P&L is net of
commissions; executions are BOT/SLD.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from ibsim.market import Instrument

DONE = ("Filled", "Cancelled", "ApiCancelled", "Inactive")


@dataclass
class SimOrder:
    client_id: int
    order_id: int
    perm_id: int
    inst: Instrument
    action: str                         # BUY / SELL
    quantity: float
    order_type: str                     # MKT / LMT
    lmt_price: float | None
    tif: str
    account: str
    order_ref: str
    outside_rth: bool
    raw: dict = field(default_factory=dict)   # every field the client sent (echoed in openOrder)
    placed_at: dt.datetime | None = None
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    commission: float = 0.0
    hold_rest: bool = False              # a partial fill whose rest never comes
    acked: bool = False

    @property
    def remaining(self) -> float:
        return self.quantity - self.filled

    @property
    def done(self) -> bool:
        return self.status in DONE

    @property
    def sign(self) -> int:
        return 1 if self.action == "BUY" else -1

    def to_dict(self) -> dict:
        return {"clientId": self.client_id, "orderId": self.order_id, "permId": self.perm_id,
                "contract": self.inst.describe(), "conId": self.inst.con_id, "action": self.action,
                "quantity": self.quantity, "orderType": self.order_type, "lmtPrice": self.lmt_price,
                "orderRef": self.order_ref, "status": self.status, "filled": self.filled,
                "remaining": self.remaining, "avgFillPrice": self.avg_fill_price,
                "commission": round(self.commission, 4),
                "placedAt": self.placed_at.isoformat() if self.placed_at else None}


@dataclass
class Execution:
    exec_id: str
    order: SimOrder
    time: dt.datetime
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    commission: float
    realized_pnl: float | None
    exchange: str

    @property
    def side(self) -> str:
        return "BOT" if self.order.action == "BUY" else "SLD"

    def to_dict(self) -> dict:
        o = self.order
        return {"execId": self.exec_id, "time": self.time.isoformat(), "clientId": o.client_id,
                "orderId": o.order_id, "permId": o.perm_id, "contract": o.inst.describe(),
                "conId": o.inst.con_id, "side": self.side, "shares": self.shares, "price": self.price,
                "cumQty": self.cum_qty, "avgPrice": self.avg_price, "orderRef": o.order_ref,
                "commission": round(self.commission, 4), "realizedPNL": self.realized_pnl}


@dataclass
class Position:
    inst: Instrument
    qty: float = 0.0
    avg_cost: float = 0.0                # per share (stock) / per contract (options)
    realized: float = 0.0

    def to_dict(self, mark: float) -> dict:
        mult = self.inst.multiplier
        return {"contract": self.inst.describe(), "conId": self.inst.con_id, "secType": self.inst.sec_type,
                "position": self.qty, "avgCost": round(self.avg_cost, 6), "marketPrice": mark,
                "marketValue": round(self.qty * mark * mult, 2),
                "unrealizedPNL": round(self.qty * (mark * mult - self.avg_cost), 2),
                "realizedPNL": round(self.realized, 2)}


class Ledger:
    """Cash, positions, orders and executions of the one simulated account."""

    def __init__(self, account: str, cash: float, commissions: dict):
        self.account = account
        self.cash = cash
        self.start_cash = cash
        self.rates = commissions
        self.positions: dict[int, Position] = {}
        self.orders: dict[tuple[int, int], SimOrder] = {}
        self.executions: list[Execution] = []
        self._perm = 1_000_000
        self._exec = 0
        self.max_order_id: dict[int, int] = {}

    # ---- orders ------------------------------------------------------------
    def next_perm_id(self) -> int:
        self._perm += 1
        return self._perm

    def next_valid_id(self, client_id: int) -> int:
        return self.max_order_id.get(client_id, 0) + 1

    def add(self, order: SimOrder) -> None:
        self.orders[(order.client_id, order.order_id)] = order
        self.max_order_id[order.client_id] = max(self.max_order_id.get(order.client_id, 0), order.order_id)

    def open_orders(self, client_id: int | None = None) -> list[SimOrder]:
        return [o for o in self.orders.values()
                if not o.done and (client_id is None or o.client_id == client_id)]

    def commission(self, order: SimOrder, shares: float) -> float:
        """Commission of one execution: per share/contract, the order minimum on the first."""
        if order.inst.is_option:
            rate, minimum = self.rates["option"]["per_contract"], self.rates["option"]["min_per_order"]
        else:
            rate, minimum = self.rates["stock"]["per_share"], self.rates["stock"]["min_per_order"]
        total = max(minimum, rate * (order.filled + shares))
        return round(max(total - order.commission, 0.0), 6)

    # ---- fills -------------------------------------------------------------
    def fill(self, order: SimOrder, shares: float, price: float, when: dt.datetime) -> Execution:
        """Book one execution: order, cash, position, realized P&L."""
        comm = self.commission(order, shares)
        order.avg_fill_price = (order.avg_fill_price * order.filled + price * shares) / (order.filled + shares)
        order.filled += shares
        order.last_fill_price = price
        order.commission += comm
        if order.remaining <= 1e-9:
            order.status = "Filled"
        mult = order.inst.multiplier
        self.cash -= order.sign * shares * price * mult + comm
        realized = self._position_fill(order.inst, order.sign * shares, price * mult, comm)
        self._exec += 1
        ex = Execution(
            exec_id=f"0000{order.perm_id:08x}.{self._exec:08x}.01.01", order=order, time=when,
            shares=shares, price=price, cum_qty=order.filled, avg_price=order.avg_fill_price,
            commission=comm, realized_pnl=realized,
            exchange="CBOE" if order.inst.is_option else "ISLAND")
        self.executions.append(ex)
        return ex

    def _position_fill(self, inst: Instrument, qty: float, unit_price: float, comm: float) -> float | None:
        pos = self.positions.setdefault(inst.con_id, Position(inst))
        realized = None
        if pos.qty and (pos.qty > 0) != (qty > 0):
            closing = min(abs(qty), abs(pos.qty))
            side = 1 if pos.qty > 0 else -1
            comm_close = comm * closing / abs(qty)
            realized = closing * (unit_price - pos.avg_cost) * side - comm_close
            pos.realized += realized
            pos.qty += side * -closing
            qty += side * closing
            comm -= comm_close
            if abs(pos.qty) < 1e-9:
                pos.qty, pos.avg_cost = 0.0, 0.0
        if abs(qty) > 1e-9:
            new = abs(pos.qty) + abs(qty)
            paid = comm if qty > 0 else -comm          # a short's basis is its proceeds net of costs
            pos.avg_cost = (abs(pos.qty) * pos.avg_cost + abs(qty) * unit_price + paid) / new
            pos.qty += qty
        return realized

    def seed_position(self, inst: Instrument, qty: float, unit_price: float) -> None:
        """A starting position (no cash moves): ``unit_price`` per share."""
        self.positions[inst.con_id] = Position(inst, float(qty), unit_price * inst.multiplier)

    # ---- account -----------------------------------------------------------
    def values(self, mark) -> dict[str, float]:
        """Account values in USD; ``mark(inst)`` is the price per unit."""
        stock_val = opt_val = gross = unreal = 0.0
        init = 0.0
        for p in self.positions.values():
            if not p.qty:
                continue
            px = mark(p.inst)
            val = p.qty * px * p.inst.multiplier
            unreal += val - p.qty * p.avg_cost
            gross += abs(val)
            if p.inst.is_option:
                opt_val += val
                if p.qty < 0:                       # short options: premium + 20% of the strike
                    init += abs(val) + abs(p.qty) * p.inst.multiplier * 0.2 * p.inst.strike
            else:
                stock_val += val
                init += abs(val) * 0.25
        net = self.cash + stock_val + opt_val
        realized = sum(p.realized for p in self.positions.values())
        return {
            "NetLiquidation": net, "TotalCashValue": self.cash, "CashBalance": self.cash,
            "SettledCash": self.cash, "AccruedCash": 0.0, "EquityWithLoanValue": net,
            "GrossPositionValue": gross, "StockMarketValue": stock_val, "OptionMarketValue": opt_val,
            "InitMarginReq": init, "MaintMarginReq": init, "FullInitMarginReq": init,
            "FullMaintMarginReq": init, "AvailableFunds": net - init, "FullAvailableFunds": net - init,
            "ExcessLiquidity": net - init, "FullExcessLiquidity": net - init,
            "BuyingPower": max(net - init, 0.0) * 4.0, "UnrealizedPnL": unreal, "RealizedPnL": realized,
            "Leverage-S": (gross / net) if net else 0.0,
        }

    def snapshot(self, mark) -> dict:
        return {"cash": round(self.cash, 2),
                "values": {k: round(v, 2) for k, v in self.values(mark).items()},
                "positions": [p.to_dict(mark(p.inst)) for p in self.positions.values() if p.qty]}


def marketable(order: SimOrder, bid: float, ask: float) -> float | None:
    """The fill price if the order can trade against (bid, ask) now, else None."""
    px = ask if order.action == "BUY" else bid
    if not (px == px and px > 0 and math.isfinite(px)):
        return None
    if order.order_type == "LMT":
        if order.action == "BUY" and order.lmt_price < px - 1e-9:
            return None
        if order.action == "SELL" and order.lmt_price > px + 1e-9:
            return None
    return px
