"""Which legs count, when to roll, and which straddle to hold."""
import math

import pytest

from bifrost.structure import choose_straddle, leg_counts, listed_pairs, needs_roll

TODAY = 740_000            # any ordinal
NAN = math.nan


@pytest.mark.parametrize("strike, dte, spot, counts", [
    (100.0, 21, 100.0, True),          # DTE window edges are inside
    (100.0, 35, 100.0, True),
    (100.0, 28, 100.0, True),
    (100.0, 20, 100.0, False),
    (100.0, 36, 100.0, False),
    (103.0, 28, 100.0, True),          # |K - S| / S == 3 %: inside
    (97.0, 28, 100.0, True),
    (103.01, 28, 100.0, False),
    (96.99, 28, 100.0, False),
    (100.0, 28, 0.0, False),           # no spot
    (100.0, 28, -1.0, False),
    (100.0, 28, NAN, False),
    (NAN, 28, 100.0, False),           # no contract
])
def test_leg_counts(strike, dte, spot, counts):
    assert leg_counts(strike, TODAY + dte, spot, TODAY, 21, 35, 0.03) is counts


@pytest.mark.parametrize("strike, dte, spot, roll", [
    (100.0, 21, 100.0, False),         # DTE == min_dte: keep
    (100.0, 20, 100.0, True),          # below the window: roll
    (100.0, 0, 100.0, True),
    (100.0, 60, 100.0, False),         # above the window is not a reason to roll
    (103.0, 28, 100.0, False),         # band edge: keep
    (103.01, 28, 100.0, True),         # strike left the band
    (96.99, 28, 100.0, True),
    (100.0, 28, 103.5, True),          # spot moved away
])
def test_needs_roll(strike, dte, spot, roll):
    assert needs_roll(strike, TODAY + dte, spot, TODAY, 21, 0.03) is roll


def _pairs(strikes, dtes):
    return [(k, TODAY + d) for d in dtes for k in strikes]


def test_choose_latest_expiry_in_window_then_nearest_strike():
    pairs = _pairs([95.0, 100.0, 105.0], [14, 21, 28, 35, 42])
    assert choose_straddle(101.0, TODAY, pairs, 21, 35, 0.03) == (100.0, TODAY + 35)
    assert choose_straddle(103.0, TODAY, pairs, 21, 35, 0.03) == (105.0, TODAY + 35)


def test_choose_prefers_expiry_over_strike_distance():
    # the nearer strike is only listed on the earlier expiry: the later expiry wins
    pairs = [(100.0, TODAY + 28), (102.0, TODAY + 35)]
    assert choose_straddle(100.0, TODAY, pairs, 21, 35, 0.03) == (102.0, TODAY + 35)


def test_choose_ties_to_the_lower_strike():
    pairs = _pairs([105.0, 95.0, 100.0, 110.0], [28])
    assert choose_straddle(102.5, TODAY, pairs, 21, 35, 0.05) == (100.0, TODAY + 28)
    assert choose_straddle(102.5, TODAY, list(reversed(pairs)), 21, 35, 0.05) == (100.0, TODAY + 28)


@pytest.mark.parametrize("pairs, spot", [
    ([], 100.0),
    (_pairs([100.0], [14, 20, 36, 60]), 100.0),     # no expiry in the window
    (_pairs([90.0, 110.0], [28]), 100.0),           # no strike in the band
])
def test_choose_none_when_nothing_qualifies(pairs, spot):
    assert choose_straddle(spot, TODAY, pairs, 21, 35, 0.03) is None


def test_choose_window_and_band_edges_qualify():
    assert choose_straddle(100.0, TODAY, [(103.0, TODAY + 21)], 21, 35, 0.03) == (103.0, TODAY + 21)
    assert choose_straddle(100.0, TODAY, [(97.0, TODAY + 35)], 21, 35, 0.03) == (97.0, TODAY + 35)


