"""Scenario tests through a real Cerebro: every guard refuses, is recorded with its
reason and time, and clears when its cause clears; no state is a trap.

Markets are hand-made (tests/scenario.py): the strategy buys a 10-lot straddle on the
first regular-hours bar; from then on the net delta it sees is ``stock + opt`` where
``opt`` is scripted per bar through the option feeds' greeks.
"""
import dataclasses
import datetime as _dt
import time

import backtrader as bt
import pytest

from bifrost.pricing import bs_greeks, implied_vol
from scenario import (EXPIRY, MON, NAN, SAT, STRIKE, TUE, Bar, at, bars, minutes, num,
                      plain_feeds, run)
from sizers.hedge import HedgeSizer
from strategies.gamma_scalping import GammaScalping

FRI = _dt.date(2026, 1, 9)
NO_MOVE = {"gates.intent.hedge.min_price_move_pct": None}


def opened(day=MON, start="10:00"):
    """The bar on which the strategy buys the straddle (no hedge can happen on it)."""
    return bars([at(day, start)])


def settle(rows):
    """One more bar a minute after the last, same market: the last bar's order fills."""
    last = rows[-1]
    return rows + [dataclasses.replace(last, t=last.t + _dt.timedelta(minutes=1))]


def assert_refused(res, times, reason):
    for t in times:
        assert res.refused_at(t) == [reason], (t, res.refusals)


# -- the baseline -----------------------------------------------------------------------
def test_baseline_hedges_net_delta_to_zero():
    res = run(opened() + bars(minutes(MON, "10:01", 3), opt=200.0))
    assert res.hedges == [(at(MON, "10:01"), -200, "Completed")]
    assert res.refusals == [] and res.analysis["block_reasons"] == {}
    s = res.strat
    assert s.getposition(s.stock).size == -200
    assert [s.getposition(d).size for d in s.options] == [10, 10]
    assert abs(s.net_delta) < 1e-6
    h = res.analysis["hedges"][0]
    assert h["state"] == "O1 D2 M0 L0 E0 S0" and h["force"] is False
    assert h["fill_price"] == 100.0 and h["commission"] > 0


def test_minor_delta_is_not_hedged_and_not_a_refusal():
    res = run(opened() + bars(minutes(MON, "10:01", 3), opt=24.0))
    assert res.hedges == [] and res.refusals == []
    assert res.strat.state.code().startswith("O1 D1")


# -- cooldown ---------------------------------------------------------------------------
def test_cooldown_refuses_then_clears():
    rows = (opened() + bars([at(MON, "10:01")], opt=200.0)
            + bars(minutes(MON, "10:02", 4), opt=260.0)             # 60..240 s after
            + settle(bars([at(MON, "10:07")], opt=260.0)))          # 360 s after
    res = run(rows, {"gates.intent.hedge.cooldown_seconds": 300, **NO_MOVE})
    assert_refused(res, minutes(MON, "10:02", 4), "cooldown")
    assert res.analysis["block_reasons"] == {"cooldown": 4}
    assert res.hedges[1:] == [(at(MON, "10:07"), -60, "Completed")]


def test_cooldown_off_hedges_every_bar():
    rows = opened() + [Bar(at(MON, "10:01"), opt=200.0)] + [Bar(at(MON, "10:01", 30), opt=260.0)]
    res = run(rows, {"gates.intent.hedge.cooldown_seconds": 0, **NO_MOVE})
    assert [s for _, s, _ in res.hedges] == [-200, -60] and res.refusals == []


def test_cooldown_boundary_is_exact_at_every_minute():
    """Bars one minute apart with cooldown 60 s: the delta flips every bar, so every bar
    after the open must hedge; none may be refused for the cooldown."""
    times = minutes(MON, "09:30", 391)
    rows = opened(MON, "09:30") + [Bar(t, opt=200.0 * (-1) ** k) for k, t in enumerate(times[1:])]
    res = run(rows, {"gates.intent.hedge.cooldown_seconds": 60, "gates.guard.risk.max_daily_hedge_count": None,
                     **NO_MOVE})
    assert res.analysis["block_reasons"] == {}
    assert len(res.hedges) == 390


