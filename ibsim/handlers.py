"""Request handlers: one method per incoming message id (layouts from ib_insync's
``client.py`` at server version 176). Mixed into ``IBSim``."""
from __future__ import annotations

import datetime as dt
import logging
import re

from ibsim import messages as msg
from ibsim.market import NY, epoch, ib_datetime
from ibsim.protocol import Fields

log = logging.getLogger("ibsim")

NO_SECDEF = "No security definition has been found for the request"
_BAR = re.compile(r"^\s*(\d+)\s+(sec|secs|min|mins|hour|hours|day|days|week|weeks|month|months)\s*$", re.I)
_DUR = re.compile(r"^\s*(\d+)\s+([SDWMY])\s*$", re.I)

# placeOrder fields after the contract (ib_insync client.placeOrder, version 176)
_HEAD = ("secIdType", "secId", "action", "totalQuantity", "orderType", "lmtPrice", "auxPrice", "tif",
         "ocaGroup", "account", "openClose", "origin", "orderRef", "transmit", "parentId", "blockOrder",
         "sweepToFill", "displaySize", "triggerMethod", "outsideRth", "hidden")
_MID = ("sharesAllocation", "discretionaryAmt", "goodAfterTime", "goodTillDate", "faGroup", "faMethod",
        "faPercentage", "faProfile", "modelCode", "shortSaleSlot", "designatedLocation", "exemptCode",
        "ocaType", "rule80A", "settlingFirm", "allOrNone", "minQty", "percentOffset", "eTradeOnly",
        "firmQuoteOnly", "nbboPriceCap", "auctionStrategy", "startingPrice", "stockRefPrice", "delta",
        "stockRangeLower", "stockRangeUpper", "overridePercentageConstraints", "volatility",
        "volatilityType", "deltaNeutralOrderType", "deltaNeutralAuxPrice")
_DN = ("deltaNeutralConId", "deltaNeutralSettlingFirm", "deltaNeutralClearingAccount",
       "deltaNeutralClearingIntent", "deltaNeutralOpenClose", "deltaNeutralShortSale",
       "deltaNeutralShortSaleSlot", "deltaNeutralDesignatedLocation")
_SCALE = ("continuousUpdate", "referencePriceType", "trailStopPrice", "trailingPercent",
          "scaleInitLevelSize", "scaleSubsLevelSize", "scalePriceIncrement")
_SCALE2 = ("scalePriceAdjustValue", "scalePriceAdjustInterval", "scaleProfitOffset", "scaleAutoReset",
           "scaleInitPosition", "scaleInitFillQty", "scaleRandomPercent")
_TAIL = ("adjustedOrderType", "triggerPrice", "lmtPriceOffset", "adjustedStopPrice",
         "adjustedStopLimitPrice", "adjustedTrailingAmount", "adjustableTrailingUnit", "extOperator",
         "softDollarTierName", "softDollarTierVal", "cashQty", "mifid2DecisionMaker",
         "mifid2DecisionAlgo", "mifid2ExecutionTrader", "mifid2ExecutionAlgo",
         "dontUseAutoPriceForHedge", "isOmsContainer", "discretionaryUpToLimitPrice",
         "usePriceMgmtAlgo", "duration", "postToAts", "autoCancelParent", "advancedErrorOverride",
         "manualOrderTime")


def parse_place_order(f: Fields, contract: dict) -> dict:
    """Every placeOrder field after the contract, as sent (strings), by name."""
    raw: dict = {}
    for k in _HEAD:
        raw[k] = f.str()
    if contract.get("secType") == "BAG":
        raw["_bag"] = True
        return raw
    try:
        for k in _MID:
            raw[k] = f.str()
        if raw["deltaNeutralOrderType"]:
            for k in _DN:
                raw[k] = f.str()
        for k in _SCALE:
            raw[k] = f.str()
        inc = raw["scalePriceIncrement"]
        if inc and 0 < float(inc) < 1.7e308:
            for k in _SCALE2:
                raw[k] = f.str()
        for k in ("scaleTable", "activeStartTime", "activeStopTime", "hedgeType"):
            raw[k] = f.str()
        if raw["hedgeType"]:
            raw["hedgeParam"] = f.str()
        for k in ("optOutSmartRouting", "clearingAccount", "clearingIntent", "notHeld"):
            raw[k] = f.str()
        if f.bool():
            f.skip(3)
        raw["algoStrategy"] = f.str()
        if raw["algoStrategy"]:
            f.skip(2 * f.int())
        for k in ("algoId", "whatIf", "orderMiscOptions", "solicited", "randomizeSize", "randomizePrice"):
            raw[k] = f.str()
        if raw.get("orderType") == "PEG BENCH":
            f.skip(5)
        if f.int():
            return raw                      # conditions have type-dependent layouts: stop here
        for k in _TAIL:
            raw[k] = f.str()
    except (IndexError, ValueError):
        pass
    return raw


