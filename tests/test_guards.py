"""Guard arithmetic, the reference's refusal order, and hedge sizing."""
import dataclasses
import datetime as dt
import math

import pytest

from bifrost import guards
from bifrost.guards import GuardInputs, GuardLimits, first_refusal, hedge_size

NAN = math.nan
MON = dt.date(2026, 1, 5)


def at(day, h, m, s=0, us=0):
    return dt.datetime.combine(day, dt.time(h, m, s, us))


# -- trading hours ------------------------------------------------------------------------
@pytest.mark.parametrize("now, outside", [
    (at(MON, 9, 29, 59), True),
    (at(MON, 9, 30), False),                 # the open is inside
    (at(MON, 12, 0), False),
    (at(MON, 15, 59, 59), False),
    (at(MON, 16, 0), False),                 # the close is inside
    (at(MON, 16, 0, 0, 1), True),
    (at(MON, 16, 0, 1), True),
    (at(MON, 0, 0), True),
    (at(MON + dt.timedelta(days=4), 10, 0), False),     # Friday
    (at(MON + dt.timedelta(days=5), 10, 0), True),      # Saturday
    (at(MON + dt.timedelta(days=6), 10, 0), True),      # Sunday
    (at(MON + dt.timedelta(days=5), 9, 30), True),
])
def test_outside_trading_hours(now, outside):
    assert guards.outside_trading_hours(now) is outside


# -- earnings blackout ----------------------------------------------------------------------
E1 = dt.date(2026, 2, 25)
E2 = dt.date(2026, 5, 20)


@pytest.mark.parametrize("day, blocked", [
    (E1 - dt.timedelta(days=4), False),
    (E1 - dt.timedelta(days=3), True),       # first day of the window
    (E1, True),
    (E1 + dt.timedelta(days=1), True),       # last day of the window
    (E1 + dt.timedelta(days=2), False),
    (E2 - dt.timedelta(days=3), True),       # every date has its window
    (E2 + dt.timedelta(days=2), False),
    (dt.date(2026, 4, 1), False),
])
def test_earnings_blackout_window_edges(day, blocked):
    assert guards.in_earnings_blackout(day, [E1, E2], 3, 1) is blocked


def test_earnings_blackout_zero_days_is_the_date_only():
    assert guards.in_earnings_blackout(E1, [E1], 0, 0)
    assert not guards.in_earnings_blackout(E1 - dt.timedelta(days=1), [E1], 0, 0)
    assert not guards.in_earnings_blackout(E1 + dt.timedelta(days=1), [E1], 0, 0)
    assert not guards.in_earnings_blackout(E1, [], 3, 1)


# -- each guard, on and off ----------------------------------------------------------------
@pytest.mark.parametrize("pnl, limit, tripped", [
    (-5000.0, 5000.0, True),                 # at the limit: tripped
    (-5000.01, 5000.0, True),
    (-4999.99, 5000.0, False),
    (100.0, 5000.0, False),
    (-1e9, None, False),                     # off
    (-1e9, 0, False),
    (-1e9, False, False),
])
def test_circuit_breaker(pnl, limit, tripped):
    assert bool(guards.circuit_breaker_tripped(pnl, limit)) is tripped


@pytest.mark.parametrize("now, last, cooldown, cooling", [
    (1000.0, 990.0, 60, True),
    (1000.0, 940.5, 60, True),
    (1000.0, 940.0, 60, False),              # exactly cooldown seconds later: free
    (1000.0, 900.0, 60, False),
    (1000.0, None, 60, False),               # never hedged
    (1000.0, 999.0, None, False),            # off
    (1000.0, 999.0, 0, False),
    (1000.0, 999.0, False, False),
])
def test_cooldown(now, last, cooldown, cooling):
    assert bool(guards.cooling_down(now, last, cooldown)) is cooling


@pytest.mark.parametrize("count, limit, reached", [
    (49, 50, False), (50, 50, True), (51, 50, True), (0, 1, False), (1, 1, True),
    (10_000, None, False), (10_000, 0, False), (10_000, False, False),
])
def test_daily_count(count, limit, reached):
    assert bool(guards.daily_count_reached(count, limit)) is reached