def test_choose_accepts_a_generator():
    gen = ((k, TODAY + 30) for k in (95.0, 100.0))
    assert choose_straddle(99.0, TODAY, gen, 21, 35, 0.05) == (100.0, TODAY + 30)


def test_choose_none_without_a_spot():
    assert choose_straddle(NAN, TODAY, _pairs([60.0, 100.0], [28]), 21, 35, 0.03) is None


def test_zero_spot_is_not_a_crash():
    assert choose_straddle(0.0, TODAY, _pairs([100.0], [28]), 21, 35, 0.03) is None
    # an unknown spot is no reason to trade: no roll until the spot is valid again
    assert needs_roll(100.0, TODAY + 28, 0.0, TODAY, 21, 0.03) is False
    assert needs_roll(100.0, TODAY + 28, NAN, TODAY, 21, 0.03) is False


def test_listed_pairs_grid():
    pairs = listed_pairs(101.0, TODAY, 5.0, [TODAY - 1, TODAY, TODAY + 7], n_strikes=1)
    assert pairs == [(95.0, TODAY), (100.0, TODAY), (105.0, TODAY),
                     (95.0, TODAY + 7), (100.0, TODAY + 7), (105.0, TODAY + 7)]
    assert all(k > 0 for k, _ in listed_pairs(4.0, TODAY, 5.0, [TODAY + 7], n_strikes=2))


# -- the market builder's slot plan follows the strategy's roll rule -----------------
import numpy as np  # noqa: E402

from feeds.market import SLOT_IDLE_BARS, plan_slots  # noqa: E402


def _plan(spots, choices, **kw):
    """One bar per day from ordinal 740000; ``choices[i]`` is what choose returns."""
    dtn = 740000.0 + np.arange(len(spots)) + 0.5
    return plan_slots(dtn, np.array(spots, dtype=float), lambda i, today: choices[i], 21, 0.03, **kw)


def test_plan_holds_a_straddle_in_one_pair_until_a_roll_is_due():
    k, e = 100.0, 740030
    pairs = _plan([100.0] * 5, [(k, e)] * 5)
    assert len(pairs) == 1
    strikes, expiries = pairs[0]
    assert strikes.tolist() == [k] * 5 and expiries.tolist() == [e] * 5


def test_plan_unwinds_when_a_roll_is_due_and_nothing_qualifies_then_reopens():
    k, e = 100.0, 740030
    # day 2: spot 110 puts strike 100 out of the band, nothing to roll into
    spots = [100.0, 100.0, 110.0] + [110.0] * SLOT_IDLE_BARS + [100.0, 100.0]
    choices = [(k, e), (k, e), None] + [None] * SLOT_IDLE_BARS + [(k, e + 7), (k, e + 7)]
    pairs = _plan(spots, choices)
    reopened = 3 + SLOT_IDLE_BARS
    # released at the unwind: the same pair may carry the next straddle once idle
    assert len(pairs) == 1
    strikes, expiries = pairs[0]
    assert expiries[:reopened].tolist() == [e] * reopened
    assert expiries[reopened:].tolist() == [e + 7] * 2


def test_plan_waits_while_the_strategy_cannot_trade_or_close():
    k, e = 100.0, 740030
    spots = [100.0, 110.0, 110.0, 110.0]
    choices = [(k, e), (111.0, e + 7), (111.0, e + 7), (111.0, e + 7)]
    closed_days = {1}                             # the held legs have no quote on day 1
    pairs = _plan(spots, choices, closable=lambda i, held: i not in closed_days)
    new = [p for p in pairs if p[0][-1] == 111.0][0]
    assert np.isnan(new[0][1]) and new[0][2] == 111.0     # rolled on day 2, not day 1
    shut = {1, 2}                                # not tradable on days 1-2 (e.g. outside RTH)
    pairs = _plan(spots, choices, tradable=lambda i: i not in shut)
    new = [p for p in pairs if p[0][-1] == 111.0][0]
    assert np.isnan(new[0][2]) and new[0][3] == 111.0     # rolled on day 3
