"""Historical option quotes (``market.source: chain``).

``market.chain.path`` is a CSV file, or Parquet when its name ends in .parquet/.pq, in
the long format: one row per contract per quote time. Column names are case-insensitive.

* ``datetime``: quote time, New York (or ``date``: a date alone is the 16:00 close)
* ``underlying_price``: the underlying's price at that time (not needed with
  ``market.chain.underlying_path``)
* ``expiry``: expiry date, YYYY-MM-DD (the contract expires 16:00 that day)
* ``strike``: > 0
* ``right``: C or P (call/put)
* ``bid``, ``ask``: per share; an empty cell or ask 0 means not quoted
* optional ``iv`` (decimal, 0.35) and ``delta``, ``gamma``, ``vega``, ``theta`` per
  share: vega per 1.00 of vol, theta per calendar year

Rows may come in any order (they are sorted); one row per (time, expiry, strike, right).
A row's greeks are used only when all four are present (and its iv > 0 when the file has
an iv column); otherwise the strategy computes its own from the mid.

``market.chain.format: cboe`` reads a Cboe DataShop "Option EOD Summary" CSV and maps its
15:45 snapshot to the long format: datetime = ``quote_date`` 15:45; underlying_price = mid
of ``underlying_bid_1545``/``underlying_ask_1545`` (``active_underlying_price_1545`` when
those are not both > 0, e.g. for indices); bid/ask = ``bid_1545``/``ask_1545``; expiry =
``expiration``; right = ``option_type``; iv = ``implied_volatility_1545``; delta, gamma
from ``delta_1545``, ``gamma_1545``; theta = ``theta_1545`` x 365 (Cboe's is per day) and
vega = ``vega_1545`` x 100 (Cboe's is per vol point, 0.01). Only rows whose
``underlying_symbol`` is the config's ``symbol`` are kept (a leading ^ ignored); roots
ending in a digit (adjusted contracts after splits and the like) are dropped; when two
roots quote the same (date, expiry, strike, right), e.g. SPX and SPXW on a third Friday,
the root equal to the symbol is kept, else the first in alphabetical order.

The underlying's bars are the chain's quote times with one price each (the median of
``underlying_price`` at that time), or, with ``market.chain.underlying_path``, the bars
of that CSV (read as for ``market.source: csv``); then quotes count only at bars with
exactly their timestamp. The stock quote is the close -/+ half of ``market.spread.stock_bps``.

Option slots follow the strategy's own roll rule (``feeds.market.plan_slots`` with
``bifrost.structure.choose_straddle`` over the straddles with both legs quoted at that
bar, and none outside 09:30-16:00 when ``gates.strategy.trading_hours_only``, as the
strategy does); each slot carries its contract's quotes where it holds it, NaN where that contract
is not quoted. A bad file raises ``DataError`` naming the file, the line and the problem.
"""
from __future__ import annotations

import datetime as _dt
import logging

import numpy as np
import pandas as pd

from bifrost import structure
from bifrost.guards import outside_trading_hours
from feeds.csvbars import (Table, bt_numbers, fmt_time, load_bars, numbers, parse_times,
                           read_table, read_table_header, time_column)
from feeds.errors import DataError
from feeds.market import EXPIRY_HOUR, Market, plan_slots, stock_quote

log = logging.getLogger("bifrost.feeds")

GREEKS = ("delta", "gamma", "vega", "theta")
LONG_COLUMNS = {"datetime", "date", "underlying_price", "expiry", "strike", "right", "bid", "ask",
                "iv", *GREEKS}
_EPOCH_ORDINAL = 719163
_RIGHTS = {"C": 1, "CALL": 1, "1": 1, "1.0": 1, "+1": 1,
           "P": -1, "PUT": -1, "-1": -1, "-1.0": -1}

CBOE_SNAPSHOT_SECONDS = 15 * 3600 + 45 * 60
CBOE_COLUMNS = {"underlying_symbol", "quote_date", "root", "expiration", "strike", "option_type",
                "bid_1545", "ask_1545", "underlying_bid_1545", "underlying_ask_1545",
                "active_underlying_price_1545", "implied_volatility_1545", "delta_1545",
                "gamma_1545", "theta_1545", "vega_1545"}
