"""Compute-optimal allocation from a fitted L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, Section
3.3 and Appendix D.2).

Under C = 6 N D, minimising L over N at fixed C gives the efficient frontier

    N_opt(C) = G (C / 6)^a,   D_opt(C) = G^-1 (C / 6)^b,   G = (alpha A / (beta B))^(1 / (alpha + beta)),
    a = beta / (alpha + beta),   b = alpha / (alpha + beta),

and its inverse: a model of N parameters is compute-optimal at C = 6 (N / G)^(1/a) FLOPs and D = C / (6 N) tokens
(the projections of Table 3 / Table A3). Under the exact Appendix F count (``chinchilla.flops``) a budget buys a
shape-dependent number of tokens, so :func:`exact_flops_optimum` scans a family of shapes (a zoo ladder) and takes
the one with the lowest predicted loss.

Two allocations go beyond the plain frontier:

- :func:`data_constrained_allocation` (Muennighoff et al. 2023, arXiv 2305.16264, Section 5 and their released
  ``optimal_allocation``): with only U unique tokens, the N, D = C / 6N that minimise the data-constrained law
  (repeated tokens and excess parameters are worth less), found numerically in log N.
- :func:`inference_aware_allocation` (Sardana et al. 2024, arXiv 2401.00448, Section 2): for a target loss and
  D_inf expected inference tokens, the N, D on the iso-loss curve L(N, D) = target that minimise training plus
  inference FLOPs 6 N D + 2 N D_inf. With D_inf = 0 it is the compute-optimal point that reaches the target.

Plain numpy/Python: scalars and small arrays, vectorised over budgets or bootstrap samples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from chinchilla.paper import APPROACH3_FIT, TABLE3_PARAMS, TABLE_A3_APPROACH3


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
        for name in ("E", "A", "B", "alpha", "beta"):  # E = 0 is a law (a fit whose E ran to its bound gives it)
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if not (np.all(np.isfinite(value)) and np.all(value >= 0 if name == "E" else value > 0)):
                raise ValueError(
                    f"{name}={getattr(self, name)!r} must be finite and {'non-negative' if name == 'E' else 'positive'}"
                )

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
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

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
        return {
            "E": float(self.E),
            "A": float(self.A),
            "B": float(self.B),
            "alpha": float(self.alpha),
            "beta": float(self.beta),
            "G": float(self.G),
            "a": float(self.a),
            "b": float(self.b),
            "source": self.source,
        }


# The paper's Approach 3 fit, unrounded (Hoffmann et al. 2022, as used by Besiroglu et al. 2024).
PAPER_FIT = ChinchillaParams(
    **APPROACH3_FIT,
    source="Hoffmann et al. 2022 Approach 3 fit (unrounded: "
    + ", ".join(f"{name} {value:.9g}" for name, value in APPROACH3_FIT.items())
    + ")",
)


def allocation(params: ChinchillaParams, flops: float) -> dict[str, float]:
    """Everything about one budget on the 6ND frontier, as a JSON-ready dict of numbers (its kind is
    :data:`FRONTIER_KIND`)."""
    return {
        "flops": float(flops),
        "n_opt": float(params.n_opt(flops)),
        "d_opt": float(params.d_opt(flops)),
        "tokens_per_param": float(params.tokens_per_param(flops)),
        "loss_opt": float(params.loss_opt(flops)),
        "G": float(params.G),
        "a": float(params.a),
        "b": float(params.b),
    }


FRONTIER_KIND = "6ND frontier (unlimited unique data, no inference cost)"
DATA_CONSTRAINED_KIND = "data-constrained (Muennighoff et al. 2023)"
INFERENCE_AWARE_KIND = "inference-aware (Sardana et al. 2024)"


@dataclasses.dataclass(frozen=True)
class DataConstrainedParams:
    """The data-constrained law of Muennighoff et al. 2023, eq. (5)-(6), on numpy (the fitter's version is
    :class:`chinchilla.fit.laws.DataConstrainedLaw`): L = E + A / N'^alpha + B / D'^beta with

        D' = U_D (1 + R_D* (1 - exp(-R_D / R_D*))),  R_D = max(D / U_D - 1, 0),  U_D = min(U, D),
        N' = U_N (1 + R_N* (1 - exp(-R_N / R_N*))),  U_N = min(N, N_opt(U_D)),  R_N = max(N / U_N - 1, 0),

    N_opt(D) = G (D G)^(beta / alpha), the Chinchilla-optimal size for D tokens."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    R_D_star: float
    R_N_star: float
    source: str = ""

    def __post_init__(self):
        for name in ("E", "A", "B", "alpha", "beta", "R_D_star", "R_N_star"):
            value = getattr(self, name)
            if not (np.isfinite(value) and (value >= 0 if name == "E" else value > 0)):
                raise ValueError(f"{name}={value!r} must be finite and {'non-negative' if name == 'E' else 'positive'}")

    @classmethod
    def from_mapping(cls, values, source: str = "") -> DataConstrainedParams:
        """From a mapping with the seven named parameters (e.g. ``ParametricFit.params`` of the data-constrained
        law); a ValueError naming what is missing otherwise."""
        names = ("E", "A", "B", "alpha", "beta", "R_D_star", "R_N_star")
        missing = [k for k in names if k not in values]
        if missing:
            raise ValueError(f"the data-constrained allocation needs {list(names)}; missing {missing}")
        v = {k: float(values[k]) for k in names}
        return cls(
            E=v["E"],
            A=v["A"],
            B=v["B"],
            alpha=v["alpha"],
            beta=v["beta"],
            R_D_star=v["R_D_star"],
            R_N_star=v["R_N_star"],
            source=source,
        )

    @property
    def chinchilla(self) -> ChinchillaParams:
        """The same E, A, B, alpha, beta as a Chinchilla law (the law with unlimited unique data)."""
        return ChinchillaParams(self.E, self.A, self.B, self.alpha, self.beta, source=self.source)

    def loss(self, n, d, u):
        """L(N, D, U) with U unique tokens available (a run of D < U tokens sees only D of them)."""
        n, d, u = _positive("n", n), _positive("d", d), _positive("u", u)
        g = self.chinchilla.G
        unique_d = np.minimum(u, d)
        repeats_d = np.maximum(d / unique_d - 1.0, 0.0)
        unique_n = np.minimum(n, g * (unique_d * g) ** (self.beta / self.alpha))
        repeats_n = np.maximum(n / unique_n - 1.0, 0.0)
        d_eff = unique_d * (1.0 + self.R_D_star * -np.expm1(-repeats_d / self.R_D_star))
        n_eff = unique_n * (1.0 + self.R_N_star * -np.expm1(-repeats_n / self.R_N_star))
        return self.E + self.A / n_eff**self.alpha + self.B / d_eff**self.beta

    def to_dict(self) -> dict[str, float | str]:
        return {
            k: (getattr(self, k) if k == "source" else float(getattr(self, k)))
            for k in ("E", "A", "B", "alpha", "beta", "R_D_star", "R_N_star", "source")
        }


