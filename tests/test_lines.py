"""feeds.lines: the hot paths' direct read of a line is line[0], in every buffer mode."""
import math

import backtrader as bt
import numpy as np
import pytest

from feeds.arrays import OptionData, StockData
from feeds.lines import current
from feeds.market import bt_num
import datetime as dt


def _columns(n: int, start: int = 0) -> dict:
    t0 = dt.datetime(2026, 1, 5, 9, 30)
    times = [bt_num(t0 + dt.timedelta(minutes=5 * (start + i))) for i in range(n)]
    base = 100.0 + np.arange(start, start + n, dtype=float)
    return {"datetime": np.array(times), "open": base, "high": base + 1, "low": base - 1,
            "close": base, "volume": np.full(n, 1e3), "bid": base - 0.01, "ask": base + 0.01}


class Probe(bt.Strategy):
    """Compares the direct read with line[0] for every line of every data, each bar."""

    def __init__(self):
        self.checked = 0
        self.mismatch = []

    def prenext(self):
        self.next()

    def next(self):
        for d in self.datas:
            for line in d.lines:
                if not line.lencount:                   # no bar yet
                    assert len(d) == 0
                    continue
                a, b = current(line), line[0]
                same = a == b or (math.isnan(a) and math.isnan(b))
                if not same or line._idx != d.lines.close._idx:   # a feed's lines share one index
                    self.mismatch.append((d._name, len(self), a, b))
                self.checked += 1


@pytest.mark.parametrize("mode", [dict(preload=True, runonce=True), dict(preload=False, runonce=False),
                                  dict(preload=False, runonce=False, exactbars=1),
                                  dict(preload=True, runonce=False, exactbars=-1)])
def test_direct_read_equals_line_zero(mode):
    cerebro = bt.Cerebro(stdstats=False, **mode)
    cerebro.adddata(StockData(columns=_columns(60)), name="stock")
    opt = _columns(40, start=20)                  # starts later: prenext bars on the stock
    opt.update(strike=np.full(40, 120.0), expiry=np.full(40, 738000.0), right=np.ones(40),
               delta=np.full(40, math.nan))
    cerebro.adddata(OptionData(columns=opt), name="opt")
    cerebro.addstrategy(Probe)
    strat = cerebro.run()[0]
    assert strat.checked > 60 * 8 and strat.mismatch == []
