"""The six state dimensions and the hedge gate, with the reference engine's boundaries."""
import itertools
import math

import pytest

from bifrost import states
from bifrost.states import D, E, L, M, O, S, State

NAN = math.nan
INF = math.inf

# reference defaults
EPS, THR, LIM = 10.0, 25.0, 500.0
WIDE, EXTREME = 0.1, 0.5
LAG = 1000


# -- O: option position ---------------------------------------------------------------
@pytest.mark.parametrize("n_legs, gamma, expected", [
    (0, 0.0, O.NONE),
    (0, 12.0, O.NONE),            # gamma without valid legs is no position
    (2, 0.0, O.NONE),
    (2, NAN, O.NONE),
    (2, INF, O.NONE),
    (2, 1e-9, O.LONG_GAMMA),
    (2, 35.0, O.LONG_GAMMA),
    (1, -1e-9, O.SHORT_GAMMA),
    (2, -35.0, O.SHORT_GAMMA),
])
def test_classify_option(n_legs, gamma, expected):
    assert states.classify_option(n_legs, gamma) is expected


# -- D: delta deviation ---------------------------------------------------------------
@pytest.mark.parametrize("net_delta, expected", [
    (0.0, D.IN_BAND),
    (9.99, D.IN_BAND),
    (10.0, D.IN_BAND),            # |delta| == epsilon_band is D0
    (-10.0, D.IN_BAND),
    (10.0001, D.MINOR),
    (24.999, D.MINOR),
    (-24.999, D.MINOR),
    (25.0, D.HEDGE_NEEDED),       # |delta| == threshold is D2
    (-25.0, D.HEDGE_NEEDED),
    (499.99, D.HEDGE_NEEDED),
    (500.0, D.FORCE_HEDGE),       # >= max_delta_limit is D3
    (-500.0, D.FORCE_HEDGE),
    (12345.0, D.FORCE_HEDGE),
    (NAN, D.INVALID),
    (INF, D.INVALID),
    (-INF, D.INVALID),
    (None, D.INVALID),
])
def test_classify_delta_reference_boundaries(net_delta, expected):
    assert states.classify_delta(net_delta, EPS, THR, LIM) is expected


def test_classify_delta_uses_its_parameters():
    assert states.classify_delta(30.0, 5.0, 40.0, 100.0) is D.MINOR
    assert states.classify_delta(30.0, 5.0, 20.0, 100.0) is D.HEDGE_NEEDED
    assert states.classify_delta(30.0, 5.0, 20.0, 30.0) is D.FORCE_HEDGE
    assert states.classify_delta(30.0, 30.0, 40.0, 100.0) is D.IN_BAND


# -- L: liquidity -----------------------------------------------------------------------
def _quote(mid, pct):
    """bid/ask around ``mid`` with spread% exactly ``pct`` (exact binary numbers)."""
    half = mid * pct / 200.0
    return mid - half, mid + half


@pytest.mark.parametrize("bid, ask, expected", [
    (100.0, 100.0, L.NORMAL),               # locked: spread 0
    (99.99, 100.01, L.NORMAL),              # 0.02 %
    (999.5, 1000.5, L.WIDE),                # 0.1 % exactly: L1
    (99.9, 100.1, L.WIDE),                  # 0.2 %
    (99.75, 100.25, L.EXTREME_WIDE),        # 0.5 % exactly: L2
    (99.0, 101.0, L.EXTREME_WIDE),          # 2 %
    (NAN, 100.0, L.NO_QUOTE),
    (100.0, NAN, L.NO_QUOTE),
    (NAN, NAN, L.NO_QUOTE),
    (None, None, L.NO_QUOTE),
    (0.0, 100.0, L.NO_QUOTE),               # zero bid
    (-1.0, 100.0, L.NO_QUOTE),
    (100.1, 100.0, L.NO_QUOTE),             # crossed
    (INF, INF, L.NO_QUOTE),
])
def test_classify_liquidity(bid, ask, expected):
    assert states.classify_liquidity(bid, ask, WIDE, EXTREME) is expected


def test_spread_boundaries_are_exactly_the_thresholds():
    # these quotes give spread% == 0.1 and == 0.5 to the last bit
    assert states.spread_pct(999.5, 1000.5) == 0.1
    assert states.spread_pct(99.75, 100.25) == 0.5
    assert states.spread_pct(997.5, 1002.5) == 0.5
    assert states.classify_liquidity(997.5, 1002.5, WIDE, EXTREME) is L.EXTREME_WIDE
    just_under = _quote(100.0, 0.0999)
    assert states.classify_liquidity(*just_under, WIDE, EXTREME) is L.NORMAL
    just_under = _quote(100.0, 0.4999)
    assert states.classify_liquidity(*just_under, WIDE, EXTREME) is L.WIDE