# -- daily hedge count ------------------------------------------------------------------------
def test_max_daily_hedge_count_resets_next_trading_day():
    rows = (opened() + bars([at(MON, "10:01")], opt=200.0)
            + bars(minutes(MON, "10:05", 3), opt=260.0, spot=101.0)
            + bars(minutes(TUE, "10:00", 2), opt=260.0, spot=101.0))
    res = run(rows, {"gates.guard.risk.max_daily_hedge_count": 1})
    assert_refused(res, minutes(MON, "10:05", 3), "max_daily_hedge_count")
    assert res.hedge_times() == [at(MON, "10:01"), at(TUE, "10:00")]
    assert res.hedged_at(at(TUE, "10:00")) == [-60]
    assert res.analysis["block_reasons"] == {"max_daily_hedge_count": 3}


# -- circuit breaker -> S3 ---------------------------------------------------------------------
def test_circuit_breaker_is_s3_and_clears_next_day():
    # the straddle (2 x 1000 shares of options) loses $1 a share on both legs: -$2000
    rows = (opened() + bars([at(MON, "10:01")], opt=200.0)
            + bars(minutes(MON, "10:03", 3), opt=300.0, spot=101.0, call_mid=2.0, put_mid=2.0)
            + bars(minutes(TUE, "10:00", 2), opt=300.0, spot=101.0, call_mid=2.0, put_mid=2.0))
    res = run(rows, {"gates.guard.risk.max_daily_loss_usd": 1000})
    assert_refused(res, minutes(MON, "10:03", 3), "system_risk_halt")
    assert all(r["state"].endswith("S3") for r in res.analysis["refusals"])
    assert res.hedged_at(at(TUE, "10:00")) == [-100]
    # the same loss under the default $5000 limit is no halt
    res = run(rows)
    assert res.refusals == [] and res.hedged_at(at(MON, "10:03")) == [-100]


# -- trading hours, weekends, earnings ------------------------------------------------------------
def test_outside_rth_refuses_then_clears_at_the_open():
    rows = (opened(MON, "15:57") + bars([at(MON, "15:58")], opt=200.0)
            + bars([at(MON, "16:00")], opt=300.0, spot=101.0)                 # close: inside
            + bars(minutes(MON, "16:01", 2), opt=400.0, spot=102.0)
            + bars([at(SAT, "11:00")], opt=400.0, spot=102.0)                 # weekend
            + bars([at(TUE, "09:29")], opt=400.0, spot=102.0)
            + bars(minutes(TUE, "09:30", 2), opt=400.0, spot=102.0))          # open: inside
    res = run(rows)
    refused = [at(MON, "16:01"), at(MON, "16:02"), at(SAT, "11:00"), at(TUE, "09:29")]
    assert_refused(res, refused, "outside_rth")
    assert res.hedge_times() == [at(MON, "15:58"), at(MON, "16:00"), at(TUE, "09:30")]
    assert res.hedged_at(at(TUE, "09:30")) == [-100]


def test_trading_hours_guard_off_hedges_after_hours():
    rows = opened(MON, "15:59") + bars(minutes(MON, "16:30", 2), opt=200.0)
    assert run(rows).reasons() == {"outside_rth"}
    res = run(rows, {"gates.strategy.trading_hours_only": False})
    assert res.refusals == [] and res.hedged_at(at(MON, "16:30")) == [-200]


def test_earnings_blackout_window_then_clears():
    # earnings on Wednesday, blackout 3 days before and 1 after: Monday..Thursday
    rows = opened() + bars(minutes(MON, "10:01", 2), opt=200.0) + settle(bars([at(FRI, "10:00")], opt=200.0))
    res = run(rows, {"gates.strategy.earnings.dates": ["2026-01-07"]})
    assert_refused(res, minutes(MON, "10:01", 2), "earnings_blackout")
    assert res.hedges == [(at(FRI, "10:00"), -200, "Completed")]
    res = run(rows, {"gates.strategy.earnings.dates": ["2026-01-07"],
                     "gates.strategy.earnings.blackout_days_before": 1})
    assert res.refusals == [] and res.hedge_times() == [at(MON, "10:01")]


