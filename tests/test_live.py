"""The live runner end to end: the real ib_insync client in runners/live.py, over a
real socket, against our paper gateway (ibsim) on 127.0.0.1."""
import json
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from stores.ibclient import ibi  # noqa: E402

if ibi is None:
    pytest.skip("neither ib_insync nor ib_async is installed", allow_module_level=True)
from ibsim.server import SimThread  # noqa: E402
from runners.backtest import ROOT_DIR  # noqa: E402

LIVE = [sys.executable, str(ROOT_DIR / "runners" / "live.py"), "--config",
        str(ROOT_DIR / "configs" / "sim.yaml")]
from conftest import SIM, wait_for  # noqa: E402  (shared by the live tests)


class Runner:
    """runners/live.py as a real process; stop() sends SIGINT and returns its log."""

    def __init__(self, port, *sets, client_id=17):
        args = LIVE + ["--set", f"ib.port={port}", "--set", f"ib.client_id={client_id}",
                       "--set", "ib.retry_seconds=0.5"]
        for s in sets:
            args += ["--set", s]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)

    def stop(self, sig=signal.SIGINT):
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=15)
        self.stop_seconds = time.monotonic() - t0
        self.log = err
        return err

    def final(self) -> dict:
        m = re.search(r"final: (\{.*\})", self.log)
        assert m, self.log[-3000:]
        return json.loads(m.group(1))


def our_executions(state):
    return [e for e in state["executions"] if e.get("orderRef") == "bifrost-gamma"]


def hedges_in(log):
    return [int(m.group(1)) for m in re.finditer(r"hedge ([+-]\d+) shares", log)]


def stock_position(state):
    return sum(p["position"] for p in state["account"]["positions"] if p["secType"] == "STK")


def test_live_hedges_right_side_and_size_and_books_match(sim):
    r = Runner(sim.port)
    assert wait_for(lambda: len(our_executions(sim.state())) >= 3, timeout=40)
    log = r.stop()
    assert r.proc.returncode == 0, log[-2000:]
    assert r.stop_seconds < 5
    state = sim.state()
    execs = our_executions(state)
    hedges = hedges_in(log)
    # every hedge the strategy decided reached the gateway once, with its side and size,
    # in the order it was decided (at most the last one was still in flight at the stop)
    by_order = {}
    for e in execs:
        by_order[e["orderId"]] = by_order.get(e["orderId"], 0) + (
            e["shares"] if e["side"] == "BOT" else -e["shares"])
    fills = [by_order[k] for k in sorted(by_order)]
    assert fills == hedges[:len(fills)] and len(hedges) - len(fills) <= 1, (fills, hedges)
    # positions and cash in Backtrader match the gateway's
    final = r.final()
    assert final["positions"]["4815747"] == stock_position(state)
    assert final["cash"] == pytest.approx(state["account"]["cash"], abs=0.02)
    assert "LIVE ORDERS ARE SENT TO IB" in log


def test_paper_mode_sends_nothing(sim):
    r = Runner(sim.port, "gates.guard.risk.paper_trade=true")
    time.sleep(12)
    log = r.stop()
    assert r.proc.returncode == 0
    assert "PAPER TRADE" in log
    assert hedges_in(log), log[-2000:]                        # it hedged, locally
    state = sim.state()
    assert state["orders"] == [] and state["executions"] == []
    assert stock_position(state) == 0
    assert r.final()["positions"]["4815747"] == sum(hedges_in(log))


def test_gateway_down_is_a_message_and_a_retry_loop():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                             # nothing listens here
    r = Runner(port)
    time.sleep(3)
    assert r.proc.poll() is None                              # still alive, retrying
    log = r.stop(signal.SIGTERM)
    assert r.proc.returncode == 0 and r.stop_seconds < 5
    assert "not reachable" in log and "Traceback" not in log


def test_client_id_in_use_gets_a_plain_message(sim):
    first = Runner(sim.port, "gates.guard.risk.paper_trade=true")
    assert wait_for(lambda: len(sim.state()["clients"]) == 1)
    second = Runner(sim.port, "gates.guard.risk.paper_trade=true")
    time.sleep(4)
    log2 = second.stop()
    first.stop()
    assert "already in use" in log2 and second.proc.returncode == 0


def test_disconnect_reconnects_and_never_duplicates(sim):
    r = Runner(sim.port)
    assert wait_for(lambda: len(our_executions(sim.state())) >= 1, timeout=40)
    sim.inject("disconnect", refuse_seconds=1.0)
    n_before = len(our_executions(sim.state()))
    assert wait_for(lambda: len(our_executions(sim.state())) > n_before + 1, timeout=40)
    log = r.stop()
    assert r.proc.returncode == 0
    assert "disconnected" in log and log.count("connected to 127.0.0.1") >= 2
    execs = our_executions(sim.state())
    assert len({e["execId"] for e in execs}) == len(execs)
    orders = [o for o in sim.state()["orders"] if o.get("orderRef") == "bifrost-gamma"]
    assert len({o["orderId"] for o in orders}) == len(orders)  # nothing sent twice
    assert r.final()["positions"]["4815747"] == stock_position(sim.state())


def test_rejected_order_blocks_then_recovers(sim):
    sim.inject("reject_next", count=1)
    r = Runner(sim.port, "gates.state.execution.error_retry_seconds=600")
    assert wait_for(lambda: len(our_executions(sim.state())) >= 1, timeout=60)
    log = r.stop()
    assert "refused by IB (201)" in log
    assert "execution_broker_error" in log                    # E4 held the next hedges off
    assert r.final()["positions"]["4815747"] == stock_position(sim.state())


