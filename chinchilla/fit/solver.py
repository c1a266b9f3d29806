"""optax L-BFGS inside ``jax.lax.while_loop``, with scale-free stopping rules, over many starts.

optax's ``lbfgs`` (two-loop recursion, memory 10, zoom linesearch with the "one" initial step, as
``optax.lbfgs()`` builds it) has no stopping test of its own. :func:`minimize` stops a start at the first of:

- ``gtol``: the *relative* gradient max_i |g_i| max(|x_i|, 1) / |f| <= gtol (the relative change of f per
  relative change of each parameter; Dennis & Schnabel's scaled gradient test, with parameters of order one as
  the typical size). It does not change when the objective is multiplied by a constant (a mean instead of a sum,
  a handful of runs instead of hundreds, a better or worse fit), so it stops every data set at the same relative
  distance from its optimum. Default 1e-10;
- ``ftol``: 0 < f_k - f_{k+1} <= ftol max(|f_k|, |f_{k+1}|): a relative decrease, with no absolute floor (scipy's
  test has a floor of 1, which makes it absolute for objectives below 1). Default 1e-12;
- ``no_decrease``: the step did not lower f at all (the start keeps its best point). Near an optimum this is
  the rounding floor of f: along a stiff direction f - f* falls below f's rounding error while the relative
  gradient is still ~sqrt(eps lambda_max / f) |x| (~1e-5 on the reference data), so no gradient test can demand
  more. It can also mean a poor search direction, which :func:`refine` tells apart;
- ``gtol_abs``: max_i |g_i| <= gtol_abs, an *absolute* test (scipy L-BFGS-B's ``pgtol``, default there 1e-5).
  Off (0) by default: it depends on the objective's scale. The paper's mean-reduced fit used it, and stopped far
  from the optimum; :mod:`chinchilla.fit.parametric` turns it on only to reproduce that (``reduction="mean"``);
- ``max_iter`` iterations;
- a non-finite value or gradient (the step is undone: the start keeps its last finite point).

A start whose first value or gradient is non-finite stops at once with reason ``nonfinite``.

Whether a stop is the optimum is checked, not assumed: :func:`refine` restarts L-BFGS (fresh memory, so a stale
curvature model cannot stall it) from a start's end point until a restart lowers f by at most ``rtol`` (relative,
default 1e-10). The parametric fit refines its best start this way and reports ``converged`` only when that check
passed.

:func:`minimize_many` runs a batch of starts. Under ``jax.vmap`` a while loop runs until its slowest lane stops
(every lane computing), and ``lax.cond`` becomes a select that evaluates both branches (optax's zoom linesearch is
full of them), so on CPU a batched solve is *slower* than solving the starts one after another with ``lax.map``
(measured here, 200 starts in batches of 2 or 4 lanes: 7.5x and 10x slower). On GPU/TPU the lanes run in parallel
and ``vmap`` pays. ``strategy="auto"`` picks ``map`` on CPU and ``vmap`` elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax import tree_utils as otu

# Stop reasons (``StartResult.stop_reason``), by code.
RUNNING, GTOL, FTOL, NO_DECREASE, GTOL_ABS, MAX_ITER, NONFINITE = range(7)
STOP_REASONS: tuple[str, ...] = ("running", "gtol", "ftol", "no_decrease", "gtol_abs", "max_iter", "nonfinite")
REFINE_RTOL = 1e-10
REFINE_MAX_RESTARTS = 4
STRATEGIES: tuple[str, ...] = ("auto", "map", "vmap")


class SolverConfig(NamedTuple):
    """Stopping rules and L-BFGS settings (hashable: a static argument of ``jax.jit``). ``gtol`` and ``ftol`` are
    relative (scale-free); ``gtol_abs`` is absolute and off (0) unless asked for."""

    max_iter: int = 1000
    ftol: float = 1e-12
    gtol: float = 1e-10
    gtol_abs: float = 0.0
    memory_size: int = 10
    max_linesearch_steps: int = 20

    def validate(self) -> SolverConfig:
        if self.max_iter < 1:
            raise ValueError(f"max_iter={self.max_iter} must be at least 1")
        if not all(t >= 0 for t in (self.ftol, self.gtol, self.gtol_abs)):
            raise ValueError(f"ftol={self.ftol}, gtol={self.gtol} and gtol_abs={self.gtol_abs} must be non-negative")
        if self.memory_size < 1 or self.max_linesearch_steps < 1:
            raise ValueError(
                f"memory_size={self.memory_size} and max_linesearch_steps={self.max_linesearch_steps} "
                "must be at least 1"
            )
        return self


class StartResult(NamedTuple):
    """Where one start ended (leading axes added by :func:`minimize_many`)."""

    params: jnp.ndarray  # final raw parameters (the best finite point)
    objective: jnp.ndarray  # objective there
    iterations: jnp.ndarray  # L-BFGS iterations taken
    n_evals: jnp.ndarray  # objective+gradient evaluations (1 + linesearch steps)
    grad_norm: jnp.ndarray  # max_i |g_i| at the final point
    rel_grad: jnp.ndarray  # max_i |g_i| max(|x_i|, 1) / |f| at the final point (the ``gtol`` test's value)
    stop_reason: jnp.ndarray  # code into STOP_REASONS


class _Carry(NamedTuple):
    params: jnp.ndarray
    opt_state: Any
    value: jnp.ndarray
    grad: jnp.ndarray
    iterations: jnp.ndarray
    n_evals: jnp.ndarray
    reason: jnp.ndarray


def lbfgs(config: SolverConfig) -> optax.GradientTransformationExtraArgs:
    """``optax.lbfgs()`` with the configured memory and linesearch steps (zoom, initial step guess "one")."""
    linesearch = optax.scale_by_zoom_linesearch(
        max_linesearch_steps=config.max_linesearch_steps, initial_guess_strategy="one"
    )
    return optax.lbfgs(memory_size=config.memory_size, linesearch=linesearch)


def relative_gradient(params: jnp.ndarray, value: jnp.ndarray, grad: jnp.ndarray) -> jnp.ndarray:
    """max_i |g_i| max(|x_i|, 1) / |f| (inf when f = 0 and g != 0; 0 when g = 0)."""
    scaled = jnp.max(jnp.abs(grad) * jnp.maximum(jnp.abs(params), 1.0))
    return jnp.where(scaled == 0, 0.0, scaled / jnp.abs(value))


def minimize(fun: Callable[[jnp.ndarray], jnp.ndarray], x0: jnp.ndarray, config: SolverConfig) -> StartResult:
    """Minimise ``fun`` from ``x0`` with optax L-BFGS in a ``lax.while_loop`` (pure, jittable, vmappable)."""
    optimizer = lbfgs(config)
    value0, grad0 = jax.value_and_grad(fun)(x0)
    finite0 = jnp.isfinite(value0) & jnp.all(jnp.isfinite(grad0))
    reason0 = jnp.select(
        [~finite0, relative_gradient(x0, value0, grad0) <= config.gtol, jnp.max(jnp.abs(grad0)) <= config.gtol_abs],
        [NONFINITE, GTOL, GTOL_ABS],
        RUNNING,
    )
    init = _Carry(x0, optimizer.init(x0), value0, grad0, jnp.asarray(0), jnp.asarray(1), reason0)

    def step(carry: _Carry) -> _Carry:
        updates, opt_state = optimizer.update(
            carry.grad, carry.opt_state, carry.params, value=carry.value, grad=carry.grad, value_fn=fun
        )
        params = optax.apply_updates(carry.params, updates)
        value = otu.tree_get(opt_state, "value")  # the linesearch stores f and g at the accepted point
        grad = otu.tree_get(opt_state, "grad")
        iterations = carry.iterations + 1
        n_evals = carry.n_evals + otu.tree_get(opt_state, "num_linesearch_steps")
        finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))
        decrease = carry.value - value
        keep = finite & (decrease > 0)  # a step that did not lower f is undone
        params, value, grad = (
            jnp.where(keep, new, old) for new, old in ((params, carry.params), (value, carry.value), (grad, carry.grad))
        )
        rel_grad = relative_gradient(params, value, grad)
        scale = jnp.maximum(jnp.abs(carry.value), jnp.abs(value))
        reason = jnp.select(
            [
                ~finite,
                decrease <= 0,
                rel_grad <= config.gtol,
                jnp.max(jnp.abs(grad)) <= config.gtol_abs,
                decrease <= config.ftol * scale,
                iterations >= config.max_iter,
            ],
            [NONFINITE, NO_DECREASE, GTOL, GTOL_ABS, FTOL, MAX_ITER],
            RUNNING,
        )
        return _Carry(params, opt_state, value, grad, iterations, n_evals, reason)

    final = jax.lax.while_loop(lambda c: c.reason == RUNNING, step, init)
    return StartResult(
        final.params,
        final.value,
        final.iterations,
        final.n_evals,
        jnp.max(jnp.abs(final.grad)),
        relative_gradient(final.params, final.value, final.grad),
        final.reason,
    )


class Refined(NamedTuple):
    """What :func:`refine` returns."""

    result: StartResult  # the best point found (the input's when no restart lowered f)
    restarts: jnp.ndarray  # restarts run
    last_gain: jnp.ndarray  # relative decrease of f by the last restart (<= rtol: checked converged)


def refine(
    fun: Callable[[jnp.ndarray], jnp.ndarray],
    start: StartResult,
    config: SolverConfig,
    *,
    rtol: float = REFINE_RTOL,
    max_restarts: int = REFINE_MAX_RESTARTS,
) -> Refined:
    """Restart L-BFGS from ``start``'s end point (fresh memory) until a restart lowers f by at most ``rtol`` |f|,
    at most ``max_restarts`` times (pure, jittable). ``last_gain <= rtol`` is the check that ``start`` (or the
    point it was refined to) is a minimum to ~rtol relative; iterations and evaluations accumulate."""

    def cond(carry):
        _, restarts, gain = carry
        return (restarts < max_restarts) & (gain > rtol)

    def body(carry):
        best, restarts, _ = carry
        new = minimize(fun, best.params, config)
        better = new.objective < best.objective
        gain = jnp.where(better, (best.objective - new.objective) / jnp.abs(best.objective), 0.0)
        merged = jax.tree.map(lambda a, b: jnp.where(better, a, b), new, best)
        merged = merged._replace(iterations=best.iterations + new.iterations, n_evals=best.n_evals + new.n_evals)
        return merged, restarts + 1, gain

    init = (start, jnp.asarray(0), jnp.asarray(jnp.inf, start.objective.dtype))
    result, restarts, gain = jax.lax.while_loop(cond, body, init)
    return Refined(result, restarts, gain)


def resolve_strategy(strategy: str) -> str:
    """``map`` or ``vmap``: ``auto`` is ``map`` on the CPU backend and ``vmap`` on GPU/TPU."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} must be one of {STRATEGIES}")
    if strategy == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return strategy


def minimize_many(
    fun: Callable[[jnp.ndarray, Any], jnp.ndarray],
    x0: jnp.ndarray,
    per_start: Any = None,
    *,
    config: SolverConfig,
    strategy: str = "auto",
) -> StartResult:
    """Minimise ``fun(theta, per_start[i])`` from every row ``x0[i]`` (``per_start``: a pytree with the same leading
    axis, or None). ``strategy``: ``map`` (``lax.map``, one start after another), ``vmap`` or ``auto``."""

    def solve(args):
        start, extra = args
        return minimize(lambda theta: fun(theta, extra), start, config)

    if resolve_strategy(strategy) == "map":
        return jax.lax.map(solve, (x0, per_start))
    return jax.vmap(solve)((x0, per_start))
