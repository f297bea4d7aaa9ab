"""Market sources from files: underlying bars (csv) and historical option quotes (chain,
long format as CSV or Parquet, and the Cboe EOD Summary adapter). Every file is generated
here into tmp_path."""
import datetime as dt
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bifrost import structure
from bifrost.config import load_config
from bifrost.pricing import bs_arrays
from feeds.chain import chain_market
from feeds.csvbars import csv_market
from feeds.errors import DataError
from feeds.synthetic import to_bt_num
from runners.backtest import ROOT_DIR, run_backtest

FINITE = ["total_pnl", "option_pnl", "hedge_pnl", "costs", "max_drawdown", "realized_vol"]
GREEKS = ["delta", "gamma", "vega", "theta"]


# -- generated data ------------------------------------------------------------------------
def gbm(n, spot, vol, seed, dt_years=1 / 252):
    rng = np.random.default_rng(seed)
    return spot * np.exp(np.cumsum(vol * math.sqrt(dt_years) * rng.standard_normal(n)))


def yahoo_frame(days=120, spot=150.0, seed=5):
    dates = pd.bdate_range("2024-01-02", periods=days)
    close = np.round(gbm(days, spot, 0.35, seed), 4)
    open_ = np.round(np.concatenate(([spot], close[:-1])) * 1.001, 4)
    return pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Open": open_,
                         "High": np.maximum(open_, close) + 0.5, "Low": np.minimum(open_, close) - 0.5,
                         "Close": close, "Adj Close": np.round(close * 0.97, 4),
                         "Volume": np.arange(days) * 1000 + 5_000_000})


def csv_cfg(path, **csv):
    return load_config({"market": {"source": "csv", "csv": {"path": str(path), **csv}}})


def chain_cfg(path, **chain):
    return load_config({"market": {"source": "chain", "chain": {"path": str(path), **chain}}})


def make_chain(days=40, spot0=100.0, seed=3, vol=0.35, rate=0.05, step=5.0, n_strikes=3,
               start="2024-01-02", times=None, spot=None, strikes=None):
    """A long-format chain: daily quotes (date only) on weekly Friday expiries up to 45
    days out and 2 * n_strikes + 1 strikes around spot, Black-Scholes priced, with greeks.
    ``times`` (naive datetimes) and ``spot`` give intraday quotes on a chosen path;
    ``strikes`` a fixed strike list instead."""
    if times is None:
        dates = pd.bdate_range(start, periods=days)
        stamps = list(dates.strftime("%Y-%m-%d"))
        t_num = np.array([d.toordinal() + 16 / 24 for d in dates])
        time_col = "date"
    else:
        stamps = [t.strftime("%Y-%m-%d %H:%M:%S") for t in times]
        t_num = to_bt_num(times)
        time_col = "datetime"
    n = len(stamps)
    spot = np.round(gbm(n, spot0, vol, seed), 2) if spot is None else np.asarray(spot, dtype=float)
    d_ord = t_num.astype(int)
    first_fri = d_ord[0] + (4 - (d_ord[0] - 1) % 7) % 7
    fridays = np.arange(first_fri, d_ord[-1] + 50, 7)
    parts = []
    for j in range(n):
        exps = fridays[(fridays > d_ord[j]) & (fridays - d_ord[j] <= 45)]
        ks = (round(spot[j] / step) * step + step * np.arange(-n_strikes, n_strikes + 1)
              if strikes is None else np.asarray(strikes, dtype=float))
        e, k, r = np.meshgrid(exps, ks[ks > 0], [1, -1], indexing="ij")
        parts.append(pd.DataFrame({"j": j, "e": e.ravel(), "strike": k.ravel(), "r": r.ravel()}))
    g = pd.concat(parts, ignore_index=True)
    s = spot[g["j"]]
    tau = (g["e"].to_numpy() + 16 / 24 - t_num[g["j"]]) / 365.0
    price, delta, gamma, vega, theta = bs_arrays(g["r"], s, g["strike"], tau, vol, rate)
    half = np.maximum(0.05, 0.02 * price) / 2
    return pd.DataFrame({
        time_col: np.asarray(stamps, dtype=object)[g["j"]],
        "underlying_price": s,
        "expiry": [dt.date.fromordinal(int(e)).isoformat() for e in g["e"]],
        "strike": g["strike"].astype(float), "right": np.where(g["r"] > 0, "C", "P"),
        "bid": np.maximum(np.floor((price - half) * 100), 0) / 100,
        "ask": np.ceil((price + half) * 100) / 100,
        "iv": vol, "delta": delta, "gamma": gamma, "vega": vega, "theta": theta})


