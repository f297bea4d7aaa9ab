"""Your underlying's bars from a CSV file; options modelled on them (``market.source: csv``).

The file needs a time column and a close; names are case-insensitive:

* time: ``Datetime``, ``timestamp``, a ``Date`` + ``Time`` pair, or ``Date`` alone.
  Times are exchange-local America/New_York. Times with a UTC offset
  (``2024-01-02 09:35:00-05:00``, ``...Z``) and numeric epoch ``timestamp``s (seconds
  or milliseconds, UTC) are converted to New York time. A date without a time is the
  day's close, stamped 16:00.
* ``Close`` (a Yahoo file's ``Adj Close`` is ignored); ``Open``, ``High``, ``Low``,
  ``Volume`` optional (open defaults to the previous close, high/low to the larger and
  smaller of open and close, volume to 0).

Rows must be in time order, oldest first, one per timestamp; prices finite and > 0.
Options are Black-Scholes priced at ``market.csv.implied_vol`` (a number, or the name of
a column of per-row implied vols as decimals: 0.35 for 35 %) on a
``market.csv.strike_step`` strike grid with weekly expiries (``feeds.market``). The stock
quote is the close -/+ half of ``market.spread.stock_bps``.

A bad file raises ``DataError`` naming the file, the line (the header is line 1) and the
problem. The helpers here (reading a table, parsing times, checking numbers) are shared
with ``feeds.chain``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from feeds.errors import DataError
from feeds.market import Market, model_option_slots, stock_quote

log = logging.getLogger("bifrost.feeds")

NEW_YORK = "America/New_York"
DATE_ONLY_SECONDS = 16 * 3600          # a date without a time is the 16:00 close
_EPOCH_ORDINAL = 719163                # date(1970, 1, 1).toordinal()
_TZ_SUFFIX = r"(?:[zZ]|[+-]\d{2}:?\d{2})$"


# -- reading a table with line numbers -------------------------------------------------
@dataclass
class Table:
    """A data file read into a DataFrame with lower-case column names. The index is the
    data row's position in the file, so ``where(i)`` can name its line."""
    path: str
    df: pd.DataFrame
    kind: str                          # "csv" or "parquet"
    names: dict                        # lower-case name -> name as written in the file

    def where(self, index) -> str:
        if self.kind == "csv":
            return f"{self.path}, line {int(index) + 2}"     # header is line 1
        return f"{self.path}, row {int(index) + 1}"

    def error(self, index, problem: str) -> DataError:
        return DataError(f"{self.where(index)}: {problem}")

    def name(self, col: str) -> str:
        return self.names.get(col, col)


