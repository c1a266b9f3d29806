"""Approach 3 (Hoffmann et al. 2022, Section 3.3): fit L(N, D) = E + A / N^alpha + B / D^beta to final losses.

    min over (a, b, e, alpha, beta) of  sum_i Huber_1e-3( LSE(a - alpha log N_i, b - beta log D_i, e) - log L_i ),

by L-BFGS from the paper's 4,500-start grid (alpha, beta in {0, ..., 2} step 0.5; e in {-1, ..., 1} step 0.5;
a, b in {0, ..., 25} step 5), keeping the best start; A, B, E = exp(a), exp(b), exp(e).

Two layers:

- :func:`fit_core`: pure and jittable: arrays in (starts, covariates, losses, weights), a :class:`FitState`
  pytree out (best raw parameters, objective, and per-start diagnostics). ``jax.jit`` / ``jax.vmap`` it yourself,
  e.g. over bootstrap weights.
- :func:`fit_parametric` / :func:`fit_table`: validate, fit in float64 (inside ``jax.enable_x64(True)``, so the
  caller's process keeps its own setting), and return a :class:`ParametricFit` with ``.E .A .B .alpha .beta
  .objective``, the frontier (``.a .b .G``) and the diagnostics as numpy.

Screening (``top_k``): every start's objective is evaluated (one vectorised pass), and L-BFGS runs only from the
``top_k`` starts with the lowest initial objective. On the reference data the 7 starts with the lowest initial
objective all reach the global optimum (to 1e-6 relative; 6 of them to 1e-9, as do 703 of all 4,500), and with
``top_k=128`` the best objective equals the exhaustive 4,500-start fit's to ~1e-12 (relative), as it does on
synthetic data and bootstrap resamples (tests and ``benchmarks/bench_fit.py``). ``top_k=None`` runs every start.
A mean-reduced fit stops early, and where depends on each start's path, so screening would change its answer:
``top_k="auto"`` (the default) means 128 for ``reduction="sum"`` and the whole grid for ``reduction="mean"``.

Stopping and convergence (:mod:`chinchilla.fit.solver`): every start stops on scale-free tests (relative gradient,
relative decrease), so a fit of 20 runs with objective 1e-6 reaches its optimum as closely as one of 240 runs; then
the best start is refined (L-BFGS restarted from its end point until a restart gains <= 1e-10, relative), and
``status`` is ``"converged"`` only when that check passed. ``reduction="mean"`` adds scipy's absolute gradient test
(1e-5) to reproduce the paper's early stop; its status says ``"stopped_early_by_design"``.

Loss scale: the default grid's log A, log B, log E columns follow the data (:func:`chinchilla.fit.laws.data_starts`;
unchanged for paper-scale losses), and a best start on the edge of its grid is flagged.

Diagnostics (:mod:`chinchilla.fit.diagnostics`): data that cannot determine the law raise ``ValueError`` before any
fitting; every result carries ``parameters`` (per named parameter: value and status, e.g. E ``at_lower_bound``) and
``warnings`` (one line per problem).

Shapes: the runs are padded with zero-weight copies of the first run to a size bucket (16, 32, 64, ...; see
:func:`bucket_size`), so data sets of different sizes within a bucket reuse one compiled program, and JAX's
persistent compilation cache (:mod:`chinchilla.jax_cache`) keeps compiled programs across processes.

Strategy: on CPU the starts run one after another (``lax.map``); on GPU/TPU they run as one batch (``vmap``); see
:mod:`chinchilla.fit.solver`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from chinchilla.fit import diagnostics as diagnostics_mod
from chinchilla.fit.allocate import ChinchillaParams
from chinchilla.fit.laws import CHINCHILLA, NATURAL_NAMES, data_starts, loss_scale_shift, shear_units, unit_shifts
from chinchilla.fit.objective import PAPER_HUBER_DELTA, check_reduction, objective
from chinchilla.fit.solver import (
    REFINE_RTOL,
    STOP_REASONS,
    SolverConfig,
    StartResult,
    minimize_many,
    refine,
    resolve_strategy,
)
from chinchilla.fit.table import ScalingTable, validate_columns
from chinchilla.jax_cache import enable_compilation_cache

DEFAULT_TOP_K = 128
# scipy L-BFGS-B's default (absolute) pgtol: what stopped the paper's mean-reduced fit early.
PAPER_MEAN_GTOL_ABS = 1e-5
STATUSES: tuple[str, ...] = ("converged", "stopped_early_by_design", "not_converged")
_SOLVER_DEFAULTS = SolverConfig()
_RANK_BATCH = 512  # starts per vectorised pass when ranking (bounds memory at 512 x n_points)
_MIN_BUCKET = 16


def bucket_size(n_points: int) -> int:
    """Padded number of runs: the next power of two, at least 16 (so 17-32 runs share one compiled program)."""
    return max(_MIN_BUCKET, 1 << max(0, int(n_points) - 1).bit_length())


def pad_runs(
    covariates: Mapping[str, np.ndarray], loss: np.ndarray, weights: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Pad runs (last axis) to :func:`bucket_size` with copies of the first run at weight 0 (so they add nothing
    to the objective or its gradient). ``weights`` may carry leading axes (bootstrap resamples)."""
    n = loss.shape[-1]
    extra = bucket_size(n) - n
    if extra == 0:
        return dict(covariates), loss, weights
    index = np.concatenate([np.arange(n), np.zeros(extra, dtype=int)])
    pad_w = np.zeros(weights.shape[:-1] + (extra,))
    return (
        {k: np.asarray(v)[index] for k, v in covariates.items()},
        np.asarray(loss)[index],
        np.concatenate([weights, pad_w], axis=-1),
    )


