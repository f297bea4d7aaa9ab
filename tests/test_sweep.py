"""Sweeps end to end: a local Ray, a real two-node cluster on this machine, resume,
failures, determinism and refused grids."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from bifrost.config import ConfigError, load_config
from bifrost.grid import expand, make_jobs, parse_grid_arg
from runners.backtest import ROOT_DIR
from runners.sweep import METRICS, run_jobs

ray = pytest.importorskip("ray")

SWEEP = [sys.executable, str(ROOT_DIR / "runners" / "sweep.py")]
SMALL = ["--set", "market.synthetic.days=2", "--set", "market.synthetic.bar_minutes=15"]
GRID = ["--grid", "gates.state.delta.threshold_hedge_shares=25,50",
        "--grid", "gates.intent.hedge.min_price_move_pct=0,0.2"]


def run(args, env=None, timeout=240):
    return subprocess.run(SWEEP + args, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def bars_csv(path: Path, bad_row: bool = False) -> Path:
    """A small Yahoo-style file; with bad_row, a negative close on line 5."""
    days = pd.bdate_range("2026-01-05", periods=40)
    close = [100 + (i % 7) - 3 + 0.1 * i for i in range(len(days))]
    if bad_row:
        close[3] = -1.0
    pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "Open": close, "High": close, "Low": close,
                  "Close": close, "Adj Close": close, "Volume": 1000}).to_csv(path, index=False)
    return path


def test_grid_parsing_and_expansion():
    assert parse_grid_arg("gates.state.delta.threshold_hedge_shares=15,25,50") == (
        "gates.state.delta.threshold_hedge_shares", [15, 25, 50])
    assert parse_grid_arg("gates.intent.hedge.cooldown_seconds=[null, 60]")[1] == [None, 60]
    combos = expand({"a.b": [1, 2]} and {"gates.state.delta.threshold_hedge_shares": [15, 25],
                                         "gates.intent.hedge.cooldown_seconds": [0, 60, 120]})
    assert len(combos) == 6
    sampled = expand({}, samples=5, ranges={"gates.state.delta.threshold_hedge_shares":
                                            {"low": 10, "high": 100, "int": True}})
    assert len(sampled) == 5 and all(10 <= c["gates.state.delta.threshold_hedge_shares"] <= 100
                                     for c in sampled)
    with pytest.raises(ConfigError, match="gates.state.delta.nope"):
        expand({"gates.state.delta.nope": [1]})


def test_invalid_values_are_refused_naming_the_key():
    base = load_config()
    with pytest.raises(ConfigError, match="gates.state.delta.epsilon_band"):
        make_jobs(base, expand({"gates.state.delta.epsilon_band": [5, 40]}), 1)


def test_cli_refuses_a_bad_grid_before_running(tmp_path):
    out = tmp_path / "s"
    proc = run(["--grid", "gates.state.delta.bogus=1,2", "--out", str(out), "--no-report"])
    assert proc.returncode == 2 and "gates.state.delta.bogus" in proc.stderr
    assert "Traceback" not in proc.stderr and not (out / "results.csv").exists()
    proc = run(["--grid", "gates.intent.hedge.cooldown_seconds=-5,60", "--out", str(out), "--no-report"])
    assert proc.returncode == 2 and "gates.intent.hedge.cooldown_seconds" in proc.stderr


def test_a_task_that_raises_becomes_an_error_row():
    cfg = load_config()
    jobs, configs = make_jobs(cfg, [{}], 1)
    rows = run_jobs(object(), [(jobs[0], configs[jobs[0].key])])    # not a market: raises
    assert rows[0]["status"] == "error" and rows[0]["error"]
    assert rows[0]["pid"] == os.getpid()


def test_local_sweep_rows_resume_and_failure(tmp_path):
    good, bad = bars_csv(tmp_path / "good.csv"), bars_csv(tmp_path / "bad.csv", bad_row=True)
    out = tmp_path / "sweep"
    args = (GRID[:2] + ["--grid", f"market.csv.path={good},{bad}", "--seeds", "2",
                        "--set", "market.source=csv", "--set", f"market.csv.path={good}",
                        "--num-cpus", "2", "--out", str(out),
                        "--no-report"])
    proc = run(args)
    assert proc.returncode == 1, proc.stderr               # one combination failed
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 2 * 2 * 2                              # 2x2 grid x 2 seeds
    for col in ["combo", "seed", "gates.state.delta.threshold_hedge_shares", "market.csv.path",
                *METRICS, "block_min_price_move", "seconds", "node", "pid", "status", "error"]:
        assert col in df.columns
    failed = df[df["status"] == "error"]
    assert len(failed) == 4 and failed["market.csv.path"].eq(str(bad)).all()
    assert failed["error"].str.contains("bad.csv").all() and failed["error"].str.contains("line 5").all()
    ok = df[df["status"] == "ok"]
    assert (ok["hedge_count"] >= 0).all() and ok["total_pnl"].notna().all()
    assert pd.read_parquet(out / "results.parquet").shape[0] == len(df)
    assert "top" in proc.stdout

    # resume: nothing done twice; the failed runs are tried again (and fail again)
    proc2 = run(args + ["--resume"])
    assert "4 runs (4 skipped as done)" in proc2.stdout
    df2 = pd.read_csv(out / "results.csv")
    assert len(df2) == 8 + 4
    assert df2[df2["status"] == "ok"]["key"].is_unique


def test_sweep_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        proc = run(GRID + SMALL + ["--seeds", "2", "--num-cpus", "2", "--out", str(out), "--no-report"])
        assert proc.returncode == 0, proc.stderr
    cols = ["key", *METRICS]
    da = pd.read_csv(a / "results.csv")[cols].sort_values("key").reset_index(drop=True)
    db = pd.read_csv(b / "results.csv")[cols].sort_values("key").reset_index(drop=True)
    pd.testing.assert_frame_equal(da, db)
    assert da["hedge_count"].nunique() > 1                     # the grid changed something


# -- a real two-node cluster on this machine ---------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) for every process we can see."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace")
                ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            out[int(entry)] = (ppid, cmd)
    return out


def _pids_using(marker: str) -> list[int]:
    """Processes whose command line names ``marker`` (our cluster's temp dir or port),
    and all their descendants (agents and workers rename themselves "ray::...")."""
    procs = _processes()
    found = {pid for pid, (_, cmd) in procs.items() if marker in cmd and pid != os.getpid()}
    grew = True
    while grew:
        kids = {pid for pid, (ppid, _) in procs.items() if ppid in found} - found
        grew = bool(kids)
        found |= kids
    return sorted(found)


@pytest.fixture
def two_node_cluster():
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")           # short: socket paths are limited
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    ray_bin = str(Path(sys.executable).with_name("ray"))
    common = ["--num-cpus=1", "--disable-usage-stats"]
    try:
        subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                        f"--temp-dir={temp}", "--include-dashboard=false", *common],
                       check=True, capture_output=True, env=env, timeout=120)
        subprocess.run([ray_bin, "start", f"--address=127.0.0.1:{port}",
                        "--node-ip-address=127.0.0.1", *common],
                       check=True, capture_output=True, env=env, timeout=120)
        # the second raylet registers asynchronously: wait until the cluster has two nodes
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = subprocess.run([ray_bin, "status", f"--address=127.0.0.1:{port}"],
                                 capture_output=True, text=True, env=env, timeout=60).stdout
            if out.count("node_") >= 2 and "2.0 CPU" in out.replace("0.0/2.0 CPU", "2.0 CPU"):
                break
            time.sleep(1)
        else:
            pytest.fail(f"second Ray node never joined:\n{out}")
        yield f"127.0.0.1:{port}", env
    finally:
        # stop only what this test started: every process that names our temp dir or
        # port, with its descendants
        targets = set()
        for marker in (temp, f"127.0.0.1:{port}"):
            targets |= set(_pids_using(marker))
        for pid in targets:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(1)
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_sweep_on_a_two_node_cluster(tmp_path, two_node_cluster):
    address, env = two_node_cluster
    out = tmp_path / "cluster"
    # backtests long enough (~0.3 s) that one worker cannot drain the queue alone
    proc = run(GRID + ["--set", "market.synthetic.days=8", "--seeds", "2", "--batch", "1",
                       "--address", address, "--out", str(out), "--no-report"], env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 8 and (df["status"] == "ok").all()
    assert df["node"].nunique() == 2, df[["node", "pid"]]   # tasks ran on both nodes


def test_wrong_cluster_token_is_one_clear_line(tmp_path, two_node_cluster):
    address, env = two_node_cluster
    proc = run(GRID[:2] + SMALL + ["--address", address, "--out", str(tmp_path / "x"), "--no-report"],
               env={**env, "RAY_AUTH_TOKEN": "not-the-cluster-token-0000000000000000"}, timeout=300)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot start or join Ray at " + address)
    assert "RAY_AUTH_TOKEN" in last and "Traceback" not in proc.stderr


def test_parquet_follows_the_csv_while_a_sweep_runs(tmp_path, monkeypatch):
    from runners import sweep

    monkeypatch.setattr(sweep.ResultWriter, "parquet_every", 0.0)
    w = sweep.ResultWriter(tmp_path, ["combo", "seed", "key", "status"])
    w.add([{"combo": 0, "seed": 1, "key": "a", "status": "ok"}])
    assert len(pd.read_parquet(tmp_path / "results.parquet")) == 1      # before close
    w.add([{"combo": 1, "seed": 1, "key": "b", "status": "ok"}])
    assert len(pd.read_parquet(tmp_path / "results.parquet")) == 2
    w.close()
