"""Loss laws the parametric fitter can fit: a small interface and two laws.

A law maps raw parameters ``theta`` (the unconstrained vector L-BFGS moves) and covariates (positive arrays such as
N and D) to a predicted log loss. The fitter calls :meth:`features` once per fit (e.g. log N, log D: hoisting these
logs out of the L-BFGS loop saves ~20% of each iteration) and :meth:`log_predict` at every evaluation, so any law
with those two methods, a tuple of raw parameter names, the covariates it needs, a start grid and a map to named
("natural") parameters can be fitted, bootstrapped and checked on held-out runs the same way.

- :class:`ChinchillaLaw`: Hoffmann et al. 2022, eq. (2) / Section 3.3, L(N, D) = E + A / N^alpha + B / D^beta,
  fitted in the paper's log-sum-exp form with a = log A, b = log B, e = log E:
  log L = LSE(a - alpha log N, b - beta log D, e).
- :class:`DataConstrainedLaw`: Muennighoff et al. 2023, "Scaling Data-Constrained Language Models", eq. (5)-(6):
  repeated data counts as D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)) with R_D = D / U_D - 1 repetitions of U_D unique
  tokens, and parameters beyond the compute-optimal size for U_D count as N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)),
  U_N = min(N, N_opt(U_D)), R_N = N / U_N - 1; then L = E + A / N'^alpha + B / D'^beta.
- :class:`FixedLaw`: any law with some raw parameters held at given values (e.g. the data-constrained law's
  R_D*, R_N* fitted on top of a Chinchilla fit, as Muennighoff et al. do).

Laws are frozen dataclasses, hashable, so they can be static arguments of ``jax.jit``.

Loss scale: the paper's grid (E in [e^-1, e^1], A and B in [1, e^25]) was built for losses of 2-4 nats. The fitting
objective compares *log* losses, so multiplying every loss by s is exactly undone by adding log s to log A, log B and
log E (:data:`LOSS_SCALE_PARAMS`); :func:`data_starts` shifts those grid columns by
:func:`loss_scale_shift`, a whole number k = round(log(min loss) - 1), which is 0 for a smallest loss in
[e^0.5, e^1.5) = [1.65, 4.48) nats (the paper's data: 2.08), so paper-scale data keep the paper's grid exactly and
losses of ~1,000 get E starts around their scale. The fit is then invariant to the loss scale in steps of e.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np

# The paper's initialisation grid (Section D.2): alpha, beta in {0, 0.5, ..., 2}; e in {-1, -0.5, ..., 1};
# a, b in {0, 5, ..., 25}. 6 * 6 * 5 * 5 * 5 = 4,500 starts.
PAPER_GRID_A: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
PAPER_GRID_B: tuple[float, ...] = PAPER_GRID_A
PAPER_GRID_E: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)
PAPER_GRID_ALPHA: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)
PAPER_GRID_BETA: tuple[float, ...] = PAPER_GRID_ALPHA

# Raw parameters that move with the loss scale (log L -> log L + log s), and the natural name of every raw one.
LOSS_SCALE_PARAMS: tuple[str, ...] = ("log_A", "log_B", "log_E")
NATURAL_NAMES: dict[str, str] = {
    "log_A": "A",
    "log_B": "B",
    "log_E": "E",
    "alpha": "alpha",
    "beta": "beta",
    "log_R_D": "R_D_star",
    "log_R_N": "R_N_star",
}


class Law(Protocol):
    """What the fitter needs from a law."""

    @property
    def name(self) -> str:
        """The law's name (``chinchilla``, ``data_constrained``, ...)."""

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the raw (optimised) parameters, in the order of ``theta``."""

    @property
    def covariates(self) -> tuple[str, ...]:
        """Names of the per-run covariates :meth:`features` reads (e.g. ``("n", "d")``)."""

    def features(self, covariates: Mapping[str, jnp.ndarray]) -> Mapping[str, jnp.ndarray]:
        """What :meth:`log_predict` reads, computed once from the positive covariates (jittable)."""

    def log_predict(self, theta: jnp.ndarray, features: Mapping[str, jnp.ndarray]) -> jnp.ndarray:
        """Predicted log loss per run from :meth:`features` (jittable, differentiable in ``theta``)."""

    def natural(self, theta) -> dict[str, object]:
        """Named parameters on their natural scale (works on numpy and jax arrays, with leading batch axes)."""

    def default_starts(self) -> np.ndarray:
        """The (S, P) grid of raw starting points."""


def lse3(t0: jnp.ndarray, t1: jnp.ndarray, t2: jnp.ndarray) -> jnp.ndarray:
    """log(exp(t0) + exp(t1) + exp(t2)), elementwise, without overflow (the largest term is factored out)."""
    m = jnp.maximum(jnp.maximum(t0, t1), t2)
    return m + jnp.log(jnp.exp(t0 - m) + jnp.exp(t1 - m) + jnp.exp(t2 - m))


def _xp(x):
    """jax.numpy for jax arrays (and tracers), numpy otherwise."""
    return jnp if isinstance(x, jax.Array) else np


def paper_grid() -> np.ndarray:
    """The paper's 4,500 starts as rows (a, b, e, alpha, beta) = (log A, log B, log E, alpha, beta)."""
    rows = itertools.product(PAPER_GRID_ALPHA, PAPER_GRID_BETA, PAPER_GRID_E, PAPER_GRID_A, PAPER_GRID_B)
    return np.array([(a, b, e, alpha, beta) for alpha, beta, e, a, b in rows], dtype=np.float64)


