"""Approach 3 fitter: a scipy L-BFGS-B loop against the jitted fitter, side by side in one process.

On the 240 reference points (245 minus the 5 highest-loss, D = C / 6N), float64, summed Huber loss (delta 1e-3):

  1. scipy: ``scipy.optimize.minimize(method="L-BFGS-B")`` with an analytic numpy gradient (written here, independent
     of the package), default tolerances, from each of the 4,500 grid starts: the replication's procedure.
  2. ``fit_table(table)``: the default, screened fit (L-BFGS from the 128 best-ranked starts of the grid);
     ``fit_table(table, top_k=None)``: every start. The scipy loop runs in ``--chunks`` pieces with one call of each
     jitted fit after each piece, so both see the same machine load; the median call is reported, and compile
     time (first call minus the median call) separately.
  3. Screening check: screened vs full-grid best objective on the reference data and on synthetic data sets.
  4. Bootstrap: 4,000 resamples (warm start + 2 grid starts each), compiled ahead of time so compile and run are
     timed apart; then, on a sample of resamples, the bootstrap optimum against fresh grid fits of the same weights
     (screened and full grid).

Prints markdown. Ratios inside this process are the result; the machine (2 cores) is shared, so absolute times are
noisy and the load average is printed. Wall and process-CPU seconds are both given.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_fit.py [--resamples 4000] [--finite-differences]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import scipy_reference_fits  # beside this file (benchmarks/ is on sys.path when run as a script)


class Clock:
    """Wall and process-CPU seconds of a block (CPU time is what other jobs on a shared machine disturb least)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def scipy_loop(table, grid: np.ndarray, finite_differences: bool) -> tuple[float, np.ndarray, Clock]:
    """Best objective, its parameters, and the clock, for L-BFGS-B from every grid start."""
    from scipy.optimize import minimize

    log_n, log_d, log_l = np.log(table.n), np.log(table.d), np.log(table.loss)

    def value_and_grad(theta):  # the independent numpy objective and gradient, shared with the reference fits
        return scipy_reference_fits.value_and_grad(theta, log_n, log_d, log_l)

    best = (np.inf, None)
    with Clock() as clock:
        for x0 in grid:
            if finite_differences:
                result = minimize(lambda t: value_and_grad(t)[0], x0, method="L-BFGS-B")
            else:
                result = minimize(value_and_grad, x0, jac=True, method="L-BFGS-B")
            if result.fun < best[0]:
                best = (float(result.fun), result.x)
    return best[0], best[1], clock


