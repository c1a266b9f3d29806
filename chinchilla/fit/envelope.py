"""Approach 1: the lower envelope of training curves (Hoffmann et al. 2022, Section 3.1, Figure 2).

Each model size is trained for several cosine cycle lengths (the paper: 4, spanning 16x in tokens; the cycle equals
the run). Each run's loss curve is smoothed (a Gaussian filter over ``window`` logged steps), interpolated against
cumulative FLOPs (linear in log C), and at ``n_points`` (1,500) log-spaced FLOP values the run with the lowest loss is
taken. Its N and the tokens it had seen there, D, are the compute-optimal point at that C; then

    N_opt = k_N * C^a,   D_opt = k_D * C^b

are fitted by least squares in log-log space over all the grid points. The paper's a = 0.50, b = 0.50, and all its
selected points lay in the last 15% of their run; ``EnvelopeResult.late_fraction`` reports the same check, next to
``late_possible``, the share of FLOP values where some run is in its last 15% at all (runs ending only at a few
budgets bound it: with budgets x2.5 apart, ln(1/0.85) / ln(2.5) = 18%).

The Table 2 interval resamples runs: ``n_resamples`` subsets of 80% of the curves, each with its own envelope and
fit (on the same grid, over the FLOP range the resample's own runs span); the 10th and 90th percentiles of a and b.

This module knows nothing of training: a curve is an array of (tokens, FLOPs, loss) and the N it was trained with,
whatever parameter convention the caller chose.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from chinchilla.fit.powerlaw import (
    TABLE2_PERCENTILES,
    AllocationLaws,
    PowerLaw,
    fit_power_law,
    resample_interval,
    subsample_indices,
)

PAPER_GRID_POINTS = 1500
PAPER_SMOOTHING_WINDOW = 10
PAPER_LATE_THRESHOLD = 0.85  # "all selected points lie in the last 15% of their run"
REPORTED_THRESHOLDS = (0.85, 0.8, 0.7)  # the paper's, and two looser ones: how far from their ends the points are


@dataclasses.dataclass(frozen=True)
class Curve:
    """One run's training curve. ``tokens`` and ``flops`` are cumulative at each logged step (increasing);
    ``n_params`` is the run's N under the caller's convention (total or non-embedding)."""

    run: str
    n_params: float
    tokens: np.ndarray
    flops: np.ndarray
    loss: np.ndarray

    def __post_init__(self) -> None:
        arrays = {name: np.asarray(getattr(self, name), dtype=np.float64) for name in ("tokens", "flops", "loss")}
        sizes = {name: a.size for name, a in arrays.items()}
        if len(set(sizes.values())) != 1 or sizes["loss"] < 2:
            raise ValueError(f"curve {self.run!r}: tokens, flops and loss need the same length >= 2; got {sizes}")
        if not np.all(np.diff(arrays["flops"]) > 0):
            raise ValueError(f"curve {self.run!r}: flops must be strictly increasing")
        if not (self.n_params > 0):
            raise ValueError(f"curve {self.run!r}: n_params={self.n_params} must be positive")
        for name, array in arrays.items():
            object.__setattr__(self, name, array)


@dataclasses.dataclass(frozen=True)
class Envelope:
    """The lowest smoothed loss at each grid FLOP value and which run gave it (index into the curves).

    ``run_index`` is -1 and the other fields nan where no run covers a grid value.
    ``fraction_of_run`` = tokens seen at that point / the run's final tokens.
    """

    flops: np.ndarray
    run_index: np.ndarray
    n_params: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    fraction_of_run: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return self.run_index >= 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class EnvelopeResult(AllocationLaws):
    """Approach 1: the envelope, the fitted laws N_opt ∝ C^a and D_opt ∝ C^b, and their bootstrap intervals.
    ``window``: the smoothing the envelope's losses went through (``smooth_curve``), so that whoever draws the curves
    beside it smooths them the same way."""

    envelope: Envelope
    late_fraction: float
    late_possible: float
    selected_runs: tuple[str, ...]
    late_margin: tuple[float, float] = (math.nan, math.nan)
    window: int = PAPER_SMOOTHING_WINDOW

    def to_dict(self) -> dict:
        return {
            **super().to_dict(),
            "late_fraction": self.late_fraction,
            "late_possible": self.late_possible,
            "late_margin": list(self.late_margin),
            "late_by_threshold": late_by_threshold(self.envelope),
            "late_threshold": PAPER_LATE_THRESHOLD,
            "selected_runs": list(self.selected_runs),
            "n_points": int(self.envelope.valid.sum()),
            "flops_range": [float(self.envelope.flops[0]), float(self.envelope.flops[-1])],
        }


def smooth_curve(loss: Sequence[float] | np.ndarray, window: int = PAPER_SMOOTHING_WINDOW) -> np.ndarray:
    """A Gaussian filter spanning ``window`` consecutive logged values (sigma = window / 4, cut at +-window / 2),
    with a boundary correction: each value is the intercept of a Gaussian-weighted local *linear* fit, which in the
    interior equals the plain Gaussian average and at either end stays unbiased on a sloped curve (a plain average
    there would pull a run's last value up towards its earlier, higher losses and its first value down).
    ``window`` <= 1 returns the loss unchanged."""
    values = np.asarray(loss, dtype=np.float64)
    if window <= 1 or values.size < 3:
        return values.copy()
    radius = max(1, min(window // 2, (values.size - 1) // 2))  # the kernel may not outgrow the curve
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / (window / 4.0)) ** 2)

    def weighted_sum(y: np.ndarray, power: int) -> np.ndarray:
        # sum_j w(j - i) (j - i)^power y_j for every i; np.convolve flips its kernel, hence the reversal.
        return np.convolve(y, (kernel * offsets**power)[::-1], mode="same")

    ones = np.ones_like(values)
    s0, s1, s2 = (weighted_sum(ones, p) for p in (0, 1, 2))
    t0, t1 = weighted_sum(values, 0), weighted_sum(values, 1)
    return (s2 * t0 - s1 * t1) / (s0 * s2 - s1**2)


def default_flops_range(curves: Sequence[Curve]) -> tuple[float, float]:
    """From the smallest to the largest final FLOP count among the runs: below the smallest run's end every candidate
    is still mid-cycle, so the envelope there would measure un-annealed runs."""
    finals = [float(c.flops[-1]) for c in curves]
    return (min(finals), max(finals))


def loss_matrix(
    curves: Sequence[Curve], flops_grid: np.ndarray, window: int = PAPER_SMOOTHING_WINDOW
) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed loss and tokens of every run at every grid FLOP value, interpolated linearly in log C:
    two arrays of shape (runs, grid), +inf loss / nan tokens where a run does not cover the value."""
    log_grid = np.log(flops_grid)
    losses = np.full((len(curves), flops_grid.size), np.inf)
    tokens = np.full((len(curves), flops_grid.size), np.nan)
    for row, curve in enumerate(curves):
        log_c = np.log(curve.flops)
        covered = (log_grid >= log_c[0]) & (log_grid <= log_c[-1])
        smoothed = smooth_curve(curve.loss, window)
        losses[row, covered] = np.interp(log_grid[covered], log_c, smoothed)
        tokens[row, covered] = np.interp(log_grid[covered], log_c, curve.tokens)
    return losses, tokens


def lower_envelope(
    curves: Sequence[Curve],
    *,
    n_points: int = PAPER_GRID_POINTS,
    window: int = PAPER_SMOOTHING_WINDOW,
    flops_range: tuple[float, float] | None = None,
    min_runs: int = 2,
) -> Envelope:
    """The run with the lowest smoothed loss at each of ``n_points`` log-spaced FLOP values in ``flops_range``
    (default: ``default_flops_range``). A value reached by fewer than ``min_runs`` runs is left out: with no
    competitor, its "minimum" is just whichever run went furthest."""
    grid = _grid(curves, n_points, flops_range)
    losses, tokens = loss_matrix(curves, grid, window)
    return _envelope_from_matrix(curves, grid, losses, tokens, np.arange(len(curves)), min_runs)


def fit_envelope(
    curves: Sequence[Curve],
    *,
    n_points: int = PAPER_GRID_POINTS,
    window: int = PAPER_SMOOTHING_WINDOW,
    flops_range: tuple[float, float] | None = None,
    min_runs: int = 2,
    n_resamples: int = 100,
    fraction: float = 0.8,
    percentiles: tuple[float, float] = TABLE2_PERCENTILES,
    seed: int = 0,
    progress=None,
) -> EnvelopeResult:
    """Approach 1 end to end: envelope (see ``lower_envelope``), power laws for N_opt and D_opt, and bootstrap
    intervals over runs. ``progress(done, total)`` is called after each resample."""
    if len(curves) < 2:
        raise ValueError(f"Approach 1 needs at least 2 training curves; got {len(curves)}")
    names = [c.run for c in curves]
    if len(set(names)) != len(names):
        raise ValueError("curve run names must be unique")
    grid = _grid(curves, n_points, flops_range)
    losses, tokens = loss_matrix(curves, grid, window)
    envelope = _envelope_from_matrix(curves, grid, losses, tokens, np.arange(len(curves)), min_runs)
    n_law, d_law = _fit_laws(envelope)
    rng = np.random.default_rng(seed)
    a_samples, b_samples = [], []
    for done in range(n_resamples):
        if progress is not None:
            progress(done, n_resamples)
        rows = subsample_indices(rng, len(curves), fraction)
        sample = subset_envelope(curves, grid, losses, tokens, rows, min_runs=min_runs, flops_range=flops_range)
        try:
            n_sample, d_sample = _fit_laws(sample)
        except ValueError:  # the subset selected a single size everywhere: no slope to fit
            continue
        a_samples.append(n_sample.exponent)
        b_samples.append(d_sample.exponent)
    if progress is not None:
        progress(n_resamples, n_resamples)
    valid = envelope.valid
    late, possible = _late_shares(curves, envelope, tokens)
    margin = late_margins(curves, envelope, losses, tokens)
    finite = margin[np.isfinite(margin)]
    late_margin = (float(np.median(finite)), float(np.percentile(finite, 90))) if finite.size else (math.nan, math.nan)
    selected = tuple(sorted({curves[i].run for i in envelope.run_index[valid]}))
    return EnvelopeResult(
        envelope=envelope,
        n_law=n_law,
        d_law=d_law,
        a_interval=resample_interval(a_samples, n_resamples, percentiles),
        b_interval=resample_interval(b_samples, n_resamples, percentiles),
        late_fraction=late,
        late_possible=possible,
        selected_runs=selected,
        late_margin=late_margin,
        n_resamples=len(a_samples),
        window=window,
    )


def late_shares(
    curves: Sequence[Curve], envelope: Envelope, *, window: int = PAPER_SMOOTHING_WINDOW
) -> tuple[float, float]:
    """Of the envelope's valid grid points: the share whose selected run is in the last 15% of its tokens
    (``fraction_of_run >= 0.85``; the paper: all), and the share where any run covering the point is (an upper
    bound on the first, set by where the runs end). Returns (late, possible); nan where no point is valid."""
    _, tokens = loss_matrix(curves, envelope.flops, window)
    return _late_shares(curves, envelope, tokens)


def late_by_threshold(envelope: Envelope) -> dict[str, float]:
    """The share of the envelope's valid grid points whose selected run has seen at least t of its tokens, for each
    t of ``REPORTED_THRESHOLDS`` (keys "0.85", "0.8", "0.7"; "0.85" is ``late_fraction``); nan where no point is
    valid. The looser thresholds say how far from their runs' ends the selected points are."""
    fractions = envelope.fraction_of_run[envelope.valid]
    return {f"{t:g}": float(np.mean(fractions >= t)) if fractions.size else math.nan for t in REPORTED_THRESHOLDS}


def late_margins(curves: Sequence[Curve], envelope: Envelope, losses: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """At each grid point where the envelope picked a run that is not in its last 15% but some other run is: how
    much higher (nats, smoothed) the best such late run's loss is than the envelope's. nan elsewhere. Margins below
    the seed noise mean the envelope chose a mid-cycle point over an end-of-run one on noise. ``losses`` and
    ``tokens``: the (runs, grid) matrices of ``loss_matrix``."""
    finals = np.array([c.tokens[-1] for c in curves])[:, None]
    with np.errstate(invalid="ignore"):
        is_late = np.nan_to_num(tokens / finals) >= PAPER_LATE_THRESHOLD
    late_loss = np.where(is_late, losses, np.inf).min(axis=0)
    early = envelope.valid & (envelope.fraction_of_run < PAPER_LATE_THRESHOLD) & np.isfinite(late_loss)
    return np.where(early, late_loss - envelope.loss, np.nan)


def _late_shares(curves: Sequence[Curve], envelope: Envelope, tokens: np.ndarray) -> tuple[float, float]:
    valid = envelope.valid
    if not valid.any():
        return math.nan, math.nan
    late = float(np.mean(envelope.fraction_of_run[valid] >= PAPER_LATE_THRESHOLD))
    finals = np.array([c.tokens[-1] for c in curves])[:, None]
    with np.errstate(invalid="ignore"):
        late_anywhere = np.any(np.nan_to_num(tokens / finals) >= PAPER_LATE_THRESHOLD, axis=0)
    return late, float(np.mean(late_anywhere[valid]))


def _grid(curves: Sequence[Curve], n_points: int, flops_range: tuple[float, float] | None) -> np.ndarray:
    if not curves:
        raise ValueError("no training curves")
    if n_points < 2:
        raise ValueError(f"n_points={n_points} must be at least 2")
    low, high = flops_range if flops_range is not None else default_flops_range(curves)
    if not (0 < low < high and math.isfinite(high)):
        raise ValueError(f"flops_range={(low, high)} must be 0 < low < high")
    return np.geomspace(low, high, n_points)


def subset_envelope(
    curves: Sequence[Curve],
    grid: np.ndarray,
    losses: np.ndarray,
    tokens: np.ndarray,
    rows: np.ndarray,
    *,
    min_runs: int = 2,
    flops_range: tuple[float, float] | None = None,
) -> Envelope:
    """The envelope of the runs ``rows`` (indices into ``curves``) on the full set's ``grid`` and ``loss_matrix``,
    by the point estimate's rule: with ``flops_range`` None, only the grid values inside the *subset's*
    ``default_flops_range`` count (a resample without the run that ends first must not read its envelope off
    runs still mid-cycle there). One bootstrap resample of ``fit_envelope``."""
    low, high = flops_range if flops_range is not None else default_flops_range([curves[i] for i in rows])
    in_range = (grid >= low * (1 - 1e-12)) & (grid <= high * (1 + 1e-12))
    return _envelope_from_matrix(curves, grid, losses, tokens, np.asarray(rows), min_runs, in_range)


def _envelope_from_matrix(
    curves: Sequence[Curve],
    grid: np.ndarray,
    losses: np.ndarray,
    tokens: np.ndarray,
    rows: np.ndarray,
    min_runs: int,
    in_range: np.ndarray | None = None,
) -> Envelope:
    sub = losses[rows]
    best_local = np.argmin(sub, axis=0)
    best_loss = sub[best_local, np.arange(grid.size)]
    covered = np.isfinite(best_loss) & (np.isfinite(sub).sum(axis=0) >= min_runs)
    if in_range is not None:
        covered &= in_range
    run_index = np.where(covered, rows[best_local], -1)
    n_params = np.array([curves[i].n_params if i >= 0 else np.nan for i in run_index])
    seen = np.where(covered, tokens[np.clip(run_index, 0, None), np.arange(grid.size)], np.nan)
    final = np.array([curves[i].tokens[-1] if i >= 0 else np.nan for i in run_index])
    return Envelope(
        flops=grid,
        run_index=run_index,
        n_params=n_params,
        tokens=seen,
        loss=np.where(covered, best_loss, np.nan),
        fraction_of_run=seen / final,
    )


def _fit_laws(envelope: Envelope) -> tuple[PowerLaw, PowerLaw]:
    valid = envelope.valid
    if np.unique(envelope.n_params[valid]).size < 2:
        raise ValueError(
            "the envelope selects a single model size over the whole FLOP range: no N_opt(C) slope; "
            "add sizes or widen the FLOP range"
        )
    c = envelope.flops[valid]
    return fit_power_law(c, envelope.n_params[valid]), fit_power_law(c, envelope.tokens[valid])