# Muennighoff et al. 2023's released fit (README of huggingface/datablations: a, b, e = log A, log B, log E;
# alpha = beta; R_D* = 15.387756, R_N* = 5.309743). Their optimal_allocation(1e22, 25e9) gives ~7.02e9 parameters,
# ~2.37e11 tokens.
MUENNIGHOFF_FIT = DataConstrainedParams(
    E=float(np.exp(0.6254804)),
    A=float(np.exp(6.255414)),
    B=float(np.exp(7.3049974)),
    alpha=0.3526596,
    beta=0.3526596,
    R_D_star=15.387756,
    R_N_star=5.309743,
    source="Muennighoff et al. 2023 released fit (huggingface/datablations README)",
)

# Where an allocation stops meaning anything. A language model has at least one transformer
# layer: 12 d^2 parameters, about 1,000 at width 9; and it trains on at least one sequence: 128 tokens, the shortest
# context of this project's models (``zoo.TINY_SEQ_LEN``). Below either, an "optimum" is an artefact of the law's
# algebra (``allocate --flops 1e22 --law data_constrained --unique-tokens 1`` would give N_opt = 10.31 parameters).
MIN_MODEL_PARAMS = 1_000.0
MIN_TRAINING_TOKENS = 128.0
# An allocation this many times beyond the range of the runs a law was fitted on (in N, D or C) is flagged.
FAR_OUTSIDE = 100.0


