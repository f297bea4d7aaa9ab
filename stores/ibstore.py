"""IBStore: one connection to TWS / IB Gateway through ib_insync, in cerebro's thread.

The feeds pump the client's event loop while they wait for data (nothing ever blocks
waiting for a fill). Every read from the socket that changed any subscribed instrument
becomes one snapshot bar, with the same timestamp, on every feed: the strategy always
sees the stock and its legs at one instant. A dropped socket (or error 1100) marks the
feeds CONNBROKEN (the strategy's E3: no new orders); the store reconnects with backoff,
re-qualifies, re-subscribes (IB gives new Ticker objects), lets the broker reconcile
orders against IB's open orders and executions, and the feeds go back to LIVE.
"""
from __future__ import annotations

import collections
import datetime as dt
import logging
import os
import re
import time
from zoneinfo import ZoneInfo

import backtrader as bt

from feeds.market import bt_num
from stores.backfill import Pacing, bars_in_gap, gap_request
from stores.ibclient import require

log = logging.getLogger("bifrost.ibstore")
NEW_YORK = ZoneInfo("America/New_York")

# IB messages that need a plain explanation (code -> text); 2104/2106/2158 are chatter
PLAIN_ERRORS = {
    326: "client id {client_id} is already in use: set ib.client_id (or IB_CLIENT_ID) to another number",
    354: "market data is not subscribed for this instrument (354): check the account's market data subscriptions",
    10197: "no market data during a competing live session (10197): the account is logged in elsewhere",
    502: "cannot connect to TWS/Gateway at {host}:{port}: is it running with the API enabled, and is the port right?",
    1100: "connectivity between IB and TWS lost (1100): no new orders until it is restored",
    1101: "connectivity restored, market data lost (1101): re-subscribing",
    1102: "connectivity restored, data kept (1102)",
}
INFO_CODES = {2104, 2106, 2107, 2108, 2119, 2158}
NO_DATA_CODES = {354, 10197}          # the feed's quotes are cleared until ticks return


class _ExplainedHere(logging.Filter):
    """Drops the client library's own line for the errors this store explains in one
    plain message (354/10197 repeat on every re-request)."""
    _line = re.compile(r"^(?:Error|Warning) (\d+), reqId")

    def filter(self, record: logging.LogRecord) -> bool:
        m = self._line.match(str(record.msg))
        return not (m and int(m.group(1)) in NO_DATA_CODES)


