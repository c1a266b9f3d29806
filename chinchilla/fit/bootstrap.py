"""Bootstrap intervals for the parametric fit, vectorised over resamples.

A resample is a vector of per-run weights, so every resample has the data's shape and all of them are refitted in
one jitted call (:func:`bootstrap_core`):

- ``scheme="resample"``: n runs drawn with replacement (multinomial counts), as Besiroglu et al. 2024 do
  (4,000 resamples);
- ``scheme="subsample"``: round(fraction * n) runs without replacement (0/1 weights), the paper's Table 2 ("100
  bootstraps of 80% of the data").

Starts per resample: refitting each resample from the whole 4,500-start grid would cost ~0.2 s x 4,000. Instead
each resample starts from the full-data optimum (a warm start: the resample's optimum is near it) and from the
``n_grid_starts`` grid points ranked best on the full data; the best of those is kept. The benchmark and the tests
compare this with a screened-grid fit of the same resample (``benchmarks/bench_fit.py`` prints the agreement).

Reported per resample: E, A, B, alpha, beta, a = beta / (alpha + beta), b = alpha / (alpha + beta), and the
compute-optimal tokens per parameter D_opt / N_opt = G^-2 (C / 6)^(b - a) at ``budget_flops``; intervals are
percentiles of those samples. Seeds are explicit (``numpy.random.default_rng(seed)``).

Each resample's best start is refined like the full fit (:func:`chinchilla.fit.solver.refine`; not for the mean
reduction, which stops early by design) and counted in ``n_not_converged`` when the check fails. Intervals that are
not determined (spanning more than 3 decades, or an exponent reaching 0) are flagged in ``flags``
(:func:`chinchilla.fit.diagnostics.interval_flags`). Runs are padded to the fit's size buckets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from chinchilla.fit.diagnostics import check_data, interval_flags
from chinchilla.fit.laws import CHINCHILLA
from chinchilla.fit.objective import PAPER_HUBER_DELTA, objective
from chinchilla.fit.parametric import ParametricFit, fit_table, law_covariates, pad_runs, prepare_weights, solver_config
from chinchilla.fit.powerlaw import percentile_interval
from chinchilla.fit.solver import (
    REFINE_RTOL,
    STOP_REASONS,
    SolverConfig,
    StartResult,
    minimize_many,
    refine,
    resolve_strategy,
)
from chinchilla.fit.table import ScalingTable
from chinchilla.jax_cache import enable_compilation_cache
from chinchilla.paper import GOPHER_FLOPS

SCHEMES: tuple[str, ...] = ("resample", "subsample")
DEFAULT_GRID_STARTS = 2
_DEFAULTS = SolverConfig()


class BootstrapState(NamedTuple):
    """What :func:`bootstrap_core` returns: R resamples x K starts."""

    params: jnp.ndarray  # (R, P) best raw parameters per resample (after refinement)
    objective: jnp.ndarray  # (R,) best objective per resample (inf if all its starts failed)
    best: jnp.ndarray  # (R,) index of the winning start
    starts: StartResult  # (R, K, ...) every start of every resample
    final: StartResult  # (R, ...) the winning start after refinement
    converged: jnp.ndarray  # (R,) the refinement check passed (False for an early stop by design)


def bootstrap_core(
    starts: jnp.ndarray,
    covariates: Mapping[str, jnp.ndarray],
    loss: jnp.ndarray,
    weights: jnp.ndarray,
    *,
    law=CHINCHILLA,
    delta: float = PAPER_HUBER_DELTA,
    reduction: str = "sum",
    config: SolverConfig = SolverConfig(),
    strategy: str = "auto",
) -> BootstrapState:
    """Refit ``law`` for every row of ``weights`` (R, n) from every row of ``starts`` (K, P); pure and jittable.

    The R x K solves are flattened into one batch for :func:`chinchilla.fit.solver.minimize_many`; each resample's
    best is then refined (unless ``config.gtol_abs`` is set: the paper's early stop).
    """
    log_loss = jnp.log(loss)
    features = law.features(covariates)
    n_resamples, n_starts = weights.shape[0], starts.shape[0]

    def fun(theta, resample):
        return objective(theta, law, features, log_loss, weights[resample], delta=delta, reduction=reduction)

    x0 = jnp.tile(starts, (n_resamples, 1))
    which = jnp.repeat(jnp.arange(n_resamples), n_starts)
    flat = minimize_many(fun, x0, which, config=config, strategy=strategy)
    runs = jax.tree.map(lambda x: x.reshape((n_resamples, n_starts) + x.shape[1:]), flat)
    score = jnp.where(jnp.isfinite(runs.objective), runs.objective, jnp.inf)
    best = jnp.argmin(score, axis=1)
    rows = jnp.arange(n_resamples)
    winners = jax.tree.map(lambda x: x[rows, best], runs)
    if config.gtol_abs > 0:
        final, converged = winners, jnp.zeros(n_resamples, dtype=bool)
    else:

        def polish(args):
            start, resample = args
            return refine(lambda theta: fun(theta, resample), start, config)

        if resolve_strategy(strategy) == "map":
            refined = jax.lax.map(polish, (winners, rows))
        else:
            refined = jax.vmap(polish)((winners, rows))
        final, converged = refined.result, refined.last_gain <= REFINE_RTOL
    value = jnp.where(jnp.isfinite(final.objective), final.objective, jnp.inf)
    return BootstrapState(final.params, value, best, runs, final, converged)


_bootstrap_core_jit = jax.jit(bootstrap_core, static_argnames=("law", "delta", "reduction", "config", "strategy"))


def bootstrap_chunked(
    starts, covariates, loss, weights: np.ndarray, *, chunk: int | None = None, progress=None, **options
) -> BootstrapState:
    """:func:`bootstrap_core` on ``chunk`` resamples at a time (one compiled program: the last chunk is padded with
    copies of its last row), calling ``progress(done, total)`` after each, so that Ctrl-C stops it within a chunk;
    the same answer as one call (each resample is refitted on its own). Returns numpy arrays."""
    from chinchilla import interrupts
    from chinchilla.fit.progress import chunks, default_chunk, report

    total = weights.shape[0]
    size = min(chunk or default_chunk("resamples"), total)
    parts = []
    report(progress, 0, total)
    with interrupts.deferred():  # Ctrl-C is taken between chunks, never lost inside one
        for lo, hi in chunks(total, size):
            rows = np.concatenate([np.arange(lo, hi), np.full(size - (hi - lo), hi - 1)])
            weights_rows = jnp.asarray(weights[rows])
            part = jax.device_get(_bootstrap_core_jit(starts, covariates, loss, weights_rows, **options))
            parts.append(jax.tree.map(lambda x, n=hi - lo: np.asarray(x)[:n], part))
            report(progress, hi, total)
            interrupts.check()
    return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def bootstrap_weights(
    n_points: int, n_resamples: int, *, seed: int, scheme: str = "resample", fraction: float = 0.8
) -> np.ndarray:
    """(R, n) float64 weights: multinomial counts ("resample") or 0/1 with round(fraction * n) ones
    ("subsample")."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme={scheme!r} must be one of {SCHEMES}")
    if not (isinstance(n_resamples, (int, np.integer)) and n_resamples >= 1):
        raise ValueError(f"n_resamples={n_resamples!r} must be a positive integer")
    rng = np.random.default_rng(seed)
    if scheme == "resample":
        return rng.multinomial(n_points, np.full(n_points, 1.0 / n_points), size=n_resamples).astype(np.float64)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r} must lie in (0, 1]")
    size = max(1, int(round(fraction * n_points)))
    weights = np.zeros((n_resamples, n_points))
    for row in weights:
        row[rng.choice(n_points, size=size, replace=False)] = 1.0
    return weights


