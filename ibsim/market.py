"""Market state from the project's synthetic market: clock, contracts, quotes, history.

The stock's bars are ``feeds.synthetic.synthetic_market(cfg)`` bit for bit (close, bid,
ask per end-stamped bar). Any listed option is priced by Black-Scholes at
``market.synthetic.implied_vol`` on the current bar's close and time, and quoted with
the config's spread model (the backtest's formulas), so sim and backtest agree.
Times are naive America/New_York datetimes ("market time").
"""
from __future__ import annotations

import bisect
import datetime as dt
import math
import re
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from bifrost.pricing import SECONDS_PER_YEAR, bs_arrays, bs_greeks, bs_price, implied_vol
from feeds.market import bt_datetime
from feeds.synthetic import synthetic_market

NY = ZoneInfo("America/New_York")
TZ_NAME = "US/Eastern"
OPT_CONID_BASE = 1_000_000_000
_EPOCH_ORD = dt.date(2020, 1, 1).toordinal()
_OCC = re.compile(r"^(\w+)\s*(\d{6})([CP])(\d{8})$")


def epoch(t: dt.datetime) -> float:
    """Unix seconds of a naive New York time."""
    return t.replace(tzinfo=NY).timestamp()


def ib_datetime(t: dt.datetime) -> str:
    """``yyyymmdd hh:mm:ss US/Eastern`` (ib_insync parses it time-zone aware)."""
    return t.strftime("%Y%m%d %H:%M:%S ") + TZ_NAME


def option_conid(expiry_ord: int, strike: float, right: str) -> int:
    """A deterministic conId from expiry, strike and right (decodable, < 2**31)."""
    days = expiry_ord - _EPOCH_ORD
    if not (0 <= days < 5700 and 0 < strike < 10000):
        raise ValueError("option out of the conId range")
    return OPT_CONID_BASE + (days * 2 + (right == "P")) * 100_000 + int(round(strike * 10))


def decode_option_conid(con_id: int):
    """(expiry_ord, strike, right) or None."""
    x = con_id - OPT_CONID_BASE
    if not 0 <= x < 1_140_000_000:
        return None
    y, k = divmod(x, 100_000)
    return _EPOCH_ORD + y // 2, k / 10.0, "P" if y % 2 else "C"


@dataclass(frozen=True)
class Instrument:
    """A contract the sim lists."""
    con_id: int
    symbol: str
    sec_type: str                      # STK or OPT
    expiry: str = ""                   # yyyymmdd (options)
    strike: float = 0.0
    right: str = ""                    # C or P
    multiplier: int = 1
    local_symbol: str = ""
    trading_class: str = ""
    primary_exchange: str = ""
    exchange: str = "SMART"
    currency: str = "USD"

    @property
    def is_option(self) -> bool:
        return self.sec_type == "OPT"

    @property
    def mult_str(self) -> str:
        return str(self.multiplier) if self.is_option else ""

    @property
    def expiry_ord(self) -> int:
        return dt.date(int(self.expiry[:4]), int(self.expiry[4:6]), int(self.expiry[6:])).toordinal()

    def describe(self) -> str:
        if self.is_option:
            return f"{self.symbol} {self.expiry} {self.strike:g}{self.right}"
        return self.symbol

    def to_dict(self) -> dict:
        return {"conId": self.con_id, "symbol": self.symbol, "secType": self.sec_type,
                "lastTradeDateOrContractMonth": self.expiry, "strike": self.strike,
                "right": self.right, "multiplier": self.mult_str, "localSymbol": self.local_symbol}


@dataclass
class Quote:
    """One contract's quote at one bar (sizes are added when sent)."""
    bid: float
    ask: float
    mid: float
    last: float
    prev_close: float
    high: float
    low: float
    open: float
    und: float
    model: tuple | None = None         # (iv, delta, price, pvDividend, gamma, vega, theta, und)
    bid_comp: tuple | None = None
    ask_comp: tuple | None = None