@pytest.mark.parametrize("after, limit, exceeded", [
    (2000, 2000, False), (-2000, 2000, False), (2001, 2000, True), (-2001, 2000, True),
    (10**6, None, False), (10**6, 0, False), (10**6, False, False),
])
def test_position_limit(after, limit, exceeded):
    assert bool(guards.position_limit_exceeded(after, limit)) is exceeded


@pytest.mark.parametrize("sp, limit, too_wide", [
    (0.05, 0.1, False), (0.1, 0.1, False), (0.1001, 0.1, True),
    (NAN, 0.1, True),                        # no quote fails closed when the guard is on
    (5.0, None, False), (NAN, None, False), (5.0, 0, False),
])
def test_spread_too_wide(sp, limit, too_wide):
    assert bool(guards.spread_too_wide(sp, limit)) is too_wide


@pytest.mark.parametrize("spot, last, pct, small", [
    (100.1, 100.0, 0.2, True),
    (99.9, 100.0, 0.2, True),
    (100.25, 100.0, 0.2, False),
    (99.75, 100.0, 0.2, False),
    (100.5, 100.0, 0.5, False),              # exactly the minimum move: allowed
    (100.0, None, 0.2, False),               # no previous hedge
    (100.0, 0.0, 0.2, False),
    (100.0, 100.0, None, False),             # off
    (100.0, 100.0, 0, False),
])
def test_min_price_move(spot, last, pct, small):
    assert bool(guards.price_move_too_small(spot, last, pct)) is small


@pytest.mark.parametrize("after, limit, exceeded", [
    (100.0, 100.0, False), (-100.5, 100.0, True), (100.5, 100.0, True),
    (1e6, None, False), (1e6, 0, False),
])
def test_net_delta_limit(after, limit, exceeded):
    assert bool(guards.net_delta_limit_exceeded(after, limit)) is exceeded


# -- first_refusal: order and each reason -------------------------------------------------
NOW = at(MON, 11, 0)
OK_INPUTS = GuardInputs(now=NOW, now_s=100_000.0, spot=101.0, size=-100, position=0.0,
                        net_delta=100.0, spread_pct=0.02, day_pnl=0.0, daily_count=0,
                        last_hedge_s=100_000.0 - 600, last_hedge_price=100.0, force=False)
LIMITS = GuardLimits(max_spread_pct=0.5, max_net_delta_shares=50.0,
                     earnings_dates=(dt.date(2026, 2, 25),))

# one change to the inputs that trips each guard, in the reference order
TRIPS = [
    ("circuit_breaker", dict(day_pnl=-5000.0)),
    ("outside_rth", dict(now=at(MON, 16, 5))),
    ("earnings_blackout", dict(now=at(dt.date(2026, 2, 24), 11, 0))),
    ("cooldown", dict(last_hedge_s=100_000.0 - 30)),
    ("max_daily_hedge_count", dict(daily_count=50)),
    ("max_position", dict(position=-1950.0)),
    ("max_net_delta", dict(net_delta=200.0)),
    ("spread_too_wide", dict(spread_pct=0.6)),
    ("min_price_move", dict(spot=100.1)),
]


def _inputs(**kw):
    return dataclasses.replace(OK_INPUTS, **kw)


def test_no_refusal_when_everything_is_fine():
    assert first_refusal(OK_INPUTS, LIMITS) is None
    assert first_refusal(OK_INPUTS, GuardLimits()) is None


@pytest.mark.parametrize("reason, change", TRIPS, ids=[r for r, _ in TRIPS])
def test_each_guard_alone(reason, change):
    assert first_refusal(_inputs(**change), LIMITS) == reason


@pytest.mark.parametrize("k", range(len(TRIPS)), ids=[r for r, _ in TRIPS])
def test_refusal_order(k):
    """With guard k and every later guard tripped, guard k is the one named."""
    trips = dict(TRIPS)
    # after hours on a blackout day, so both time guards trip together
    trips["outside_rth"] = dict(now=at(dt.date(2026, 2, 24), 16, 5))
    change = {}
    for reason, _ in reversed(TRIPS[k:]):        # earlier guards' changes win
        change.update(trips[reason])
    assert first_refusal(_inputs(**change), LIMITS) == TRIPS[k][0]


