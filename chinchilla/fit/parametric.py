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

Strategy: on CPU the starts run one after another (``lax.map``); on GPU/TPU they run as one batch (``vmap``); see
:mod:`chinchilla.fit.solver`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from chinchilla.fit.allocate import ChinchillaParams
from chinchilla.fit.laws import CHINCHILLA
from chinchilla.fit.objective import PAPER_HUBER_DELTA, check_reduction, objective
from chinchilla.fit.solver import (FTOL, GTOL, STOP_REASONS, SolverConfig, StartResult, minimize_many,
                                   resolve_strategy)
from chinchilla.fit.table import ScalingTable, validate_columns

DEFAULT_TOP_K = 128
_SOLVER_DEFAULTS = SolverConfig()
_RANK_BATCH = 512  # starts per vectorised pass when ranking (bounds memory at 512 x n_points)


class FitState(NamedTuple):
    """What :func:`fit_core` returns (a pytree of arrays). K = number of starts run (``top_k`` or all S)."""

    params: jnp.ndarray             # (P,) best raw parameters
    objective: jnp.ndarray          # () best objective (inf if every start failed)
    best: jnp.ndarray               # () index of the best start among the K run
    initial_objective: jnp.ndarray  # (S,) objective at every start of the grid (inf where not finite)
    start_index: jnp.ndarray        # (K,) rows of the grid that were run (best-ranked first when screened)
    starts: StartResult             # (K, ...) where each run start ended


def fit_core(starts: jnp.ndarray, covariates: Mapping[str, jnp.ndarray], loss: jnp.ndarray, weights: jnp.ndarray,
             *, law=CHINCHILLA, delta: float = PAPER_HUBER_DELTA, reduction: str = "sum",
             config: SolverConfig = SolverConfig(), top_k: int | None = DEFAULT_TOP_K,
             strategy: str = "auto") -> FitState:
    """Fit ``law`` to ``loss`` from the (S, P) ``starts``; pure and jittable (static: everything after ``*``).

    ``covariates`` holds the law's per-run arrays (``n``, ``d``, ...), ``weights`` the per-run multiplicities.
    Ranks all starts by their initial objective and runs L-BFGS from the ``top_k`` best (all when None).
    """
    log_loss = jnp.log(loss)
    features = law.features(covariates)

    def fun(theta, _):
        return objective(theta, law, features, log_loss, weights, delta=delta, reduction=reduction)

    initial = jax.lax.map(lambda theta: fun(theta, None), starts, batch_size=min(_RANK_BATCH, starts.shape[0]))
    initial = jnp.where(jnp.isfinite(initial), initial, jnp.inf)
    n_starts = starts.shape[0]
    if top_k is None or top_k >= n_starts:
        index = jnp.arange(n_starts)
    else:
        _, index = jax.lax.top_k(-initial, top_k)
    result = minimize_many(fun, starts[index], None, config=config, strategy=strategy)
    score = jnp.where(jnp.isfinite(result.objective), result.objective, jnp.inf)
    best = jnp.argmin(score)
    return FitState(result.params[best], score[best], best, initial, index, result)


_fit_core_jit = jax.jit(fit_core, static_argnames=("law", "delta", "reduction", "config", "top_k", "strategy"))


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
    stop_reason: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        """How many starts stopped for each reason."""
        return {r: self.stop_reason.count(r) for r in STOP_REASONS if r in self.stop_reason}


@dataclasses.dataclass(frozen=True)
class ParametricFit:
    """A fitted law. Named parameters are attributes (``.E .A .B .alpha .beta``, and ``.R_D_star .R_N_star`` for
    the data-constrained law); ``.a .b .G`` and ``.frontier`` give the compute-optimal allocation."""

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

    def __getattr__(self, name: str):
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def stop_reason(self) -> str:
        """Why the best start stopped."""
        return self.diagnostics.stop_reason[self.best]

    @property
    def converged(self) -> bool:
        """The best start stopped on a tolerance (gtol or ftol), not at the iteration cap or a non-finite value."""
        return self.stop_reason in (STOP_REASONS[GTOL], STOP_REASONS[FTOL])

    @property
    def frontier(self) -> ChinchillaParams:
        """The Chinchilla-form parameters (E, A, B, alpha, beta) and the 6ND frontier they imply (a ValueError if
        alpha or beta is not positive: then loss does not fall with N or D, and there is no frontier)."""
        return ChinchillaParams(*(self.params[k] for k in ("E", "A", "B", "alpha", "beta")),
                                source=f"fit ({self.law.name}, {self.reduction} reduction, {self.n_points} runs)")

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
        out.update({"objective": self.objective, "a": self.a, "b": self.b,
                    "G": self.G if self.has_frontier else None, "law": self.law.name,
                    "reduction": self.reduction, "huber_delta": self.delta, "n_points": self.n_points,
                    "n_grid_starts": self.n_grid, "n_starts_run": int(self.diagnostics.grid_index.size),
                    "best_start": [float(x) for x in self.best_start], "stop_reason": self.stop_reason,
                    "converged": self.converged, "iterations": int(self.diagnostics.iterations[self.best]),
                    "stop_reasons": self.diagnostics.counts()})
        return out