def ny_naive(t: dt.datetime) -> dt.datetime:
    """Exchange-local naive time (the feeds' convention) from an aware datetime."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(NEW_YORK).replace(tzinfo=None)


class IBStore:
    """Connection, subscriptions and reconnection. ``getdata``/``getbroker`` give the
    feeds and the broker bound to it, as Backtrader's stores do."""

    def __init__(self, host="127.0.0.1", port=7497, client_id=1, timeout=10.0, account="",
                 timestamps="receipt", reconnect_max_seconds=30.0, market_data_type=1,
                 generic_ticks="100,101,106,233", heartbeat_seconds=1.0, backfill_bar_minutes=1,
                 backfill_legs=4, data_retry_seconds=10.0):
        ibi = require()
        self.host = os.environ.get("IB_HOST", host)
        self.port = int(os.environ.get("IB_PORT", port))
        self.client_id = int(os.environ.get("IB_CLIENT_ID", client_id))
        self.timeout, self.account = timeout, account
        self.timestamps = timestamps              # receipt: when the tick arrived; exchange: rtTime
        self.reconnect_max = reconnect_max_seconds
        self.market_data_type = market_data_type
        self.generic_ticks = generic_ticks
        self.ib = ibi.IB()
        wrapper_log = logging.getLogger(f"{ibi.__name__}.wrapper")
        if not any(isinstance(f, _ExplainedHere) for f in wrapper_log.filters):
            wrapper_log.addFilter(_ExplainedHere())
        self.ib.errorEvent += self._on_error
        self.ib.disconnectedEvent += self._on_disconnect
        self.ib.pendingTickersEvent += self._on_batch
        self._ticked = None                       # a ticker of ours changed in this read
        self.datas = []
        self.broker = None
        self.notifs = collections.deque()
        self.tickers = {}                         # conId -> Ticker
        self._by_ticker = {}                      # id(ticker) -> contract conId
        self._last_stamp = 0.0
        self.connected = False
        self._next_try = 0.0
        self._backoff = 1.0
        self._stopping = False
        self.last_tick_perf = None                # when the newest tick arrived (latency)
        self.ticks = 0
        self.heartbeat = heartbeat_seconds
        self._last_push = time.monotonic()
        self.contract_errors = {}                 # conId/reqId -> last error text
        self.backfill_minutes = backfill_bar_minutes   # 0 = no backfill after a reconnect
        self.backfill_legs = backfill_legs        # at most this many held legs get option bars
        self.pacing = Pacing()
        self.backfilled = []                      # (stamp, conId) of every history bar queued
        self.no_data = {}                         # conId -> error code (354/10197) while it lasts
        self.data_retry = data_retry_seconds
        self._no_data_retry = 0.0
        self.slots = None                         # stores.slots.SlotPlanner (live runner)

    # -- Backtrader store protocol ---------------------------------------------------
    def getdata(self, contract, **kwargs):
        from feeds.ibdata import IBOptionData, IBStockData
        cls = IBOptionData if contract.secType in ("OPT", "FOP") else IBStockData
        return cls(store=self, contract=contract, **kwargs)

    def getbroker(self, **kwargs):
        from brokers.ibbroker import IBBroker
        self.broker = IBBroker(store=self, **kwargs)
        return self.broker

    def start(self, data=None, broker=None):
        if data is not None and not any(d is data for d in self.datas):   # lines overload ==
            self.datas.append(data)
            if self.connected:
                self._subscribe(data)
        if broker is not None:
            self.broker = broker

    def stop(self):
        self._stopping = True
        if self.ib.isConnected():
            self.ib.disconnect()

    def put_notification(self, msg, *args, **kwargs):
        self.notifs.append((msg, args, kwargs))

    def get_notifications(self):
        """Cerebro calls this once per cycle, between bars: the safe point for
        ``stores.slots`` to move contracts between option slots."""
        if self.slots is not None:
            self.slots.pump()
        out = []
        while self.notifs:
            out.append(self.notifs.popleft())
        return out

    # -- connection ------------------------------------------------------------------
    def connect(self) -> bool:
        """One attempt; False with a plain message when TWS/Gateway is not there."""
        try:
            self.ib.connect(self.host, self.port, clientId=self.client_id, timeout=self.timeout,
                            account=self.account)
        except (ConnectionRefusedError, OSError, TimeoutError) as exc:
            log.error("cannot connect to TWS/Gateway at %s:%s (%s): is it running with the API "
                      "enabled on that port?", self.host, self.port, type(exc).__name__)
            self._safe_disconnect()
            return False
        except Exception as exc:                  # e.g. API handshake refused (client id in use)
            log.error("connection to %s:%s failed: %s", self.host, self.port, exc)
            self._safe_disconnect()
            return False
        if not self.ib.isConnected():
            return False
        self.connected = True
        self._backoff = 1.0
        if self.market_data_type != 1:
            self.ib.reqMarketDataType(self.market_data_type)
        log.info("connected to %s:%s as client %s (server %s)", self.host, self.port,
                 self.client_id, self.ib.client.serverVersion())
        return True

    def _safe_disconnect(self):
        try:
            self.ib.disconnect()
        except Exception:
            pass

    def _on_disconnect(self):
        if self.connected:
            log.warning("disconnected from TWS/Gateway")
        self.connected = False
        self._next_try = time.monotonic() + self._backoff
        for d in self.datas:
            d.set_status_broken()
        self.put_notification("DISCONNECTED")

    def _reconnect(self) -> None:
        if self._stopping or time.monotonic() < self._next_try:
            return
        log.info("reconnecting to %s:%s", self.host, self.port)
        if self.connect():
            self.tickers.clear()
            self._by_ticker.clear()
            try:
                self._backfill()
            except Exception as exc:              # noqa: BLE001 - a gap never costs more than the gap
                log.warning("backfill failed: %s", exc)
            if not self.ib.isConnected():         # dropped again meanwhile: the next pump retries
                self._on_disconnect()
                return
            for d in self.datas:
                self._subscribe(d)
            if self.broker is not None:
                self.broker.reconcile()
            self.put_notification("CONNECTED")
        else:
            self._backoff = min(self._backoff * 2.0, self.reconnect_max)
            self._next_try = time.monotonic() + self._backoff

    def _on_error(self, req_id, code, text, contract=None):
        if code in INFO_CODES:
            return
        plain = PLAIN_ERRORS.get(code)
        msg = plain.format(host=self.host, port=self.port, client_id=self.client_id) if plain else text
        if code in (1100,):
            log.error(msg)
            for d in self.datas:
                d.set_status_broken()
        elif code in (1101,):
            log.warning(msg)
            self.tickers.clear()
            self._by_ticker.clear()
            for d in self.datas:
                self._subscribe(d)
        elif code in (1102,):
            log.info(msg)
            for d in self.datas:
                d.set_status_live()
        elif code in (201, 202, 399, 10147, 10148):
            if self.broker is not None:
                self.broker.order_error(req_id, code, text)
        elif code in NO_DATA_CODES:
            self.contract_errors[req_id] = f"{code}: {text}"
            self._data_missing(code, msg, contract)
        elif code in (200, 10090, 10167, 10168):
            self.contract_errors[req_id] = f"{code}: {text}"
            log.error("%s%s", msg, f" ({contract.localSymbol or contract.symbol})" if contract else "")
        else:
            log.warning("IB error %s (req %s): %s", code, req_id, msg)
        self.put_notification("ERROR", code, text)

    # -- data ------------------------------------------------------------------------
    def qualify(self, *contracts):
        from stores.ibclient import qualify
        return qualify(self.ib, *contracts)

    def _subscribe(self, data) -> None:
        contract = data.contract
        if contract is None:                      # a free option slot: nothing to stream
            data.set_status_live()
            return
        if not getattr(contract, "conId", 0):
            got = self.qualify(contract)
            if not got:
                log.error("unknown contract %s: no data for it", contract)
                return
            data.contract = contract = got[0]
        ticker = self.ib.reqMktData(contract, self.generic_ticks if contract.secType == "STK" else "",
                                    False, False)
        self.tickers[contract.conId] = ticker
        self._by_ticker[id(ticker)] = contract.conId
        if self._on_tick not in ticker.updateEvent:   # a re-request may return the same Ticker
            ticker.updateEvent += self._on_tick
        data.ticker = ticker
        data.set_status_live()

    def unsubscribe(self, data) -> None:
        """Stop ``data``'s market data (a slot about to carry another contract)."""
        ticker = data.ticker
        data.ticker = None
        if ticker is None:
            return
        ticker.updateEvent -= self._on_tick
        self._by_ticker.pop(id(ticker), None)
        con_id = getattr(data.contract, "conId", 0)
        if self.tickers.get(con_id) is ticker:
            del self.tickers[con_id]
        if self.connected:
            try:
                self.ib.cancelMktData(ticker.contract)
            except Exception as exc:              # noqa: BLE001 - a lost cancel is harmless
                log.warning("cancelMktData %s: %s", ticker.contract.localSymbol, exc)

    def _stamp(self, ticker) -> float:
        """The snapshot's time: tick receipt (live) or the exchange's trade time
        (``timestamps: exchange``, used with the simulator's accelerated clock)."""
        t = None
        if self.timestamps == "exchange":
            stock = next((tk for tk in self.tickers.values() if tk.contract.secType == "STK"), None)
            t = getattr(stock, "rtTime", None) if stock is not None else None
        if t is None:
            t = ticker.time or dt.datetime.now(dt.timezone.utc)
        num = bt_num(ny_naive(t))
        if num <= self._last_stamp:               # strictly increasing bar times
            num = self._last_stamp + 1e-9
        self._last_stamp = num
        return num

    def _on_tick(self, ticker) -> None:
        if self.no_data:
            self._data_back(ticker)
        self.ticks += 1
        self.last_tick_perf = time.perf_counter()
        self._ticked = ticker

    def _on_batch(self, tickers) -> None:
        """End of one read from the socket: one snapshot of every feed, however many of
        their tickers it changed. Per ticker it was N bars of N feeds per quote round
        (28 candidate legs: ~900 feed loads and as many log lines a round)."""
        ticker, self._ticked = self._ticked, None
        if ticker is None:
            ticker = next((t for t in tickers if id(t) in self._by_ticker), None)
            if ticker is None:
                return
        self._last_push = time.monotonic()
        stamp = self._stamp(ticker)
        for d in self.datas:
            d.push_snapshot(stamp)

    def pump(self, timeout: float) -> None:
        """Run the client's loop until something arrives or ``timeout`` passes;
        reconnect when disconnected. Never raises for a dropped connection."""
        if not self.connected or not self.ib.isConnected():
            if self.connected:                    # noticed here before the event fired
                self._on_disconnect()
            self._reconnect()
            if not self.connected:
                time.sleep(min(timeout, 0.2))
                return
        try:
            self.ib.waitOnUpdate(timeout=timeout)
            if self.no_data and time.monotonic() >= self._no_data_retry:
                self._rerequest_missing()
        except ConnectionError:
            self._on_disconnect()
            return
        if self.datas and time.monotonic() - self._last_push >= self.heartbeat:
            self._heartbeat()

    def _heartbeat(self) -> None:
        """No tick for ``heartbeat`` seconds: deliver a snapshot anyway, its time moved on
        by the silence, so the strategy sees its quotes age (S2 DATA_LAG, M5 STALE) and
        says why it does not hedge, instead of falling silent."""
        now = time.monotonic()
        self._last_stamp += (now - self._last_push) / 86400.0
        self._last_push = now
        for d in self.datas:
            d.push_snapshot(self._last_stamp)

    # -- gaps and missing data ---------------------------------------------------------
    def _streaming(self) -> list:
        """The feeds that carry a contract (free option slots carry none)."""
        return [d for d in self.datas if d.contract is not None]

    def _backfill(self) -> None:
        """After a reconnect, before re-subscribing: the stock's bars for the gap (and the
        held legs', where IB serves them) queued on every feed as history (``backfill``
        line 1, status DELAYED), so the vol window and the series stay continuous; the
        strategy never trades on them. A failure only costs the gap, never an order."""
        if not self.backfill_minutes or not self._last_stamp or not self.datas:
            return
        stock = next((d for d in self._streaming() if d.contract.secType == "STK"), None)
        if stock is None:
            return
        try:
            server = self.ib.reqCurrentTime()
            held = {p.contract.conId for p in self.ib.positions() if p.position}
        except Exception as exc:                  # noqa: BLE001 - the gap is lost, nothing else
            log.warning("backfill skipped: %s", exc)
            return
        since = bt.num2date(self._last_stamp)
        req = gap_request(since, ny_naive(server), server, self.backfill_minutes)
        if req is None:
            return
        bars = self._gap_bars(stock.contract, req)
        if not bars:
            log.warning("backfill: no %s bars for the gap %s - %s", stock.contract.symbol,
                        req.since, req.until)
            return
        legs = [d for d in self._streaming() if d is not stock and d.contract.conId in held]
        by_leg = {d: {b[0]: b for b in self._gap_bars(d.contract, req)}
                  for d in legs[:self.backfill_legs]}
        for d in self.datas:
            d.set_status_delayed()
        for end, *ohlc in bars:
            stamp = max(bt_num(end), self._last_stamp + 1e-9)
            self._last_stamp = stamp
            for d in self.datas:
                leg = (end, *ohlc) if d is stock else by_leg.get(d, {}).get(end)
                d.push_history(stamp, leg)
            self.backfilled.append((stamp, stock.contract.conId))
        log.warning("backfill: %d %s bar(s) of %s for the gap %s - %s (%d leg(s) with bars), "
                    "delivered as history: no orders on them", len(bars), req.bar_size,
                    stock.contract.symbol, req.since, req.until, sum(1 for v in by_leg.values() if v))

    def _gap_bars(self, contract, req) -> list:
        """MIDPOINT bars of ``contract`` inside the gap; [] when IB has none (expired
        options, no permissions) or pacing forbids the request now."""
        key = (contract.conId, req.end, req.duration, req.bar_size, "MIDPOINT")
        if not self.pacing.allow(key, time.monotonic()):
            log.warning("backfill of %s skipped: IB pacing (identical request within 15 s or "
                        "60 in 10 minutes)", contract.localSymbol or contract.symbol)
            return []
        try:
            raw = self.ib.reqHistoricalData(contract, endDateTime=req.end, durationStr=req.duration,
                                            barSizeSetting=req.bar_size, whatToShow="MIDPOINT",
                                            useRTH=True, formatDate=2, timeout=self.timeout)
        except Exception as exc:                  # noqa: BLE001 - no bars is a normal answer
            log.warning("backfill of %s failed: %s", contract.localSymbol or contract.symbol, exc)
            return []
        rows = [(ny_naive(b.date), b.open, b.high, b.low, b.close)
                for b in raw or [] if isinstance(b.date, dt.datetime)]
        return bars_in_gap(rows, req.since, req.until, self.backfill_minutes)

    def _data_missing(self, code, msg, contract) -> None:
        """354/10197: the named feed (all feeds when IB names none) shows no quote until
        ticks return; one plain message per episode, not one per feed or retry."""
        con = getattr(contract, "conId", 0)
        hit = [d for d in self._streaming() if not con or d.contract.conId == con]
        reported = set(self.no_data.values())     # codes whose episode is already told
        new = [d for d in hit if d.contract.conId not in self.no_data]
        for d in hit:
            self.no_data[d.contract.conId] = code
            d.no_data = True
        if new and code not in reported:
            names = ", ".join(d.contract.localSymbol or d.contract.symbol for d in new)
            log.error("%s: %s; no hedging on missing data until it returns", msg, names)
        if hit:
            self._no_data_retry = time.monotonic() + self.data_retry

    def _data_back(self, ticker) -> None:
        con = self._by_ticker.get(id(ticker))
        if con in self.no_data:
            code = self.no_data.pop(con)
            for d in self._streaming():
                if d.contract.conId == con:
                    d.no_data = False
                    log.warning("market data for %s is back (after %s)",
                                d.contract.localSymbol or d.contract.symbol, code)

    def _rerequest_missing(self) -> None:
        """IB does not restart a refused subscription: ask again every ``data_retry``."""
        self._no_data_retry = time.monotonic() + self.data_retry
        for d in self._streaming():
            if d.contract.conId in self.no_data:
                try:
                    self.ib.cancelMktData(d.contract)
                except Exception:                 # noqa: BLE001 - not subscribed any more
                    pass
                self._subscribe(d)