# -- position cap through the sizer ------------------------------------------------------------
def test_max_position_cuts_the_order_then_refuses_then_clears():
    rows = (opened() + bars([at(MON, "10:01")], opt=200.0)
            + bars(minutes(MON, "10:03", 2), opt=200.0, spot=101.0)
            + settle(bars([at(MON, "10:06")], opt=-100.0, spot=102.0)))
    res = run(rows, {"gates.guard.risk.max_position_shares": 150})
    assert res.hedged_at(at(MON, "10:01")) == [-150]           # cut to the cap
    assert_refused(res, minutes(MON, "10:03", 2), "max_position")
    assert res.hedged_at(at(MON, "10:06")) == [250]            # reducing the position is fine
    assert res.strat.getposition(res.strat.stock).size == 100


# -- min price move --------------------------------------------------------------------------
def test_min_price_move_refuses_then_clears():
    rows = (opened() + bars([at(MON, "10:01")], opt=200.0)
            + bars([at(MON, "10:03")], opt=260.0, spot=100.1)
            + bars([at(MON, "10:04")], opt=260.0, spot=99.85)
            + bars([at(MON, "10:05")], opt=260.0, spot=100.3))
    res = run(rows)
    assert_refused(res, [at(MON, "10:03"), at(MON, "10:04")], "min_price_move")
    assert res.hedged_at(at(MON, "10:05")) == [-60]


# -- spreads ----------------------------------------------------------------------------------
def test_spread_too_wide_guard_then_clears():
    rows = (opened() + bars(minutes(MON, "10:01", 2), opt=200.0, spread_bps=8.0)   # 0.08 %: L0
            + settle(bars([at(MON, "10:03")], opt=200.0, spread_bps=2.0)))
    res = run(rows, {"gates.guard.risk.max_spread_pct": 0.05})
    assert_refused(res, minutes(MON, "10:01", 2), "spread_too_wide")
    assert all(" L0 " in r["state"] for r in res.analysis["refusals"])
    assert res.hedges == [(at(MON, "10:03"), -200, "Completed")]
    assert run(rows).hedge_times() == [at(MON, "10:01")]        # guard off by default


def test_wide_spread_l1_still_hedges():
    res = run(opened() + settle(bars([at(MON, "10:01")], opt=200.0, spread_bps=20.0)))    # 0.2 %
    assert res.hedges == [(at(MON, "10:01"), -200, "Completed")]
    assert " L1 " in res.analysis["hedges"][0]["state"]


def test_l2_and_l3_block_then_clear():
    rows = (opened()
            + [Bar(at(MON, "10:01"), opt=200.0, spread_bps=60.0),              # 0.6 %: L2
               Bar(at(MON, "10:02"), opt=200.0, bid=None, ask=100.01),         # no bid: L3
               Bar(at(MON, "10:03"), opt=200.0, bid=0.0, ask=100.01),          # zero bid: L3
               Bar(at(MON, "10:04"), opt=200.0, bid=100.02, ask=100.0),        # crossed: L3
               Bar(at(MON, "10:05"), opt=200.0, bid=NAN, ask=NAN),             # no quote: L3
               Bar(at(MON, "10:06"), opt=200.0), Bar(at(MON, "10:07"), opt=200.0)])
    res = run(rows)
    assert res.refused_at(at(MON, "10:01")) == ["liquidity_extreme_wide"]
    assert_refused(res, minutes(MON, "10:02", 4), "liquidity_no_quote")
    assert res.analysis["block_reasons"] == {"liquidity_extreme_wide": 1, "liquidity_no_quote": 4}
    assert res.hedges == [(at(MON, "10:06"), -200, "Completed")]


