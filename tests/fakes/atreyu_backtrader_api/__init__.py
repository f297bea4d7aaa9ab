"""A stand-in for atreyu_backtrader_api, for tests only (put on sys.path by the test).

Same names and call shapes as the real package (``IBStore(host=, port=, clientId=, ...)``
a singleton; ``getdata``/``getbroker`` classmethods building ``DataCls``/``BrokerCls``;
``IBData`` with atreyu's params, ``_ST_*`` states and its line conventions: tick-by-tick
BID_ASK puts bid in ``open`` and ask in ``close``, MIDPOINT puts the mid in ``close``;
``IBBroker.getposition(data)`` via the store), no network. It records what it is asked
(``CALLS``) and serves a short session: ``N_HIST`` bars of atreyu-style backfill
(DELAYED, ``_ST_HISTORBACK``) then ``N_LIVE`` live bars, five minutes apart, the spot
rising, a long 170 straddle held (10 + 10)."""
import collections
import datetime as dt
import types

import backtrader as bt
from backtrader.position import Position

from bifrost.pricing import bs_price

CALLS = {"store": [], "getdata": [], "getbroker": 0, "orders": []}
HISTORY_TIMES = set()
START = dt.datetime(2026, 1, 12, 10, 0)              # a Monday, inside regular hours
N_HIST, N_LIVE = 6, 30
HELD = {"C": 10, "P": 10}


def spot_at(i: int) -> float:
    return 170.0 + 0.2 * i


class _Singleton(type):
    def __call__(cls, *args, **kwargs):
        if cls._singleton is None:
            cls._singleton = super().__call__(*args, **kwargs)
        return cls._singleton


class IBStore(metaclass=_Singleton):
    BrokerCls = None
    DataCls = None
    _singleton = None

    def __init__(self, **kwargs):
        CALLS["store"].append(dict(kwargs))
        self.positions = collections.defaultdict(Position)

    @classmethod
    def getdata(cls, *args, **kwargs):
        CALLS["getdata"].append(dict(kwargs))
        return cls.DataCls(*args, **kwargs)

    @classmethod
    def getbroker(cls, *args, **kwargs):
        CALLS["getbroker"] += 1
        return cls.BrokerCls(*args, **kwargs)

    def start(self, data=None, broker=None):
        if data is not None and data.p.secType == "OPT":
            self.positions[data.contract.conId] = Position(HELD[data.p.right], 5.0)

    def stop(self):
        pass

    def getposition(self, contract, clone=False):
        pos = self.positions[contract.conId]
        return pos.clone() if clone else pos


class IBData(bt.feed.DataBase):
    params = (("secType", "STK"), ("exchange", "SMART"), ("primaryExchange", None),
              ("right", None), ("strike", None), ("multiplier", None), ("expiry", None),
              ("currency", ""), ("localSymbol", None), ("rtbar", False), ("historical", False),
              ("what", None), ("useRTH", False), ("qcheck", 0.5), ("backfill_start", True),
              ("backfill", True), ("backfill_from", None), ("latethrough", False),
              ("tradename", None), ("numberOfTicks", 1000), ("ignoreSize", False))
    _ST_FROM, _ST_START, _ST_LIVE, _ST_HISTORBACK, _ST_OVER = range(5)

    def __init__(self, **kwargs):
        self.ib = IBStore(**kwargs)

    def islive(self):
        return True

    def start(self):
        super().start()
        p = self.p
        con = 4815747 if p.secType == "STK" else hash((p.expiry, p.strike, p.right)) & 0xFFFFFF
        self.contract = types.SimpleNamespace(conId=con, secType=p.secType, symbol=p.dataname,
                                              localSymbol="", multiplier=str(p.multiplier or ""))
        self.tradecontract = self.contract
        self._state, self._i = self._ST_START, 0
        self.put_notification(self.CONNECTED)
        self.ib.start(data=self)

    def haslivedata(self):
        return self._i < N_HIST + N_LIVE

    def _load(self):
        i = self._i
        if i >= N_HIST + N_LIVE:
            return False
        self._i += 1
        if i < N_HIST:
            if self._laststatus != self.DELAYED:
                self.put_notification(self.DELAYED)
            self._state = self._ST_HISTORBACK
        elif self._state != self._ST_LIVE:
            self._state = self._ST_LIVE
            self.put_notification(self.LIVE)
        t = START + dt.timedelta(minutes=5 * i)
        num = bt.date2num(t)
        if i < N_HIST:
            HISTORY_TIMES.add(num)
        self.lines.datetime[0] = num
        spot = spot_at(i)
        if self.p.secType == "OPT":                   # tick-by-tick MIDPOINT
            expiry = dt.datetime.strptime(self.p.expiry, "%Y%m%d") + dt.timedelta(hours=16)
            tau = (expiry - t).total_seconds() / (365 * 86400.0)
            right = 1 if self.p.right == "C" else -1
            self.lines.close[0] = round(bs_price(right, spot, float(self.p.strike), tau, 0.35, 0.05), 2)
        else:                                         # tick-by-tick BID_ASK
            self.lines.open[0] = round(spot - 0.01, 2)
            self.lines.close[0] = round(spot + 0.01, 2)
            self.lines.volume[0] = 100
            self.lines.openinterest[0] = 100
        return True


class IBBroker(bt.BrokerBase):
    params = ()

    def __init__(self, **kwargs):
        super().__init__()
        self.ib = IBStore(**kwargs)
        self.startingcash = self.cash = 1_000_000.0
        self.startingvalue = self.value = 1_000_000.0
        self.notifs = collections.deque()
        self._pending = []

    def start(self):
        super().start()
        self.ib.start(broker=self)

    def getcash(self):
        return 1_000_000.0

    def getvalue(self, datas=None):
        return 1_000_000.0

    def getposition(self, data, clone=True):
        return self.ib.getposition(data.tradecontract, clone=clone)

    def _order(self, cls, owner, data, size, **kwargs):
        order = cls(owner=owner, data=data, size=size)
        order.addcomminfo(self.getcommissioninfo(data))
        order.submit(self)
        CALLS["orders"].append({"side": "BUY" if order.isbuy() else "SELL", "size": abs(size),
                                "secType": data.p.secType, "time": data.datetime[0]})
        self._pending.append(order)
        self.notify(order)
        return order

    def buy(self, owner, data, size, price=None, plimit=None, exectype=None, valid=None,
            tradeid=0, **kwargs):
        return self._order(bt.BuyOrder, owner, data, size)

    def sell(self, owner, data, size, price=None, plimit=None, exectype=None, valid=None,
             tradeid=0, **kwargs):
        return self._order(bt.SellOrder, owner, data, size)

    def cancel(self, order):
        pass

    def next(self):
        while self._pending:                          # fills at the bar's close, like IB at mid
            order = self._pending.pop(0)
            d = order.data
            pos = self.getposition(d, clone=False)
            size, price = order.created.size, d.close[0]
            psize, pprice, opened, closed = pos.update(size, price)
            order.execute(d.datetime[0], size, price, closed, 0.0, 0.0, opened, 0.0, 0.0,
                          0.0, 0.0, psize, pprice)
            order.completed()
            self.notify(order)

    def notify(self, order):
        self.notifs.append(order.clone())

    def get_notification(self):
        return self.notifs.popleft() if self.notifs else None


# atreyu's metaclasses register the classes with the store when they are defined
IBStore.DataCls, IBStore.BrokerCls = IBData, IBBroker
