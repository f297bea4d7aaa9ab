"""Backtrader feeds backed by numpy arrays.

Preloading copies each whole column into the line buffer at once instead of running
``_load`` per bar (the pandas feed spends about half its time in ``.iloc``); a
non-preloaded run (``preload=False``) still works bar by bar through ``_load``.
"""
from __future__ import annotations

import array

import backtrader as bt
import numpy as np


class ArrayData(bt.feed.DataBase):
    """A feed whose columns are given as numpy arrays: ``columns={'close': arr, ...}``;
    ``datetime`` holds Backtrader date numbers (naive exchange-local time)."""

    params = (("columns", None),)

    def start(self):
        super().start()
        cols = self.p.columns or {}
        self._n = len(cols["datetime"])
        nan = np.full(self._n, np.nan)
        # every line gets a column (NaN when not given) so all buffers stay aligned
        self._cols = [(getattr(self.lines, name), np.ascontiguousarray(cols.get(name, nan), dtype=float))
                      for name in self.lines.getlinealiases()]
        self._i = 0

    def preload(self):
        for line, values in self._cols:
            line.array = array.array("d", values)
            line.lencount = 0
            line.idx = -1
        self._i = self._n          # everything is in the buffers: _load has nothing left
        self._last()
        self.home()

    def _load(self):
        i = self._i
        if i >= self._n:
            return False
        for line, values in self._cols:
            line[0] = values[i]
        self._i = i + 1
        return True


class StockData(ArrayData):
    """The underlying: OHLCV plus the quote (bid, ask) the hedge trades against."""
    lines = ("bid", "ask")


class OptionData(ArrayData):
    """An option feed. Its contract is in its lines (strike, expiry as a date ordinal,
    right +1/-1), so one feed can carry successive contracts in time (a "slot"), and a
    feed for one fixed contract is just the constant case. Prices are per share (close
    is the mid); greeks lines may be NaN, then the strategy computes its own.
    ``multiplier`` is the number of shares per contract."""
    lines = ("bid", "ask", "iv", "delta", "gamma", "vega", "theta", "strike", "expiry", "right")
    params = (("multiplier", 100),)
