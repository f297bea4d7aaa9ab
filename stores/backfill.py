"""Backfilling the gap a reconnect leaves: pure pieces, no IB and no clock.

After a dropped socket the feeds have a hole between the last bar they delivered and
the first tick after reconnecting. ``gap_request`` says what historical bars to ask IB
for (end time, duration string, bar size), ``bars_in_gap`` keeps the bars that fall
inside the hole (ended after the last bar seen, complete by the reconnect, in order,
once each), and ``Pacing`` keeps us inside IB's historical-data pacing rules (no
identical request within 15 s, at most 60 requests in 10 minutes).
"""
from __future__ import annotations

import collections
import datetime as dt
import math
from typing import NamedTuple

# bar sizes IB serves, in minutes -> barSizeSetting
BAR_SIZES = {1: "1 min", 2: "2 mins", 3: "3 mins", 5: "5 mins", 10: "10 mins", 15: "15 mins",
             20: "20 mins", 30: "30 mins", 60: "1 hour"}
MAX_SECONDS = 86400                 # longest "N S" duration IB accepts


class GapRequest(NamedTuple):
    end: str                        # endDateTime, UTC form yyyymmdd-hh:mm:ss
    duration: str                   # durationStr, "N S"
    bar_size: str                   # barSizeSetting
    since: dt.datetime              # the last bar seen (naive exchange time)
    until: dt.datetime              # the reconnect (naive exchange time)


def ib_utc(t: dt.datetime) -> str:
    """IB's UTC end-time form for an aware datetime (naive = already UTC)."""
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc)
    return t.strftime("%Y%m%d-%H:%M:%S")


def gap_request(since: dt.datetime, until: dt.datetime, until_utc: dt.datetime,
                bar_minutes: int) -> GapRequest | None:
    """The historical request covering (since, until], or None when no whole bar fits.

    ``since``/``until`` are naive exchange times (the feeds' clock), ``until_utc`` the
    same instant as IB understands it (the server's time). The duration is rounded up
    to whole bars plus one, so the bar that was open at ``since`` is included and
    later filtered; it is capped at one day (older bars of a longer gap are dropped)."""
    if bar_minutes not in BAR_SIZES:
        raise ValueError(f"bar_minutes: got {bar_minutes}, expected one of {sorted(BAR_SIZES)}")
    bar_s = bar_minutes * 60
    gap = (until - since).total_seconds()
    if gap < bar_s:
        return None
    seconds = min((math.ceil(gap / bar_s) + 1) * bar_s, MAX_SECONDS)
    return GapRequest(ib_utc(until_utc), f"{int(seconds)} S", BAR_SIZES[bar_minutes], since, until)


def bars_in_gap(bars, since: dt.datetime, until: dt.datetime,
                bar_minutes: int) -> list[tuple[dt.datetime, float, float, float, float]]:
    """(end time, open, high, low, close) of the bars that ended after ``since`` and by
    ``until``, oldest first, one per end time. ``bars`` are (start time, o, h, l, c)
    in naive exchange time, as IB stamps bars by their start."""
    width = dt.timedelta(minutes=bar_minutes)
    out = {}
    for start, o, h, lo, c in bars:
        end = start + width
        if since < end <= until and all(x == x and x > 0 for x in (o, h, lo, c)):
            out[end] = (end, float(o), float(h), float(lo), float(c))
    return [out[k] for k in sorted(out)]


class Pacing:
    """IB's historical-data pacing, on a clock the caller gives (monotonic seconds)."""

    def __init__(self, identical_seconds: float = 15.0, window_seconds: float = 600.0,
                 max_in_window: int = 60):
        self.identical, self.window, self.max = identical_seconds, window_seconds, max_in_window
        self._sent = collections.deque()          # (time, key), oldest first

    def allow(self, key, now: float) -> bool:
        """True (and the request counted) when sending ``key`` now keeps to the rules."""
        while self._sent and now - self._sent[0][0] >= self.window:
            self._sent.popleft()
        if len(self._sent) >= self.max:
            return False
        if any(k == key and now - t < self.identical for t, k in self._sent):
            return False
        self._sent.append((now, key))
        return True
