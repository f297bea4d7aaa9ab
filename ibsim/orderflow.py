"""Order flow (mixed into ``IBSim``): place, modify, cancel, acknowledge, fill.

Market orders fill at the quote (ask to buy, bid to sell); limit orders when marketable
(at the quote on arrival, at their limit once resting). Outside regular hours, orders
without ``outsideRth`` wait (PreSubmitted) for the next session. Faults: reject_next,
partial_fill, delay. Messages go to the placing client id's current connection.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math

from ibsim import messages as msg
from ibsim.handlers import NO_SECDEF
from ibsim.orders import SimOrder, marketable
from ibsim.session import Session

log = logging.getLogger("ibsim")


class OrderFlow:
    """Orders from placeOrder to the commission report; ``self`` is the IBSim."""

    # ---- orders ----------------------------------------------------------------------------
    def _to_owner(self, order: SimOrder, *parts: bytes) -> None:
        s = self.session_of(order.client_id)
        if s is not None:
            s.send(b"".join(parts))

    def place_order(self, s: Session, order_id: int, q: dict, raw: dict) -> None:
        cid = s.client_id
        led = self.ledger
        led.max_order_id[cid] = max(led.max_order_id.get(cid, 0), order_id)
        old = led.orders.get((cid, order_id))
        if old is not None and not old.done:
            self._modify(old, raw)
            return
        if old is not None:
            s.send(msg.error(order_id, 103, "Duplicate order id"))
            return
        found = self.market.resolve(q, self.clock.now()) if not raw.get("_bag") else []
        if len(found) != 1:
            s.send(msg.error(order_id, 200, NO_SECDEF))
            return
        order = self._new_order(cid, order_id, found[0], raw)
        problem = self._validate(order, raw)
        if problem:
            self._reject(order, problem, "Cancelled")
            return
        if raw.get("whatIf") == "1":
            self._what_if(s, order)
            return
        led.add(order)
        self.stats["orders"] += 1
        log.info("order %s/%s %s %g %s %s%s ref=%r", cid, order_id, order.action, order.quantity,
                 order.inst.describe(), order.order_type,
                 f" {order.lmt_price:g}" if order.lmt_price is not None else "", order.order_ref)
        rej = self.faults.take_reject()
        if rej:
            self._reject(order, rej["message"], rej["status"])
            return
        delay = self.faults.take_delay()
        partial = self.faults.take_partial()
        self._spawn(self._process(order, delay, partial))

    def _new_order(self, cid: int, order_id: int, inst, raw: dict) -> SimOrder:
        def num(k):
            v = raw.get(k, "")
            try:
                x = float(v) if v else None
            except ValueError:
                return None
            return None if x is None or x >= 1.7e308 else x
        return SimOrder(
            client_id=cid, order_id=order_id, perm_id=self.ledger.next_perm_id(), inst=inst,
            action=raw.get("action", "").upper(), quantity=num("totalQuantity") or 0.0,
            order_type=raw.get("orderType", "").upper(), lmt_price=num("lmtPrice"),
            tif=raw.get("tif", ""), account=raw.get("account", ""), order_ref=raw.get("orderRef", ""),
            outside_rth=raw.get("outsideRth") == "1", raw=raw, placed_at=self.clock.now())

    def _validate(self, o: SimOrder, raw: dict) -> str | None:
        if o.action not in ("BUY", "SELL"):
            return f"Invalid action {o.action!r}"
        if o.order_type not in ("MKT", "LMT"):
            return f"Order type {o.order_type!r} is not supported by the simulator (MKT, LMT)"
        if not o.quantity > 0 or o.quantity != int(o.quantity):
            return f"Invalid order size {o.quantity:g}"
        if o.order_type == "LMT" and not (o.lmt_price is not None and o.lmt_price > 0):
            return "Limit price must be positive"
        if o.account and o.account != self.account:
            return f"Account {o.account!r} is not managed by this gateway ({self.account})"
        if o.inst.is_option and self.market.tau(o.inst, self.clock.now()) <= 0:
            return f"Contract {o.inst.describe()} has expired"
        return None

    def _reject(self, order: SimOrder, reason: str, status: str) -> None:
        order.status = status
        self.ledger.add(order)
        log.warning("order %s/%s rejected: %s", order.client_id, order.order_id, reason)
        self._to_owner(order, msg.error(order.order_id, 201, f"Order rejected - reason:{reason}"),
                       msg.order_status(order))

    def _what_if(self, s: Session, order: SimOrder) -> None:
        q = self.book_quote(order.inst)
        px = q.ask if order.action == "BUY" else q.bid
        val = self.ledger.values(self.mark)
        change = 0.0 if order.inst.is_option else 0.25 * order.quantity * px
        comm = self.ledger.commission(order, order.quantity)
        init = val["InitMarginReq"]
        st = {"initMarginBefore": f"{init:.2f}", "maintMarginBefore": f"{init:.2f}",
              "equityWithLoanBefore": f"{val['EquityWithLoanValue']:.2f}",
              "initMarginChange": f"{change:.2f}", "maintMarginChange": f"{change:.2f}",
              "equityWithLoanChange": f"{-comm:.2f}", "initMarginAfter": f"{init + change:.2f}",
              "maintMarginAfter": f"{init + change:.2f}",
              "equityWithLoanAfter": f"{val['EquityWithLoanValue'] - comm:.2f}",
              "commission": comm, "minCommission": comm, "maxCommission": comm}
        order.status = "PreSubmitted"
        s.send(msg.open_order(order, self.account, what_if=st))

    async def _process(self, order: SimOrder, delay: float, partial: dict | None) -> None:
        """Acknowledge (after a delay fault), then try to fill."""
        if delay:
            await asyncio.sleep(delay)
        if order.done:
            return
        held = not order.outside_rth and not self.market.is_open(self.clock.now(), self.skip_closed)
        order.status = "PreSubmitted" if held else "Submitted"
        order.acked = True
        self._to_owner(order, msg.open_order(order, self.account), msg.order_status(order))
        if not held:
            self._try_fill(order, partial)

    def _modify(self, order: SimOrder, raw: dict) -> None:
        new = self._new_order(order.client_id, order.order_id, order.inst, raw)
        problem = self._validate(new, raw)
        if problem or new.quantity < order.filled:
            self._to_owner(order, msg.error(order.order_id, 201, f"Order rejected - reason:{problem or 'size below filled'}"))
            return
        order.quantity, order.lmt_price, order.order_type = new.quantity, new.lmt_price, new.order_type
        order.order_ref, order.raw = new.order_ref, raw
        log.info("order %s/%s modified: %g %s %s", order.client_id, order.order_id, order.quantity,
                 order.order_type, order.lmt_price)
        if order.acked:
            self._to_owner(order, msg.open_order(order, self.account), msg.order_status(order))
            if order.status == "Submitted":
                self._try_fill(order)

    def _try_fill(self, order: SimOrder, partial: dict | None = None, resting: bool = False) -> None:
        if order.done or order.hold_rest or not order.acked:
            return
        q = self.book_quote(order.inst)
        px = marketable(order, q.bid, q.ask)
        if px is None:
            return
        if resting and order.order_type == "LMT":
            px = order.lmt_price
        qty = order.remaining
        if partial and qty > 1:
            part = max(1.0, math.floor(qty * partial["fraction"]))
            if part < qty:
                qty = part
                if partial["rest_after"] is None:
                    order.hold_rest = True
                else:
                    asyncio.get_running_loop().call_later(partial["rest_after"], self._try_fill, order)
        ex = self.ledger.fill(order, qty, px, self.clock.now())
        self.stats["fills"] += 1
        log.info("fill %s/%s %s %g %s @ %g (%g/%g) comm %.2f", order.client_id, order.order_id, ex.side,
                 qty, order.inst.describe(), px, order.filled, order.quantity, ex.commission)
        self._to_owner(order, msg.exec_details(-1, ex, self.account), msg.order_status(order),
                       msg.commission_report(ex))
        self._after_fill(order)

    def _after_fill(self, order: SimOrder) -> None:
        pos = self.ledger.positions[order.inst.con_id]
        for s in self.sessions:
            if s.client_id is None:
                continue
            if s.positions_sub:
                s.send(msg.position(self.account, pos.inst, pos.qty, pos.avg_cost))
            if s.account_sub:
                self.push_account(s)
            for req in s.multi_subs:
                self.push_account_multi(s, req)

    def _work_orders(self, t: dt.datetime) -> None:
        """At a new bar: release held orders at the open, fill marketable resting ones."""
        open_now = self.market.is_open(t, self.skip_closed)
        for o in self.ledger.open_orders():
            if not o.acked:
                continue
            if o.status == "PreSubmitted":
                if not open_now:
                    continue
                o.status = "Submitted"
                self._to_owner(o, msg.order_status(o))
                self._try_fill(o)
            else:
                self._try_fill(o, resting=True)

    def cancel_order(self, s: Session | None, order_id: int, order: SimOrder | None = None) -> None:
        order = order or self.ledger.orders.get((s.client_id, order_id))
        if order is None:
            s.send(msg.error(order_id, 135, f"Can't find order with id ={order_id}"))
            return
        if order.done:
            if s is not None:
                s.send(msg.error(order_id, 10148, f"OrderId {order_id} that needs to be cancelled "
                                                  f"cannot be cancelled, state: {order.status}."))
            return
        order.status = "Cancelled"
        log.info("order %s/%s cancelled (filled %g of %g)", order.client_id, order_id, order.filled, order.quantity)
        self._to_owner(order, msg.order_status(order), msg.error(order_id, 202, "Order Canceled - reason:"))

    def manual_trade(self, contract: dict, action: str, quantity) -> dict:
        """A trade by "another client" (TWS by hand: client id 0, no orderRef), filled at
        the quote; every client subscribed to positions/account sees the change, as
        with TWS. ``contract``: conId, or symbol/secType/lastTradeDateOrContractMonth/
        strike/right. Raises ValueError on a bad request."""
        action = str(action or "").upper()
        if action not in ("BUY", "SELL"):
            raise ValueError(f"action: got {action!r}, expected BUY or SELL")
        if (not isinstance(quantity, (int, float)) or isinstance(quantity, bool) or quantity <= 0
                or quantity != int(quantity)):
            raise ValueError(f"quantity: got {quantity!r}, expected a whole number > 0")
        q = {k: contract.get(k) for k in ("conId", "symbol", "secType", "lastTradeDateOrContractMonth",
                                          "strike", "right", "currency", "localSymbol", "multiplier")
             if contract.get(k) not in (None, "")}
        q.setdefault("symbol", self.market.symbol)
        found = self.market.resolve(q, self.clock.now())
        if len(found) != 1:
            raise ValueError(f"contract: {len(found)} instruments match {contract!r}, expected one")
        order = self._new_order(0, self.ledger.next_valid_id(0), found[0],
                                {"action": action, "totalQuantity": str(quantity), "orderType": "MKT"})
        problem = self._validate(order, order.raw)
        if problem:
            raise ValueError(problem)
        self.ledger.add(order)
        order.status, order.acked = "Submitted", True
        n = len(self.ledger.executions)
        self._try_fill(order)
        if len(self.ledger.executions) == n:
            order.status = "Cancelled"
            raise ValueError(f"no quote to fill {found[0].describe()} at")
        log.warning("manual trade (client 0): %s %g %s", action, quantity, found[0].describe())
        return {"ok": True, "execution": self.ledger.executions[-1].to_dict()}

    def send_open_orders(self, s: Session, client_id: int | None) -> None:
        out = [msg.open_order(o, self.account) + msg.order_status(o)
               for o in self.ledger.open_orders(client_id) if o.acked]
        s.send(b"".join(out) + msg.open_order_end())