def loss_scale_shift(loss) -> float:
    """k = round(log(min loss) - 1): 0 for paper-scale losses (smallest in [1.65, 4.48) nats), ~5 for ~1,000."""
    return float(np.round(np.log(np.min(np.asarray(loss, dtype=np.float64))) - 1.0))


# Units of N and D: the paper's grid of log A, log B was built for N and D counted in parameters
# and tokens. With N in millions, A / N^alpha keeps its value only if log A moves by -alpha log(1e6): the grid's
# log A (log B) column moves by alpha * k_N * ln 10 (beta * k_D * ln 10) row by row, k = the whole number of decades
# between the data's geometric-mean N (D) and these references, 0 for the paper's data (10^8.9 and 10^10.2).
UNIT_REFERENCE: dict[str, float] = {"n": 1e9, "d": 1e10}
# (scale parameter, exponent, covariate) of each power-law term whose coefficient carries the covariate's unit.
UNIT_TERMS: tuple[tuple[str, str, str], ...] = (("log_A", "alpha", "n"), ("log_B", "beta", "d"))


def unit_shifts(covariates: Mapping[str, np.ndarray] | None) -> dict[str, int]:
    """Per covariate (``n``, ``d``), the whole decades k between its geometric mean and :data:`UNIT_REFERENCE`
    (0 for paper-scale data; -6 for N given in millions)."""
    if covariates is None:
        return {key: 0 for key in UNIT_REFERENCE}
    return {
        key: int(np.round(np.mean(np.log10(np.asarray(covariates[key], dtype=np.float64))) - np.log10(ref)))
        for key, ref in UNIT_REFERENCE.items()
        if key in covariates
    }


def shear_units(law, thetas: np.ndarray, shifts: Mapping[str, int], sign: float = 1.0) -> np.ndarray:
    """Raw parameters (rows of ``thetas``) moved to the data's units (``sign`` = 1: log A += alpha k_N ln 10, ...)
    or back to the paper's (``sign`` = -1). The fit is the same in either; a unit change is exactly a change of k."""
    out = np.array(thetas, dtype=np.float64, copy=True)
    names = law.param_names
    for scale, exponent, key in UNIT_TERMS:
        if scale in names and exponent in names and shifts.get(key):
            i, j = names.index(scale), names.index(exponent)
            out[..., i] += sign * out[..., j] * shifts[key] * math.log(10.0)
    return out


def data_starts(law, loss, covariates: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """``law.default_starts()`` with its log A, log B, log E columns moved by :func:`loss_scale_shift` ``(loss)``
    (unchanged for paper-scale losses), and its log A, log B columns by the units of N and D
    (:func:`unit_shifts`, :func:`shear_units`; unchanged for paper-scale N and D)."""
    grid = np.array(law.default_starts(), dtype=np.float64)
    shift = loss_scale_shift(loss)
    if shift:
        for i, name in enumerate(law.param_names):
            if name in LOSS_SCALE_PARAMS:
                grid[:, i] += shift
    return shear_units(law, grid, unit_shifts(covariates))


def _check_positive_params(name: str, values: Mapping[str, float], keys: tuple[str, ...]) -> None:
    for key in keys:
        value = values[key]
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name}: {key}={value!r} must be a positive finite number")


