"""optax L-BFGS inside ``jax.lax.while_loop``, with stopping rules, over many starts.

optax's ``lbfgs`` (two-loop recursion, memory 10, zoom linesearch with the "one" initial step, as
``optax.lbfgs()`` builds it) has no stopping test of its own. :func:`minimize` stops a start at the first of:

- ``gtol``: max_i |g_i| <= gtol after a step (scipy L-BFGS-B's ``pgtol``, default 1e-5: an *absolute* test,
  so it depends on the objective's scale; this is what stops a mean-reduced fit early);
- ``ftol``: f_k - f_{k+1} <= ftol * max(|f_k|, |f_{k+1}|, 1) (scipy's relative-reduction test; also catches a step
  that did not decrease f, e.g. a failed linesearch). Default 1e-12, tighter than scipy's 2.2e-9, so every start
  lands within ~1e-11 (relative) of its local minimum on the summed objective;
- ``max_iter`` iterations;
- a non-finite value or gradient (the step is undone: the start keeps its last finite point).

A start whose first value or gradient is non-finite stops at once with reason ``nonfinite``.

:func:`minimize_many` runs a batch of starts. Under ``jax.vmap`` a while loop runs until its slowest lane stops
(every lane computing), and ``lax.cond`` becomes a select that evaluates both branches (optax's zoom linesearch is
full of them), so on CPU a batched solve is *slower* than solving the starts one after another with ``lax.map``
(measured here, 200 starts in batches of 2 or 4 lanes: 7.5x and 10x slower). On GPU/TPU the lanes run in parallel
and ``vmap`` pays. ``strategy="auto"`` picks ``map`` on CPU and ``vmap`` elsewhere.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax import tree_utils as otu

# Stop reasons (``StartResult.stop_reason``), by code.
RUNNING, GTOL, FTOL, MAX_ITER, NONFINITE = 0, 1, 2, 3, 4
STOP_REASONS: tuple[str, ...] = ("running", "gtol", "ftol", "max_iter", "nonfinite")
STRATEGIES: tuple[str, ...] = ("auto", "map", "vmap")


class SolverConfig(NamedTuple):
    """Stopping rules and L-BFGS settings (hashable: a static argument of ``jax.jit``)."""

    max_iter: int = 1000
    ftol: float = 1e-12
    gtol: float = 1e-5
    memory_size: int = 10
    max_linesearch_steps: int = 20

    def validate(self) -> "SolverConfig":
        if self.max_iter < 1:
            raise ValueError(f"max_iter={self.max_iter} must be at least 1")
        if not (self.ftol >= 0 and self.gtol >= 0):
            raise ValueError(f"ftol={self.ftol} and gtol={self.gtol} must be non-negative")
        if self.memory_size < 1 or self.max_linesearch_steps < 1:
            raise ValueError(f"memory_size={self.memory_size} and max_linesearch_steps={self.max_linesearch_steps} "
                             "must be at least 1")
        return self


class StartResult(NamedTuple):
    """Where one start ended (leading axes added by :func:`minimize_many`)."""

    params: jnp.ndarray       # final raw parameters (the last finite point)
    objective: jnp.ndarray    # objective there
    iterations: jnp.ndarray   # L-BFGS iterations taken
    n_evals: jnp.ndarray      # objective+gradient evaluations (1 + linesearch steps)
    grad_norm: jnp.ndarray    # max_i |g_i| at the final point
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
    linesearch = optax.scale_by_zoom_linesearch(max_linesearch_steps=config.max_linesearch_steps,
                                                initial_guess_strategy="one")
    return optax.lbfgs(memory_size=config.memory_size, linesearch=linesearch)


def minimize(fun: Callable[[jnp.ndarray], jnp.ndarray], x0: jnp.ndarray, config: SolverConfig) -> StartResult:
    """Minimise ``fun`` from ``x0`` with optax L-BFGS in a ``lax.while_loop`` (pure, jittable, vmappable)."""
    optimizer = lbfgs(config)
    value0, grad0 = jax.value_and_grad(fun)(x0)
    finite0 = jnp.isfinite(value0) & jnp.all(jnp.isfinite(grad0))
    reason0 = jnp.where(~finite0, NONFINITE, jnp.where(jnp.max(jnp.abs(grad0)) <= config.gtol, GTOL, RUNNING))
    init = _Carry(x0, optimizer.init(x0), value0, grad0, jnp.asarray(0), jnp.asarray(1), reason0)

    def step(carry: _Carry) -> _Carry:
        updates, opt_state = optimizer.update(carry.grad, carry.opt_state, carry.params, value=carry.value,
                                              grad=carry.grad, value_fn=fun)
        params = optax.apply_updates(carry.params, updates)
        value = otu.tree_get(opt_state, "value")  # the linesearch stores f and g at the accepted point
        grad = otu.tree_get(opt_state, "grad")
        iterations = carry.iterations + 1
        n_evals = carry.n_evals + otu.tree_get(opt_state, "num_linesearch_steps")
        finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))
        decrease = carry.value - value
        scale = jnp.maximum(jnp.maximum(jnp.abs(carry.value), jnp.abs(value)), 1.0)
        reason = jnp.select(
            [~finite, jnp.max(jnp.abs(grad)) <= config.gtol, decrease <= config.ftol * scale,
             iterations >= config.max_iter],
            [NONFINITE, GTOL, FTOL, MAX_ITER], RUNNING)
        return _Carry(jnp.where(finite, params, carry.params), opt_state, jnp.where(finite, value, carry.value),
                      jnp.where(finite, grad, carry.grad), iterations, n_evals, reason)

    final = jax.lax.while_loop(lambda c: c.reason == RUNNING, step, init)
    return StartResult(final.params, final.value, final.iterations, final.n_evals,
                       jnp.max(jnp.abs(final.grad)), final.reason)


def resolve_strategy(strategy: str) -> str:
    """``map`` or ``vmap``: ``auto`` is ``map`` on the CPU backend and ``vmap`` on GPU/TPU."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} must be one of {STRATEGIES}")
    if strategy == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return strategy


def minimize_many(fun: Callable[[jnp.ndarray, Any], jnp.ndarray], x0: jnp.ndarray, per_start: Any = None, *,
                  config: SolverConfig, strategy: str = "auto") -> StartResult:
    """Minimise ``fun(theta, per_start[i])`` from every row ``x0[i]`` (``per_start``: a pytree with the same leading
    axis, or None). ``strategy``: ``map`` (``lax.map``, one start after another), ``vmap`` or ``auto``."""

    def solve(args):
        start, extra = args
        return minimize(lambda theta: fun(theta, extra), start, config)

    if resolve_strategy(strategy) == "map":
        return jax.lax.map(solve, (x0, per_start))
    return jax.vmap(solve)((x0, per_start))
