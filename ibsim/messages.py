"""Outgoing messages at server version 176, field for field as ib_insync's decoder
(``ib_insync/decoder.py``) reads them. Each function returns one framed message."""
from __future__ import annotations

import datetime as dt

from ibsim.market import Instrument, TZ_NAME, ib_datetime
from ibsim.orders import Execution, SimOrder
from ibsim.protocol import encode

# message ids (incoming to the client)
TICK_PRICE, TICK_SIZE, ORDER_STATUS, ERR_MSG, OPEN_ORDER = 1, 2, 3, 4, 5
ACCT_VALUE, PORTFOLIO_VALUE, ACCT_UPDATE_TIME, NEXT_VALID_ID = 6, 7, 8, 9
CONTRACT_DATA, EXECUTION_DATA, MANAGED_ACCTS, HISTORICAL_DATA = 10, 11, 15, 17
TICK_OPTION_COMPUTATION, TICK_GENERIC, TICK_STRING, CURRENT_TIME = 21, 45, 46, 49
CONTRACT_DATA_END, OPEN_ORDER_END, ACCT_DOWNLOAD_END, EXECUTION_DATA_END = 52, 53, 54, 55
TICK_SNAPSHOT_END, MARKET_DATA_TYPE, COMMISSION_REPORT = 57, 58, 59
POSITION_DATA, POSITION_END, ACCOUNT_SUMMARY, ACCOUNT_SUMMARY_END = 61, 62, 63, 64
POSITION_MULTI, POSITION_MULTI_END, ACCOUNT_UPDATE_MULTI, ACCOUNT_UPDATE_MULTI_END = 71, 72, 73, 74
SECDEF_OPT_PARAMS, SECDEF_OPT_PARAMS_END, SYMBOL_SAMPLES, TICK_REQ_PARAMS = 75, 76, 79, 81
HEAD_TIMESTAMP, PNL, COMPLETED_ORDERS_END = 88, 94, 102


def _c11(i: Instrument, exchange: str | None = None) -> tuple:
    """conId .. tradingClass with exchange (position, openOrder, execDetails)."""
    return (i.con_id, i.symbol, i.sec_type, i.expiry, i.strike, i.right, i.mult_str,
            exchange or i.exchange, i.currency, i.local_symbol, i.trading_class)


def error(req_id: int, code: int, text: str, advanced: str = "") -> bytes:
    return encode(ERR_MSG, 2, req_id, code, text, advanced)


def managed_accounts(account: str) -> bytes:
    return encode(MANAGED_ACCTS, 1, account)


def next_valid_id(order_id: int) -> bytes:
    return encode(NEXT_VALID_ID, 1, order_id)


def current_time(epoch: int) -> bytes:
    return encode(CURRENT_TIME, 1, epoch)


# ---- market data ----------------------------------------------------------------
def tick_price(req_id: int, tick_type: int, price: float, size: float, attrib: int = 0) -> bytes:
    """Price with its size in one message (the form ib_insync's priceSizeTick reads)."""
    return encode(TICK_PRICE, 6, req_id, tick_type, price, size, attrib)


def tick_size(req_id: int, tick_type: int, size: float) -> bytes:
    return encode(TICK_SIZE, 6, req_id, tick_type, size)


def tick_generic(req_id: int, tick_type: int, value: float) -> bytes:
    return encode(TICK_GENERIC, 6, req_id, tick_type, value)


def tick_string(req_id: int, tick_type: int, value: str) -> bytes:
    return encode(TICK_STRING, 6, req_id, tick_type, value)


def tick_option(req_id: int, tick_type: int, comp: tuple) -> bytes:
    """impliedVol, delta, optPrice, pvDividend, gamma, vega, theta, undPrice."""
    return encode(TICK_OPTION_COMPUTATION, req_id, tick_type, 1, *comp)


def tick_req_params(req_id: int) -> bytes:
    return encode(TICK_REQ_PARAMS, req_id, 0.01, "9c0001", 3)


def market_data_type(req_id: int, kind: int) -> bytes:
    return encode(MARKET_DATA_TYPE, 1, req_id, kind)


def tick_snapshot_end(req_id: int) -> bytes:
    return encode(TICK_SNAPSHOT_END, 1, req_id)


