"""Reading a line's current value without Backtrader's per-read calls.

``line[0]`` costs two Python calls (``__getitem__`` and the ``idx`` property); the hot
paths (strategy, P&L analyzer, broker valuation) read a few dozen values a bar, so they
read ``line.array[line._idx]`` instead: the same value in every buffer mode
(tests/test_lines.py checks it against ``line[0]``). Backtrader is pinned at
1.9.78.123, whose LineBuffer keeps the index in ``_idx``.
"""
from __future__ import annotations


def current(line) -> float:
    """``line[0]``, read directly."""
    return line.array[line._idx]
