"""Sweep scaling and overhead.

    .venv/bin/python benchmarks/bench_sweep.py [--days 63] [--batch 1]

The same 16-backtest sweep (4 thresholds x 2 cooldowns x 2 seeds) three ways: a plain
loop in this process, Ray with 1 CPU, Ray with 2 CPUs. Prints wall times (Ray start
excluded, shown apart), the speedup 1 -> 2 CPUs, sum of task times / wall, per-task
overhead, and the CPU used by Ray (driver, workers and Ray's own daemons) against the
plain loop.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bifrost.config import load_config  # noqa: E402
from bifrost.grid import expand  # noqa: E402
from runners.sweep import run_sweep, start_ray  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def ray_process_cpu(exclude: int) -> float:
    """CPU seconds of every live Ray process on this machine (daemons and workers)."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == exclude:
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
            if b"ray" not in cmd:
                continue
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK
        except (OSError, IndexError):
            continue
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=63)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    base = load_config(overrides=[f"market.synthetic.days={args.days}"])
    combos = expand({"gates.state.delta.threshold_hedge_shares": [15, 25, 50, 100],
                     "gates.intent.hedge.cooldown_seconds": [0, 900]})
    tmp = Path(tempfile.mkdtemp())

    c0, t0 = time.process_time(), time.perf_counter()
    loop = run_sweep(base, combos, 2, tmp / "loop", local=True, progress=False)
    loop_wall, loop_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"plain loop        wall {loop_wall:6.2f} s  cpu {loop_cpu:6.2f} s  ({loop['ran']} backtests)")

    import ray
    walls = {}
    for cpus in (1, 2):
        t0 = time.perf_counter()
        start_ray(None, cpus)
        start = time.perf_counter() - t0
        cpu0 = ray_process_cpu(os.getpid()) + time.process_time()
        t0 = time.perf_counter()
        res = run_sweep(base, combos, 2, tmp / f"ray{cpus}", batch=args.batch, progress=False)
        wall = time.perf_counter() - t0
        cpu = ray_process_cpu(os.getpid()) + time.process_time() - cpu0
        walls[cpus] = wall
        tasks = -(-res["ran"] // args.batch)
        overhead = (wall * cpus - res["task_seconds"]) / tasks
        print(f"ray --num-cpus {cpus}  wall {wall:6.2f} s  (ray start {start:4.1f} s)  "
              f"sum task {res['task_seconds']:6.2f} s  task/wall {res['task_seconds'] / wall:4.2f}  "
              f"overhead/task {overhead * 1000:6.1f} ms  cpu {cpu:6.2f} s "
              f"({(cpu / loop_cpu - 1) * 100:+.1f}% vs loop)  failed {res['failed']}")
        ray.shutdown()
        time.sleep(2)
    print(f"speedup 1 -> 2 CPUs: {walls[1] / walls[2]:.2f}")


if __name__ == "__main__":
    main()
