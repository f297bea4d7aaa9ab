"""SlotPlanner: re-plan the live option feeds while cerebro runs (no restart).

Backtrader takes no new datas once running, so the live runner makes option *slots*
(``feeds.ibdata.IBOptionData``, some with no contract) and this planner moves
contracts between them, by the pure rules of ``bifrost.slots``:

- a new option position of the symbol inside the DTE window (a manual trade in TWS,
  another client) takes a free slot at once and is hedged from its first quote;
- under ``structure.manage: true`` the candidate legs follow the spot and the date
  (re-planned at each new day and when the spot has moved half the strike margin).

A slot changes contract only when flat with no order in flight. Every change is
logged; a leg that finds no slot is logged loudly and stays reported, never hedged.
Time and spot come from the data (the snapshots' clock, the stock's quote).
"""
from __future__ import annotations

import copy
import datetime as dt
import logging

from bifrost.slots import Leg, Slot, in_window, plan_slots, replan_due, wanted_legs
from feeds.ibdata import quote

log = logging.getLogger("bifrost.slots")


def leg_of(contract) -> Leg:
    expiry = dt.datetime.strptime(contract.lastTradeDateOrContractMonth[:8], "%Y%m%d").date()
    return Leg(expiry.toordinal(), float(contract.strike), contract.right.upper()[:1])


def describe(leg: Leg) -> str:
    return f"{dt.date.fromordinal(leg.expiry):%Y%m%d} {leg.strike:g}{leg.right}"