def fit_parametric(n, d, loss, *, unique_tokens=None, law=CHINCHILLA, reduction: str = "sum",
                   delta: float = PAPER_HUBER_DELTA, weights=None, starts=None, top_k: int | None | str = "auto",
                   drop_highest_loss: int = 0, max_iter: int = _SOLVER_DEFAULTS.max_iter,
                   ftol: float = _SOLVER_DEFAULTS.ftol, gtol: float = _SOLVER_DEFAULTS.gtol,
                   strategy: str = "auto") -> ParametricFit:
    """Fit ``law`` (Chinchilla's by default) to runs of ``n`` parameters trained on ``d`` tokens to ``loss``.

    ``reduction``: "sum" (the paper's equation) or "mean" (the paper's loss scale, which stops L-BFGS early).
    ``starts``: (S, P) raw starting points, default the law's grid (the paper's 4,500 for Chinchilla).
    ``top_k``: run L-BFGS from the ``top_k`` best-ranked starts only; None for all; "auto" = 128 for "sum", all
    for "mean". ``weights``: per-run multiplicities (default ones). ``drop_highest_loss``: drop the k runs of highest
    loss first (the replication drops 5). ``unique_tokens``: for the data-constrained law.
    """
    table = ScalingTable.from_arrays(n, loss, d=d, unique_tokens=unique_tokens)
    return fit_table(table.drop_highest_loss(drop_highest_loss) if drop_highest_loss else table, law=law,
                     reduction=reduction, delta=delta, weights=weights, starts=starts, top_k=top_k,
                     max_iter=max_iter, ftol=ftol, gtol=gtol, strategy=strategy)


def fit_table(table: ScalingTable, *, law=CHINCHILLA, reduction: str = "sum", delta: float = PAPER_HUBER_DELTA,
              weights=None, starts=None, top_k: int | None | str = "auto", max_iter: int = _SOLVER_DEFAULTS.max_iter,
              ftol: float = _SOLVER_DEFAULTS.ftol, gtol: float = _SOLVER_DEFAULTS.gtol,
              strategy: str = "auto") -> ParametricFit:
    """:func:`fit_parametric` on a :class:`ScalingTable` (see there for the options)."""
    check_reduction(reduction)
    if not delta > 0:
        raise ValueError(f"delta={delta!r} must be positive")
    config = SolverConfig(max_iter=max_iter, ftol=ftol, gtol=gtol).validate()
    covariates = law_covariates(law, table)
    grid = prepare_starts(law, starts)
    w = prepare_weights(weights, len(table), n_params=len(law.param_names))
    k = resolve_top_k(top_k, reduction, grid.shape[0])
    with jax.enable_x64(True):
        state = _fit_core_jit(jnp.asarray(grid), {c: jnp.asarray(v) for c, v in covariates.items()},
                              jnp.asarray(table.loss), jnp.asarray(w), law=law, delta=float(delta),
                              reduction=reduction, config=config, top_k=k, strategy=resolve_strategy(strategy))
        state = jax.device_get(state)
    return _result(state, law, grid, reduction=reduction, delta=float(delta), n_points=len(table), top_k=k)


def evaluate_objective(table: ScalingTable, theta, *, law=CHINCHILLA, reduction: str = "sum",
                       delta: float = PAPER_HUBER_DELTA, weights=None) -> float:
    """The fitting objective of ``law`` at raw parameters ``theta`` on ``table`` (float64), e.g. at a known truth."""
    check_reduction(reduction)
    covariates = law_covariates(law, table)
    w = prepare_weights(weights, len(table), n_params=len(law.param_names))
    with jax.enable_x64(True):
        features = law.features({c: jnp.asarray(v) for c, v in covariates.items()})
        value = objective(jnp.asarray(theta, dtype=jnp.float64), law, features, jnp.log(jnp.asarray(table.loss)),
                          jnp.asarray(w), delta=float(delta), reduction=reduction)
        return float(value)


def law_covariates(law, table: ScalingTable) -> dict[str, np.ndarray]:
    """The table's columns that ``law`` reads, with a clear error when one is missing."""
    available = table.covariates()
    missing = [c for c in law.covariates if c not in available]
    if missing:
        raise ValueError(f"law {law.name!r} needs covariate(s) {missing} (u = unique tokens); "
                         f"the table has {sorted(available)}")
    return {c: available[c] for c in law.covariates}


def prepare_starts(law, starts) -> np.ndarray:
    """(S, P) float64 starting points: the law's grid by default; validated shape and finiteness."""
    grid = law.default_starts() if starts is None else np.array(starts, dtype=np.float64)
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
        raise ValueError(f"{used} run(s) with positive weight: fitting {n_params} parameters needs more runs than "
                         "parameters")
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


def _result(state: FitState, law, grid: np.ndarray, *, reduction: str, delta: float, n_points: int,
            top_k: int | None) -> ParametricFit:
    runs = state.starts
    objectives = np.asarray(runs.objective, dtype=np.float64)
    if not np.isfinite(state.objective):
        reasons = [STOP_REASONS[int(r)] for r in runs.stop_reason]
        raise ValueError(f"every one of the {objectives.size} starts failed (non-finite objective; stop reasons "
                         f"{sorted(set(reasons))}): check the data and the starting grid")
    index = np.asarray(state.start_index)
    diagnostics = StartDiagnostics(
        grid_index=index, initial_params=grid[index], initial_objective=np.asarray(state.initial_objective)[index],
        objective=objectives,
        params=np.asarray(runs.params), iterations=np.asarray(runs.iterations), n_evals=np.asarray(runs.n_evals),
        grad_norm=np.asarray(runs.grad_norm), stop_reason=tuple(STOP_REASONS[int(r)] for r in runs.stop_reason))
    theta = np.asarray(state.params, dtype=np.float64)
    params = {k: float(v) for k, v in law.natural(theta).items()}
    return ParametricFit(law=law, theta=theta, params=params, objective=float(state.objective), reduction=reduction,
                        delta=delta, n_points=n_points, n_grid=int(grid.shape[0]), top_k=top_k,
                        best=int(state.best), best_start=diagnostics.initial_params[int(state.best)],
                         diagnostics=diagnostics)
