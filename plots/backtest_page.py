"""The backtest page, ``report.html``, from the saved files of a result folder.

    from plots.backtest_page import write_backtest_page
    write_backtest_page("reports/backtest-20260105-093000")   # -> .../report.html

Reads only ``result.json``, ``series.csv`` and ``hedges.csv`` (so ``runners/report.py``
can rebuild it any time) and draws, on linked datetime x-axes: equity and drawdown; the
underlying with hedge buys and sells at their fill prices; net delta per bar and around
each hedge with the hedge threshold and epsilon bands; cumulative P&L (option, hedge,
-costs, total) and the option P&L attribution (gamma, theta, vega, option delta,
unexplained); rolling realised vs implied vol; guard blocks by reason; and a summary
table of the metrics. Every plot has a hover tool. Above ``MAX_POINTS`` bars the per-bar
lines are downsampled (each bucket keeps its extremes), so a page stays light.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path

import bokeh  # noqa: F401  (an ImportError here: the plots extra is not installed)
import numpy as np
import pandas as pd

from plots._common import TOOLS, fmt, html_table, save_page, to_ms

DAYS_PER_YEAR = 365.0        # calendar time, ACT/365: the convention of bifrost.pricing
MAX_POINTS = 50_000          # per-bar lines are downsampled above this many bars ...
TARGET_POINTS = 20_000       # ... to about this many points
MS_PER_DAY = 86_400_000.0

SERIES_COLUMNS = ("value", "spot", "net_delta", "net_gamma", "option_pnl", "hedge_pnl", "costs",
                  "gamma_pnl", "theta_pnl", "vega_pnl", "delta_pnl", "implied_vol")
HEDGE_COLUMNS = ("datetime", "side", "shares", "decision_price", "fill_price", "commission",
                 "net_delta_before", "net_delta_after", "state", "force", "status")
REFUSAL_COLUMNS = ("datetime", "reason", "state", "net_delta")

C = {"value": "#1f4e79", "drawdown": "#c0392b", "spot": "#34495e", "buy": "#1a9850",
     "sell": "#d73027", "unfilled": "#7f7f7f", "delta": "#2c7fb8", "before": "#ff7f0e",
     "after": "#2ca02c", "band": "#2ca02c", "threshold": "#d62728", "option": "#1f77b4",
     "hedge": "#ff7f0e", "costs": "#d62728", "total": "#111111", "gamma": "#2ca02c",
     "theta": "#d62728", "vega": "#9467bd", "odelta": "#8c564b", "unexplained": "#7f7f7f",
     "realised": "#ff7f0e", "implied": "#1f77b4"}
REASON_COLORS = ("#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf")
DT_FORMAT = {"@t": "datetime"}


# -- loading ---------------------------------------------------------------------------
def load_result(result_dir) -> dict:
    """The saved files of a backtest folder as plain data and DataFrames."""
    d = Path(result_dir)
    res = json.loads((d / "result.json").read_text(encoding="utf-8"))
    series = pd.read_csv(d / "series.csv") if (d / "series.csv").exists() else None
    if (d / "hedges.csv").exists():
        hedges = pd.read_csv(d / "hedges.csv")
    else:
        hedges = pd.DataFrame(res.get("hedges") or [])
    hedges = hedges.reindex(columns=list(HEDGE_COLUMNS))
    refusals = pd.DataFrame(res.get("refusals") or []).reindex(columns=list(REFUSAL_COLUMNS))
    return {"metrics": res.get("metrics") or {}, "config": res.get("config") or {},
            "seconds": res.get("seconds"), "series": series, "hedges": hedges,
            "refusals": refusals}


def _num(frame: pd.DataFrame, col: str, n: int | None = None) -> np.ndarray:
    if col in frame:
        return pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype="float64")
    return np.full(len(frame) if n is None else n, np.nan)


def _cfg(cfg: dict, dotted: str, default=None):
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


# -- computations ----------------------------------------------------------------------
def rolling_realised_vol(t_ms: np.ndarray, spot: np.ndarray, window: int) -> np.ndarray:
    """Realised vol over the last ``window`` bar returns, calendar-time convention:
    sqrt(sum of squared log returns / elapsed calendar years), nights and weekends
    included (the overnight bar carries the overnight variance). NaN until a full
    window has passed."""
    n = len(spot)
    out = np.full(n, np.nan)
    if n < 2 or window < 1 or n <= window:
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.diff(np.log(spot))
    r2 = np.where(np.isfinite(r), r * r, 0.0)
    csum = np.concatenate([[0.0], np.cumsum(r2)])          # csum[i] = sum of returns up to bar i
    i = np.arange(window, n)
    years = (t_ms[i] - t_ms[i - window]) / MS_PER_DAY / DAYS_PER_YEAR
    with np.errstate(divide="ignore", invalid="ignore"):
        out[window:] = np.sqrt((csum[i] - csum[i - window]) / years)
    out[~np.isfinite(out)] = np.nan
    return out


def vol_window(t_ms: np.ndarray) -> tuple[int, int]:
    """(bars, trading days) for the rolling realised vol: about a quarter of the run,
    between 1 and 21 trading days (a week for a month of data, a month for a year)."""
    if len(t_ms) < 2:
        return 1, 1
    days = np.floor(t_ms / MS_PER_DAY)
    n_days = len(np.unique(days))
    per_day = max(1, int(round(len(t_ms) / n_days)))
    w_days = int(min(21, max(1, n_days // 4)))
    return min(per_day * w_days, len(t_ms) - 1), w_days


def downsample_indices(n: int, keys: list[np.ndarray], target: int = TARGET_POINTS) -> np.ndarray:
    """Indices to draw: all of them up to MAX_POINTS bars; beyond, buckets of bars of
    which the first, the minimum and the maximum of each key series are kept."""
    if n <= MAX_POINTS:
        return np.arange(n)
    per_bucket = 1 + 2 * len(keys)
    bucket = int(math.ceil(n * per_bucket / target))
    nb = int(math.ceil(n / bucket))
    pad = nb * bucket - n
    keep = [np.arange(0, n, bucket), np.array([n - 1])]
    base = np.arange(nb) * bucket
    for k in keys:
        v = np.concatenate([np.asarray(k, dtype="float64"), np.full(pad, np.nan)]).reshape(nb, bucket)
        keep.append(base + np.argmin(np.where(np.isnan(v), np.inf, v), axis=1))
        keep.append(base + np.argmax(np.where(np.isnan(v), -np.inf, v), axis=1))
    idx = np.unique(np.concatenate(keep))
    return idx[idx < n]


def series_data(series: pd.DataFrame, start_value: float | None) -> dict:
    """Per-bar columns for the page, at full resolution."""
    n = len(series)
    t = to_ms(series["datetime"])
    d = {"t": t}
    for c in SERIES_COLUMNS:
        d[c] = _num(series, c, n)
    value = d["value"]
    start = start_value if start_value is not None else (value[0] if n else 0.0)
    peak = np.fmax.accumulate(np.where(np.isfinite(value), value, -np.inf)) if n else value
    d["pnl"] = value - start
    d["drawdown"] = -(peak - value)
    with np.errstate(divide="ignore", invalid="ignore"):
        d["drawdown_pct"] = np.where(peak > 0, d["drawdown"] / peak * 100.0, np.nan)
    d["neg_costs"] = -d["costs"]
    d["total_pnl"] = d["option_pnl"] + d["hedge_pnl"] - d["costs"]
    d["unexplained"] = d["option_pnl"] - (d["gamma_pnl"] + d["theta_pnl"] + d["vega_pnl"]
                                          + d["delta_pnl"])
    w, w_days = vol_window(t)
    d["realised_vol"] = rolling_realised_vol(t, d["spot"], w)
    d["_vol_window"] = (w, w_days)
    return d


# -- the page --------------------------------------------------------------------------
def _figure(title: str, x_range=None, height: int = 250, y_format: str | None = None):
    from bokeh.models import NumeralTickFormatter
    from bokeh.plotting import figure

    kw = {"x_range": x_range} if x_range is not None else {}
    p = figure(title=title, x_axis_type="datetime", height=height, sizing_mode="stretch_width",
               tools=TOOLS, active_drag="xpan", active_scroll="xwheel_zoom", min_border_left=70,
               **kw)
    p.title.text_font_size = "12pt"
    if y_format:
        p.yaxis.formatter = NumeralTickFormatter(format=y_format)
    p.xaxis.axis_label = None
    return p


def _legend_above(p) -> None:
    if not p.legend:
        return
    leg = p.legend[0]
    leg.orientation = "horizontal"
    leg.click_policy = "hide"
    leg.label_text_font_size = "9pt"
    leg.spacing = 12
    leg.padding = 4
    leg.margin = 2
    leg.border_line_alpha = 0
    p.add_layout(leg, "above")


def _hover(p, renderers, tooltips, mode: str = "vline"):
    from bokeh.models import HoverTool

    p.add_tools(HoverTool(renderers=list(renderers), tooltips=tooltips, formatters=DT_FORMAT,
                          mode=mode))


def _tt(*pairs):
    return [("time", "@t{%F %H:%M}")] + list(pairs)


def _no_data(p, text: str) -> None:
    from bokeh.models import Label

    p.add_layout(Label(x=10, y=10, x_units="screen", y_units="screen", text=text,
                       text_color="#666", text_font_size="11pt"))


def build_backtest_layout(data: dict, name: str = ""):
    from bokeh.layouts import column
    from bokeh.models import BasicTicker, ColumnDataSource, Div, Range1d

    m, cfg, series = data["metrics"], data["config"], data["series"]
    plots = []
    eps = _cfg(cfg, "gates.state.delta.epsilon_band")
    thr = _cfg(cfg, "gates.state.delta.threshold_hedge_shares")
    note = ""

    hedges = data["hedges"].copy()
    h_t = to_ms(hedges["datetime"]) if len(hedges) else np.array([])
    hsrc = {"t": h_t}
    for c in ("shares", "decision_price", "fill_price", "commission", "net_delta_before",
              "net_delta_after"):
        hsrc[c] = _num(hedges, c)
    for c in ("side", "state", "status", "force"):
        hsrc[c] = hedges[c].fillna("").astype(str).to_numpy()
    filled = np.isfinite(hsrc["fill_price"])
    side = hsrc["side"]

    def hedge_source(mask):
        return ColumnDataSource({k: v[mask] for k, v in hsrc.items()})

    hedge_tips = [("hedge", "@side @shares{0,0} sh @status"), ("time", "@t{%F %H:%M}"),
                  ("fill", "@fill_price{0,0.00}"), ("decision", "@decision_price{0,0.00}"),
                  ("net delta", "@net_delta_before{0,0.0} -> @net_delta_after{0,0.0}"),
                  ("commission", "@commission{0,0.00}"), ("state", "@state"),
                  ("forced", "@force")]

    if series is not None and len(series):
        full = series_data(series, m.get("start_value"))
        w, w_days = full.pop("_vol_window")
        n = len(full["t"])
        idx = downsample_indices(n, [full["value"], full["spot"], full["net_delta"]])
        src = ColumnDataSource({k: v[idx] for k, v in full.items()})
        if len(idx) < n:
            note = f" Lines drawn from {len(idx):,} of {n:,} bars (each bucket keeps its extremes)."

        # equity and drawdown
        p = _figure("Equity (account value)", height=260, y_format="$0,0")
        eq = p.line("t", "value", source=src, color=C["value"], line_width=1.5, legend_label="value")
        _hover(p, [eq], _tt(("value", "@value{$0,0.00}"), ("P&L", "@pnl{$0,0.00}"),
                            ("drawdown", "@drawdown{$0,0.00} (@drawdown_pct{0.00}%)")))
        _legend_above(p)
        x_range = p.x_range
        plots.append(p)

        p = _figure("Drawdown from the running peak", x_range, height=170, y_format="$0,0")
        p.varea("t", y1=0, y2="drawdown", source=src, fill_color=C["drawdown"],
                     fill_alpha=0.35, legend_label="drawdown $")
        ddl = p.line("t", "drawdown", source=src, color=C["drawdown"], line_width=1)
        _hover(p, [ddl], _tt(("drawdown", "@drawdown{$0,0.00}"), ("drawdown %", "@drawdown_pct{0.000}%")))
        _legend_above(p)
        plots.append(p)

        # the underlying and the hedges
        p = _figure("Underlying and hedges (fills)", x_range, height=300, y_format="$0,0.00")
        sp = p.line("t", "spot", source=src, color=C["spot"], line_width=1.2, legend_label="spot (mid)")
        marks = []
        buys = hedge_source(filled & (side == "BUY"))
        sells = hedge_source(filled & (side == "SELL"))
        unfilled = hedge_source(~filled)
        marks.append(p.scatter("t", "fill_price", source=buys, marker="triangle", size=9,
                               color=C["buy"], line_color="#0b5d2a",
                               legend_label=f"buy ({int(len(buys.data['t'])):,})"))
        marks.append(p.scatter("t", "fill_price", source=sells, marker="inverted_triangle", size=9,
                               color=C["sell"], line_color="#8b1a10",
                               legend_label=f"sell ({int(len(sells.data['t'])):,})"))
        if len(unfilled.data["t"]):
            marks.append(p.scatter("t", "decision_price", source=unfilled, marker="x", size=10,
                                   color=C["unfilled"], line_width=2,
                                   legend_label=f"not filled ({len(unfilled.data['t']):,})"))
        _hover(p, [sp], _tt(("spot", "@spot{0,0.00}")))
        _hover(p, marks, hedge_tips, mode="mouse")
        _legend_above(p)
        plots.append(p)

        # net delta and the bands
        p = _figure("Net delta (shares) and the hedge bands", x_range, height=280, y_format="0,0")
        if eps is not None:
            p.hstrip(y0=[-float(eps)], y1=[float(eps)], fill_color=C["band"], fill_alpha=0.12,
                     line_alpha=0, legend_label=f"epsilon band ±{fmt(float(eps), 0)} (D0)")
        if thr is not None:
            p.hspan(y=[-float(thr), float(thr)], line_color=C["threshold"], line_dash="dashed",
                    line_width=1.5, legend_label=f"hedge threshold ±{fmt(float(thr), 0)} (D2)")
        nd = p.line("t", "net_delta", source=src, color=C["delta"], line_width=1,
                    legend_label="net delta per bar")
        hs = hedge_source(np.ones(len(h_t), dtype=bool))
        p.segment("t", "net_delta_before", "t", "net_delta_after", source=hs, color="#999999",
                  line_width=1)
        hb = p.scatter("t", "net_delta_before", source=hs, marker="circle", size=6,
                       color=C["before"], legend_label="before hedge")
        ha = p.scatter("t", "net_delta_after", source=hs, marker="diamond", size=7,
                       color=C["after"], legend_label="after hedge")
        _hover(p, [nd], _tt(("net delta", "@net_delta{0,0.00}"), ("net gamma", "@net_gamma{0,0.00}")))
        _hover(p, [hb, ha], hedge_tips, mode="mouse")
        _legend_above(p)
        plots.append(p)

        # cumulative P&L split
        p = _figure("Cumulative P&L: option + hedge - costs = total", x_range, height=280,
                    y_format="$0,0")
        p.line("t", "option_pnl", source=src, color=C["option"], line_width=1.3,
                    legend_label="option (at mid)")
        p.line("t", "hedge_pnl", source=src, color=C["hedge"], line_width=1.3,
               legend_label="hedge (at mid)")
        p.line("t", "neg_costs", source=src, color=C["costs"], line_width=1.3, legend_label="-costs")
        lt = p.line("t", "total_pnl", source=src, color=C["total"], line_width=2, legend_label="total")
        _hover(p, [lt], _tt(("total", "@total_pnl{$0,0.00}"), ("option", "@option_pnl{$0,0.00}"),
                            ("hedge", "@hedge_pnl{$0,0.00}"), ("-costs", "@neg_costs{$0,0.00}")))
        _legend_above(p)
        plots.append(p)

        # attribution
        p = _figure("Option P&L attribution (cumulative)", x_range, height=280, y_format="$0,0")
        op = p.line("t", "option_pnl", source=src, color=C["option"], line_width=2, alpha=0.6,
                    legend_label="option P&L")
        for col, key, label in (("gamma_pnl", "gamma", "gamma ½ΓdS²"), ("theta_pnl", "theta", "theta Θdt"),
                                ("vega_pnl", "vega", "vega νdσ"), ("delta_pnl", "odelta", "option delta ΔdS"),
                                ("unexplained", "unexplained", "unexplained")):
            p.line("t", col, source=src, color=C[key], line_width=1.3,
                   line_dash="dotted" if key == "unexplained" else "solid", legend_label=label)
        _hover(p, [op], _tt(("option", "@option_pnl{$0,0.00}"), ("gamma", "@gamma_pnl{$0,0.00}"),
                            ("theta", "@theta_pnl{$0,0.00}"), ("vega", "@vega_pnl{$0,0.00}"),
                            ("option delta", "@delta_pnl{$0,0.00}"),
                            ("unexplained", "@unexplained{$0,0.00}")))
        _legend_above(p)
        plots.append(p)

        # realised vs implied vol
        p = _figure("Realised vs implied vol (annualised, calendar time)", x_range, height=250,
                    y_format="0%")
        rv = p.line("t", "realised_vol", source=src, color=C["realised"], line_width=1.5,
                    legend_label=f"realised, rolling {w_days} trading day{'s' if w_days > 1 else ''}")
        p.line("t", "implied_vol", source=src, color=C["implied"], line_width=1.5,
               legend_label="implied (counted legs)")
        if m.get("realized_vol") is not None:
            p.hspan(y=[float(m["realized_vol"])], line_color=C["realised"], line_dash="dashed",
                    line_alpha=0.7, legend_label=f"realised, whole run {float(m['realized_vol']):.1%}")
        _hover(p, [rv], _tt(("realised", "@realised_vol{0.0%}"), ("implied", "@implied_vol{0.0%}")))
        _legend_above(p)
        plots.append(p)
    else:
        x_range = None
        note = " No series.csv in this folder: only the summary is drawn."

    # guard blocks by reason, cumulative
    if x_range is not None:
        p = _figure("Guard blocks by reason (cumulative count)", x_range, height=250, y_format="0,0")
        ref = data["refusals"]
        if len(ref):
            rt = to_ms(ref["datetime"])
            reasons = ref["reason"].fillna("?").astype(str).to_numpy()
            order = pd.Series(reasons).value_counts().index.tolist()
            end_t = float(src.data["t"][-1]) if len(src.data["t"]) else float(rt.max())
            marks = []
            for i, reason in enumerate(order):
                mask = reasons == reason
                tt = rt[mask]
                o = np.argsort(tt, kind="stable")
                tt = tt[o]
                cnt = np.arange(1, len(tt) + 1, dtype="float64")
                color = REASON_COLORS[i % len(REASON_COLORS)]
                label = f"{reason} ({len(tt):,})"
                p.step(np.concatenate([tt, [max(end_t, tt[-1])]]), np.concatenate([cnt, [cnt[-1]]]),
                       mode="after", color=color, line_width=1.5, legend_label=label)
                rs = ColumnDataSource({"t": tt, "count": cnt,
                                       "reason": np.full(len(tt), reason, dtype=object),
                                       "state": ref["state"].fillna("").astype(str).to_numpy()[mask][o],
                                       "net_delta": _num(ref, "net_delta")[mask][o]})
                marks.append(p.scatter("t", "count", source=rs, size=5, color=color, legend_label=label))
            p.yaxis.ticker = BasicTicker(min_interval=1)
            _hover(p, marks, _tt(("reason", "@reason"), ("count", "@count{0,0}"),
                                 ("state", "@state"), ("net delta", "@net_delta{0,0.0}")), mode="mouse")
            _legend_above(p)
        else:
            p.y_range = Range1d(-0.05, 1)
            p.yaxis.ticker = [0, 1]
            zero = p.line("t", "zero", source=ColumnDataSource(
                {"t": src.data["t"][[0, -1]], "zero": np.zeros(2)}), color="#999999")
            _no_data(p, "no guard blocks in this run")
            _hover(p, [zero], _tt(("guard blocks", "@zero{0}")))
        plots.append(p)

    # header and summary tables
    start = end = ""
    if series is not None and len(series):
        start, end = str(series["datetime"].iloc[0]), str(series["datetime"].iloc[-1])
    sym = cfg.get("symbol", "")
    secs = data.get("seconds")
    header = Div(text=(f"<h2 style='margin:6px 0 2px 0;font-family:system-ui,sans-serif'>"
                       f"Backtest {html.escape(str(sym))}{' - ' + html.escape(name) if name else ''}</h2>"
                       f"<div style='font:13px system-ui,sans-serif;color:#444'>"
                       f"{html.escape(start)} to {html.escape(end)}, {fmt(m.get('bars'), 0)} bars"
                       f"{', run in ' + fmt(secs) + ' s' if secs is not None else ''}."
                       f" Plots share the time axis: drag to pan, wheel to zoom, click a legend"
                       f" entry to hide a line.{html.escape(note)}</div>"),
                 sizing_mode="stretch_width")
    tables = Div(text="<div style='display:flex;flex-wrap:wrap;align-items:flex-start'>"
                 + html_table(metric_rows(m), "Metrics")
                 + html_table(config_rows(cfg), "Config")
                 + html_table(block_rows(m), "Guard blocks") + "</div>",
                 sizing_mode="stretch_width")
    return column([header, tables] + plots, sizing_mode="stretch_width")


def metric_rows(m: dict) -> list[tuple[str, str]]:
    cs = m.get("costs_split") or {}
    at = m.get("attribution") or {}
    neg = lambda v: 0.0 - v if isinstance(v, (int, float)) else v   # noqa: E731
    pct = lambda v: f"{v:.1%}" if isinstance(v, (int, float)) else "n/a"   # noqa: E731
    return [
        ("Total P&L", fmt(m.get("total_pnl"))),
        ("  option P&L (at mid)", fmt(m.get("option_pnl"))),
        ("  hedge P&L (at mid)", fmt(m.get("hedge_pnl"))),
        ("  costs", fmt(neg(m.get("costs")))),
        ("    commission", fmt(neg(cs.get("commission")))),
        ("    half-spreads", fmt(neg(cs.get("spread")))),
        ("    slippage", fmt(neg(cs.get("slippage")))),
        ("Attribution: gamma", fmt(at.get("gamma"))), ("  theta", fmt(at.get("theta"))),
        ("  vega", fmt(at.get("vega"))), ("  option delta", fmt(at.get("delta"))),
        ("  unexplained", fmt(at.get("unexplained"))),
        ("Hedges", fmt(m.get("hedge_count"), 0)), ("Shares traded", fmt(m.get("shares_traded"), 0)),
        ("Sharpe (daily, annualised)", fmt(m.get("sharpe"))),
        ("Max drawdown $", fmt(m.get("max_drawdown"))),
        ("Max drawdown %", fmt(m.get("max_drawdown_pct"), 3)),
        ("Realised vol", pct(m.get("realized_vol"))), ("Implied vol", pct(m.get("implied_vol"))),
        ("Start value", fmt(m.get("start_value"))), ("End value", fmt(m.get("end_value"))),
        ("Bars", fmt(m.get("bars"), 0)),
    ]


def config_rows(cfg: dict) -> list[tuple[str, str]]:
    keys = [("market.source", "market source"), ("market.synthetic.days", "  days (synthetic)"),
            ("market.synthetic.seed", "  seed (synthetic)"), ("market.synthetic.sigma", "  sigma (synthetic)"),
            ("gates.state.delta.epsilon_band", "epsilon band (shares)"),
            ("gates.state.delta.threshold_hedge_shares", "hedge threshold (shares)"),
            ("gates.state.delta.max_delta_limit", "force-hedge limit (shares)"),
            ("gates.intent.hedge.cooldown_seconds", "cooldown (s)"),
            ("gates.intent.hedge.min_price_move_pct", "min price move %"),
            ("gates.intent.hedge.min_hedge_shares", "min hedge shares"),
            ("gates.intent.hedge.max_hedge_shares_per_order", "max shares per order"),
            ("gates.guard.risk.max_daily_hedge_count", "max hedges per day"),
            ("gates.guard.risk.max_daily_loss_usd", "daily loss breaker $"),
            ("gates.strategy.structure.contracts", "contracts per leg"),
            ("broker.cash", "cash")]
    rows = []
    src = _cfg(cfg, "market.source")
    for key, label in keys:
        if "synthetic" in key and src not in (None, "synthetic"):
            continue
        v = _cfg(cfg, key, "n/a")
        rows.append((label, "null" if v is None else (fmt(v, 0) if isinstance(v, float) and v.is_integer() else fmt(v))))
    return rows


def block_rows(m: dict) -> list[tuple[str, str]]:
    blocks = m.get("block_reasons") or {}
    rows = [("Guard blocks", fmt(int(sum(blocks.values())), 0))]
    rows += [(f"  {k}", fmt(int(v), 0)) for k, v in sorted(blocks.items(), key=lambda kv: -kv[1])]
    return rows


def write_backtest_page(result_dir, path=None) -> Path:
    """Build ``report.html`` in ``result_dir`` (or at ``path``) from its saved files."""
    d = Path(result_dir)
    data = load_result(d)
    layout = build_backtest_layout(data, name=d.resolve().name)
    sym = data["config"].get("symbol", "")
    return save_page(layout, Path(path) if path else d / "report.html", f"Backtest {sym} - {d.name}")