# ---- contracts ------------------------------------------------------------------
def contract_details(req_id: int, i: Instrument, hours: str, und_conid: int, long_name: str) -> bytes:
    opt = i.is_option
    return encode(
        CONTRACT_DATA, req_id, i.symbol, i.sec_type, i.expiry, i.strike, i.right, i.exchange,
        i.currency, i.local_symbol, i.trading_class, i.trading_class,
        i.con_id, 0.01, i.mult_str, "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,DAY,GTC,IOC,LMT,MKT,STP,STPLMT",
        "SMART,CBOE,ISE,PHLX,AMEX,BOX" if opt else f"SMART,{i.primary_exchange or 'NASDAQ'},ARCA,BATS",
        1, und_conid if opt else 0, long_name, "" if opt else i.primary_exchange,
        i.expiry[:6] if opt else "", "Technology", "Semiconductors", "Electronic Compo-Semicon",
        TZ_NAME, hours, hours, "", "", 0,
        2 if opt else 1, i.symbol if opt else "", "STK" if opt else "", "32,109" if opt else "26,26,26",
        i.expiry, "" if opt else "COMMON", 1, 1, 1 if opt else 100)


def contract_details_end(req_id: int) -> bytes:
    return encode(CONTRACT_DATA_END, 1, req_id)


def secdef_opt_params(req_id: int, und_conid: int, trading_class: str,
                      expirations: list[str], strikes: list[float]) -> bytes:
    return encode(SECDEF_OPT_PARAMS, req_id, "SMART", und_conid, trading_class, "100",
                  len(expirations), *expirations, len(strikes), *strikes)


def secdef_opt_params_end(req_id: int) -> bytes:
    return encode(SECDEF_OPT_PARAMS_END, req_id)


def symbol_samples(req_id: int, stock: Instrument, description: str) -> bytes:
    if stock is None:
        return encode(SYMBOL_SAMPLES, req_id, 0)
    return encode(SYMBOL_SAMPLES, req_id, 1, stock.con_id, stock.symbol, "STK",
                  stock.primary_exchange, stock.currency, 1, "OPT", description, "")


# ---- history ----------------------------------------------------------------------
def historical_data(req_id: int, start: str, end: str, bars: list[tuple], date_format: int,
                    daily: bool) -> bytes:
    fields: list = [HISTORICAL_DATA, req_id, start, end, len(bars)]
    for stamp, o, h, lo, c in bars:
        if daily:
            d = stamp.strftime("%Y%m%d")
        elif date_format == 2:
            from ibsim.market import epoch
            d = str(int(epoch(stamp)))
        else:
            d = ib_datetime(stamp)
        fields += [d, round(o, 4), round(h, 4), round(lo, 4), round(c, 4), 0, round(c, 4), 0]
    return encode(*fields)


def head_timestamp(req_id: int, stamp: str) -> bytes:
    return encode(HEAD_TIMESTAMP, req_id, stamp)


# ---- account --------------------------------------------------------------------
def account_value(key: str, value: str, currency: str, account: str) -> bytes:
    return encode(ACCT_VALUE, 2, key, value, currency, account)


def portfolio_value(i: Instrument, qty: float, price: float, value: float, avg_cost: float,
                    unrealized: float, realized: float, account: str) -> bytes:
    return encode(PORTFOLIO_VALUE, 8, i.con_id, i.symbol, i.sec_type, i.expiry, i.strike, i.right,
                  i.mult_str, i.primary_exchange, i.currency, i.local_symbol, i.trading_class,
                  qty, round(price, 6), round(value, 2), round(avg_cost, 6), round(unrealized, 2),
                  round(realized, 2), account)


def account_time(t: dt.datetime) -> bytes:
    return encode(ACCT_UPDATE_TIME, 1, t.strftime("%H:%M"))


def account_download_end(account: str) -> bytes:
    return encode(ACCT_DOWNLOAD_END, 1, account)


def account_update_multi(req_id: int, account: str, key: str, value: str, currency: str) -> bytes:
    return encode(ACCOUNT_UPDATE_MULTI, 1, req_id, account, "", key, value, currency)


def account_update_multi_end(req_id: int) -> bytes:
    return encode(ACCOUNT_UPDATE_MULTI_END, 1, req_id)


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> bytes:
    return encode(ACCOUNT_SUMMARY, 1, req_id, account, tag, value, currency)


def account_summary_end(req_id: int) -> bytes:
    return encode(ACCOUNT_SUMMARY_END, 1, req_id)


def position(account: str, i: Instrument, qty: float, avg_cost: float) -> bytes:
    return encode(POSITION_DATA, 3, account, *_c11(i), qty, round(avg_cost, 6))


def position_end() -> bytes:
    return encode(POSITION_END, 1)


def position_multi(req_id: int, account: str, i: Instrument, qty: float, avg_cost: float) -> bytes:
    return encode(POSITION_MULTI, 1, req_id, account, *_c11(i), qty, round(avg_cost, 6), "")


def position_multi_end(req_id: int) -> bytes:
    return encode(POSITION_MULTI_END, 1, req_id)


def pnl(req_id: int, daily: float, unrealized: float, realized: float) -> bytes:
    return encode(PNL, req_id, round(daily, 2), round(unrealized, 2), round(realized, 2))


