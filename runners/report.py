"""Rebuild the page of a result folder from its saved files.

    python runners/report.py RESULT_DIR [--metric M] [--x KEY] [--y KEY]

A backtest folder (``result.json``) gets ``report.html``; a sweep folder (``results.csv``,
usually with ``sweep.json``) gets ``sweep.html`` (``--metric``, ``--x``, ``--y`` choose the
heatmap; default: sweep.json's metric and the first two swept keys). The pages are
self-contained (BokehJS inlined) and open offline. Exit code 2 with one line on a folder
that is neither, or on files it cannot read.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):          # `python runners/report.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def folder_kind(path: Path) -> str | None:
    """'backtest', 'sweep' or None."""
    if (path / "result.json").is_file():
        return "backtest"
    if (path / "results.csv").is_file():
        return "sweep"
    return None


def build(path, metric=None, x=None, y=None) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder")
    kind = folder_kind(path)
    if kind == "backtest":
        from plots.backtest_page import write_backtest_page
        return write_backtest_page(path)
    if kind == "sweep":
        from plots.sweep_page import write_sweep_page
        return write_sweep_page(path, metric=metric, x=x, y=y)
    if (path / "sweep.json").is_file():
        raise FileNotFoundError(f"{path}: sweep.json but no results.csv (no run finished yet?)")
    raise FileNotFoundError(f"{path}: neither a backtest folder (result.json) "
                            f"nor a sweep folder (results.csv, sweep.json)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("result_dir", metavar="RESULT_DIR", help="a backtest or sweep output folder")
    p.add_argument("--metric", default=None, help="sweep: heatmap metric (default: sweep.json's, else sharpe)")
    p.add_argument("--x", default=None, help="sweep: swept key on the heatmap's x axis")
    p.add_argument("--y", default=None, help="sweep: swept key on the heatmap's y axis")
    args = p.parse_args(argv)
    try:
        page = build(args.result_dir, args.metric, args.x, args.y)
    except ImportError as exc:
        print(f"error: the pages need bokeh (pip install -e '.[plots]'): {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        msg = str(exc) if not isinstance(exc, KeyError) else f"missing field {exc}"
        print(f"error: {' '.join(msg.split())}", file=sys.stderr)
        return 2
    print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
