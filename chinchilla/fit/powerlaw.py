"""Power laws fitted in log-log space, shared by Approaches 1 and 2 (Hoffmann et al. 2022, Section 3).

Both approaches end the same way: a set of compute-optimal points (C_i, N_opt,i) and (C_i, D_opt,i), and the laws
N_opt = k_N * C^a and D_opt = k_D * C^b fitted by ordinary least squares on (log C, log N_opt):

    log y = log k + e * log x,   e = cov(log x, log y) / var(log x).

Intervals come two ways: ``PowerLaw.exponent_interval`` (Student-t on the regression's standard error, for points
that are independent) and ``percentile_interval`` over bootstrap refits (what Table 2 reports: the 10th and 90th
percentiles over resamples of 80% of the data, done by each approach on its own raw data).

Plain numpy in float64: these are a handful of points, and ``chinchilla.fit`` must import in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

Interval = tuple[float, float]
TABLE2_PERCENTILES: tuple[float, float] = (10.0, 90.0)


@dataclasses.dataclass(frozen=True)
class PowerLaw:
    """y = coefficient * x**exponent, fitted on (log x, log y) by least squares.

    ``exponent_stderr`` is the OLS standard error of the slope (nan with fewer than 3 distinct points);
    ``log_residual_std`` the residual standard deviation in natural-log units.
    """

    exponent: float
    coefficient: float
    exponent_stderr: float
    log_residual_std: float
    n_points: int

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        return self.coefficient * np.asarray(x, dtype=np.float64) ** self.exponent

    def inverse(self, y: float | np.ndarray) -> float | np.ndarray:
        """The x at which the law reaches y: (y / coefficient)^(1 / exponent)."""
        if self.exponent == 0:
            raise ValueError("exponent=0: a flat power law has no inverse")
        return (np.asarray(y, dtype=np.float64) / self.coefficient) ** (1.0 / self.exponent)

    def exponent_interval(self, level: float = 0.8) -> Interval:
        """A two-sided Student-t interval on the exponent (``level`` = 0.8 matches Table 2's 10th-90th span)."""
        if not 0 < level < 1:
            raise ValueError(f"level={level} must lie in (0, 1)")
        if not math.isfinite(self.exponent_stderr):
            return (math.nan, math.nan)
        from scipy import stats

        half = stats.t.ppf(0.5 + level / 2, df=self.n_points - 2) * self.exponent_stderr
        return (self.exponent - half, self.exponent + half)

    def to_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class AllocationLaws:
    """N_opt ∝ C^a and D_opt ∝ C^b as fitted power laws with bootstrap intervals: what Approaches 1 and 2 share
    (``EnvelopeResult`` and ``IsoFlopResult`` add what each approach selected)."""

    n_law: PowerLaw
    d_law: PowerLaw
    a_interval: Interval
    b_interval: Interval
    n_resamples: int

    @property
    def a(self) -> float:
        return self.n_law.exponent

    @property
    def b(self) -> float:
        return self.d_law.exponent

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "a_interval": list(self.a_interval),
            "b_interval": list(self.b_interval),
            "n_law": self.n_law.to_dict(),
            "d_law": self.d_law.to_dict(),
            "n_resamples": self.n_resamples,
        }


def fit_power_law(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> PowerLaw:
    """Least squares of log y on log x. Needs at least 2 points with distinct positive x and positive y."""
    x_n = np.asarray(x, dtype=np.float64).ravel()
    y_n = np.asarray(y, dtype=np.float64).ravel()
    if x_n.shape != y_n.shape:
        raise ValueError(f"x has {x_n.size} values but y has {y_n.size}")
    bad = ~(np.isfinite(x_n) & np.isfinite(y_n) & (x_n > 0) & (y_n > 0))
    if bad.any():
        raise ValueError(f"x and y must be positive and finite; bad at indices {np.flatnonzero(bad)[:10].tolist()}")
    log_x, log_y = np.log(x_n), np.log(y_n)
    if x_n.size < 2 or np.ptp(log_x) == 0:
        raise ValueError(f"a power law needs at least 2 distinct x values; got {np.unique(x_n).size}")
    x_mean, y_mean = log_x.mean(), log_y.mean()
    sxx = np.sum((log_x - x_mean) ** 2)
    slope = float(np.sum((log_x - x_mean) * (log_y - y_mean)) / sxx)
    intercept = float(y_mean - slope * x_mean)
    residuals = log_y - (intercept + slope * log_x)
    n = x_n.size
    if n > 2:
        residual_var = float(np.sum(residuals**2) / (n - 2))
        stderr = math.sqrt(residual_var / sxx)
    else:
        residual_var, stderr = math.nan, math.nan
    return PowerLaw(
        exponent=slope,
        coefficient=math.exp(intercept),
        exponent_stderr=stderr,
        log_residual_std=math.sqrt(residual_var) if math.isfinite(residual_var) else math.nan,
        n_points=int(n),
    )


def percentile_interval(
    samples: Sequence[float] | np.ndarray, percentiles: tuple[float, float] = TABLE2_PERCENTILES
) -> Interval:
    """The (low, high) percentiles of the finite bootstrap samples (nan, nan if there are none)."""
    values = np.asarray(samples, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (math.nan, math.nan)
    low, high = np.percentile(values, percentiles)
    return (float(low), float(high))


#: Below this share of the requested resamples succeeding, the interval is not reported (nan, nan): the few that
#: fitted are those whose subsets happened to be fittable, and their spread can exclude the estimate itself.
MIN_RESAMPLE_SHARE = 0.5


def resample_interval(
    samples: Sequence[float], requested: int, percentiles: tuple[float, float] = TABLE2_PERCENTILES
) -> Interval:
    """:func:`percentile_interval`, or (nan, nan) when fewer than :data:`MIN_RESAMPLE_SHARE` of the ``requested``
    resamples gave a sample."""
    if requested and len(samples) < MIN_RESAMPLE_SHARE * requested:
        return (math.nan, math.nan)
    return percentile_interval(samples, percentiles)


def subsample_indices(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """A sorted random subset of ``round(fraction * n)`` of range(n), without replacement (Table 2's "80% of the
    data"); at least one element."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction} must lie in (0, 1]")
    size = max(1, int(round(fraction * n)))
    return np.sort(rng.choice(n, size=size, replace=False))
