"""Config: defaults, the shipped YAML, validation messages and ``--set`` parsing."""
import copy
import datetime as dt
from pathlib import Path

import pytest
import yaml

from bifrost import config
from bifrost.config import ConfigError, defaults, get_dotted, load_config, parse_set, set_dotted

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_YAML = ROOT / "configs" / "default.yaml"


def _same_types(a, b, path="") -> list:
    """Paths where two nested dicts differ in keys, value or type."""
    if isinstance(a, dict) and isinstance(b, dict):
        diffs = [f"{path}.{k}: missing on one side" for k in a.keys() ^ b.keys()]
        for k in a.keys() & b.keys():
            diffs += _same_types(a[k], b[k], f"{path}.{k}")
        return diffs
    if type(a) is not type(b) or a != b:
        return [f"{path}: {a!r} != {b!r}"]
    return []


def _leaves(node, prefix=""):
    for k, v in node.items():
        dotted = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            yield from _leaves(v, dotted)
        else:
            yield dotted, v


# -- defaults and the shipped file ---------------------------------------------------------
def test_defaults_load_and_validate():
    cfg = load_config()
    assert cfg == defaults()
    assert cfg["symbol"] == "NVDA"
    assert cfg["gates"]["state"]["delta"] == {"epsilon_band": 10.0, "threshold_hedge_shares": 25.0,
                                              "max_delta_limit": 500.0}
    assert cfg["gates"]["intent"]["hedge"]["cooldown_seconds"] == 60
    assert cfg["gates"]["guard"]["risk"]["max_net_delta_shares"] is None
    assert cfg["gates"]["strategy"]["earnings"]["dates"] == []


def test_reference_defaults():
    cfg = defaults()
    g = cfg["gates"]
    assert g["strategy"]["structure"]["min_dte"] == 21
    assert g["strategy"]["structure"]["max_dte"] == 35
    assert g["strategy"]["structure"]["atm_band_pct"] == 0.03
    assert g["strategy"]["trading_hours_only"] is True
    assert g["strategy"]["earnings"]["blackout_days_before"] == 3
    assert g["strategy"]["earnings"]["blackout_days_after"] == 1
    assert g["state"]["market"]["stale_ts_threshold_ms"] == 5000
    assert g["state"]["liquidity"] == {"wide_spread_pct": 0.1, "extreme_spread_pct": 0.5}
    assert g["state"]["system"]["data_lag_threshold_ms"] == 1000
    assert g["intent"]["hedge"]["min_hedge_shares"] == 10
    assert g["intent"]["hedge"]["max_hedge_shares_per_order"] == 500
    assert g["intent"]["hedge"]["min_price_move_pct"] == 0.2
    risk = g["guard"]["risk"]
    assert (risk["max_daily_hedge_count"], risk["max_position_shares"], risk["max_daily_loss_usd"]) \
        == (50, 2000, 5000.0)
    assert risk["max_spread_pct"] is None and risk["paper_trade"] is True
    assert cfg["greeks"] == {"risk_free_rate": 0.05, "volatility": 0.35}


def test_defaults_are_fresh_copies():
    a = defaults()
    a["gates"]["strategy"]["earnings"]["dates"].append("2026-01-01")
    assert defaults()["gates"]["strategy"]["earnings"]["dates"] == []


def test_default_yaml_mirrors_the_schema_exactly():
    raw = config.read_file(DEFAULT_YAML)
    assert _same_types(raw, defaults()) == []


def test_default_yaml_loads_to_the_defaults():
    assert load_config(DEFAULT_YAML) == defaults()
    assert _same_types(load_config(DEFAULT_YAML), load_config()) == []