def parse_end_time(text: str, now: dt.datetime) -> dt.datetime:
    """IB end date-time forms -> naive New York time; '' = now."""
    text = text.strip()
    if not text:
        return now
    parts = text.replace("-", " ").split()
    stamp = dt.datetime.strptime(parts[0] + " " + (parts[1] if len(parts) > 1 else "23:59:59"),
                                 "%Y%m%d %H:%M:%S")
    tz = parts[2] if len(parts) > 2 else ("UTC" if "-" in text else "US/Eastern")
    from zoneinfo import ZoneInfo
    return stamp.replace(tzinfo=ZoneInfo(tz)).astimezone(NY).replace(tzinfo=None)


class Handlers:
    """``_on_<id>`` methods; ``self`` is the IBSim."""

    def handle(self, s, fields: list[str]) -> None:
        """Dispatch one request; a bad one is logged and answered with error 320."""
        try:
            mid = int(fields[0])
        except ValueError:
            return
        if s.client_id is None and mid != 71:
            return
        fn = getattr(self, f"_on_{mid}", None)
        if fn is None:
            log.debug("client %s: unsupported message %s ignored", s.client_id, mid)
            return
        try:
            fn(s, Fields(fields, 1))
        except Exception as exc:                               # noqa: BLE001 - never kill the session
            log.exception("client %s: error handling %s", s.client_id, fields[:4])
            s.send(msg.error(-1, 320, f"Error reading request: {exc}"))

    # ---- session -------------------------------------------------------------
    def _on_71(self, s, f):                                    # startApi
        if s.client_id is not None:
            return                                             # already started
        f.skip()
        cid = f.int()
        self.start_api(s, cid)

    def _on_8(self, s, f):                                     # reqIds
        s.send(msg.next_valid_id(self.ledger.next_valid_id(s.client_id)))

    def _on_17(self, s, f):                                    # reqManagedAccts
        s.send(msg.managed_accounts(self.account))

    def _on_49(self, s, f):                                    # reqCurrentTime
        s.send(msg.current_time(int(epoch(self.clock.now()))))

    def _on_15(self, s, f):                                    # reqAutoOpenOrders
        pass

    # ---- contracts ---------------------------------------------------------------
    def _on_9(self, s, f):                                     # reqContractDetails
        f.skip()
        req = f.int()
        q = f.contract()
        include_expired = f.bool()
        found = self.market.resolve(q, self.clock.now(), include_expired)
        if not found:
            s.send(msg.error(req, 200, NO_SECDEF))
            return
        hours = self.trading_hours()
        out = [msg.contract_details(req, i, hours, self.market.stock.con_id, self.cfg["long_name"])
               for i in found]
        s.send(b"".join(out) + msg.contract_details_end(req))

    def _on_78(self, s, f):                                    # reqSecDefOptParams
        req = f.int()
        symbol = f.str()
        f.skip(2)                                              # futFopExchange, underlyingSecType
        und = f.str()
        stock = self.market.stock
        if symbol.upper() == stock.symbol.upper() or (und and und.isdigit() and int(und) == stock.con_id):
            now = self.clock.now()
            exps = [dt.date.fromordinal(e).strftime("%Y%m%d") for e in self.market.listed_expiries(now)]
            s.send(msg.secdef_opt_params(req, stock.con_id, stock.symbol, exps,
                                         self.market.listed_strikes(now)))
        s.send(msg.secdef_opt_params_end(req))

    def _on_81(self, s, f):                                    # reqMatchingSymbols
        req = f.int()
        pattern = f.str().upper()
        stock = self.market.stock
        hit = stock if pattern and stock.symbol.upper().startswith(pattern) else None
        s.send(msg.symbol_samples(req, hit, self.cfg["long_name"]))

    # ---- market data -------------------------------------------------------------
    def _on_1(self, s, f):                                     # reqMktData
        f.skip()
        req = f.int()
        q = f.contract()
        if q["secType"] == "BAG":
            s.send(msg.error(req, 200, NO_SECDEF))
            return
        if f.bool():                                           # delta-neutral contract
            f.skip(3)
        generic, snapshot = f.str(), f.bool()
        found = self.market.resolve(q, self.clock.now())
        if len(found) != 1:
            s.send(msg.error(req, 200, NO_SECDEF))
            return
        self.subscribe(s, req, found[0], generic, snapshot)

    def _on_2(self, s, f):                                     # cancelMktData
        f.skip()
        s.subs.pop(f.int(), None)

    def _on_59(self, s, f):                                    # reqMarketDataType
        f.skip()
        s.md_type = f.int()
        for req in s.subs:
            s.send(msg.market_data_type(req, 1))

    def _on_20(self, s, f):                                    # reqHistoricalData
        req = f.int()
        q = f.contract()
        include_expired = f.bool()
        end_text, bar_text, dur_text = f.str(), f.str(), f.str()
        f.skip()                                               # useRTH: the sim only has RTH bars
        what, date_format = f.str().upper(), f.int(1)
        self.historical(s, req, q, include_expired, end_text, bar_text, dur_text, what, date_format)

    def _on_25(self, s, f):                                    # cancelHistoricalData
        pass

    def _on_87(self, s, f):                                    # reqHeadTimeStamp
        req = f.int()
        q = f.contract()
        if not self.market.resolve(q, self.clock.now()):
            s.send(msg.error(req, 200, NO_SECDEF))
            return
        first = self.market.times[0] - dt.timedelta(minutes=self.market.bar_minutes)
        s.send(msg.head_timestamp(req, ib_datetime(first)))

    # ---- account -------------------------------------------------------------------
    def _on_6(self, s, f):                                     # reqAccountUpdates
        f.skip()
        s.account_sub = f.bool()
        if s.account_sub:
            self.push_account(s, download_end=True)

    def _on_76(self, s, f):                                    # reqAccountUpdatesMulti
        f.skip()
        req = f.int()
        s.multi_subs.add(req)
        self.push_account_multi(s, req, end=True)

    def _on_77(self, s, f):                                    # cancelAccountUpdatesMulti
        f.skip()
        s.multi_subs.discard(f.int())

    def _on_62(self, s, f):                                    # reqAccountSummary
        f.skip()
        req = f.int()
        f.skip()                                               # group
        tags = f.str()
        wanted = {t for t in tags.split(",") if t}
        vals = self.ledger.values(self.mark)
        out = [msg.account_summary(req, self.account, "AccountType", "INDIVIDUAL", "")]
        out += [msg.account_summary(req, self.account, k, f"{v:.2f}", "USD")
                for k, v in vals.items() if not wanted or k in wanted or "All" in wanted]
        s.send(b"".join(out) + msg.account_summary_end(req))

    def _on_63(self, s, f):                                    # cancelAccountSummary
        pass

    def _on_61(self, s, f):                                    # reqPositions
        s.positions_sub = True
        out = [msg.position(self.account, p.inst, p.qty, p.avg_cost)
               for p in self.ledger.positions.values() if p.qty]
        s.send(b"".join(out) + msg.position_end())

    def _on_64(self, s, f):                                    # cancelPositions
        s.positions_sub = False

    def _on_74(self, s, f):                                    # reqPositionsMulti
        f.skip()
        req = f.int()
        out = [msg.position_multi(req, self.account, p.inst, p.qty, p.avg_cost)
               for p in self.ledger.positions.values() if p.qty]
        s.send(b"".join(out) + msg.position_multi_end(req))

    def _on_92(self, s, f):                                    # reqPnL
        req = f.int()
        s.pnl_subs.add(req)
        self.push_pnl(s)

    def _on_93(self, s, f):                                    # cancelPnL
        s.pnl_subs.discard(f.int())

    # ---- orders --------------------------------------------------------------------
    def _on_3(self, s, f):                                     # placeOrder
        order_id = f.int()
        q = f.contract()
        raw = parse_place_order(f, q)
        self.place_order(s, order_id, q, raw)

    def _on_4(self, s, f):                                     # cancelOrder
        f.skip()
        self.cancel_order(s, f.int())

    def _on_58(self, s, f):                                    # reqGlobalCancel
        for o in self.ledger.open_orders():
            self.cancel_order(None, o.order_id, o)

    def _on_5(self, s, f):                                     # reqOpenOrders
        self.send_open_orders(s, s.client_id)

    def _on_16(self, s, f):                                    # reqAllOpenOrders
        self.send_open_orders(s, None)

    def _on_99(self, s, f):                                    # reqCompletedOrders
        s.send(msg.completed_orders_end())

    def _on_7(self, s, f):                                     # reqExecutions
        f.skip()
        req = f.int()
        cid, acct, since, symbol, sec = f.int(), f.str(), f.str(), f.str().upper(), f.str().upper()
        f.skip()                                               # exchange
        side = f.str().upper()
        today = self.clock.now().date()
        try:
            since_t = parse_end_time(since, self.clock.now()) if since else None
        except (ValueError, KeyError):
            since_t = None
        out = []
        for e in self.ledger.executions:
            o = e.order
            if e.time.date() != today or (cid and o.client_id != cid):
                continue
            if (acct and acct != self.account) or (symbol and symbol != o.inst.symbol.upper()):
                continue
            if (sec and sec != o.inst.sec_type) or (since_t and e.time < since_t):
                continue
            if side and side not in (o.action, e.side):
                continue
            out.append(msg.exec_details(req, e, self.account) + msg.commission_report(e))
        s.send(b"".join(out) + msg.exec_details_end(req))

    # ---- helpers -------------------------------------------------------------------------
    def historical(self, s, req, q, include_expired, end_text, bar_text, dur_text, what, date_format):
        now = self.clock.now()
        found = self.market.resolve(q, now, include_expired)
        if len(found) != 1:
            s.send(msg.error(req, 200, NO_SECDEF))
            return
        bar = _BAR.match(bar_text or "")
        dur = _DUR.match(dur_text or "")
        hmds = "Historical Market Data Service error message:"
        if not bar or not dur:
            s.send(msg.error(req, 321, f"Error validating request:-'bar size {bar_text!r} / duration {dur_text!r}'"))
            return
        n, unit = int(bar.group(1)), bar.group(2).lower()
        minutes = {"sec": n / 60, "min": n, "hour": 60 * n}.get(unit.rstrip("s"))
        daily = unit.startswith("day") and n == 1
        base = self.market.bar_minutes
        if not daily and (minutes is None or minutes < base or minutes % base):
            s.send(msg.error(req, 162, f"{hmds}bar size {bar_text!r} is not served (the market has "
                                       f"{base}-minute bars; use multiples, or 1 day)"))
            return
        if what not in ("TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK", "ADJUSTED_LAST"):
            s.send(msg.error(req, 162, f"{hmds}whatToShow {what} is not served"))
            return
        try:
            end = min(parse_end_time(end_text, now), now)
        except (ValueError, KeyError) as exc:
            s.send(msg.error(req, 321, f"Error validating request:-'endDateTime {end_text!r}: {exc}'"))
            return
        k, u = int(dur.group(1)), dur.group(2).upper()
        seconds = {"S": k, "W": 7 * 86400 * k, "M": 30 * 86400 * k, "Y": 365 * 86400 * k}.get(u)
        if u == "D":
            seconds = self.market.sessions_back(end, k)
        bars = self.market.history(found[0], end, seconds, None if daily else int(minutes),
                                   "MIDPOINT" if what == "BID_ASK" else what)
        if not bars:
            s.send(msg.error(req, 162, f"{hmds}HMDS query returned no data: {found[0].describe()}"))
            return
        start = end - dt.timedelta(seconds=seconds)
        s.send(msg.historical_data(req, ib_datetime(start), ib_datetime(end), bars, date_format, daily))

    def trading_hours(self) -> str:
        """A week of sessions from today, IB's ``yyyymmdd:hhmm-yyyymmdd:hhmm`` form."""
        today = self.clock.now().date()
        out = []
        for k in range(7):
            d = today + dt.timedelta(days=k)
            ds = d.strftime("%Y%m%d")
            out.append(f"{ds}:CLOSED" if d.weekday() >= 5 else f"{ds}:0930-{ds}:1600")
        return ";".join(out)
