"""Live option slots: which contracts the engine wants feeds for, and which slot carries
which. Pure (no IB, no Backtrader), so the rules are tested on their own.

Backtrader cannot add a data once ``cerebro.run()`` has started, so the live runner
makes a fixed set of option feeds ("slots") whose contract lives in their lines. A slot
changes contract only when it holds no position and has no working order (fail closed):
the strategy refuses a feed whose contract changes under a position. Dates are
proleptic ordinals, as in ``bifrost.structure``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Leg:
    """A contract by what the strategy sees of it: expiry ordinal, strike, right."""
    expiry: int
    strike: float
    right: str          # "C" / "P"


@dataclass(frozen=True)
class Slot:
    leg: Leg | None     # None: free (no contract, NaN lines)
    busy: bool = False  # holds a position or has a working order: never re-assigned


@dataclass(frozen=True)
class Plan:
    assign: dict        # slot index -> Leg (new contract) or None (release)
    missing: list       # wanted legs left without a slot (no free slot)

    @property
    def empty(self) -> bool:
        return not self.assign and not self.missing


def in_window(expiry: int, today: int, min_dte: int, max_dte: int) -> bool:
    return min_dte <= expiry - today <= max_dte


def wanted_legs(expiries, strikes, spot: float, today: int, min_dte: int, max_dte: int,
                band: float, margin: float) -> list[Leg]:
    """Candidate legs under ``structure.manage: true``: expiries inside the DTE window,
    strikes within ``band + margin`` of spot (room for the spot to move before the next
    re-plan), both rights; best first (nearest strike, then latest expiry, as the
    strategy chooses). Nothing on an unknown spot."""
    if not spot > 0:
        return []
    reach = band + margin
    exps = [e for e in expiries if in_window(e, today, min_dte, max_dte)]
    ks = [k for k in strikes if abs(k - spot) / spot <= reach]
    legs = [Leg(e, float(k), r) for e in exps for k in ks for r in ("C", "P")]
    return sorted(legs, key=lambda g: (abs(g.strike - spot), -g.expiry, g.strike, g.right))


def replan_due(last_spot: float | None, last_day: int | None, spot: float, today: int,
               margin: float) -> bool:
    """Re-plan the candidates when the day changed (expiries enter or leave the window)
    or the spot has used half the strike margin since the last plan."""
    if not spot > 0:
        return False
    if last_spot is None or last_day is None or today != last_day:
        return True
    return abs(spot - last_spot) / last_spot > margin / 2.0


def plan_slots(slots: list[Slot], wanted: list[Leg], must: list[Leg] = ()) -> Plan:
    """Which slots take which contract.

    ``must``: legs that need a feed whatever it costs (positions that appeared while
    running); they may take any slot that is not busy, the least wanted first.
    ``wanted``: candidates, best first; they take free slots and slots whose contract
    is no longer wanted. Busy slots are never touched; a slot whose contract is still
    wanted keeps it; a flat slot with an unwanted contract is released (unsubscribed).
    """
    rank = {leg: i for i, leg in enumerate(wanted)}
    placed = {s.leg for s in slots if s.leg is not None}
    assign: dict = {}
    # unwanted, flat: released (available again)
    free = [i for i, s in enumerate(slots) if s.leg is None]
    for i, s in enumerate(slots):
        if s.leg is not None and not s.busy and s.leg not in rank and s.leg not in must:
            assign[i] = None
            free.append(i)
    missing = []

    def place(leg) -> None:
        if not free:
            missing.append(leg)
            return
        i = free.pop(0)
        assign[i] = leg
        placed.add(leg)

    for leg in dict.fromkeys(must):
        if leg in placed:
            continue
        if not free:
            # a position matters more than a candidate: take the least wanted flat one
            spare = sorted((i for i, s in enumerate(slots)
                            if s.leg is not None and not s.busy and s.leg in rank
                            and i not in assign and s.leg not in must),
                           key=lambda i: -rank[slots[i].leg])
            if spare:
                placed.discard(slots[spare[0]].leg)
                free.append(spare[0])
        place(leg)
    for leg in wanted:
        if leg not in placed:
            place(leg)
    return Plan(assign, missing)