@dataclasses.dataclass(frozen=True)
class ChinchillaLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, eq. 2), raw theta = (a, b, e, alpha, beta)
    with A, B, E = exp(a), exp(b), exp(e); covariates ``n`` (parameters) and ``d`` (training tokens)."""

    name: str = "chinchilla"

    @property
    def param_names(self) -> tuple[str, ...]:
        return ("log_A", "log_B", "log_E", "alpha", "beta")

    @property
    def covariates(self) -> tuple[str, ...]:
        return ("n", "d")

    def features(self, covariates):
        return {"log_n": jnp.log(covariates["n"]), "log_d": jnp.log(covariates["d"])}

    def log_predict(self, theta, features):
        log_a, log_b, log_e, alpha, beta = (theta[..., i] for i in range(5))
        log_n, log_d = features["log_n"], features["log_d"]
        return lse3(log_a - alpha * log_n, log_b - beta * log_d, jnp.broadcast_to(log_e, jnp.shape(log_n)))

    def natural(self, theta) -> dict[str, object]:
        xp = _xp(theta)
        return {
            "E": xp.exp(theta[..., 2]),
            "A": xp.exp(theta[..., 0]),
            "B": xp.exp(theta[..., 1]),
            "alpha": theta[..., 3],
            "beta": theta[..., 4],
        }

    def raw(self, E: float, A: float, B: float, alpha: float, beta: float) -> np.ndarray:
        """theta for natural parameters (the inverse of :meth:`natural`)."""
        _check_positive_params(self.name, {"E": E, "A": A, "B": B}, ("E", "A", "B"))
        return np.array([math.log(A), math.log(B), math.log(E), alpha, beta], dtype=np.float64)

    def default_starts(self) -> np.ndarray:
        return paper_grid()


# R_D* and R_N* starts (raw: their logs), crossed with each other and with the Chinchilla grid: half-decade steps
# from 1 to 1000, in the spirit of the paper's grid (evenly spaced in the raw, log, parameters). The R_D*, R_N*
# objective has several local minima (the Huber loss is nearly L1, so each group of runs that prefers its own R*
# makes a basin), and Muennighoff et al.'s three values each (5, 15, 50 and 2, 5, 20) can all lie in a higher one.
DATA_CONSTRAINED_R_D_STARTS: tuple[float, ...] = tuple(float(x) for x in np.round(np.geomspace(1.0, 1000.0, 7), 4))
DATA_CONSTRAINED_R_N_STARTS: tuple[float, ...] = DATA_CONSTRAINED_R_D_STARTS


@dataclasses.dataclass(frozen=True)
class DataConstrainedLaw:
    """Muennighoff et al. 2023, eq. (5)-(6): L = E + A / N'^alpha + B / D'^beta with effective data and parameters

        D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)),  R_D = max(D / U_D - 1, 0),
        N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)),  U_N = min(N, N_opt(U_D)),  R_N = max(N / U_N - 1, 0),

    where N_opt(D) = G (D G)^(beta/alpha) is the Chinchilla-optimal size for D tokens, G = (alpha A / (beta B))^(1 /
    (alpha + beta)). Raw theta = (a, b, e, alpha, beta, log R_D*, log R_N*); covariates ``n``, ``d`` and ``u``
    (unique tokens, u <= d). With no repetition (d = u) and N <= N_opt(U_D) it is Chinchilla's law.
    """

    name: str = "data_constrained"

    @property
    def param_names(self) -> tuple[str, ...]:
        return ("log_A", "log_B", "log_E", "alpha", "beta", "log_R_D", "log_R_N")

    @property
    def covariates(self) -> tuple[str, ...]:
        return ("n", "d", "u")

    def features(self, covariates):
        return {f"log_{k}": jnp.log(covariates[k]) for k in ("n", "d", "u")}

    def log_predict(self, theta, features):
        log_a, log_b, log_e, alpha, beta, log_rd, log_rn = (theta[..., i] for i in range(7))
        log_n, log_d, log_u = (features[f"log_{k}"] for k in ("n", "d", "u"))
        log_g = (jnp.log(alpha) + log_a - jnp.log(beta) - log_b) / (alpha + beta)
        log_n_for_u = log_g + (beta / alpha) * (log_u + log_g)  # N_opt(U_D) on the 6ND frontier
        log_un = jnp.minimum(log_n, log_n_for_u)
        log_n_eff = log_un + _log_effective_repeats(jnp.exp(log_n - log_un) - 1.0, jnp.exp(log_rn))
        log_d_eff = log_u + _log_effective_repeats(jnp.exp(log_d - log_u) - 1.0, jnp.exp(log_rd))
        return lse3(log_a - alpha * log_n_eff, log_b - beta * log_d_eff, jnp.broadcast_to(log_e, log_n.shape))

    def natural(self, theta) -> dict[str, object]:
        xp = _xp(theta)
        return {
            "E": xp.exp(theta[..., 2]),
            "A": xp.exp(theta[..., 0]),
            "B": xp.exp(theta[..., 1]),
            "alpha": theta[..., 3],
            "beta": theta[..., 4],
            "R_D_star": xp.exp(theta[..., 5]),
            "R_N_star": xp.exp(theta[..., 6]),
        }

    def raw(
        self, E: float, A: float, B: float, alpha: float, beta: float, R_D_star: float, R_N_star: float
    ) -> np.ndarray:
        """theta for natural parameters (the inverse of :meth:`natural`)."""
        values = {"E": E, "A": A, "B": B, "alpha": alpha, "beta": beta, "R_D_star": R_D_star, "R_N_star": R_N_star}
        _check_positive_params(self.name, values, tuple(values))
        return np.array(
            [math.log(A), math.log(B), math.log(E), alpha, beta, math.log(R_D_star), math.log(R_N_star)],
            dtype=np.float64,
        )

    def default_starts(self) -> np.ndarray:
        """Chinchilla's grid (alpha, beta = 0 left out: N_opt(U_D) needs both positive) x R_D*, R_N* starts."""
        base = paper_grid()
        base = base[(base[:, 3] > 0) & (base[:, 4] > 0)]
        extra = np.log(np.array(list(itertools.product(DATA_CONSTRAINED_R_D_STARTS, DATA_CONSTRAINED_R_N_STARTS))))
        return np.concatenate([np.repeat(base, len(extra), axis=0), np.tile(extra, (len(base), 1))], axis=1)


