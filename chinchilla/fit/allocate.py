"""Compute-optimal allocation from a fitted L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, Section
3.3 and Appendix D.2).

Under C = 6 N D, minimising L over N at fixed C gives the efficient frontier

    N_opt(C) = G (C / 6)^a,   D_opt(C) = G^-1 (C / 6)^b,   G = (alpha A / (beta B))^(1 / (alpha + beta)),
    a = beta / (alpha + beta),   b = alpha / (alpha + beta),

and its inverse: a model of N parameters is compute-optimal at C = 6 (N / G)^(1/a) FLOPs and D = C / (6 N) tokens
(the projections of Table 3 / Table A3). Under the exact Appendix F count (``chinchilla.flops``) a budget buys a
shape-dependent number of tokens, so :func:`exact_flops_optimum` scans a family of shapes (a zoo ladder) and takes
the one with the lowest predicted loss.

Plain numpy/Python: scalars and small arrays, vectorised over budgets or bootstrap samples.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

# Gopher's budget (Section 3.4, Figure 4): the paper's fit puts its compute-optimal size at ~40B parameters.
GOPHER_FLOPS = 5.76e23
# Model sizes of Table 3 / Table A3.
PAPER_PROJECTION_PARAMS: tuple[float, ...] = (400e6, 1e9, 10e9, 67e9, 175e9, 280e9, 520e9, 1e12, 10e12)


@dataclasses.dataclass(frozen=True)
class ChinchillaParams:
    """The parameters of L(N, D) = E + A / N^alpha + B / D^beta and the frontier they imply (numpy-vectorised:
    every field may be an array of samples)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str = ""

    def __post_init__(self):
        for name in ("E", "A", "B", "alpha", "beta"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if not (np.all(np.isfinite(value)) and np.all(value > 0)):
                raise ValueError(f"{name}={getattr(self, name)!r} must be positive and finite")

    @property
    def a(self):
        """N_opt ∝ C^a: a = beta / (alpha + beta)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self):
        """D_opt ∝ C^b: b = alpha / (alpha + beta)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self):
        """G = (alpha A / (beta B))^(1 / (alpha + beta))."""
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def loss(self, n, d):
        """L(N, D) = E + A / N^alpha + B / D^beta."""
        n, d = _positive("n", n), _positive("d", d)
        return self.E + self.A / n ** self.alpha + self.B / d ** self.beta

    def n_opt(self, flops):
        """N_opt(C) = G (C / 6)^a."""
        return self.G * (_positive("flops", flops) / 6.0) ** self.a

    def d_opt(self, flops):
        """D_opt(C) = G^-1 (C / 6)^b."""
        return (_positive("flops", flops) / 6.0) ** self.b / self.G

    def tokens_per_param(self, flops):
        """D_opt / N_opt = G^-2 (C / 6)^(b - a)."""
        return self.d_opt(flops) / self.n_opt(flops)

    def loss_opt(self, flops):
        """The loss on the frontier, L(N_opt(C), D_opt(C))."""
        return self.loss(self.n_opt(flops), self.d_opt(flops))

    def flops_for_params(self, n):
        """The inverse frontier: the budget at which N parameters are compute-optimal, C = 6 (N / G)^(1/a)."""
        return 6.0 * (_positive("n", n) / self.G) ** (1.0 / self.a)

    def tokens_for_params(self, n):
        """Tokens for N parameters at its compute-optimal budget: D = C / (6 N)."""
        return self.flops_for_params(n) / (6.0 * _positive("n", n))

    def to_dict(self) -> dict[str, float | str]:
        return {"E": float(self.E), "A": float(self.A), "B": float(self.B), "alpha": float(self.alpha),
                "beta": float(self.beta), "G": float(self.G), "a": float(self.a), "b": float(self.b),
                "source": self.source}


# The paper's Approach 3 fit, unrounded (Hoffmann et al. 2022, as used by Besiroglu et al. 2024).
PAPER_FIT = ChinchillaParams(E=1.69337, A=406.401, B=410.723, alpha=0.33917084, beta=0.2849083,
                             source="Hoffmann et al. 2022 Approach 3 fit (unrounded: E 1.69337, A 406.401, "
                                    "B 410.723, alpha 0.33917084, beta 0.2849083)")


def allocation(params: ChinchillaParams, flops: float) -> dict[str, float]:
    """Everything about one budget on the 6ND frontier, as a JSON-ready dict."""
    return {"flops": float(flops), "n_opt": float(params.n_opt(flops)), "d_opt": float(params.d_opt(flops)),
            "tokens_per_param": float(params.tokens_per_param(flops)), "loss_opt": float(params.loss_opt(flops)),
            "G": float(params.G), "a": float(params.a), "b": float(params.b)}


def projections(params: ChinchillaParams,
                sizes: Sequence[float] = PAPER_PROJECTION_PARAMS) -> list[dict[str, float]]:
    """Table 3 / A3 style rows: for each model size, the FLOPs at which it is compute-optimal and its tokens."""
    return [{"params": float(n), "flops": float(params.flops_for_params(n)),
             "tokens": float(params.tokens_for_params(n))} for n in sizes]


@dataclasses.dataclass(frozen=True)
class ShapeAllocation:
    """One shape at one budget under the exact (Appendix F) FLOP count."""

    name: str
    params: int
    tokens: float
    loss: float


@dataclasses.dataclass(frozen=True)
class ExactOptimum:
    """The best shape of a family at a budget under Appendix F FLOPs, and every shape considered.

    ``at_boundary`` is true when the best shape is the family's smallest or largest: the optimum may lie outside.
    """

    flops: float
    best: ShapeAllocation
    shapes: tuple[ShapeAllocation, ...]
    at_boundary: bool

    def to_dict(self) -> dict[str, object]:
        return {"flops": self.flops, "best": dataclasses.asdict(self.best), "at_boundary": self.at_boundary,
                "shapes": [dataclasses.asdict(s) for s in self.shapes]}


def exact_flops_optimum(params: ChinchillaParams, flops: float, configs: Sequence) -> ExactOptimum:
    """The shape in ``configs`` (``ModelConfig``s, e.g. ``zoo.ladder("chinchilla")``) with the lowest predicted loss
    when trained on the tokens that ``flops`` buys under the exact Appendix F count (``flops.tokens_for_flops``),
    with N = the shape's total parameters."""
    from chinchilla import flops as accounting

    if not configs:
        raise ValueError("configs is empty: give at least one model shape")
    shapes = sorted((_shape_allocation(params, flops, config, accounting) for config in configs),
                    key=lambda s: s.params)
    index = int(np.argmin([s.loss for s in shapes]))
    return ExactOptimum(flops=float(flops), best=shapes[index], shapes=tuple(shapes),
                        at_boundary=index in (0, len(shapes) - 1))


def _shape_allocation(params: ChinchillaParams, budget: float, config, accounting) -> ShapeAllocation:
    n = accounting.param_count(config).total
    tokens = accounting.tokens_for_flops(config, budget)
    return ShapeAllocation(name=config.name, params=n, tokens=float(tokens), loss=float(params.loss(n, tokens)))


def _positive(name: str, value):
    array = np.asarray(value, dtype=np.float64)
    if not (np.all(np.isfinite(array)) and np.all(array > 0)):
        raise ValueError(f"{name}={value!r} must be positive and finite")
    return array if array.ndim else float(array)