def read_table(path, usecols=None) -> Table:
    """Read a CSV (or Parquet, by the suffix .parquet/.pq) file. ``usecols``: optional
    set of lower-case column names to keep (others are skipped while reading)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: file not found")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a folder, expected a data file")
    kind = "parquet" if path.lower().endswith((".parquet", ".pq")) else "csv"
    want = (lambda c: str(c).strip().lower() in usecols) if usecols else None
    try:
        if kind == "parquet":
            columns = None
            if usecols:
                import pyarrow.parquet as pq
                columns = [c for c in pq.read_schema(path).names if want(c)]
            df = pd.read_parquet(path, columns=columns)
        else:
            # blank lines are kept as empty rows (dropped below) so that the index
            # stays the line number minus 2
            # only an empty cell is missing: "null", "NaN" are reported as not numbers
            df = pd.read_csv(path, skip_blank_lines=False, usecols=want, low_memory=False,
                             keep_default_na=False, na_values=[""],
                             encoding="utf-8-sig", encoding_errors="replace")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file (expected a header line and data rows)") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: cannot read as CSV: {str(exc).strip()}") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read as {'Parquet' if kind == 'parquet' else 'CSV'}: {exc}") from None
    except Exception as exc:           # pyarrow's errors for a file that is not Parquet
        if kind == "parquet":
            raise DataError(f"{path}: cannot read as Parquet: {exc}") from None
        raise
    names = {}
    for c in df.columns:
        names.setdefault(str(c).strip().lower(), str(c).strip())
    df.columns = [str(c).strip().lower() for c in df.columns]
    df = df.loc[:, ~df.columns.duplicated()]
    df = df.dropna(how="all")
    if kind == "parquet":
        df = df.reset_index(drop=True)
    if df.empty:
        raise DataError(f"{path}: no data rows (only a header: {', '.join(names.values())})")
    return Table(path, df, kind, names)


# -- checks ------------------------------------------------------------------------------
def _empty(raw: pd.Series) -> np.ndarray:
    out = raw.isna().to_numpy().copy()
    if raw.dtype == object or pd.api.types.is_string_dtype(raw.dtype):
        out |= (raw.astype(str).str.strip() == "").to_numpy()
    return out


def numbers(table: Table, col: str, *, allow_empty: bool = False, positive: bool = False,
            nonneg: bool = False, label: str | None = None) -> np.ndarray:
    """A numeric column as float64; the first bad row raises DataError: empty (unless
    ``allow_empty``, which gives NaN), not a number, infinite, <= 0 or < 0."""
    raw = table.df[col]
    label = label or table.name(col)
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        v = raw.to_numpy(dtype=float, na_value=np.nan)
        empty = np.isnan(v)
        junk = np.zeros(len(v), dtype=bool)
    else:
        v = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        empty = _empty(raw)
        junk = np.isnan(v) & ~empty
    if not allow_empty and empty.any():
        k = np.argmax(empty)
        raise table.error(table.df.index[k], f"{label} is empty")
    if junk.any():
        k = np.argmax(junk)
        raise table.error(table.df.index[k], f"{label} is not a number: {raw.iloc[k]!r}")
    bad = np.isinf(v)
    if positive:
        bad |= v <= 0
    elif nonneg:
        bad |= v < 0
    if bad.any():
        k = np.argmax(bad)
        want = "> 0" if positive else ">= 0" if nonneg else "finite"
        raise table.error(table.df.index[k], f"{label} must be {want}, got {v[k]:g}")
    return v


def _first_bad(table: Table, bad: np.ndarray, raw: pd.Series, label: str):
    k = int(np.argmax(bad))
    raise table.error(table.df.index[k], f"cannot parse {label} {raw.iloc[k]!r}")


def parse_times(table: Table, raw: pd.Series, label: str, *, date_only_seconds: int | None = DATE_ONLY_SECONDS
                ) -> np.ndarray:
    """Times as naive New York ``datetime64[s]``. Dates without a time get
    ``date_only_seconds`` after midnight. Unique strings are parsed once (a chain
    repeats each timestamp thousands of times)."""
    empty = _empty(raw)
    if empty.any():
        k = int(np.argmax(empty))
        raise table.error(table.df.index[k], f"{label} is empty")
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):           # Parquet timestamps
        t = pd.DatetimeIndex(raw)
        if t.tz is not None:
            t = t.tz_convert(NEW_YORK).tz_localize(None)
        out = t.to_numpy().astype("datetime64[s]")
        if date_only_seconds and np.all(out.astype(np.int64) % 86400 == 0):   # dates only
            out = out + np.timedelta64(date_only_seconds, "s")
        return out
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        v = raw.to_numpy(dtype=float)
        if np.all((v == np.floor(v)) & (v >= 1800_01_01) & (v <= 2200_12_31)):   # 20240102
            t = pd.to_datetime(pd.Series(v.astype(np.int64).astype(str)), format="%Y%m%d", errors="coerce")
            if t.isna().any():
                _first_bad(table, t.isna().to_numpy(), raw, label)
            out = t.to_numpy().astype("datetime64[s]")
            return out + np.timedelta64(date_only_seconds or 0, "s")
        unit = "s" if np.nanmax(np.abs(v)) < 1e11 else "ms" if np.nanmax(np.abs(v)) < 1e14 else "us"
        t = pd.to_datetime(v, unit=unit, utc=True).tz_convert(NEW_YORK).tz_localize(None)
        return t.to_numpy().astype("datetime64[s]")
    s = raw.astype(str).str.strip()
    codes, uniq = pd.factorize(s)
    uniq = pd.Index(uniq, dtype=object).astype(str)
    has_time = np.asarray(uniq.str.contains(":", regex=False), dtype=bool)
    aware = has_time & np.asarray(uniq.str.contains(_TZ_SUFFIX, regex=True), dtype=bool)
    parsed = np.full(len(uniq), np.datetime64("NaT"), dtype="datetime64[s]")
    if aware.any():
        with _quiet():
            t = pd.to_datetime(pd.Series(uniq[aware]), utc=True, errors="coerce", format="mixed")
        parsed[aware] = t.dt.tz_convert(NEW_YORK).dt.tz_localize(None).to_numpy().astype("datetime64[s]")
    naive = ~aware
    if naive.any():
        vals = pd.Series(uniq[naive])
        with _quiet():
            t = pd.to_datetime(vals, errors="coerce")
            if t.isna().any():     # formats differing from the first row's
                t = t.fillna(pd.to_datetime(vals[t.isna()], errors="coerce", format="mixed"))
        if getattr(t.dt, "tz", None) is not None:
            t = t.dt.tz_convert(NEW_YORK).dt.tz_localize(None)
        parsed[naive] = t.to_numpy().astype("datetime64[s]")
    if date_only_seconds:
        midnight = (parsed.astype(np.int64) % 86400) == 0
        parsed = np.where(~has_time & midnight & ~np.isnat(parsed),
                          parsed + np.timedelta64(date_only_seconds, "s"), parsed)
    bad = np.isnat(parsed)
    if bad.any():
        _first_bad(table, bad[codes], raw, label)
    return parsed[codes]


class _quiet:
    """Silence pandas' "could not infer format" warnings: bad rows are reported anyway."""
    def __enter__(self):
        import warnings
        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def bt_numbers(times: np.ndarray) -> np.ndarray:
    """Backtrader date numbers for naive ``datetime64`` times: the vectorised
    ``feeds.synthetic.to_bt_num`` (same arithmetic, same floats)."""
    secs = np.asarray(times).astype("datetime64[s]").astype(np.int64)
    days = secs // 86400
    return (days + _EPOCH_ORDINAL) + (secs - days * 86400) / 86400.0