def _log_effective_repeats(repeats, r_star):
    """log(1 + R* (1 - exp(-R / R*))) for R >= 0 repetitions (R clipped at 0): the log of effective over unique."""
    repeats = jnp.maximum(repeats, 0.0)
    return jnp.log1p(r_star * -jnp.expm1(-repeats / r_star))


@dataclasses.dataclass(frozen=True)
class FixedLaw:
    """``base`` with the raw parameters in ``fixed`` (name, value pairs) held constant; theta holds the others, in
    ``base.param_names`` order. ``natural`` reports all parameters, fixed ones included."""

    base: Law
    fixed: tuple[tuple[str, float], ...]

    def __post_init__(self):
        names = self.base.param_names
        unknown = [k for k, _ in self.fixed if k not in names]
        if unknown:
            raise ValueError(
                f"FixedLaw: unknown {'parameter' if len(unknown) == 1 else 'parameters'} {', '.join(unknown)}; "
                f"{self.base.name} has {', '.join(names)}"
            )
        if len(self.fixed) >= len(names):
            raise ValueError(f"FixedLaw: fixing {len(self.fixed)} of {len(names)} parameters leaves none to fit")

    @classmethod
    def of(cls, base: Law, **fixed: float) -> FixedLaw:
        """``FixedLaw.of(DataConstrainedLaw(), log_A=..., ...)``."""
        return cls(base, tuple(sorted((k, float(v)) for k, v in fixed.items())))

    @property
    def name(self) -> str:
        return f"{self.base.name}[fixed: {', '.join(k for k, _ in self.fixed)}]"

    @property
    def param_names(self) -> tuple[str, ...]:
        fixed = dict(self.fixed)
        return tuple(k for k in self.base.param_names if k not in fixed)

    @property
    def covariates(self) -> tuple[str, ...]:
        return self.base.covariates

    def full(self, theta):
        """The base law's theta: free values in place, fixed values filled in (numpy or jax, batch axes kept)."""
        fixed = dict(self.fixed)
        xp = _xp(theta)
        free = iter(range(len(self.param_names)))
        columns = [
            xp.broadcast_to(xp.asarray(fixed[k], dtype=theta.dtype), theta.shape[:-1])
            if k in fixed
            else theta[..., next(free)]
            for k in self.base.param_names
        ]
        return xp.stack(columns, axis=-1)

    def features(self, covariates):
        return self.base.features(covariates)

    def log_predict(self, theta, features):
        return self.base.log_predict(self.full(theta), features)

    def natural(self, theta) -> dict[str, object]:
        return self.base.natural(self.full(theta))

    def default_starts(self) -> np.ndarray:
        """The base grid restricted to the free columns, duplicates removed."""
        keep = [i for i, k in enumerate(self.base.param_names) if k not in dict(self.fixed)]
        return np.unique(self.base.default_starts()[:, keep], axis=0)


CHINCHILLA = ChinchillaLaw()
DATA_CONSTRAINED = DataConstrainedLaw()
LAWS: dict[str, Law] = {CHINCHILLA.name: CHINCHILLA, DATA_CONSTRAINED.name: DATA_CONSTRAINED}

# Muennighoff et al. 2023's released fit (README of huggingface/datablations) as raw theta:
# a, b, e, alpha, beta, log R_D*, log R_N* with alpha = beta tied and R_D* = 15.387756, R_N* = 5.309743.
MUENNIGHOFF_THETA: tuple[float, ...] = (
    6.255414,
    7.3049974,
    0.6254804,
    0.3526596,
    0.3526596,
    math.log(15.387756),
    math.log(5.309743),
)


def get_law(name: str) -> Law:
    """A law by name: ``chinchilla`` or ``data_constrained``."""
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r}; known laws: {', '.join(sorted(LAWS))}")
    return LAWS[name]
