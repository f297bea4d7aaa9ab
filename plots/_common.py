"""Helpers shared by the pages: self-contained saving, datetimes, small HTML tables."""
from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

TOOLS = "xpan,xwheel_zoom,box_zoom,reset,save"


def save_page(layout, path: Path, title: str) -> Path:
    """Write ``layout`` as one self-contained HTML file: BokehJS inlined (the CDN
    default would leave the page blank offline); no global Bokeh state is touched."""
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    path = Path(path)
    text = file_html(layout, INLINE, title=title)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)                     # never leave a half-written page behind
    return path


def to_ms(values) -> np.ndarray:
    """Naive exchange-local datetimes (text or datetime) -> float ms since the epoch,
    which a Bokeh datetime axis shows as the same wall-clock time."""
    ts = pd.to_datetime(pd.Series(values), format="mixed") if len(values) else pd.Series([], dtype="datetime64[ms]")
    return ts.to_numpy(dtype="datetime64[ms]").astype("int64").astype("float64")


def fmt(v, digits: int = 2) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return f"{v:,d}"
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return "n/a"
        if float(v).is_integer() and abs(v) < 1e15 and digits == 0:
            return f"{int(v):,d}"
        return f"{v:,.{digits}f}"
    return str(v)


TABLE_CSS = ("border-collapse:collapse;font:13px/1.35 system-ui,sans-serif;"
             "margin:0 24px 8px 0")


def html_table(rows, caption: str = "") -> str:
    """rows: (label, value text) pairs; a label starting with spaces is indented."""
    out = [f'<table style="{TABLE_CSS}">']
    if caption:
        out.append(f'<caption style="text-align:left;font-weight:600;padding:4px 0">'
                   f'{html.escape(caption)}</caption>')
    for label, value in rows:
        indent = len(label) - len(label.lstrip(" "))
        out.append(f'<tr><td style="padding:1px 16px 1px {4 + 8 * indent}px;color:#333">'
                   f'{html.escape(label.strip())}</td>'
                   f'<td style="padding:1px 4px;text-align:right;font-variant-numeric:tabular-nums">'
                   f'{html.escape(value)}</td></tr>')
    out.append("</table>")
    return "".join(out)