@dataclasses.dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap samples of the fitted parameters and of the allocation they imply.

    ``samples[name]`` has one value per successful resample for each named parameter and a, b,
    ``tokens_per_param``; ``n_failed`` resamples
    (every start non-finite) are left out. ``winner[r]`` is the start that won resample r (0 = the full-data
    optimum, 1... = grid starts); ``stop_reason[r]`` why it stopped.
    """

    fit: ParametricFit
    scheme: str
    seed: int
    fraction: float | None
    budget_flops: float
    samples: dict[str, np.ndarray]
    objective: np.ndarray
    winner: np.ndarray
    stop_reason: tuple[str, ...]
    n_failed: int
    n_not_converged: int = 0

    @property
    def n_resamples(self) -> int:
        return int(self.objective.size) + self.n_failed

    def interval(self, name: str, percentiles: tuple[float, float] = (2.5, 97.5)) -> tuple[float, float]:
        """Percentile interval of one reported quantity (default 95%; Table 2 uses (10, 90))."""
        if name not in self.samples:
            raise ValueError(f"unknown quantity {name!r}; reported: {list(self.samples)}")
        return percentile_interval(self.samples[name], percentiles)

    def intervals(self, percentiles: tuple[float, float] = (2.5, 97.5)) -> dict[str, tuple[float, float]]:
        return {name: self.interval(name, percentiles) for name in self.samples}

    def flags(self, percentiles: tuple[float, float] = (2.5, 97.5)) -> dict[str, str]:
        """Intervals that are not determined, with why: too wide or reaching a bound
        (:func:`chinchilla.fit.diagnostics.interval_flags`), or of a parameter the full-data fit already found not
        determined (e.g. E at its lower bound 0: its resamples stay there, and a narrow interval would mislead)."""
        flags = interval_flags(self.intervals(percentiles))
        for name, info in self.fit.parameters.items():
            if info["status"] in ("at_lower_bound", "unbounded_above") and name in self.samples:
                low, high = self.interval(name, percentiles)
                flags[name] = (
                    f"{name} interval [{low:.4g}, {high:.4g}] is not determined: the full-data fit has "
                    f"{name} {info['status'].replace('_', ' ')}"
                )
        return flags

    def to_dict(self, percentiles: tuple[float, float] = (2.5, 97.5)) -> dict[str, object]:
        """JSON-ready: intervals, flags for unbounded ones, standard deviations, and how the resamples went.
        ``n_undefined`` counts samples of a quantity that are not finite (e.g. tokens per parameter of a resample
        with alpha <= 0); intervals and standard deviations use the finite ones."""
        return {
            "scheme": self.scheme,
            "n_resamples": self.n_resamples,
            "n_failed": self.n_failed,
            "n_not_converged": self.n_not_converged,
            "seed": self.seed,
            "fraction": self.fraction,
            "percentiles": list(percentiles),
            "budget_flops": self.budget_flops,
            "intervals": {k: list(v) for k, v in self.intervals(percentiles).items()},
            "interval_flags": self.flags(percentiles),
            "std": {k: _std(v) for k, v in self.samples.items()},
            "winner_counts": {str(int(k)): int(c) for k, c in zip(*np.unique(self.winner, return_counts=True))},
            "stop_reasons": {r: self.stop_reason.count(r) for r in sorted(set(self.stop_reason))},
            "n_undefined": {
                k: int(np.sum(~np.isfinite(v))) for k, v in self.samples.items() if not np.all(np.isfinite(v))
            },
        }


def _std(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.std(finite, ddof=1)) if finite.size > 1 else None


def bootstrap_parametric(n, d, loss, *, unique_tokens=None, drop_highest_loss: int = 0, **options) -> BootstrapResult:
    """:func:`bootstrap_table` on arrays (N, D, loss); ``options`` as there."""
    table = ScalingTable.from_arrays(n, loss, d=d, unique_tokens=unique_tokens)
    return bootstrap_table(table.drop_highest_loss(drop_highest_loss) if drop_highest_loss else table, **options)


def bootstrap_table(
    table: ScalingTable,
    *,
    n_resamples: int = 4000,
    seed: int = 0,
    scheme: str = "resample",
    fraction: float = 0.8,
    budget_flops: float = GOPHER_FLOPS,
    fit: ParametricFit | None = None,
    n_grid_starts: int = DEFAULT_GRID_STARTS,
    law=CHINCHILLA,
    reduction: str = "sum",
    delta: float = PAPER_HUBER_DELTA,
    max_iter: int = _DEFAULTS.max_iter,
    ftol: float = _DEFAULTS.ftol,
    gtol: float = _DEFAULTS.gtol,
    gtol_abs: float | None = None,
    strategy: str = "auto",
    chunk: int | None = None,
    progress=None,
) -> BootstrapResult:
    """Refit ``n_resamples`` bootstrap resamples of ``table`` and collect the parameters.

    ``fit``: the full-data fit to warm-start from (computed with the same options if None). ``n_grid_starts``:
    how many of the full-data best-ranked grid starts each resample also tries (0 = the warm start only).
    ``budget_flops``: the budget for the tokens-per-parameter samples (default Gopher's 5.76e23).
    ``chunk``: resamples per compiled call (default: suits the backend); ``progress(done, total)`` is called after
    each (:func:`bootstrap_chunked`): Ctrl-C stops the bootstrap within a chunk, and the answer does not depend on
    the chunk size.
    """
    config = solver_config(reduction, max_iter=max_iter, ftol=ftol, gtol=gtol, gtol_abs=gtol_abs)
    if fit is None:
        fit = fit_table(
            table,
            law=law,
            reduction=reduction,
            delta=delta,
            max_iter=max_iter,
            ftol=ftol,
            gtol=gtol,
            gtol_abs=gtol_abs,
            strategy=strategy,
        )
    elif fit.law != law or fit.n_points != len(table):
        raise ValueError(
            f"fit was made with law {fit.law.name!r} on {fit.n_points} runs; this bootstrap uses law "
            f"{law.name!r} on {len(table)} runs"
        )
    if not (isinstance(n_grid_starts, (int, np.integer)) and n_grid_starts >= 0):
        raise ValueError(f"n_grid_starts={n_grid_starts!r} must be a non-negative integer")
    if not (np.isfinite(budget_flops) and budget_flops > 0):
        raise ValueError(f"budget_flops={budget_flops!r} must be positive and finite")
    weights = bootstrap_weights(len(table), n_resamples, seed=seed, scheme=scheme, fraction=fraction)
    prepare_weights(weights[0], len(table), n_params=len(law.param_names))  # enough runs in a subsample
    ranked = np.argsort(fit.diagnostics.initial_objective, kind="stable")[:n_grid_starts]
    starts = np.concatenate([fit.theta[None, :], fit.diagnostics.initial_params[ranked]], axis=0)
    covariates = law_covariates(law, table)
    check_data(law.param_names, covariates, table.loss, np.ones(len(table)))
    padded, loss, padded_weights = pad_runs(covariates, table.loss, weights)
    enable_compilation_cache()
    with jax.enable_x64(True):
        state = bootstrap_chunked(
            jnp.asarray(starts),
            {c: jnp.asarray(v) for c, v in padded.items()},
            jnp.asarray(loss),
            padded_weights,
            law=law,
            delta=float(delta),
            reduction=reduction,
            config=config,
            strategy=resolve_strategy(strategy),
            chunk=chunk,
            progress=progress,
        )
    objective_r = np.asarray(state.objective, dtype=np.float64)
    ok = np.isfinite(objective_r)
    theta = np.asarray(state.params, dtype=np.float64)[ok]
    best = np.asarray(state.best)[ok]
    reasons = np.asarray(state.final.stop_reason)[ok]
    return BootstrapResult(
        fit=fit,
        scheme=scheme,
        seed=int(seed),
        fraction=fraction if scheme == "subsample" else None,
        budget_flops=float(budget_flops),
        samples=derived_samples(law, theta, budget_flops),
        objective=objective_r[ok],
        winner=best,
        stop_reason=tuple(STOP_REASONS[int(r)] for r in reasons),
        n_failed=int((~ok).sum()),
        n_not_converged=int((~np.asarray(state.converged)[ok]).sum()) if config.gtol_abs == 0 else 0,
    )


def derived_samples(law, theta: np.ndarray, budget_flops: float) -> dict[str, np.ndarray]:
    """Named parameters per sample plus a, b and tokens per parameter at ``budget_flops`` (6ND frontier)."""
    natural = {k: np.asarray(v, dtype=np.float64) for k, v in law.natural(theta).items()}
    alpha, beta, A, B = natural["alpha"], natural["beta"], natural["A"], natural["B"]
    with np.errstate(all="ignore"):
        a, b = beta / (alpha + beta), alpha / (alpha + beta)
        g = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
        tokens_per_param = g**-2.0 * (budget_flops / 6.0) ** (b - a)
    return {**natural, "a": a, "b": b, "tokens_per_param": tokens_per_param}