def to_cboe(long: pd.DataFrame, symbol="NVDA") -> pd.DataFrame:
    """The same quotes as a Cboe Option EOD Summary file (greeks in Cboe's units)."""
    n = len(long)
    s = long["underlying_price"].to_numpy()
    z = np.zeros(n)
    return pd.DataFrame({
        "underlying_symbol": symbol, "quote_date": long["date"], "root": symbol,
        "expiration": long["expiry"], "strike": long["strike"], "option_type": long["right"],
        "open": z, "high": z, "low": z, "close": z, "trade_volume": z,
        "bid_size_1545": z + 10, "bid_1545": long["bid"], "ask_size_1545": z + 10,
        "ask_1545": long["ask"], "underlying_bid_1545": s - 0.01, "underlying_ask_1545": s + 0.01,
        "implied_underlying_price_1545": s, "active_underlying_price_1545": s,
        "implied_volatility_1545": long["iv"], "delta_1545": long["delta"],
        "gamma_1545": long["gamma"], "theta_1545": long["theta"] / 365.0,
        "vega_1545": long["vega"] / 100.0, "rho_1545": z,
        "bid_size_eod": z + 10, "bid_eod": long["bid"], "ask_size_eod": z + 10,
        "ask_eod": long["ask"], "underlying_bid_eod": s, "underlying_ask_eod": s, "vwap": z,
        "open_interest": z + 100, "delivery_code": ""})


@pytest.fixture(scope="module")
def chain_df():
    return make_chain()


def expect_error(cfg_or_fn, *parts):
    with pytest.raises(DataError) as exc:
        cfg_or_fn()
    msg = str(exc.value)
    for p in parts:
        assert p in msg, f"{p!r} not in {msg!r}"
    return msg


# -- csv: your bars, modelled options --------------------------------------------------------
def test_yahoo_csv_end_to_end(tmp_path):
    p = tmp_path / "nvda.csv"
    yahoo_frame().to_csv(p, index=False)
    r = run_backtest({"market": {"source": "csv", "csv": {"path": str(p)}}})
    m = r.metrics
    assert m["bars"] == 120
    assert m["hedge_count"] > 5
    assert m["option_contracts_traded"] > 0
    for k in FINITE:
        assert math.isfinite(m[k]), k
    assert m["total_pnl"] == pytest.approx(m["option_pnl"] + m["hedge_pnl"] - m["costs"], abs=1e-6)
    assert m["implied_vol"] == pytest.approx(0.35)


def test_yahoo_market_uses_close_and_stamps_16h(tmp_path):
    df = yahoo_frame(days=30)
    p = tmp_path / "y.csv"
    df.to_csv(p, index=False)
    cfg = csv_cfg(p)
    m = csv_market(cfg)
    assert m.source == "csv" and m.symbol == "NVDA" and len(m) == 30
    np.testing.assert_array_equal(m.close, df["Close"])          # not Adj Close
    np.testing.assert_array_equal(m.open, df["Open"])
    np.testing.assert_array_equal(m.volume, df["Volume"])
    times = [dt.datetime.combine(dt.date.fromisoformat(d), dt.time(16)) for d in df["Date"]]
    np.testing.assert_array_equal(m.dt, to_bt_num(times))
    half = df["Close"].to_numpy() * cfg["market"]["spread"]["stock_bps"] / 2e4
    np.testing.assert_allclose(m.ask - m.bid, 2 * half)
    assert len(m.slots) >= 2 and len(m.slots) % 2 == 0
    for s in m.slots:
        assert len(s["close"]) == 30
        live = np.isfinite(s["strike"])
        assert live.any() and np.all(s["bid"][live] <= s["ask"][live])