def fmt_time(t) -> str:
    return str(np.datetime64(t, "s")).replace("T", " ")


def check_increasing(table: Table, times: np.ndarray, label: str = "timestamp") -> None:
    """Strictly increasing times, or DataError naming the first row out of order."""
    secs = times.astype(np.int64)
    step = np.diff(secs)
    bad = step <= 0
    if not bad.any():
        return
    k = int(np.argmax(bad)) + 1
    idx, prev = table.df.index[k], table.df.index[k - 1]
    prev_line = table.where(prev).rsplit(", ", 1)[-1]
    if step[k - 1] == 0:
        raise table.error(idx, f"duplicate {label} {fmt_time(times[k])} (same as {prev_line}): "
                               "one row per timestamp")
    raise table.error(idx, f"{label} {fmt_time(times[k])} is earlier than {prev_line} "
                           f"({fmt_time(times[k - 1])}): rows must be in time order, oldest first")


def time_column(table: Table, *, extra_names=("timestamp",)) -> tuple[pd.Series, str] | None:
    """The raw time column: datetime, timestamp, date + time, or date (first found)."""
    cols = table.df.columns
    for c in ("datetime",) + tuple(extra_names):
        if c in cols:
            return table.df[c], table.name(c)
    if "date" in cols and "time" in cols:
        d, t = table.df["date"], table.df["time"]
        for part, c in ((d, "date"), (t, "time")):
            empty = _empty(part)
            if empty.any():
                raise table.error(table.df.index[int(np.argmax(empty))], f"{table.name(c)} is empty")
        return (d.astype(str).str.strip() + " " + t.astype(str).str.strip(),
                f"{table.name('date')} + {table.name('time')}")
    if "date" in cols:
        return table.df["date"], table.name("date")
    return None


# -- the bars ----------------------------------------------------------------------------
@dataclass
class Bars:
    times: np.ndarray         # naive New York datetime64[s]
    dt: np.ndarray            # Backtrader date numbers
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    iv: np.ndarray | None = None


BAR_COLUMNS = {"datetime", "timestamp", "date", "time", "open", "high", "low", "close", "volume"}


