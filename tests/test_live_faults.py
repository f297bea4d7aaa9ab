"""Live faults: the gap backfill after a reconnect, delayed acknowledgements, missing
market data (354/10197) and the ``--store atreyu`` wiring.

The end-to-end tests run the real ib_insync (or ib_async) client against our paper
gateway (ibsim) on 127.0.0.1: in process (cerebro in this thread, a recording
strategy) where the test must see every bar, as ``runners/live.py`` subprocesses
where the runner's log and the gateway's books are what counts."""
import datetime as dt
import math
import re
import sys
import threading
import time

import backtrader as bt
import pytest

from stores.backfill import MAX_SECONDS, Pacing, bars_in_gap, gap_request, ib_utc

T0 = dt.datetime(2026, 3, 2, 10, 0)


# ---- pure pieces of the backfill ---------------------------------------------------------
def test_gap_request_covers_the_gap_in_whole_bars_plus_one():
    since, until = T0, T0 + dt.timedelta(minutes=12, seconds=30)
    utc = dt.datetime(2026, 3, 2, 15, 12, 30, tzinfo=dt.timezone.utc)
    req = gap_request(since, until, utc, 5)
    assert req.duration == "1200 S"                # ceil(750 / 300) + 1 = 4 bars
    assert req.bar_size == "5 mins" and req.end == "20260302-15:12:30"
    assert (req.since, req.until) == (since, until)
    assert gap_request(since, until, utc, 1).duration == str(14 * 60) + " S"


def test_gap_request_none_when_no_whole_bar_fits_and_capped_at_a_day():
    utc = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.timezone.utc)
    assert gap_request(T0, T0 + dt.timedelta(seconds=299), utc, 5) is None
    assert gap_request(T0, T0 - dt.timedelta(minutes=5), utc, 5) is None
    long = gap_request(T0, T0 + dt.timedelta(days=3), utc, 5)
    assert long.duration == f"{MAX_SECONDS} S"
    with pytest.raises(ValueError, match="bar_minutes"):
        gap_request(T0, T0 + dt.timedelta(hours=1), utc, 7)


def test_ib_utc_converts_aware_times():
    ny = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert ib_utc(ny) == "20260302-15:00:00"
    assert ib_utc(dt.datetime(2026, 3, 2, 15, 0)) == "20260302-15:00:00"


def test_bars_in_gap_keeps_the_gap_in_order_once_each():
    m5 = dt.timedelta(minutes=5)
    since, until = T0 + dt.timedelta(minutes=2), T0 + dt.timedelta(minutes=21)
    bars = [(T0 + 3 * m5, 1, 1, 1, 13.0),             # ends 10:20: in
            (T0 - m5, 1, 1, 1, 9.0),                  # ends 10:00: before the last bar seen
            (T0, 1, 1, 1, 10.0),                      # ends 10:05: in (the bar open at since)
            (T0 + m5, 1, 1, 1, 11.0),
            (T0 + m5, 1, 1, 1, 11.5),                 # a duplicate: the later one wins
            (T0 + 2 * m5, 1, 1, 1, math.nan),         # bad data: dropped
            (T0 + 4 * m5, 1, 1, 1, 14.0)]             # ends 10:25: after the reconnect
    out = bars_in_gap(bars, since, until, 5)
    assert [b[0] for b in out] == [T0 + m5, T0 + 2 * m5, T0 + 4 * m5]
    assert [b[4] for b in out] == [10.0, 11.5, 13.0]
    assert bars_in_gap(bars, T0 + 4 * m5, T0 + 4 * m5 + dt.timedelta(minutes=4), 5) == []   # incomplete


def test_pacing_no_identical_request_within_15_s_and_60_in_10_minutes():
    p = Pacing()
    assert p.allow("a", 0.0)
    assert not p.allow("a", 14.9)                     # identical within 15 s
    assert p.allow("b", 1.0)                          # a different request is fine
    assert p.allow("a", 15.0)
    p = Pacing()
    assert all(p.allow(i, i * 0.1) for i in range(60))
    assert not p.allow("x", 10.0)                     # the 61st inside 10 minutes
    assert p.allow("x", 600.0)                        # the first one left the window