# -- greeks ----------------------------------------------------------------------------------------
def test_invalid_greeks_block_then_clear():
    rows = (opened() + bars(minutes(MON, "10:01", 2), opt=200.0, gamma=NAN)
            + settle(bars([at(MON, "10:03")], opt=200.0)))
    res = run(rows)
    assert_refused(res, minutes(MON, "10:01", 2), "delta_invalid")
    assert all(" D4 " in r["state"] for r in res.analysis["refusals"])
    assert res.hedges == [(at(MON, "10:03"), -200, "Completed")]


def test_missing_feed_greeks_are_computed_from_the_mid():
    rows = opened() + bars([at(MON, "10:01")], greeks=False, call_mid=3.5, put_mid=2.5)
    rows += [Bar(at(MON, "10:02"), opt=NAN, greeks=False, call_mid=3.5, put_mid=2.5)]
    res = run(rows)
    now = num(at(MON, "10:01"))
    tau = (EXPIRY.toordinal() + 16 / 24 - now) / 365.0
    net = 0.0
    for right, mid in ((1, 3.5), (-1, 2.5)):
        vol = implied_vol(right, mid, 100.0, STRIKE, tau, 0.05)
        assert 0.1 < vol < 1.0
        net += 1000 * bs_greeks(right, 100.0, STRIKE, tau, vol, 0.05)[0]
    assert abs(net) > 25
    assert res.hedges == [(at(MON, "10:01"), -round(net), "Completed")]


# -- no state is a trap ---------------------------------------------------------------------------
def test_start_without_any_prices_then_hedges():
    """The reference's defect: SAFE at start (no quote yet) and never leaving it."""
    # the straddle opens at 10:03 and its delta is hedged in the same bar
    dark = bars(minutes(MON, "10:00", 3), spot=NAN, bid=NAN, ask=NAN, opt_quoted=False, opt=200.0)
    res = run(dark + bars(minutes(MON, "10:03", 3), opt=200.0))
    assert res.hedges == [(at(MON, "10:03"), -200, "Completed")]
    assert [res.strat.getposition(d).size for d in res.strat.options] == [10, 10]


def test_start_without_a_stock_quote_then_hedges():
    rows = opened() + bars(minutes(MON, "10:01", 2), opt=200.0, bid=NAN, ask=NAN) \
        + settle(bars([at(MON, "10:03")], opt=200.0))
    res = run(rows)
    assert_refused(res, minutes(MON, "10:01", 2), "liquidity_no_quote")
    assert all(" L3 " in r["state"] for r in res.analysis["refusals"])
    assert res.hedges == [(at(MON, "10:03"), -200, "Completed")]


def test_no_straddle_is_bought_before_the_spot_is_known():
    dark = bars([at(MON, "10:00")], spot=NAN, bid=NAN, ask=NAN)
    res = run(dark + bars(minutes(MON, "10:01", 3)), strike=120.0)
    assert [res.strat.getposition(d).size for d in res.strat.options] == [0, 0]


def test_out_of_band_straddle_is_not_bought():
    res = run(bars(minutes(MON, "10:00", 4)), strike=120.0)
    assert [res.strat.getposition(d).size for d in res.strat.options] == [0, 0]
    assert res.strat.state.o.name == "NONE"


# -- broker errors ---------------------------------------------------------------------------------
# The straddle costs about $6,100; with $10,000 a 200-share buy at $100 gets Margin, a
# 30-share one fits.
REJECT_ROWS = (opened() + bars([at(MON, "10:01")], opt=-200.0)
               + bars(minutes(MON, "10:02", 4), opt=-30.0))


def test_rejected_order_blocks_for_error_retry_seconds_then_resumes():
    res = run(REJECT_ROWS, {"gates.state.execution.error_retry_seconds": 90, **NO_MOVE}, cash=10_000)
    assert res.hedges[0] == (at(MON, "10:01"), 200, "Margin")
    # Margin arrives at 10:02: E4 on 10:02 and 10:03 (60 s), clear at 10:04 (120 s)
    assert_refused(res, [at(MON, "10:02"), at(MON, "10:03")], "execution_broker_error")
    assert all(" E4 " in r["state"] for r in res.analysis["refusals"])
    assert res.hedges[1] == (at(MON, "10:04"), 30, "Completed")
    assert res.strat.getposition(res.strat.stock).size == 30


