"""Parameter grids for sweeps: parse, expand, validate, key and summarise. Pure."""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import random
from dataclasses import dataclass

import yaml

from bifrost.config import ConfigError, SCHEMA, load_config, parse_set

SEED_KEY = "market.synthetic.seed"


@dataclass(frozen=True)
class Job:
    combo: int                  # combination number (same for all its seeds)
    seed: int
    params: dict                # dotted key -> value for this combination
    key: str                    # stable id of (params, seed) for --resume


def parse_grid_arg(item: str) -> tuple[str, list]:
    """``KEY=v1,v2,...`` (YAML-typed values; ``KEY=[v1, v2]`` works too)."""
    key, raw = parse_set(item)
    if isinstance(raw, list):
        return key, raw
    if isinstance(raw, str) and "," in raw:
        return key, [yaml.safe_load(v) if v.strip() else None for v in raw.split(",")]
    return key, [raw]


def _leaf(key: str):
    node = SCHEMA
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"{key}: unknown key in the sweep grid")
        node = node[part]
    if isinstance(node, dict):
        raise ConfigError(f"{key}: is a section, expected a leaf key in the sweep grid")


def expand(grid: dict, samples: int = 0, ranges: dict | None = None, rng_seed: int = 0) -> list[dict]:
    """The grid's combinations (in key order), then ``samples`` random draws."""
    for key in list(grid) + list(ranges or {}):
        _leaf(key)
    keys = list(grid)
    combos = [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))] if keys else []
    if samples:
        rng = random.Random(rng_seed)
        for _ in range(samples):
            draw = {}
            for key, spec in (ranges or {}).items():
                if isinstance(spec, list):
                    draw[key] = rng.choice(spec)
                else:
                    lo, hi = spec["low"], spec["high"]
                    v = rng.uniform(lo, hi)
                    draw[key] = int(round(v)) if spec.get("int") else v
            combos.append(draw)
    return combos or [{}]


def job_key(params: dict, seed: int) -> str:
    blob = json.dumps({"p": params, "s": seed}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def make_jobs(base: dict, combos: list[dict], seeds: int) -> tuple[list[Job], dict]:
    """Validate every combination on top of ``base`` (a validated config) before
    anything runs; returns the jobs and each job key's full config."""
    jobs, configs = [], {}
    base_seed = base["market"]["synthetic"]["seed"]
    for i, params in enumerate(combos):
        for k in range(seeds):
            seed = params.get(SEED_KEY, base_seed) + k
            try:
                cfg = load_config(copy.deepcopy(base), {**params, SEED_KEY: seed})
            except ConfigError as exc:
                shown = ", ".join(f"{k2}={v!r}" for k2, v in params.items())
                raise ConfigError(f"sweep combination {shown}: {exc}") from None
            key = job_key(params, seed)
            jobs.append(Job(combo=i, seed=seed, params=params, key=key))
            configs[key] = cfg
    return jobs, configs


def market_fingerprint(cfg: dict) -> str:
    """Everything a market is built from: jobs with equal prints share one market."""
    parts = {"market": cfg["market"], "structure": cfg["gates"]["strategy"]["structure"],
             "greeks": cfg["greeks"], "symbol": cfg["symbol"]}
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def summarize(rows, params: list[str], metric: str, top: int, ascending: bool = False):
    """Per combination: mean and std over seeds of the metric and of total P&L;
    the top N by the mean metric (pandas DataFrame)."""
    import pandas as pd

    df = pd.DataFrame(rows)
    ok = df[df["status"] == "ok"].copy()
    if ok.empty:
        return ok
    for col in (metric, "total_pnl", "hedge_count"):
        ok[col] = pd.to_numeric(ok[col], errors="coerce")
    by = ["combo"] + [p for p in params if p in ok.columns and p != SEED_KEY]
    agg = ok.groupby(by, dropna=False).agg(
        seeds=("seed", "count"),
        metric_mean=(metric, "mean"), metric_std=(metric, "std"),
        pnl_mean=("total_pnl", "mean"), pnl_std=("total_pnl", "std"),
        hedges_mean=("hedge_count", "mean")).reset_index()
    agg = agg.rename(columns={"metric_mean": f"{metric}_mean", "metric_std": f"{metric}_std"})
    return agg.sort_values(f"{metric}_mean", ascending=ascending, na_position="last").head(top)
