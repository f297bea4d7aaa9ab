"""Live Backtrader feeds on an IBStore: the stock and each option leg.

Each feed gets one bar per store snapshot (close = mid when both sides are quoted,
else last), with bid/ask, and for options iv/delta/gamma/vega/theta from IB's model
greeks when present (vega per 1.00 of vol and theta per year, converted from IB's per
point and per day; NaN otherwise, so the strategy prices the leg itself) and the
contract's strike, expiry (date ordinal) and right. ``backfill`` is 1 on history bars
queued after a reconnect (the strategy never trades on them) and 0 on live ones; a
feed IB refuses data for (354/10197) shows no quote (its last mark as close) until
ticks return.
"""
from __future__ import annotations

import collections
import datetime as dt
import math

import backtrader as bt

NAN = math.nan


def _f(x) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return NAN
    return x if math.isfinite(x) else NAN


def quote(ticker) -> tuple[float, float, float]:
    """(bid, ask, mid) with bad data (non-positive, crossed, NaN) as NaN: the strategy
    then sees no quote (L3) and does not hedge on it."""
    bid, ask, last = _f(ticker.bid), _f(ticker.ask), _f(ticker.last)
    if not (bid > 0):
        bid = NAN
    if not (ask > 0):
        ask = NAN
    if bid == bid and ask == ask and bid > ask:
        bid = ask = NAN                              # crossed: not a quote to trade on
    mid = 0.5 * (bid + ask) if bid == bid and ask == ask else (last if last > 0 else NAN)
    return bid, ask, mid


class _IBLive(bt.feed.DataBase):
    params = (("store", None), ("contract", None), ("qcheck", 0.5))

    def __init__(self):
        self.store = self.p.store
        self.contract = self.p.contract
        self.ticker = None
        self._queue = collections.deque()
        self._stopped = False
        self.no_data = False                         # 354/10197: quotes are not to be used
        self._last_close = NAN                       # the last live mark, for history without bars

    def islive(self):
        return True

    def haslivedata(self):
        return bool(self._queue)

    def start(self):
        super().start()
        self.store.start(data=self)

    def stop(self):
        self._stopped = True
        super().stop()

    def set_status_broken(self):
        self.put_notification(self.CONNBROKEN)

    def set_status_live(self):
        self.put_notification(self.LIVE)

    def set_status_delayed(self):
        self.put_notification(self.DELAYED)

    def push_snapshot(self, stamp: float) -> None:
        if self.ticker is not None or self.contract is None:     # a free slot: NaN bars
            values = self._values()
            if self.no_data:                          # no quote; the last mark values the position
                values.update(self._missing(), **self._last_mark())
            else:
                if values["close"] == values["close"]:
                    self._last_close = values["close"]
                if getattr(self.store, "no_data", None):
                    self._while_others_missing(values)
            self._queue.append((stamp, values))

    def _while_others_missing(self, values: dict) -> None:
        """Another instrument has no data (354/10197); see IBStockData."""

    def push_history(self, stamp: float, bar) -> None:
        """One backfilled bar: (end, open, high, low, close), or None when IB had no bar
        for this instrument (expired options, no history): no quote then, the last mark."""
        values = self._missing()
        if bar is not None:
            values.update(open=bar[1], high=bar[2], low=bar[3], close=bar[4])
        else:
            values.update(self._last_mark())
        values.update(self._history_extra())
        values["backfill"] = 1.0
        self._queue.append((stamp, values))

    def _missing(self) -> dict:
        return {k: NAN for k in ("open", "high", "low", "close", "volume", "bid", "ask")}

    def _last_mark(self) -> dict:
        """The last live price as this bar's close: the position keeps its value (no
        false loss breaker), the missing quote still blocks trading."""
        c = self._last_close
        return {"open": c, "high": c, "low": c, "close": c}

    def _history_extra(self) -> dict:
        return {}

    def _load(self):
        if self._stopped:
            return False
        if not self._queue:
            self.store.pump(self._qcheck if self._qcheck else 0.0)
            if not self._queue:
                return None                          # nothing yet: cerebro polls again
        stamp, values = self._queue.popleft()
        self.lines.datetime[0] = stamp
        for name, v in values.items():
            getattr(self.lines, name)[0] = v
        return True


