"""Black-Scholes prices, greeks and implied vol."""
import itertools
import math

import numpy as np
import pytest

from bifrost.pricing import CALL, PUT, bs_arrays, bs_greeks, bs_price, implied_vol

NAN = math.nan
STRIKES = (70.0, 85.0, 95.0, 100.0, 105.0, 115.0, 140.0)
VOLS = (0.1, 0.35, 0.8, 1.5)
TAUS = (5 / 365, 28 / 365, 0.5, 2.0)
RATES = (0.0, 0.05)


@pytest.mark.parametrize("strike, vol, tau, rate", list(itertools.product(STRIKES, VOLS, TAUS, RATES)))
def test_put_call_parity(strike, vol, tau, rate):
    c = bs_price(CALL, 100.0, strike, tau, vol, rate)
    p = bs_price(PUT, 100.0, strike, tau, vol, rate)
    assert c - p == pytest.approx(100.0 - strike * math.exp(-rate * tau), abs=1e-9)
    dc, gc, vc, tc = bs_greeks(CALL, 100.0, strike, tau, vol, rate)
    dp, gp, vp, tp = bs_greeks(PUT, 100.0, strike, tau, vol, rate)
    assert dc - dp == pytest.approx(1.0, abs=1e-12)
    assert gc == pytest.approx(gp, rel=1e-12) and vc == pytest.approx(vp, rel=1e-12)
    # d(C - P)/dt = -r K e^{-r tau} per year of calendar time
    assert tc - tp == pytest.approx(-rate * strike * math.exp(-rate * tau), abs=1e-9)


def test_known_value():
    # textbook: S=K=100, T=1, r=5 %, vol=20 %: call 10.4506, put 5.5735
    assert bs_price(CALL, 100, 100, 1.0, 0.2, 0.05) == pytest.approx(10.450583572185565, abs=1e-9)
    assert bs_price(PUT, 100, 100, 1.0, 0.2, 0.05) == pytest.approx(5.573526022256971, abs=1e-9)
    d, g, v, t = bs_greeks(CALL, 100, 100, 1.0, 0.2, 0.05)
    assert d == pytest.approx(0.6368306511756191, abs=1e-12)
    assert g == pytest.approx(0.018762017345846895, abs=1e-12)
    assert v == pytest.approx(37.52403469169379, abs=1e-9)


@pytest.mark.parametrize("right, strike, vol, tau", list(itertools.product(
    (CALL, PUT), (80.0, 100.0, 120.0), (0.2, 0.6), (10 / 365, 0.5))))
def test_greeks_match_finite_differences(right, strike, vol, tau):
    s, r = 100.0, 0.05
    delta, gamma, vega, theta = bs_greeks(right, s, strike, tau, vol, r)
    hs, hv, ht = 1e-3, 1e-5, 1e-6

    def px(s_=s, v_=vol, t_=tau):
        return bs_price(right, s_, strike, t_, v_, r)

    fd_delta = (px(s + hs) - px(s - hs)) / (2 * hs)
    fd_gamma = (px(s + 0.05) - 2 * px() + px(s - 0.05)) / 0.05 ** 2
    fd_vega = (px(v_=vol + hv) - px(v_=vol - hv)) / (2 * hv)
    fd_theta = -(px(t_=tau + ht) - px(t_=tau - ht)) / (2 * ht)      # per year, time passing
    assert delta == pytest.approx(fd_delta, abs=1e-6)
    assert gamma == pytest.approx(fd_gamma, rel=1e-3, abs=1e-6)
    assert vega == pytest.approx(fd_vega, rel=1e-5, abs=1e-6)
    assert theta == pytest.approx(fd_theta, rel=1e-4, abs=1e-4)


def test_greek_signs_and_ranges():
    for strike, vol, tau in itertools.product(STRIKES, VOLS, TAUS):
        dc, g, v, t = bs_greeks(CALL, 100.0, strike, tau, vol, 0.05)
        dp = bs_greeks(PUT, 100.0, strike, tau, vol, 0.05)[0]
        assert 0.0 <= dc <= 1.0 and -1.0 <= dp <= 0.0
        assert g >= 0.0 and v >= 0.0 and t <= 0.0


# identifiable prices: enough vega that the price pins the vol
ROUND_TRIP = [(right, k, vol, tau)
              for right, k, vol, tau in itertools.product(
                  (CALL, PUT), (75.0, 90.0, 97.5, 100.0, 102.5, 110.0, 130.0),
                  (0.05, 0.15, 0.35, 0.7, 1.2, 2.5), (7 / 365, 30 / 365, 0.25, 1.0))
              if bs_greeks(right, 100.0, k, tau, vol, 0.05)[2] >= 0.5]


def test_round_trip_grid_is_wide():
    assert len(ROUND_TRIP) > 250
    assert {k for _, k, _, _ in ROUND_TRIP} >= {75.0, 100.0, 130.0}
    assert {v for _, _, v, _ in ROUND_TRIP} >= {0.05, 2.5}


