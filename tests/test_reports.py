"""The Bokeh pages as a person sees them: report.html (backtest) and sweep.html (sweep).

Each page is opened in headless Chromium; the screenshot must show drawn plots (enough
non-white pixels, many colours, the plot colours themselves) and the browser must log
no JavaScript error. Those tests skip only when /usr/bin/chromium is absent (CI installs
it: ``apt-get install -y chromium``). Set BIFROST_SCREENSHOTS=DIR to keep the PNGs.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bokeh", reason="the pages need the plots extra (bokeh)")

from plots.backtest_page import (downsample_indices, load_result, rolling_realised_vol,  # noqa: E402
                                 series_data, write_backtest_page)
from plots.sweep_page import write_sweep_page  # noqa: E402
from runners.backtest import ROOT_DIR, run_backtest, write_outputs  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
needs_browser = pytest.mark.skipif(not CHROMIUM.exists(),
                                   reason="/usr/bin/chromium is absent (apt-get install -y chromium)")

PARAMS = ["gates.intent.hedge.cooldown_seconds", "gates.state.delta.threshold_hedge_shares"]
METRICS = ["total_pnl", "option_pnl", "hedge_pnl", "costs", "hedge_count", "shares_traded",
           "sharpe", "max_drawdown", "max_drawdown_pct", "realized_vol", "implied_vol"]


# -- fixtures --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def backtest_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("backtest")
    result = run_backtest(overrides=["market.synthetic.days=3"])
    write_outputs(result, out)
    write_backtest_page(out)
    return out


def make_sweep(out: Path) -> Path:
    """A 2x2 grid, 2 seeds, the last run failed (its metrics empty), like runners/sweep.py."""
    out.mkdir(parents=True, exist_ok=True)
    cols = (["combo", "seed", "key"] + PARAMS + METRICS + ["block_cooldown", "block_min_price_move",
            "block_other", "seconds", "node", "host", "pid", "status", "error"])
    rows, combo = [], 0
    for cooldown in (None, 60):
        for thr in (25.0, 50.0):
            for seed in (0, 1):
                row = {"combo": combo, "seed": seed, "key": f"{combo}-{seed}",
                       PARAMS[0]: "" if cooldown is None else cooldown, PARAMS[1]: thr,
                       "seconds": 0.4, "node": "node-1", "host": "h", "pid": 100 + seed}
                if combo == 3 and seed == 1:
                    row.update(status="error", error="ValueError: synthetic failure")
                else:
                    hedges = 1000.0 / thr * (1.5 if cooldown is None else 1.0) + 3 * seed
                    pnl = -40.0 * thr + 150.0 * seed + (300.0 if cooldown else 0.0)
                    row.update(total_pnl=pnl, option_pnl=pnl + 400, hedge_pnl=100.0, costs=hedges * 5,
                               hedge_count=hedges, shares_traded=hedges * 40,
                               sharpe=pnl / 1000 + 0.3 * seed, max_drawdown=abs(pnl) + 50,
                               max_drawdown_pct=0.1, realized_vol=0.34, implied_vol=0.35,
                               block_cooldown=4, block_min_price_move=2, block_other=0,
                               status="ok", error="")
                rows.append(row)
            combo += 1
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    (out / "sweep.json").write_text(json.dumps({"params": PARAMS, "metric": "sharpe", "seeds": 2,
                                                "combinations": 4, "jobs": 8}))
    return out


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = make_sweep(tmp_path_factory.mktemp("sweep"))
    write_sweep_page(out)
    return out


# -- the browser -----------------------------------------------------------------------
# Chromium logs every console message at one level, so a copy of the page gets a first
# script that tags console.error / console.warn; uncaught errors log as "Uncaught ...".
CONSOLE_TAP = ("<script>(function(){for (const k of ['error','warn']) {const f = console[k];"
               "console[k] = function(...a){console.log('[console.' + k + '] ' + a.join(' '));"
               "return f.apply(console, a);};}})();</script>")


def read_png(path: Path) -> np.ndarray:
    """A tiny PNG reader (8-bit RGB/RGBA, not interlaced) -> (h, w, 3) uint8."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    assert depth == 8 and ctype in (2, 6) and not interlace, (depth, ctype, interlace)
    bpp = 3 if ctype == 2 else 4
    stride = w * bpp
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(h, stride + 1)
    out = np.empty((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:]
        if f == 0:
            cur = line.copy()
        elif f == 1:                                     # Sub
            cur = (np.cumsum(line.reshape(w, bpp).astype(np.int64), axis=0) % 256).astype(np.uint8).ravel()
        elif f == 2:                                     # Up
            cur = line + prev
        else:                                            # Average, Paeth: sequential
            cur, up = bytearray(line.tobytes()), prev.tobytes()
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                if f == 3:
                    cur[i] = (cur[i] + ((a + up[i]) >> 1)) & 255
                    continue
                b, c = up[i], (up[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            cur = np.frombuffer(bytes(cur), dtype=np.uint8)
        out[y] = cur
        prev = cur
    return out.reshape(h, w, bpp)[:, :, :3]


def open_in_browser(page: Path, tmp: Path, height: int) -> tuple[np.ndarray, list[str]]:
    """Screenshot ``page`` in headless Chromium: (RGB pixels, the page's console lines)."""
    tapped = tmp / f"tapped-{page.name}"
    text = page.read_text(encoding="utf-8")
    assert "<head>" in text, f"{page}: no <head> to put the console tap in"
    tapped.write_text(text.replace("<head>", "<head>" + CONSOLE_TAP, 1), encoding="utf-8")
    png = tmp / f"{page.stem}.png"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars",
           f"--user-data-dir={tmp / 'chromium-profile'}", f"--screenshot={png}",
           f"--window-size=1400,{height}", "--virtual-time-budget=20000",
           "--enable-logging=stderr", "--v=0", tapped.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert png.exists(), f"no screenshot (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    keep = os.environ.get("BIFROST_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / png.name)
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln]
    return read_png(png), console


def page_errors(console: list[str]) -> list[str]:
    return [ln for ln in console if "Uncaught" in ln or "[console.error]" in ln
            or "[console.warn]" in ln or "ERROR:CONSOLE" in ln]


def near(img: np.ndarray, hex_color: str, tol: int = 40) -> int:
    """Pixels within ``tol`` (per channel) of a colour."""
    rgb = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    return int((np.abs(img.astype(np.int16) - rgb).max(axis=2) <= tol).sum())


def assert_drawn(img: np.ndarray, colours: dict[str, str], min_pixels: int = 20) -> None:
    non_white = (img.min(axis=2) < 235).mean()
    distinct = len(np.unique(img.reshape(-1, 3)[::7], axis=0))
    assert non_white > 0.04, f"page looks blank: {non_white:.1%} non-white pixels"
    assert distinct > 60, f"only {distinct} distinct colours: nothing drawn?"
    missing = {name: near(img, c) for name, c in colours.items() if near(img, c) < min_pixels}
    assert not missing, f"colours not on the page (pixels found): {missing}"


# -- browser tests -----------------------------------------------------------------------
@needs_browser
def test_browser_check_catches_page_errors(tmp_path):
    """The error check itself: a broken page must be caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><head></head><body><p>x</p><script>console.error('boom');"
                   "not_defined();</script></body></html>")
    _, console = open_in_browser(bad, tmp_path, 300)
    errors = page_errors(console)
    assert any("boom" in e for e in errors) and any("Uncaught" in e for e in errors), console


@needs_browser
def test_backtest_page_draws_in_browser(backtest_dir, tmp_path):
    img, console = open_in_browser(backtest_dir / "report.html", tmp_path, 2800)
    assert not page_errors(console), "\n".join(console)
    assert any("document idle" in ln for ln in console), "BokehJS never finished:\n" + "\n".join(console)
    assert_drawn(img, {"equity line": "#1f4e79", "hedge buys": "#1a9850", "hedge sells": "#d73027",
                       "net delta": "#2c7fb8", "P&L total": "#111111", "gamma": "#2ca02c",
                       "realised vol": "#ff7f0e"})
    # the lower half holds plots too (not only the tables at the top)
    assert (img[img.shape[0] // 2:].min(axis=2) < 200).mean() > 0.01


@needs_browser
def test_sweep_page_draws_in_browser(sweep_dir, tmp_path):
    img, console = open_in_browser(sweep_dir / "sweep.html", tmp_path, 1600)
    assert not page_errors(console), "\n".join(console)
    assert any("document idle" in ln for ln in console), "BokehJS never finished:\n" + "\n".join(console)
    assert_drawn(img, {"heatmap low (viridis)": "#440154", "heatmap high (viridis)": "#fde724",
                       "failed-run text": "#c0392b"}, min_pixels=30)


# -- the saved files -----------------------------------------------------------------------
EXTERNAL = [re.compile(r"<script[^>]*\bsrc\s*=", re.I),
            re.compile(r"<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//", re.I),
            re.compile(r"@import\s+(url\()?[\"']?(https?:)?//", re.I),
            re.compile(r"cdn\.bokeh\.org", re.I)]


def test_pages_are_self_contained(backtest_dir, sweep_dir):
    for page in (backtest_dir / "report.html", sweep_dir / "sweep.html"):
        text = page.read_text(encoding="utf-8")
        for pat in EXTERNAL:
            m = pat.search(text)
            assert m is None, f"{page.name} loads something from outside: {text[m.start():m.start() + 120]!r}"
        assert "Bokeh.embed" in text or "embed_items" in text


def test_rolling_realised_vol_matches_the_metric(backtest_dir):
    """Over the whole run the rolling estimator is the metric's: same calendar-time convention."""
    data = load_result(backtest_dir)
    full = series_data(data["series"], data["metrics"]["start_value"])
    n = len(full["t"])
    rv = rolling_realised_vol(full["t"], full["spot"], n - 1)
    assert rv[-1] == pytest.approx(data["metrics"]["realized_vol"], rel=1e-9)
    assert np.isnan(rv[: n - 1]).all()
    # and the page's own window gives finite values once a window has passed
    assert np.isfinite(full["realised_vol"][-1])
    # total = option + hedge - costs, bar by bar, as the analyzer promises
    assert np.allclose(full["total_pnl"], full["pnl"], atol=1e-6)


def test_downsampling_keeps_extremes():
    n = 120_000
    rng = np.random.default_rng(3)
    a = np.cumsum(rng.normal(size=n))
    b = rng.normal(size=n)
    idx = downsample_indices(n, [a, b])
    assert 5_000 < len(idx) <= 21_000
    assert idx[0] == 0 and idx[-1] == n - 1 and np.all(np.diff(idx) > 0)
    for k in (a, b):
        assert k.argmax() in idx and k.argmin() in idx
    assert len(downsample_indices(1000, [a[:1000]])) == 1000


def test_backtest_page_without_series(backtest_dir, tmp_path):
    for name in ("result.json", "hedges.csv"):
        shutil.copy(backtest_dir / name, tmp_path / name)
    page = write_backtest_page(tmp_path)
    assert page.exists() and "No series.csv" in page.read_text(encoding="utf-8")


def test_sweep_page_edge_cases(tmp_path):
    import pandas as pd

    base = make_sweep(tmp_path / "base")
    df = pd.read_csv(base / "results.csv")
    # one swept key: a strip
    one = tmp_path / "one"
    one.mkdir()
    df.drop(columns=[PARAMS[0]]).to_csv(one / "results.csv", index=False)
    (one / "sweep.json").write_text(json.dumps({"params": [PARAMS[1]], "metric": "total_pnl"}))
    assert write_sweep_page(one).exists()
    # every run failed; no sweep.json (the dotted columns are the swept keys)
    bad = tmp_path / "bad"
    bad.mkdir()
    failed = df.assign(status="error", error="RuntimeError: x")
    failed[METRICS] = np.nan
    failed.to_csv(bad / "results.csv", index=False)
    page = write_sweep_page(bad, metric="total_pnl", x=PARAMS[1], y=PARAMS[0])
    assert "no successful run" in page.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="metric 'nope'"):
        write_sweep_page(base, metric="nope")