# ---- orders -----------------------------------------------------------------------
def order_status(o: SimOrder, status: str | None = None) -> bytes:
    return encode(ORDER_STATUS, o.order_id, status or o.status, o.filled, o.remaining,
                  round(o.avg_fill_price, 6), o.perm_id, o.raw.get("parentId", 0),
                  round(o.last_fill_price, 6), o.client_id, "", "")


def open_order_end() -> bytes:
    return encode(OPEN_ORDER_END, 1)


def completed_orders_end() -> bytes:
    return encode(COMPLETED_ORDERS_END)


def open_order(o: SimOrder, account: str, what_if: dict | None = None) -> bytes:
    """The full openOrder message (mirrors ``Decoder.openOrder`` at version 176)."""
    r = o.raw
    g = r.get
    st = what_if or {}
    fields = [
        OPEN_ORDER, o.order_id, *_c11(o.inst),
        o.action, o.quantity, o.order_type, o.lmt_price if o.order_type == "LMT" else "",
        g("auxPrice", ""), o.tif or "DAY", g("ocaGroup", ""), account, g("openClose", ""),
        g("origin", 0), o.order_ref, o.client_id, o.perm_id, o.outside_rth, g("hidden", False),
        g("discretionaryAmt", 0), g("goodAfterTime", ""), "",
        g("faGroup", ""), g("faMethod", ""), g("faPercentage", ""), g("faProfile", ""),
        g("modelCode", ""), g("goodTillDate", ""), g("rule80A", ""), g("percentOffset", ""),
        g("settlingFirm", ""), g("shortSaleSlot", 0), g("designatedLocation", ""),
        g("exemptCode", -1), g("auctionStrategy", 0), g("startingPrice", ""),
        g("stockRefPrice", ""), g("delta", ""), g("stockRangeLower", ""),
        g("stockRangeUpper", ""), g("displaySize", 0), g("blockOrder", False),
        g("sweepToFill", False), g("allOrNone", False), g("minQty", ""), g("ocaType", 0),
        False, False, "", g("parentId", 0), g("triggerMethod", 0),
        g("volatility", ""), g("volatilityType", ""), "", "",          # no delta-neutral order
        g("continuousUpdate", False), g("referencePriceType", ""), g("trailStopPrice", ""),
        g("trailingPercent", ""), "", "", "",                          # basisPoints(Type), comboLegsDescrip
        0, 0, 0,                                                       # combo legs, order legs, smart params
        g("scaleInitLevelSize", ""), g("scaleSubsLevelSize", ""), "",  # no scale increment
        "",                                                            # hedgeType
        g("optOutSmartRouting", False), g("clearingAccount", ""), g("clearingIntent", ""),
        g("notHeld", False), 0,                                        # no delta-neutral contract
        "",                                                            # algoStrategy
        g("solicited", False), bool(what_if), o.status,
        st.get("initMarginBefore", ""), st.get("maintMarginBefore", ""), st.get("equityWithLoanBefore", ""),
        st.get("initMarginChange", ""), st.get("maintMarginChange", ""), st.get("equityWithLoanChange", ""),
        st.get("initMarginAfter", ""), st.get("maintMarginAfter", ""), st.get("equityWithLoanAfter", ""),
        st.get("commission", ""), st.get("minCommission", ""), st.get("maxCommission", ""),
        "USD" if what_if else "", "", g("randomizeSize", False), g("randomizePrice", False),
        0,                                                             # conditions
        "", "", "", "", "", "", "", 0,                                 # adjusted* fields
        "", "", "",                                                    # soft dollar tier
        g("cashQty", ""), g("dontUseAutoPriceForHedge", False), g("isOmsContainer", False),
        g("discretionaryUpToLimitPrice", False), g("usePriceMgmtAlgo", ""),
        g("duration", ""), g("postToAts", ""), g("autoCancelParent", False),
        "", "", "", "", "",                                            # minTradeQty .. midOffsetAtHalf
    ]
    return encode(*fields)


def exec_details(req_id: int, e: Execution, account: str) -> bytes:
    o = e.order
    return encode(EXECUTION_DATA, req_id, o.order_id, *_c11(o.inst, e.exchange), e.exec_id,
                  ib_datetime(e.time), account, e.exchange, e.side, e.shares, e.price, o.perm_id,
                  o.client_id, 0, e.cum_qty, round(e.avg_price, 6), o.order_ref, "", "", "", 2)


def exec_details_end(req_id: int) -> bytes:
    return encode(EXECUTION_DATA_END, 1, req_id)


def commission_report(e: Execution) -> bytes:
    realized = "" if e.realized_pnl is None else round(e.realized_pnl, 4)
    return encode(COMMISSION_REPORT, 1, e.exec_id, round(e.commission, 6), "USD", realized, "", "")
