"""Fault injection: names, arguments, and the switches the server consults.

A fault is ``{"fault": name, ...args}`` (control endpoint, ``IBSim.inject``) or a script
entry ``{at_seconds: <market seconds after the clock starts>, fault: name, args: {...}}``.
Durations in args (``seconds``, ``refuse_seconds``, ``rest_after``) are wall-clock
seconds; ``at_seconds`` is market time.

Faults:
  disconnect   {refuse_seconds: 0}            drop every client socket; refuse reconnects for N s
  error_1100   {refuse_seconds: 0, close: true} send 1100 (connectivity lost), then close
  error_1101   {}                              send 1101 (restored, data lost; market data cancelled)
  error_1102   {}                              send 1102 (restored, data maintained)
  error        {code, message: "", close: false}  send any error code to every client
  reject_next  {count: 1, message, status: Cancelled}  error 201 + orderStatus Cancelled/Inactive
  partial_fill {fraction: 0.5, rest_after: null, count: 1}  fill a fraction; the rest after N s or never
  delay        {seconds: 2, count: null}       delay acknowledgements and fills (count null = until cleared)
  stale        {seconds: null}                 no more ticks until cleared (or N s)
  widen        {factor: 5, seconds: null}      multiply every bid/ask spread (fills too)
  bad_data     {kind: nan, ticks: 5}           nan | negative | crossed | zero quotes for N quote rounds
  no_data      {code: 354, seconds: null, message: "", sec_type: null}  error 354 (not subscribed)
                                               or 10197 (competing live session) on every market data
                                               request (of sec_type STK or OPT only, when given), no
                                               ticks until cleared (or N s); then streaming resumes
  clear        {}                              clear all faults (and stop refusing connections)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable


class FaultError(ValueError):
    """A bad fault name or argument; the message names it."""


def _number(lo=None, hi=None, integer=False, nullable=False, lo_open=False) -> Callable:
    def check(name, val):
        if val is None and nullable:
            return None
        ok = isinstance(val, (int, float)) and not isinstance(val, bool) and math.isfinite(val)
        ok = ok and (not integer or int(val) == val)
        ok = ok and (lo is None or (val > lo if lo_open else val >= lo))
        ok = ok and (hi is None or val <= hi)
        if not ok:
            want = "an integer" if integer else "a number"
            if lo is not None:
                want += f" {'>' if lo_open else '>='} {lo:g}"
            if hi is not None:
                want += f" and <= {hi:g}"
            raise FaultError(f"{name}: got {val!r}, expected {want}{' or null' if nullable else ''}")
        return int(val) if integer else float(val)
    return check


def _choice(*options) -> Callable:
    def check(name, val):
        if val not in options:
            raise FaultError(f"{name}: got {val!r}, expected one of {', '.join(map(str, options))}")
        return val
    return check


def _text(name, val):
    if not isinstance(val, str):
        raise FaultError(f"{name}: got {val!r}, expected a string")
    return val


def _flag(name, val):
    if not isinstance(val, bool):
        raise FaultError(f"{name}: got {val!r}, expected true or false")
    return val


REQUIRED = object()

SPECS: dict[str, dict[str, tuple[Any, Callable]]] = {
    "disconnect": {"refuse_seconds": (0.0, _number(0, 3600))},
    "error_1100": {"refuse_seconds": (0.0, _number(0, 3600)), "close": (True, _flag)},
    "error_1101": {},
    "error_1102": {},
    "error": {"code": (REQUIRED, _number(-1, 99999, integer=True)), "message": ("", _text),
              "close": (False, _flag)},
    "reject_next": {"count": (1, _number(1, 10**6, integer=True)),
                    "message": ("Simulated rejection", _text),
                    "status": ("Cancelled", _choice("Cancelled", "Inactive"))},
    "partial_fill": {"fraction": (0.5, _number(0, 1, lo_open=True)),
                     "rest_after": (None, _number(0, 3600, nullable=True)),
                     "count": (1, _number(1, 10**6, integer=True))},
    "delay": {"seconds": (2.0, _number(0, 3600)),
              "count": (None, _number(1, 10**6, integer=True, nullable=True))},
    "stale": {"seconds": (None, _number(0, 10**6, nullable=True, lo_open=True))},
    "widen": {"factor": (5.0, _number(0, 1000, lo_open=True)),
              "seconds": (None, _number(0, 10**6, nullable=True, lo_open=True))},
    "bad_data": {"kind": ("nan", _choice("nan", "negative", "crossed", "zero")),
                 "ticks": (5, _number(1, 10**6, integer=True))},
    "no_data": {"code": (354, _choice(354, 10197)), "message": ("", _text),
                "seconds": (None, _number(0, 10**6, nullable=True, lo_open=True)),
                "sec_type": (None, _choice(None, "STK", "OPT"))},
    "clear": {},
}

ERROR_TEXT = {
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    354: "Requested market data is not subscribed.",
    10197: "No market data during competing live session",
}


def validate_fault(name: Any, args: dict | None, where: str = "") -> dict:
    """Check a fault name and its args; return the args with defaults filled in."""
    pre = f"{where}." if where else ""
    if name not in SPECS:
        raise FaultError(f"{pre}fault: got {name!r}, expected one of {', '.join(SPECS)}")
    args = dict(args or {})
    spec = SPECS[name]
    for k in args:
        if k not in spec:
            allowed = ", ".join(spec) or "no arguments"
            raise FaultError(f"{pre}{'args.' if where else ''}{k}: unknown argument of {name} (allowed: {allowed})")
    out = {}
    for k, (default, check) in spec.items():
        key = f"{pre}{'args.' if where else ''}{k}"
        if k not in args:
            if default is REQUIRED:
                raise FaultError(f"{key}: missing (required by {name})")
            out[k] = default
        else:
            out[k] = check(key, args[k])
    return out


def validate_script(entries: list) -> list[dict]:
    """Validate ``faults:`` script entries; return them sorted by ``at_seconds``."""
    from ibsim.config import SimConfigError
    out = []
    for i, e in enumerate(entries):
        where = f"faults[{i}]"
        if not isinstance(e, dict):
            raise SimConfigError(f"{where}: expected a mapping {{at_seconds, fault, args}}, got {e!r}")
        for k in e:
            if k not in ("at_seconds", "fault", "args"):
                raise SimConfigError(f"{where}.{k}: unknown key (allowed: at_seconds, fault, args)")
        try:
            at = _number(0)(f"{where}.at_seconds", e.get("at_seconds"))
            if e.get("args") is not None and not isinstance(e["args"], dict):
                raise FaultError(f"{where}.args: got {e['args']!r}, expected a mapping")
            args = validate_fault(e.get("fault"), e.get("args"), where)
        except FaultError as exc:
            raise SimConfigError(str(exc)) from None
        out.append({"at_seconds": at, "fault": e["fault"], "args": args})
    return sorted(out, key=lambda d: d["at_seconds"])


@dataclass
class FaultState:
    """The active faults; ``now`` is the event loop's wall clock (``loop.time()``)."""
    reject: list = field(default_factory=list)        # args per pending rejection
    partial: list = field(default_factory=list)       # args per pending partial fill
    delay_seconds: float = 0.0
    delay_left: int | None = 0                        # None = until cleared; 0 = off
    stale_until: float | None = None                  # None = not stale
    widen_factor: float = 1.0
    widen_until: float = math.inf
    bad_kind: str | None = None
    bad_left: int = 0
    refuse_until: float = 0.0
    no_data_code: int = 0
    no_data_text: str = ""
    no_data_until: float | None = None               # None = data flows
    no_data_sec: str | None = None                   # only this sec_type (None = all)

    def clear(self) -> None:
        self.__init__()

    def is_stale(self, now: float) -> bool:
        if self.stale_until is not None and now >= self.stale_until:
            self.stale_until = None
        return self.stale_until is not None

    def no_data(self, now: float) -> bool:
        if self.no_data_until is not None and now >= self.no_data_until:
            self.no_data_until = None
        return self.no_data_until is not None

    def no_data_on(self, sec_type: str, now: float) -> bool:
        """Market data for ``sec_type`` is refused now."""
        return self.no_data(now) and self.no_data_sec in (None, sec_type)

    def spread_factor(self, now: float) -> float:
        if self.widen_factor != 1.0 and now >= self.widen_until:
            self.widen_factor, self.widen_until = 1.0, math.inf
        return self.widen_factor

    def take_reject(self) -> dict | None:
        if not self.reject:
            return None
        args = self.reject[0]
        args["count"] -= 1
        if args["count"] <= 0:
            self.reject.pop(0)
        return args

    def take_partial(self) -> dict | None:
        if not self.partial:
            return None
        args = self.partial[0]
        args["count"] -= 1
        if args["count"] <= 0:
            self.partial.pop(0)
        return args

    def take_delay(self) -> float:
        if self.delay_left is None:
            return self.delay_seconds
        if self.delay_left > 0:
            self.delay_left -= 1
            return self.delay_seconds
        return 0.0

    def take_bad_round(self) -> str | None:
        """The bad-data kind for this quote round, counting it down."""
        if self.bad_left <= 0:
            return None
        self.bad_left -= 1
        kind = self.bad_kind
        if self.bad_left == 0:
            self.bad_kind = None
        return kind

    def apply(self, name: str, args: dict, now: float) -> None:
        """Arm a (validated) order/data fault. Connection faults are the server's."""
        if name == "reject_next":
            self.reject.append(dict(args))
        elif name == "partial_fill":
            self.partial.append(dict(args))
        elif name == "delay":
            self.delay_seconds, self.delay_left = args["seconds"], args["count"]
        elif name == "stale":
            self.stale_until = math.inf if args["seconds"] is None else now + args["seconds"]
        elif name == "widen":
            self.widen_factor = args["factor"]
            self.widen_until = math.inf if args["seconds"] is None else now + args["seconds"]
        elif name == "bad_data":
            self.bad_kind, self.bad_left = args["kind"], args["ticks"]
        elif name == "no_data":
            self.no_data_code = args["code"]
            self.no_data_text = args["message"] or ERROR_TEXT[args["code"]]
            self.no_data_until = math.inf if args["seconds"] is None else now + args["seconds"]
            self.no_data_sec = args["sec_type"]
        elif name == "clear":
            self.clear()

    def describe(self, now: float) -> dict:
        """The active faults, for GET /state and /faults."""
        out: dict = {}
        if self.reject:
            out["reject_next"] = sum(a["count"] for a in self.reject)
        if self.partial:
            out["partial_fill"] = [dict(a) for a in self.partial]
        if self.delay_left is None or self.delay_left > 0:
            out["delay"] = {"seconds": self.delay_seconds, "count": self.delay_left}
        if self.is_stale(now):
            out["stale"] = None if self.stale_until == math.inf else round(self.stale_until - now, 3)
        if self.spread_factor(now) != 1.0:
            out["widen"] = self.widen_factor
        if self.bad_left > 0:
            out["bad_data"] = {"kind": self.bad_kind, "ticks": self.bad_left}
        if self.no_data(now):
            out["no_data"] = {"code": self.no_data_code, "sec_type": self.no_data_sec,
                              "seconds": None if self.no_data_until == math.inf
                              else round(self.no_data_until - now, 3)}
        if now < self.refuse_until:
            out["refusing_connections"] = round(self.refuse_until - now, 3)
        return out
