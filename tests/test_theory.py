"""The backtest against option-hedging theory on the synthetic GBM market.

Everything that is not theory is switched off (costs, spreads, rate, drift, guards), the
straddle is held without a roll, and the hedge band is small (a hedge nearly every bar)
unless the band itself is under test. On a correct backtest:

* gamma-scalping identity: per path, hedged P&L ~= sum over bars of
  0.5 * Gamma * (dS^2 - iv^2 * S^2 * dt), with Gamma = net_gamma of the previous bar and
  dt in calendar years (ACT/365, nights and weekends included);
* Ahmad & Wilmott: with drift = rate = 0, E[P&L] = Straddle(S0, var = s_r^2 t + s_i^2 (T - t))
  - Straddle(S0, var = s_i^2 T) exactly, for any hedge rule (the stock is a martingale);
  zero when realised vol == implied vol, positive above, negative below;
* band hedging: halving the band H ~quadruples the hedges and ~doubles the shares traded.

Checked by simulating mistakes in a scratch script (monkeypatching, no project edit):
option marks on trading-time tau (252 x 6.5 h) or on calendar days / 252 fail the
identity residual (20-70% of theta) and the zero-mean and Ahmad-Wilmott tests; a GBM that
skips nights, or runs on a 252 x 6.5 h trading clock, fails the zero-mean (up to -130
s.e.), Ahmad-Wilmott and identity tests; a GBM that skips weekends fails the zero-mean
test over the weekend horizon (-3.8 s.e.); hedging at epsilon_band or at 2H instead of
H fails the band test.

Seeds are fixed: the file is deterministic and runs in ~15 s on one core.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from theory_harness import CONTRACTS, MONDAY, WEDNESDAY, run_path


def run_paths(n: int, seed0: int, sigma: float, iv: float, **kw) -> dict:
    rows = [run_path(seed0 + i, sigma, iv, **kw) for i in range(n)]
    out = {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0]}
    for r in rows:                        # the theory set-up itself: no cost, no roll
        assert r["costs"] == 0.0
        assert r["contracts_traded"] == 2 * CONTRACTS
    return out


def mean_se(x: np.ndarray) -> tuple[float, float]:
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))


N_FAIR = 24          # paths per horizon at realised == implied vol
N_MISMATCH = 16      # paths per realised != implied case


@pytest.fixture(scope="module", params=[MONDAY, WEDNESDAY], ids=["mon-fri", "over-weekend"])
def fair(request):
    """Realised vol == implied vol == 0.35, 5 business days of 5-minute bars."""
    return run_paths(N_FAIR, 100, 0.35, 0.35, start=request.param)


# -- 1. the gamma-scalping identity -------------------------------------------------------
def test_gamma_scalping_identity_per_path(fair):
    pnl, ident = fair["pnl"], fair["identity"]
    assert np.std(ident) > 100.0                           # a real spread to correlate
    assert np.corrcoef(pnl, ident)[0, 1] > 0.99
    slope, _ = np.polyfit(ident, pnl, 1)
    assert 0.9 < slope < 1.1                               # same dollars, not just correlated


def test_option_marks_decay_on_the_calendar_clock(fair):
    """P&L minus identity has no drift: theta is paid over the calendar time the bars'
    datetimes give (ACT/365, nights and weekends). Trading-time tau, or a 252-day
    year, leaves a residual of 20-70% of the theta."""
    resid = fair["pnl"] - fair["identity"]
    theta = fair["theta"].mean()
    assert theta > 500.0
    assert abs(resid.mean()) < 0.05 * theta


# -- 2. expected P&L (Ahmad & Wilmott) ----------------------------------------------------
def test_fair_vol_mean_pnl_is_zero(fair):
    mean, se = mean_se(fair["pnl"])
    assert np.allclose(fair["aw"], 0.0)
    assert se > 0
    assert abs(mean) < 3.0 * se, f"mean {mean:.1f} +- {se:.1f}"
    # meaningful: the MC error is small against the option decay a clock error shifts
    assert 3.0 * se < 0.6 * fair["theta"].mean()


@pytest.mark.parametrize("sigma,iv,sign", [(0.5, 0.3, +1), (0.3, 0.5, -1)],
                         ids=["realised-above", "realised-below"])
def test_vol_mismatch_sign_and_ahmad_wilmott(sigma, iv, sign):
    paths = run_paths(N_MISMATCH, 200, sigma, iv)
    mean, se = mean_se(paths["pnl"])
    aw = float(paths["aw"].mean())
    assert sign * aw > 5.0 * se                             # the effect is well resolved
    assert sign * mean > 3.0 * se                           # right sign, clearly
    assert abs(mean - aw) < 3.5 * se, f"mean {mean:.1f} +- {se:.1f} vs A-W {aw:.1f}"
    # the identity carries the sign path by path too
    assert np.corrcoef(paths["pnl"], paths["identity"])[0, 1] > 0.98


# -- 3. band hedging ------------------------------------------------------------------------
def test_halving_the_band_quadruples_hedges_and_doubles_shares():
    """One session of 1-minute bars (no overnight gap, which would force a hedge every
    morning whatever H). With H well above the per-bar delta move (~3.7 shares here):
    hedges ~ QV / H^2 and shares ~ QV / H, QV = E[sum (Gamma dS)^2]; the band's hedging
    error std ~ H * sqrt(E[sum sigma^2 S^2 dt] / 6). Discrete bars overshoot the band:
    H_eff = H + 0.5826 * per-bar move (Broadie-Glasserman-Kou) makes the counts ~3.4x."""
    n, h = 24, 24.0
    wide = run_paths(n, 300, 0.35, 0.35, days=1, bar_minutes=1, band=h)
    narrow = run_paths(n, 300, 0.35, 0.35, days=1, bar_minutes=1, band=h / 2)
    hedges = narrow["band_hedges"].sum() / wide["band_hedges"].sum()
    shares = narrow["band_shares"].sum() / wide["band_shares"].sum()
    assert wide["band_hedges"].sum() >= 5 * n                # enough hedges to count
    assert 2.5 < hedges < 5.0, hedges                        # theory 4 (3.4 with discrete bars)
    assert 1.4 < shares < 2.6, shares                        # theory 2 (1.85)
    for band, paths in ((h, wide), (h / 2, narrow)):
        qv = paths["delta_qv"].mean()
        h_eff = band + 0.5826 * math.sqrt(qv / paths["bars"].mean())
        # absolute levels: the band is H (not epsilon_band, not 2H)
        assert 0.7 < paths["band_hedges"].mean() / (qv / h_eff ** 2) < 1.4
        assert 0.7 < paths["band_shares"].mean() / (qv / h_eff) < 1.4
        band_error = np.std(paths["pnl"] - paths["identity"], ddof=1)
        assert 0.6 < band_error / (band * math.sqrt(paths["s2dt"].mean() / 6.0)) < 1.6
    # and halving the band halves its hedging error
    assert 0.3 < (np.std(narrow["pnl"] - narrow["identity"]) / np.std(wide["pnl"] - wide["identity"])) < 0.75