# -- the command lines -------------------------------------------------------------------
def run_py(*args, cwd=None):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          timeout=180, cwd=cwd)


def test_report_cli_rebuilds_and_explains(backtest_dir, sweep_dir, tmp_path):
    report = ROOT_DIR / "runners" / "report.py"
    bt = tmp_path / "bt"
    shutil.copytree(backtest_dir, bt)
    (bt / "report.html").unlink()
    proc = run_py(report, bt)
    assert proc.returncode == 0, proc.stderr
    assert (bt / "report.html").stat().st_size > 100_000 and "report.html" in proc.stdout

    sw = tmp_path / "sw"
    shutil.copytree(sweep_dir, sw)
    (sw / "sweep.html").unlink()
    proc = run_py(report, sw, "--metric", "total_pnl")
    assert proc.returncode == 0, proc.stderr
    assert (sw / "sweep.html").exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, words in ((empty, "result.json"), (tmp_path / "missing", "no such folder")):
        proc = run_py(report, folder)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], proc.stderr
    proc = run_py(report, sw, "--metric", "nope")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "nope" in proc.stderr


def test_backtest_cli_writes_report_unless_told_not_to(tmp_path):
    script = ROOT_DIR / "runners" / "backtest.py"
    for flag, expected in ((["--no-report"], False), ([], True)):
        out = tmp_path / ("without" if flag else "with")
        proc = run_py(script, "--set", "market.synthetic.days=3", "--out", out, *flag)
        assert proc.returncode == 0, proc.stderr
        assert (out / "result.json").exists()
        assert (out / "report.html").exists() is expected
        assert ("report.html" in proc.stdout) is expected
