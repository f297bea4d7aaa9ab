"""Live structure: rolls under ``structure.manage: true`` and option slots re-planned
while running (stores.slots), end to end: runners/live.py as a process, the real
ib_insync client, our paper gateway (ibsim) on 127.0.0.1."""
import datetime as dt
import logging
import math
import re
import signal
import subprocess
import threading
import time

import pytest

from stores.ibclient import ibi

if ibi is None:
    pytest.skip("neither ib_insync nor ib_async is installed", allow_module_level=True)
from ibsim.server import SimThread  # noqa: E402
from test_live import LIVE, SIM, our_executions, stock_position, wait_for  # noqa: E402
from test_live import Runner as _Runner  # noqa: E402


_STARTED = []


@pytest.fixture(autouse=True)
def _no_orphans():
    """A test that fails before ``stop()`` must not leave its engine running."""
    yield
    while _STARTED:
        proc = _STARTED.pop().proc
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


class Runner(_Runner):
    """test_live's Runner, with its stderr read while it runs: an unread pipe fills
    (64 KiB) and would block the engine on its next log line."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _STARTED.append(self)
        self._err = []
        self._reader = threading.Thread(target=lambda: self._err.extend(self.proc.stderr), daemon=True)
        self._reader.start()

    def stop(self, sig=signal.SIGINT):
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=15)
        self._reader.join(5)
        self.stop_seconds = time.monotonic() - t0
        self.log = "".join(self._err)
        return self.log

BARS_PER_DAY = 78                                  # 5-minute bars in a session
BAR_SECONDS = 300.0


class UnreadRunner(_Runner):
    """test_live's Runner (stderr read only at stop), logging at DEBUG: a lot of output."""

    def __init__(self, port, *sets):
        args = LIVE + ["--log-level", "DEBUG", "--set", f"ib.port={port}", "--set", "ib.client_id=17"]
        for x in sets:
            args += ["--set", x]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        _STARTED.append(self)


def states(log):
    return [(m.group(1), float(m.group(2)), float(m.group(3)))
            for m in re.finditer(r"state (O\d D\d M\d L\d E\d S\d) net delta (\S+) gamma (\S+)", log)]


def option_positions(state):
    return {p["conId"]: p["position"] for p in state["account"]["positions"] if p["secType"] == "OPT"}


def parse(describe):
    """'NVDA 20260213 170C' -> (expiry date, strike, right)."""
    _, e, kr = describe.split()
    return dt.date(int(e[:4]), int(e[4:6]), int(e[6:])), float(kr[:-1]), kr[-1]


def books_match(final, state):
    """Every option and the stock: Backtrader's position equals the gateway's."""
    gw = {str(k): v for k, v in option_positions(state).items()}
    gw["4815747"] = stock_position(state)
    for con_id, size in final["positions"].items():
        assert size == gw.get(con_id, 0.0), (con_id, size, gw.get(con_id))
    for con_id, size in gw.items():
        assert final["positions"].get(con_id) == size, (con_id, size, final["positions"])