@pytest.mark.parametrize("bid, ask, expected", [
    (99.0, 101.0, 2.0),
    (50.0, 50.0, 0.0),
    (9.9, 10.1, 2.0),
])
def test_spread_pct_value(bid, ask, expected):
    assert states.spread_pct(bid, ask) == pytest.approx(expected)


@pytest.mark.parametrize("bid, ask", [(NAN, 1.0), (1.0, NAN), (0.0, 1.0), (2.0, 1.0), (None, 1.0)])
def test_spread_pct_nan_without_a_usable_quote(bid, ask):
    assert math.isnan(states.spread_pct(bid, ask))


# -- S: system --------------------------------------------------------------------------
@pytest.mark.parametrize("risk_halt, greeks_ok, lag, expected", [
    (False, True, 0.0, S.OK),
    (False, True, 999.0, S.OK),
    (False, True, 1000.0, S.OK),            # lag == threshold is S0
    (False, True, 1001.0, S.DATA_LAG),
    (False, True, 1000.5, S.DATA_LAG),
    (False, True, NAN, S.DATA_LAG),
    (False, True, None, S.DATA_LAG),
    (False, False, 0.0, S.GREEKS_BAD),
    (False, False, 5000.0, S.GREEKS_BAD),   # bad greeks named before lag
    (True, True, 0.0, S.RISK_HALT),
    (True, False, 5000.0, S.RISK_HALT),     # risk halt first of all
    (True, False, NAN, S.RISK_HALT),
])
def test_classify_system(risk_halt, greeks_ok, lag, expected):
    assert states.classify_system(risk_halt, greeks_ok, lag, LAG) is expected


# -- E: execution -----------------------------------------------------------------------
@pytest.mark.parametrize("connected, error, working, partial, expected", [
    (True, False, False, False, E.IDLE),
    (True, False, True, False, E.ORDER_WORKING),
    (True, False, True, True, E.PARTIAL_FILL),
    (True, False, False, True, E.PARTIAL_FILL),
    (True, True, True, True, E.BROKER_ERROR),
    (True, True, False, False, E.BROKER_ERROR),
    (False, True, True, True, E.DISCONNECTED),
    (False, False, False, False, E.DISCONNECTED),
])
def test_classify_execution(connected, error, working, partial, expected):
    assert states.classify_execution(connected, error, working, partial) is expected


# -- M: market --------------------------------------------------------------------------
MIN5 = 5 * 60 / (365 * 86400)        # five minutes in years


@pytest.mark.parametrize("returns, age, expected", [
    ([0.0001], 5001.0, M.STALE),             # quote older than stale threshold
    ([0.0001], NAN, M.STALE),
    ([0.0001], 5000.0, M.QUIET),             # == threshold is not stale
    ([], 0.0, M.NORMAL),
    ([0.0, 0.01], 0.0, M.GAP),               # last return >= gap_pct (1 %)
    ([0.0, -0.0101], 0.0, M.GAP),
])
def test_classify_market_stale_gap(returns, age, expected):
    assert states.classify_market(returns, MIN5, 0.35, age, 5000, 1.0) is expected


def _rv(returns):
    return math.sqrt(sum(r * r for r in returns) / MIN5)


def test_classify_market_regimes_against_implied_vol():
    iv = 0.35
    # per-minute move giving realised vol == iv over 5 minutes
    unit = iv * math.sqrt(MIN5 / 5)
    quiet = [unit * 0.1] * 5
    normal = [unit, -unit, unit, -unit, unit]
    trend = [unit] * 5
    choppy = [3 * unit, -3 * unit, 3 * unit, -3 * unit, 3 * unit]
    assert _rv(normal) == pytest.approx(iv)
    assert states.classify_market(quiet, MIN5, iv, 0.0, 5000, 1.0) is M.QUIET
    assert states.classify_market(normal, MIN5, iv, 0.0, 5000, 1.0) is M.NORMAL
    assert states.classify_market(trend, MIN5, iv, 0.0, 5000, 1.0) is M.TREND
    assert states.classify_market(choppy, MIN5, iv, 0.0, 5000, 1.0) is M.CHOPPY_HIGHVOL
    # without a usable implied vol or window there is no regime to judge: NORMAL
    assert states.classify_market(choppy, MIN5, NAN, 0.0, 5000, 1.0) is M.NORMAL
    assert states.classify_market(choppy, 0.0, iv, 0.0, 5000, 1.0) is M.NORMAL