# long-format name -> the Cboe column it comes from (for error messages)
CBOE_NAMES = {"datetime": "quote_date", "expiry": "expiration", "right": "option_type",
              "bid": "bid_1545", "ask": "ask_1545", "iv": "implied_volatility_1545",
              "delta": "delta_1545", "gamma": "gamma_1545", "theta": "theta_1545",
              "vega": "vega_1545", "underlying_price": "underlying_bid_1545/underlying_ask_1545"}


# -- reading -----------------------------------------------------------------------------
def _missing(table: Table, missing: list, required: str) -> DataError:
    return DataError(f"{table.path}: missing column(s): {', '.join(missing)}; required: {required}; "
                     f"found: {read_table_header(table.path)}")


def _dates(table: Table, col: str) -> np.ndarray:
    """A date column as ordinals (unique values parsed once)."""
    t = parse_times(table, table.df[col], table.name(col), date_only_seconds=None)
    days = t.astype("datetime64[D]").astype(np.int64)
    return days + _EPOCH_ORDINAL


def _rights(table: Table, col: str) -> np.ndarray:
    raw = table.df[col]
    codes, uniq = pd.factorize(raw.astype(str).str.strip().str.upper())
    mapped = np.array([_RIGHTS.get(u, 0) for u in uniq], dtype=np.int8)
    out = mapped[codes] if len(uniq) else np.zeros(len(raw), dtype=np.int8)
    bad = (out == 0) | (codes < 0)
    if bad.any():
        k = int(np.argmax(bad))
        raise table.error(table.df.index[k], f"{table.name(col)} is {raw.iloc[k]!r}: expected C or P "
                                             "(call or put)")
    return out


def _quotes(table: Table, underlying: np.ndarray | None, times: np.ndarray) -> pd.DataFrame:
    """The long-format columns of ``table`` checked and normalised: t (datetime64[s]),
    expiry (ordinal), strike, right (+1/-1), bid, ask, iv, greeks, underlying, src (index)."""
    df = table.df
    expiry = _dates(table, "expiry")
    right = _rights(table, "right")
    strike = numbers(table, "strike", positive=True)
    bid = numbers(table, "bid", allow_empty=True, nonneg=True)
    ask = numbers(table, "ask", allow_empty=True, nonneg=True)
    crossed = bid > ask                                # False where either is NaN
    if crossed.any():
        k = int(np.argmax(crossed))
        raise table.error(df.index[k], f"crossed quote: {table.name('bid')} {bid[k]:g} > "
                                       f"{table.name('ask')} {ask[k]:g}")
    out = pd.DataFrame({"t": times, "expiry": expiry, "strike": strike, "right": right,
                        "bid": bid, "ask": ask, "src": df.index.to_numpy()})
    if underlying is not None:
        out["underlying"] = underlying
    has_iv = "iv" in df.columns
    iv = numbers(table, "iv", allow_empty=True) if has_iv else np.full(len(df), np.nan)
    iv = np.where(iv > 0, iv, np.nan)
    out["iv"] = iv
    if all(g in df.columns for g in GREEKS):
        greeks = {g: numbers(table, g, allow_empty=True) for g in GREEKS}
        ok = np.logical_and.reduce([np.isfinite(v) for v in greeks.values()])
        if has_iv:
            ok &= np.isfinite(iv)
        for g, v in greeks.items():
            out[g] = np.where(ok, v, np.nan)
    else:
        for g in GREEKS:
            out[g] = np.nan
    _check_duplicates(table, out)
    return out


def _check_duplicates(table: Table, q: pd.DataFrame) -> None:
    key = ["t", "expiry", "strike", "right"]
    dup = q.duplicated(key, keep="first").to_numpy()
    if not dup.any():
        return
    k = int(np.argmax(dup))
    row = q.iloc[k]
    same = q[(q["t"] == row["t"]) & (q["expiry"] == row["expiry"]) & (q["strike"] == row["strike"])
             & (q["right"] == row["right"])]
    first = table.where(same["src"].iloc[0]).rsplit(", ", 1)[-1]
    raise table.error(row["src"], f"duplicate quote for {fmt_time(row['t'])} expiry "
                                  f"{_dt.date.fromordinal(int(row['expiry']))} strike {row['strike']:g} "
                                  f"{'C' if row['right'] > 0 else 'P'} (first on {first}): one row "
                                  "per (time, expiry, strike, right)")


