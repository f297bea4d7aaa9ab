"""The whole default backtest, end to end, through the Python API and the CLI."""
import json
import math
import subprocess
import sys

import pytest

from runners.backtest import ROOT_DIR, run_backtest

REQUIRED = ["total_pnl", "option_pnl", "hedge_pnl", "costs", "hedge_count", "shares_traded",
            "sharpe", "max_drawdown", "realized_vol", "implied_vol", "block_reasons"]


@pytest.fixture(scope="module")
def default_result():
    return run_backtest()


def test_default_backtest_metrics(default_result):
    m = default_result.metrics
    for key in REQUIRED:
        assert key in m
    assert m["hedge_count"] > 10
    assert m["shares_traded"] >= m["hedge_count"] * 10      # min_hedge_shares
    assert m["costs"] > 0
    # P&L at mid plus costs is the whole P&L, to the cent
    assert m["total_pnl"] == pytest.approx(m["option_pnl"] + m["hedge_pnl"] - m["costs"], abs=1e-6)
    assert m["total_pnl"] == pytest.approx(m["end_value"] - m["start_value"], abs=1e-6)
    assert m["implied_vol"] == pytest.approx(0.35)
    assert 0.1 < m["realized_vol"] < 0.7
    assert math.isfinite(m["sharpe"]) and m["max_drawdown"] >= 0
    json.dumps(m)                                            # plain, serialisable


def test_every_bar_identity_and_hedges_flatten_delta(default_result):
    s = default_result.series
    for v, o, h, c in zip(s["value"], s["option_pnl"], s["hedge_pnl"], s["costs"]):
        assert (v - 1_000_000) == pytest.approx(o + h - c, abs=1e-6)
    for hedge in default_result.hedges:
        assert abs(hedge["net_delta_after"]) < 1.0 or hedge["shares"] in (500,)
        assert hedge["status"] == "Completed"


def test_same_seed_same_result_bit_for_bit():
    a = run_backtest(overrides=["market.synthetic.days=3"]).metrics
    b = run_backtest(overrides=["market.synthetic.days=3"]).metrics
    assert a == b


def test_cli_json_and_outputs(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(ROOT_DIR / "runners" / "backtest.py"), "--json",
                           "--out", str(out), "--set", "market.synthetic.days=3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)                        # stdout carries only the JSON
    assert metrics["hedge_count"] >= 1
    saved = json.loads((out / "result.json").read_text())
    assert saved["metrics"]["total_pnl"] == pytest.approx(metrics["total_pnl"])
    lines = (out / "hedges.csv").read_text().splitlines()
    assert lines[0].startswith("datetime,side,shares")
    assert len(lines) == metrics["hedge_count"] + 1


def test_cli_summary_table(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT_DIR / "runners" / "backtest.py"),
                           "--out", str(tmp_path), "--set", "market.synthetic.days=2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for label in ("Total P&L", "option P&L", "hedge P&L", "costs", "Hedges", "Shares traded",
                  "Sharpe", "Max drawdown", "Realised vol", "Implied vol", "Guard blocks"):
        assert label in proc.stdout


def test_cli_bad_config_is_one_clear_message(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT_DIR / "runners" / "backtest.py"),
                           "--out", str(tmp_path / "x"),
                           "--set", "gates.state.delta.epsilon_band=30"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "gates.state.delta.epsilon_band" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()                     # nothing ran, nothing written


def test_lean_broker_changes_nothing_but_speed(monkeypatch):
    import runners.backtest as rb
    from backtrader.brokers.bbroker import BackBroker

    lean = rb.run_backtest(overrides=["market.synthetic.days=5"]).metrics
    monkeypatch.setattr(rb, "LeanBackBroker", BackBroker)
    full = rb.run_backtest(overrides=["market.synthetic.days=5"]).metrics
    assert lean == full and lean["hedge_count"] > 0


def test_keeping_the_series_changes_no_metric():
    a = run_backtest(overrides=["market.synthetic.days=5"]).metrics
    b = run_backtest(overrides=["market.synthetic.days=5"], keep_series=False).metrics
    assert a == b
