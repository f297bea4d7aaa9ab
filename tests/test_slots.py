"""The pure rules of the live option slots (bifrost.slots): which contracts to want,
when to re-plan, which slot takes which leg. No IB, no Backtrader."""
import datetime as dt
import math

from bifrost.slots import Leg, Slot, plan_slots, replan_due, wanted_legs

TODAY = dt.date(2026, 1, 12).toordinal()            # a Monday
FRIDAYS = [TODAY + 4 + 7 * k for k in range(8)]     # 4, 11, ... 53 days out


def leg(dte, strike, right="C"):
    return Leg(TODAY + dte, float(strike), right)


def test_wanted_legs_window_band_both_rights_best_first():
    strikes = [150.0 + 5 * k for k in range(9)]     # 150 .. 190
    got = wanted_legs(FRIDAYS, strikes, 170.0, TODAY, 21, 35, 0.03, 0.07)
    assert {g.expiry - TODAY for g in got} == {25, 32}          # inside 21..35 only
    assert {g.strike for g in got} == {155.0, 160.0, 165.0, 170.0, 175.0, 180.0, 185.0}
    assert len(got) == 2 * 7 * 2                                # both rights
    assert got[0].strike == 170.0 and got[0].expiry == TODAY + 32      # ATM, latest expiry
    dist = [abs(g.strike - 170.0) for g in got]
    assert dist == sorted(dist)


def test_wanted_legs_nothing_on_a_bad_spot():
    assert wanted_legs(FRIDAYS, [170.0], math.nan, TODAY, 21, 35, 0.03, 0.07) == []
    assert wanted_legs(FRIDAYS, [170.0], 0.0, TODAY, 21, 35, 0.03, 0.07) == []


def test_replan_due_on_a_new_day_or_half_the_margin():
    assert replan_due(None, None, 170.0, TODAY, 0.07)
    assert not replan_due(170.0, TODAY, 175.0, TODAY, 0.07)     # 2.9% < 3.5%
    assert replan_due(170.0, TODAY, 176.5, TODAY, 0.07)         # 3.8%
    assert replan_due(170.0, TODAY, 170.0, TODAY + 1, 0.07)
    assert not replan_due(170.0, TODAY, math.nan, TODAY + 1, 0.07)   # no spot: no re-plan


def test_plan_keeps_wanted_and_busy_and_fills_free_slots():
    a, b, c, d = leg(25, 170), leg(25, 170, "P"), leg(32, 170), leg(32, 170, "P")
    old = leg(18, 160)
    slots = [Slot(a), Slot(b), Slot(old, busy=True), Slot(None), Slot(None)]
    plan = plan_slots(slots, [c, d, a, b])
    assert plan.assign == {3: c, 4: d}                          # busy slot 2 untouched
    assert plan.missing == []


def test_plan_releases_unwanted_flat_slots_and_reuses_them():
    a, b, c = leg(25, 170), leg(32, 170), leg(32, 175)
    gone = leg(18, 160)
    plan = plan_slots([Slot(gone), Slot(a), Slot(None)], [b, c, a])
    assert set(plan.assign) == {0, 2} and set(plan.assign.values()) == {b, c}
    assert plan.missing == []
    # unwanted and not needed: released (unsubscribed), never left on a stale contract
    plan = plan_slots([Slot(gone), Slot(a)], [a])
    assert plan.assign == {0: None}


def test_plan_never_moves_a_busy_slot_even_when_short():
    a, b, c = leg(25, 170), leg(32, 170), leg(32, 175)
    held = leg(18, 160)
    plan = plan_slots([Slot(held, busy=True), Slot(a, busy=True)], [b, c])
    assert plan.assign == {} and plan.missing == [b, c]


def test_a_position_takes_a_free_slot_or_the_least_wanted_flat_one():
    a, b, c = leg(25, 170), leg(25, 175), leg(25, 180)
    pos = leg(30, 165, "P")
    plan = plan_slots([Slot(a), Slot(None)], [a], must=[pos])
    assert plan.assign == {1: pos}
    # no free slot: the least wanted flat candidate gives way; busy ones never
    plan = plan_slots([Slot(a), Slot(b), Slot(c, busy=True)], [a, b, c], must=[pos])
    assert plan.assign[1] == pos and 0 not in plan.assign and 2 not in plan.assign
    plan = plan_slots([Slot(a, busy=True)], [a], must=[pos])
    assert plan.assign == {} and plan.missing == [pos]


def test_a_leg_already_in_a_slot_is_not_placed_twice():
    a = leg(25, 170)
    plan = plan_slots([Slot(a), Slot(None)], [a], must=[a])
    assert plan.empty
