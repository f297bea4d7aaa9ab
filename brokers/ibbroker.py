"""IBBroker: Backtrader's broker interface on an IBStore.

``paper_trade`` (the default) sends nothing to IB: hedges fill locally at the current
quote (ask to buy, bid to sell) and a shadow position keeps delta right. Otherwise
orders go to IB with this engine's ``orderRef``; their status and fills come back
through ib_insync's events while the feeds pump the loop, and reach the strategy as
normal ``notify_order`` calls. Positions held before start are loaded; cash and value
are the start cash plus what our fills paid, and the positions marked at mid.
After a reconnect, orders in flight are reconciled with IB's open orders and
executions: never sent twice, never forgotten.
"""
from __future__ import annotations

import collections
import datetime as dt
import logging
import math
import time

import backtrader as bt
from backtrader.position import Position

from stores.ibclient import require
from feeds.market import bt_num
from stores.ibstore import ny_naive

log = logging.getLogger("bifrost.ibbroker")
REFUSAL_CODES = {103, 104, 105, 106, 107, 109, 110, 111, 201, 202, 203, 321, 399, 10147, 10148}


class IBBroker(bt.BrokerBase):
    params = (("paper_trade", True), ("order_ref", "bifrost-gamma"), ("order_type", "market"),
              ("order_timeout", 30.0))          # wall seconds; None/0 = never cancel

    def __init__(self, store=None, **kwargs):
        super().__init__()
        for k, v in kwargs.items():
            setattr(self.p, k, v)
        self.store = store
        self.notifs = collections.deque()
        self.positions = collections.defaultdict(Position)
        self.cash = self.startingcash = 0.0
        self._paper_queue = collections.deque()
        self._live = {}               # IB orderId -> (bt order, ib Trade)
        self._sent_at = {}            # IB orderId -> monotonic time sent
        self._cancelling = set()      # IB orderIds we asked IB to cancel (timed out)
        self._seen_exec = set()       # execIds already applied
        self._comm_seen = set()       # execIds whose commission was charged
        self.accepting = True         # False after a stop signal: no order leaves
        self.latencies = []           # seconds from the newest tick to each order sent

    # -- lifecycle -------------------------------------------------------------------
    def start(self):
        super().start()
        self.store.start(broker=self)
        ib = self.store.ib
        ib.orderStatusEvent += self._on_status
        ib.execDetailsEvent += self._on_exec
        ib.commissionReportEvent += self._on_commission
        ib.positionEvent += self._on_position
        self.cash = self.startingcash = self._account_cash()
        self._loaded = False          # positions load at the first next(): feeds start after us
        log.warning("%s: %s", "PAPER TRADE (no orders reach IB)" if self.p.paper_trade
                    else "LIVE ORDERS ARE SENT TO IB", self.p.order_ref)

    def _account_cash(self) -> float:
        for v in self.store.ib.accountValues():
            if v.tag == "TotalCashValue" and v.currency in ("USD", "BASE"):
                try:
                    return float(v.value)
                except ValueError:
                    pass
        return 0.0

    def _datas(self):
        return {getattr(d.contract, "conId", 0): d for d in self.store.datas}

    def _load_positions(self) -> None:
        """Positions that existed before start, for the instruments we have feeds for."""
        by_con = self._datas()
        for p in self.store.ib.positions():
            d = by_con.get(p.contract.conId)
            if d is not None:
                mult = float(getattr(p.contract, "multiplier", "") or 1)
                self.positions[d] = Position(p.position, p.avgCost / mult)

    def _on_position(self, p) -> None:
        """Option positions changed outside this engine (a manual trade, an exercise):
        the legs we have feeds for take IB's size, so delta is never computed on a
        position that is gone; a new leg without a feed takes a free option slot
        (``stores.slots``), or is reported and not hedged when there is none."""
        c = p.contract
        if c.secType != "OPT":
            return                                   # the stock moves with our own fills
        d = self._datas().get(c.conId)
        adopted = False
        if d is None and p.position and self.store.slots is not None:
            d = self.store.slots.adopt(c)            # a free option slot takes it, if any
            if d is not None:
                adopted = True
                self.positions[d] = Position(0.0, 0.0)
        if d is None:
            if p.position:
                log.warning("new option position %s %s %s x%s has no feed: reported, not hedged",
                            c.right, c.strike, c.lastTradeDateOrContractMonth, p.position)
                self.store.put_notification("POSITION_UNTRACKED", c.conId, p.position)
            return
        pos = self.positions[d]
        if pos.size != p.position:
            log.warning("option position %s changed outside the engine: %s -> %s",
                        c.localSymbol or c.conId, pos.size, p.position)
            mult = float(getattr(c, "multiplier", "") or 1)
            # not our trade: cash moves at the mark (the cost when unquoted), so value and
            # the day's P&L (the loss breaker) do not jump with another client's trade
            px = d.close[0] if not adopted and len(d) and d.close[0] == d.close[0] else p.avgCost / mult
            self.cash -= (p.position - pos.size) * px * mult
            self.positions[d] = Position(p.position, p.avgCost / mult if p.position else 0.0)
            self.store.put_notification("POSITION_CHANGED", c.conId, p.position)

    def busy(self, data) -> bool:
        """``data`` holds a position or has an order in flight: its slot must not change."""
        if self.positions[data].size:
            return True
        return (any(o.data is data and o.alive() for o, _ in self._live.values())
                or any(o.data is data for o in self._paper_queue))

    # -- queries ---------------------------------------------------------------------
    def getcash(self):
        return self.cash

    def getvalue(self, datas=None):
        value = self.cash
        wanted = None if datas is None else set(datas)   # identity: == on datas compares prices
        for d, pos in self.positions.items():
            if pos.size and (wanted is None or d in wanted):
                px = d.close[0] if len(d) else math.nan
                if px == px:
                    value += pos.size * px * self._mult(d)
        return value

    def getposition(self, data, clone=True):
        pos = self.positions[data]
        return pos.clone() if clone else pos

    @staticmethod
    def _mult(d) -> float:
        return float(getattr(d.p, "multiplier", 1) or 1) if hasattr(d.lines, "strike") else 1.0

    def get_notification(self):
        return self.notifs.popleft() if self.notifs else None

    def notify(self, order):
        self.notifs.append(order.clone())

    # -- orders ----------------------------------------------------------------------
    def buy(self, owner, data, size, price=None, plimit=None, exectype=None, valid=None,
            tradeid=0, oco=None, trailamount=None, trailpercent=None, parent=None,
            transmit=True, **kwargs):
        return self._submit(bt.BuyOrder(owner=owner, data=data, size=size, price=price,
                                        pricelimit=plimit, exectype=exectype, valid=valid,
                                        tradeid=tradeid), **kwargs)

    def sell(self, owner, data, size, price=None, plimit=None, exectype=None, valid=None,
             tradeid=0, oco=None, trailamount=None, trailpercent=None, parent=None,
             transmit=True, **kwargs):
        return self._submit(bt.SellOrder(owner=owner, data=data, size=size, price=price,
                                         pricelimit=plimit, exectype=exectype, valid=valid,
                                         tradeid=tradeid), **kwargs)

    def _submit(self, order, **kwargs):
        order.addcomminfo(self.getcommissioninfo(order.data))
        order.submit(self)
        if not self.accepting or not self.store.connected:
            order.reject(self)                       # fail closed: stopping or disconnected
            self.notify(order)
            return order
        same = getattr(order.data, "bar_matches_contract", None)
        if same is not None and not same():
            log.error("order on %s refused: the slot's contract is not the one its bar showed",
                      order.data._name)
            order.reject(self)                       # fail closed: never trade an unseen contract
            self.notify(order)
            return order
        self.notify(order)
        if self.p.paper_trade:
            self._paper_queue.append(order)
            return order
        ibi = require()
        side = "BUY" if order.isbuy() else "SELL"
        qty = abs(order.created.size)
        if self.p.order_type == "limit":
            px = order.data.ask[0] if order.isbuy() else order.data.bid[0]
            ib_order = ibi.LimitOrder(side, qty, round(px, 2))
        else:
            ib_order = ibi.MarketOrder(side, qty)
        ib_order.orderRef = self.p.order_ref
        if self.store.last_tick_perf is not None:
            self.latencies.append(time.perf_counter() - self.store.last_tick_perf)
        trade = self.store.ib.placeOrder(order.data.contract, ib_order)
        self._live[trade.order.orderId] = (order, trade)
        self._sent_at[trade.order.orderId] = time.monotonic()
        log.info("sent %s %s %s (orderId %s, ref %s)", side, qty,
                 order.data.contract.localSymbol or order.data.contract.symbol,
                 trade.order.orderId, self.p.order_ref)
        return order

    def cancel(self, order):
        for oid, (o, trade) in list(self._live.items()):
            if o.ref == order.ref:
                self.store.ib.cancelOrder(trade.order)
        if order in self._paper_queue:
            self._paper_queue.remove(order)
            order.cancel()
            self.notify(order)

    # -- fills -----------------------------------------------------------------------
    def next(self):
        """Load the starting positions once the feeds exist; paper mode: fill what the
        strategy sent at the current quote."""
        if not self._loaded:
            self._loaded = True
            self._load_positions()
        if self._live and self.p.order_timeout:
            self._cancel_stale(time.monotonic())
        while self._paper_queue:
            order = self._paper_queue.popleft()
            d = order.data
            price = d.ask[0] if order.isbuy() else d.bid[0]
            if not (price > 0):
                order.reject(self)                   # no quote to fill at: nothing happens
                self.notify(order)
                continue
            size = order.created.size
            comm = self.getcommissioninfo(d).getcommission(size, price)
            self._fill(order, size, price, comm, d.datetime[0])

    def _cancel_stale(self, now: float) -> None:
        """An order IB has not finished within ``order_timeout`` (never acknowledged, a
        partial fill whose rest never comes, a limit the market left) is cancelled at IB:
        its Cancelled status ends it, so E1/E2 never last for ever. A fill racing the
        cancel is applied as it comes; no answer at all keeps the order working (we do
        not guess) and is logged again each timeout."""
        for oid in [o for o in self._sent_at if o not in self._live]:
            del self._sent_at[oid]
        for oid, (order, trade) in list(self._live.items()):
            sent = self._sent_at.get(oid)
            if sent is None or now - sent < self.p.order_timeout or not order.alive():
                continue
            self._sent_at[oid] = now                 # next reminder one timeout later
            log.error("order %s (%s %s) not done after %.0f s, IB status %r, filled %g of %g: "
                      "%s", oid, trade.order.action, order.data._name, self.p.order_timeout,
                      trade.orderStatus.status, abs(order.executed.size), abs(order.created.size),
                      "cancel sent again" if oid in self._cancelling else "cancelling it at IB")
            self._cancelling.add(oid)
            try:
                self.store.ib.cancelOrder(trade.order)
            except Exception as exc:                 # noqa: BLE001 - disconnected: reconcile
                log.warning("cancel of order %s not sent (%s)", oid, exc)

    def _fill(self, order, size: float, price: float, comm: float, when: float) -> None:
        d = order.data
        pos = self.positions[d]
        psize, pprice, opened, closed = pos.update(size, price)
        mult = self._mult(d)
        self.cash -= size * price * mult + comm
        order.execute(when, size, price, closed, closed * price * mult, 0.0,
                      opened, opened * price * mult, comm, 0.0, 0.0, psize, pprice)
        if order.executed.remsize:
            order.partial()
        else:
            order.completed()
        self.notify(order)

    def _entry(self, order_id):
        return self._live.get(order_id)

    def _on_status(self, trade) -> None:
        entry = self._entry(trade.order.orderId)
        if entry is None:
            return
        order, _ = entry
        status = trade.orderStatus.status
        if status in ("Submitted", "PreSubmitted") and order.status == order.Submitted:
            order.accept(self)
            self.notify(order)
        elif status in ("Cancelled", "ApiCancelled", "Inactive") and order.alive():
            # an order IB refused (201 and kin) is logged on the trade as it is cancelled
            code = next((e.errorCode for e in reversed(trade.log) if e.errorCode), 0)
            refused = status == "Inactive" or code in REFUSAL_CODES
            if refused:
                log.error("order %s refused by IB (%s): %s", trade.order.orderId, code,
                          trade.log[-1].message if trade.log else "")
            if order.executed.size:
                order.cancel()
            elif refused:
                order.reject(self)                   # the strategy's E4 (BROKER_ERROR)
            else:
                order.cancel()
            self.notify(order)
            self._live.pop(trade.order.orderId, None)

    def _on_exec(self, trade, fill) -> None:
        entry = self._entry(trade.order.orderId)
        ex = fill.execution
        if entry is None or ex.execId in self._seen_exec:
            return
        self._seen_exec.add(ex.execId)
        order, _ = entry
        size = ex.shares if order.isbuy() else -ex.shares
        when = bt_num(ny_naive(ex.time)) if isinstance(ex.time, dt.datetime) else order.data.datetime[0]
        self._fill(order, size, ex.price, 0.0, when)   # the commission report follows
        if not order.alive():
            self._live.pop(trade.order.orderId, None)

    def _on_commission(self, trade, fill, report) -> None:
        if fill.execution.execId in self._seen_exec and fill.execution.execId not in self._comm_seen:
            self._comm_seen.add(fill.execution.execId)
            self.cash -= report.commission or 0.0

    def order_error(self, order_id, code, text) -> None:
        entry = self._entry(order_id)
        if entry is None:
            return
        order, _ = entry
        log.error("order %s refused by IB (%s): %s", order_id, code, text)
        if order.alive() and not order.executed.size:
            order.reject(self)
            self.notify(order)
            self._live.pop(order_id, None)

    # -- after a reconnect -----------------------------------------------------------
    def reconcile(self) -> None:
        """Match orders in flight with IB's executions and open orders: apply fills we
        missed, keep working orders, close out orders IB no longer knows."""
        ib = self.store.ib
        try:
            fills = ib.reqExecutions()
        except Exception as exc:                    # still flaky: try at the next reconnect
            log.warning("reconcile: executions not available (%s)", exc)
            return
        for f in fills:
            entry = self._entry(f.execution.orderId)
            if entry is not None:
                self._on_exec(entry[1], f)
        open_ids = {t.order.orderId for t in ib.openTrades()}
        for oid, (order, trade) in list(self._live.items()):
            if oid in open_ids:
                continue
            if order.alive():
                log.warning("order %s unknown to IB after reconnect: closed as %s", oid,
                            "cancelled (part filled)" if order.executed.size else "rejected")
                order.cancel() if order.executed.size else order.reject(self)
                self.notify(order)
            self._live.pop(oid, None)

    def hedge_history(self, symbol: str) -> list[tuple[float, float, float]]:
        """Today's stock executions with our orderRef: (bt time, price, signed shares),
        so a restart keeps the cooldown and the daily count."""
        if self.p.paper_trade:
            return []
        try:
            fills = self.store.ib.reqExecutions()
        except Exception as exc:
            log.warning("no execution history (%s): daily count starts at 0", exc)
            return []
        out = []
        for f in fills:
            ex, c = f.execution, f.contract
            if ex.orderRef == self.p.order_ref and c.secType == "STK" and c.symbol == symbol:
                sign = 1 if ex.side.upper().startswith("B") else -1
                out.append((bt_num(ny_naive(ex.time)), ex.price, sign * ex.shares))
        return sorted(out)
