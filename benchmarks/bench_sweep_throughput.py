"""Sweep throughput: training FLOPs per wall-second of the tiny_cpu preset's runs, sequential vs concurrent.

The goal: a sweep uses the whole machine, its training FLOPs per wall-second >= 1.7x the sequential runner's on the
2-core machine. This script trains a subset of the tiny_cpu plan (default: all runs of the 1e11 and 8e11 budgets, 16
runs from tiny-00004k to tiny-00076k, 7.2e12 FLOPs: 21% of the preset's) once per mode, back to back, each mode in its
own fresh process with its own empty sweep directory and its own empty JAX compilation cache (so neither pays less
compilation than the other):

- ``sequential``: ``run_sweep(jobs=None)``, runs one after another in the process with JAX's default threads (the
  in-process runner);
- ``jobs=N``: ``run_sweep(jobs=N)``, N worker processes with one XLA thread each (``chinchilla.sweep.pool``).

FLOPs are the exact Appendix F training FLOPs the runs trained (their summaries); wall time is the whole
``run_sweep`` call (worker start-up, compilation, data, evaluation, checkpoints included); "cores busy" is the CPU
time of the process and its workers over that wall time. Usage::

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_sweep_throughput.py                 # sequential vs jobs=2
    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_sweep_throughput.py --jobs 2 3 --rounds 2 --budgets 1e11
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chinchilla import runfiles


def subset(budgets: list[float]):
    from chinchilla.preset import load_preset
    from chinchilla.sweep import Plan

    plan = load_preset("tiny_cpu").plan()
    runs = tuple(
        r
        for r in plan.runs  # IsoFLOP runs only: the training-curve runs have no budget
        if r.budget is not None and any(abs(r.budget - b) <= 1e-6 * b for b in budgets)
    )
    if not runs:
        raise ValueError(f"no run of tiny_cpu at budgets {budgets}")
    return Plan(name="tiny_cpu-subset", runs=runs)


def child(mode: str, out: str, budgets: list[float]) -> None:
    """Train the subset in this process (``mode`` "sequential" or "jobs=N") and print one JSON line."""
    from chinchilla.sweep import run_sweep

    plan = subset(budgets)
    jobs = None if mode == "sequential" else int(mode.split("=")[1])
    cpu0 = os.times()
    start = time.perf_counter()
    outcome = run_sweep(plan, out, jobs=jobs, log=None)
    wall = time.perf_counter() - start
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu += children.ru_utime + children.ru_stime  # the worker processes, reaped when the pool shut down
    if outcome.failed or len(outcome.trained) != len(plan.runs):
        raise RuntimeError(f"{mode}: {len(outcome.trained)} of {len(plan.runs)} runs trained, failed {outcome.failed}")
    summaries = {r.run_id: runfiles.read_json(Path(out) / "runs" / r.run_id / "summary.json") for r in plan.runs}
    flops = sum(s["flops"] for s in summaries.values())
    losses = {run_id: s["eval_loss"] for run_id, s in summaries.items()}
    print(
        json.dumps(
            {"mode": mode, "runs": len(plan.runs), "flops": flops, "wall_s": wall, "cpu_s": cpu, "losses": losses}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[1e11, 8e11])
    parser.add_argument("--jobs", type=int, nargs="+", default=[2], help="concurrent modes to time")
    parser.add_argument("--rounds", type=int, default=1, help="times each mode runs (alternating)")
    parser.add_argument("--save", help="write every mode's results (incl. each run's eval loss) to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.out, args.budgets)
        return
    modes = ["sequential"] + [f"jobs={n}" for n in args.jobs]
    results: dict[str, list[dict]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        for round_ in range(args.rounds):
            for mode in modes:
                base = Path(tmp) / f"{mode}-{round_}"
                env = {**os.environ, "CHINCHILLA_JAX_CACHE": str(base / "jax-cache")}
                line = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        mode,
                        "--out",
                        str(base / "sweep"),
                        "--budgets",
                        *map(str, args.budgets),
                    ],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                result = json.loads(line.strip().splitlines()[-1])
                results[mode].append(result)
                print(
                    f"round {round_ + 1} {mode:>10}: {result['runs']} runs, {result['flops']:.3g} FLOPs in "
                    f"{result['wall_s']:.1f} s = {result['flops'] / result['wall_s'] / 1e9:.2f} GFLOP/s, "
                    f"{result['cpu_s'] / result['wall_s']:.2f} cores busy",
                    flush=True,
                )
    print(f"\n{'mode':>10} {'GFLOP/s (median)':>17} {'x sequential':>13} {'cores busy':>11}")
    base_rates = [r["flops"] / r["wall_s"] for r in results["sequential"]]
    for mode in modes:
        rates = sorted(r["flops"] / r["wall_s"] for r in results[mode])
        ratios = sorted(r["flops"] / r["wall_s"] / b for r, b in zip(results[mode], base_rates))
        busy = sorted(r["cpu_s"] / r["wall_s"] for r in results[mode])
        print(
            f"{mode:>10} {rates[len(rates) // 2] / 1e9:>17.2f} {ratios[len(ratios) // 2]:>12.2f}x "
            f"{busy[len(busy) // 2]:>11.2f}"
        )
    if args.save:
        Path(args.save).write_text(
            json.dumps({"xla_flags": os.environ.get("XLA_FLAGS", ""), "results": results}, indent=1)
        )
    seq_losses = results["sequential"][0]["losses"]
    for mode in modes[1:]:
        worst = max(abs(results[mode][0]["losses"][k] - v) for k, v in seq_losses.items())
        print(f"largest eval-loss difference, {mode} vs sequential: {worst:.3g}")


if __name__ == "__main__":
    main()
