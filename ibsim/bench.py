"""Measure the simulator with the real ib_insync client (sim in its own process).

    python -m ibsim.bench [--subs 1,50,200] [--orders 200] [--seconds 5]

Prints JSON: messages/ticks per second delivered to one client for a number of market
data subscriptions (stock + options, quote refresh every loop step), and the order
round trip (placeOrder -> Submitted, -> Filled with commission) as seen by ib_insync.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _state(control: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{control}/state", timeout=5) as r:
        return json.loads(r.read())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        parts = fh.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def spawn(speed: float, refresh: float, control: int) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, str(ROOT / "runners" / "ibsim.py"), "--port", "0", "--speed", str(speed),
           "--control-port", str(control),
           "--quiet", "--set", f"clock.quote_refresh_seconds={refresh}", "--set", "clock.skip_closed=true"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stderr.readline()
    m = re.search(r":(\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"sim did not start: {line}")
    return proc, int(m.group(1))


def tick_rate(port: int, n_subs: int, seconds: float, proc: subprocess.Popen, control: int) -> dict:
    from ib_insync import IB, Option, Stock
    ib = IB()
    ib.connect("127.0.0.1", port, clientId=900 + n_subs, timeout=10)
    s = Stock("NVDA", "SMART", "USD")
    ib.qualifyContracts(s)
    [chain] = ib.reqSecDefOptParams("NVDA", "", "STK", s.conId)
    contracts = [s] + [Option("NVDA", e, k, r, "SMART", conId=0)
                       for e in chain.expirations for k in chain.strikes for r in "CP"][: n_subs - 1]
    ticks = [0]

    def on_pending(tickers):
        for t in tickers:
            ticks[0] += len(t.ticks) + 1            # price/size ticks + the greeks update
    for c in contracts:
        ib.reqMktData(c)                            # throttled by the client at 45 msgs/s
    ib.sleep(max(1.0, len(contracts) / 45 + 0.5))
    ib.pendingTickersEvent += on_pending
    def sent():
        me = [c for c in _state(control)["clients"] if c["clientId"] == 900 + n_subs][0]
        return me["ticksOut"], me["ticksDropped"]
    (out0, drop0), cpu0 = sent(), _cpu_seconds(proc.pid)
    m0, t0 = ib.client._numMsgRecv, time.perf_counter()
    ib.sleep(seconds)
    dt = time.perf_counter() - t0
    msgs = ib.client._numMsgRecv - m0
    (out1, drop1), cpu1 = sent(), _cpu_seconds(proc.pid)
    ib.disconnect()
    return {"subscriptions": len(contracts), "messages_received_per_s": round(msgs / dt),
            "ticker_updates_per_s": round(ticks[0] / dt), "sim_tick_messages_sent_per_s": round((out1 - out0) / dt),
            "sim_ticks_dropped_per_s": round((drop1 - drop0) / dt), "sim_cpu_pct": round(100 * (cpu1 - cpu0) / dt)}


def order_latency(port: int, n: int) -> dict:
    from ib_insync import IB, MarketOrder, Stock
    ib = IB()
    ib.connect("127.0.0.1", port, clientId=899, timeout=10)
    s = Stock("NVDA", "SMART", "USD")
    ib.qualifyContracts(s)
    ack, fill, comm = [], [], []
    for k in range(n):
        t0 = time.perf_counter()
        trade = ib.placeOrder(s, MarketOrder("BUY" if k % 2 == 0 else "SELL", 10))
        seen = {}
        trade.statusEvent += lambda tr: seen.setdefault(tr.orderStatus.status, time.perf_counter())
        trade.commissionReportEvent += lambda *a: seen.setdefault("comm", time.perf_counter())
        while "comm" not in seen:
            ib.sleep(0)
            if time.perf_counter() - t0 > 5:
                raise TimeoutError("order did not fill")
        ack.append(seen.get("Submitted", seen["Filled"]) - t0)
        fill.append(seen["Filled"] - t0)
        comm.append(seen["comm"] - t0)
        ib.sleep(1 / 40)                            # stay under the client's 45 msgs/s throttle
    ib.disconnect()
    ms = lambda xs: {"median_ms": round(statistics.median(xs) * 1e3, 2),  # noqa: E731
                     "p95_ms": round(sorted(xs)[int(0.95 * len(xs)) - 1] * 1e3, 2)}
    return {"orders": n, "submitted": ms(ack), "filled": ms(fill), "commission_report": ms(comm)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subs", default="1,50,200")
    p.add_argument("--orders", type=int, default=200)
    p.add_argument("--seconds", type=float, default=5.0)
    a = p.parse_args(argv)
    control = _free_port()
    proc, port = spawn(speed=600, refresh=0.001, control=control)
    try:
        out = {"cpus": os.cpu_count(),
               "tick_rate": [tick_rate(port, int(n), a.seconds, proc, control) for n in a.subs.split(",")],
               "order_round_trip": order_latency(port, a.orders)}
    finally:
        proc.terminate()
        proc.wait(10)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