class SlotPlanner:
    def __init__(self, store, slots, symbol: str, structure: dict, manage: bool,
                 margin: float = 0.07, stock=None):
        self.store = store
        self.slots = list(slots)
        self.symbol = symbol
        self.st = structure
        self.manage = manage
        self.margin = margin                  # strikes within band + margin are candidates
        self.stock = stock                    # the qualified underlying (chain requests)
        self.last_spot = None
        self.last_day = None
        self.replans = 0
        self._chain_day = None
        self._chain = None
        self._contracts = {}                  # Leg -> qualified contract (candidates)
        self._planning = False
        self._retry = []                      # positions seen while a re-plan was running

    # -- state ---------------------------------------------------------------------
    def today(self):
        """The data's date (ordinal of the latest snapshot), None before the first."""
        num = self.store._last_stamp
        return int(num) if num > 0 else None

    def spot(self) -> float:
        stock = next((t for t in self.store.tickers.values() if t.contract.secType == "STK"), None)
        return quote(stock)[2] if stock is not None else float("nan")

    def _states(self) -> list[Slot]:
        broker = self.store.broker
        return [Slot(leg_of(d.contract) if d.contract is not None else None,
                     bool(broker is not None and broker.busy(d))) for d in self.slots]

    # -- the two triggers ------------------------------------------------------------
    def adopt(self, contract):
        """A position in ``contract`` has no feed: give it a slot (from an IB event, so
        nothing here blocks). Returns the slot's data, or None (reported only)."""
        if contract.secType != "OPT" or contract.symbol != self.symbol:
            return None
        leg = leg_of(contract)
        today = self.today()
        if today is None or not in_window(leg.expiry, today, self.st["min_dte"], self.st["max_dte"]):
            return None                       # outside the DTE window: reported only
        if self._planning:
            self._retry.append(contract)
            return None
        states = self._states()
        keep = [s.leg for s in states if s.leg is not None]      # nothing else moves now
        plan = plan_slots(states, keep, must=[leg])
        slot = next((i for i, g in plan.assign.items() if g == leg), None)
        if slot is None:
            log.error("NO FREE OPTION SLOT for the new position %s %s: reported, NOT hedged "
                      "(add slots: ib.spare_slots)", self.symbol, describe(leg))
            return None
        c = copy.copy(contract)
        c.exchange = c.exchange or "SMART"    # positions carry no exchange; quotes need one
        self._move(slot, c, "new position", logging.WARNING)
        return self.slots[slot]

    def pump(self) -> None:
        """From the store's pump (cerebro's thread, outside IB events)."""
        if self._retry:
            pending, self._retry = self._retry, []
            broker = self.store.broker
            for c in pending:
                for p in self.store.ib.positions():
                    if p.contract.conId == c.conId and broker is not None:
                        broker._on_position(p)
        if not self.manage or not self.store.connected:
            return
        today, spot = self.today(), self.spot()
        if today is None or not replan_due(self.last_spot, self.last_day, spot, today, self.margin):
            return
        self._planning = True
        try:
            self.replan(today, spot)
        finally:
            self._planning = False

    # -- candidates ------------------------------------------------------------------
    def replan(self, today: int, spot: float) -> None:
        chain = self._chain_for(today)
        self.last_spot, self.last_day = spot, today
        if chain is None:
            return
        expiries = [dt.datetime.strptime(e[:8], "%Y%m%d").date().toordinal() for e in chain.expirations]
        wanted = wanted_legs(expiries, chain.strikes, spot, today, self.st["min_dte"],
                             self.st["max_dte"], self.st["atm_band_pct"], self.margin)
        states = self._states()
        plan = plan_slots(states, wanted)
        if plan.empty:
            return
        self.replans += 1
        new = [g for g in plan.assign.values() if g is not None and g not in self._contracts]
        if new:
            self._qualify(new, chain)
        moved = 0
        for i, leg in sorted(plan.assign.items()):
            if leg is None:
                self._move(i, None, "no longer a candidate")
                moved += 1
            elif leg in self._contracts:
                self._move(i, self._contracts[leg], "candidate")
                moved += 1
            else:
                log.error("candidate %s %s did not qualify: slot %s left free", self.symbol,
                          describe(leg), self.slots[i]._name)
                self._move(i, None, "candidate did not qualify")
        log.warning("option slots re-planned at spot %.2f, %s: %d changed, %d candidates, "
                    "%d held or working kept", spot, dt.date.fromordinal(today), moved, len(wanted),
                    sum(s.busy for s in states))
        if plan.missing:
            log.warning("NO FREE OPTION SLOT for %d candidate(s) (%s...): add slots "
                        "(ib.spare_slots)", len(plan.missing),
                        ", ".join(describe(g) for g in plan.missing[:4]))

    def _chain_for(self, today: int):
        if self._chain_day == today and self._chain is not None:
            return self._chain
        stock = self.stock
        try:
            chains = self.store.ib.reqSecDefOptParams(stock.symbol, "", stock.secType, stock.conId)
        except Exception as exc:              # noqa: BLE001 - try again at the next re-plan
            log.warning("option chain of %s not available (%s): slots unchanged", stock.symbol, exc)
            return None
        chain = next((c for c in chains if c.exchange == "SMART"), chains[0] if chains else None)
        if chain is None:
            log.error("no option chain for %s: slots unchanged", stock.symbol)
        self._chain_day, self._chain = today, chain
        return chain

    def _qualify(self, legs, chain) -> None:
        from stores.ibclient import require
        ibi = require()
        asked = [ibi.Option(self.symbol, f"{dt.date.fromordinal(g.expiry):%Y%m%d}", g.strike, g.right,
                            "SMART", tradingClass=chain.tradingClass, multiplier=chain.multiplier,
                            currency="USD") for g in legs]
        for c in self.store.qualify(*asked):
            self._contracts[leg_of(c)] = c

    # -- applying ----------------------------------------------------------------------
    def _move(self, i: int, contract, why: str, level: int = logging.INFO) -> None:
        d = self.slots[i]
        old = d.contract
        if old is not None and self.store.broker is not None and self.store.broker.busy(d):
            log.error("slot %s holds a position or an order: not re-assigned", d._name)
            return                             # never: plan_slots skips busy slots
        self.store.unsubscribe(d)
        if contract is not None:
            contract = copy.copy(contract)     # a new object: ib_insync keys Tickers by id()
        d.assign(contract)
        if contract is not None:
            self.store._subscribe(d)
        self.store.put_notification("SLOT_ASSIGNED", d)
        log.log(level, "slot %s: %s -> %s (%s)", d._name,
                    describe(leg_of(old)) if old is not None else "free",
                    describe(leg_of(contract)) if contract is not None else "free", why)
