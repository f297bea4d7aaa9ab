"""GammaScalping: delta-hedge a long near-ATM straddle with the underlying.

A plain Backtrader strategy: drop it into any Cerebro whose first data is the
underlying (a feed with close, and bid/ask lines if it has them) and whose other datas
are ``feeds.arrays.OptionData``-like option feeds (lines strike, expiry as a date
ordinal, right +1/-1, bid, ask, close = mid; greeks lines optional). Time comes only
from the data. Each bar: find the legs that count (DTE window, ATM band), net delta and
gamma in shares, classify the state (bifrost.states), and when the gate passes ask the
sizer and the guards for the order that brings net delta to zero.
"""
from __future__ import annotations

import logging
import math
from collections import deque
from typing import NamedTuple

import backtrader as bt

from analyzers.guards import GuardAnalyzer
from bifrost import states, structure
from brokers import position_reader
from bifrost.guards import outside_trading_hours
from bifrost.pricing import bs_greeks, implied_vol
from bifrost.states import D, State
from feeds.lines import current
from sizers.hedge import HedgeSizer

log = logging.getLogger("bifrost.strategy")

def data_seconds(num: float) -> float:
    """Seconds on the data's clock from a Backtrader date number, rounded to the
    millisecond: day fractions carry float noise that would misfire a 60 s cooldown."""
    return round(num * 86400000.0) / 1000.0


class _LegLines(NamedTuple):
    strike: object
    expiry: object
    right: object
    delta: object
    gamma: object
    vega: object
    theta: object
    iv: object
    bid: object
    ask: object
    close: object


_LIVE_OK = (bt.feed.DataBase.LIVE,)
# DELAYED = history (a backfill): never an order on it, like a broken connection
_LIVE_DOWN = (bt.feed.DataBase.CONNBROKEN, bt.feed.DataBase.DISCONNECTED, bt.feed.DataBase.DELAYED)