# -- merging ----------------------------------------------------------------------------
def test_partial_file_merges_over_defaults(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("gates:\n  intent:\n    hedge:\n      cooldown_seconds: 120\nsymbol: AMD\n")
    cfg = load_config(p)
    assert cfg["gates"]["intent"]["hedge"]["cooldown_seconds"] == 120
    assert cfg["symbol"] == "AMD"
    expected = defaults()
    expected["gates"]["intent"]["hedge"]["cooldown_seconds"] = 120
    expected["symbol"] = "AMD"
    assert cfg == expected


def test_empty_file_is_the_defaults(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("# nothing\n")
    assert load_config(p) == defaults()


def test_dict_source_is_not_mutated():
    src = {"gates": {"intent": {"hedge": {"cooldown_seconds": 5}}}}
    before = copy.deepcopy(src)
    assert load_config(src)["gates"]["intent"]["hedge"]["cooldown_seconds"] == 5
    assert src == before


def test_overrides_win_over_the_file(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("gates:\n  intent:\n    hedge:\n      cooldown_seconds: 120\n")
    cfg = load_config(p, ["gates.intent.hedge.cooldown_seconds=30"])
    assert cfg["gates"]["intent"]["hedge"]["cooldown_seconds"] == 30
    cfg = load_config(p, {"gates.intent.hedge.cooldown_seconds": None})
    assert cfg["gates"]["intent"]["hedge"]["cooldown_seconds"] is None


def test_dates_are_normalised_to_iso_strings():
    cfg = load_config({"gates": {"strategy": {"earnings": {"dates": [dt.date(2026, 2, 25), "2026-05-20"]}}}})
    assert cfg["gates"]["strategy"]["earnings"]["dates"] == ["2026-02-25", "2026-05-20"]
    cfg = load_config(overrides=["gates.strategy.earnings.dates=[2026-02-25]"])
    assert cfg["gates"]["strategy"]["earnings"]["dates"] == ["2026-02-25"]


def test_get_dotted():
    cfg = load_config()
    assert get_dotted(cfg, "gates.state.delta.max_delta_limit") == 500.0
    assert get_dotted(cfg, "symbol") == "NVDA"


# -- every problem is a ConfigError naming the key and the value ------------------------------
BAD = [
    # (overrides as a dict of dotted key -> value, key the message names, value text it shows)
    ({"gates.intent.hedge.cooldown_seconds": -1}, "gates.intent.hedge.cooldown_seconds", "-1"),
    ({"gates.intent.hedge.cooldown_seconds": "soon"}, "gates.intent.hedge.cooldown_seconds", "soon"),
    ({"gates.state.delta.epsilon_band": 30}, "gates.state.delta.epsilon_band", "30"),
    ({"gates.state.delta.threshold_hedge_shares": 600}, "gates.state.delta.threshold_hedge_shares", "600"),
    ({"gates.state.delta.threshold_hedge_shares": 0}, "gates.state.delta.threshold_hedge_shares", "0"),
    ({"gates.strategy.structure.min_dte": 40}, "gates.strategy.structure.min_dte", "40"),
    ({"gates.strategy.structure.min_dte": 21.5}, "gates.strategy.structure.min_dte", "21.5"),
    ({"gates.strategy.structure.min_dte": True}, "gates.strategy.structure.min_dte", "True"),
    ({"gates.strategy.structure.min_dte": -1}, "gates.strategy.structure.min_dte", "-1"),
    ({"gates.strategy.structure.atm_band_pct": 3}, "gates.strategy.structure.atm_band_pct", "3"),
    ({"gates.strategy.trading_hours_only": "yes please"}, "gates.strategy.trading_hours_only", "yes please"),
    ({"gates.strategy.trading_hours_only": 1}, "gates.strategy.trading_hours_only", "1"),
    ({"gates.state.liquidity.wide_spread_pct": 0.8}, "gates.state.liquidity.wide_spread_pct", "0.8"),
    ({"gates.intent.hedge.min_hedge_shares": 600}, "gates.intent.hedge.min_hedge_shares", "600"),
    ({"gates.intent.hedge.min_price_move_pct": 150}, "gates.intent.hedge.min_price_move_pct", "150"),
    ({"gates.guard.risk.max_position_shares": -5}, "gates.guard.risk.max_position_shares", "-5"),
    ({"gates.guard.risk.max_daily_loss_usd": -1.0}, "gates.guard.risk.max_daily_loss_usd", "-1.0"),
    ({"gates.guard.risk.max_net_delta_shares": 0}, "gates.guard.risk.max_net_delta_shares", "0"),
    ({"gates.state.execution.error_retry_seconds": -3}, "gates.state.execution.error_retry_seconds", "-3"),
    ({"market.synthetic.bar_minutes": 7}, "market.synthetic.bar_minutes", "7"),
    ({"market.synthetic.bar_minutes": 0}, "market.synthetic.bar_minutes", "0"),
    ({"market.synthetic.start": "2026-02-30"}, "market.synthetic.start", "2026-02-30"),
    ({"market.synthetic.start": "next monday"}, "market.synthetic.start", "next monday"),
    ({"market.synthetic.start": 5}, "market.synthetic.start", "5"),
    ({"gates.strategy.earnings.dates": ["2026-02-25", "2026-13-01"]},
     "gates.strategy.earnings.dates[1]", "2026-13-01"),
    ({"gates.strategy.earnings.dates": "2026-02-25"}, "gates.strategy.earnings.dates", "2026-02-25"),
    ({"order.order_type": "stop"}, "order.order_type", "stop"),
    ({"symbol": ""}, "symbol", "''"),
    ({"symbol": None}, "symbol", "None"),
    ({"symbol": 42}, "symbol", "42"),
    ({"ib.port": 70000}, "ib.port", "70000"),
    ({"greeks.volatility": 0}, "greeks.volatility", "0"),
    ({"greeks.volatility": float("nan")}, "greeks.volatility", "nan"),
    ({"broker.cash": 0}, "broker.cash", "0"),
    ({"market.source": "csv"}, "market.csv.path", "null"),
]


@pytest.mark.parametrize("over, key, shown", BAD, ids=[f"{k}={v!r}" for o, k, v in BAD])
def test_bad_values_raise_config_error_naming_key_and_value(over, key, shown):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=over)
    msg = str(info.value)
    assert msg.startswith(key + ":"), msg
    assert shown in msg, msg


@pytest.mark.parametrize("over, key, shown", BAD[:8], ids=[k for _, k, _ in BAD[:8]])
def test_bad_values_in_a_file_too(tmp_path, over, key, shown):
    (dotted, value), = over.items()
    tree = {}
    set_dotted(tree, dotted, value)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(tree))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(p)


@pytest.mark.parametrize("item, key", [
    ("gates.strategy.structure.min_dte=.inf", "gates.strategy.structure.min_dte"),
    ("gates.strategy.structure.min_dte=.nan", "gates.strategy.structure.min_dte"),
])
def test_non_finite_int_is_a_config_error(item, key):
    with pytest.raises(ConfigError, match=key):
        load_config(overrides=[item])


@pytest.mark.parametrize("item, key", [
    ("market.synthetic.start=2026-02-30", "market.synthetic.start"),
    ("market.synthetic.start=2026-13-01", "market.synthetic.start"),
    ("gates.strategy.earnings.dates=[2026-02-30]", "gates.strategy.earnings.dates"),
])
def test_impossible_date_on_the_command_line_is_a_config_error(item, key):
    with pytest.raises(ConfigError, match=key):
        load_config(overrides=[item])


def test_impossible_date_in_a_file_is_a_config_error(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("market:\n  synthetic:\n    start: 2026-02-30\n")
    with pytest.raises(ConfigError, match="market.synthetic.start"):
        load_config(p)


def test_section_given_a_scalar(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("gates:\n  state: 5\n")
    with pytest.raises(ConfigError, match=r"^gates\.state: expected a mapping, got 5"):
        load_config(p)


def test_unknown_key_in_a_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("gates:\n  intent:\n    hedge:\n      cooldown_secs: 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    msg = str(info.value)
    assert msg.startswith("gates.intent.hedge.cooldown_secs: unknown key")
    assert "cooldown_seconds" in msg                       # says what is allowed there


def test_unknown_top_level_key_in_a_dict():
    with pytest.raises(ConfigError, match=r"^colour: unknown key"):
        load_config({"colour": "blue"})


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("gates: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


# -- --set -------------------------------------------------------------------------------------
@pytest.mark.parametrize("item, expected", [
    ("a.b=null", ("a.b", None)),
    ("a.b=~", ("a.b", None)),
    ("a.b=", ("a.b", None)),
    ("a.b=5", ("a.b", 5)),
    ("a.b=-5", ("a.b", -5)),
    ("a.b=2.5", ("a.b", 2.5)),
    ("a.b=1e3", ("a.b", 1000.0)),           # a number, though YAML 1.1 alone would say text
    ("a.b=1.0e+3", ("a.b", 1000.0)),
    ("a.b=true", ("a.b", True)),
    ("a.b=false", ("a.b", False)),
    ("a.b=NVDA", ("a.b", "NVDA")),
    ("a.b='123'", ("a.b", "123")),
    ("a.b=[1, 2.5, x]", ("a.b", [1, 2.5, "x"])),
    ("a.b=[]", ("a.b", [])),
    ("a.b=[2026-02-25]", ("a.b", ["2026-02-25"])),   # dates stay text until validated
    ("a.b=x=y", ("a.b", "x=y")),           # only the first = splits
    (" a.b =7", ("a.b", 7)),
    ("a.b=[unclosed", ("a.b", "[unclosed")),   # not YAML: kept as the raw string
])
def test_parse_set_yaml_typing(item, expected):
    assert parse_set(item) == expected


def test_parse_set_needs_an_equals_sign():
    with pytest.raises(ConfigError, match="gates.x"):
        parse_set("gates.x")


@pytest.mark.parametrize("items, key, value", [
    (["gates.intent.hedge.cooldown_seconds=null"], "gates.intent.hedge.cooldown_seconds", None),
    (["gates.intent.hedge.cooldown_seconds=0"], "gates.intent.hedge.cooldown_seconds", 0.0),
    (["gates.intent.hedge.cooldown_seconds=90"], "gates.intent.hedge.cooldown_seconds", 90.0),
    (["gates.guard.risk.max_spread_pct=0.3"], "gates.guard.risk.max_spread_pct", 0.3),
    (["gates.strategy.trading_hours_only=false"], "gates.strategy.trading_hours_only", False),
    (["symbol=AMD"], "symbol", "AMD"),
    (["market.synthetic.bar_minutes=15", "market.synthetic.days=2"], "market.synthetic.bar_minutes", 15),
    (["gates.state.delta.epsilon_band=5", "gates.state.delta.epsilon_band=8"],
     "gates.state.delta.epsilon_band", 8.0),                                   # last one wins
    (["market.csv.implied_vol=iv_col"], "market.csv.implied_vol", "iv_col"),
])
def test_set_overrides(items, key, value):
    cfg = load_config(overrides=items)
    got = get_dotted(cfg, key)
    assert got == value and type(got) is type(value)


def test_set_dates_list():
    cfg = load_config(overrides=["gates.strategy.earnings.dates=[2026-02-25, 2026-05-20]"])
    assert cfg["gates"]["strategy"]["earnings"]["dates"] == ["2026-02-25", "2026-05-20"]


@pytest.mark.parametrize("item, named", [
    ("gates.intent.hedge.cooldown=5", "gates.intent.hedge.cooldown"),
    ("gatez.intent.hedge.cooldown_seconds=5", "gatez"),
    ("gates.intnet.hedge.cooldown_seconds=5", "gates.intnet"),
    ("symbol.name=NVDA", "symbol.name"),
    ("gates.state.delta=5", "gates.state.delta"),                 # a section, not a leaf
])
def test_set_unknown_key_names_it(item, named):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[item])
    assert str(info.value).startswith(named + ":"), str(info.value)


def test_set_unknown_key_in_a_dict_of_overrides():
    with pytest.raises(ConfigError, match=r"^gates\.intent\.hedge\.cooldown: unknown key"):
        load_config(overrides={"gates.intent.hedge.cooldown": 5})


def test_set_bad_value_names_key_and_value():
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["market.synthetic.bar_minutes=7"])
    assert "market.synthetic.bar_minutes" in str(info.value) and "7" in str(info.value)


def test_every_leaf_can_be_set_to_its_own_default():
    """The override path accepts every key of the schema."""
    items = []
    base = defaults()
    for dotted, value in _leaves(base):
        if isinstance(value, str):
            items.append(f"{dotted}='{value}'")
        elif value is None:
            items.append(f"{dotted}=null")
        else:
            items.append(f"{dotted}={value!r}".replace("True", "true").replace("False", "false"))
    assert load_config(overrides=items) == load_config()


def test_scientific_notation_without_a_dot_is_a_number():
    cfg = load_config(overrides=["gates.state.delta.max_delta_limit=1e9",
                                 "gates.state.delta.threshold_hedge_shares=2E2"])
    assert cfg["gates"]["state"]["delta"]["max_delta_limit"] == 1e9
    assert cfg["gates"]["state"]["delta"]["threshold_hedge_shares"] == 200.0
