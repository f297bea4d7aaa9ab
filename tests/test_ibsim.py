"""The paper gateway (ibsim) against the real ib_insync client over loopback.

One simulator (speed 600: a 5-minute bar lasts 0.5 s) runs on a background thread for
the module; every test connects its own client ids and disconnects at the end.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import time
import urllib.error
import urllib.request

import pytest

from stores.ibclient import ibi, qualify  # noqa: E402  (ib_insync, or ib_async in its own env)

if ibi is None:
    pytest.skip("neither ib_insync nor ib_async is installed", allow_module_level=True)
IB, LimitOrder, MarketOrder, Option, Stock = ibi.IB, ibi.LimitOrder, ibi.MarketOrder, ibi.Option, ibi.Stock

from bifrost.pricing import bs_greeks  # noqa: E402
from ibsim import SimConfigError, SimThread  # noqa: E402
from ibsim.market import decode_option_conid  # noqa: E402

SIM_CFG = {"speed": 600, "clock": {"quote_refresh_seconds": 0.05, "account_refresh_seconds": 0.3}}
_next_id = iter(range(100, 10_000))


@pytest.fixture(scope="module")
def sim():
    s = SimThread(SIM_CFG)
    s.start(port=0, control_port=0)
    yield s
    s.stop()


def wait_until(ib: IB, pred, timeout: float = 5.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        try:
            ib.sleep(0.02)
        except ConnectionError:          # a dropped socket surfaces in the pending sleep
            pass
    return bool(pred())


class Client:
    """An IB connected to the sim, with its errors collected."""

    def __init__(self, sim, client_id: int | None = None):
        self.ib = IB()
        self.errors: list[tuple[int, int, str]] = []
        self.ib.errorEvent += lambda req, code, text, contract: self.errors.append((req, code, text))
        self.client_id = next(_next_id) if client_id is None else client_id
        self.ib.connect("127.0.0.1", sim.port, clientId=self.client_id, timeout=10)

    def codes(self) -> set[int]:
        return {c for _, c, _ in self.errors}

    def close(self):
        self.ib.disconnect()


@pytest.fixture
def client(sim):
    c = Client(sim)
    yield c
    c.close()


def stock(ib: IB) -> Stock:
    s = Stock("NVDA", "SMART", "USD")
    assert ib.qualifyContracts(s)
    return s


# ---- session, account, contracts ---------------------------------------------------------------
def test_handshake_account_and_straddle(sim, client):
    ib = client.ib
    assert ib.client.serverVersion() == 176
    assert ib.managedAccounts() == ["DU1234567"]
    today = ib.reqCurrentTime().astimezone(dt.timezone(dt.timedelta(hours=-5))).date()
    assert today.weekday() < 5
    pos = ib.positions()
    assert len(pos) == 2 and all(p.contract.secType == "OPT" and p.position == 10 for p in pos)
    assert {p.contract.right for p in pos} == {"C", "P"}
    assert len({(p.contract.strike, p.contract.lastTradeDateOrContractMonth) for p in pos}) == 1
    expiry = dt.datetime.strptime(pos[0].contract.lastTradeDateOrContractMonth, "%Y%m%d").date()
    assert expiry.weekday() == 4 and 21 <= (expiry - today).days <= 35
    spot0 = sim.sim.market.spot0
    assert abs(pos[0].contract.strike - spot0) <= 2.5            # nearest strike on the $5 grid
    vals = {v.tag: float(v.value) for v in ib.accountValues() if v.currency == "USD" and v.tag != "Currency"}
    for tag in ("NetLiquidation", "TotalCashValue", "AvailableFunds", "BuyingPower", "GrossPositionValue"):
        assert tag in vals
    assert vals["TotalCashValue"] == 1_000_000.0
    opt_value = sum(p.marketValue for p in ib.portfolio())
    assert opt_value > 0 and vals["NetLiquidation"] == pytest.approx(1_000_000.0 + opt_value, abs=50)


def test_contracts_chain_and_unknown(sim, client):
    ib = client.ib
    s = stock(ib)
    assert s.conId == 4815747 and s.primaryExchange == "NASDAQ"
    [chain] = ib.reqSecDefOptParams("NVDA", "", "STK", s.conId)
    assert chain.exchange == "SMART" and chain.multiplier == "100" and chain.tradingClass == "NVDA"
    assert len(chain.expirations) >= 8
    assert all(dt.datetime.strptime(e, "%Y%m%d").weekday() == 4 for e in chain.expirations)
    assert all(k % 5 == 0 for k in chain.strikes)
    held = ib.positions()[0].contract
    opt = Option("NVDA", held.lastTradeDateOrContractMonth, held.strike, held.right, "SMART")
    assert ib.qualifyContracts(opt) and opt.conId == held.conId
    assert decode_option_conid(opt.conId)[1:] == (held.strike, held.right)
    assert opt.multiplier == "100" and opt.localSymbol.startswith("NVDA")
    bad = Stock("ZZZZ", "SMART", "USD")
    assert qualify(ib, bad) == []          # ib_insync drops it; ib_async returns None for it
    assert wait_until(ib, lambda: 200 in client.codes(), 2)
    ym = chain.expirations[4][:6]
    month = Option("NVDA", ym, held.strike, "C", "SMART")       # a month: every listed Friday in it
    assert len(ib.reqContractDetails(month)) == sum(e.startswith(ym) for e in chain.expirations) > 1
    assert ib.reqMatchingSymbols("NV")[0].contract.conId == 4815747


# ---- market data and history --------------------------------------------------------------------
def test_ticks_and_model_greeks(sim, client):
    ib = client.ib
    s = stock(ib)
    held = ib.positions()[0].contract
    opt = Option(conId=held.conId, exchange="SMART")
    ib.qualifyContracts(opt)
    ts, to = ib.reqMktData(s, "106,233"), ib.reqMktData(opt)
    updates = []
    ts.updateEvent += lambda t: updates.append(time.time())
    assert wait_until(ib, lambda: ts.last == ts.last and to.modelGreeks is not None and to.bidGreeks is not None)
    assert 0 < ts.bid < ts.ask and ts.bidSize > 0 and ts.close > 0
    assert wait_until(ib, lambda: ts.rtTime is not None)          # RTVolume carries the sim clock
    assert abs((ts.rtTime - ib.reqCurrentTime()).total_seconds()) < 600
    assert ts.impliedVolatility == pytest.approx(0.35)
    assert 0 < to.bid < to.ask
    g = to.modelGreeks
    assert g.impliedVol == pytest.approx(0.35) and g.undPrice > 0
    tau = (dt.datetime.combine(dt.datetime.strptime(opt.lastTradeDateOrContractMonth, "%Y%m%d").date(),
                               dt.time(16)) - sim.sim.market.times[sim.sim.idx]).total_seconds() / (365 * 86400)
    right = 1 if opt.right == "C" else -1
    delta, gamma, vega, theta = bs_greeks(right, g.undPrice, opt.strike, tau, 0.35, 0.05)
    assert g.delta == pytest.approx(delta, abs=0.02) and g.gamma == pytest.approx(gamma, rel=0.05)
    assert g.vega == pytest.approx(vega / 100, rel=0.05)         # per vol point
    assert g.theta == pytest.approx(theta / 365, rel=0.05)       # per day
    ib.sleep(1.0)
    assert len(updates) >= 10                                     # quote refreshes keep coming
    ib.cancelMktData(s)


def test_historical_bars(sim, client):
    ib = client.ib
    s = stock(ib)
    now = ib.reqCurrentTime()
    bars = ib.reqHistoricalData(s, "", "2 D", "5 mins", "TRADES", True)
    assert len(bars) >= 78
    assert all(b.date.tzinfo is not None and b.date < now for b in bars)
    assert all((b2.date - b1.date) >= dt.timedelta(minutes=5) for b1, b2 in zip(bars, bars[1:]))
    days = ib.reqHistoricalData(s, "", "5 D", "1 day", "TRADES", True)
    assert len(days) >= 5 and isinstance(days[0].date, dt.date)
    held = ib.positions()[0].contract
    opt = Option(conId=held.conId, exchange="SMART")
    ib.qualifyContracts(opt)
    obars = ib.reqHistoricalData(opt, "", "1 D", "30 mins", "MIDPOINT", True)
    assert obars and all(b.close > 0 for b in obars)


# ---- orders ---------------------------------------------------------------------------------------
def test_market_order_fills_at_quote_with_commission(sim, client):
    ib = client.ib
    s = stock(ib)
    t = ib.reqMktData(s)
    assert wait_until(ib, lambda: t.ask == t.ask)
    fills, reports = [], []
    ib.execDetailsEvent += lambda trade, fill: fills.append(fill)
    ib.commissionReportEvent += lambda trade, fill, rep: reports.append(rep)
    asks = {t.ask}
    t.updateEvent += lambda tk: asks.add(tk.ask)
    trade = ib.placeOrder(s, MarketOrder("BUY", 100, orderRef="hedge-mkt"))
    assert wait_until(ib, lambda: trade.orderStatus.status == "Filled" and reports)
    ex = fills[0].execution
    assert ex.side == "BOT" and ex.shares == 100 and ex.orderRef == "hedge-mkt"
    assert ex.price in asks and ex.clientId == client.client_id and ex.permId == trade.order.permId
    assert reports[0].commission == pytest.approx(1.0)          # max($1, 100 x $0.005)
    assert trade.orderStatus.avgFillPrice == ex.price and trade.orderStatus.remaining == 0
    assert wait_until(ib, lambda: any(p.contract.secType == "STK" and p.position >= 100 for p in ib.positions()))
    sell = ib.placeOrder(s, MarketOrder("SELL", 100, orderRef="hedge-mkt-close"))
    assert wait_until(ib, lambda: sell.orderStatus.status == "Filled")
    assert sell.fills[0].execution.side == "SLD"


def test_limit_orders_rest_fill_and_cancel(sim, client):
    ib = client.ib
    s = stock(ib)
    t = ib.reqMktData(s)
    assert wait_until(ib, lambda: t.ask == t.ask)
    resting = ib.placeOrder(s, LimitOrder("BUY", 10, round(t.bid * 0.5, 2)))
    assert wait_until(ib, lambda: resting.orderStatus.status == "Submitted")
    ib.sleep(0.6)                                                 # a new bar: still no fill
    assert resting.orderStatus.filled == 0
    ib.cancelOrder(resting.order)
    assert wait_until(ib, lambda: resting.orderStatus.status == "Cancelled")
    through = ib.placeOrder(s, LimitOrder("SELL", 10, round(t.bid * 0.9, 2)))   # marketable
    assert wait_until(ib, lambda: through.orderStatus.status == "Filled")
    assert through.orderStatus.avgFillPrice > through.order.lmtPrice           # filled at the bid
    opt = ib.positions()[0].contract
    opt.exchange = "SMART"
    ot = ib.placeOrder(opt, LimitOrder("BUY", 1, 1000.0))
    assert wait_until(ib, lambda: ot.orderStatus.status == "Filled" and ot.fills
                      and ot.fills[0].commissionReport.commission > 0)
    assert ot.fills[0].commissionReport.commission == pytest.approx(0.65)


def test_executions_restore_order_ref_after_reconnect(sim):
    c = Client(sim)
    s = stock(c.ib)
    trade = c.ib.placeOrder(s, MarketOrder("BUY", 20, orderRef="restore-me"))
    assert wait_until(c.ib, lambda: trade.orderStatus.status == "Filled")
    cid = c.client_id
    c.close()
    again = Client(sim, cid)
    try:
        restored = [f for f in again.ib.fills() if f.execution.orderRef == "restore-me"]   # by connect()
        assert restored and restored[0].commissionReport.commission == pytest.approx(1.0)
        assert restored[0].execution.shares == 20 and restored[0].execution.clientId == cid
        assert any(f.execution.orderRef == "restore-me" for f in again.ib.reqExecutions())
        assert again.ib.client.getReqId() > trade.order.orderId    # nextValidId moved on
    finally:
        again.close()


def test_client_id_in_use_gets_326(sim, client):
    other = IB()
    codes = []
    other.errorEvent += lambda req, code, text, contract: codes.append(code)
    with pytest.raises((TimeoutError, ConnectionError, OSError)):
        other.connect("127.0.0.1", sim.port, clientId=client.client_id, timeout=1.5)
    assert 326 in codes
    assert client.ib.isConnected() and client.ib.reqCurrentTime()


def test_several_clients_each_get_their_own_orders(sim):
    a, b = Client(sim), Client(sim)
    try:
        sa, sb = stock(a.ib), stock(b.ib)
        ta = a.ib.placeOrder(sa, MarketOrder("BUY", 10, orderRef="from-a"))
        tb = b.ib.placeOrder(sb, MarketOrder("SELL", 10, orderRef="from-b"))
        assert wait_until(a.ib, lambda: ta.orderStatus.status == "Filled")
        assert wait_until(b.ib, lambda: tb.orderStatus.status == "Filled")
        assert ta.orderStatus.clientId == a.client_id and tb.orderStatus.clientId == b.client_id
        assert {f.execution.orderRef for f in a.ib.fills()} >= {"from-a"}
        assert "from-b" not in {f.execution.orderRef for f in a.ib.fills()}
    finally:
        a.close()
        b.close()


# ---- faults ---------------------------------------------------------------------------------------
def test_fault_disconnect_and_refuse(sim):
    c = Client(sim)
    dropped = []
    c.ib.disconnectedEvent += lambda: dropped.append(1)
    sim.inject("disconnect", refuse_seconds=1.0)
    assert wait_until(c.ib, lambda: dropped and not c.ib.isConnected(), 3)
    with pytest.raises((ConnectionRefusedError, OSError, TimeoutError)):
        IB().connect("127.0.0.1", sim.port, clientId=c.client_id, timeout=1)
    time.sleep(1.1)
    again = Client(sim, c.client_id)                            # positions survived the drop
    assert len(again.ib.positions()) >= 2
    again.close()


def test_fault_1100_closes(sim):
    c = Client(sim)
    sim.inject("error_1100")
    assert wait_until(c.ib, lambda: 1100 in c.codes() and not c.ib.isConnected(), 3)


def test_fault_1101_1102(sim, client):
    ib = client.ib
    t = ib.reqMktData(stock(ib))
    assert wait_until(ib, lambda: t.bid == t.bid)
    sim.inject("error_1102")
    assert wait_until(ib, lambda: 1102 in client.codes(), 2)
    n = []
    t.updateEvent += lambda tk: n.append(1)
    ib.sleep(0.3)
    assert n                                                     # data maintained
    sim.inject("error_1101")
    assert wait_until(ib, lambda: 1101 in client.codes(), 2)
    ib.sleep(0.1)
    n.clear()
    ib.sleep(0.6)
    assert not n                                                 # data lost: re-subscribe
    assert ib.isConnected()


def test_fault_reject_next(sim, client):
    ib = client.ib
    sim.inject("reject_next", message="risk check")
    trade = ib.placeOrder(stock(ib), MarketOrder("BUY", 10))
    assert wait_until(ib, lambda: trade.orderStatus.status == "Cancelled")
    assert 201 in client.codes() and not trade.fills
    ok = ib.placeOrder(stock(ib), MarketOrder("SELL", 10))      # only the next one
    assert wait_until(ib, lambda: ok.orderStatus.status == "Filled")


def test_fault_partial_fill(sim, client):
    ib = client.ib
    s = stock(ib)
    sim.inject("partial_fill", fraction=0.5)
    never = ib.placeOrder(s, MarketOrder("BUY", 10))
    assert wait_until(ib, lambda: never.orderStatus.filled == 5)
    ib.sleep(0.3)
    assert never.orderStatus.status == "Submitted" and never.orderStatus.remaining == 5
    ib.cancelOrder(never.order)
    assert wait_until(ib, lambda: never.orderStatus.status == "Cancelled")
    assert never.orderStatus.filled == 5
    sim.inject("partial_fill", fraction=0.3, rest_after=0.3)
    later = ib.placeOrder(s, MarketOrder("SELL", 10))
    assert wait_until(ib, lambda: later.orderStatus.status == "Filled", 3)
    assert [f.execution.shares for f in later.fills] == [3, 7]


def test_fault_delay(sim, client):
    ib = client.ib
    s = stock(ib)
    sim.inject("delay", seconds=0.5, count=1)
    t0 = time.time()
    trade = ib.placeOrder(s, MarketOrder("BUY", 1))
    assert wait_until(ib, lambda: trade.orderStatus.status == "Filled", 3)
    assert time.time() - t0 >= 0.45
    t1 = time.time()
    quick = ib.placeOrder(s, MarketOrder("SELL", 1))
    assert wait_until(ib, lambda: quick.orderStatus.status == "Filled", 3)
    assert time.time() - t1 < 0.4


def test_fault_stale_and_widen(sim, client):
    ib = client.ib
    t = ib.reqMktData(stock(ib))
    assert wait_until(ib, lambda: t.bid == t.bid)
    normal = t.ask - t.bid
    sim.inject("stale")
    ib.sleep(0.1)
    n = []
    t.updateEvent += lambda tk: n.append(1)
    ib.sleep(0.8)
    assert not n                                                 # no ticks while stale
    sim.clear_faults()
    assert wait_until(ib, lambda: n, 2)
    sim.inject("widen", factor=10)
    assert wait_until(ib, lambda: t.ask - t.bid > 4 * normal, 2)
    sim.clear_faults()


def test_fault_bad_data(sim, client):
    ib = client.ib
    t = ib.reqMktData(stock(ib))
    assert wait_until(ib, lambda: t.bid == t.bid)
    seen = []
    t.updateEvent += lambda tk: seen.append((tk.bid, tk.ask))
    sim.inject("bad_data", kind="crossed", ticks=3)
    assert wait_until(ib, lambda: any(b > a for b, a in seen), 2)
    sim.inject("bad_data", kind="nan", ticks=3)
    assert wait_until(ib, lambda: any(math.isnan(b) for b, a in seen), 2)
    sim.inject("bad_data", kind="negative", ticks=3)
    assert wait_until(ib, lambda: any(b < 0 for b, a in seen), 2)
    assert wait_until(ib, lambda: 0 < t.bid < t.ask, 2)          # then clean again


def test_scripted_faults_and_config_errors():
    with SimThread({"speed": 600, "faults": [{"at_seconds": 600, "fault": "error_1102"}]}) as s:
        c = Client(s)
        assert wait_until(c.ib, lambda: 1102 in c.codes(), 3)
        c.close()
    with pytest.raises(SimConfigError, match=r"faults\[0\]\.args\.factor"):
        SimThread({"faults": [{"at_seconds": 1, "fault": "widen", "args": {"factor": -1}}]})
    with pytest.raises(SimConfigError, match=r"market\.spot"):
        SimThread({"market": {"spot": 0}})


# ---- control endpoint ------------------------------------------------------------------------------
def _http(port: int, path: str, body: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_control_endpoint(sim, client):
    port = sim.sim.control_port
    code, state = _http(port, "/state")
    assert code == 200
    assert {"clock", "account", "orders", "executions", "clients", "faults"} <= set(state)
    assert state["account"]["positions"] and state["account"]["cash"] > 0
    assert client.client_id in {c["clientId"] for c in state["clients"]}
    code, out = _http(port, "/fault", {"fault": "stale", "seconds": 0.5})
    assert code == 200 and "stale" in out["active"]
    code, out = _http(port, "/fault", {"fault": "melt"})
    assert code == 400 and "melt" in out["error"]
    code, out = _http(port, "/fault", {"fault": "error_1102"})
    assert code == 200 and wait_until(client.ib, lambda: 1102 in client.codes(), 2)
    code, out = _http(port, "/clear", {})
    assert code == 200 and out["active"] == {}


# ---- pure parts ------------------------------------------------------------------------------------
def test_framing_conids_and_ledger():
    from ibsim.market import Instrument, option_conid
    from ibsim.orders import Ledger, SimOrder
    from ibsim.protocol import encode, split_fields

    body = encode(4, 2, -1, 1100, "lost", "")
    assert int.from_bytes(body[:4], "big") == len(body) - 4
    assert split_fields(body[4:]) == ["4", "2", "-1", "1100", "lost", ""]
    e = dt.date(2026, 2, 6).toordinal()
    assert decode_option_conid(option_conid(e, 172.5, "P")) == (e, 172.5, "P")
    assert option_conid(e, 170, "C") != option_conid(e, 170, "P") < 2 ** 31

    led = Ledger("DU1", 100_000.0, {"stock": {"per_share": 0.005, "min_per_order": 1.0},
                                     "option": {"per_contract": 0.65, "min_per_order": 0.0}})
    stk = Instrument(1, "NVDA", "STK")
    buy = SimOrder(1, 1, 11, stk, "BUY", 300, "MKT", None, "", "", "ref", False)
    sell = SimOrder(1, 2, 12, stk, "SELL", 500, "MKT", None, "", "", "ref", False)
    led.add(buy)
    led.add(sell)
    assert led.fill(buy, 100, 10.0, dt.datetime(2026, 1, 12, 10)).commission == 1.0   # the minimum
    assert led.fill(buy, 200, 11.0, dt.datetime(2026, 1, 12, 10)).commission == 0.5   # 300 x 0.005 - 1
    assert buy.status == "Filled" and buy.avg_fill_price == pytest.approx(32 / 3)
    pos = led.positions[1]
    assert pos.qty == 300 and pos.avg_cost == pytest.approx((3200 + 1.5) / 300)
    ex = led.fill(sell, 500, 12.0, dt.datetime(2026, 1, 12, 11))                       # flips to -200
    assert ex.commission == 2.5 and pos.qty == -200 and pos.avg_cost == pytest.approx(12.0 - 1.0 / 200)
    assert ex.realized_pnl == pytest.approx(300 * (12.0 - (3200 + 1.5) / 300) - 1.5)
    assert led.cash == pytest.approx(100_000 - 3200 - 1.5 + 6000 - 2.5)
    assert led.next_valid_id(1) == 3 and led.next_valid_id(2) == 1