# ---- in process: the real client, cerebro in this thread, every bar recorded ----------------
from stores.ibclient import ibi  # noqa: E402

needs_client = pytest.mark.skipif(ibi is None, reason="neither ib_insync nor ib_async is installed")
from conftest import SIM, wait_for  # noqa: E402  (shared by the live tests)


def recorder_class(control):
    """GammaScalping recording every bar (time, backfill flag, state, close) and every
    order it sends (bar index, time, backfill flag); ``control(strat)`` runs after each
    bar and may stop the run."""
    from strategies.gamma_scalping import GammaScalping

    class Recorder(GammaScalping):
        def start(self):
            super().start()
            self.bars, self.sent, self.orders = [], [], []

        def next(self):
            super().next()
            s = self.stock
            self.bars.append((s.datetime[0], s.backfill[0], self.state.code() if self.state else "",
                              s.close[0]))
            control(self)

        def _note(self):
            self.sent.append((len(self.bars), self.stock.datetime[0], self.stock.backfill[0]))

        def buy(self, *a, **k):
            self._note()
            self.orders.append(super().buy(*a, **k))
            return self.orders[-1]

        def sell(self, *a, **k):
            self._note()
            self.orders.append(super().sell(*a, **k))
            return self.orders[-1]

    return Recorder


def run_in_process(port, control, *sets, timeout=90.0):
    """runners/live.py's wiring on sim.yaml with a recording strategy; returns the
    strategy and the store once ``control`` stops cerebro (or the watchdog does)."""
    from bifrost.config import load_config
    from runners.backtest import ROOT_DIR
    from runners.live import Stopper, build, make_store
    cfg = load_config(str(ROOT_DIR / "configs" / "sim.yaml"),
                      [f"ib.port={port}", "ib.retry_seconds=0.5", *sets])
    store = make_store(cfg)
    stopper = Stopper()
    assert store.connect()
    cerebro = build(cfg, store, stopper, strategy=recorder_class(control))
    watchdog = threading.Timer(timeout, stopper, args=(0, None))
    watchdog.start()
    try:
        strat = cerebro.run()[0]
    finally:
        watchdog.cancel()
        store.stop()
    assert not stopper.stopped, "the watchdog stopped the run: the scenario never completed"
    return strat, store


class DropOnce:
    """Drop the socket once the engine has hedged; stop when it has hedged again on
    live bars after the gap's history."""

    def __init__(self, sim):
        self.sim, self.dropped_at = sim, None

    def __call__(self, strat):
        if self.dropped_at is None:
            if len(strat.bars) >= 30 and strat.sent and not strat._working:
                self.sim.inject("disconnect", refuse_seconds=1.0)
                self.sim.advance(3600)            # an hour of market passes while we are away
                self.dropped_at = len(strat.bars)
            return
        hist = [i for i, b in enumerate(strat.bars) if b[1] == 1]
        if hist and any(i > hist[-1] for i, _, _ in strat.sent) and not strat._working:
            strat.env.runstop()