# -- the gate ---------------------------------------------------------------------------
PASS = State(O.LONG_GAMMA, D.HEDGE_NEEDED, M.NORMAL, L.NORMAL, E.IDLE, S.OK)


def _with(**kw):
    base = dict(o=PASS.o, d=PASS.d, m=PASS.m, l=PASS.l, e=PASS.e, s=PASS.s)
    base.update(kw)
    return State(**base)


@pytest.mark.parametrize("o, d, l", list(itertools.product(
    (O.LONG_GAMMA, O.SHORT_GAMMA), (D.HEDGE_NEEDED, D.FORCE_HEDGE), (L.NORMAL, L.WIDE))))
@pytest.mark.parametrize("m", list(M))
def test_gate_passes(o, d, l, m):
    # (O1 or O2) and (D2 or D3) and (L0 or L1) and E0 and S0; M does not matter
    assert states.gate_block(State(o, d, m, l, E.IDLE, S.OK)) is None


@pytest.mark.parametrize("change, reason", [
    (dict(o=O.NONE), "no_option_position"),
    (dict(d=D.IN_BAND), "in_band"),
    (dict(d=D.MINOR), "in_band"),
    (dict(d=D.INVALID), "delta_invalid"),
    (dict(l=L.EXTREME_WIDE), "liquidity_extreme_wide"),
    (dict(l=L.NO_QUOTE), "liquidity_no_quote"),
    (dict(e=E.ORDER_WORKING), "execution_order_working"),
    (dict(e=E.PARTIAL_FILL), "execution_partial_fill"),
    (dict(e=E.DISCONNECTED), "execution_disconnected"),
    (dict(e=E.BROKER_ERROR), "execution_broker_error"),
    (dict(s=S.GREEKS_BAD), "system_greeks_bad"),
    (dict(s=S.DATA_LAG), "system_data_lag"),
    (dict(s=S.RISK_HALT), "system_risk_halt"),
])
def test_gate_blocks_each_failing_dimension(change, reason):
    assert states.gate_block(_with(**change)) == reason


def test_gate_blocks_every_combination_outside_the_gate():
    """Exhaustive: the gate passes exactly on the reference's conjunction."""
    for o, d, l, e, s in itertools.product(O, D, L, E, S):
        st = State(o, d, M.NORMAL, l, e, s)
        ok = (o in (O.LONG_GAMMA, O.SHORT_GAMMA) and d in (D.HEDGE_NEEDED, D.FORCE_HEDGE)
              and l in (L.NORMAL, L.WIDE) and e is E.IDLE and s is S.OK)
        assert (states.gate_block(st) is None) == ok, st.code()


def test_gate_names_the_most_fundamental_cause_first():
    everything_wrong = State(O.NONE, D.INVALID, M.STALE, L.NO_QUOTE, E.DISCONNECTED, S.RISK_HALT)
    assert states.gate_block(everything_wrong) == "delta_invalid"
    assert states.gate_block(_with(s=S.RISK_HALT, o=O.NONE, l=L.NO_QUOTE)) == "system_risk_halt"
    assert states.gate_block(_with(o=O.NONE, d=D.IN_BAND)) == "no_option_position"


def test_state_code():
    st = State(O.SHORT_GAMMA, D.FORCE_HEDGE, M.GAP, L.WIDE, E.BROKER_ERROR, S.DATA_LAG)
    assert st.code() == "O2 D3 M4 L1 E4 S2"


def test_states_have_no_memory():
    """A classification depends only on its inputs: the same inputs after any history
    give the same state (every state clears when its inputs do)."""
    assert states.classify_liquidity(NAN, NAN, WIDE, EXTREME) is L.NO_QUOTE
    assert states.classify_liquidity(99.99, 100.01, WIDE, EXTREME) is L.NORMAL
    assert states.classify_system(True, True, 0.0, LAG) is S.RISK_HALT
    assert states.classify_system(False, True, 0.0, LAG) is S.OK
    assert states.classify_delta(NAN, EPS, THR, LIM) is D.INVALID
    assert states.classify_delta(30.0, EPS, THR, LIM) is D.HEDGE_NEEDED