def interleaved(table, grid: np.ndarray, chunks: int):
    """Time the scipy loop in ``chunks`` pieces and, after each piece, one screened and one full-grid jitted fit,
    so all three see the same (shared, varying) machine load. Returns the fits, their first-call wall times and
    the clocks: scipy summed over pieces, the jitted fits as the call with the median wall time."""
    from chinchilla.fit import fit_table

    first = {}
    for name, kwargs in (("screened", {}), ("full", {"top_k": None})):
        with Clock() as clock:
            fit_table(table, **kwargs)
        first[name] = clock.wall
    scipy_best, scipy_theta = np.inf, None
    scipy_clock = Clock()
    scipy_clock.wall = scipy_clock.cpu = 0.0
    runs = {"screened": [], "full": []}
    fits = {}
    for piece in np.array_split(np.arange(grid.shape[0]), chunks):
        best, theta, clock = scipy_loop(table, grid[piece], finite_differences=False)
        scipy_clock.wall += clock.wall
        scipy_clock.cpu += clock.cpu
        if best < scipy_best:
            scipy_best, scipy_theta = best, theta
        for name, kwargs in (("screened", {}), ("full", {"top_k": None})):
            with Clock() as clock:
                fits[name] = fit_table(table, **kwargs)
            runs[name].append(clock)
    median = {name: sorted(clocks, key=lambda c: c.wall)[len(clocks) // 2] for name, clocks in runs.items()}
    return scipy_best, scipy_theta, scipy_clock, fits, first, median


def synthetic(seed: int):
    from chinchilla.fit import CHINCHILLA, ScalingTable

    truth = CHINCHILLA.natural(CHINCHILLA.raw(E=1.69337, A=406.401, B=410.723, alpha=0.33917084, beta=0.2849083))
    n, d = np.meshgrid(np.geomspace(5e7, 2e10, 12), np.geomspace(1e9, 5e11, 20), indexing="ij")
    n, d = n.ravel(), d.ravel()
    loss = truth["E"] + truth["A"] / n ** truth["alpha"] + truth["B"] / d ** truth["beta"]
    return ScalingTable.from_arrays(n, loss * np.exp(0.005 * np.random.default_rng(seed).standard_normal(n.size)), d=d)


def bootstrap_timing(table, fit, n_resamples: int, seed: int):
    """AOT-compile and run the vectorised bootstrap core; returns (state, weights, compile s, run clock)."""
    import jax
    import jax.numpy as jnp

    from chinchilla.fit.bootstrap import DEFAULT_GRID_STARTS, _bootstrap_core_jit, bootstrap_weights
    from chinchilla.fit.parametric import pad_runs
    from chinchilla.fit.solver import SolverConfig, resolve_strategy

    weights = bootstrap_weights(len(table), n_resamples, seed=seed)
    ranked = np.argsort(fit.diagnostics.initial_objective, kind="stable")[:DEFAULT_GRID_STARTS]
    starts = np.concatenate([fit.theta[None, :], fit.diagnostics.initial_params[ranked]], axis=0)
    covariates, loss, padded_weights = pad_runs({"n": table.n, "d": table.d}, table.loss, weights)
    with jax.enable_x64(True):
        args = (
            jnp.asarray(starts),
            {k: jnp.asarray(v) for k, v in covariates.items()},
            jnp.asarray(loss),
            jnp.asarray(padded_weights),
        )
        static = {"config": SolverConfig(), "strategy": resolve_strategy("auto")}
        start = time.perf_counter()
        compiled = _bootstrap_core_jit.lower(*args, **static).compile()
        compile_s = time.perf_counter() - start
        with Clock() as run:
            state = jax.device_get(compiled(*args))
    return state, weights, compile_s, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resamples", type=int, default=4000)
    parser.add_argument(
        "--chunks",
        type=int,
        default=5,
        help="the scipy loop is timed in this many pieces, each followed by one call of each jitted "
        "fit (the median call is reported)",
    )
    parser.add_argument(
        "--check-resamples",
        type=int,
        default=20,
        help="resamples compared with a screened grid fit (the first 4 also with the full grid)",
    )
    parser.add_argument(
        "--finite-differences",
        action="store_true",
        help="also time scipy with finite-difference gradients (the replication's call; ~3 min)",
    )
    args = parser.parse_args()

    import jax

    from chinchilla.fit import fit_table, reference_table
    from chinchilla.fit.laws import paper_grid

    table = reference_table("epoch").drop_highest_loss(5)
    grid = paper_grid()
    load = os.getloadavg()
    print("## Approach 3 fitter (`benchmarks/bench_fit.py`)\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} backend "
        f"{jax.default_backend()}; load average at start {load[0]:.1f}. 240 points x 4,500 starts, float64.\n"
    )

    scipy_best, scipy_theta, scipy_clock, fits, first, median = interleaved(table, grid, args.chunks)
    screened, full = fits["screened"], fits["full"]
    rows = [("scipy L-BFGS-B loop, analytic gradient", scipy_clock, None, scipy_best)]
    if args.finite_differences:
        fd_best, _, fd_clock = scipy_loop(table, grid, finite_differences=True)
        rows.append(("scipy L-BFGS-B loop, finite differences", fd_clock, None, fd_best))
    rows += [
        (
            "jitted, screened (default: 128 best-ranked starts)",
            median["screened"],
            first["screened"] - median["screened"].wall,
            screened.objective,
        ),
        (
            "jitted, full grid (`top_k=None`, 4,500 starts)",
            median["full"],
            first["full"] - median["full"].wall,
            full.objective,
        ),
    ]
    print(
        "| fit | wall s | scipy wall / this | CPU s | scipy CPU / this | compile s | best objective | rel. to scipy |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, clock, compile_s, best in rows:
        compile_text = "-" if compile_s is None else f"{compile_s:.2f}"
        print(
            f"| {name} | {clock.wall:.3f} | {scipy_clock.wall / clock.wall:.1f}x | {clock.cpu:.3f} | "
            f"{scipy_clock.cpu / clock.cpu:.1f}x | {compile_text} | {best:.13g} | "
            f"{(best - scipy_best) / scipy_best:+.1e} |"
        )
    print(
        f"\nscipy's best: A {np.exp(scipy_theta[0]):.2f}, B {np.exp(scipy_theta[1]):.2f}, "
        f"E {np.exp(scipy_theta[2]):.5f}, alpha {scipy_theta[3]:.5f}, beta {scipy_theta[4]:.5f}; jitted "
        f"(screened): A {screened.A:.2f}, B {screened.B:.2f}, E {screened.E:.5f}, alpha {screened.alpha:.5f}, "
        f"beta {screened.beta:.5f}.\n"
    )

    print("Screening check (best objective, screened 128 vs all 4,500 starts):\n")
    print("| data | screened | full grid | rel. difference |")
    print("|---|---:|---:|---:|")
    print(
        f"| reference, 240 points | {screened.objective:.13g} | {full.objective:.13g} | "
        f"{(screened.objective - full.objective) / full.objective:+.1e} |"
    )
    for seed in range(3):
        data = synthetic(seed)
        a, b = fit_table(data), fit_table(data, top_k=None)
        print(
            f"| synthetic (paper's law, 0.5% noise, seed {seed}) | {a.objective:.13g} | {b.objective:.13g} | "
            f"{(a.objective - b.objective) / b.objective:+.1e} |"
        )

    state, weights, compile_s, run = bootstrap_timing(table, screened, args.resamples, seed=0)
    objective = np.asarray(state.objective)
    iterations = np.asarray(state.starts.iterations).mean(axis=0)
    print(
        f"\nBootstrap: {args.resamples} resamples x 3 starts (full-data optimum + 2 best-ranked grid starts) in "
        f"one jitted call: **{run.wall:.1f} s** wall, {run.cpu:.1f} s CPU ({run.wall / args.resamples * 1e3:.2f} "
        f"ms per resample; compile "
        f"{compile_s:.1f} s, timed apart); {int(np.sum(~np.isfinite(objective)))} failed; mean L-BFGS "
        f"iterations per start {', '.join(f'{x:.0f}' for x in iterations)}.\n"
    )

    print("Bootstrap optimum vs a fresh grid fit of the same resample weights:\n")
    print("| resamples | grid fit | max rel. objective excess | max abs. diff alpha | beta | E |")
    print("|---:|---|---:|---:|---:|---:|")
    theta = np.asarray(state.params)
    for count, top_k, label in ((args.check_resamples, "auto", "screened (128)"), (4, None, "full grid (4,500)")):
        fits = [fit_table(table, weights=weights[r], top_k=top_k) for r in range(count)]
        excess = max((objective[r] - f.objective) / f.objective for r, f in enumerate(fits))
        diffs = [
            max(abs(value(theta[r]) - getattr(f, name)) for r, f in enumerate(fits))
            for name, value in (("alpha", lambda t: t[3]), ("beta", lambda t: t[4]), ("E", lambda t: np.exp(t[2])))
        ]
        print(f"| {count} | {label} | {excess:+.1e} | {diffs[0]:.1e} | {diffs[1]:.1e} | {diffs[2]:.1e} |")
    print(f"\nLoad average at end {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()