@needs_client
def test_backfill_after_a_drop_is_history_in_order_and_never_traded(sim):
    ctl = DropOnce(sim)
    # a tight band so that the gap's moves call for hedges the history must not get
    strat, store = run_in_process(sim.port, ctl, "gates.state.delta.threshold_hedge_shares=11")
    bars = strat.bars
    hist = [i for i, b in enumerate(bars) if b[1] == 1]
    assert hist, "no backfilled bar reached the strategy"
    assert hist == list(range(hist[0], hist[-1] + 1))            # one run, right after the gap
    assert hist[0] >= ctl.dropped_at
    before, after = bars[hist[0] - 1], bars[hist[-1] + 1]
    times = [bars[i][0] for i in hist]
    # inside the gap, in order, no duplicates, none older than the last bar seen
    assert before[0] < times[0] and times[-1] < after[0]
    assert all(a < b for a, b in zip(times, times[1:]))
    assert max(b[0] for b in bars[:hist[0]]) < times[0]
    assert len(store.backfilled) == len(hist)
    # they are the gateway's bars: whole 5-minute bars, closing at the market's mid
    market = sim.sim.market
    for i in hist:
        end = bt.num2date(bars[i][0]).replace(microsecond=0)
        assert end in market.times, end
        assert bars[i][3] == pytest.approx(float(market.m.close[market.times.index(end)]), abs=1e-4)
    # history blocks trading (E3); no order on it; the first live bar decides (E0)
    assert all(" E3 " in bars[i][2] for i in hist)
    assert any(re.search(r" D[23] ", bars[i][2]) for i in hist), [bars[i][2] for i in hist]
    assert not [s for s in strat.sent if s[2] == 1]
    assert not [s for s in strat.sent if ctl.dropped_at <= s[0] <= hist[-1]]
    assert " E0 " in after[2], after
    # trading resumed live: an order after the gap, filled at the gateway
    later = [s for s in strat.sent if s[0] > hist[-1]]
    assert later
    execs = [e for e in sim.state()["executions"] if e.get("orderRef") == "bifrost-gamma"]
    assert len({e["orderId"] for e in execs}) >= 2


class WatchFirstOrder:
    """Follow the first order through a delayed acknowledgement: per bar its status,
    the state and how many orders exist; the gateway's view now and then while unacked.
    Stop once a second order has been sent and everything is done."""

    def __init__(self, sim):
        self.sim, self.rows, self.gateway = sim, [], []

    def __call__(self, strat):
        if not strat.orders:
            return
        first = strat.orders[0]
        self.rows.append((len(strat.bars) - 1, first.status, strat.state.code(), len(strat.orders)))
        after_send = len(strat.bars) - 1 > strat.sent[0][0]
        if first.status == first.Submitted and after_send and len(self.rows) % 4 == 1 \
                and len(self.gateway) < 4:
            self.gateway.append([o for o in self.sim.state()["orders"]
                                 if o["orderRef"] == "bifrost-gamma"])
        if len(strat.orders) >= 2 and not strat._working:
            strat.env.runstop()


@needs_client
def test_delayed_ack_shows_e1_sends_nothing_more_and_proceeds(sim):
    sim.inject("delay", seconds=3.0, count=1)              # the first order's ack comes 3 s late
    ctl = WatchFirstOrder(sim)
    strat, _ = run_in_process(sim.port, ctl)
    bt_order = bt.Order
    sent_bar = strat.sent[0][0]                # that bar's state is the one that decided (E0)
    unacked = [r for r in ctl.rows if r[1] == bt_order.Submitted and r[0] > sent_bar]
    assert len(unacked) >= 3, ctl.rows[:10]
    assert all(" E1 " in code for _, _, code, _ in unacked)          # working, not idle
    assert all(n == 1 for *_, n in unacked)                          # never a second hedge
    assert any(re.search(r" D[23] ", code) for _, _, code, _ in unacked)   # while one was due
    # the gateway held one order of ours (never two; the client may still be writing it
    # when a look comes early), not yet acknowledged
    assert ctl.gateway and all(len(g) <= 1 for g in ctl.gateway), ctl.gateway
    seen = [g[0] for g in ctl.gateway if g]
    assert seen and all(o["status"] not in ("Submitted", "Filled") for o in seen), ctl.gateway
    # the ack came: the order completed, then trading went on with a new order
    done = next(i for i, st, _, _ in ctl.rows if st == bt_order.Completed)
    assert strat.orders[0].status == bt_order.Completed
    second_bar = strat.sent[1][0]
    assert second_bar > unacked[-1][0] and second_bar >= done
    execs = [e for e in sim.state()["executions"] if e.get("orderRef") == "bifrost-gamma"]
    assert len({e["orderId"] for e in execs}) == len(strat.orders)


