"""The sweep page, ``sweep.html``, from a sweep folder's ``results.csv`` and ``sweep.json``.

    from plots.sweep_page import write_sweep_page
    write_sweep_page("reports/sweep-20260105", metric="sharpe")   # -> .../sweep.html

Draws a heatmap of the metric (mean over seeds and over the other swept keys) on two
swept keys (default the first two; a strip for one key), risk vs return per combination
(std of total P&L across seeds vs its mean, coloured by hedge count), Sharpe vs hedges,
and a sortable table of every row, failed runs included (their metrics are empty).
Numeric keys with many distinct values (random sampling) are binned for the heatmap.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path

import bokeh  # noqa: F401  (an ImportError here: the plots extra is not installed)
import numpy as np
import pandas as pd

from plots._common import fmt, html_table, save_page

METRICS = ("total_pnl", "option_pnl", "hedge_pnl", "costs", "hedge_count", "shares_traded",
           "sharpe", "max_drawdown", "max_drawdown_pct", "realized_vol", "implied_vol")
NOT_PARAMS = set(METRICS) | {"combo", "seed", "key", "seconds", "node", "host", "pid", "status",
                             "error"}
MAX_LEVELS = 15              # a numeric key with more distinct values is binned ...
BINS = 10                    # ... into this many equal-width bins for the heatmap
SCATTER_TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


# -- loading ---------------------------------------------------------------------------
def load_sweep(sweep_dir) -> tuple[pd.DataFrame, dict]:
    d = Path(sweep_dir)
    meta = {}
    if (d / "sweep.json").exists():
        meta = json.loads((d / "sweep.json").read_text(encoding="utf-8"))
    path = d / "results.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (a sweep folder holds results.csv)")
    try:
        df = pd.read_csv(path, keep_default_na=True)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    if "status" not in df:
        df["status"] = "ok"
    df["status"] = df["status"].fillna("error").astype(str)
    if "error" in df:
        df["error"] = df["error"].fillna("").astype(str)
    for c in METRICS:
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    if "combo" not in df:
        df["combo"] = np.arange(len(df))
    return df, meta


def sweep_params(df: pd.DataFrame, meta: dict) -> list[str]:
    params = [p for p in (meta.get("params") or []) if p in df]
    if not params:            # no sweep.json: the dotted columns are the swept keys
        params = [c for c in df.columns if "." in c and c not in NOT_PARAMS]
    return params


def value_label(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "null"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:.6g}"
    return str(v)


def level_labels(col: pd.Series) -> tuple[pd.Series, list[str]]:
    """Labels of a swept key's values and their order (numeric order, null first);
    a numeric key with more than MAX_LEVELS distinct values is binned."""
    num = pd.to_numeric(col, errors="coerce")
    numeric = (col.dtype != bool and bool(num.notna().sum())
               and bool((num.notna() | col.isna()).all()))
    if numeric and num.nunique() > MAX_LEVELS:
        lo, hi = float(num.min()), float(num.max())
        edges = np.linspace(lo, hi, BINS + 1)
        which = np.clip(np.searchsorted(edges, num.to_numpy(), side="right") - 1, 0, BINS - 1)
        names = [f"{edges[i]:.4g}..{edges[i + 1]:.4g}" for i in range(BINS)]
        labels = pd.Series([names[i] if np.isfinite(v) else "null"
                            for i, v in zip(which, num.to_numpy())], index=col.index)
        order = (["null"] if labels.eq("null").any() else []) + [n for n in names if (labels == n).any()]
        return labels, order
    labels = col.map(value_label)
    if numeric:
        def key(label):
            return (0, 0.0) if label == "null" else (1, float(label))
    else:
        def key(label):
            return (label != "null", label)
    order = sorted(set(labels), key=key)
    return labels, order


def combos_table(df: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """One row per combination: its keys, seeds ok/failed, means (and std of total P&L)."""
    rows = []
    for combo, g in df.groupby("combo", sort=True):
        ok = g[g["status"] == "ok"]
        r = {"combo": int(combo) if isinstance(combo, (int, np.integer, float)) else combo}
        for i, p in enumerate(params):
            r[f"p{i}"] = value_label(g[p].iloc[0])
        r["n_ok"] = len(ok)
        r["n_err"] = len(g) - len(ok)
        for c in METRICS:
            r[c] = float(ok[c].mean()) if c in ok and len(ok) else np.nan
        tp = ok["total_pnl"] if "total_pnl" in ok else pd.Series(dtype=float)
        r["pnl_std"] = float(tp.std(ddof=1)) if len(tp.dropna()) > 1 else (0.0 if len(tp.dropna()) else np.nan)
        rows.append(r)
    return pd.DataFrame(rows)


# -- plots -----------------------------------------------------------------------------
def _text_color(values: np.ndarray, lo: float, hi: float) -> list[str]:
    out = []
    for v in values:
        if not np.isfinite(v):
            out.append("#333333")
        else:
            frac = 0.5 if hi == lo else (v - lo) / (hi - lo)
            out.append("#ffffff" if frac < 0.55 else "#111111")       # Viridis: dark at low end
    return out


def heatmap(df: pd.DataFrame, params: list[str], metric: str, x: str | None, y: str | None):
    from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper
    from bokeh.palettes import Viridis256
    from bokeh.plotting import figure

    ok = df["status"] == "ok"
    if x is not None:
        xl, xo = level_labels(df[x])
    else:
        xl, xo = pd.Series(["all"] * len(df), index=df.index), ["all"]
    if y is not None:
        yl, yo = level_labels(df[y])
    else:
        yl, yo = pd.Series([metric] * len(df), index=df.index), [metric]
    cells = []
    for (xv, yv), idx in df.groupby([xl, yl], sort=False).groups.items():
        rows = df.loc[idx]
        okr = rows[ok.loc[idx]]
        vals = okr[metric].dropna() if metric in okr else pd.Series(dtype=float)
        mean = float(vals.mean()) if len(vals) else np.nan
        n_err = int((~ok.loc[idx]).sum())
        text = (fmt(mean, 3 if abs(mean) < 10 else 1) if np.isfinite(mean) else "no ok run")
        if n_err:
            text += f"\n({n_err} failed)"
        cells.append({"x": xv, "y": yv, "value": mean, "text": text, "runs": len(vals),
                      "failed": n_err, "combos": int(rows["combo"].nunique())})
    cdf = pd.DataFrame(cells)
    finite = cdf["value"][np.isfinite(cdf["value"])]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    cdf["text_color"] = _text_color(cdf["value"].to_numpy(), lo, hi)
    src = ColumnDataSource({c: cdf[c].to_numpy() for c in cdf.columns})
    mapper = LinearColorMapper(palette=Viridis256, low=lo, high=hi, nan_color="#d9d9d9")
    title = (f"mean {metric} over seeds" + (f" and other keys" if len(params) > 2 else "")
             + (f": {y} (rows) x {x} (columns)" if y is not None else (f" by {x}" if x else "")))
    height = max(260, min(720, 70 * len(yo) + 140))
    p = figure(title=title, x_range=xo, y_range=list(reversed(yo)) if y is not None else yo,
               height=height, sizing_mode="stretch_width", tools="save,reset", toolbar_location="right",
               x_axis_location="below")
    p.title.text_font_size = "12pt"
    p.rect("x", "y", width=0.96, height=0.94, source=src, line_color=None,
           fill_color={"field": "value", "transform": mapper}, name="cells")
    if len(xo) * len(yo) <= 400:
        p.text("x", "y", text="text", source=src, text_align="center", text_baseline="middle",
               text_font_size="10pt", text_color="text_color")
    p.xaxis.axis_label = x or ""
    p.yaxis.axis_label = y or ""
    p.grid.grid_line_color = None
    p.axis.major_tick_line_color = None
    p.xaxis.major_label_orientation = 0.6 if len(xo) > 8 else 0
    p.add_layout(ColorBar(color_mapper=mapper, title=metric, width=12), "right")
    p.add_tools(HoverTool(tooltips=[(x or "", "@x"), (y or "", "@y"), (metric, "@value{0,0.000}"),
                                    ("ok runs", "@runs"), ("failed runs", "@failed"),
                                    ("combinations", "@combos")]))
    return p


def scatters(ct: pd.DataFrame, params: list[str], metric: str):
    from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper, NumeralTickFormatter
    from bokeh.palettes import Plasma256, RdYlGn11
    from bokeh.plotting import figure

    good = ct[ct["n_ok"] > 0].copy()
    tips = [("combo", "@combo")] + [(p, f"@p{i}") for i, p in enumerate(params)] + [
        ("mean total P&L", "@total_pnl{$0,0.00}"), ("std total P&L", "@pnl_std{$0,0.00}"),
        ("mean hedges", "@hedge_count{0,0.0}"), ("mean Sharpe", "@sharpe{0.000}"),
        ("mean costs", "@costs{$0,0.00}"), ("seeds ok / failed", "@n_ok / @n_err")]
    if metric not in ("total_pnl", "hedge_count", "sharpe", "costs"):
        tips.append((f"mean {metric}", f"@{{{metric}}}{{0,0.000}}"))
    src = ColumnDataSource({c: good[c].to_numpy() for c in good.columns})

    hc = good["hedge_count"].dropna()
    hmap = LinearColorMapper(palette=Plasma256[:230], low=float(hc.min()) if len(hc) else 0.0,
                             high=float(hc.max()) if len(hc) and hc.max() > hc.min() else
                             (float(hc.max()) + 1 if len(hc) else 1.0), nan_color="#bbbbbb")
    p1 = figure(title="Risk vs return per combination (across seeds)", height=420,
                sizing_mode="stretch_width", tools=SCATTER_TOOLS)
    p1.title.text_font_size = "12pt"
    p1.scatter("pnl_std", "total_pnl", source=src, size=14, line_color="#222222", alpha=0.9,
               fill_color={"field": "hedge_count", "transform": hmap})
    p1.xaxis.axis_label = "std of total P&L across seeds ($)"
    p1.yaxis.axis_label = "mean total P&L ($)"
    p1.xaxis.formatter = NumeralTickFormatter(format="$0,0")
    p1.yaxis.formatter = NumeralTickFormatter(format="$0,0")
    p1.add_layout(ColorBar(color_mapper=hmap, title="mean hedges", width=12), "right")
    p1.add_tools(HoverTool(tooltips=tips))

    pn = good["total_pnl"].dropna()
    span = float(pn.abs().max()) if len(pn) and pn.abs().max() > 0 else 1.0
    pmap = LinearColorMapper(palette=tuple(reversed(RdYlGn11)), low=-span, high=span,
                             nan_color="#bbbbbb")
    p2 = figure(title="Sharpe vs hedges per combination (mean over seeds)", height=420,
                sizing_mode="stretch_width", tools=SCATTER_TOOLS)
    p2.title.text_font_size = "12pt"
    p2.scatter("hedge_count", "sharpe", source=src, size=14, line_color="#222222", alpha=0.9,
               marker="diamond", fill_color={"field": "total_pnl", "transform": pmap})
    p2.xaxis.axis_label = "mean hedges per run"
    p2.yaxis.axis_label = "mean Sharpe (daily, annualised)"
    p2.add_layout(ColorBar(color_mapper=pmap, title="mean total P&L", width=12,
                           formatter=NumeralTickFormatter(format="$0,0")), "right")
    p2.add_tools(HoverTool(tooltips=tips))
    if not len(good):
        from bokeh.models import Label, Range1d
        for p in (p1, p2):
            p.x_range, p.y_range = Range1d(0, 1), Range1d(0, 1)
            p.add_layout(Label(x=10, y=10, x_units="screen", y_units="screen",
                               text="no successful run to draw", text_color="#666"))
    return p1, p2


def rows_table(df: pd.DataFrame, params: list[str]):
    from bokeh.models import (ColumnDataSource, DataTable, NumberFormatter, StringFormatter,
                              TableColumn)

    data = {}
    columns = []
    first = [c for c in ("combo", "seed", "status") if c in df] + [p for p in params if p in df]
    for c in first + [c for c in df.columns if c not in first and c != "error"] + (
            ["error"] if "error" in df else []):
        col = df[c]
        title = c.split(".")[-1] if c in params else c
        if c in params:
            title = f"{c.rsplit('.', 1)[-1]}"
        num = pd.api.types.is_numeric_dtype(col) and col.dtype != bool
        if num:
            arr = col.to_numpy(dtype="float64")
            data[c] = arr
            ints = np.isfinite(arr).any() and np.allclose(arr[np.isfinite(arr)] % 1, 0)
            form = "0,0" if (ints or c in ("combo", "seed", "pid")) else (
                "0,0.00" if c not in ("sharpe", "realized_vol", "implied_vol", "max_drawdown_pct", "seconds")
                else "0.000")
            if c in ("combo", "seed", "pid"):
                form = "0"
            formatter = NumberFormatter(format=form, nan_format="null" if c in params else "",
                                        text_align="right")
        else:
            data[c] = col.map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v))
                              else value_label(v)).to_numpy(dtype=object)
            formatter = StringFormatter(text_color="_status_color" if c == "status" else None,
                                        font_style="bold" if c == "status" else "normal")
        width = 260 if c == "error" else (110 if c in params else max(60, min(120, 8 * len(title) + 16)))
        columns.append(TableColumn(field=c, title=title, formatter=formatter, width=width))
    data["_status_color"] = np.where(df["status"].to_numpy() == "ok", "#1a7f37", "#c0392b").astype(object)
    src = ColumnDataSource(data)
    height = int(min(600, 50 + 25 * max(len(df), 3)))   # header, rows, scrollbar
    return DataTable(source=src, columns=columns, sortable=True, fit_columns=False, height=height,
                     sizing_mode="stretch_width", index_position=None, reorderable=False)


def build_sweep_layout(df: pd.DataFrame, meta: dict, metric: str | None = None,
                       x: str | None = None, y: str | None = None, name: str = ""):
    from bokeh.layouts import column, row
    from bokeh.models import Div

    params = sweep_params(df, meta)
    metric = metric or meta.get("metric") or "sharpe"
    if metric not in df.columns:
        have = [m for m in METRICS if m in df.columns]
        raise ValueError(f"metric {metric!r} is not a column of results.csv "
                         f"(have: {', '.join(have) or 'none'})")
    for key, label in ((x, "x"), (y, "y")):
        if key is not None and key not in df.columns:
            raise ValueError(f"{label} {key!r} is not a column of results.csv "
                             f"(swept keys: {', '.join(params) or 'none'})")
    if x is None:
        x = next((p for p in params if p != y), None)
    if y is None:
        y = next((p for p in params if p != x), None)
    ok = df["status"] == "ok"
    ct = combos_table(df, params) if len(df) else pd.DataFrame(
        columns=["combo", "n_ok", "n_err", "pnl_std", *METRICS])
    if len(ct):
        ct = ct.reset_index(drop=True)

    asc = bool(meta.get("ascending"))
    best = ct[ct["n_ok"] > 0].sort_values(metric, ascending=asc) if len(ct) else ct
    best_rows = [("none", "no successful run")]
    if len(best):
        b = best.iloc[0]
        best_rows = [(f"best mean {metric}", fmt(b[metric], 3)), ("  combo", str(b["combo"]))]
        best_rows += [(f"  {p}", b[f"p{i}"]) for i, p in enumerate(params)]
        best_rows += [("  mean total P&L", fmt(b["total_pnl"])), ("  mean hedges", fmt(b["hedge_count"], 1))]
    info = [("swept keys", ", ".join(params) or "none"), ("metric", metric + (" (lower is better)" if asc else "")),
            ("combinations", fmt(int(df["combo"].nunique()) if len(df) else 0, 0)),
            ("seeds", str(meta.get("seeds", int(df["seed"].nunique()) if "seed" in df and len(df) else "n/a"))),
            ("runs", fmt(len(df), 0)), ("  ok", fmt(int(ok.sum()), 0)), ("  failed", fmt(int((~ok).sum()), 0))]
    errors = (df.loc[~ok, "error"].replace("", "(no message)").value_counts().head(5)
              if "error" in df else pd.Series(dtype=int))
    err_html = ""
    if len(errors):
        err_html = ("<div style='font:13px system-ui,sans-serif;color:#c0392b;margin:2px 0 8px'>"
                    "<b>Failed runs</b> (metrics empty, shown grey):<br>"
                    + "<br>".join(f"{int(n)} x {html.escape(str(e)[:300])}" for e, n in errors.items())
                    + "</div>")
    header = Div(text=(f"<h2 style='margin:6px 0 2px 0;font-family:system-ui,sans-serif'>Sweep"
                       f"{' - ' + html.escape(name) if name else ''}</h2>"
                       "<div style='display:flex;flex-wrap:wrap;align-items:flex-start'>"
                       + html_table(info, "Sweep") + html_table(best_rows, "Best combination")
                       + "</div>" + err_html), sizing_mode="stretch_width")
    parts = [header]
    if len(df):
        parts.append(heatmap(df, params, metric, x, y))
        p1, p2 = scatters(ct, params, metric)
        parts.append(row(p1, p2, sizing_mode="stretch_width"))
    parts.append(Div(text="<b style='font:14px system-ui,sans-serif'>All runs</b> "
                          "<span style='font:12px system-ui,sans-serif;color:#555'>"
                          "(click a header to sort; failed runs in red)</span>",
                     sizing_mode="stretch_width"))
    parts.append(rows_table(df, params))
    return column(parts, sizing_mode="stretch_width")


def write_sweep_page(sweep_dir, metric=None, x=None, y=None, path=None) -> Path:
    """Build ``sweep.html`` in ``sweep_dir`` (or at ``path``) from results.csv and sweep.json.
    ``metric`` defaults to sweep.json's (else sharpe); ``x``/``y`` to the first two swept keys."""
    d = Path(sweep_dir)
    df, meta = load_sweep(d)
    layout = build_sweep_layout(df, meta, metric, x, y, name=d.resolve().name)
    return save_page(layout, Path(path) if path else d / "sweep.html", f"Sweep - {d.name}")