def read_long(path, need_underlying: bool = True) -> tuple[pd.DataFrame, Table]:
    """Read and check a long-format chain file."""
    table = read_table(path, usecols=LONG_COLUMNS)
    cols = set(table.df.columns)
    missing = [c for c in ("expiry", "strike", "right", "bid", "ask") if c not in cols]
    if "datetime" not in cols and "date" not in cols:
        missing.insert(0, "datetime (or date)")
    if need_underlying and "underlying_price" not in cols:
        missing.append("underlying_price")
    if missing:
        raise _missing(table, missing, "datetime (or date), underlying_price, expiry, strike, right, "
                                       "bid, ask (optional: iv, delta, gamma, vega, theta)")
    raw, label = time_column(table, extra_names=())
    times = parse_times(table, raw, label)
    under = (numbers(table, "underlying_price", positive=True)
             if "underlying_price" in cols else None)
    return _quotes(table, under, times), table


def read_cboe(path, symbol: str) -> tuple[pd.DataFrame, Table]:
    """Read a Cboe DataShop Option EOD Summary CSV and map its 15:45 snapshot to the
    long format (see the module docstring for the mapping and units)."""
    table = read_table(path, usecols=CBOE_COLUMNS)
    df = table.df
    cols = set(df.columns)
    missing = [c for c in ("quote_date", "expiration", "strike", "option_type", "bid_1545", "ask_1545")
               if c not in cols]
    if not ({"underlying_bid_1545", "underlying_ask_1545"} <= cols or "active_underlying_price_1545" in cols):
        missing.append("underlying_bid_1545 + underlying_ask_1545 (or active_underlying_price_1545)")
    if missing:
        raise _missing(table, missing, "quote_date, expiration, strike, option_type, bid_1545, ask_1545, "
                                       "underlying_bid_1545 + underlying_ask_1545 or "
                                       "active_underlying_price_1545")
    want = symbol.strip().upper().lstrip("^")
    if "underlying_symbol" in cols:
        sym = df["underlying_symbol"].astype(str).str.strip().str.upper().str.lstrip("^")
        keep = (sym == want).to_numpy()
        if not keep.any():
            have = ", ".join(sorted(set(sym.unique()))[:10])
            raise DataError(f"{table.path}: no rows for symbol {symbol!r} (the config's symbol); "
                            f"underlying_symbol has: {have}")
        df = df[keep]
    if "root" in cols:
        root = df["root"].astype(str).str.strip().str.upper()
        df = df[~root.str.contains(r"\d$", regex=True).to_numpy()]
        root = root.loc[df.index]
        if root.nunique() > 1:
            # the same contract from two roots (SPX and SPXW on a third Friday): keep one
            rank = np.where(root == want, "0", "1") + root
            key = [df["quote_date"].astype(str), df["expiration"].astype(str),
                   df["strike"].astype(str), df["option_type"].astype(str).str.strip().str.upper()]
            best = rank.groupby(key).transform("min")
            df = df[(rank == best).to_numpy()]
        if df.empty:
            raise DataError(f"{table.path}: no rows left for {symbol!r} after dropping adjusted roots")
    mapped = pd.DataFrame(index=df.index)
    mapped["date"] = df["quote_date"]
    mapped["expiry"] = df["expiration"]
    mapped["strike"] = df["strike"]
    mapped["right"] = df["option_type"]
    mapped["bid"] = df["bid_1545"]
    mapped["ask"] = df["ask_1545"]
    view = Table(table.path, mapped, table.kind, {**table.names, **CBOE_NAMES,
                                                  "date": table.name("quote_date")})
    # underlying: mid of the 15:45 underlying quote, else the active price
    mid = np.full(len(df), np.nan)
    if {"underlying_bid_1545", "underlying_ask_1545"} <= cols:
        ub = pd.to_numeric(df["underlying_bid_1545"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        ua = pd.to_numeric(df["underlying_ask_1545"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        both = (ub > 0) & (ua > 0) & (ua >= ub)
        mid = np.where(both, 0.5 * (ub + ua), np.nan)
    if "active_underlying_price_1545" in cols:
        act = pd.to_numeric(df["active_underlying_price_1545"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        mid = np.where(np.isfinite(mid), mid, act)
    mapped["underlying_price"] = mid
    view.names["underlying_price"] = ("underlying price (mid of underlying_bid_1545/underlying_ask_1545"
                                      " or active_underlying_price_1545)")
    scale = {"implied_volatility_1545": ("iv", 1.0), "delta_1545": ("delta", 1.0),
             "gamma_1545": ("gamma", 1.0), "theta_1545": ("theta", 365.0),
             "vega_1545": ("vega", 100.0)}
    for src, (dst, factor) in scale.items():
        if src in cols:
            v = numbers(Table(table.path, df[[src]], table.kind, table.names), src, allow_empty=True)
            mapped[dst] = v * factor
    times = parse_times(view, mapped["date"], table.name("quote_date"), date_only_seconds=None)
    times = times.astype("datetime64[D]").astype("datetime64[s]") + np.timedelta64(CBOE_SNAPSHOT_SECONDS, "s")
    under = numbers(view, "underlying_price", positive=True)
    return _quotes(view, under, times), table


# -- the market ---------------------------------------------------------------------------
def chain_market(cfg: dict) -> Market:
    ch = cfg["market"]["chain"]
    st = cfg["gates"]["strategy"]["structure"]
    if ch["format"] == "cboe":
        q, table = read_cboe(ch["path"], cfg["symbol"])
    else:
        q, table = read_long(ch["path"], need_underlying=not ch["underlying_path"])
    q = q.sort_values(["t", "expiry", "strike", "right"], kind="stable").reset_index(drop=True)
    t_sec = q["t"].to_numpy().astype("datetime64[s]")

    if ch["underlying_path"]:
        bars = load_bars(ch["underlying_path"])
        times = bars.times
        bar = np.searchsorted(times, t_sec)
        bar_c = np.minimum(bar, len(times) - 1)
        on_bar = times[bar_c] == t_sec
        if not on_bar.any():
            raise DataError(f"{table.path}: no quote time matches a bar time of "
                            f"{ch['underlying_path']} (chain from {fmt_time(t_sec[0])}, bars from "
                            f"{fmt_time(times[0])}): quotes count only at bars with exactly their "
                            "timestamp")
        if not on_bar.all():
            log.warning("%s: %d of %d quotes are at times with no bar in %s; they are left out",
                        table.path, int((~on_bar).sum()), len(on_bar), ch["underlying_path"])
        q = q[on_bar].reset_index(drop=True)
        q["i"] = bar_c[on_bar]
        close, open_, high, low, volume = bars.close, bars.open, bars.high, bars.low, bars.volume
        dtn = bars.dt
    else:
        times, q["i"] = np.unique(t_sec, return_inverse=True)
        close = q.groupby("i", sort=True)["underlying"].median().to_numpy()
        open_ = np.concatenate((close[:1], close[:-1]))
        high, low = np.maximum(open_, close), np.minimum(open_, close)
        volume = np.zeros(len(close))
        dtn = bt_numbers(times)

    slots = chain_slots(q, dtn, times, close, cfg)
    bid, ask = stock_quote(close, cfg["market"]["spread"]["stock_bps"])
    return Market(symbol=cfg["symbol"], dt=dtn, close=close, open=open_, high=high, low=low,
                  bid=bid, ask=ask, volume=volume, implied_vol=_atm_iv(q, dtn, close, st),
                  slots=slots, source="chain")


def _quoted(q: pd.DataFrame) -> np.ndarray:
    bid, ask = q["bid"].to_numpy(), q["ask"].to_numpy()
    return np.isfinite(bid) & np.isfinite(ask) & (ask > 0)


def chain_slots(q: pd.DataFrame, dtn: np.ndarray, times: np.ndarray, spot: np.ndarray,
                cfg: dict) -> list[dict]:
    """Slot column dicts (as ``feeds.market.model_option_slots`` makes) from quotes with
    a bar index ``i``, planned with the strategy's roll rule."""
    st = cfg["gates"]["strategy"]["structure"]
    min_dte, max_dte, band = st["min_dte"], st["max_dte"], st["atm_band_pct"]
    rth_only = cfg["gates"]["strategy"]["trading_hours_only"]
    n = len(dtn)
    quoted = _quoted(q)

    # straddles with both legs quoted, per bar: rows sorted by bar, sliced by searchsorted
    legs = q.loc[quoted, ["i", "expiry", "strike", "right"]]
    both = legs.groupby(["i", "expiry", "strike"], sort=True)["right"].nunique()
    both = both[both == 2].index
    p_i = both.get_level_values(0).to_numpy()
    p_exp = both.get_level_values(1).to_numpy()
    p_k = both.get_level_values(2).to_numpy(dtype=float)
    start = np.searchsorted(p_i, np.arange(n + 1))

    def tradable(i):                        # the strategy does not open or roll outside RTH
        return not (rth_only and outside_trading_hours(pd.Timestamp(times[i]).to_pydatetime()))

    both_quoted = set(zip(p_i.tolist(), p_exp.tolist(), p_k.tolist()))

    def closable(i, held):                  # both legs quoted: the strategy can close it
        return (i, held[1], held[0]) in both_quoted

    def choose(i, today):
        lo, hi = start[i], start[i + 1]
        if lo == hi:
            return None
        e, k, s = p_exp[lo:hi], p_k[lo:hi], spot[i]
        dte = e - today
        # a superset of choose_straddle's test, which decides
        m = (dte >= min_dte) & (dte <= max_dte) & (np.abs(k - s) <= band * s * (1 + 1e-9))
        if not m.any():
            return None
        pairs = zip(k[m].tolist(), e[m].tolist())
        return structure.choose_straddle(s, today, pairs, min_dte, max_dte, band)

    key = pd.MultiIndex.from_arrays([q["i"].to_numpy(), q["expiry"].to_numpy(),
                                     q["strike"].to_numpy(dtype=float), q["right"].to_numpy()])
    cols = {c: q[c].to_numpy(dtype=float) for c in ("bid", "ask", "iv", *GREEKS)}
    cols["bid"] = np.where(quoted, cols["bid"], np.nan)
    cols["ask"] = np.where(quoted, cols["ask"], np.nan)
    nan = np.full(n, np.nan)
    slots = []
    bars = np.arange(n)
    for strikes, expiry in plan_slots(dtn, spot, choose, min_dte, band, tradable=tradable,
                                      closable=closable):
        tau = (expiry + EXPIRY_HOUR - dtn) / 365.0
        live = np.isfinite(strikes) & (tau > 0)
        at = bars[live]
        for right in (1, -1):
            want = pd.MultiIndex.from_arrays([at, expiry[live].astype(np.int64), strikes[live],
                                              np.full(len(at), right, dtype=q["right"].dtype)])
            pos = key.get_indexer(want)
            hit = pos >= 0

            def column(values):
                out = nan.copy()
                out[at[hit]] = values[pos[hit]]
                return out

            bid, ask = column(cols["bid"]), column(cols["ask"])
            mid = 0.5 * (bid + ask)
            slot = {"datetime": dtn, "open": mid, "high": mid, "low": mid, "close": mid,
                    "volume": np.zeros(n), "bid": bid, "ask": ask, "iv": column(cols["iv"])}
            for g in GREEKS:
                slot[g] = column(cols[g])
            slot["strike"] = np.where(live, strikes, np.nan)
            slot["expiry"] = np.where(live, expiry, np.nan)
            slot["right"] = np.full(n, float(right))
            slots.append(slot)
    return slots


def _atm_iv(q: pd.DataFrame, dtn: np.ndarray, spot: np.ndarray, st: dict) -> np.ndarray:
    """Per bar, the mean iv of the quotes nearest the money inside the DTE window (for
    reports); NaN where the file has none."""
    out = np.full(len(dtn), np.nan)
    iv = q["iv"].to_numpy()
    if not np.isfinite(iv).any():
        return out
    i = q["i"].to_numpy()
    dte = q["expiry"].to_numpy() - dtn.astype(np.int64)[i]
    ok = np.isfinite(iv) & (dte >= st["min_dte"]) & (dte <= st["max_dte"])
    if not ok.any():
        return out
    sub = pd.DataFrame({"i": i[ok], "iv": iv[ok], "dist": np.abs(q["strike"].to_numpy()[ok] - spot[i[ok]])})
    nearest = sub.groupby("i")["dist"].transform("min")
    atm = sub[sub["dist"] == nearest].groupby("i")["iv"].mean()
    out[atm.index.to_numpy()] = atm.to_numpy()
    return out