def test_intraday_date_time_pair(tmp_path):
    days = pd.bdate_range("2024-03-04", periods=4)
    stamps = [d + pd.Timedelta(minutes=9 * 60 + 30 + 5 * (k + 1)) for d in days for k in range(78)]
    close = np.round(gbm(len(stamps), 180.0, 0.35, 11, dt_years=1 / (252 * 78)), 2)
    df = pd.DataFrame({"Date": [t.strftime("%Y-%m-%d") for t in stamps],
                       "Time": [t.strftime("%H:%M:%S") for t in stamps],
                       "Open": close, "High": close + 0.05, "Low": close - 0.05, "Close": close,
                       "Volume": 0, "OpenInterest": 0})
    p = tmp_path / "intraday.csv"
    df.to_csv(p, index=False)
    m = csv_market(csv_cfg(p))
    np.testing.assert_array_equal(m.dt, to_bt_num([t.to_pydatetime() for t in stamps]))
    np.testing.assert_array_equal(m.close, close)
    r = run_backtest(csv_cfg(p), market=m)
    assert r.metrics["bars"] == len(stamps) and r.metrics["hedge_count"] > 0


def test_timezone_aware_and_epoch_times(tmp_path):
    # 09:35 New York on both sides of the March DST change, given in UTC offsets and epoch
    ny = pd.to_datetime(["2024-03-08 09:35", "2024-03-08 16:00", "2024-03-11 09:35"]).tz_localize("America/New_York")
    want = to_bt_num([dt.datetime(2024, 3, 8, 9, 35), dt.datetime(2024, 3, 8, 16),
                      dt.datetime(2024, 3, 11, 9, 35)])
    close = [100.0, 101.0, 102.0]
    a = tmp_path / "aware.csv"
    pd.DataFrame({"Datetime": [t.isoformat(sep=" ") for t in ny], "Close": close}).to_csv(a, index=False)
    np.testing.assert_array_equal(csv_market(csv_cfg(a)).dt, want)
    z = tmp_path / "utc.csv"
    pd.DataFrame({"datetime": [t.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ") for t in ny],
                  "close": close}).to_csv(z, index=False)
    np.testing.assert_array_equal(csv_market(csv_cfg(z)).dt, want)
    e = tmp_path / "epoch.csv"
    pd.DataFrame({"timestamp": [int(t.timestamp()) for t in ny], "CLOSE": close}).to_csv(e, index=False)
    np.testing.assert_array_equal(csv_market(csv_cfg(e)).dt, want)


def test_iv_column(tmp_path):
    df = yahoo_frame(days=40)
    df["IV"] = np.linspace(0.2, 0.6, 40)
    p = tmp_path / "iv.csv"
    df.to_csv(p, index=False)
    m = csv_market(csv_cfg(p, implied_vol="iv"))
    np.testing.assert_array_equal(m.implied_vol, df["IV"])
    s = m.slots[0]
    live = np.isfinite(s["iv"])
    np.testing.assert_array_equal(s["iv"][live], df["IV"].to_numpy()[live])
    flat = csv_market(csv_cfg(p, implied_vol=0.2))
    assert np.nanmax(s["close"] - flat.slots[0]["close"]) > 0.5        # higher vol, dearer options
    expect_error(lambda: csv_market(csv_cfg(p, implied_vol="vix")), str(p), "'vix'", "not in the file",
                 "Adj Close")
    df.loc[7, "IV"] = 0.0
    df.to_csv(p, index=False)
    expect_error(lambda: csv_market(csv_cfg(p, implied_vol="IV")), str(p), "line 9", "must be > 0")
    df.loc[7, "IV"] = 35.0
    df.to_csv(p, index=False)
    expect_error(lambda: csv_market(csv_cfg(p, implied_vol="IV")), "line 9", "decimal")


GOOD = "Date,Open,High,Low,Close,Adj Close,Volume\n" \
       "2024-01-02,100,101,99,100.5,100,1000\n" \
       "2024-01-03,100,101,99,100.5,100,1000\n" \
       "2024-01-04,100,101,99,100.5,100,1000\n"


@pytest.mark.parametrize("content, parts", [
    ("", ["empty file"]),
    ("Date,Open,High,Low,Close\n", ["no data rows"]),
    ("Day,Open,Price\n2024-01-02,1,2\n", ["missing column", "date/time column", "Close",
                                          "found: Day, Open, Price"]),
    ("Date,Open\n2024-01-02,1\n", ["missing column", "Close", "found: Date, Open"]),
    (GOOD.replace("2024-01-03", "2024-13-45"), ["line 3", "cannot parse Date", "'2024-13-45'"]),
    (GOOD.replace("2024-01-04", ""), ["line 4", "Date is empty"]),
    (GOOD.replace("2024-01-04", "2024-01-01"), ["line 4", "earlier than line 3", "oldest first"]),
    (GOOD.replace("2024-01-04", "2024-01-03"), ["line 4", "duplicate timestamp 2024-01-03 16:00:00",
                                                "same as line 3"]),
    (GOOD.replace("99,100.5,100,1000\n2024-01-03", "99,-1,100,1000\n2024-01-03"),
     ["line 2", "Close must be > 0, got -1"]),
    (GOOD.replace("99,100.5,100,1000\n2024-01-04", "99,0,100,1000\n2024-01-04"),
     ["line 3", "Close must be > 0, got 0"]),
    (GOOD.replace("99,100.5,100,1000\n2024-01-04", "99,,100,1000\n2024-01-04"), ["line 3", "Close is empty"]),
    (GOOD.replace("99,100.5,100,1000\n2024-01-04", "99,null,100,1000\n2024-01-04"),
     ["line 3", "Close is not a number: 'null'"]),
    (GOOD.replace("2024-01-04,100", "2024-01-04,nan"), ["line 4", "Open"]),
    (GOOD.replace("2024-01-04,100,101", "2024-01-04,100,-101"), ["line 4", "High must be > 0"]),
    (GOOD[:-1] + "\n\n2024-01-05,100,101,99,0,100,1000\n", ["line 6", "Close must be > 0"]),  # blank line counted
])
def test_csv_errors_name_file_row_and_problem(tmp_path, content, parts):
    p = tmp_path / "bars.csv"
    p.write_text(content)
    expect_error(lambda: csv_market(csv_cfg(p)), str(p), *parts)


def test_csv_file_not_found(tmp_path):
    p = tmp_path / "nope.csv"
    expect_error(lambda: csv_market(csv_cfg(p)), str(p), "file not found")


def test_cli_reports_data_error_without_traceback(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text(GOOD.replace("2024-01-04", "2024-01-01"))
    proc = subprocess.run([sys.executable, str(ROOT_DIR / "runners" / "backtest.py"),
                           "--out", str(tmp_path / "out"), "--set", "market.source=csv",
                           "--set", f"market.csv.path={p}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert str(p) in proc.stderr and "line 4" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- chain: historical quotes ----------------------------------------------------------------
def _file_quotes(df: pd.DataFrame, time_col="date"):
    return {(r[time_col][:10], r["expiry"], float(r["strike"]), r["right"]): (r["bid"], r["ask"])
            for r in df.to_dict("records")}


def _check_slots_match_file(m, df):
    quotes = _file_quotes(df)
    days = [dt.date.fromordinal(int(t)).isoformat() for t in m.dt]
    checked = 0
    for s in m.slots:
        right = "C" if s["right"][0] > 0 else "P"
        for i in np.nonzero(np.isfinite(s["strike"]))[0]:
            key = (days[i], dt.date.fromordinal(int(s["expiry"][i])).isoformat(), s["strike"][i], right)
            assert key in quotes
            bid, ask = quotes[key]
            assert (s["bid"][i], s["ask"][i]) == (bid, ask)
            assert s["close"][i] == pytest.approx(0.5 * (bid + ask))
            checked += 1
    return checked


def test_chain_long_csv_slots_match_file(tmp_path, chain_df):
    p = tmp_path / "chain.csv"
    chain_df.to_csv(p, index=False)
    cfg = chain_cfg(p)
    m = chain_market(cfg)
    assert m.source == "chain" and len(m) == chain_df["date"].nunique()
    first = chain_df[chain_df["date"] == chain_df["date"].iloc[0]]
    assert m.close[0] == first["underlying_price"].iloc[0]
    assert m.dt[0] == to_bt_num([dt.datetime(2024, 1, 2, 16)])[0]
    assert len(m.slots) >= 2 and len(m.slots) % 2 == 0
    assert _check_slots_match_file(m, chain_df) > 2 * len(m)
    # bar 0 holds the straddle the strategy's rule picks from the file's quotes
    st = cfg["gates"]["strategy"]["structure"]
    today = dt.date(2024, 1, 2).toordinal()
    pairs = {(k, dt.date.fromisoformat(e).toordinal()) for k, e in zip(first["strike"], first["expiry"])}
    want = structure.choose_straddle(m.close[0], today, pairs, st["min_dte"], st["max_dte"], st["atm_band_pct"])
    assert want is not None
    assert (m.slots[0]["strike"][0], m.slots[0]["expiry"][0]) == want
    assert (m.slots[1]["strike"][0], m.slots[1]["right"][0]) == (want[0], -1)
    # file greeks are carried through
    call = m.slots[0]
    row = first[(first["strike"] == want[0]) & (first["right"] == "C")
                & (first["expiry"] == dt.date.fromordinal(want[1]).isoformat())].iloc[0]
    for g in GREEKS + ["iv"]:
        assert call[g][0] == pytest.approx(row[g], rel=1e-12)
    assert np.nanmean(m.implied_vol) == pytest.approx(0.35)


def _same_market(a, b, rtol=0.0):
    for f in ("dt", "close", "open", "high", "low", "bid", "ask", "volume"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=rtol, err_msg=f)
    assert len(a.slots) == len(b.slots)
    for sa, sb in zip(a.slots, b.slots):
        assert sa.keys() == sb.keys()
        for k in sa:
            np.testing.assert_allclose(sa[k], sb[k], rtol=rtol, equal_nan=True, err_msg=k)


def test_chain_parquet_and_unsorted_csv_give_the_same_market(tmp_path, chain_df):
    c = tmp_path / "chain.csv"
    chain_df.to_csv(c, index=False)
    base = chain_market(chain_cfg(c))
    q = tmp_path / "chain.parquet"
    chain_df.to_parquet(q, index=False)
    _same_market(base, chain_market(chain_cfg(q)))
    u = tmp_path / "shuffled.csv"
    chain_df.sample(frac=1.0, random_state=1).to_csv(u, index=False)
    _same_market(base, chain_market(chain_cfg(u)))


def test_chain_without_greeks_and_unquoted_bars(tmp_path, chain_df):
    df = chain_df.drop(columns=["iv"] + GREEKS)
    p = tmp_path / "plain.csv"
    df.to_csv(p, index=False)
    m = chain_market(chain_cfg(p))
    for s in m.slots:
        for g in GREEKS + ["iv"]:
            assert np.isnan(s[g]).all()
    assert np.isnan(m.implied_vol).all()
    # drop the held call's quote on bar 3 (and zero the put's): NaN there, contract kept
    s0, s1 = m.slots[0], m.slots[1]
    day = dt.date.fromordinal(int(m.dt[3])).isoformat()
    exp = dt.date.fromordinal(int(s0["expiry"][3])).isoformat()
    sel = (df["date"] == day) & (df["expiry"] == exp) & (df["strike"] == s0["strike"][3])
    df2 = df[~(sel & (df["right"] == "C"))].copy()
    df2.loc[sel & (df2["right"] == "P"), ["bid", "ask"]] = 0.0
    p2 = tmp_path / "gap.csv"
    df2.to_csv(p2, index=False)
    m2 = chain_market(chain_cfg(p2))
    g0, g1 = m2.slots[0], m2.slots[1]
    assert np.isnan(g0["bid"][3]) and np.isnan(g0["close"][3]) and g0["strike"][3] == s0["strike"][3]
    assert np.isnan(g1["ask"][3]) and g1["strike"][3] == s1["strike"][3]
    assert g0["bid"][2] == s0["bid"][2] and g0["bid"][4] == s0["bid"][4]


def test_chain_end_to_end(tmp_path, chain_df, caplog):
    p = tmp_path / "chain.parquet"
    chain_df.to_parquet(p, index=False)
    with caplog.at_level("ERROR", logger="bifrost"):
        r = run_backtest({"market": {"source": "chain", "chain": {"path": str(p)}}})
    assert not caplog.records          # the slots carry what the strategy holds (no "contract changed")
    m = r.metrics
    assert "delta_invalid" not in m["block_reasons"]
    assert m["bars"] == chain_df["date"].nunique()
    assert m["hedge_count"] > 3 and m["option_contracts_traded"] > 0
    for k in FINITE:
        assert math.isfinite(m[k]), k
    assert m["total_pnl"] == pytest.approx(m["option_pnl"] + m["hedge_pnl"] - m["costs"], abs=1e-6)
    assert m["implied_vol"] == pytest.approx(0.35, rel=1e-6)     # the file's greeks were used


def test_chain_with_underlying_bars(tmp_path, chain_df):
    days = chain_df.drop_duplicates("date")
    bars = tmp_path / "bars.csv"
    pd.DataFrame({"Date": days["date"], "Close": days["underlying_price"] + 0.01}).to_csv(bars, index=False)
    p = tmp_path / "chain.csv"
    chain_df.drop(columns=["underlying_price"]).to_csv(p, index=False)
    m = chain_market(chain_cfg(p, underlying_path=str(bars)))
    np.testing.assert_array_equal(m.close, days["underlying_price"].to_numpy() + 0.01)
    assert _check_slots_match_file(m, chain_df) > 2 * len(m)
    # the chain's times must meet the bars' times
    intraday = tmp_path / "intraday.csv"
    pd.DataFrame({"Datetime": days["date"] + " 10:00", "Close": 100.0}).to_csv(intraday, index=False)
    expect_error(lambda: chain_market(chain_cfg(p, underlying_path=str(intraday))),
                 str(p), "no quote time matches a bar time")
    # without underlying bars the chain must carry the price
    expect_error(lambda: chain_market(chain_cfg(p)), str(p), "missing column", "underlying_price")


def _chain_error_cases():
    def set_(row, col, val):
        def f(df):
            df[col] = df[col].astype(object)
            df.loc[row, col] = val
            return df
        return f
    return [
        (lambda df: df.drop(columns=["bid", "right"]),
         ["missing column", "right, bid", "required: datetime (or date)", "found: date, underlying_price"]),
        (set_(4, "date", "2024-02-30"), ["line 6", "cannot parse date", "'2024-02-30'"]),
        (set_(7, "expiry", "next friday"), ["line 9", "cannot parse expiry", "'next friday'"]),
        (set_(3, "right", "X"), ["line 5", "right is 'X'", "C or P"]),
        (lambda df: df.assign(bid=np.where(df.index == 5, df["ask"] + 1, df["bid"])),
         ["line 7", "crossed quote: bid", "> ask"]),
        (set_(6, "ask", -0.5), ["line 8", "ask must be >= 0, got -0.5"]),
        (set_(2, "strike", 0.0), ["line 4", "strike must be > 0"]),
        (set_(9, "underlying_price", ""), ["line 11", "underlying_price is empty"]),
        (set_(8, "bid", "abc"), ["line 10", "bid is not a number: 'abc'"]),
        (lambda df: pd.concat([df, df.iloc[[3]]], ignore_index=True),
         ["duplicate quote for 2024-01-02 16:00:00", "(first on line 5)"]),
    ]


@pytest.mark.parametrize("edit, parts", _chain_error_cases())
def test_chain_errors_name_file_row_and_problem(tmp_path, edit, parts):
    df = edit(make_chain(days=3).drop(columns=["iv"] + GREEKS))
    p = tmp_path / "chain.csv"
    df.to_csv(p, index=False)
    msg = expect_error(lambda: chain_market(chain_cfg(p)), str(p), *parts)
    if "duplicate" in msg:
        assert f"line {len(df) + 1}" in msg
    assert "Traceback" not in msg


def test_chain_file_errors(tmp_path):
    expect_error(lambda: chain_market(chain_cfg(tmp_path / "none.parquet")), "none.parquet", "file not found")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    expect_error(lambda: chain_market(chain_cfg(bad)), str(bad), "cannot read as Parquet")
    # Parquet: rows are counted from 1 (no header line); typed dates are the 16:00 close
    df = make_chain(days=3)
    df["date"] = pd.to_datetime(df["date"])
    df["expiry"] = pd.to_datetime(df["expiry"]).dt.date
    ok = tmp_path / "typed.parquet"
    df.to_parquet(ok, index=False)
    m = chain_market(chain_cfg(ok))
    assert m.dt[0] == to_bt_num([dt.datetime(2024, 1, 2, 16)])[0]
    df.loc[4, "bid"] = df.loc[4, "ask"] + 0.5
    df.to_parquet(bad, index=False)
    expect_error(lambda: chain_market(chain_cfg(bad)), str(bad), "row 5", "crossed quote")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    expect_error(lambda: chain_market(chain_cfg(empty)), str(empty), "empty file")


# -- Cboe DataShop Option EOD Summary ----------------------------------------------------------
def test_cboe_adapter_equals_long_format(tmp_path, chain_df):
    long = chain_df.copy()
    long.loc[long.index % 17 == 0, ["bid", "ask"]] = 0.0                 # some unquoted rows
    cboe = to_cboe(long)
    other = to_cboe(long.iloc[:50]).assign(underlying_symbol="AAPL", root="AAPL", bid_1545=1.0, ask_1545=2.0)
    adjusted = to_cboe(long.iloc[:50]).assign(root="NVDA1", bid_1545=0.5, ask_1545=9.0)
    twin = to_cboe(long.iloc[:50]).assign(root="NVDAW", bid_1545=0.1, ask_1545=0.2)  # same contracts, 2nd root
    mixed = pd.concat([cboe, other, adjusted, twin]).sample(frac=1.0, random_state=2)
    c = tmp_path / "UnderlyingOptionsEODCalcs_2024.csv"
    mixed.to_csv(c, index=False)
    got = chain_market(chain_cfg(c, format="cboe"))
    long15 = long.rename(columns={"date": "datetime"})
    long15["datetime"] = long15["datetime"] + " 15:45:00"
    lp = tmp_path / "long.csv"
    long15.to_csv(lp, index=False)
    want = chain_market(chain_cfg(lp))
    assert got.dt[0] == to_bt_num([dt.datetime(2024, 1, 2, 15, 45)])[0]
    _same_market(got, want, rtol=1e-12)                 # theta x365, vega x100 back to our units
    assert np.isfinite(got.slots[0]["theta"]).any()


def test_cboe_adapter_errors(tmp_path, chain_df):
    c = tmp_path / "cboe.csv"
    to_cboe(chain_df.iloc[:40], symbol="AAPL").to_csv(c, index=False)
    expect_error(lambda: chain_market(chain_cfg(c, format="cboe")), str(c), "no rows for symbol 'NVDA'", "AAPL")
    df = to_cboe(chain_df.iloc[:40]).drop(columns=["underlying_bid_1545", "active_underlying_price_1545"])
    df.to_csv(c, index=False)
    expect_error(lambda: chain_market(chain_cfg(c, format="cboe")), "missing column",
                 "underlying_bid_1545 + underlying_ask_1545 (or active_underlying_price_1545)")
    df = to_cboe(chain_df.iloc[:40])
    df.loc[6, "bid_1545"] = df.loc[6, "ask_1545"] + 1
    df.to_csv(c, index=False)
    expect_error(lambda: chain_market(chain_cfg(c, format="cboe")), str(c), "line 8", "crossed quote: bid_1545")
    df = to_cboe(chain_df.iloc[:40])
    df[["underlying_bid_1545", "underlying_ask_1545"]] = 0.0            # an index: active price used
    df.loc[3, "active_underlying_price_1545"] = 0.0
    df.to_csv(c, index=False)
    expect_error(lambda: chain_market(chain_cfg(c, format="cboe")), "line 5", "underlying price", "> 0")


def test_no_contract_in_two_slot_pairs_at_once(tmp_path, chain_df):
    p = tmp_path / "chain.csv"
    chain_df.to_csv(p, index=False)
    m = chain_market(chain_cfg(p))
    calls = m.slots[::2]
    for i in range(len(m)):
        held = [(s["strike"][i], s["expiry"][i]) for s in calls if np.isfinite(s["strike"][i])]
        assert len(held) == len(set(held)), f"bar {i}: {held}"


def premarket_gap(days=3):
    """5-minute bars from 09:05 (pre-market) with a gap at the second day's first bar and
    another move 15 minutes later, both before 09:30: two rolls are due pre-market."""
    stamps = [d + pd.Timedelta(minutes=9 * 60 + 5 * (k + 1))
              for d in pd.bdate_range("2024-03-04", periods=days) for k in range(84)]
    close = np.full(len(stamps), 100.0)
    close[84:] = 110.0
    close[87:] = 116.0
    return [t.to_pydatetime() for t in stamps], np.round(close * (1 + 0.002 * np.sin(np.arange(len(stamps)))), 4)


def test_chain_does_not_roll_outside_trading_hours(tmp_path, caplog):
    times, close = premarket_gap()
    p = tmp_path / "intraday-chain.parquet"
    make_chain(times=times, spot=close, strikes=np.arange(90.0, 130.0, 5.0)).to_parquet(p, index=False)
    with caplog.at_level("ERROR", logger="bifrost"):
        r = run_backtest(chain_cfg(p))
    assert not caplog.records
    assert "delta_invalid" not in r.metrics["block_reasons"]
    assert r.metrics["option_contracts_traded"] >= 40            # opened, then rolled at 09:35


def test_csv_bars_do_not_roll_outside_trading_hours(tmp_path, caplog):
    times, close = premarket_gap()
    p = tmp_path / "premarket.csv"
    pd.DataFrame({"Datetime": [t.strftime("%Y-%m-%d %H:%M") for t in times], "Close": close}).to_csv(p, index=False)
    with caplog.at_level("ERROR", logger="bifrost"):
        r = run_backtest(csv_cfg(p))
    assert "delta_invalid" not in r.metrics["block_reasons"]
    assert not caplog.records


def test_coarse_strike_grid_unwinds_instead_of_holding_to_expiry(tmp_path, caplog):
    """A price that drifts off the strike grid: rolls fall due with nothing to roll
    into, so the straddle is unwound; a held contract never expires under its slot
    (which would block every later bar as S1)."""
    days = 160
    df = yahoo_frame(days=days, spot=100.0, seed=11)
    df["Close"] = np.round(100.0 * np.exp(np.linspace(0.0, math.log(0.45), days)), 4)  # 100 -> 45
    path = tmp_path / "drift.csv"
    df.to_csv(path, index=False)
    caplog.set_level("WARNING")
    r = run_backtest(csv_cfg(path, strike_step=25.0))
    blocks = r.metrics["block_reasons"]
    assert "delta_invalid" not in blocks and "system_greeks_bad" not in blocks, blocks
    assert not any("contract changed" in m for m in caplog.messages)
    assert any("unwound" in m for m in caplog.messages)
    assert r.metrics["option_contracts_traded"] >= 40           # opened and unwound more than once
    # closing an unwound straddle's hedge is not counted as a hedge
    assert r.metrics["hedge_count"] == sum(h["status"] == "Completed" for h in r.hedges)
