"""The simulator's own config: defaults, loading, validation.

``configs/ibsim.yaml`` mirrors ``DEFAULTS``. Loading merges a file or dict (and
``--set`` overrides) over the defaults and validates every key; the first problem
raises ``SimConfigError`` naming the dotted key. ``project_config`` turns the ``market``,
``spread`` and ``risk_free_rate`` keys into a validated project config (the one
``feeds.synthetic.synthetic_market`` takes).
"""
from __future__ import annotations

import copy
import math
import os
from typing import Any

import yaml

from bifrost import config as project

DEFAULTS: dict = {
    "port": 7497,
    "speed": 1.0,
    "control_port": 0,
    "account": "DU1234567",
    "cash": 1_000_000.0,
    "base_config": None,
    "symbol": "NVDA",
    "stock_conid": 4815747,
    "primary_exchange": "NASDAQ",
    "long_name": "NVIDIA CORP",
    "round_to_tick": True,
    "clock": {
        "start_day": 5,
        "skip_closed": False,
        "quote_refresh_seconds": 1.0,
        "account_refresh_seconds": 3.0,
    },
    "market": {},
    "spread": {},
    "risk_free_rate": None,
    "chain": {"weeks": 8, "strike_range_pct": 30.0},
    "positions": [
        {"secType": "OPT", "right": "C", "strike_offset": 0, "dte": 28, "qty": 10},
        {"secType": "OPT", "right": "P", "strike_offset": 0, "dte": 28, "qty": 10},
    ],
    "commissions": {
        "stock": {"per_share": 0.005, "min_per_order": 1.0},
        "option": {"per_contract": 0.65, "min_per_order": 0.0},
    },
    "faults": [],
}


class SimConfigError(ValueError):
    """A mistake in the simulator config; the message names the key."""


def _num(key: str, val: Any, lo: float | None = None, hi: float | None = None,
         integer: bool = False, lo_open: bool = False, nullable: bool = False):
    if val is None and nullable:
        return None
    ok = isinstance(val, (int, float)) and not isinstance(val, bool) and math.isfinite(val)
    if ok and integer:
        ok = int(val) == val
    if ok and lo is not None:
        ok = val > lo if lo_open else val >= lo
    if ok and hi is not None:
        ok = val <= hi
    if not ok:
        kind = "an integer" if integer else "a number"
        rng = []
        if lo is not None:
            rng.append(f"{'>' if lo_open else '>='} {lo:g}")
        if hi is not None:
            rng.append(f"<= {hi:g}")
        raise SimConfigError(f"{key}: got {val!r}, expected {kind}{' ' + ' and '.join(rng) if rng else ''}"
                             f"{' or null' if nullable else ''}")
    return int(val) if integer else float(val)


def _str(key: str, val: Any, nullable: bool = False) -> str | None:
    if val is None and nullable:
        return None
    if not isinstance(val, str) or not val:
        raise SimConfigError(f"{key}: got {val!r}, expected a non-empty string{' or null' if nullable else ''}")
    return val


def _bool(key: str, val: Any) -> bool:
    if not isinstance(val, bool):
        raise SimConfigError(f"{key}: got {val!r}, expected true or false")
    return val


def _merge(base: dict, over: Any, prefix: str, free: tuple = ()) -> None:
    """Merge ``over`` into ``base``; keys of the ``free`` sections are judged later."""
    if not isinstance(over, dict):
        raise SimConfigError(f"{prefix or 'config'}: expected a mapping, got {over!r}")
    for key, val in over.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if prefix not in free and key not in base:
            raise SimConfigError(f"{dotted}: unknown key (allowed here: {', '.join(sorted(base))})")
        cur = base.get(key)
        if isinstance(cur, dict) and (cur or dotted in free):
            if val is not None:
                _merge(cur, val, dotted, free)
        else:
            base[key] = copy.deepcopy(val)


def _check_position(i: int, p: Any) -> dict:
    key = f"positions[{i}]"
    if not isinstance(p, dict):
        raise SimConfigError(f"{key}: expected a mapping like {{secType: OPT, right: C, strike_offset: 0, dte: 28, qty: 10}}")
    allowed = {"secType", "right", "strike_offset", "strike", "dte", "qty", "avg_price"}
    for k in p:
        if k not in allowed:
            raise SimConfigError(f"{key}.{k}: unknown key (allowed: {', '.join(sorted(allowed))})")
    sec = p.get("secType", "OPT")
    if sec not in ("STK", "OPT"):
        raise SimConfigError(f"{key}.secType: got {sec!r}, expected STK or OPT")
    out = {"secType": sec, "qty": _num(f"{key}.qty", p.get("qty"), integer=True)}
    if out["qty"] == 0:
        raise SimConfigError(f"{key}.qty: got 0, expected a non-zero integer (negative = short)")
    out["avg_price"] = _num(f"{key}.avg_price", p.get("avg_price"), lo=0, lo_open=True, nullable=True)
    if sec == "OPT":
        right = p.get("right")
        if right not in ("C", "P"):
            raise SimConfigError(f"{key}.right: got {right!r}, expected C or P")
        out["right"] = right
        if p.get("strike") is not None and p.get("strike_offset") is not None:
            raise SimConfigError(f"{key}: give strike or strike_offset, not both")
        out["strike"] = _num(f"{key}.strike", p.get("strike"), lo=0, lo_open=True, nullable=True)
        out["strike_offset"] = None if out["strike"] is not None else _num(
            f"{key}.strike_offset", p.get("strike_offset") or 0, integer=True)
        out["dte"] = _num(f"{key}.dte", p.get("dte", 28), lo=0, hi=3650, integer=True)
    return out


