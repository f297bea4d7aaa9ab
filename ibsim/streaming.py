"""Quote streaming and account pushes (mixed into ``IBSim``).

Each quote round sends every subscription its bid/ask with sizes (the sizes change each
round, so a client sees a live ticker between bars); a new bar adds last, close,
high/low/open, volume and the option greeks (model 13, bid 10, ask 11). Faults: stale
rounds send nothing, ``widen`` scales the spread (orders trade on it too), ``bad_data``
corrupts what is sent (never what orders trade on).
"""
from __future__ import annotations

import asyncio
import math

from ibsim import messages as msg
from ibsim.market import Quote, epoch
from ibsim.session import Session, Subscription


def _size(con_id: int, seq: int, side: int, lot: int) -> int:
    """Deterministic pseudo-random quote size (changes every quote round)."""
    h = (con_id * 2654435761 + seq * 40503 + side * 977) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0x5BD1E995) & 0xFFFFFFFF
    return lot * (1 + (h >> 7) % 20)


class Streaming:
    """Market data and account messages; ``self`` is the IBSim."""

    # ---- quotes --------------------------------------------------------------------------
    def mark(self, inst) -> float:
        return self.market.mark(inst, self.idx)

    def book_quote(self, inst) -> Quote:
        """The quote orders trade against (spread faults included, bad data not)."""
        return self.market.quote(inst, self.idx, self.faults.spread_factor(asyncio.get_running_loop().time()))

    def subscribe(self, s: Session, req: int, inst, generic: str, snapshot: bool) -> None:
        s.send(msg.tick_req_params(req) + msg.market_data_type(req, 1))
        if snapshot:
            self._send_quote(s, Subscription(req, inst, generic), self.book_quote(inst), True, None)
            s.send(msg.tick_snapshot_end(req))
            return
        sub = Subscription(req, inst, generic)
        s.subs[req] = sub
        now = asyncio.get_running_loop().time()
        if self.faults.no_data_on(inst.sec_type, now):   # refused now; streams when the fault ends
            s.send(msg.error(req, self.faults.no_data_code, self.faults.no_data_text))
            return
        if not self.faults.is_stale(now):
            self._send_quote(s, sub, self.book_quote(inst), True, None)

    def _push_quotes(self, full: bool) -> None:
        loop_now = asyncio.get_running_loop().time()
        if self.faults.is_stale(loop_now):
            return
        if not any(s.subs for s in self.sessions):
            return
        self.seq += 1
        self.stats["rounds"] += 1
        bad = self.faults.take_bad_round()
        for s in list(self.sessions):
            for sub in list(s.subs.values()):
                if self.faults.no_data_on(sub.inst.sec_type, loop_now):
                    continue
                self._send_quote(s, sub, self.book_quote(sub.inst), full, bad)

    def _send_quote(self, s: Session, sub: Subscription, q: Quote, full: bool, bad: str | None) -> None:
        inst, req = sub.inst, sub.req_id
        bid, ask, last = q.bid, q.ask, q.last
        if bad == "nan":
            bid = ask = last = math.nan
        elif bad == "negative":
            bid, ask, last = -max(bid, 0.01), -max(ask, 0.01), -max(last, 0.01)
        elif bad == "crossed":
            bid, ask = q.ask + max(0.05, q.ask - q.bid), q.bid
        elif bad == "zero":
            bid = ask = last = 0.0
        lot = 1 if inst.is_option else 100
        out = [msg.tick_price(req, 1, bid, _size(inst.con_id, self.seq, 1, lot)),
               msg.tick_price(req, 2, ask, _size(inst.con_id, self.seq, 2, lot))]
        generic = sub.generic.split(",") if sub.generic else ()
        if full:
            day_bars = self.idx - int(self.market.day_start[self.idx]) + 1
            out += [msg.tick_price(req, 4, last, _size(inst.con_id, self.seq, 4, lot)),
                    msg.tick_price(req, 9, q.prev_close, 0),
                    msg.tick_price(req, 6, q.high, 0), msg.tick_price(req, 7, q.low, 0),
                    msg.tick_price(req, 14, q.open, 0),
                    msg.tick_size(req, 8, day_bars * (250 * lot if lot > 1 else 40)),
                    msg.tick_string(req, 45, str(int(epoch(self.market.times[self.idx]))))]
            if "106" in generic and not inst.is_option:
                out.append(msg.tick_generic(req, 24, self.market.iv))
        if "233" in generic:                      # RTVolume: carries the sim's market clock
            ms = int(epoch(self.clock.now()) * 1000)
            out.append(msg.tick_string(req, 48, f"{last};{lot};{ms};;;true"))
        if q.model is not None:
            model = q.model if bad != "nan" else (math.nan,) * 7 + (q.model[7],)
            out.append(msg.tick_option(req, 13, model))
            if full and bad is None:
                if q.bid_comp:
                    out.append(msg.tick_option(req, 10, q.bid_comp))
                if q.ask_comp:
                    out.append(msg.tick_option(req, 11, q.ask_comp))
        s.send_ticks(b"".join(out), len(out))

    # ---- account pushes ---------------------------------------------------------------------
    def _value_msgs(self, build) -> list[bytes]:
        vals = self.ledger.values(self.mark)
        out = [build("AccountCode", self.account, ""), build("AccountType", "INDIVIDUAL", ""),
               build("Currency", "USD", "USD"), build("DayTradesRemaining", "-1", "")]
        out += [build(k, f"{v:.2f}", "USD") for k, v in vals.items()]
        out += [build("CashBalance", f"{self.ledger.cash:.2f}", "BASE"),
                build("NetLiquidationByCurrency", f"{vals['NetLiquidation']:.2f}", "BASE")]
        return out

    def push_account(self, s: Session, download_end: bool = False) -> None:
        out = self._value_msgs(lambda k, v, c: msg.account_value(k, v, c, self.account))
        for p in self.ledger.positions.values():
            if p.qty or not download_end:
                out.append(self._portfolio_msg(p))
        out.append(msg.account_time(self.clock.now()))
        if download_end:
            out.append(msg.account_download_end(self.account))
        s.send(b"".join(out))

    def _portfolio_msg(self, p) -> bytes:
        px = self.mark(p.inst)
        mult = p.inst.multiplier
        return msg.portfolio_value(p.inst, p.qty, px, p.qty * px * mult, p.avg_cost,
                                   p.qty * (px * mult - p.avg_cost) if p.qty else 0.0, p.realized,
                                   self.account)

    def push_account_multi(self, s: Session, req: int, end: bool = False) -> None:
        out = self._value_msgs(lambda k, v, c: msg.account_update_multi(req, self.account, k, v, c))
        if end:
            out.append(msg.account_update_multi_end(req))
        s.send(b"".join(out))

    def push_pnl(self, s: Session) -> None:
        vals = self.ledger.values(self.mark)
        daily = vals["NetLiquidation"] - self._day_netliq
        for req in s.pnl_subs:
            s.send(msg.pnl(req, daily, vals["UnrealizedPnL"], vals["RealizedPnL"]))
