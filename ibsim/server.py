"""The paper gateway: asyncio server, clock loop, quote streaming, order flow, faults.

    sim = IBSim(config)                 # a path, dict, validated config or None
    port = await sim.start(port=0)      # 127.0.0.1 only; 0 = a free port
    sim.inject("stale", seconds=5); sim.state(); await sim.stop()

``SimThread(config).start() -> port`` runs the same on a background thread for
synchronous code (ib_insync's sync API in tests); ``.inject/.state/.stop`` are
thread-safe there.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading

from ibsim import messages as msg
from ibsim.config import SimConfigError, load_sim_config, project_config
from ibsim.faults import ERROR_TEXT, FaultError, FaultState, validate_fault
from ibsim.handlers import Handlers
from ibsim.market import MarketState
from ibsim.orderflow import OrderFlow
from ibsim.orders import Ledger
from ibsim.session import Session
from ibsim.streaming import Streaming

log = logging.getLogger("ibsim")

HOST = "127.0.0.1"
LOOP_PERIOD = 0.02              # wall seconds between clock checks
FARM_OK = ((2104, "Market data farm connection is OK:usfarm"),
           (2106, "HMDS data farm connection is OK:ushmds"),
           (2158, "Sec-def data farm connection is OK:secdefnj"))


class IBSim(Handlers, Streaming, OrderFlow):
    """A TWS/IB Gateway speaking server version 176 over the synthetic market."""

    def __init__(self, config=None, overrides=None):
        self.cfg = load_sim_config(config, overrides)
        self.pcfg = project_config(self.cfg)
        self.account = self.cfg["account"]
        self.market = MarketState(self.cfg, self.pcfg)
        self.skip_closed = self.cfg["clock"]["skip_closed"]
        self.clock = self.market.clock(self.cfg["speed"], self.skip_closed)
        self.ledger = Ledger(self.account, self.cfg["cash"], self.cfg["commissions"])
        self.faults = FaultState()
        self.script = [dict(e, fired=False) for e in self.cfg["faults"]]
        self.sessions: list[Session] = []
        self.port: int | None = None
        self.control_port: int | None = None
        self.idx = self.market.start_idx
        self.seq = 0
        self.stats = {"connections": 0, "orders": 0, "fills": 0, "rounds": 0}
        self._server: asyncio.base_events.Server | None = None
        self._control = None
        self._tasks: set[asyncio.Task] = set()
        self._loop_task: asyncio.Task | None = None
        self._reopen: asyncio.TimerHandle | None = None
        self._last_refresh = self._last_account = 0.0
        self._day = None
        self._day_netliq = 0.0
        self._ended_logged = False
        self._seed_positions()

    # ---- lifecycle ---------------------------------------------------------------
    async def start(self, port: int | None = None, control_port: int | None = None) -> int:
        """Listen on 127.0.0.1 (``port`` None = the config's, 0 = a free one); return the port.
        ``control_port`` None = the config's (0 there = off); given, 0 = a free port."""
        self.clock.begin()
        self._day = self.clock.now().date()
        self._day_netliq = self.ledger.values(self.mark)["NetLiquidation"]
        self._server = await asyncio.start_server(self._accept, HOST, self.cfg["port"] if port is None else port)
        self.port = self._server.sockets[0].getsockname()[1]
        if control_port is not None or self.cfg["control_port"]:     # explicit 0 = a free port
            await self.start_control(self.cfg["control_port"] if control_port is None else control_port)
        self._loop_task = asyncio.create_task(self._run())
        log.info("ibsim listening on %s:%s (account %s, %s, clock %s, speed %g)%s", HOST, self.port,
                 self.account, self.market.symbol, self.clock.start, self.clock.speed,
                 f", control on {HOST}:{self.control_port}" if self.control_port else "")
        return self.port

    async def start_control(self, port: int = 0) -> int:
        """Start the JSON control endpoint (when ``start`` did not); return its port."""
        from ibsim.control import start_control
        self._control = await start_control(self, port)
        self.control_port = self._control.sockets[0].getsockname()[1]
        return self.control_port

    async def stop(self) -> None:
        """Close the listener, every client and the control endpoint."""
        if self._reopen:
            self._reopen.cancel()
        for srv in (self._server, self._control):
            if srv is not None:
                srv.close()
        for s in list(self.sessions):
            s.close(abort=True)
        if self._loop_task:
            self._loop_task.cancel()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.sleep(0)
        log.info("ibsim stopped")

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- connections ---------------------------------------------------------------
    async def _accept(self, reader, writer) -> None:
        s = Session(self, reader, writer, connected_at=self.clock.now().isoformat(timespec="seconds"))
        if asyncio.get_running_loop().time() < self.faults.refuse_until:
            s.close(abort=True)
            return
        self.sessions.append(s)
        self.stats["connections"] += 1
        log.info("connection from %s", s.peer)
        try:
            await s.serve(self.handle)
        finally:
            if s in self.sessions:
                self.sessions.remove(s)
            log.info("client %s (%s) disconnected", s.client_id, s.peer)

    def session_of(self, client_id: int) -> Session | None:
        for s in self.sessions:
            if s.client_id == client_id and not s.closed:
                return s
        return None

    def start_api(self, s: Session, client_id: int) -> None:
        if self.session_of(client_id) is not None:
            log.warning("%s: client id %s already in use, closing", s.peer, client_id)
            s.send(msg.error(-1, 326, "Unable to connect as the client id is already in use. "
                                      "Retry with a unique client id."))
            s.close()
            return
        s.client_id = client_id
        log.info("client %s connected from %s", client_id, s.peer)
        out = [msg.managed_accounts(self.account), msg.next_valid_id(self.ledger.next_valid_id(client_id))]
        out += [msg.error(-1, code, text) for code, text in FARM_OK]
        s.send(b"".join(out))

    def _refuse(self, seconds: float) -> None:
        """Stop listening for ``seconds`` (reconnects get ECONNREFUSED), then reopen."""
        if seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        self.faults.refuse_until = loop.time() + seconds
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._reopen:
            self._reopen.cancel()
        self._reopen = loop.call_later(seconds, lambda: self._spawn(self._listen_again()))

    async def _listen_again(self) -> None:
        self._reopen = None
        self.faults.refuse_until = 0.0
        if self._server is None:
            for _ in range(50):
                try:
                    self._server = await asyncio.start_server(self._accept, HOST, self.port)
                    log.info("listening again on %s:%s", HOST, self.port)
                    return
                except OSError:
                    await asyncio.sleep(0.1)
            log.error("could not listen again on port %s", self.port)

    # ---- faults ----------------------------------------------------------------------
    def inject(self, fault: str, **args) -> dict:
        """Apply a fault now (call on the sim's loop; ``SimThread.inject`` from others)."""
        args = validate_fault(fault, args)
        now = asyncio.get_running_loop().time()
        log.warning("fault %s %s", fault, args or "")
        if fault == "disconnect":
            for s in list(self.sessions):
                s.close(abort=True)
            self._refuse(args["refuse_seconds"])
        elif fault in ("error_1100", "error_1101", "error_1102", "error"):
            code = args["code"] if fault == "error" else int(fault[-4:])
            text = args.get("message") or ERROR_TEXT.get(code, f"Simulated error {code}")
            for s in list(self.sessions):
                if s.client_id is None:
                    continue
                s.send(msg.error(-1, code, text))
                if code == 1101:
                    s.subs.clear()                  # data lost: the client must re-subscribe
                if args.get("close"):
                    s.close()
            if args.get("close"):
                self._refuse(args.get("refuse_seconds", 0.0))
        elif fault == "clear":
            self.faults.clear()
            if self._reopen:
                self._reopen.cancel()
                self._spawn(self._listen_again())
        elif fault == "no_data":
            self.faults.apply(fault, args, now)
            for s in list(self.sessions):            # every subscription hit is told, then silent
                for req, sub in list(s.subs.items()):
                    if self.faults.no_data_on(sub.inst.sec_type, now):
                        s.send(msg.error(req, args["code"], self.faults.no_data_text))
        else:
            self.faults.apply(fault, args, now)
            if fault == "widen":
                self._push_quotes(full=True)
        return {"ok": True, "fault": fault, "args": args, "active": self.faults.describe(now)}

    def clear_faults(self) -> dict:
        return self.inject("clear")

    def advance(self, seconds: float) -> None:
        """Move the market clock forward (market seconds) and process the new bar."""
        self.clock.advance(seconds)
        self._step()

    def _fire_script(self) -> None:
        elapsed = self.clock.elapsed()
        for e in self.script:
            if not e["fired"] and elapsed >= e["at_seconds"]:
                e["fired"] = True
                try:
                    self.inject(e["fault"], **e["args"])
                except FaultError as exc:                   # validated at load; be safe
                    log.error("scripted fault failed: %s", exc)

    # ---- clock loop -------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await asyncio.sleep(LOOP_PERIOD)
            try:
                self._step()
            except Exception:                               # noqa: BLE001 - keep the market running
                log.exception("clock step failed")

    def _step(self) -> None:
        loop_now = asyncio.get_running_loop().time()
        t = self.clock.now()
        self._fire_script()
        idx = self.market.bar_index(t)
        if t.date() != self._day:
            self._day = t.date()
            self._day_netliq = self.ledger.values(self.mark)["NetLiquidation"]
        if self.market.ended(t) and not self._ended_logged and idx == len(self.market.times) - 1:
            self._ended_logged = True
            log.warning("market path ended at %s: quotes stay at the last bar", self.market.times[-1])
        refresh = self.cfg["clock"]["quote_refresh_seconds"]
        if idx != self.idx:
            self.idx = idx
            self._work_orders(t)
            self._push_quotes(full=True)
            self._last_refresh = loop_now
        elif refresh and loop_now - self._last_refresh >= refresh:
            self._push_quotes(full=False)
            self._last_refresh = loop_now
        if loop_now - self._last_account >= self.cfg["clock"]["account_refresh_seconds"]:
            self._last_account = loop_now
            for s in self.sessions:
                if s.account_sub:
                    self.push_account(s)
                for req in s.multi_subs:
                    self.push_account_multi(s, req)
                if s.pnl_subs:
                    self.push_pnl(s)

    def _seed_positions(self) -> None:
        """Starting positions (default: the near-ATM straddle ~28 days out)."""
        m = self.market
        start = self.clock.start
        today = start.date().toordinal()
        atm = round(m.spot0 / m.step) * m.step
        for i, p in enumerate(self.cfg["positions"]):
            if p["secType"] == "STK":
                self.ledger.seed_position(m.stock, p["qty"], p["avg_price"] or m.spot0)
                continue
            target = today + p["dte"]
            fridays = [e for e in range(target - 6, target + 7) if dt.date.fromordinal(e).weekday() == 4 and e > today]
            expiry = min(fridays, key=lambda e: (abs(e - target), e))
            strike = p["strike"] if p["strike"] is not None else atm + p["strike_offset"] * m.step
            if not m.on_grid(strike):
                raise SimConfigError(f"positions[{i}]: strike {strike:g} is not a positive multiple of "
                                     f"market.strike_step ({m.step:g}) below 10000")
            try:
                inst = m.option(expiry, strike, p["right"])
            except ValueError:
                raise SimConfigError(f"positions[{i}].dte: got {p['dte']}, expiry out of the listed range") from None
            price = p["avg_price"] or m.option_price(inst, m.start_idx)
            self.ledger.seed_position(inst, p["qty"], price)

    # ---- state -------------------------------------------------------------------------------
    def state(self) -> dict:
        """Positions, cash, orders, executions, clients, clock, faults (JSON-ready)."""
        now = asyncio.get_running_loop().time()
        t = self.clock.now()
        q = self.market.quote(self.market.stock, self.idx)
        return {
            "clock": {"market_time": t.isoformat(timespec="seconds"), "speed": self.clock.speed,
                      "elapsed_market_seconds": round(self.clock.elapsed(), 3),
                      "bar_index": self.idx, "bar_time": self.market.times[self.idx].isoformat(),
                      "market_open": self.market.is_open(t, self.skip_closed),
                      "path_ended": self.market.ended(t)},
            "quote": {"symbol": self.market.symbol, "bid": q.bid, "ask": q.ask, "last": q.last},
            "account": {"id": self.account, **self.ledger.snapshot(self.mark)},
            "orders": [o.to_dict() for o in self.ledger.orders.values()],
            "executions": [e.to_dict() for e in self.ledger.executions],
            "clients": [{"clientId": s.client_id, "peer": s.peer, "connectedAt": s.connected_at,
                         "subscriptions": len(s.subs), "accountUpdates": s.account_sub,
                         "messagesIn": s.msgs_in, "ticksOut": s.ticks_out, "ticksDropped": s.ticks_dropped}
                        for s in self.sessions],
            "faults": self.faults.describe(now),
            "listening": self._server is not None, "port": self.port, "control_port": self.control_port,
            "stats": dict(self.stats),
        }


class SimThread:
    """An IBSim on its own event loop in a daemon thread, for synchronous callers."""

    def __init__(self, config=None, overrides=None):
        self.sim = IBSim(config, overrides)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def start(self, port: int = 0, control_port: int | None = None, timeout: float = 30.0) -> int:
        ready = threading.Event()
        box: dict = {}

        def run():
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            try:
                box["port"] = loop.run_until_complete(self.sim.start(port, control_port))
            except BaseException as exc:                     # noqa: BLE001 - reported to start()
                box["error"] = exc
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="ibsim", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("ibsim did not start")
        if "error" in box:
            raise box["error"]
        self.port = box["port"]
        return self.port

    def call(self, fn, *args, **kwargs):
        """Run ``fn`` on the sim's loop and return its result."""
        async def wrapper():
            return fn(*args, **kwargs)
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(10)

    def inject(self, fault: str, **args) -> dict:
        return self.call(self.sim.inject, fault, **args)

    def clear_faults(self) -> dict:
        return self.call(self.sim.clear_faults)

    def state(self) -> dict:
        return self.call(self.sim.state)

    def advance(self, seconds: float) -> None:
        self.call(self.sim.advance, seconds)

    def trade(self, contract: dict, action: str, quantity) -> dict:
        """A fill by "another client" (``IBSim.manual_trade``)."""
        return self.call(self.sim.manual_trade, contract, action, quantity)

    def stop(self) -> None:
        if self.loop is None or not self.loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def __enter__(self) -> "SimThread":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