class FitState(NamedTuple):
    """What :func:`fit_core` returns (a pytree of arrays). K = number of starts run (``top_k`` or all S)."""

    params: jnp.ndarray  # (P,) best raw parameters
    objective: jnp.ndarray  # () best objective (inf if every start failed)
    best: jnp.ndarray  # () index of the best start among the K run
    initial_objective: jnp.ndarray  # (S,) objective at every start of the grid (inf where not finite)
    start_index: jnp.ndarray  # (K,) rows of the grid that were run (best-ranked first when screened)
    starts: StartResult  # (K, ...) where each run start ended
    final: StartResult  # the best start after refinement (:func:`chinchilla.fit.solver.refine`)
    restarts: jnp.ndarray  # () restarts the refinement ran (0 when not refined)
    restart_gain: jnp.ndarray  # () relative decrease by the last restart (inf when not refined)


def fit_core(
    starts: jnp.ndarray,
    covariates: Mapping[str, jnp.ndarray],
    loss: jnp.ndarray,
    weights: jnp.ndarray,
    *,
    law=CHINCHILLA,
    delta: float = PAPER_HUBER_DELTA,
    reduction: str = "sum",
    config: SolverConfig = SolverConfig(),
    top_k: int | None = DEFAULT_TOP_K,
    strategy: str = "auto",
) -> FitState:
    """Fit ``law`` to ``loss`` from the (S, P) ``starts``; pure and jittable (static: everything after ``*``).

    ``covariates`` holds the law's per-run arrays (``n``, ``d``, ...), ``weights`` the per-run multiplicities.
    Ranks all starts by their initial objective and runs L-BFGS from the ``top_k`` best (all when None), then
    refines the best end point (restarts until one gains <= 1e-10 relative), unless ``config.gtol_abs`` is set
    (the paper's early stop, which refinement would undo). The three steps are :func:`rank_starts`,
    :func:`run_starts` and :func:`finish_fit` (what :func:`fit_table` calls, running the starts in chunks).
    """
    data = (covariates, loss, weights)
    options = dict(law=law, delta=delta, reduction=reduction)
    initial, index = rank_starts(starts, *data, top_k=top_k, **options)
    result = run_starts(starts[index], *data, config=config, strategy=strategy, **options)
    return finish_fit(initial, index, result, *data, config=config, **options)


def _fun(covariates, loss, weights, law, delta, reduction):
    log_loss = jnp.log(loss)
    features = law.features(covariates)
    return lambda theta, _=None: objective(theta, law, features, log_loss, weights, delta=delta, reduction=reduction)