OFF = [
    ("circuit_breaker", dict(max_daily_loss_usd=None)),
    ("outside_rth", dict(trading_hours_only=False)),
    ("earnings_blackout", dict(earnings_dates=())),
    ("cooldown", dict(cooldown_seconds=None)),
    ("max_daily_hedge_count", dict(max_daily_hedge_count=None)),
    ("max_position", dict(max_position_shares=None)),
    ("max_net_delta", dict(max_net_delta_shares=None)),
    ("spread_too_wide", dict(max_spread_pct=None)),
    ("min_price_move", dict(min_price_move_pct=None)),
]


@pytest.mark.parametrize("reason, off", OFF, ids=[r for r, _ in OFF])
@pytest.mark.parametrize("how", ["as_given", "zero"])
def test_each_guard_switched_off(reason, off, how):
    change = dict(TRIPS)[reason]
    if how == "zero":
        key, val = next(iter(off.items()))
        if val is None:
            off = {key: 0}
        elif val is False:
            off = {key: False}
    limits = dataclasses.replace(LIMITS, **off)
    assert first_refusal(_inputs(**change), LIMITS) == reason
    assert first_refusal(_inputs(**change), limits) is None


def test_force_skips_the_cooldown_only():
    cooling = dict(TRIPS)["cooldown"]
    assert first_refusal(_inputs(**cooling), LIMITS) == "cooldown"
    assert first_refusal(_inputs(force=True, **cooling), LIMITS) is None
    for reason, change in TRIPS:
        if reason == "cooldown":
            continue
        assert first_refusal(_inputs(force=True, **cooling, **change), LIMITS) == reason


def test_max_position_counts_the_order_itself():
    # position -1950 and a sell of 100 would end at -2050: refused; a buy is fine
    assert first_refusal(_inputs(position=-1950.0, size=-100), LIMITS) == "max_position"
    assert first_refusal(_inputs(position=-1950.0, size=40, net_delta=-40.0, spot=101.0),
                         LIMITS) is None
    assert first_refusal(_inputs(position=-1900.0, size=-100), LIMITS) is None   # exactly 2000


def test_trading_hours_edges_through_first_refusal():
    assert first_refusal(_inputs(now=at(MON, 9, 30)), LIMITS) is None
    assert first_refusal(_inputs(now=at(MON, 16, 0)), LIMITS) is None
    assert first_refusal(_inputs(now=at(MON, 9, 29)), LIMITS) == "outside_rth"
    assert first_refusal(_inputs(now=at(dt.date(2026, 1, 10), 11, 0)), LIMITS) == "outside_rth"


# -- hedge_size ---------------------------------------------------------------------------
@pytest.mark.parametrize("need, position, expected", [
    (100.0, 0, (100, None)),
    (-100.0, 0, (-100, None)),
    (24.6, 0, (25, None)),                   # rounded to whole shares
    (-24.4, 0, (-24, None)),
    (10.0, 0, (10, None)),                   # == min_hedge_shares: sent
    (9.6, 0, (10, None)),
    (9.4, 0, (0, "below_min_hedge")),
    (-9.4, 0, (0, "below_min_hedge")),
    (0.0, 0, (0, "below_min_hedge")),
    (500.0, 0, (500, None)),
    (750.0, 0, (500, None)),                 # per-order cap
    (-1e6, 0, (-500, None)),
    (NAN, 0, (0, "delta_invalid")),
    (math.inf, 0, (0, "delta_invalid")),
    (300.0, 1800, (200, None)),              # cut to the room left under the cap
    (-300.0, -1800, (-200, None)),
    (300.0, 1995, (0, "max_position")),      # room 5 < min shares
    (300.0, 2000, (0, "max_position")),
    (300.0, 2100, (0, "max_position")),      # already beyond: no more on that side
    (-300.0, 1995, (-300, None)),            # reducing is always allowed
    (300.0, -2100, (300, None)),
    (300.0, 1990, (10, None)),               # room exactly min shares
])
def test_hedge_size(need, position, expected):
    assert hedge_size(need, position, 10, 500, 2000) == expected


@pytest.mark.parametrize("cap", [None, 0, False])
def test_hedge_size_position_cap_off(cap):
    assert hedge_size(300.0, 1_000_000, 10, 500, cap) == (300, None)


def test_hedge_size_returns_ints():
    size, _ = hedge_size(123.4, 0, 10, 500, 2000)
    assert size == 123 and isinstance(size, int)