# ---- as a process: runners/live.py, its log, the gateway's books ----------------------------
class LiveProcess:
    """runners/live.py on sim.yaml; its log is read as it comes (``text()``), so a test
    waits for what the runner says instead of sleeping."""

    def __init__(self, port, *sets, client_id=17):
        import subprocess
        from runners.backtest import ROOT_DIR
        args = [sys.executable, str(ROOT_DIR / "runners" / "live.py"), "--config",
                str(ROOT_DIR / "configs" / "sim.yaml"), "--set", f"ib.port={port}",
                "--set", f"ib.client_id={client_id}", "--set", "ib.retry_seconds=0.5"]
        for s in sets:
            args += ["--set", s]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        self._lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self._lines.append(line)

    def text(self) -> str:
        return "".join(self._lines)

    def stop(self) -> str:
        import signal
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=15)
        self._reader.join(5)
        return self.text()


def our_orders(state):
    return [o for o in state["orders"] if o.get("orderRef") == "bifrost-gamma"]


@pytest.fixture
def live_sim():
    from ibsim.server import SimThread
    s = SimThread(SIM)
    s.start()
    procs = []
    yield s, procs
    for p in procs:
        if p.proc.poll() is None:
            p.stop()
    s.stop()


@needs_client
@pytest.mark.parametrize("code,words,only", [(354, "market data is not subscribed", None),
                                             (10197, "competing live session", None),
                                             (354, "market data is not subscribed", "OPT")])
def test_missing_market_data_one_message_no_order_then_recovers(live_sim, code, words, only):
    """All instruments, or only the option legs (no options data subscription, the stock
    quoted): one plain line, no order until the data is back, then trading again."""
    sim, procs = live_sim
    r = LiveProcess(sim.port)
    procs.append(r)
    assert wait_for(lambda: our_orders(sim.state()), timeout=40), r.text()[-2000:]
    sim.inject("no_data", code=code, seconds=5.0, sec_type=only)
    plain = f"({code})"
    assert wait_for(lambda: plain in r.text(), timeout=20), r.text()[-2000:]
    assert wait_for(lambda: "no_data" not in sim.state()["faults"], timeout=20)
    assert wait_for(lambda: "is back" in r.text(), timeout=20), r.text()[-2000:]
    n = len(our_orders(sim.state()))
    assert wait_for(lambda: len(our_orders(sim.state())) > n, timeout=40)      # trading again
    log = r.stop()
    assert r.proc.returncode == 0 and "Traceback" not in log
    # one plain message naming the problem, not one per feed or re-request
    ours = [ln for ln in log.splitlines() if plain in ln]
    assert len(ours) == 1 and words in ours[0] and "no hedging" in ours[0], ours
    assert f"Error {code}," not in log                          # the library's own lines are dropped
    # nothing sent from the first bar without data until the data came back (bars queued
    # before the error still carry the quotes they had); what it showed meanwhile
    said, back = log.index(ours[0]), log.index("is back")
    first = re.search(r"state O\d D\d M\d L3", log[said:back])
    assert first, log[said:back][-2000:]
    start = said + first.start()
    assert "sent BUY" not in log[start:back] and "sent SELL" not in log[start:back]
    assert "sent " in log[back:]
    shown = re.findall(r"state (O\d D\d M\d L\d E\d S\d)", log[start:back])
    assert shown and all(" L3 " in s for s in shown), shown      # no quote throughout
    if only is None:
        assert any(s.endswith("S2") for s in shown), shown      # and the quote ages: data lag


# ---- --store atreyu, against a fake atreyu_backtrader_api (the real one needs IB's TWS API) ---
FAKES = __import__("pathlib").Path(__file__).resolve().parent / "fakes"