def test_rejected_order_does_not_arm_min_price_move():
    res = run(REJECT_ROWS, {"gates.state.execution.error_retry_seconds": 90}, cash=10_000)
    assert res.hedges[0][2] == "Margin"
    assert "min_price_move" not in res.reasons()
    assert res.hedged_at(at(MON, "10:04")) == [30]


def test_rejected_order_does_not_use_up_the_daily_count():
    res = run(REJECT_ROWS, {"gates.state.execution.error_retry_seconds": 90,
                            "gates.guard.risk.max_daily_hedge_count": 1, **NO_MOVE}, cash=10_000)
    assert "max_daily_hedge_count" not in res.reasons()
    assert res.hedged_at(at(MON, "10:04")) == [30]


# -- force hedge (D3) ---------------------------------------------------------------------------
def _force_rows(spot_after=100.0):
    return (opened() + bars([at(MON, "10:01")], opt=200.0)
            + bars([at(MON, "10:03")], opt=260.0, spot=spot_after)           # D2: cooling down
            + bars([at(MON, "10:04")], opt=800.0, spot=spot_after))          # net 600: D3


def test_force_hedge_bypasses_the_cooldown():
    res = run(_force_rows(), {"gates.intent.hedge.cooldown_seconds": 600, **NO_MOVE})
    assert res.refused_at(at(MON, "10:03")) == ["cooldown"]
    assert res.hedged_at(at(MON, "10:04")) == [-500]                   # capped per order
    rec = res.analysis["hedges"][-1]
    assert rec["force"] is True and " D3 " in rec["state"]


@pytest.mark.parametrize("over, spot, reason", [
    ({"gates.guard.risk.max_daily_hedge_count": 1, **NO_MOVE}, 101.0, "max_daily_hedge_count"),
    ({}, 100.0, "min_price_move"),
    ({"gates.guard.risk.max_position_shares": 205, **NO_MOVE}, 101.0, "max_position"),
])
def test_force_hedge_does_not_bypass_other_guards(over, spot, reason):
    over = {"gates.intent.hedge.cooldown_seconds": 600, **over}
    res = run(_force_rows(spot), over)
    assert res.refused_at(at(MON, "10:04")) == [reason]
    assert res.hedge_times() == [at(MON, "10:01")]


def test_force_hedge_is_still_refused_outside_hours():
    rows = (opened(MON, "15:58") + bars([at(MON, "15:59")], opt=200.0)
            + bars([at(MON, "16:05")], opt=900.0, spot=102.0))
    res = run(rows)
    assert res.refused_at(at(MON, "16:05")) == ["outside_rth"]
    assert res.analysis["refusals"][-1]["state"].split()[1] == "D3"


# -- replayable: no wall clock -----------------------------------------------------------------------
WALL_ROWS = (opened() + bars([at(MON, "10:01")], opt=200.0)
             + bars(minutes(MON, "10:02", 3), opt=260.0, spot=100.1)
             + bars(minutes(MON, "10:05", 3), opt=330.0, spot=101.0)
             + bars(minutes(TUE, "10:00", 2), opt=-50.0, spot=99.0, spread_bps=70.0)
             + bars([at(TUE, "10:02")], opt=-50.0, spot=99.0))