def rank_starts(
    starts,
    covariates,
    loss,
    weights,
    *,
    law=CHINCHILLA,
    delta: float = PAPER_HUBER_DELTA,
    reduction: str = "sum",
    top_k: int | None = DEFAULT_TOP_K,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The objective at every start (inf where not finite) and the rows to run: the ``top_k`` lowest, best
    first (all rows in order when None); pure and jittable."""
    fun = _fun(covariates, loss, weights, law, delta, reduction)
    initial = jax.lax.map(fun, starts, batch_size=min(_RANK_BATCH, starts.shape[0]))
    initial = jnp.where(jnp.isfinite(initial), initial, jnp.inf)
    n_starts = starts.shape[0]
    if top_k is None or top_k >= n_starts:
        return initial, jnp.arange(n_starts)
    return initial, jax.lax.top_k(-initial, top_k)[1]


def run_starts(
    starts,
    covariates,
    loss,
    weights,
    *,
    law=CHINCHILLA,
    delta: float = PAPER_HUBER_DELTA,
    reduction: str = "sum",
    config: SolverConfig = SolverConfig(),
    strategy: str = "auto",
) -> StartResult:
    """L-BFGS from every row of ``starts`` (each on its own: any split of the rows gives the same results)."""
    return minimize_many(
        _fun(covariates, loss, weights, law, delta, reduction), starts, None, config=config, strategy=strategy
    )


def finish_fit(
    initial,
    index,
    result: StartResult,
    covariates,
    loss,
    weights,
    *,
    law=CHINCHILLA,
    delta: float = PAPER_HUBER_DELTA,
    reduction: str = "sum",
    config: SolverConfig = SolverConfig(),
) -> FitState:
    """The best of the starts run (the first of equals), refined unless ``config.gtol_abs`` is set."""
    fun = _fun(covariates, loss, weights, law, delta, reduction)
    score = jnp.where(jnp.isfinite(result.objective), result.objective, jnp.inf)
    best = jnp.argmin(score)
    best_result = jax.tree.map(lambda x: x[best], result)
    if config.gtol_abs > 0:
        final, restarts, gain = best_result, jnp.asarray(0), jnp.asarray(jnp.inf, score.dtype)
    else:
        final, restarts, gain = refine(fun, best_result, config)
    value = jnp.where(jnp.isfinite(final.objective), final.objective, jnp.inf)
    return FitState(final.params, value, best, initial, index, result, final, restarts, gain)


_fit_core_jit = jax.jit(fit_core, static_argnames=("law", "delta", "reduction", "config", "top_k", "strategy"))
_rank_starts_jit = jax.jit(rank_starts, static_argnames=("law", "delta", "reduction", "top_k"))
_run_starts_jit = jax.jit(run_starts, static_argnames=("law", "delta", "reduction", "config", "strategy"))
_finish_fit_jit = jax.jit(finish_fit, static_argnames=("law", "delta", "reduction", "config"))


def fit_core_chunked(
    starts,
    covariates,
    loss,
    weights,
    *,
    law=CHINCHILLA,
    delta: float = PAPER_HUBER_DELTA,
    reduction: str = "sum",
    config: SolverConfig = SolverConfig(),
    top_k: int | None = DEFAULT_TOP_K,
    strategy: str = "auto",
    chunk: int | None = None,
    progress=None,
) -> FitState:
    """:func:`fit_core` with the starts run ``chunk`` at a time (one compiled program; the last chunk padded with
    copies of its last start), calling ``progress(done, total)`` after each chunk: Ctrl-C stops it within a chunk.
    The same answer as :func:`fit_core` (each start is solved on its own)."""
    from chinchilla import interrupts
    from chinchilla.fit.progress import chunks, default_chunk, report

    options = dict(law=law, delta=delta, reduction=reduction)
    initial, index = _rank_starts_jit(starts, covariates, loss, weights, top_k=top_k, **options)
    index = np.asarray(index)
    size = min(chunk or default_chunk("starts"), index.size)
    parts = []
    report(progress, 0, index.size)
    with interrupts.deferred():  # Ctrl-C is taken between chunks, never lost inside one
        for lo, hi in chunks(index.size, size):
            rows = np.concatenate([index[lo:hi], np.repeat(index[hi - 1], size - (hi - lo))])
            part = _run_starts_jit(starts[rows], covariates, loss, weights, config=config, strategy=strategy, **options)
            parts.append(jax.tree.map(lambda x, n=hi - lo: np.asarray(x)[:n], jax.device_get(part)))
            report(progress, hi, index.size)
            interrupts.check()
    result = jax.tree.map(lambda *xs: jnp.asarray(np.concatenate(xs)), *parts)
    return _finish_fit_jit(initial, jnp.asarray(index), result, covariates, loss, weights, config=config, **options)


class Curvature(NamedTuple):
    """The objective's curvature at a point (what :func:`curvature` returns; P = number of raw parameters).

    ``hessian``: (P, P) Hessian of the fitting objective (Huber, as reduced); ``gauss_newton``: (P, P)
    sum_i w_i grad r_i grad r_i^T of the log-loss residuals r_i, the curvature of the least-squares objective the
    Huber one approximates near the optimum; ``residual_var``: sum_i w_i r_i^2 / (sum_i w_i - P), the residuals'
    variance; ``n_weighted``: sum_i w_i."""

    hessian: jnp.ndarray
    gauss_newton: jnp.ndarray
    residual_var: jnp.ndarray
    n_weighted: jnp.ndarray


def curvature(
    theta: jnp.ndarray,
    covariates: Mapping[str, jnp.ndarray],
    loss: jnp.ndarray,
    weights: jnp.ndarray,
    *,
    law=CHINCHILLA,
    delta: float = PAPER_HUBER_DELTA,
    reduction: str = "sum",
) -> Curvature:
    """The curvature of the fit at raw parameters ``theta`` (pure and jittable, like :func:`fit_core`; vmap it over
    bootstrap weights). The identification rule (:func:`chinchilla.fit.diagnostics.identification`) reads it."""
    features = law.features(covariates)
    log_loss = jnp.log(loss)
    hessian = jax.hessian(lambda t: objective(t, law, features, log_loss, weights, delta=delta, reduction=reduction))(
        theta
    )
    residual = lambda t: law.log_predict(t, features) - log_loss  # noqa: E731
    jac = jax.jacfwd(residual)(theta)  # (runs, P)
    gauss_newton = jnp.einsum("i,ij,ik->jk", weights, jac, jac)
    r = residual(theta)
    n_weighted = jnp.sum(weights)
    dof = jnp.maximum(n_weighted - theta.shape[0], 1.0)
    return Curvature(hessian, gauss_newton, jnp.sum(weights * r * r) / dof, n_weighted)


_curvature_jit = jax.jit(curvature, static_argnames=("law", "delta", "reduction"))


@dataclasses.dataclass(frozen=True)
class StartDiagnostics:
    """Per run start, as numpy (best-ranked start first when screened): grid row, starting point and its
    objective, final objective and raw parameters, L-BFGS iterations, objective evaluations, final max |gradient|,
    and why it stopped."""

    grid_index: np.ndarray
    initial_params: np.ndarray
    initial_objective: np.ndarray
    objective: np.ndarray
    params: np.ndarray
    iterations: np.ndarray
    n_evals: np.ndarray
    grad_norm: np.ndarray
    rel_grad: np.ndarray
    stop_reason: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        """How many starts stopped for each reason."""
        return {r: self.stop_reason.count(r) for r in STOP_REASONS if r in self.stop_reason}


@dataclasses.dataclass(frozen=True)
class ParametricFit:
    """A fitted law. Named parameters are attributes (``.E .A .B .alpha .beta``, and ``.R_D_star .R_N_star`` for
    the data-constrained law); ``.a .b .G`` and ``.frontier`` give the compute-optimal allocation.

    ``status``: "converged" (restarts from the optimum gain <= 1e-10 relative), "stopped_early_by_design" (mean
    reduction) or "not_converged"; ``parameters``: per named parameter ``{"value", "status", "note"}`` (status
    "ok", "at_lower_bound", "unbounded_above" or "fixed"); ``warnings``: one line per problem (data the law cannot
    describe, parameters not determined, a best start on the grid's edge, no convergence)."""

    law: Any
    theta: np.ndarray
    params: dict[str, float]
    objective: float
    reduction: str
    delta: float
    n_points: int
    n_grid: int
    top_k: int | None
    best: int
    best_start: np.ndarray
    diagnostics: StartDiagnostics
    stop_reason: str
    status: str
    restarts: int
    restart_gain: float
    grid_shift: float
    best_start_on_grid_edge: tuple[str, ...]
    parameters: dict[str, diagnostics_mod.ParameterStatus]
    warnings: tuple[str, ...]
    identification: diagnostics_mod.Identification
    grid_units: dict[str, int] = dataclasses.field(default_factory=dict)

    def __getattr__(self, name: str):
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def converged(self) -> bool:
        """``status == "converged"``: the fit's point is checked to be a minimum (restarts gain <= 1e-10)."""
        return self.status == "converged"

    @property
    def identified(self) -> bool:
        """Whether the data determine the fit (:func:`chinchilla.fit.diagnostics.identification`): every free
        parameter "ok", no warning that the data cannot determine part of the law, and the objective's curvature at
        the optimum pins every parameter and a = beta / (alpha + beta)."""
        return self.identification["identified"]

    @property
    def frontier(self) -> ChinchillaParams:
        """The Chinchilla-form parameters (E, A, B, alpha, beta) and the 6ND frontier they imply (a ValueError if
        alpha or beta is not positive: then loss does not fall with N or D, and there is no frontier)."""
        p = self.params
        return ChinchillaParams(
            E=p["E"],
            A=p["A"],
            B=p["B"],
            alpha=p["alpha"],
            beta=p["beta"],
            source=f"fit ({self.law.name}, {self.reduction} reduction, {self.n_points} runs)",
        )

    @property
    def a(self) -> float:
        """N_opt ∝ C^a with a = beta / (alpha + beta)."""
        return float(self.params["beta"] / (self.params["alpha"] + self.params["beta"]))

    @property
    def b(self) -> float:
        """D_opt ∝ C^b with b = alpha / (alpha + beta)."""
        return float(self.params["alpha"] / (self.params["alpha"] + self.params["beta"]))

    @property
    def G(self) -> float:
        """G = (alpha A / (beta B))^(1 / (alpha + beta)) (see :attr:`frontier`)."""
        return float(self.frontier.G)

    @property
    def has_frontier(self) -> bool:
        """Whether alpha and beta are positive, so that the compute-optimal frontier exists."""
        return self.params["alpha"] > 0 and self.params["beta"] > 0

    def predict(self, **covariates) -> np.ndarray:
        """Predicted loss at the given covariates (``n=``, ``d=``, and ``u=`` for the data-constrained law)."""
        missing = [k for k in self.law.covariates if k not in covariates]
        if missing:
            raise ValueError(f"predict needs {list(self.law.covariates)}; missing {missing}")
        columns = validate_columns({k: np.atleast_1d(covariates[k]) for k in self.law.covariates})
        with jax.enable_x64(True):
            features = self.law.features({k: jnp.asarray(v) for k, v in columns.items()})
            log_loss = self.law.log_predict(jnp.asarray(self.theta), features)
            return np.exp(np.asarray(log_loss))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary: named parameters, objective, a, b, G and how the fit went."""
        out: dict[str, object] = dict(self.params)
        out.update(
            {
                "objective": self.objective,
                "a": self.a,
                "b": self.b,
                "G": self.G if self.has_frontier else None,
                "law": self.law.name,
                "reduction": self.reduction,
                "huber_delta": self.delta,
                "n_points": self.n_points,
                "n_grid_starts": self.n_grid,
                "n_starts_run": int(self.diagnostics.grid_index.size),
                "best_start": [float(x) for x in self.best_start],
                "grid_shift": self.grid_shift,
                "grid_unit_decades": dict(self.grid_units),
                "best_start_on_grid_edge": list(self.best_start_on_grid_edge),
                "status": self.status,
                "converged": self.converged,
                "stop_reason": self.stop_reason,
                "restarts": self.restarts,
                "restart_gain": _finite_or_none(self.restart_gain),
                "iterations": int(self.diagnostics.iterations[self.best]),
                "stop_reasons": self.diagnostics.counts(),
                "parameter_status": {k: v["status"] for k, v in self.parameters.items()},
                "identified": self.identified,
                "identification": self.identification,
                "warnings": list(self.warnings),
            }
        )
        return out


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def fit_parametric(
    n,
    d,
    loss,
    *,
    unique_tokens=None,
    law=CHINCHILLA,
    reduction: str = "sum",
    delta: float = PAPER_HUBER_DELTA,
    weights=None,
    starts=None,
    top_k: int | None | str = "auto",
    drop_highest_loss: int = 0,
    max_iter: int = _SOLVER_DEFAULTS.max_iter,
    ftol: float = _SOLVER_DEFAULTS.ftol,
    gtol: float = _SOLVER_DEFAULTS.gtol,
    gtol_abs: float | None = None,
    strategy: str = "auto",
) -> ParametricFit:
    """Fit ``law`` (Chinchilla's by default) to runs of ``n`` parameters trained on ``d`` tokens to ``loss``.

    ``reduction``: "sum" (the paper's equation) or "mean" (the paper's loss scale, which stops L-BFGS early).
    ``starts``: (S, P) raw starting points, default the law's grid (the paper's 4,500 for Chinchilla) with its
    log A, log B, log E columns moved to the data's loss scale (unchanged for paper-scale losses).
    ``ftol``, ``gtol``: relative stopping tolerances; ``gtol_abs``: scipy's absolute gradient test (None = 1e-5 for
    "mean", the paper's early stop, and off for "sum"). Raises ``ValueError`` for data that cannot determine the
    law (see :func:`chinchilla.fit.diagnostics.check_data`).
    ``top_k``: run L-BFGS from the ``top_k`` best-ranked starts only; None for all; "auto" = 128 for "sum", all
    for "mean". ``weights``: per-run multiplicities (default ones). ``drop_highest_loss``: drop the k runs of highest
    loss first (the replication drops 5). ``unique_tokens``: for the data-constrained law.
    """
    table = ScalingTable.from_arrays(n, loss, d=d, unique_tokens=unique_tokens)
    return fit_table(
        table.drop_highest_loss(drop_highest_loss) if drop_highest_loss else table,
        law=law,
        reduction=reduction,
        delta=delta,
        weights=weights,
        starts=starts,
        top_k=top_k,
        max_iter=max_iter,
        ftol=ftol,
        gtol=gtol,
        gtol_abs=gtol_abs,
        strategy=strategy,
    )


def solver_config(
    reduction: str,
    *,
    max_iter: int = _SOLVER_DEFAULTS.max_iter,
    ftol: float = _SOLVER_DEFAULTS.ftol,
    gtol: float = _SOLVER_DEFAULTS.gtol,
    gtol_abs: float | None = None,
) -> SolverConfig:
    """The solver settings of a fit: scale-free tolerances, plus scipy's absolute 1e-5 gradient test for the mean
    reduction when ``gtol_abs`` is None."""
    check_reduction(reduction)
    if gtol_abs is None:
        gtol_abs = PAPER_MEAN_GTOL_ABS if reduction == "mean" else 0.0
    return SolverConfig(max_iter=max_iter, ftol=ftol, gtol=gtol, gtol_abs=gtol_abs).validate()


def fit_table(
    table: ScalingTable,
    *,
    law=CHINCHILLA,
    reduction: str = "sum",
    delta: float = PAPER_HUBER_DELTA,
    weights=None,
    starts=None,
    top_k: int | None | str = "auto",
    max_iter: int = _SOLVER_DEFAULTS.max_iter,
    ftol: float = _SOLVER_DEFAULTS.ftol,
    gtol: float = _SOLVER_DEFAULTS.gtol,
    gtol_abs: float | None = None,
    strategy: str = "auto",
    chunk: int | None = None,
    progress=None,
) -> ParametricFit:
    """:func:`fit_parametric` on a :class:`ScalingTable` (see there for the options). ``progress(done, total)``
    is called after each ``chunk`` of starts (:func:`fit_core_chunked`; the default chunk suits the backend)."""
    if not delta > 0:
        raise ValueError(f"delta={delta!r} must be positive")
    config = solver_config(reduction, max_iter=max_iter, ftol=ftol, gtol=gtol, gtol_abs=gtol_abs)
    covariates = law_covariates(law, table)
    grid = prepare_starts(law, starts, table.loss, covariates)
    units = unit_shifts(covariates) if starts is None else unit_shifts(None)
    w = prepare_weights(weights, len(table), n_params=len(law.param_names))
    data_warnings = diagnostics_mod.check_data(law.param_names, covariates, table.loss, w)
    k = resolve_top_k(top_k, reduction, grid.shape[0])
    padded, loss, pw = pad_runs(covariates, table.loss, w)
    enable_compilation_cache()
    with jax.enable_x64(True):
        arrays = ({c: jnp.asarray(v) for c, v in padded.items()}, jnp.asarray(loss), jnp.asarray(pw))
        state = fit_core_chunked(
            jnp.asarray(grid),
            *arrays,
            law=law,
            delta=float(delta),
            reduction=reduction,
            config=config,
            top_k=k,
            strategy=resolve_strategy(strategy),
            chunk=chunk,
            progress=progress,
        )
        state = jax.device_get(state)

        def objective_at(thetas: np.ndarray) -> np.ndarray:
            return np.asarray(
                _objective_batch(jnp.asarray(thetas), *arrays, law=law, delta=float(delta), reduction=reduction)
            )

        curv = jax.device_get(
            _curvature_jit(jnp.asarray(state.params), *arrays, law=law, delta=float(delta), reduction=reduction)
        )
        return _result(
            state,
            law,
            grid,
            reduction=reduction,
            delta=float(delta),
            n_points=len(table),
            top_k=k,
            config=config,
            grid_shift=loss_scale_shift(table.loss) + 0.0 if starts is None else 0.0,
            data_warnings=data_warnings,
            objective_at=objective_at,
            curvature=curv,
            units=units,
        )


@functools.partial(jax.jit, static_argnames=("law", "delta", "reduction"))
def _objective_batch(thetas, covariates, loss, weights, *, law, delta, reduction):
    features = law.features(covariates)
    return jax.vmap(lambda t: objective(t, law, features, jnp.log(loss), weights, delta=delta, reduction=reduction))(
        thetas
    )


def evaluate_objective(
    table: ScalingTable,
    theta,
    *,
    law=CHINCHILLA,
    reduction: str = "sum",
    delta: float = PAPER_HUBER_DELTA,
    weights=None,
) -> float:
    """The fitting objective of ``law`` at raw parameters ``theta`` on ``table`` (float64), e.g. at a known truth."""
    check_reduction(reduction)
    covariates = law_covariates(law, table)
    w = prepare_weights(weights, len(table), n_params=len(law.param_names))
    padded, loss, pw = pad_runs(covariates, table.loss, w)
    with jax.enable_x64(True):
        values = _objective_batch(
            jnp.asarray(theta, dtype=jnp.float64)[None, :],
            {c: jnp.asarray(v) for c, v in padded.items()},
            jnp.asarray(loss),
            jnp.asarray(pw),
            law=law,
            delta=float(delta),
            reduction=reduction,
        )
        return float(values[0])


def law_covariates(law, table: ScalingTable) -> dict[str, np.ndarray]:
    """The table's columns that ``law`` reads, with a clear error when one is missing."""
    available = table.covariates()
    missing = [c for c in law.covariates if c not in available]
    if missing:
        raise ValueError(
            f"law {law.name!r} needs covariate(s) {missing} (u = unique tokens); the table has {sorted(available)}"
        )
    return {c: available[c] for c in law.covariates}


def prepare_starts(law, starts, loss, covariates=None) -> np.ndarray:
    """(S, P) float64 starting points: the law's grid moved to the scale of ``loss`` by default
    (:func:`chinchilla.fit.laws.data_starts`); validated shape and finiteness."""
    grid = data_starts(law, loss, covariates) if starts is None else np.array(starts, dtype=np.float64)
    n_params = len(law.param_names)
    if grid.ndim == 1:
        grid = grid[None, :]
    if grid.ndim != 2 or grid.shape[1] != n_params or grid.shape[0] == 0:
        raise ValueError(f"starts must have shape (S, {n_params}) for {list(law.param_names)}; got {grid.shape}")
    if not np.all(np.isfinite(grid)):
        raise ValueError("starts contain non-finite values")
    return grid


def prepare_weights(weights, n_points: int, *, n_params: int) -> np.ndarray:
    """Per-run weights (default ones): finite, non-negative, and more weighted runs than parameters."""
    w = np.ones(n_points) if weights is None else np.array(weights, dtype=np.float64)
    if w.shape != (n_points,):
        raise ValueError(f"weights must have shape ({n_points},) like the runs; got {w.shape}")
    if not np.all(np.isfinite(w) & (w >= 0)):
        raise ValueError("weights must be finite and non-negative")
    used = int(np.count_nonzero(w))
    if used <= n_params:
        raise ValueError(
            f"{used} run(s) with positive weight: fitting {n_params} parameters needs more runs than parameters"
        )
    return w


def resolve_top_k(top_k: int | None | str, reduction: str, n_starts: int) -> int | None:
    """``top_k`` as an int or None (all starts); "auto" = 128 for the summed objective, None for the mean."""
    if top_k == "auto":
        top_k = DEFAULT_TOP_K if reduction == "sum" else None
    if top_k is None:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k={top_k!r} must be a positive integer, None or 'auto'")
    return None if top_k >= n_starts else int(top_k)


def _result(
    state: FitState,
    law,
    grid: np.ndarray,
    *,
    reduction: str,
    delta: float,
    n_points: int,
    top_k: int | None,
    config: SolverConfig,
    grid_shift: float,
    data_warnings: list[str],
    objective_at,
    curvature: Curvature | None = None,
    units: Mapping[str, int] | None = None,
) -> ParametricFit:
    runs = state.starts
    objectives = np.asarray(runs.objective, dtype=np.float64)
    if not np.isfinite(state.objective):
        reasons = [STOP_REASONS[int(r)] for r in runs.stop_reason]
        raise ValueError(
            f"every one of the {objectives.size} starts failed (non-finite objective; stop reasons "
            f"{sorted(set(reasons))}): check the data and the starting grid"
        )
    index = np.asarray(state.start_index)
    diagnostics = StartDiagnostics(
        grid_index=index,
        initial_params=grid[index],
        initial_objective=np.asarray(state.initial_objective)[index],
        objective=objectives,
        params=np.asarray(runs.params),
        iterations=np.asarray(runs.iterations),
        n_evals=np.asarray(runs.n_evals),
        grad_norm=np.asarray(runs.grad_norm),
        rel_grad=np.asarray(runs.rel_grad),
        stop_reason=tuple(STOP_REASONS[int(r)] for r in runs.stop_reason),
    )
    theta = np.asarray(state.params, dtype=np.float64)
    params = {k: float(v) for k, v in law.natural(theta).items()}
    value = float(state.objective)
    best = int(state.best)
    stop_reason = STOP_REASONS[int(state.final.stop_reason)]
    gain = float(state.restart_gain)
    notes = list(data_warnings)
    if config.gtol_abs > 0:
        status = "stopped_early_by_design"
        notes.append(
            f"stopped early by design: scipy's absolute gradient test (max |g| <= {config.gtol_abs:g}) "
            f"is on ({reduction} reduction, as in the paper's fit), so this is not the optimum"
        )
    elif gain <= REFINE_RTOL:
        status = "converged"
    else:
        status = "not_converged"
        notes.append(
            f"not converged: {int(state.restarts)} restarts from the best point still lowered the "
            f"objective (the last by {gain:.2g}, relative; best start stopped: {stop_reason}); raise max_iter"
        )
    parameters = diagnostics_mod.parameter_status(law, theta, value, objective_at)
    notes += [p["note"] for p in parameters.values() if p["note"]]
    at_bound = tuple(
        raw
        for raw, name in NATURAL_NAMES.items()
        if name in parameters and parameters[name]["status"] not in ("ok", "fixed")
    )
    # The grid check reads every point in the paper's units, so that it does not depend on the data's units.
    units = dict(units or {})
    on_edge, edge_warnings = diagnostics_mod.grid_edges(
        law.param_names,
        np.round(shear_units(law, grid, units, -1.0), 9),
        np.round(shear_units(law, diagnostics.initial_params[best], units, -1.0), 9),
        shear_units(law, theta, units, -1.0),
        skip=at_bound,
    )
    notes += edge_warnings
    identification = diagnostics_mod.identification(law, theta, curvature, parameters, data_warnings)
    if not identification["identified"]:
        notes.insert(0, "NOT IDENTIFIED: " + "; ".join(identification["reasons"]))
    return ParametricFit(
        law=law,
        theta=theta,
        params=params,
        objective=value,
        reduction=reduction,
        delta=delta,
        n_points=n_points,
        n_grid=int(grid.shape[0]),
        top_k=top_k,
        best=best,
        best_start=diagnostics.initial_params[best],
        diagnostics=diagnostics,
        stop_reason=stop_reason,
        status=status,
        restarts=int(state.restarts),
        restart_gain=gain,
        grid_shift=grid_shift,
        best_start_on_grid_edge=tuple(on_edge),
        parameters=parameters,
        warnings=tuple(notes),
        identification=identification,
        grid_units=units,
    )
