"""bifrost.ledger: the P&L analyzer's arithmetic, on small hand-computed cases."""
import math

import numpy as np
import pytest

from bifrost import ledger

NAN = math.nan


def test_marks_flat_is_zero_and_a_missing_price_keeps_the_last_mark():
    prices = np.array([[10.0, NAN], [11.0, 2.0], [NAN, 3.0], [NAN, NAN]])
    sizes = np.array([[1.0, 0.0], [2.0, 1.0], [2.0, 1.0], [0.0, 1.0]])
    m = ledger.marks(prices, sizes, np.array([1.0, 100.0]))
    assert m.tolist() == [[10.0, 0.0], [22.0, 200.0], [22.0, 300.0], [0.0, 300.0]]


def test_marks_without_any_price_yet_are_zero():
    m = ledger.marks(np.array([[NAN], [5.0]]), np.array([[3.0], [3.0]]), np.array([1.0]))
    assert m.tolist() == [[0.0], [15.0]]


def test_cumulative_pnl_is_mark_minus_cash_paid():
    prices = np.array([[10.0, NAN], [11.0, 2.0], [NAN, 3.0]])
    sizes = np.array([[1.0, 0.0], [2.0, 1.0], [2.0, 1.0]])
    cash = np.array([[10.0, 0.0], [11.0, 200.0], [0.0, 0.0]])   # bought 1 at 10, 1 at 11, 1 lot at 2
    pnl = ledger.cumulative_pnl(prices, sizes, np.array([1.0, 100.0]), cash)
    assert pnl.tolist() == [[0.0, 0.0], [1.0, 0.0], [1.0, 100.0]]


def _one_leg(iv_now=0.31, counted_now=True, counted_then=True):
    now = np.array([0.0, 1.0])                                  # one calendar day
    spot = np.array([100.0, 101.0])
    shares = np.array([[100.0], [100.0]])
    greeks = np.array([[[0.5, 0.02, 10.0, -36.5, 0.30]], [[0.5, 0.02, 10.0, -36.5, iv_now]]])
    counted = np.array([[counted_then], [counted_now]])
    return ledger.attribution(now, spot, shares, greeks, counted)


def test_attribution_uses_the_greeks_of_the_bar_before():
    a = _one_leg()
    assert a["delta"].tolist() == pytest.approx([0.0, 50.0])          # 100 x 0.5 x 1
    assert a["gamma"].tolist() == pytest.approx([0.0, 1.0])           # 1/2 x 100 x 0.02 x 1^2
    assert a["theta"].tolist() == pytest.approx([0.0, -10.0])         # 100 x -36.5 x 1/365
    assert a["vega"].tolist() == pytest.approx([0.0, 10.0])           # 100 x 10 x 0.01


def test_attribution_counts_only_legs_counted_and_held_before():
    a = _one_leg(counted_then=False)
    assert all(float(v[1]) == 0.0 for v in a.values())
    b = _one_leg(counted_now=False)                # not counted now: its iv did not move
    assert b["vega"][1] == 0.0 and b["delta"][1] == pytest.approx(50.0)
    c = _one_leg(iv_now=NAN)
    assert c["vega"][1] == 0.0


def test_attribution_of_bad_greeks_is_not_hidden():
    now, spot = np.array([0.0, 1.0]), np.array([100.0, 101.0])
    greeks = np.full((2, 1, 5), NAN)
    a = ledger.attribution(now, spot, np.array([[100.0], [100.0]]), greeks, np.ones((2, 1), bool))
    assert math.isnan(a["delta"][1])               # a counted leg with NaN greeks shows as NaN


def test_bar_implied_vol_means_the_counted_finite_legs():
    greeks = np.full((3, 2, 5), NAN)
    greeks[0, :, 4] = [0.3, 0.5]
    greeks[1, 0, 4] = 0.4
    counted = np.array([[True, True], [True, True], [False, False]])
    iv = ledger.bar_implied_vol(greeks, counted)
    assert iv[0] == pytest.approx(0.4) and iv[1] == pytest.approx(0.4) and math.isnan(iv[2])


def test_realized_vol_calendar_time_and_skips_bad_spots():
    now = np.array([0.0, 1.0, 2.0])
    rv = ledger.realized_vol(now, np.array([100.0, 110.0, NAN]))
    assert rv == pytest.approx(math.sqrt(math.log(1.1) ** 2 * 365.0))
    assert ledger.realized_vol(now[:1], np.array([100.0])) is None


def test_daily_values_take_each_days_last_bar():
    d = ledger.daily_values(np.array([5.4, 5.6, 6.5]), np.array([1.0, 2.0, 3.0]), 0.0)
    assert d.tolist() == [0.0, 2.0, 3.0]


def test_max_drawdown_from_the_running_peak_start_included():
    assert ledger.max_drawdown(np.array([110.0, 99.0, 105.0, 90.0]), 100.0) == pytest.approx(
        (20.0, 20.0 / 110.0 * 100.0))
    assert ledger.max_drawdown(np.array([95.0]), 100.0) == pytest.approx((5.0, 5.0))
    assert ledger.max_drawdown(np.array([101.0, 102.0]), 100.0) == (0.0, 0.0)


def test_sharpe_annualises_daily_returns_on_start_capital():
    daily = np.array([100.0, 101.0, 100.0, 102.0])
    rets = np.array([1.0, -1.0, 2.0]) / 100.0
    assert ledger.sharpe(daily, 100.0) == pytest.approx(rets.mean() / rets.std(ddof=1) * math.sqrt(252))
    assert ledger.sharpe(np.array([100.0, 101.0]), 100.0) is None
    assert ledger.sharpe(np.array([100.0, 100.0, 100.0]), 100.0) is None