@pytest.fixture
def fake_atreyu(monkeypatch):
    """The fake package importable for this test only; signal handlers left alone."""
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.delitem(sys.modules, "atreyu_backtrader_api", raising=False)
    monkeypatch.setattr("signal.signal", lambda *a: None)
    yield
    sys.modules.pop("atreyu_backtrader_api", None)


def test_store_atreyu_missing_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "atreyu_backtrader_api", None)     # not importable
    from runners.live import main
    assert main(["--store", "atreyu"]) == 2
    err = capsys.readouterr().err
    assert "atreyu_backtrader_api" in err and "TWS API" in err and "pip install" in err


def test_store_atreyu_builds_feeds_and_broker_from_it_and_the_strategy_hedges(fake_atreyu, caplog):
    from runners.live import main
    caplog.set_level("INFO")
    rc = main(["--store", "atreyu", "--set", "gates.guard.risk.paper_trade=false",
               "--set", "ib.port=4002", "--set", "ib.client_id=23",
               "--leg", "20260206:170:C", "--leg", "20260206:170:P"])
    import atreyu_backtrader_api as fake
    assert rc == 0, caplog.text[-2000:]
    # the runner asked atreyu for its store, the stock, both legs (as atreyu spells them), the broker
    assert fake.CALLS["store"][0] == {"host": "127.0.0.1", "port": 4002, "clientId": 23, "timeout": 10.0}
    stock, *legs = fake.CALLS["getdata"]
    assert (stock["dataname"], stock["secType"], stock["what"]) == ("NVDA", "STK", "BID_ASK")
    assert [(g["secType"], g["expiry"], g["strike"], g["right"], g["what"]) for g in legs] == [
        ("OPT", "20260206", 170.0, "C", "MIDPOINT"), ("OPT", "20260206", 170.0, "P", "MIDPOINT")]
    assert all(g["timeframe"] == bt.TimeFrame.Ticks and g["exchange"] == "SMART" for g in fake.CALLS["getdata"])
    assert fake.CALLS["getbroker"] == 1
    # the strategy ran on them: greeks from the option mids, hedges through atreyu's broker,
    # selling stock as the spot rises under a long straddle, never on atreyu's backfill bars
    orders = fake.CALLS["orders"]
    assert orders and all(o["secType"] == "STK" and o["side"] == "SELL" for o in orders), orders
    assert not [o for o in orders if o["time"] in fake.HISTORY_TIMES]
    assert min(o["time"] for o in orders) > max(fake.HISTORY_TIMES)
    assert "execution_disconnected" in caplog.text             # the history bars were refused (E3)
    final = json_final(caplog.text)
    assert final["hedges"] == len(orders)
    assert final["positions"]["NVDA"] == -sum(o["size"] for o in orders)


def test_store_atreyu_refuses_paper_trade_and_bad_legs(fake_atreyu, capsys):
    from runners.live import main
    assert main(["--store", "atreyu", "--leg", "20260206:170:C"]) == 2        # paper_trade: true
    assert "paper_trade" in capsys.readouterr().err
    assert main(["--store", "atreyu", "--set", "gates.guard.risk.paper_trade=false",
                 "--leg", "170:C"]) == 2
    assert "EXPIRY:STRIKE:RIGHT" in capsys.readouterr().err


def json_final(text: str) -> dict:
    import json
    m = re.search(r"final: (\{.*\})", text)
    assert m, text[-2000:]
    return json.loads(m.group(1))


def test_leg_spec_and_bid_ask_mid():
    from stores.atreyu import bid_ask_mid, leg_spec
    assert leg_spec("20260206:170:c") == ("20260206", 170.0, "C")
    for bad in ("2026-02-06:170:C", "20260206:-1:C", "20260206:170:X", "20260206:170"):
        with pytest.raises(ValueError, match="EXPIRY:STRIKE:RIGHT"):
            leg_spec(bad)
    assert bid_ask_mid(1.0, 1.2) == (1.0, 1.2, 1.1)
    for bid, ask in ((1.2, 1.0), (0.0, 1.0), (math.nan, 1.0), (None, 1.0)):
        assert all(x != x for x in bid_ask_mid(bid, ask))