def test_roll_closes_old_legs_opens_new_ones_and_keeps_hedging():
    """DTE falls below min_dte (the gateway's clock jumps 5 sessions): the engine sells the
    old straddle, buys one inside the DTE window and the ATM band, its books equal the
    gateway's, E returns to E0 and it hedges again."""
    with SimThread(SIM) as sim:
        old = set(option_positions(sim.state()))
        r = Runner(sim.port, "gates.strategy.structure.manage=true")
        assert wait_for(lambda: len(our_executions(sim.state())) >= 1, timeout=40)
        sim.advance(5 * BARS_PER_DAY * BAR_SECONDS)          # Monday -> next Monday: DTE 25 -> 18

        def rolled():
            pos = option_positions(sim.state())
            return all(not pos.get(c) for c in old) and sum(1 for v in pos.values() if v == 10) == 2
        assert wait_for(rolled, timeout=60), sim.state()["account"]["positions"]
        n_roll = len(our_executions(sim.state()))
        # it goes on hedging after the roll (stock orders of ours after the option trades):
        # two, since the first may be the roll's own bar (hedged against the new legs), and
        # a later one needs E back at E0
        assert wait_for(lambda: sum(e["contract"] == "NVDA"
                                    for e in our_executions(sim.state())[n_roll:]) >= 2, timeout=60)
        log = r.stop()
        state = sim.state()
    assert r.proc.returncode == 0 and "Traceback" not in log
    execs = our_executions(state)
    opts = [e for e in execs if e["conId"] != 4815747]
    closes = [e for e in opts if e["conId"] in old]
    assert sorted((e["side"], e["shares"]) for e in closes) == [("SLD", 10.0), ("SLD", 10.0)]
    new = [e for e in opts if e["conId"] not in old]
    assert sorted((e["side"], e["shares"], parse(e["contract"])[2]) for e in new) == \
        [("BOT", 10.0, "C"), ("BOT", 10.0, "P")]
    day = dt.date.fromisoformat(new[0]["time"][:10])
    (expiry, strike), = {parse(e["contract"])[:2] for e in new}   # one straddle
    assert 21 <= (expiry - day).days <= 35                          # inside the DTE window
    price = {parse(e["contract"])[2]: e["price"] for e in new}
    tau = ((expiry - day).days + 0.3) / 365.0
    spot = price["C"] - price["P"] + strike * math.exp(-0.05 * tau)  # put-call parity
    assert abs(strike - spot) / spot <= 0.03                        # inside the ATM band
    # books: Backtrader's positions equal the gateway's, every instrument
    books_match(r.final(), state)
    # E back to E0 after the roll's orders (never stuck in E1), and hedging on
    roll_at = log.index(" straddle ")
    after = [s for s, _, _ in states(log[roll_at:])]
    assert any(" E0 " in s for s in after[1:])
    assert re.search(r"hedge [+-]\d+ shares", log[roll_at:])


def test_position_from_another_client_gets_a_slot_is_counted_and_hedged():
    """A straddle bought by hand while the engine runs (TWS, another client): a spare
    slot takes each leg, net gamma includes it, and the engine hedges the new delta."""
    with SimThread(SIM) as sim:
        r = Runner(sim.port)
        assert wait_for(lambda: len(our_executions(sim.state())) >= 1, timeout=40)
        first = option_positions(sim.state())
        expiry = parse(next(p["contract"] for p in sim.state()["account"]["positions"]
                            if p["secType"] == "OPT"))[0] + dt.timedelta(days=7)
        q = sim.state()["quote"]
        strike = round((q["bid"] + q["ask"]) / 2 / 5.0) * 5.0
        for right in ("C", "P"):
            sim.trade({"secType": "OPT", "lastTradeDateOrContractMonth": f"{expiry:%Y%m%d}",
                       "strike": strike, "right": right}, "BUY", 10)
        n = len(our_executions(sim.state()))
        assert wait_for(lambda: len(our_executions(sim.state())) > n, timeout=40)   # hedges on
        log = r.stop()
        state = sim.state()
    assert r.proc.returncode == 0 and "Traceback" not in log
    for right in ("C", "P"):
        assert re.search(rf"slot NVDA-slot\d: free -> {expiry:%Y%m%d} {strike:g}{right} \(new position\)",
                         log), log[-3000:]
    new = {c: v for c, v in option_positions(state).items() if c not in first}
    assert sorted(new.values()) == [10.0, 10.0]
    final = r.final()
    assert all(final["positions"][str(c)] == 10.0 for c in new)
    books_match(final, state)
    # net gamma before the trade is one straddle's; after it, two (both ATM-ish, 10 lots)
    at = log.index("(new position)")
    before = [g for s, _, g in states(log[:at]) if s.startswith("O1")]
    after = [g for s, _, g in states(log[at:]) if s.startswith("O1") and s.endswith("S0")]
    assert before and after, log[-3000:]
    assert after[-1] > 1.6 * before[-1], (before[-1], after[-1])
    # the leg was never hedged on a guess: until it was quoted, the state was S1 or it counted
    assert "contract changed while holding" not in log


