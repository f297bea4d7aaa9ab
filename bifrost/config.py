"""Config schema, defaults, loading and validation.

The schema below is the one source of the defaults; ``configs/default.yaml`` mirrors it
with comments (a test keeps them equal). Loading merges a file or dict over the
defaults and validates everything; the first problem raises ``ConfigError`` naming the
dotted key, the value and what was expected. Nothing runs on a bad config.
"""
from __future__ import annotations

import copy
import math
import re
import datetime as _dt
import os
from dataclasses import dataclass
from typing import Any, Callable

import yaml


class _Loader(yaml.SafeLoader):
    """Safe YAML that keeps dates as text, so validation (not PyYAML) judges them and
    names the key: ``start: 2026-02-30`` is a config error, not a crash."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))
# YAML 1.1 reads 1e8 as text (it wants 1.0e8); users mean a number
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$"),
                              list("-+0123456789"))


class ConfigError(ValueError):
    """A user mistake in the config: the message names the key and what is expected."""


@dataclass(frozen=True)
class Key:
    default: Any
    kind: str                       # int, number, bool, str, list, date_list, enum, ...
    expect: str = ""                # words for the error message
    nullable: bool = False
    check: Callable[[Any], bool] | None = None
    choices: tuple = ()


def _pos(x):
    return x > 0


def _nonneg(x):
    return x >= 0


def _pct(x):
    return 0 <= x < 100


SCHEMA: dict = {
    "symbol": Key("NVDA", "str", "a ticker symbol"),
    "ib": {
        "host": Key("127.0.0.1", "str", "a host name"),
        "port": Key(7497, "int", "a TCP port 1-65535", check=lambda x: 0 < x < 65536),
        "client_id": Key(1, "int", "an integer >= 0", check=_nonneg),
        "connect_timeout": Key(10.0, "number", "seconds > 0", check=_pos),
        "account": Key("", "account", "an account id or empty (the only account)"),
        "order_ref": Key("bifrost-gamma", "str", "a non-empty tag for this engine's orders"),
        "timestamps": Key("receipt", "enum", choices=("receipt", "exchange")),
        "reconnect_max_seconds": Key(30.0, "number", "seconds > 0", check=_pos),
        "retry_seconds": Key(10.0, "number", "seconds > 0 between tries while TWS is down", check=_pos),
        "backfill_bar_minutes": Key(1, "int", "0 (no backfill) or an IB bar size in minutes: 1, 2, 3, 5, 10, 15, 20, 30, 60",
                                    check=lambda x: x in (0, 1, 2, 3, 5, 10, 15, 20, 30, 60)),
        "order_timeout_seconds": Key(30.0, "number", "seconds > 0 an order may work before it is cancelled, or null",
                                     nullable=True, check=_pos),
        "spare_slots": Key(4, "int", "option feeds 0-64 kept free for legs found while running",
                           check=lambda x: 0 <= x <= 64),
    },
    "greeks": {
        "risk_free_rate": Key(0.05, "number", "a rate per year, -0.1..1", check=lambda x: -0.1 <= x <= 1),
        "volatility": Key(0.35, "number", "a vol per sqrt(year) > 0, used when no IV can be solved", check=lambda x: 0 < x < 10),
    },
    "order": {
        "order_type": Key("market", "enum", choices=("market", "limit")),
    },
    "gates": {
        "strategy": {
            "structure": {
                "min_dte": Key(21, "int", "days >= 0", check=_nonneg),
                "max_dte": Key(35, "int", "days >= 0", check=_nonneg),
                "atm_band_pct": Key(0.03, "number", "a fraction of spot in (0, 1)", check=lambda x: 0 < x < 1),
                "manage": Key(True, "bool"),
                "contracts": Key(10, "int", "contracts per leg >= 1", check=lambda x: x >= 1),
                "multiplier": Key(100, "int", "shares per contract >= 1", check=lambda x: x >= 1),
            },
            "earnings": {
                "blackout_days_before": Key(3, "int", "days >= 0", check=_nonneg),
                "blackout_days_after": Key(1, "int", "days >= 0", check=_nonneg),
                "dates": Key([], "date_list", "a list of YYYY-MM-DD dates"),
            },
            "trading_hours_only": Key(True, "bool"),
        },
        "state": {
            "delta": {
                "epsilon_band": Key(10.0, "number", "shares >= 0", check=_nonneg),
                "threshold_hedge_shares": Key(25.0, "number", "shares > 0", check=_pos),
                "max_delta_limit": Key(500.0, "number", "shares > 0", check=_pos),
            },
            "market": {
                "vol_window_min": Key(5, "int", "minutes >= 1", check=lambda x: x >= 1),
                "stale_ts_threshold_ms": Key(5000, "int", "milliseconds > 0", check=_pos),
                "gap_pct": Key(1.0, "number", "percent > 0", check=_pos),
            },
            "liquidity": {
                "wide_spread_pct": Key(0.1, "number", "percent > 0", check=_pos),
                "extreme_spread_pct": Key(0.5, "number", "percent > 0", check=_pos),
            },
            "system": {
                "data_lag_threshold_ms": Key(1000, "int", "milliseconds > 0", check=_pos),
            },
            "execution": {
                "error_retry_seconds": Key(60, "number", "seconds >= 0", check=_nonneg),
            },
        },
        "intent": {
            "hedge": {
                "min_hedge_shares": Key(10, "int", "shares >= 1", check=lambda x: x >= 1),
                "cooldown_seconds": Key(60, "number", "seconds >= 0 (0 = off)", nullable=True, check=_nonneg),
                "max_hedge_shares_per_order": Key(500, "int", "shares >= 1", check=lambda x: x >= 1),
                "min_price_move_pct": Key(0.2, "number", "percent >= 0 (0/null = off)", nullable=True, check=_pct),
            },
        },
        "guard": {
            "risk": {
                "max_daily_hedge_count": Key(50, "int", "hedges >= 0 (0/null = off)", nullable=True, check=_nonneg),
                "max_position_shares": Key(2000, "int", "shares >= 0 (0/null = off)", nullable=True, check=_nonneg),
                "max_daily_loss_usd": Key(5000.0, "number", "dollars >= 0 (0/null = off)", nullable=True, check=_nonneg),
                "max_net_delta_shares": Key(None, "number", "shares > 0 or null", nullable=True, check=_pos),
                "max_spread_pct": Key(None, "number", "percent > 0 or null", nullable=True, check=_pos),
                "paper_trade": Key(True, "bool"),
            },
        },
    },
    "market": {
        "source": Key("synthetic", "enum", choices=("synthetic", "csv", "chain")),
        "synthetic": {
            "seed": Key(7, "int", "an integer >= 0", check=_nonneg),
            "spot": Key(180.0, "number", "a price > 0", check=_pos),
            "mu": Key(0.0, "number", "a drift per year", check=lambda x: -5 < x < 5),
            "sigma": Key(0.35, "number", "a realised vol per sqrt(year) >= 0", check=lambda x: 0 <= x < 5),
            "implied_vol": Key(0.35, "number", "an implied vol > 0", check=lambda x: 0 < x < 5),
            "days": Key(20, "int", "business days >= 1", check=lambda x: x >= 1),
            "start": Key("2026-01-05", "date", "a YYYY-MM-DD date"),
            "bar_minutes": Key(5, "int", "a divisor of 390 (1, 2, 3, 5, 6, 10, 13, 15, 26, 30, 39, 65, 78, 130, 195, 390)", check=lambda x: x >= 1 and 390 % x == 0),
            "strike_step": Key(5.0, "number", "dollars > 0", check=_pos),
            "earnings_dates": Key([], "date_list", "a list of YYYY-MM-DD dates"),
            "earnings_jump_pct": Key(8.0, "number", "percent >= 0 (std of the overnight jump)", check=_nonneg),
        },
        "csv": {
            "path": Key(None, "str", "a CSV file path", nullable=True),
            "implied_vol": Key(0.35, "vol_or_column", "an implied vol > 0 or a column name"),
            "strike_step": Key(5.0, "number", "dollars > 0", check=_pos),
        },
        "chain": {
            "path": Key(None, "str", "a CSV or Parquet file path", nullable=True),
            "format": Key("long", "enum", choices=("long", "cboe")),
            "underlying_path": Key(None, "str", "a CSV of underlying bars or null", nullable=True),
        },
        "spread": {
            "stock_bps": Key(1.0, "number", "basis points >= 0 (full bid/ask spread)", check=_nonneg),
            "option_pct": Key(2.0, "number", "percent of mid >= 0 (full bid/ask spread)", check=_nonneg),
            "option_min": Key(0.05, "number", "dollars >= 0 (minimum full spread)", check=_nonneg),
        },
    },
    "broker": {
        "cash": Key(1_000_000.0, "number", "dollars > 0", check=_pos),
        "stock": {
            "commission_per_share": Key(0.005, "number", "dollars >= 0", check=_nonneg),
            "min_commission": Key(1.0, "number", "dollars >= 0", check=_nonneg),
            "slippage_bps": Key(0.0, "number", "basis points >= 0", check=_nonneg),
        },
        "option": {
            "commission_per_contract": Key(0.65, "number", "dollars >= 0", check=_nonneg),
            "slippage_pct": Key(0.0, "number", "percent of price >= 0", check=_nonneg),
        },
    },
}


def defaults() -> dict:
    """The embedded default config as a plain nested dict."""
    def walk(node):
        if isinstance(node, Key):
            return copy.deepcopy(node.default)
        return {k: walk(v) for k, v in node.items()}
    return walk(SCHEMA)


def _merge(base: dict, over: dict, schema: dict, prefix: str) -> None:
    if not isinstance(over, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {over!r}")
    for key, val in over.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in schema:
            near = ", ".join(sorted(schema)) or "nothing"
            raise ConfigError(f"{dotted}: unknown key (allowed here: {near})")
        spec = schema[key]
        if isinstance(spec, dict):
            if val is None:
                continue
            _merge(base[key], val, spec, dotted)
        else:
            base[key] = val


def _typed(dotted: str, spec: Key, val: Any) -> Any:
    def bad(extra=""):
        want = spec.expect or spec.kind
        if spec.kind == "enum":
            want = "one of " + ", ".join(spec.choices)
        raise ConfigError(f"{dotted}: got {val!r}, expected {want}{extra}")

    if val is None:
        if spec.nullable or spec.default is None:
            return None
        bad()
    if spec.kind == "bool":
        if isinstance(val, bool):
            return val
        bad()
    if spec.kind == "int":
        if (isinstance(val, bool) or not isinstance(val, (int, float))
                or not math.isfinite(val) or int(val) != val):
            bad()
        val = int(val)
    elif spec.kind == "number":
        if isinstance(val, bool) or not isinstance(val, (int, float)) or val != val:
            bad()
        val = float(val)
    elif spec.kind == "str":
        if not isinstance(val, str) or not val:
            bad()
    elif spec.kind == "enum":
        if val not in spec.choices:
            bad()
    elif spec.kind == "account":
        if not isinstance(val, str):
            bad()
    elif spec.kind == "date":
        val = _as_date(dotted, val)
        return val.isoformat()
    elif spec.kind == "date_list":
        if not isinstance(val, (list, tuple)):
            bad()
        return [_as_date(f"{dotted}[{i}]", d).isoformat() for i, d in enumerate(val)]
    elif spec.kind == "vol_or_column":
        if isinstance(val, str) and val:
            return val
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0 < val < 5:
            bad()
        return float(val)
    if spec.check is not None and not spec.check(val):
        bad()
    return val


def _as_date(dotted: str, val: Any) -> _dt.date:
    if isinstance(val, _dt.datetime):
        return val.date()
    if isinstance(val, _dt.date):
        return val
    try:
        return _dt.date.fromisoformat(str(val))
    except ValueError:
        raise ConfigError(f"{dotted}: got {val!r}, expected a YYYY-MM-DD date") from None


def _validate(cfg: dict, schema: dict, prefix: str) -> None:
    for key, spec in schema.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(spec, dict):
            _validate(cfg[key], spec, dotted)
        else:
            cfg[key] = _typed(dotted, spec, cfg[key])


def _cross_checks(cfg: dict) -> None:
    st = cfg["gates"]["strategy"]["structure"]
    if st["min_dte"] > st["max_dte"]:
        raise ConfigError(f"gates.strategy.structure.min_dte: got {st['min_dte']}, expected <= max_dte ({st['max_dte']})")
    d = cfg["gates"]["state"]["delta"]
    if d["epsilon_band"] > d["threshold_hedge_shares"]:
        raise ConfigError(f"gates.state.delta.epsilon_band: got {d['epsilon_band']:g}, expected <= threshold_hedge_shares ({d['threshold_hedge_shares']:g})")
    if d["threshold_hedge_shares"] > d["max_delta_limit"]:
        raise ConfigError(f"gates.state.delta.threshold_hedge_shares: got {d['threshold_hedge_shares']:g}, expected <= max_delta_limit ({d['max_delta_limit']:g})")
    liq = cfg["gates"]["state"]["liquidity"]
    if liq["wide_spread_pct"] > liq["extreme_spread_pct"]:
        raise ConfigError(f"gates.state.liquidity.wide_spread_pct: got {liq['wide_spread_pct']:g}, expected <= extreme_spread_pct ({liq['extreme_spread_pct']:g})")
    h = cfg["gates"]["intent"]["hedge"]
    if h["min_hedge_shares"] > h["max_hedge_shares_per_order"]:
        raise ConfigError(f"gates.intent.hedge.min_hedge_shares: got {h['min_hedge_shares']}, expected <= max_hedge_shares_per_order ({h['max_hedge_shares_per_order']})")
    m = cfg["market"]
    if m["source"] == "csv" and not m["csv"]["path"]:
        raise ConfigError("market.csv.path: got null, expected a CSV file path when market.source is csv")
    if m["source"] == "chain" and not m["chain"]["path"]:
        raise ConfigError("market.chain.path: got null, expected a file path when market.source is chain")


def parse_set(item: str) -> tuple[str, Any]:
    """``dotted.key=value`` with a YAML-typed value (``--set``)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected dotted.key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def set_dotted(tree: dict, dotted: str, value: Any) -> None:
    """Put ``value`` at ``dotted`` in a nested override dict (creating levels)."""
    parts = dotted.split(".")
    node, schema = tree, SCHEMA
    for i, part in enumerate(parts):
        if not isinstance(schema, dict) or part not in schema:
            raise ConfigError(f"{'.'.join(parts[:i + 1])}: unknown key")
        schema = schema[part]
        if i == len(parts) - 1:
            if isinstance(schema, dict):
                raise ConfigError(f"{dotted}: is a section, expected a leaf key")
            node[part] = value
        else:
            node = node.setdefault(part, {})


def read_file(path: str | os.PathLike) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_Loader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return data or {}


def load_config(source: str | os.PathLike | dict | None = None,
                overrides: list[str] | dict | None = None) -> dict:
    """Defaults <- file or dict <- overrides (``--set`` strings or a dict), validated."""
    cfg = defaults()
    if source is not None:
        user = read_file(source) if not isinstance(source, dict) else copy.deepcopy(source)
        _merge(cfg, user, SCHEMA, "")
    if overrides:
        tree: dict = {}
        if isinstance(overrides, dict):
            for k, v in overrides.items():
                set_dotted(tree, k, v)
        else:
            for item in overrides:
                set_dotted(tree, *parse_set(item))
        _merge(cfg, tree, SCHEMA, "")
    _validate(cfg, SCHEMA, "")
    _cross_checks(cfg)
    return cfg


def get_dotted(cfg: dict, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node