class IBStockData(_IBLive):
    """The stock; ``age_ms`` is how old its quote is (wall time since IB last updated
    it), which the strategy classifies as S2 DATA_LAG / M5 STALE."""
    lines = ("bid", "ask", "age_ms", "backfill")

    def _history_extra(self) -> dict:
        return {"age_ms": 0.0}                       # as fresh as its bar, like a backtest

    def _while_others_missing(self, values: dict) -> None:
        # a held leg without data leaves net delta unknowable (its greeks would be guessed
        # at the fallback vol): the stock shows no quote (L3), so nothing is sent
        broker = getattr(self.store, "broker", None)
        if any(d.no_data and (broker is None or broker.getposition(d).size)
               for d in self.store.datas if d is not self):
            values["bid"] = values["ask"] = NAN

    def _values(self) -> dict:
        bid, ask, mid = quote(self.ticker)
        t = self.ticker.time
        age = ((dt.datetime.now(dt.timezone.utc) - t).total_seconds() * 1000.0
               if isinstance(t, dt.datetime) else NAN)
        return {"open": mid, "high": mid, "low": mid, "close": mid, "volume": _f(self.ticker.volume),
                "bid": bid, "ask": ask, "age_ms": age, "backfill": 0.0}


class IBOptionData(_IBLive):
    """An option slot: its contract is in its lines (strike, expiry ordinal, right).
    ``contract=None`` makes a free slot (NaN bars, never counted); ``assign`` gives it
    a contract while running (``stores.slots`` decides when: only when flat)."""
    lines = ("bid", "ask", "iv", "delta", "gamma", "vega", "theta", "strike", "expiry", "right",
             "backfill")
    params = (("multiplier", 100),)

    def __init__(self):
        super().__init__()
        self._await_quote = False
        self._set_contract(self.contract)

    def _set_contract(self, c) -> None:
        self.contract = c
        if c is None:
            self._strike = self._expiry = self._right = NAN
            return
        self._strike = float(c.strike)
        self._expiry = float(dt.datetime.strptime(c.lastTradeDateOrContractMonth[:8], "%Y%m%d").toordinal())
        self._right = 1.0 if c.right.upper().startswith("C") else -1.0
        if getattr(c, "multiplier", ""):
            self.p.multiplier = int(float(c.multiplier))

    def assign(self, contract) -> None:
        """Carry ``contract`` from now on (None: free). Until its first two-sided quote
        the slot's bars keep NaN contract lines, so a position in it cannot be hedged
        on a guess (the strategy fails closed on a held leg it cannot price)."""
        self.ticker = None
        self._set_contract(contract)
        self._await_quote = contract is not None
        self._last_close = NAN                        # the old contract's price is not this one's
        blank = self._values()                        # bars queued for the old contract: blank
        self._queue = collections.deque((stamp, blank) for stamp, _ in self._queue)

    def bar_matches_contract(self) -> bool:
        """The bar the strategy decided on shows this feed's contract (an order on a slot
        that changed contract since is refused by the broker)."""
        ln = self.lines
        return (len(self) > 0 and self.contract is not None and ln.strike[0] == self._strike
                and ln.expiry[0] == self._expiry and ln.right[0] == self._right)

    def _values(self) -> dict:
        if self.ticker is None:
            return dict.fromkeys(("open", "high", "low", "close", "volume", "bid", "ask", "iv", "delta",
                                  "gamma", "vega", "theta", "strike", "expiry", "right"), NAN)
        bid, ask, mid = quote(self.ticker)
        if self._await_quote:
            if not (bid == bid and ask == ask):
                return {**dict.fromkeys(("open", "high", "low", "close", "volume", "iv", "delta",
                                         "gamma", "vega", "theta", "strike", "expiry", "right"), NAN),
                        "bid": bid, "ask": ask}
            self._await_quote = False
        g = self.ticker.modelGreeks
        iv = delta = gamma = vega = theta = NAN
        if g is not None:
            iv, delta, gamma = _f(g.impliedVol), _f(g.delta), _f(g.gamma)
            vega, theta = _f(g.vega), _f(g.theta)
            if vega == -2 or theta == -2:            # IB's "not computed" sentinel
                vega = theta = NAN
            vega, theta = vega * 100.0, theta * 365.0
            if not (iv > 0 and abs(delta) <= 1 and gamma >= 0):
                iv = delta = gamma = vega = theta = NAN
        return {"open": mid, "high": mid, "low": mid, "close": mid, "volume": _f(self.ticker.volume),
                "bid": bid, "ask": ask, "iv": iv, "delta": delta, "gamma": gamma, "vega": vega,
                "theta": theta, "strike": self._strike, "expiry": self._expiry, "right": self._right,
                "backfill": 0.0}

    def _missing(self) -> dict:
        out = super()._missing()
        out.update({k: NAN for k in ("iv", "delta", "gamma", "vega", "theta")})
        return out

    def _history_extra(self) -> dict:
        return {"strike": self._strike, "expiry": self._expiry, "right": self._right}
