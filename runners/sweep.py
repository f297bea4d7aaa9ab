"""Parameter sweeps on Ray: many backtests, one row per (combination, seed).

    python runners/sweep.py [--sweep configs/sweep.yaml] [--grid KEY=v1,v2 ...] [--seeds N]
                            [--config FILE] [--set KEY=VALUE ...] [--address HOST:PORT|auto]
                            [--num-cpus N] [--out DIR] [--resume] [--metric sharpe] [--top 10]

Runs on a local Ray started here when no address is given (``--num-cpus`` limits it),
or joins a cluster with ``--address`` / ``RAY_ADDRESS``. Markets are built once and
shared through the object store; short backtests are batched into one task. Rows are
appended to ``results.csv`` as they arrive (``results.parquet`` is rewritten from it), so a
killed sweep keeps what finished and ``--resume`` skips it. Exit code 1 if any run failed.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bifrost.config import ConfigError, load_config, read_file  # noqa: E402
from bifrost.grid import expand, make_jobs, market_fingerprint, parse_grid_arg, summarize  # noqa: E402
from bifrost.guards import BLOCK_REASONS  # noqa: E402
from feeds.errors import DataError  # noqa: E402
from runners.backtest import ROOT_DIR, add_config_args  # noqa: E402

log = logging.getLogger("bifrost.sweep")

DEFAULT_SWEEP = ROOT_DIR / "configs" / "sweep.yaml"
METRICS = ("total_pnl", "option_pnl", "hedge_pnl", "costs", "hedge_count", "shares_traded",
           "sharpe", "max_drawdown", "max_drawdown_pct", "realized_vol", "implied_vol")
SWEEP_KEYS = {"grid", "random", "seeds", "metric", "top"}


# -- one batch of backtests (runs in a Ray worker, or in-process) --------------------
def run_jobs(market, jobs: list) -> list[dict]:
    """Run (job, config) pairs on one shared market; failures become error rows."""
    from runners.backtest import run_backtest

    node = _node_id()
    rows = []
    for job, cfg in jobs:
        t0 = time.perf_counter()
        c0 = time.process_time()
        row = {"combo": job.combo, "seed": job.seed, "key": job.key, **job.params}
        try:
            m = run_backtest(cfg, market=market, keep_series=False).metrics
            row.update({k: m.get(k) for k in METRICS})
            blocks = m.get("block_reasons", {})
            for reason in BLOCK_REASONS:
                row[f"block_{reason}"] = blocks.get(reason, 0)
            row["block_other"] = sum(v for r, v in blocks.items() if r not in BLOCK_REASONS)
            row.update(status="ok", error="")
        except Exception as exc:                      # record and go on with the rest
            row.update(status="error", error=f"{type(exc).__name__}: {exc}")
        row.update(seconds=round(time.perf_counter() - t0, 4),
                   cpu_seconds=round(time.process_time() - c0, 4), node=node,
                   host=socket.gethostname(), pid=os.getpid())
        rows.append(row)
    return rows


def warm_worker() -> int:
    """Import the backtest stack in a worker while the driver builds markets."""
    import runners.backtest  # noqa: F401
    return os.getpid()


def _node_id() -> str:
    try:
        import ray
        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()[:12]
    except Exception:
        pass
    return "local"


# -- results on disk -------------------------------------------------------------------
class ResultWriter:
    """Appends rows to results.csv as they arrive; results.parquet mirrors it,
    rewritten at most every ``parquet_every`` seconds and at the end."""

    parquet_every = 5.0

    def __init__(self, out: Path, columns: list[str]):
        self.path = out / "results.csv"
        self.columns = columns
        self.rows: list[dict] = []
        if self.path.exists():
            import pandas as pd
            self.rows = pd.read_csv(self.path).to_dict("records")   # typed like new rows
        new = not self.path.exists()
        self.fh = open(self.path, "a", newline="", encoding="utf-8")
        self.w = csv.DictWriter(self.fh, fieldnames=columns, extrasaction="ignore")
        if new:
            self.w.writeheader()
        self._parquet_at = time.monotonic()

    def done_keys(self) -> set[str]:
        return {r["key"] for r in self.rows if r.get("status") == "ok"}

    def add(self, rows: list[dict]) -> None:
        for r in rows:
            self.w.writerow(r)
        self.fh.flush()
        self.rows.extend(rows)
        if time.monotonic() - self._parquet_at >= self.parquet_every:
            self.write_parquet()

    def close(self) -> None:
        self.fh.close()
        self.write_parquet()

    def write_parquet(self) -> None:
        self._parquet_at = time.monotonic()
        try:
            import pandas as pd
            df = pd.read_csv(self.path)
            # an errored run that later succeeded (--resume) keeps only its last row
            df = df.drop_duplicates("key", keep="last")
            tmp = self.path.with_suffix(".parquet.tmp")
            df.to_parquet(tmp, index=False)
            os.replace(tmp, self.path.with_suffix(".parquet"))   # readers never see half a file
        except ImportError:                           # pyarrow missing: CSV only
            log.warning("pyarrow not installed: results.parquet not written")


# -- progress --------------------------------------------------------------------------
class Progress:
    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.stream = stream
        self.on = stream.isatty()

    def update(self, n: int) -> None:
        self.done += n
        if not self.on:
            return
        el = time.perf_counter() - self.t0
        eta = el / self.done * (self.total - self.done) if self.done else 0
        width = 30
        fill = int(width * self.done / max(self.total, 1))
        self.stream.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} "
                          f"{100 * self.done / max(self.total, 1):3.0f}%  elapsed {el:5.0f}s  ETA {eta:5.0f}s")
        self.stream.flush()
        if self.done >= self.total:
            self.stream.write("\n")


# -- Ray -------------------------------------------------------------------------------
def start_ray(address: str | None, num_cpus: int | None):
    try:
        import ray
    except ImportError:
        raise SystemExit("error: Ray is not installed: pip install -e '.[sweep]'") from None
    if ray.is_initialized():                          # a caller (or benchmark) started it
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    # workers import the installed package (pip install -e . on every node): no
    # runtime_env, which would start per-worker environment set-up
    kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=num_cpus, **kw)
    except Exception as exc:
        text = str(exc).strip()
        hint = ""
        if address:
            # Ray reports a refused token only in its own log lines; say what to check
            if os.environ.get("RAY_AUTH_MODE") != "token":
                hint = (". If the cluster uses token authentication (Ray 2.59+ does for "
                        "clusters started locally), set RAY_AUTH_MODE=token and its token in "
                        "RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH")
            else:
                hint = (". RAY_AUTH_MODE=token is set: check that RAY_AUTH_TOKEN (or the file in "
                        "RAY_AUTH_TOKEN_PATH, default ~/.ray/auth_token) holds the cluster's token, "
                        "and that the address is right")
        where = address or "a local Ray"
        first = text.splitlines()[0] if text else type(exc).__name__
        raise SystemExit(f"error: cannot start or join Ray at {where}: {first}{hint}") from None
    return ray


def batch_size(n_jobs: int, cpus: int, requested: int | None) -> int:
    """About 4 tasks per CPU, at most 16 backtests per task: the ~1 ms per-task
    overhead stays small and the CPUs stay busy to the end."""
    if requested:
        return requested
    return max(1, min(16, n_jobs // max(1, 4 * cpus)))


def run_sweep(base_cfg: dict, combos: list[dict], seeds: int, out: Path, address=None,
              num_cpus=None, resume=False, batch=None, local=False, progress=True) -> dict:
    """Validate, run and record a sweep; returns {rows, failed, seconds, ...}.
    ``local=True`` runs in this process without Ray (the plain-loop baseline)."""
    jobs, configs = make_jobs(base_cfg, combos, seeds)
    params = sorted({k for c in combos for k in c})
    out.mkdir(parents=True, exist_ok=True)
    columns = (["combo", "seed", "key"] + params + list(METRICS)
               + [f"block_{r}" for r in BLOCK_REASONS] + ["block_other", "seconds", "cpu_seconds", "node",
                                                          "host", "pid", "status", "error"])
    meta_path = out / "sweep.json"
    if resume and meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("params") != params:
            raise ConfigError(f"--resume: {out} holds a sweep over {old.get('params')}, not {params}")
    elif (out / "results.csv").exists() and not resume:
        raise ConfigError(f"{out / 'results.csv'} exists: use --resume to continue it or another --out")
    meta_path.write_text(json.dumps({"params": params, "seeds": seeds, "combinations": len(combos),
                                     "jobs": len(jobs)}, indent=2))
    writer = ResultWriter(out, columns)
    done = writer.done_keys() if resume else set()
    todo = [j for j in jobs if j.key not in done]
    t0 = time.perf_counter()
    bar = Progress(len(todo)) if progress else None
    failed = 0

    # markets: built once per fingerprint (seed included), shared by every job on it
    groups: dict[str, list] = {}
    for job in todo:
        groups.setdefault(market_fingerprint(configs[job.key]), []).append(job)

    from feeds.loader import load_market

    def market_for(jobs_in_group):
        try:
            return load_market(configs[jobs_in_group[0].key]), None
        except (DataError, ConfigError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    def error_rows(jobs_in_group, err):
        return [{"combo": j.combo, "seed": j.seed, "key": j.key, **j.params, "status": "error",
                 "error": err, "seconds": 0.0, "node": "driver", "host": socket.gethostname(),
                 "pid": os.getpid()} for j in jobs_in_group]

    def record(rows):
        nonlocal failed
        writer.add(rows)
        failed += sum(r["status"] != "ok" for r in rows)
        if bar:
            bar.update(len(rows))

    task_times = 0.0
    if local:
        for group in groups.values():
            market, err = market_for(group)
            if err:
                record(error_rows(group, err))
                continue
            rows = run_jobs(market, [(j, configs[j.key]) for j in group])
            task_times += sum(r["seconds"] for r in rows)
            record(rows)
    else:
        ray = start_ray(address, num_cpus)
        # SPREAD: locality would otherwise pile tasks onto the node holding the market
        remote = ray.remote(num_cpus=1, max_retries=0, scheduling_strategy="SPREAD")(run_jobs)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        warm = ray.remote(num_cpus=1, scheduling_strategy="SPREAD")(warm_worker)
        warming = [warm.remote() for _ in range(cpus)]    # overlaps imports with market builds
        size = batch_size(len(todo), cpus, batch)
        pending = []
        for group in groups.values():
            market, err = market_for(group)
            if err:
                record(error_rows(group, err))
                continue
            ref = ray.put(market)                     # one copy in the object store
            for i in range(0, len(group), size):
                chunk = [(j, configs[j.key]) for j in group[i:i + size]]
                pending.append(remote.remote(ref, chunk))
        ray.get(warming)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    rows = ray.get(ref)
                except Exception as exc:              # a worker died: its jobs are errors
                    log.error("task failed: %s", exc)
                    continue
                task_times += sum(r["seconds"] for r in rows)
                record(rows)
    writer.close()
    wall = time.perf_counter() - t0
    return {"rows": writer.rows, "failed": failed, "ran": len(todo), "skipped": len(jobs) - len(todo),
            "seconds": wall, "task_seconds": task_times, "params": params}


def load_sweep_spec(path: str | None) -> dict:
    spec = read_file(path) if path else {}
    unknown = set(spec) - SWEEP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]} (allowed: {', '.join(sorted(SWEEP_KEYS))})")
    return spec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_config_args(p)
    p.add_argument("--sweep", default=None, help=f"sweep YAML (default {DEFAULT_SWEEP.relative_to(ROOT_DIR)} when no --grid)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a swept dotted key and its values (repeatable; replaces the file's grid)")
    p.add_argument("--samples", type=int, default=None, help="random samples on top of the grid")
    p.add_argument("--seeds", type=int, default=None, help="market seeds per combination")
    p.add_argument("--address", default=None, help="Ray cluster HOST:PORT or 'auto' (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for the local Ray")
    p.add_argument("--batch", type=int, default=None, help="backtests per Ray task (default: automatic)")
    p.add_argument("--out", default=None, help="output folder (default reports/sweep-<time>)")
    p.add_argument("--resume", action="store_true", help="skip runs already in --out")
    p.add_argument("--metric", default=None, help="rank by this metric (default sharpe)")
    p.add_argument("--ascending", action="store_true", help="lower metric is better")
    p.add_argument("--top", type=int, default=None)
    p.add_argument("--no-report", action="store_true", help="do not write sweep.html")
    args = p.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        spec = load_sweep_spec(args.sweep or (None if args.grid else str(DEFAULT_SWEEP)))
        grid = dict(parse_grid_arg(g) for g in args.grid) if args.grid else dict(spec.get("grid") or {})
        rnd = spec.get("random") or {}
        samples = args.samples if args.samples is not None else int(rnd.get("samples") or 0)
        combos = expand(grid, samples, rnd.get("params") or {})
        seeds = args.seeds or int(spec.get("seeds") or 1)
        metric = args.metric or spec.get("metric") or "sharpe"
        if metric not in METRICS:
            raise ConfigError(f"--metric {metric}: expected one of {', '.join(METRICS)}")
        top = args.top or int(spec.get("top") or 10)
        base = load_config(args.config, args.sets)
        out = Path(args.out) if args.out else Path("reports") / time.strftime("sweep-%Y%m%d-%H%M%S")
        result = run_sweep(base, combos, seeds, out, address=args.address, num_cpus=args.num_cpus,
                           resume=args.resume, batch=args.batch)
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta = json.loads((out / "sweep.json").read_text())
    meta.update(metric=metric, ascending=args.ascending, top=top)
    (out / "sweep.json").write_text(json.dumps(meta, indent=2))
    table = summarize(result["rows"], result["params"], metric, top, args.ascending)
    print(f"{result['ran']} runs ({result['skipped']} skipped as done), {result['failed']} failed, "
          f"{result['seconds']:.1f} s wall, {result['task_seconds']:.1f} s in backtests")
    if len(table):
        import pandas as pd
        with pd.option_context("display.width", 200, "display.max_columns", 50):
            print(f"\ntop {top} by mean {metric} over seeds:")
            print(table.to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    if not args.no_report:
        try:
            from plots.sweep_page import write_sweep_page
            page = write_sweep_page(out, metric=metric)
            print(f"\nwrote {page}")
        except ImportError as exc:
            log.warning("no sweep page: %s", exc)
    print(f"results: {out / 'results.csv'} and {out / 'results.parquet'}")
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