def test_no_free_slot_is_loud_and_the_leg_only_reported():
    """No spare slot: a straddle bought by hand is logged loudly and reported, and net
    gamma stays the one straddle's (it is not counted, nor hedged on a guess)."""
    with SimThread(SIM) as sim:
        r = Runner(sim.port, "ib.spare_slots=0")
        assert wait_for(lambda: len(our_executions(sim.state())) >= 1, timeout=40)
        leg = next(p["contract"] for p in sim.state()["account"]["positions"] if p["secType"] == "OPT")
        expiry = parse(leg)[0] + dt.timedelta(days=7)
        for right in ("C", "P"):
            sim.trade({"secType": "OPT", "lastTradeDateOrContractMonth": f"{expiry:%Y%m%d}",
                       "strike": parse(leg)[1], "right": right}, "BUY", 10)
        bar = sim.state()["clock"]["bar_index"]
        assert wait_for(lambda: sim.state()["clock"]["bar_index"] >= bar + 12, timeout=30)  # an hour on
        log = r.stop()
    assert r.proc.returncode == 0 and "Traceback" not in log
    assert log.count("NO FREE OPTION SLOT") >= 2 and "reported, not hedged" in log
    at = log.index("NO FREE OPTION SLOT")
    before = [g for s, _, g in states(log[:at]) if s.startswith("O1")]
    after = [g for s, _, g in states(log[at:]) if s.startswith("O1")]
    assert before and after and max(after) < 1.3 * max(before), (before, after)


def test_candidates_follow_the_date_under_manage():
    """manage: true, five sessions later: expiries that entered the DTE window get
    slots (re-planned, logged), the ones that left it are released when flat, and the
    engine rolls into the window without a restart."""
    with SimThread(SIM) as sim:
        r = Runner(sim.port, "gates.strategy.structure.manage=true")
        assert wait_for(lambda: len(our_executions(sim.state())) >= 1, timeout=40)
        start = dt.date.fromisoformat(sim.state()["clock"]["market_time"][:10])
        sim.advance(10 * BARS_PER_DAY * BAR_SECONDS)         # two weeks: DTE 25 -> 11
        assert wait_for(lambda: sum(1 for v in option_positions(sim.state()).values() if v == 10) == 2
                        and all(parse(p["contract"])[0] > start + dt.timedelta(days=35)
                                for p in sim.state()["account"]["positions"] if p["secType"] == "OPT"),
                        timeout=60), sim.state()["account"]["positions"]
        log = r.stop()
        state = sim.state()
    assert r.proc.returncode == 0 and "Traceback" not in log
    assert "option slots re-planned" in log
    # the start's candidates had expiries up to start + 35 days; the roll went beyond
    held = [parse(p["contract"]) for p in state["account"]["positions"] if p["secType"] == "OPT"]
    assert {h[2] for h in held} == {"C", "P"} and len({h[:2] for h in held}) == 1
    books_match(r.final(), state)


def test_an_unread_log_pipe_never_stalls_the_engine():
    """The E1 stall after a roll: the engine's stderr was a pipe nobody read (as in
    test_live's Runner, or ``live.py 2>&1 | less`` paused); once 64 KiB were queued
    the engine blocked in a log write with its orders working, and read nothing more.
    Now log lines go through a bounded queue: lines are dropped (and counted), trading
    goes on. DEBUG logging fills the pipe within seconds."""
    with SimThread(SIM) as sim:
        old = set(option_positions(sim.state()))
        r = UnreadRunner(sim.port, "gates.strategy.structure.manage=true")
        assert wait_for(lambda: len(our_executions(sim.state())) >= 1, timeout=40)
        sim.advance(5 * BARS_PER_DAY * BAR_SECONDS)
        assert wait_for(lambda: all(not option_positions(sim.state()).get(c) for c in old), timeout=60)
        n = len(our_executions(sim.state()))
        assert wait_for(lambda: len([e for e in our_executions(sim.state())[n:]
                                     if e["contract"] == "NVDA"]) >= 3, timeout=90)
        log = r.stop()
        state = sim.state()
    assert r.proc.returncode == 0
    # the pipe (64 KiB) filled long before the end, and the engine went on deciding
    # hedges well after that (their lines waited in the engine's log queue)
    hedges = [m.start() for m in re.finditer(r"hedge [+-]\d+ shares", log)]
    assert len(log) > 4 * 65536 and hedges and hedges[-1] > 2 * 65536, (len(log), hedges)
    assert r.final()["positions"]["4815747"] == stock_position(state)