def validate(cfg: dict) -> dict:
    """Check every key; return the config with numbers normalised."""
    cfg["port"] = _num("port", cfg["port"], lo=0, hi=65535, integer=True)
    cfg["speed"] = _num("speed", cfg["speed"], lo=0, lo_open=True, hi=1e7)
    cfg["control_port"] = _num("control_port", cfg["control_port"], lo=0, hi=65535, integer=True)
    _str("account", cfg["account"])
    if "," in cfg["account"]:
        raise SimConfigError(f"account: got {cfg['account']!r}, expected one account id (no commas)")
    cfg["cash"] = _num("cash", cfg["cash"])
    _str("base_config", cfg["base_config"], nullable=True)
    _str("symbol", cfg["symbol"])
    cfg["stock_conid"] = _num("stock_conid", cfg["stock_conid"], lo=1, hi=999_999_999, integer=True)
    _str("primary_exchange", cfg["primary_exchange"])
    _str("long_name", cfg["long_name"])
    _bool("round_to_tick", cfg["round_to_tick"])
    c = cfg["clock"]
    c["start_day"] = _num("clock.start_day", c["start_day"], lo=0, integer=True)
    _bool("clock.skip_closed", c["skip_closed"])
    c["quote_refresh_seconds"] = _num("clock.quote_refresh_seconds", c["quote_refresh_seconds"], lo=0, hi=3600)
    c["account_refresh_seconds"] = _num("clock.account_refresh_seconds", c["account_refresh_seconds"], lo=0.05, hi=3600)
    for section in ("market", "spread"):
        if not isinstance(cfg[section], dict):
            raise SimConfigError(f"{section}: expected a mapping, got {cfg[section]!r}")
    cfg["risk_free_rate"] = _num("risk_free_rate", cfg["risk_free_rate"], lo=-0.1, hi=1, nullable=True)
    ch = cfg["chain"]
    ch["weeks"] = _num("chain.weeks", ch["weeks"], lo=1, hi=104, integer=True)
    ch["strike_range_pct"] = _num("chain.strike_range_pct", ch["strike_range_pct"], lo=0, lo_open=True, hi=95)
    if not isinstance(cfg["positions"], list):
        raise SimConfigError(f"positions: got {cfg['positions']!r}, expected a list (or [] for none)")
    cfg["positions"] = [_check_position(i, p) for i, p in enumerate(cfg["positions"])]
    cm = cfg["commissions"]
    cm["stock"]["per_share"] = _num("commissions.stock.per_share", cm["stock"]["per_share"], lo=0)
    cm["stock"]["min_per_order"] = _num("commissions.stock.min_per_order", cm["stock"]["min_per_order"], lo=0)
    cm["option"]["per_contract"] = _num("commissions.option.per_contract", cm["option"]["per_contract"], lo=0)
    cm["option"]["min_per_order"] = _num("commissions.option.min_per_order", cm["option"]["min_per_order"], lo=0)
    if not isinstance(cfg["faults"], list):
        raise SimConfigError(f"faults: got {cfg['faults']!r}, expected a list of {{at_seconds, fault, args}}")
    from ibsim.faults import validate_script      # late: faults imports this module's error
    cfg["faults"] = validate_script(cfg["faults"])
    project_config(cfg)                           # market keys are judged by the project schema
    return cfg


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SimConfigError(f"{dotted}: {part} is not a section")
    node[parts[-1]] = value


def load_sim_config(source: str | os.PathLike | dict | None = None,
                    overrides: list[str] | dict | None = None) -> dict:
    """Defaults <- file or dict <- overrides (``key=value`` strings or a dotted dict)."""
    cfg = copy.deepcopy(DEFAULTS)
    if source is not None:
        if isinstance(source, dict):
            user = copy.deepcopy(source)
        else:
            try:
                with open(source, encoding="utf-8") as fh:
                    user = yaml.load(fh, Loader=project._Loader) or {}
            except FileNotFoundError:
                raise SimConfigError(f"{source}: config file not found") from None
            except yaml.YAMLError as exc:
                raise SimConfigError(f"{source}: not valid YAML ({exc})") from None
        _merge(cfg, user, "", free=("market", "spread"))
    if overrides:
        tree: dict = {}
        items = overrides.items() if isinstance(overrides, dict) else (
            project.parse_set(s) for s in overrides)
        for key, val in items:
            _set_dotted(tree, key, val)
        _merge(cfg, tree, "", free=("market", "spread"))
    return validate(cfg)


def project_config(cfg: dict) -> dict:
    """The validated project config for the synthetic market the sim streams."""
    over: dict = {"symbol": cfg["symbol"], "market.source": "synthetic"}
    for k, v in cfg["market"].items():
        over[f"market.synthetic.{k}"] = v
    for k, v in cfg["spread"].items():
        over[f"market.spread.{k}"] = v
    if cfg["risk_free_rate"] is not None:
        over["greeks.risk_free_rate"] = cfg["risk_free_rate"]
    try:
        return project.load_config(cfg["base_config"], over)
    except project.ConfigError as exc:
        msg = str(exc).replace("market.synthetic.", "market.").replace("market.spread.", "spread.")
        raise SimConfigError(msg) from None