def load_bars(path, iv_column: str | None = None) -> Bars:
    """Read and check an underlying's bars (see the module docstring)."""
    usecols = set(BAR_COLUMNS)
    if iv_column:
        usecols.add(iv_column.strip().lower())
    table = read_table(path, usecols=usecols)
    cols = set(table.df.columns)
    tc = time_column(table)
    missing = []
    if tc is None:
        missing.append("a date/time column (Date, Datetime, Date + Time, or timestamp)")
    if "close" not in cols:
        missing.append("Close")
    if missing:
        found = read_table_header(table.path)
        raise DataError(f"{table.path}: missing column(s): {' and '.join(missing)}; required: a "
                        "date/time column (Date, Datetime, Date + Time, or timestamp) and Close "
                        f"(Open, High, Low, Volume optional); found: {found}")
    raw, label = tc
    times = parse_times(table, raw, label)
    close = numbers(table, "close", positive=True)
    opens = numbers(table, "open", positive=True) if "open" in cols else None
    high = numbers(table, "high", positive=True) if "high" in cols else None
    low = numbers(table, "low", positive=True) if "low" in cols else None
    volume = (np.nan_to_num(numbers(table, "volume", allow_empty=True, nonneg=True))
              if "volume" in cols else np.zeros(len(close)))
    iv = None
    if iv_column:
        key = iv_column.strip().lower()
        if key not in cols:
            raise DataError(f"{table.path}: market.csv.implied_vol names the column {iv_column!r}, "
                            f"which is not in the file; found: {read_table_header(table.path)}")
        iv = numbers(table, key, positive=True, label=f"implied vol ({table.name(key)})")
        big = iv >= 5.0
        if big.any():
            k = int(np.argmax(big))
            raise table.error(table.df.index[k], f"implied vol ({table.name(key)}) is {iv[k]:g}: "
                                                 "expected a decimal (0.35 for 35%)")
    check_increasing(table, times)
    if opens is None:
        opens = np.concatenate((close[:1], close[:-1]))
    if high is None:
        high = np.maximum(opens, close)
    if low is None:
        low = np.minimum(opens, close)
    return Bars(times=times, dt=bt_numbers(times), open=opens, high=high, low=low,
                close=close, volume=volume, iv=iv)


def read_table_header(path) -> str:
    """The file's column names as written (for "found: ..." in messages)."""
    path = os.fspath(path)
    try:
        if path.lower().endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq
            names = pq.read_schema(path).names
        else:
            names = list(pd.read_csv(path, nrows=0, encoding="utf-8-sig",
                                     encoding_errors="replace").columns)
    except Exception:                  # pragma: no cover - the file was readable a moment ago
        return "?"
    return ", ".join(str(n).strip() for n in names) or "no columns"


def csv_market(cfg: dict) -> Market:
    c = cfg["market"]["csv"]
    iv_setting = c["implied_vol"]
    bars = load_bars(c["path"], iv_setting if isinstance(iv_setting, str) else None)
    n = len(bars.close)
    iv = bars.iv if bars.iv is not None else np.full(n, float(iv_setting))
    _warn_coarse_strikes(bars.close, c["strike_step"],
                         cfg["gates"]["strategy"]["structure"]["atm_band_pct"], c["path"])
    bid, ask = stock_quote(bars.close, cfg["market"]["spread"]["stock_bps"])
    return Market(symbol=cfg["symbol"], dt=bars.dt, close=bars.close, open=bars.open,
                  high=bars.high, low=bars.low, bid=bid, ask=ask, volume=bars.volume,
                  implied_vol=iv, slots=model_option_slots(bars.dt, bars.close, iv, cfg),
                  source="csv")


def _warn_coarse_strikes(close: np.ndarray, step: float, band: float, path) -> None:
    """Where the nearest grid strike is outside the ATM band no straddle qualifies and
    none is opened or rolled into: say so instead of silently not trading."""
    nearest = np.round(close / step) * step
    out = np.abs(nearest - close) > band * close
    if out.any():
        log.warning("%s: on %d of %d bars no strike of the market.csv.strike_step %g grid is "
                    "within atm_band_pct %g of the price (down to %.2f): no straddle is opened "
                    "or rolled there; lower market.csv.strike_step",
                    path, int(out.sum()), len(out), step, band, float(close.min()))