def test_log_writer_drops_instead_of_blocking():
    """The engine's log handler: a stream that does not take writes (a full pipe) costs
    the caller nothing; the lines that did not fit are counted and said."""
    from runners.logwriter import LogWriter

    class Stuck:
        def __init__(self):
            self.go, self.out = threading.Event(), []

        def write(self, text):
            self.go.wait()
            self.out.append(text)

        def flush(self):
            pass

    stream = Stuck()
    h = LogWriter(stream, size=10)
    h.setFormatter(logging.Formatter("%(message)s"))
    t0 = time.monotonic()
    for i in range(500):
        h.emit(logging.makeLogRecord({"msg": f"line {i}", "levelno": logging.INFO}))
    assert time.monotonic() - t0 < 0.5                       # never waited on the stream
    assert h.dropped >= 500 - 12
    stream.go.set()
    h.emit(logging.makeLogRecord({"msg": "after", "levelno": logging.WARNING}))
    h.close()
    text = "".join(stream.out)
    assert "log line(s) dropped" in text and text.rstrip().endswith("after")


def test_an_order_ib_never_finishes_is_cancelled_and_hedging_resumes():
    """A partial fill whose rest never comes (E2 for ever before): after
    ``ib.order_timeout_seconds`` the broker cancels the rest at IB; the order ends
    Cancelled with its fill kept, the books match, and the engine hedges again."""
    with SimThread(SIM) as sim:
        sim.inject("partial_fill", fraction=0.5, rest_after=None, count=1)
        r = Runner(sim.port, "ib.order_timeout_seconds=2")
        assert wait_for(lambda: len(our_executions(sim.state())) >= 1, timeout=40)
        first = our_executions(sim.state())[0]["orderId"]
        assert wait_for(lambda: next(o for o in sim.state()["orders"] if o["orderId"] == first)["status"]
                        == "Cancelled", timeout=20)
        assert wait_for(lambda: any(e["orderId"] != first for e in our_executions(sim.state())), timeout=40)
        log = r.stop()
        state = sim.state()
    assert r.proc.returncode == 0 and "Traceback" not in log
    order = next(o for o in state["orders"] if o["orderId"] == first)
    assert 0 < order["filled"] < order["quantity"]
    assert f"order {first} " in log and "cancelling it at IB" in log
    assert r.final()["positions"]["4815747"] == stock_position(state)
    after = log[log.index("cancelling it at IB"):]
    assert re.search(r"state O\d D\d M\d L\d E0 S\d", after)           # E2 did not last


def test_control_endpoint_trade_books_another_clients_fill():
    """POST /trade: a fill by "another client" (client 0, no orderRef), at the quote;
    an API client subscribed to positions sees the new position; bad requests are 400."""
    import json
    import urllib.error
    import urllib.request

    def http(port, path, body):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    s = SimThread(SIM)
    s.start(port=0, control_port=0)
    try:
        ib = ibi.IB()
        ib.connect("127.0.0.1", s.port, clientId=31, timeout=10)
        leg = next(p["contract"] for p in s.state()["account"]["positions"] if p["secType"] == "OPT")
        expiry, strike, _ = parse(leg)
        code, out = http(s.sim.control_port, "/trade", {
            "contract": {"secType": "OPT", "lastTradeDateOrContractMonth": f"{expiry:%Y%m%d}",
                         "strike": strike + 5, "right": "P"}, "action": "SELL", "quantity": 3})
        assert code == 200 and out["execution"]["clientId"] == 0 and out["execution"]["side"] == "SLD"
        con_id = out["execution"]["conId"]
        def seen():
            ib.sleep(0.05)                                       # let the client read
            return any(p.contract.conId == con_id and p.position == -3 for p in ib.positions())
        assert wait_for(seen, timeout=10, step=0.05)
        assert option_positions(s.state())[con_id] == -3
        code, out = http(s.sim.control_port, "/trade", {"contract": {"secType": "OPT", "strike": 3.3},
                                                         "action": "BUY", "quantity": 1})
        assert code == 400 and "contract" in out["error"]
        code, out = http(s.sim.control_port, "/trade", {"contract": {"conId": con_id}, "action": "HOLD",
                                                         "quantity": 1})
        assert code == 400 and "action" in out["error"]
        ib.disconnect()
    finally:
        s.stop()