class GammaScalping(bt.Strategy):
    params = (
        # which legs count (gates.strategy.structure)
        ("min_dte", 21), ("max_dte", 35), ("atm_band_pct", 0.03),
        # structure management: buy and roll the straddle (backtest) or only hedge
        ("manage_structure", True), ("contracts", 10),
        # delta state (gates.state.delta)
        ("epsilon_band", 10.0), ("threshold_hedge_shares", 25.0), ("max_delta_limit", 500.0),
        # market, liquidity, system, execution states
        ("vol_window_min", 5), ("stale_ts_threshold_ms", 5000), ("gap_pct", 1.0),
        ("wide_spread_pct", 0.1), ("extreme_spread_pct", 0.5),
        ("data_lag_threshold_ms", 1000), ("error_retry_seconds", 60.0),
        # pricing when a feed brings no greeks
        ("risk_free_rate", 0.05), ("volatility", 0.35),
        # guards (bifrost.guards.GuardLimits); None = the reference defaults
        ("guard_limits", None),
        ("order_ref", "bifrost-gamma"),
    )

    def __init__(self):
        self.stock = self.datas[0]
        self.options = [d for d in self.datas[1:] if hasattr(d.lines, "strike")]
        self._addanalyzer(GuardAnalyzer, _name="guards", limits=self.p.guard_limits)
        self.guards = self.analyzers.getbyname("guards")
        self.hedge_need = 0.0
        self._state: State | None = None
        self._state_inputs = None     # this bar's inputs of M, L, E, S (see ``state``)
        self._logged = None           # the state last logged (live logs every change)
        self.net_delta = math.nan
        self.net_gamma = 0.0
        self.leg_greeks = {}          # data -> (delta, gamma, vega, theta, iv) this bar
        self._working = {}             # live orders of ours: ref -> order
        self._partial = False
        self._broker_error_s = None
        self._down = set()            # feeds reporting CONNBROKEN/DISCONNECTED
        self._held = {}               # option data -> contract it held when filled
        self._returns = deque()       # (seconds, log return) inside the vol window
        self._prev_spot = None
        self._first_bar = True

    def start(self):
        # line buffers looked up once: attribute access on a feed is slow per bar
        self._leg_lines = {d: _LegLines(*(getattr(d.lines, n) for n in _LegLines._fields))
                           for d in self.options}
        self._positions = position_reader(self.broker)
        lines = self.stock.lines
        self._stock_dt, self._stock_close = lines.datetime, lines.close
        # the quote the hedge trades against; a feed without quote lines: its close
        self._stock_bidask = (lines.bid, lines.ask) if hasattr(lines, "bid") else (lines.close, lines.close)
        self._stock_age = lines.age_ms if hasattr(lines, "age_ms") else None
        # live feeds mark backfilled history bars (1): the state is E3 on them, no order
        self._stock_backfill = lines.backfill if hasattr(lines, "backfill") else None
        self._window_years = self.p.vol_window_min * 60.0 / (365.0 * 86400.0)
        if not isinstance(self.getsizer(), HedgeSizer):
            # the default fixed-stake sizer would hedge 1 share: use ours with defaults
            self.setsizer(HedgeSizer())

    def _restore_from_broker(self, now_num: float) -> None:
        """Live: today's hedges by this engine (matched by orderRef) restore the guards."""
        history = getattr(self.broker, "hedge_history", None)
        if history is None:
            return
        symbol = getattr(getattr(self.stock, "contract", None), "symbol", self.stock._name)
        fills = history(symbol)
        self.guards.restore([(data_seconds(t), price) for t, price, _ in fills], int(now_num))
        if fills:
            log.warning("restored %d hedge(s) from today's executions; last at %s",
                        len(fills), bt.num2date(fills[-1][0]))

    def prenext(self):
        # option feeds may start later or end earlier than the stock: run anyway
        self.next()

    # -- notifications ---------------------------------------------------------------
    def notify_data(self, data, status, *args, **kwargs):
        if status in _LIVE_DOWN:
            self._down.add(data)
        elif status in _LIVE_OK:
            self._down.discard(data)

    def notify_store(self, msg, *args, **kwargs):
        if msg == "SLOT_ASSIGNED":
            # live (stores.slots): a flat option slot now carries another contract; the
            # contract it held before no longer binds it
            self._held.pop(args[0], None)

    def notify_order(self, order):
        if log.isEnabledFor(logging.DEBUG):
            log.debug("order %s %s %s size %s", order.ref, order.getstatusname(),
                      order.data._name, order.executed.size)
        if order.status in (order.Submitted, order.Accepted):
            return
        if order.status == order.Partial:
            self._partial = True
            return
        self._working.pop(order.ref, None)
        self._partial = False
        if order.status in (order.Rejected, order.Margin):
            self._broker_error_s = data_seconds(self.stock.datetime[0])
            log.warning("order %s %s on %s", order.ref, order.getstatusname(), order.data._name)
        # membership by identity: ``==`` between Backtrader datas compares their prices
        if order.status == order.Completed and order.data in self._leg_lines:
            d = order.data
            if self.getposition(d).size:
                self._held[d] = (d.strike[0], d.expiry[0], d.right[0])
            else:
                self._held.pop(d, None)

    # -- the decision ----------------------------------------------------------------
    def next(self):
        stock = self.stock
        close = self._stock_close
        if not close.lencount:                       # len(stock) == 0
            return
        # the hot path reads lines directly: line.array[line._idx] is line[0] (feeds.lines)
        now_num = current(self._stock_dt)
        now_s = data_seconds(now_num)
        today = int(now_num)
        spot = close.array[close._idx]
        if self._first_bar:
            self._first_bar = False
            self._restore_from_broker(now_num)
        guards = self.guards
        if today != guards.day or guards.day_start_value is None:
            guards.observe(now_num)                  # a new trading day (or no baseline yet)
        self._track_returns(now_s, spot)

        positions = self._positions
        held = [d for d in self.options if positions(d).size]
        p = self.p
        planned = None
        backfill = self._stock_backfill
        history = backfill is not None and backfill.array[backfill._idx] > 0
        if p.manage_structure and not self._working and not history:
            if held:                                 # roll when DTE or band says so
                ln = self._leg_lines[held[0]]
                i = ln.close._idx
                expiry = ln.expiry.array[i]
                due = expiry != expiry or structure.needs_roll(ln.strike.array[i], int(expiry), spot,
                                                               today, p.min_dte, p.atm_band_pct)
            else:
                due = True                           # nothing held: open the straddle
            if due:
                planned = self._manage_structure(spot, today, held)
        if planned is not None:
            # the straddle was just opened, rolled or unwound: hedge the position those
            # orders leave (they fill at this bar's quotes), not the one they replace
            legs, working = list(planned), False
        else:
            legs, working = held, bool(self._working)

        net_delta, net_gamma, n_legs, greeks_ok, iv_sum = self._net_greeks(spot, now_num, today,
                                                                           legs, planned)
        self.net_delta, self.net_gamma = net_delta, net_gamma
        d_state = states.classify_delta(net_delta, p.epsilon_band, p.threshold_hedge_shares,
                                        p.max_delta_limit)
        # M, L, E and S are classified only when asked for (``state``): from values taken
        # now, so the answer is this bar's whenever it is asked
        error = self._broker_error_s is not None and now_s - self._broker_error_s < p.error_retry_seconds
        bid_line, ask_line = self._stock_bidask
        bid, ask = bid_line.array[bid_line._idx], ask_line.array[ask_line._idx]
        age_line = self._stock_age                   # live feeds say how old the quote is
        self._state_inputs = (n_legs, net_gamma, d_state, tuple(self._returns),
                              iv_sum / n_legs if n_legs else p.volatility,
                              0.0 if age_line is None else age_line.array[age_line._idx],
                              bid, ask, not self._down and not history, error, working,
                              self._partial, guards.day_pnl(), greeks_ok)
        self._state = None
        if log.isEnabledFor(logging.INFO):
            self._log_state_change(stock, net_delta, net_gamma)
        if d_state is not D.HEDGE_NEEDED and d_state is not D.FORCE_HEDGE and d_state is not D.INVALID:
            return                                   # nothing to do: no refusal to record
        st = self.state
        code = st.code()
        now = stock.datetime.datetime(0)
        reason = states.gate_block(st)
        if reason is not None:
            guards.record_block(now, reason, code, net_delta)
            return
        self.hedge_need = -net_delta
        isbuy = self.hedge_need > 0
        qty = self.getsizing(stock, isbuy=isbuy)
        if qty <= 0:
            guards.record_block(now, self.getsizer().last_reason or "below_min_hedge", code, net_delta)
            return
        size = qty if isbuy else -qty
        position = positions(stock).size
        force = st.d is D.FORCE_HEDGE
        reason = guards.refusal(now, now_s, spot, size, position, net_delta,
                                states.spread_pct(bid, ask), force)
        if reason is not None:
            guards.record_block(now, reason, code, net_delta)
            return
        order = (self.buy if isbuy else self.sell)(data=stock, size=qty)
        if order is not None:
            order.addinfo(orderRef=self.p.order_ref, purpose="hedge")
            self._working[order.ref] = order
        guards.hedge_sent(order, now, now_s, spot, size, net_delta, code, force)
        log.info("%s hedge %+d shares at %.2f: net delta %.1f, %s%s", now, size, spot,
                 net_delta, code, " (force)" if force else "")

    # -- the state -----------------------------------------------------------------
    @property
    def state(self) -> State | None:
        """This bar's (O, D, M, L, E, S), None before the first bar. Classified when
        first asked for (the decision asks only when a hedge is due) from the inputs
        taken at the bar, with the pure functions of ``bifrost.states``."""
        if self._state is None and self._state_inputs is not None:
            (n_legs, net_gamma, d_state, returns, iv, age_ms, bid, ask, connected, error,
             working, partial, day_pnl, greeks_ok) = self._state_inputs
            p = self.p
            age_ms = age_ms if age_ms == age_ms else 0.0    # no age reported: as fresh as the bar
            halt = self.guards.risk_halt(day_pnl)
            self._state = State(
                o=states.classify_option(n_legs, net_gamma),
                d=d_state,
                m=states.classify_market([r for _, r in returns], self._window_years, iv,
                                         age_ms, p.stale_ts_threshold_ms, p.gap_pct),
                l=states.classify_liquidity(bid, ask, p.wide_spread_pct, p.extreme_spread_pct),
                e=states.classify_execution(connected, error, working, partial),
                s=states.classify_system(halt, greeks_ok, age_ms, p.data_lag_threshold_ms),
            )
        return self._state

    def _log_state_change(self, stock, net_delta: float, net_gamma: float) -> None:
        st, prev = self.state, self._logged
        if prev is None or (st.o, st.d, st.l, st.e, st.s) != (prev.o, prev.d, prev.l, prev.e, prev.s):
            log.info("%s state %s net delta %.1f gamma %.2f", stock.datetime.datetime(0),
                     st.code(), net_delta, net_gamma)     # M alone changes too often to log
        self._logged = st

    # -- pieces ----------------------------------------------------------------------
    def _track_returns(self, now_s: float, spot: float) -> None:
        prev = self._prev_spot
        self._prev_spot = spot
        if prev is None or not (prev > 0 and spot > 0):
            return
        ret = self._returns
        ret.append((now_s, math.log(spot / prev)))
        horizon = now_s - self.p.vol_window_min * 60.0
        while ret and ret[0][0] <= horizon:
            ret.popleft()

    def _model_greeks(self, d, spot: float, now_num: float):
        """(delta, gamma, vega, theta, iv) per share for a feed without greeks:
        Black-Scholes on the mid with the implied vol solved from it."""
        ln = self._leg_lines[d]
        right = int(current(ln.right))
        strike = current(ln.strike)
        tau = (current(ln.expiry) + 16.0 / 24.0 - now_num) / 365.0
        bid, ask = current(ln.bid), current(ln.ask)
        mid = 0.5 * (bid + ask) if bid > 0 and ask >= bid else current(ln.close)
        vol = implied_vol(right, mid, spot, strike, tau, self.p.risk_free_rate)
        if vol != vol and self.p.volatility:
            vol = self.p.volatility
        g = bs_greeks(right, spot, strike, tau, vol, self.p.risk_free_rate)
        return g[0], g[1], g[2], g[3], vol

    def _net_greeks(self, spot: float, now_num: float, today: int, held: list,
                    planned: dict | None = None):
        # after an unwind (planned == {}) the stock is being closed too
        net_delta = 0.0 if planned == {} else float(self._positions(self.stock).size)
        net_gamma = 0.0
        n_legs = 0
        ok = True
        iv_sum = 0.0
        p = self.p
        self.leg_greeks = lg = {}
        positions, leg_lines, held_contracts = self._positions, self._leg_lines, self._held
        isfinite = math.isfinite
        min_dte, max_dte, band = p.min_dte, p.max_dte, p.atm_band_pct
        for d in held:
            pos = planned[d] if planned else positions(d).size
            ln = leg_lines[d]
            i = ln.close._idx                         # a feed's lines share one index
            if not ln.close.lencount:                 # len(d) == 0: not started yet
                continue
            strike, expiry = ln.strike.array[i], ln.expiry.array[i]
            if strike != strike or expiry != expiry:
                ok = False                            # held, contract unknown (a live slot
                continue                              # awaiting its first quote): fail closed
            contract = held_contracts.get(d) if held_contracts and not planned else None
            if contract is not None and contract != (strike, expiry, ln.right.array[i]):
                ok = False                            # the feed's contract changed under us
                log.error("%s: contract changed while holding %s", d._name, pos)
                continue
            if not structure.leg_counts(strike, int(expiry), spot, today, min_dte, max_dte, band):
                continue
            delta = ln.delta.array[i]
            if delta == delta:                        # not NaN: the feed brings greeks
                g = (delta, ln.gamma.array[i], ln.vega.array[i], ln.theta.array[i], ln.iv.array[i])
            else:
                g = self._model_greeks(d, spot, now_num)
            lg[d] = g
            delta, gamma, iv = g[0], g[1], g[4]
            if not (isfinite(delta) and isfinite(gamma)):
                ok = False
                continue
            shares = pos * d.p.multiplier           # read each bar: a live slot may change contract
            net_delta += shares * delta
            net_gamma += shares * gamma
            if isfinite(iv):
                iv_sum += iv
            n_legs += 1
        if not ok:
            net_delta = math.nan
        return net_delta, net_gamma, n_legs, ok, iv_sum

    def _quoted(self, d) -> bool:
        """A two-sided quote on a known contract (NaN compares False throughout)."""
        ln = self._leg_lines[d]
        if not ln.close.lencount:
            return False
        strike, expiry = current(ln.strike), current(ln.expiry)
        return current(ln.bid) >= 0 and current(ln.ask) > 0 and strike == strike and expiry == expiry

    def _manage_structure(self, spot: float, today: int, held: list) -> dict | None:
        """Open the straddle when none is held, or roll ``held`` (next() found it due:
        DTE below the window, strike out of the band, or an unknown contract); with
        nothing to roll into, unwind it. Returns the option positions the orders sent
        this bar leave ({data: contracts}; {} after an unwind, which also closes the
        stock), or None when it sent nothing."""
        p = self.p
        if not (spot > 0):
            return None                               # no valid spot: no structure decision
        if held:
            if not all(self._quoted(d) for d in held):
                return None                           # no quote to close at: wait, never blind
        if self.guards.limits.trading_hours_only and outside_trading_hours(self.stock.datetime.datetime(0)):
            return None
        legs = {}
        held_set = set(held)                          # identity, not ``==`` (see notify_order)
        for d in self.options:
            if d not in held_set and self._quoted(d):
                legs.setdefault((d.strike[0], int(d.expiry[0])), {})[int(d.right[0])] = d
        pairs = [k for k, v in legs.items() if 1 in v and -1 in v]
        choice = structure.choose_straddle(spot, today, pairs, p.min_dte, p.max_dte, p.atm_band_pct)
        if choice is None:
            if not held:
                return None
            # a roll is due and nothing qualifies to roll into: unwind (the legs and their
            # hedge) rather than hold a straddle the window no longer admits, unhedged
            for d in held:
                self._send(self.close(data=d), "unwind")
            if self._positions(self.stock).size:
                self._send(self.close(data=self.stock), "unwind")
            log.warning("%s no straddle inside the DTE window and ATM band: unwound %s",
                        self.stock.datetime.datetime(0), ", ".join(d._name for d in held))
            return {}
        for d in held:
            self._send(self.close(data=d), "roll_close")
        for right in (1, -1):
            self._send(self.buy(data=legs[choice][right], size=p.contracts), "open")
        log.info("%s straddle %s %s x%d", self.stock.datetime.datetime(0), choice[0],
                 choice[1], p.contracts)
        return {legs[choice][1]: p.contracts, legs[choice][-1]: p.contracts}

    def _send(self, order, purpose: str) -> None:
        if order is not None:
            order.addinfo(orderRef=self.p.order_ref, purpose=purpose)
            self._working[order.ref] = order