class SimClock:
    """Market time = start + wall seconds x speed (+ ``advance``); with ``skip_closed``
    the time jumps from a session's last bar to the next session's first."""

    def __init__(self, times: list[dt.datetime], start_idx: int, bar_seconds: float,
                 speed: float, skip_closed: bool):
        self.times, self.start_idx, self.bar_seconds = times, start_idx, bar_seconds
        self.speed, self.skip_closed = speed, skip_closed
        self.start = times[start_idx]
        self._t0 = time.monotonic()
        self.offset = 0.0

    def begin(self) -> None:
        self._t0 = time.monotonic()

    def elapsed(self) -> float:
        """Market seconds since the clock started."""
        return (time.monotonic() - self._t0) * self.speed + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def now(self) -> dt.datetime:
        e = self.elapsed()
        if not self.skip_closed:
            return self.start + dt.timedelta(seconds=e)
        n = len(self.times)
        i = self.start_idx + int(e // self.bar_seconds)
        if i >= n:
            return self.times[-1] + dt.timedelta(seconds=e - (n - 1 - self.start_idx) * self.bar_seconds)
        return self.times[i] + dt.timedelta(seconds=e % self.bar_seconds)


def _round_quote(bid: float, ask: float) -> tuple[float, float]:
    b, a = round(bid, 2), round(ask, 2)
    if a <= b:
        a = round(b + 0.01, 2)
    return b, a


class MarketState:
    """The synthetic path plus contract listing, quoting and history."""

    def __init__(self, sim_cfg: dict, project_cfg: dict):
        self.cfg, self.pcfg = sim_cfg, project_cfg
        self.m = synthetic_market(project_cfg)
        syn = project_cfg["market"]["synthetic"]
        self.spread = project_cfg["market"]["spread"]
        self.iv = syn["implied_vol"]
        self.rate = project_cfg["greeks"]["risk_free_rate"]
        self.step = syn["strike_step"]
        self.bar_minutes = syn["bar_minutes"]
        self.bar_seconds = self.bar_minutes * 60.0
        self.symbol = project_cfg["symbol"]
        self.round = sim_cfg["round_to_tick"]
        self.times = [bt_datetime(x) for x in self.m.dt]
        per_day = 390 // self.bar_minutes
        start_day = sim_cfg["clock"]["start_day"]
        if start_day >= syn["days"]:
            from ibsim.config import SimConfigError
            raise SimConfigError(f"clock.start_day: got {start_day}, expected < market.days ({syn['days']})")
        self.start_idx = start_day * per_day
        self._session_stats()
        self.stock = Instrument(
            con_id=sim_cfg["stock_conid"], symbol=self.symbol, sec_type="STK",
            local_symbol=self.symbol, trading_class="NMS",
            primary_exchange=sim_cfg["primary_exchange"])
        self.spot0 = float(self.m.close[self.start_idx])
        self._cache: dict = {}
        self._cache_idx = -1

    # ---- time ---------------------------------------------------------------
    def _session_stats(self) -> None:
        day = self.m.dt.astype(int)
        n = len(day)
        self.day_start = np.zeros(n, dtype=int)
        self.prev_close = np.empty(n)
        self.day_high = np.empty(n)
        self.day_low = np.empty(n)
        s = 0
        for i in range(n):
            if i and day[i] != day[i - 1]:
                s = i
            self.day_start[i] = s
            self.prev_close[i] = self.m.close[s - 1] if s else self.m.open[0]
            self.day_high[i] = self.m.high[i] if i == s else max(self.day_high[i - 1], self.m.high[i])
            self.day_low[i] = self.m.low[i] if i == s else min(self.day_low[i - 1], self.m.low[i])

    def sessions_back(self, end: dt.datetime, days: int) -> float:
        """Seconds from the open of the ``days``-th latest session at or before ``end``."""
        dates = sorted({t.date() for t in self.times if t <= end})
        if not dates:
            return 0.0
        first = dates[-min(days, len(dates))]
        return (end - dt.datetime.combine(first, dt.time(9, 30))).total_seconds()

    def clock(self, speed: float, skip_closed: bool) -> SimClock:
        return SimClock(self.times, self.start_idx, self.bar_seconds, speed, skip_closed)

    def bar_index(self, t: dt.datetime) -> int:
        """The latest bar whose end time is <= t (at least 0)."""
        return max(bisect.bisect_right(self.times, t) - 1, 0)

    def is_open(self, t: dt.datetime, skip_closed: bool = False) -> bool:
        """Regular trading hours (09:30-16:00 New York on a weekday)."""
        if skip_closed:
            return True
        return t.weekday() < 5 and dt.time(9, 30) <= t.time() <= dt.time(16, 0)

    def ended(self, t: dt.datetime) -> bool:
        return t >= self.times[-1]

    # ---- contracts ----------------------------------------------------------
    def option(self, expiry_ord: int, strike: float, right: str) -> Instrument:
        d = dt.date.fromordinal(expiry_ord)
        occ = f"{self.symbol:<6}{d:%y%m%d}{right}{int(round(strike * 1000)):08d}"
        return Instrument(con_id=option_conid(expiry_ord, strike, right), symbol=self.symbol,
                          sec_type="OPT", expiry=d.strftime("%Y%m%d"), strike=float(strike),
                          right=right, multiplier=100, local_symbol=occ,
                          trading_class=self.symbol)

    def by_conid(self, con_id: int) -> Instrument | None:
        if con_id == self.stock.con_id:
            return self.stock
        dec = decode_option_conid(con_id)
        if dec is None:
            return None
        e, k, r = dec
        if dt.date.fromordinal(e).weekday() != 4 or not self.on_grid(k):
            return None
        return self.option(e, k, r)

    def on_grid(self, strike: float) -> bool:
        q = strike / self.step
        return 0 < strike < 10000 and abs(q - round(q)) < 1e-6

    def listed_expiries(self, t: dt.datetime) -> list[int]:
        """Weekly Friday expiries from today (today too before 16:00) for chain.weeks."""
        today = t.date()
        first = today.toordinal() + (4 - today.weekday()) % 7
        if first == today.toordinal() and t.time() >= dt.time(16, 0):
            first += 7
        return list(range(first, today.toordinal() + 7 * self.cfg["chain"]["weeks"] + 1, 7))

    def listed_strikes(self, t: dt.datetime) -> list[float]:
        r = self.cfg["chain"]["strike_range_pct"] / 100.0
        spot = float(self.m.close[self.bar_index(t)])
        lo = min(spot, self.spot0) * (1 - r)
        hi = max(spot, self.spot0) * (1 + r)
        return [k * self.step for k in range(max(1, math.ceil(lo / self.step)), math.floor(hi / self.step) + 1)]

    def resolve(self, q: dict, t: dt.datetime, include_expired: bool = False) -> list[Instrument]:
        """Instruments matching a request's contract fields (IB's matching, loosely)."""
        sec = (q.get("secType") or "").upper()
        cur = (q.get("currency") or "").upper()
        sym = (q.get("symbol") or "").upper()
        if cur not in ("", "USD"):
            return []
        if q.get("conId"):
            inst = self.by_conid(q["conId"])
            if inst is None or (sec and sec != inst.sec_type) or (sym and sym != inst.symbol):
                return []
            return [inst]
        local = (q.get("localSymbol") or "").strip()
        if sec == "OPT" and local and not sym:
            m = _OCC.match(local)
            if m:
                sym = m.group(1).upper()
                q = dict(q, lastTradeDateOrContractMonth="20" + m.group(2), right=m.group(3),
                         strike=int(m.group(4)) / 1000.0)
        if sym != self.symbol.upper() and (q.get("tradingClass") or "").upper() != self.symbol.upper():
            return []
        if sec in ("", "STK"):
            if local and local.upper() != self.symbol.upper():
                return []
            return [self.stock]
        if sec != "OPT":
            return []
        if (q.get("multiplier") or "100") not in ("100", "100.0"):
            return []
        return self._match_options(q, t, include_expired)

    def _match_options(self, q: dict, t: dt.datetime, include_expired: bool) -> list[Instrument]:
        ltd = (q.get("lastTradeDateOrContractMonth") or "").split(" ")[0].replace("-", "")
        today = t.date().toordinal()
        if len(ltd) == 8:
            try:
                e = dt.date(int(ltd[:4]), int(ltd[4:6]), int(ltd[6:])).toordinal()
            except ValueError:
                return []
            ok = dt.date.fromordinal(e).weekday() == 4 and (include_expired or e >= today) and e <= today + 800
            expiries = [e] if ok else []
        elif len(ltd) == 6:
            expiries = [e for e in self.listed_expiries(t) if dt.date.fromordinal(e).strftime("%Y%m") == ltd]
        elif not ltd:
            expiries = self.listed_expiries(t)
        else:
            return []
        right = (q.get("right") or "").upper()
        right = {"CALL": "C", "PUT": "P"}.get(right, right)
        if right not in ("", "C", "P"):
            return []
        rights = [right] if right else ["C", "P"]
        strike = q.get("strike") or 0.0
        if strike:
            strikes = [strike] if self.on_grid(strike) else []
        else:
            strikes = self.listed_strikes(t)
        local = (q.get("localSymbol") or "").strip()
        out = []
        for e in expiries:
            for k in strikes:
                for r in rights:
                    inst = self.option(e, k, r)
                    if local and local.replace(" ", "") != inst.local_symbol.replace(" ", ""):
                        continue
                    out.append(inst)
        return out

    # ---- quotes ---------------------------------------------------------------
    def tau(self, inst: Instrument, when: dt.datetime) -> float:
        exp = dt.datetime.combine(dt.date.fromordinal(inst.expiry_ord), dt.time(16, 0))
        return (exp - when).total_seconds() / SECONDS_PER_YEAR

    def quote(self, inst: Instrument, idx: int, widen: float = 1.0) -> Quote:
        """The contract's quote at bar ``idx`` with the spread multiplied by ``widen``."""
        if idx != self._cache_idx:
            self._cache.clear()
            self._cache_idx = idx
        key = (inst.con_id, widen)
        q = self._cache.get(key)
        if q is None:
            q = self._option_quote(inst, idx, widen) if inst.is_option else self._stock_quote(idx, widen)
            self._cache[key] = q
        return q

    def _stock_quote(self, i: int, widen: float) -> Quote:
        m = self.m
        mid = float(m.close[i])
        half = (float(m.ask[i]) - float(m.bid[i])) / 2.0 * widen
        bid, ask = mid - half, mid + half
        if self.round:
            bid, ask = _round_quote(bid, ask)
        r = (lambda x: round(float(x), 2)) if self.round else float
        return Quote(bid=bid, ask=ask, mid=mid, last=r(mid), prev_close=r(self.prev_close[i]),
                     high=r(self.day_high[i]), low=r(self.day_low[i]), open=r(m.open[self.day_start[i]]),
                     und=mid)

    def option_price(self, inst: Instrument, i: int) -> float:
        right = 1 if inst.right == "C" else -1
        return bs_price(right, float(self.m.close[i]), inst.strike, self.tau(inst, self.times[i]), self.iv, self.rate)

    def _option_quote(self, inst: Instrument, i: int, widen: float) -> Quote:
        spot = float(self.m.close[i])
        right = 1 if inst.right == "C" else -1
        tau = self.tau(inst, self.times[i])
        price = bs_price(right, spot, inst.strike, tau, self.iv, self.rate)
        full = max(self.spread["option_min"], self.spread["option_pct"] / 100.0 * price) * widen
        bid, ask = max(price - full / 2, 0.0), price + full / 2
        if self.round:
            bid, ask = _round_quote(bid, ask)
        s = self.day_start[i]
        prev = self.option_price(inst, s - 1) if s else price
        r = (lambda x: round(float(x), 2)) if self.round else float
        q = Quote(bid=bid, ask=ask, mid=price, last=r(price), prev_close=r(prev), high=r(max(price, prev)),
                  low=r(min(price, prev)), open=r(prev), und=spot)
        if tau > 0:
            q.model = self._comp(right, spot, inst.strike, tau, self.iv, price)
            for side, px in (("bid_comp", bid), ("ask_comp", ask)):
                vol = implied_vol(right, px, spot, inst.strike, tau, self.rate)
                if vol == vol:
                    setattr(q, side, self._comp(right, spot, inst.strike, tau, vol, px))
        return q

    def _comp(self, right, spot, strike, tau, vol, price) -> tuple:
        delta, gamma, vega, theta = bs_greeks(right, spot, strike, tau, vol, self.rate)
        # IB: vega per 1 vol point (1%), theta per calendar day
        return (vol, delta, price, 0.0, gamma, vega / 100.0, theta / 365.0, spot)

    def mark(self, inst: Instrument, idx: int) -> float:
        """Mark price per unit (mid/model price) for the portfolio."""
        return self.quote(inst, idx).mid

    # ---- history ----------------------------------------------------------------
    def history(self, inst: Instrument, end: dt.datetime, seconds: float, bar_minutes: int | None,
                what: str) -> list[tuple]:
        """Bars (start time, open, high, low, close) ending by ``end`` over ``seconds``;
        ``bar_minutes`` None = daily bars."""
        hi = bisect.bisect_right(self.times, end)
        lo = bisect.bisect_left(self.times, end - dt.timedelta(seconds=seconds - self.bar_seconds))
        if hi <= lo:
            return []
        idx = np.arange(lo, hi)
        o, h, low, c = self._series(inst, idx, what)
        out: list[tuple] = []
        key_prev = None
        for j, i in enumerate(idx):
            start = self.times[i] - dt.timedelta(minutes=self.bar_minutes)
            if bar_minutes is None:
                key = start.date()
                stamp = start.replace(hour=0, minute=0, second=0)
            else:
                minute = (start.hour * 60 + start.minute - 570) // bar_minutes * bar_minutes + 570
                stamp = start.replace(hour=minute // 60, minute=minute % 60, second=0)
                key = stamp
            if key != key_prev:
                out.append([stamp, o[j], h[j], low[j], c[j]])
                key_prev = key
            else:
                bar = out[-1]
                bar[2] = max(bar[2], h[j])
                bar[3] = min(bar[3], low[j])
                bar[4] = c[j]
        return [tuple(b) for b in out]

    def _series(self, inst: Instrument, idx: np.ndarray, what: str):
        m = self.m
        if not inst.is_option:
            if what in ("BID", "ASK"):
                px = m.bid[idx] if what == "BID" else m.ask[idx]
                return px, px, px, px
            return m.open[idx], m.high[idx], m.low[idx], m.close[idx]
        exp = dt.datetime.combine(dt.date.fromordinal(inst.expiry_ord), dt.time(16, 0))
        tau = np.array([(exp - self.times[i]).total_seconds() / SECONDS_PER_YEAR for i in idx])
        right = 1.0 if inst.right == "C" else -1.0
        price = bs_arrays(right, m.close[idx], inst.strike, tau, self.iv, self.rate)[0]
        if what in ("BID", "ASK"):
            full = np.maximum(self.spread["option_min"], self.spread["option_pct"] / 100.0 * price)
            price = np.maximum(price - full / 2, 0.0) if what == "BID" else price + full / 2
        return price, price, price, price