@pytest.mark.parametrize("right, strike, vol, tau", ROUND_TRIP)
def test_implied_vol_round_trip(right, strike, vol, tau):
    price = bs_price(right, 100.0, strike, tau, vol, 0.05)
    iv = implied_vol(right, price, 100.0, strike, tau, 0.05)
    assert iv == pytest.approx(vol, abs=1e-6)


@pytest.mark.parametrize("right, price, spot, strike, tau", [
    (CALL, 0.0, 100.0, 100.0, 0.1),           # zero price
    (CALL, -1.0, 100.0, 100.0, 0.1),
    (CALL, NAN, 100.0, 100.0, 0.1),
    (CALL, 100.0, 100.0, 100.0, 0.1),          # a call worth the stock
    (CALL, 150.0, 100.0, 100.0, 0.1),
    (PUT, 100.0, 100.0, 100.0, 0.1),           # a put worth the strike
    (CALL, 19.0, 100.0, 80.0, 0.1),            # below intrinsic
    (PUT, 9.0, 100.0, 110.0, 0.1),
    (CALL, 5.0, 100.0, 100.0, 0.0),            # expired
    (CALL, 5.0, 100.0, 100.0, -0.1),
    (CALL, 5.0, 0.0, 100.0, 0.1),              # no spot
    (CALL, 5.0, NAN, 100.0, 0.1),
    (CALL, 5.0, 100.0, 0.0, 0.1),              # no strike
])
def test_implied_vol_nan_on_impossible_prices(right, price, spot, strike, tau):
    assert math.isnan(implied_vol(right, price, spot, strike, tau, 0.05))


@pytest.mark.parametrize("args", [
    (CALL, 100.0, 100.0, 0.0, 0.3),            # expired
    (CALL, 100.0, 100.0, -1.0, 0.3),
    (PUT, 100.0, 100.0, 0.1, 0.0),             # no vol
    (PUT, 100.0, 100.0, 0.1, NAN),
    (CALL, 0.0, 100.0, 0.1, 0.3),              # no spot
    (CALL, NAN, 100.0, 0.1, 0.3),
    (CALL, 100.0, 0.0, 0.1, 0.3),              # no strike
])
def test_greeks_nan_when_unpriceable(args):
    assert all(math.isnan(x) for x in bs_greeks(*args, 0.05))


@pytest.mark.parametrize("right, spot, strike, expected", [
    (CALL, 110.0, 100.0, 10.0), (CALL, 90.0, 100.0, 0.0),
    (PUT, 90.0, 100.0, 10.0), (PUT, 110.0, 100.0, 0.0),
])
def test_price_at_expiry_is_intrinsic(right, spot, strike, expected):
    assert bs_price(right, spot, strike, 0.0, 0.3, 0.05) == expected
    assert float(bs_arrays(right, spot, strike, 0.0, 0.3, 0.05)[0]) == expected


def test_bs_arrays_equals_the_scalar_functions():
    grid = list(itertools.product((CALL, PUT), STRIKES, VOLS, TAUS))
    right = np.array([g[0] for g in grid], dtype=float)
    strike = np.array([g[1] for g in grid])
    vol = np.array([g[2] for g in grid])
    tau = np.array([g[3] for g in grid])
    spot = np.linspace(90.0, 110.0, len(grid))
    price, delta, gamma, vega, theta = bs_arrays(right, spot, strike, tau, vol, 0.05)
    for i, (r, k, v, t) in enumerate(grid):
        assert price[i] == pytest.approx(bs_price(int(r), spot[i], k, t, v, 0.05), rel=1e-10, abs=1e-10)
        exp = bs_greeks(int(r), spot[i], k, t, v, 0.05)
        got = (delta[i], gamma[i], vega[i], theta[i])
        assert got == pytest.approx(exp, rel=1e-9, abs=1e-11)


def test_bs_arrays_nan_greeks_where_unpriceable():
    right = np.array([1.0, -1.0, 1.0, 1.0])
    spot = np.array([100.0, 100.0, 0.0, 100.0])
    tau = np.array([0.0, 0.1, 0.1, 0.1])
    vol = np.array([0.3, 0.0, 0.3, 0.3])
    strike = np.array([100.0, 100.0, 100.0, 100.0])
    price, delta, gamma, vega, theta = bs_arrays(right, spot, strike, tau, vol, 0.05)
    for arr in (delta, gamma, vega, theta):
        assert np.isnan(arr[:3]).all() and np.isfinite(arr[3])
    assert price[3] == pytest.approx(bs_price(CALL, 100.0, 100.0, 0.1, 0.3, 0.05))


def test_bs_arrays_matches_bs_price_at_zero_vol():
    scalar = bs_price(CALL, 100.0, 100.0, 1.0, 0.0, 0.05)
    assert scalar == pytest.approx(100.0 - 100.0 * math.exp(-0.05))
    assert float(bs_arrays(CALL, 100.0, 100.0, 1.0, 0.0, 0.05)[0]) == pytest.approx(scalar)