# ---- the gateway's no_data fault and the feeds' values ----------------------------------
@needs_client
def test_gateway_no_data_fault_errors_every_request_then_streams_again(sim):
    ib = ibi.IB()
    errors = []
    ib.errorEvent += lambda req, code, text, contract: (
        errors.append((req, code, contract)) if code in (354, 10197) else None)
    ib.connect("127.0.0.1", sim.port, clientId=77, timeout=10)
    try:
        [stk] = ib.qualifyContracts(ibi.Stock("NVDA", "SMART", "USD"))
        t = ib.reqMktData(stk)
        end = time.monotonic() + 5
        while t.bid != t.bid and time.monotonic() < end:
            ib.sleep(0.05)
        ticks = []
        t.updateEvent += lambda tk: ticks.append(1)
        sim.inject("no_data", code=10197, seconds=1.5)
        end = time.monotonic() + 5
        while not errors and time.monotonic() < end:
            ib.sleep(0.05)
        assert errors and errors[0][1] == 10197 and errors[0][2].conId == stk.conId
        ticks.clear()
        ib.sleep(0.5)
        assert not ticks                                        # silent while it lasts
        assert "no_data" in sim.state()["faults"]
        ib.cancelMktData(stk)
        t = ib.reqMktData(stk)                                  # a new request is refused too
        end = time.monotonic() + 5
        while len(errors) < 2 and time.monotonic() < end:
            ib.sleep(0.05)
        assert [e[1] for e in errors] == [10197, 10197]
        t.updateEvent += lambda tk: ticks.append(1)
        end = time.monotonic() + 10
        while not ticks and time.monotonic() < end:             # the fault ends: it streams
            ib.sleep(0.05)
        assert ticks and "no_data" not in sim.state()["faults"]
    finally:
        ib.disconnect()


def test_gateway_no_data_fault_validates_its_code():
    from ibsim.faults import FaultError, validate_fault
    assert validate_fault("no_data", {}) == {"code": 354, "message": "", "seconds": None, "sec_type": None}
    with pytest.raises(FaultError, match="code"):
        validate_fault("no_data", {"code": 200})
    with pytest.raises(FaultError, match="sec_type"):
        validate_fault("no_data", {"sec_type": "FUT"})


@needs_client
def test_feed_history_bars_and_missing_data_values():
    from feeds.ibdata import IBOptionData, IBStockData
    opt = ibi.Option("NVDA", "20260206", 170.0, "C", "SMART", multiplier="100")
    d = IBOptionData(store=None, contract=opt)
    d.ticker = ibi.Ticker(contract=opt)
    d.ticker.bid, d.ticker.ask = 5.0, 5.2            # set after: ib_async's Ticker clears them at init
    d.push_snapshot(1.0)
    d.push_history(2.0, None)                        # IB had no bar for the leg
    d.push_history(3.0, (None, 5.3, 5.4, 5.2, 5.35))
    d.no_data = True                                 # 354/10197
    d.push_snapshot(4.0)
    live, carried, bar, missing = [v for _, v in d._queue]
    assert live["close"] == pytest.approx(5.1) and live["backfill"] == 0.0
    assert carried["backfill"] == 1.0 and carried["close"] == pytest.approx(5.1)   # last mark kept
    assert carried["bid"] != carried["bid"] and carried["delta"] != carried["delta"]  # no quote
    assert carried["strike"] == 170.0 and carried["right"] == 1.0
    assert (bar["open"], bar["high"], bar["low"], bar["close"], bar["backfill"]) == (5.3, 5.4, 5.2, 5.35, 1.0)
    assert all(missing[k] != missing[k] for k in ("bid", "ask", "delta", "gamma", "iv"))
    assert missing["close"] == pytest.approx(5.1)     # the last mark values the position
    stk = ibi.Stock("NVDA", "SMART", "USD")
    s = IBStockData(store=None, contract=stk)
    s.push_history(2.0, (None, 170.0, 170.5, 169.9, 170.2))
    [(_, v)] = s._queue
    assert v["close"] == 170.2 and v["age_ms"] == 0.0 and v["backfill"] == 1.0 and v["bid"] != v["bid"]


