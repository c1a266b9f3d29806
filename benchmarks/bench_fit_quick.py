"""A shorter `bench_fit.py` for a loaded machine: the default (screened) fit against the scipy L-BFGS-B loop on the 240
reference points, in one process. scipy (analytic gradient, default tolerances, `bench_fit.scipy_loop`) runs on every
10th grid start and its time is scaled by 10; it runs in 5 pieces, each followed by one default fit, whose median call
(after compiling) is reported. Wall and process-CPU seconds.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_fit_quick.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.environ.get("BENCH_DIR", str(Path(__file__).parent)))

from bench_fit import scipy_loop  # noqa: E402

from chinchilla.fit import fit_table, reference_table  # noqa: E402
from chinchilla.fit.laws import paper_grid  # noqa: E402


def main() -> None:
    table = reference_table("epoch").drop_highest_loss(5)
    grid = paper_grid()
    fit_table(table)  # compile
    walls, cpus = [], []
    scipy_wall = scipy_cpu = 0.0
    for piece in np.array_split(np.arange(0, grid.shape[0], 10), 5):
        _, _, clock = scipy_loop(table, grid[piece], finite_differences=False)
        scipy_wall, scipy_cpu = scipy_wall + clock.wall, scipy_cpu + clock.cpu
        wall, cpu = time.perf_counter(), time.process_time()
        fit = fit_table(table)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    wall, cpu = float(np.median(walls)), float(np.median(cpus))
    print(
        f"load {os.getloadavg()[0]:.1f}: scipy (x10) wall {10 * scipy_wall:.2f} s cpu {10 * scipy_cpu:.2f} s; "
        f"default fit wall {wall:.3f} s cpu {cpu:.3f} s; ratio wall {10 * scipy_wall / wall:.1f}x cpu "
        f"{10 * scipy_cpu / cpu:.1f}x; objective {fit.objective:.13g} iterations "
        f"{int(fit.diagnostics.iterations.sum())}"
    )


if __name__ == "__main__":
    main()