# (lowest, highest), either None where unknown (Muennighoff et al. 2023 give their runs' largest D, not the smallest).
Span = tuple[float | None, float | None]


@dataclasses.dataclass(frozen=True)
class FittedRange:
    """The runs a law was fitted on: (lowest, highest) N, D, C and epochs (D / U); None where unknown (the whole
    span or either end)."""

    source: str
    n: Span | None = None
    d: Span | None = None
    flops: Span | None = None
    epochs: Span | None = None

    @classmethod
    def from_table(cls, table) -> FittedRange:
        """The range of a :class:`chinchilla.fit.table.ScalingTable`'s runs (epochs when it has unique tokens)."""
        span = lambda x: (float(np.min(x)), float(np.max(x)))  # noqa: E731
        u = getattr(table, "unique_tokens", None)
        return cls(
            source=f"the {len(table)} runs fitted",
            n=span(table.n),
            d=span(table.d),
            flops=span(table.flops),
            epochs=span(table.d / u) if u is not None else None,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The runs behind the published fits: Figure 4's 245 points as extracted by Besiroglu et al. 2024 (the reference
# table: tests check these numbers against it), and Muennighoff et al. 2023's 400 runs (10M to 9B parameters, up to
# 900B tokens and 1,500 epochs, as their paper summarises them).
PAPER_FIT_RANGE = FittedRange(
    source="the paper's Figure 4 runs", n=(5.73e7, 1.62e10), d=(2.45e8, 3.18e11), flops=(1.40e18, 1.30e22)
)
MUENNIGHOFF_FIT_RANGE = FittedRange(
    source="Muennighoff et al. 2023's runs", n=(1e7, 9e9), d=(None, 9e11), epochs=(1.0, 1500.0)
)


def check_physical(n_opt: float, d_opt: float, unique_tokens: float | None = None, *, what: str = "allocation") -> None:
    """A ValueError saying why when an allocation is physically absurd: fewer parameters than one transformer
    layer, fewer tokens (or unique tokens) than one training sequence."""
    if unique_tokens is not None and unique_tokens < MIN_TRAINING_TOKENS:
        raise ValueError(
            f"unique tokens U = {unique_tokens:.4g} is fewer than one training sequence "
            f"({MIN_TRAINING_TOKENS:.0f} tokens): no data-constrained allocation is meaningful"
        )
    if n_opt < MIN_MODEL_PARAMS:
        raise ValueError(
            f"the {what} gives N_opt = {n_opt:.4g} parameters, fewer than one transformer layer "
            f"(~{MIN_MODEL_PARAMS:,.0f}): the law says nothing there; give a larger budget"
            + (" or more unique tokens" if unique_tokens is not None else "")
        )
    if d_opt < MIN_TRAINING_TOKENS:
        raise ValueError(
            f"the {what} gives D_opt = {d_opt:.4g} tokens, fewer than one training sequence "
            f"({MIN_TRAINING_TOKENS:.0f} tokens): the law says nothing there; give a larger budget"
        )


def domain_warnings(
    fitted: FittedRange, *, n_opt: float, d_opt: float, flops: float | None = None, epochs: float | None = None
) -> list[str]:
    """One line per way an allocation lies outside the runs a law was fitted on: N, D or C more than
    :data:`FAR_OUTSIDE` times beyond their range, or more epochs (D / U) than any run had."""
    lines = []
    for name, value, span in (("C", flops, fitted.flops), ("N_opt", n_opt, fitted.n), ("D_opt", d_opt, fitted.d)):
        if value is None or span is None:
            continue
        low, high = span
        if high is not None and value > FAR_OUTSIDE * high:
            lines.append(
                f"{name} = {value:.3g} is {value / high:,.0f}x the largest of {fitted.source} "
                f"({high:.3g}): an extrapolation over {np.log10(value / high):.1f} decades"
            )
        elif low is not None and value < low / FAR_OUTSIDE:
            lines.append(
                f"{name} = {value:.3g} is {low / value:,.0f}x below the smallest of {fitted.source} "
                f"({low:.3g}): an extrapolation over {np.log10(low / value):.1f} decades"
            )
    most_epochs = None if fitted.epochs is None else fitted.epochs[1]
    if epochs is not None and most_epochs is not None and epochs > most_epochs * (1 + 1e-9):
        lines.append(
            f"{epochs:.4g} epochs of the unique data is beyond the {most_epochs:.4g} epochs of "
            f"{fitted.source}: the law's repetition term is not tested there"
        )
    return lines


_SCAN_POINTS = 4001  # coarse log-grid points before the Brent refinement


def data_constrained_allocation(
    params: DataConstrainedParams, flops: float, unique_tokens: float
) -> dict[str, float | str]:
    """The N, D = C / (6 N) that minimise ``params.loss(N, D, U)`` at a budget of ``flops`` FLOPs with
    ``unique_tokens`` U unique tokens (Muennighoff et al. 2023, Section 5).

    Found in log N: a scan of every N from 1 to C / 6 (a log grid of 4,001 points, so a second basin is not
    missed), refined by bounded Brent between the best point's neighbours to 1e-10 in log N. Returns n_opt, d_opt,
    loss_opt, epochs (= d_opt / U) and, for comparison, the unconstrained 6ND frontier's point at the same budget.
    """
    flops, unique_tokens = _positive("flops", float(flops)), _positive("unique_tokens", float(unique_tokens))
    if flops / 6.0 <= 1.0:
        raise ValueError(f"flops={flops!r}: a budget below 6 FLOPs buys less than one parameter-token")

    def loss_at(log_n):
        n = np.exp(log_n)
        return params.loss(n, flops / (6.0 * n), unique_tokens)

    log_n = _scan_minimum(loss_at, 0.0, float(np.log(flops / 6.0)))
    n_opt = float(np.exp(log_n))
    d_opt = flops / (6.0 * n_opt)
    free = params.chinchilla
    return {
        "kind": DATA_CONSTRAINED_KIND,
        "flops": flops,
        "unique_tokens": unique_tokens,
        "n_opt": n_opt,
        "d_opt": d_opt,
        "tokens_per_param": d_opt / n_opt,
        "epochs": d_opt / unique_tokens,
        "loss_opt": float(params.loss(n_opt, d_opt, unique_tokens)),
        "unconstrained_n_opt": float(free.n_opt(flops)),
        "unconstrained_d_opt": float(free.d_opt(flops)),
    }


def inference_aware_allocation(
    params: ChinchillaParams, target_loss: float, inference_tokens: float
) -> dict[str, float | str]:
    """The N, D with L(N, D) = ``target_loss`` that minimise training plus inference FLOPs,
    6 N D + 2 N D_inf with D_inf = ``inference_tokens`` (Sardana et al. 2024, eq. 2-3, with C_inf = 2 N D_inf).

    On the iso-loss curve, s = (A / N^alpha) / (target - E) in (0, 1) fixes N = (A / (s (target - E)))^(1/alpha)
    and D = (B / ((1 - s)(target - E)))^(1/beta); the total cost is minimised over logit(s) (scan, then bounded
    Brent). With no inference tokens the minimum is the compute-optimal point reaching the target, s = beta /
    (alpha + beta); more inference moves it to a smaller N trained on more tokens. A ValueError when the target is
    at or below the irreducible loss E (no model reaches it) or inference_tokens is negative.
    """
    target_loss, inference_tokens = float(target_loss), float(inference_tokens)
    if not np.isfinite(target_loss) or target_loss <= float(params.E):
        raise ValueError(
            f"target_loss={target_loss!r} is not above the law's irreducible loss E={params.E:.6g}: no N, D reach it"
        )
    if not (np.isfinite(inference_tokens) and inference_tokens >= 0):
        raise ValueError(f"inference_tokens={inference_tokens!r} must be finite and non-negative")
    excess = np.log(target_loss - params.E)

    def log_nd(z):
        log_s, log_1ms = -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z)  # log s, log(1 - s), s = sigmoid(z)
        return ((np.log(params.A) - log_s - excess) / params.alpha, (np.log(params.B) - log_1ms - excess) / params.beta)

    def log_cost(z):
        log_n, log_d = log_nd(z)
        return log_n + np.log(6.0 * np.exp(log_d) + 2.0 * inference_tokens)

    z = _scan_minimum(log_cost, -60.0, 60.0)
    log_n, log_d = log_nd(z)
    n_opt, d_opt = float(np.exp(log_n)), float(np.exp(log_d))
    train, inference = 6.0 * n_opt * d_opt, 2.0 * n_opt * inference_tokens
    return {
        "kind": INFERENCE_AWARE_KIND,
        "target_loss": target_loss,
        "inference_tokens": inference_tokens,
        "n_opt": n_opt,
        "d_opt": d_opt,
        "tokens_per_param": d_opt / n_opt,
        "train_flops": train,
        "inference_flops": inference,
        "total_flops": train + inference,
    }