def _no_wall_clock(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("wall clock read during the run")

    real_localtime, real_gmtime = time.localtime, time.gmtime
    monkeypatch.setattr(time, "time", boom)
    monkeypatch.setattr(time, "time_ns", boom)
    monkeypatch.setattr(time, "localtime", lambda *a: real_localtime(*a) if a else boom())
    monkeypatch.setattr(time, "gmtime", lambda *a: real_gmtime(*a) if a else boom())

    class NoNowDatetime(_dt.datetime):
        now = classmethod(boom)
        utcnow = classmethod(boom)
        today = classmethod(boom)

    class NoTodayDate(_dt.date):
        today = classmethod(boom)

    monkeypatch.setattr(_dt, "datetime", NoNowDatetime)
    monkeypatch.setattr(_dt, "date", NoTodayDate)


def test_no_wall_clock_and_same_decisions(monkeypatch):
    free = run(WALL_ROWS)
    assert free.hedges and free.refusals                 # the run has decisions to compare
    assert {"min_price_move", "liquidity_extreme_wide"} <= free.reasons()
    _no_wall_clock(monkeypatch)
    with pytest.raises(AssertionError):
        _dt.datetime.now()                               # the trap is armed
    clocked = run(WALL_ROWS)
    monkeypatch.undo()
    assert clocked.analysis == free.analysis


class PeeksAtTheClock(GammaScalping):
    def next(self):
        _dt.datetime.now()
        super().next()


def test_the_clock_trap_catches_a_strategy_reading_the_clock(monkeypatch):
    _no_wall_clock(monkeypatch)
    with pytest.raises(AssertionError, match="wall clock"):
        run(WALL_ROWS, strategy=PeeksAtTheClock)


# -- drop-in -----------------------------------------------------------------------------------------
def test_drop_in_plain_cerebro():
    # no cheat-on-close here: orders fill at the next bar's open
    rows = opened() + bars(minutes(MON, "10:01", 2), opt=200.4) + bars(minutes(MON, "10:03", 3), opt=320.0, spot=102.0)
    stock, options = plain_feeds(rows)
    cerebro = bt.Cerebro()
    cerebro.adddata(stock)
    for d in options:
        cerebro.adddata(d)
    cerebro.addstrategy(GammaScalping)
    strat = cerebro.run()[0]
    assert isinstance(strat.getsizer(), HedgeSizer)
    a = strat.analyzers.guards.get_analysis()
    assert [(h["side"], h["shares"], h["status"]) for h in a["hedges"]] == \
        [("SELL", 200, "Completed"), ("SELL", 120, "Completed")]
    assert all(isinstance(h["shares"], int) for h in a["hedges"])
    assert strat.getposition(stock).size == -320
    assert set(a) >= {"block_reasons", "refusals", "hedges"}


# -- structure: a due roll with nothing to roll into unwinds, and is not a trap -------
class _Book(GammaScalping):
    """Positions as each bar begins (orders of the bar before have filled)."""

    def __init__(self):
        super().__init__()
        self.book = []

    def next(self):
        self.book.append((self.stock.datetime.datetime(0), self.getposition(self.stock).size,
                          [self.getposition(d).size for d in self.options]))
        super().next()


def test_roll_with_nothing_to_roll_into_unwinds_legs_and_hedge_then_reopens():
    rows = (opened() + bars(minutes(MON, "10:01", 2), opt=200.0)          # hedged: -200
            + bars(minutes(MON, "10:03", 3), spot=110.0, opt=200.0)       # strike 100 leaves the band
            + bars(minutes(MON, "10:06", 3), spot=100.0))                 # back inside: reopen
    res = run(rows, NO_MOVE, strategy=_Book)
    book = {t: (stock, legs) for t, stock, legs in res.strat.book}
    assert book[at(MON, "10:03")] == (-200, [10, 10])   # the roll falls due on this bar
    assert book[at(MON, "10:04")] == (0, [0, 0])        # legs and hedge closed
    assert book[at(MON, "10:05")] == (0, [0, 0])        # nothing qualifies: stays flat
    assert book[at(MON, "10:07")][1] == [10, 10]        # a straddle qualifies again: reopened
    assert res.refusals == []                           # flat is not a blocked hedge


def test_a_stock_priced_like_an_option_is_not_taken_for_one():
    """``==`` between Backtrader datas compares their current prices: the strategy must
    tell its feeds apart by identity (a stock fill at the call's price once crashed it)."""
    rows = bars([at(MON, "10:00")], spot=3.0) + bars(minutes(MON, "10:01", 3), spot=3.0, opt=200.0)
    res = run(rows, NO_MOVE, strike=3.0)                  # stock 3.00, call and put mids 3.00
    assert res.hedges == [(at(MON, "10:01"), -200, "Completed")]
    s = res.strat
    assert [s.getposition(d).size for d in s.options] == [10, 10]