@needs_client
def test_backfill_requests_keep_to_pacing(caplog):
    """The same gap asked twice within 15 s: the second request never reaches IB."""
    from stores.ibstore import IBStore
    store = IBStore()
    asked = []
    store.ib.reqHistoricalData = lambda contract, **kw: asked.append(kw) or []
    contract = ibi.Stock("NVDA", "SMART", "USD")
    contract.conId = 4815747
    utc = dt.datetime(2026, 3, 2, 15, 20, tzinfo=dt.timezone.utc)
    req = gap_request(T0, T0 + dt.timedelta(minutes=20), utc, 5)
    assert store._gap_bars(contract, req) == [] and store._gap_bars(contract, req) == []
    assert len(asked) == 1
    assert asked[0] == {"endDateTime": "20260302-15:20:00", "durationStr": "1500 S",
                        "barSizeSetting": "5 mins", "whatToShow": "MIDPOINT", "useRTH": True,
                        "formatDate": 2, "timeout": 10.0}
    assert "IB pacing" in caplog.text


class ResubscribeOnce:
    """Send 1101 (data lost: the store re-subscribes) after 20 bars; 20 bars later note
    how many handlers each feed's Ticker has, and stop."""

    def __init__(self, sim):
        self.sim, self.at, self.handlers = sim, None, None

    def __call__(self, strat):
        n = len(strat.bars)
        if self.at is None and n >= 20:
            self.sim.inject("error_1101")
            self.at = n
        elif self.at is not None and n >= self.at + 20 and self.handlers is None:
            self.handlers = [len(d.ticker.updateEvent) for d in strat.datas
                             if d.ticker is not None]          # free option slots stream nothing
            strat.env.runstop()


@needs_client
def test_resubscribe_binds_each_ticker_once(sim):
    """IB hands back the same Ticker for the same contract: binding it again would turn
    every tick into two bars."""
    ctl = ResubscribeOnce(sim)
    run_in_process(sim.port, ctl)
    assert ctl.handlers and all(h == 1 for h in ctl.handlers), ctl.handlers


@needs_client
def test_stock_shows_no_quote_while_a_held_leg_has_no_data():
    """The stock keeps its price but loses its quote (L3) while a held leg has none: the
    leg's greeks could only be guessed. A leg not held does not matter."""
    import types
    from feeds.ibdata import IBOptionData, IBStockData
    held = {}
    store = types.SimpleNamespace(no_data={}, datas=[],
                                  broker=types.SimpleNamespace(
                                      getposition=lambda d: types.SimpleNamespace(size=held.get(d, 0))))
    stk = IBStockData(store=store, contract=ibi.Stock("NVDA", "SMART", "USD"))
    stk.ticker = ibi.Ticker(contract=stk.contract)
    stk.ticker.bid, stk.ticker.ask = 170.0, 170.02
    leg = IBOptionData(store=store, contract=ibi.Option("NVDA", "20260206", 170.0, "C", "SMART"))
    store.datas[:] = [stk, leg]
    leg.no_data, store.no_data = True, {1: 354}
    stk.push_snapshot(1.0)                            # the leg is not held: quoted as usual
    held[leg] = 10
    stk.push_snapshot(2.0)                            # held: no quote, the price kept
    leg.no_data, store.no_data = False, {}
    stk.push_snapshot(3.0)
    (_, a), (_, b), (_, c) = stk._queue
    assert (a["bid"], a["ask"]) == (170.0, 170.02)
    assert b["bid"] != b["bid"] and b["ask"] != b["ask"] and b["close"] == pytest.approx(170.01)
    assert (c["bid"], c["ask"]) == (170.0, 170.02)