def _scan_minimum(fun, low: float, high: float) -> float:
    """argmin on [low, high] of a numpy-vectorised scalar function: the best of a 4,001-point grid, refined by
    bounded Brent between its neighbours (so a function with several basins is not caught in a poor one)."""
    from scipy.optimize import minimize_scalar  # ~1 s to import: only when an allocation needs it

    grid = np.linspace(low, high, _SCAN_POINTS)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        values = np.asarray(fun(grid), dtype=np.float64)
    values = np.where(np.isfinite(values), values, np.inf)
    i = int(np.argmin(values))
    if not np.isfinite(values[i]):
        raise ValueError("the allocation's objective is not finite anywhere in its range")
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    result = minimize_scalar(lambda x: float(fun(x)), bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
    return float(result.x) if result.fun <= values[i] else float(grid[i])


def projections(params: ChinchillaParams, sizes: Sequence[float] = TABLE3_PARAMS) -> list[dict[str, float]]:
    """Table 3 / A3 style rows: for each model size, the FLOPs at which it is compute-optimal and its tokens."""
    return [
        {"params": float(n), "flops": float(params.flops_for_params(n)), "tokens": float(params.tokens_for_params(n))}
        for n in sizes
    ]


def compare_table_a3(rows: Sequence[dict[str, float]]) -> list[dict[str, float]]:
    """``projections`` rows for the paper's sizes with Table A3's published Approach 3 column beside them and the
    relative difference ours / published - 1. The paper's unrounded fit reproduces the column only to within
    2-19%, the gap growing with N (the paper does not say how the column was computed; we do not know why)."""
    if [r["params"] for r in rows] != list(TABLE3_PARAMS):
        raise ValueError("compare_table_a3 needs the rows of projections() for the paper's sizes")
    return [
        {
            **row,
            "published_flops": flops,
            "published_tokens": tokens,
            "flops_rel_diff": row["flops"] / flops - 1.0,
            "tokens_rel_diff": row["tokens"] / tokens - 1.0,
        }
        for row, (flops, tokens) in zip(rows, TABLE_A3_APPROACH3)
    ]


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
        return {
            "flops": self.flops,
            "best": dataclasses.asdict(self.best),
            "at_boundary": self.at_boundary,
            "shapes": [dataclasses.asdict(s) for s in self.shapes],
        }


def exact_flops_optimum(params: ChinchillaParams, flops: float, configs: Sequence) -> ExactOptimum:
    """The shape in ``configs`` (``ModelConfig``s, e.g. ``zoo.ladder("chinchilla")``) with the lowest predicted loss
    when trained on the tokens that ``flops`` buys under the exact Appendix F count (``flops.tokens_for_flops``),
    with N = the shape's total parameters."""
    from chinchilla import flops as accounting

    if not configs:
        raise ValueError("configs is empty: give at least one model shape")
    shapes = sorted(
        (_shape_allocation(params, flops, config, accounting) for config in configs), key=lambda s: s.params
    )
    index = int(np.argmin([s.loss for s in shapes]))
    return ExactOptimum(
        flops=float(flops), best=shapes[index], shapes=tuple(shapes), at_boundary=index in (0, len(shapes) - 1)
    )


def _shape_allocation(params: ChinchillaParams, budget: float, config, accounting) -> ShapeAllocation:
    n = accounting.param_count(config).total
    tokens = accounting.tokens_for_flops(config, budget)
    return ShapeAllocation(name=config.name, params=n, tokens=float(tokens), loss=float(params.loss(n, tokens)))


def _positive(name: str, value):
    array = np.asarray(value, dtype=np.float64)
    if not (np.all(np.isfinite(array)) and np.all(array > 0)):
        raise ValueError(f"{name}={value!r} must be positive and finite")
    return array if array.ndim else float(array)