def test_bad_quotes_do_not_hedge_and_do_not_crash(sim):
    r = Runner(sim.port)
    assert wait_for(lambda: len(our_executions(sim.state())) >= 1, timeout=40)
    sim.inject("bad_data", kind="crossed", ticks=40)
    time.sleep(3)
    sim.inject("bad_data", kind="nan", ticks=40)
    time.sleep(3)
    n = len(our_executions(sim.state()))
    assert wait_for(lambda: len(our_executions(sim.state())) > n, timeout=40)   # recovers
    log = r.stop()
    assert r.proc.returncode == 0 and "Traceback" not in log


def test_restart_restores_the_daily_count_and_cooldown(sim):
    r = Runner(sim.port)
    assert wait_for(lambda: len(our_executions(sim.state())) >= 2, timeout=40)
    r.stop()
    n = len({e["orderId"] for e in our_executions(sim.state())})
    r2 = Runner(sim.port)
    time.sleep(4)
    log = r2.stop()
    m = re.search(r"restored (\d+) hedge\(s\)", log)
    assert m and int(m.group(1)) >= n, log[-2000:]


def test_option_position_changed_outside_is_noticed_and_used(sim):
    """A manual trade in a leg (another client): the engine logs it and hedges the new
    size, never the old one."""
    r = Runner(sim.port)
    assert wait_for(lambda: len(sim.state()["clients"]) == 1, timeout=20)
    time.sleep(2)
    ib = ibi.IB()
    ib.connect("127.0.0.1", sim.port, clientId=55, timeout=10)
    leg = next(p.contract for p in ib.positions() if p.contract.secType == "OPT")
    leg.exchange = "SMART"
    ib.placeOrder(leg, ibi.MarketOrder("SELL", 4))
    ib.sleep(3)
    ib.disconnect()
    time.sleep(2)
    log = r.stop()
    assert "changed outside the engine: 10.0 -> 6.0" in log
    assert r.final()["positions"][str(leg.conId)] == 6.0


def test_stale_quotes_block_as_data_lag_and_clear(sim):
    """The gateway stops quoting: heartbeat bars keep the strategy running, it sees the
    quote age (S2 DATA_LAG) and no order leaves; quotes return: S0 and hedging again."""
    r = Runner(sim.port)
    assert wait_for(lambda: len(our_executions(sim.state())) >= 1, timeout=40)
    sim.inject("stale", seconds=7)
    time.sleep(1.0)
    n = len(our_executions(sim.state()))
    time.sleep(5.0)
    assert len(our_executions(sim.state())) == n                # nothing sent while stale
    assert wait_for(lambda: len(our_executions(sim.state())) > n, timeout=40)
    log = r.stop()
    states = re.findall(r"state (O\d D\d M\d L\d E\d S\d)", log)
    stale = [i for i, s in enumerate(states) if s.endswith("S2")]
    assert stale, states[-20:]
    assert states[stale[-1] + 1:] and states[-1].endswith("S0")   # cleared


def test_partial_fill_is_tracked_to_completion(sim):
    sim.inject("partial_fill", fraction=0.5, rest_after=3.0, count=1)
    r = Runner(sim.port)
    assert wait_for(lambda: len(our_executions(sim.state())) >= 3, timeout=40)
    r.stop()
    first = min(e["orderId"] for e in our_executions(sim.state()))
    assert len([e for e in our_executions(sim.state()) if e["orderId"] == first]) == 2
    assert r.final()["positions"]["4815747"] == stock_position(sim.state())


def test_1101_resubscribes_and_1102_keeps_going(sim):
    r = Runner(sim.port)
    assert wait_for(lambda: len(our_executions(sim.state())) >= 1, timeout=40)
    sim.inject("error_1101")
    n = len(our_executions(sim.state()))
    assert wait_for(lambda: len(our_executions(sim.state())) > n, timeout=40)
    sim.inject("error_1102")
    n = len(our_executions(sim.state()))
    assert wait_for(lambda: len(our_executions(sim.state())) > n, timeout=40)
    log = r.stop()
    assert "re-subscribing" in log and "data kept (1102)" in log
    assert r.proc.returncode == 0


def test_wide_spreads_block_as_liquidity_and_clear(sim):
    r = Runner(sim.port)
    assert wait_for(lambda: len(our_executions(sim.state())) >= 1, timeout=40)
    sim.inject("widen", factor=80.0, seconds=5)                # 1 bp -> 0.8%: L2
    time.sleep(1.0)
    n = len(our_executions(sim.state()))
    time.sleep(3.0)
    assert len(our_executions(sim.state())) == n                # nothing sent on wide quotes
    assert wait_for(lambda: len(our_executions(sim.state())) > n, timeout=40)
    log = r.stop()
    states = re.findall(r"state (O\d D\d M\d L\d E\d S\d)", log)
    wide = [i for i, s in enumerate(states) if " L2 " in s]
    assert wide and " L0 " in states[-1]


def test_managed_structure_buys_the_straddle_then_hedges():
    """``structure.manage: true`` live: from an empty account the engine picks the
    straddle from the chain (reqSecDefOptParams), buys it, and hedges its delta."""
    with SimThread({**SIM, "positions": []}) as s:
        r = Runner(s.port, "gates.strategy.structure.manage=true")
        assert wait_for(lambda: len(our_executions(s.state())) >= 3, timeout=40)
        log = r.stop()
        execs = our_executions(s.state())
    assert "candidate legs" in log and "straddle" in log
    opts = [e for e in execs if e.get("contract", "").endswith(("C", "P"))]
    assert {e["contract"][-1] for e in opts} == {"C", "P"}
    assert all(e["side"] == "BOT" and e["shares"] == 10 for e in opts[:2])
    assert any(e.get("contract") == "NVDA" for e in execs)     # and the hedge
