"""Approach 2: IsoFLOP profiles (Hoffmann et al. 2022, Section 3.2, Figure 3).

For each FLOP budget C, several model sizes are trained with the tokens that budget buys (cosine cycle = run). The
final loss against log N is fitted by a parabola,

    L(x) = c2 * x^2 + c1 * x + c0,   x = ln N,   ln N_opt(C) = -c1 / (2 * c2),

whose vertex is that budget's compute-optimal size; D_opt(C) is read off the same profile (ln D is interpolated
against ln N through the fitted points: at fixed C it is nearly linear, D ~ C / (6 N)). Then N_opt = k_N * C^a and
D_opt = k_D * C^b are fitted in log-log space over the budgets. The paper's a = 0.49, b = 0.51.

A budget's minimum is *interior* when the fitted parabola says so: it opens upwards, its vertex lies inside the
sampled sizes, and no end of the profile has a loss below every other size's by more than the parabola's own
residual scatter (an end that merely ties interior sizes, as digitised values do, is no evidence of an edge
minimum). By default only interior budgets enter the power laws. With ``neighbours``, the window is centred on the
lowest loss, the middle one of tied lowest losses.
At small scale a parabola over the whole profile fits badly (shallow left wall, steep right wall), so
``neighbours=k`` fits only the k sizes on each side of the lowest measured loss.

The Table 2 interval: ``n_resamples`` resamples keep 80% of each budget's runs, refit every parabola and the laws;
the 10th and 90th percentiles of a and b. A resample repeats the point estimate's procedure exactly: its window is
the same k positions either side of its lowest loss on the budget's full ladder of sizes (not k of the sizes it
happened to keep, which would span a wider range of ln N and so estimate a different, more biased vertex).

Extrapolation check (:func:`isoflop_holdout`): fit the laws on the budgets below a threshold, predict N_opt and D_opt
of the larger budgets, and set the prediction beside each larger budget's own parabola vertex. Runs without a
planned-budget label are grouped by clustering their log FLOPs at its clearest gaps (:func:`cluster_flops`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from chinchilla.fit.powerlaw import (
    TABLE2_PERCENTILES,
    AllocationLaws,
    PowerLaw,
    fit_power_law,
    resample_interval,
    subsample_indices,
)
from chinchilla.fit.table import counted

MIN_PROFILE_POINTS = 3
# Runs of one budget whose C spread by more than this (max / min - 1) are warned about: a C column holding each
# run's 6ND or exact FLOPs rather than its budget moves the profile's C, and a.
C_SPREAD_WARN = 0.05
# Losses equal to this relative tolerance are tied (digitised figures repeat values).
TIE_RTOL = 1e-12


@dataclasses.dataclass(frozen=True)
class IsoFlopProfile:
    """One budget's runs (sorted by N), the parabola through the ``used`` ones, and its minimum.

    ``coefficients`` = (c2, c1, c0) of loss = c2 ln(N)^2 + c1 ln(N) + c0. Where the parabola opens downwards,
    ``n_opt`` is the N of the lowest measured loss. ``reason`` says why a minimum is not interior ('' if it is).
    """

    budget: float
    flops: float
    n: np.ndarray
    d: np.ndarray
    loss: np.ndarray
    used: np.ndarray
    coefficients: tuple[float, float, float]
    n_opt: float
    d_opt: float
    loss_opt: float
    interior: bool
    reason: str
    c_source: str = "budget label"
    c_spread: float = 0.0

    def parabola(self, n: float | np.ndarray) -> np.ndarray:
        x = np.log(np.asarray(n, dtype=np.float64))
        c2, c1, c0 = self.coefficients
        return c2 * x**2 + c1 * x + c0

    def to_dict(self) -> dict:
        return {
            "budget": self.budget,
            "flops": self.flops,
            "n_opt": self.n_opt,
            "d_opt": self.d_opt,
            "loss_opt": self.loss_opt,
            "interior": self.interior,
            "reason": self.reason,
            "n_runs": int(self.n.size),
            "n_used": int(self.used.sum()),
            "coefficients": list(self.coefficients),
            "n_range": [float(self.n[0]), float(self.n[-1])],
            "c_source": self.c_source,
            "c_spread": self.c_spread,
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class IsoFlopResult(AllocationLaws):
    """Approach 2: the profiles, the laws fitted to the minima of the budgets used, and bootstrap intervals.
    ``resamples_skipped``: resamples the procedure could not fit (a window left with fewer than 3 sizes, e.g.
    ``neighbours=1`` after dropping a point of its 3; or fewer than 2 interior budgets); ``skip_reason``: the
    first such resample's error."""

    profiles: tuple[IsoFlopProfile, ...]
    require_interior: bool
    resamples_skipped: int = 0
    skip_reason: str = ""
    left_out: tuple[dict, ...] = ()
    resample_notes: tuple[str, ...] = ()

    @property
    def warnings(self) -> list[str]:
        """One line per thing the fit did not use or could not do as asked (what the CLI prints as warnings)."""
        lines = [f"budget C = {b['flops']:.3g} ({b['n_runs']} runs) left out: {b['reason']}" for b in self.left_out]
        lines += [
            f"budget C = {p.flops:.3g} not used in the laws: {p.reason}"
            for p in self.profiles
            if not p.interior and self.require_interior
        ]
        lines += [
            f"budget C = {p.flops:.3g}: its runs' C spread by {p.c_spread:.0%} (max / min - 1), more than "
            f"{C_SPREAD_WARN:.0%}; the profile's C is the {p.c_source} (a C column holding each run's 6ND or "
            "exact FLOPs rather than its budget moves C, and a)"
            for p in self.profiles
            if p.c_spread > C_SPREAD_WARN
        ]
        lines += list(self.resample_notes)
        if self.resamples_skipped:
            lines.append(
                f"{self.resamples_skipped} of {self.resamples_skipped + self.n_resamples} resamples could "
                f"not be fitted by the same procedure and are left out of the interval (first: "
                f"{self.skip_reason})"
            )
        return lines

    def to_dict(self) -> dict:
        return {
            **super().to_dict(),
            "resamples_skipped": self.resamples_skipped,
            "skip_reason": self.skip_reason,
            "require_interior": self.require_interior,
            "budgets": [p.to_dict() for p in self.profiles],
            "budgets_left_out": [dict(b) for b in self.left_out],
            "resample_notes": list(self.resample_notes),
            "warnings": self.warnings,
        }


def fit_profile(
    budget: float,
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    *,
    flops: np.ndarray | None = None,
    neighbours: int | None = None,
    ladder: np.ndarray | None = None,
) -> IsoFlopProfile:
    """The parabola in ln N through one budget's runs (all of them, or the sizes within ``neighbours`` positions on
    each side of the lowest loss, widened on one side where the lowest loss is near an end so that the window spans
    at least 3 positions). Positions are ranks on ``ladder`` (default: the distinct sizes in ``n``; a bootstrap
    resample passes the full budget's sizes so its window spans the same sizes as the full fit's would).
    Raises ValueError if fewer than 3 distinct sizes fall in the window, or a size is not on ``ladder``."""
    n, d, loss = (np.asarray(v, dtype=np.float64).ravel() for v in (n, d, loss))
    if not n.size == d.size == loss.size:
        raise ValueError(f"budget {budget:g}: n, d and loss lengths differ ({n.size}, {d.size}, {loss.size})")
    if np.unique(n).size < MIN_PROFILE_POINTS:
        raise ValueError(
            f"budget {budget:g}: a parabola needs at least {MIN_PROFILE_POINTS} distinct sizes; got {np.unique(n).size}"
        )
    if neighbours is not None and neighbours < 1:
        raise ValueError(f"neighbours={neighbours} must be at least 1 (or None for all points)")
    order = np.argsort(n, kind="stable")
    n, d, loss = n[order], d[order], loss[order]
    c = float(np.exp(np.mean(np.log(np.asarray(flops, dtype=np.float64))))) if flops is not None else float(budget)
    spread = float(np.ptp(np.log(np.asarray(flops, dtype=np.float64)))) if flops is not None else 0.0
    best = lowest_loss_index(loss)
    used = _window(n, best, neighbours, ladder)
    if np.unique(n[used]).size < MIN_PROFILE_POINTS:
        raise ValueError(
            f"budget {budget:g}: the window of {neighbours} neighbours holds "
            f"{np.unique(n[used]).size} distinct sizes; a parabola needs {MIN_PROFILE_POINTS}"
        )
    x = np.log(n)
    c2, c1, c0 = (float(v) for v in np.polyfit(x[used], loss[used], 2))
    x_lo, x_hi = x[used].min(), x[used].max()
    reasons = []
    if c2 <= 0:
        reasons.append("the parabola opens downwards")
    x_opt = -c1 / (2 * c2) if c2 > 0 else x[best]
    if c2 > 0 and not (x_lo <= x_opt <= x_hi):
        reasons.append("the vertex lies outside the fitted sizes")
    end = _clear_end_minimum(loss, used, residual_scale(x[used], loss[used], (c2, c1, c0)))
    if end:
        reasons.append(
            f"the lowest loss is at the {end} size, below every other size's by more than the "
            "parabola's residual scatter"
        )
    log_d = np.polyfit(x[used], np.log(d[used]), 1)
    return IsoFlopProfile(
        budget=float(budget),
        flops=c,
        n=n,
        d=d,
        loss=loss,
        used=used,
        coefficients=(c2, c1, c0),
        n_opt=float(np.exp(x_opt)),
        d_opt=float(np.exp(np.polyval(log_d, x_opt))),
        loss_opt=float(c2 * x_opt**2 + c1 * x_opt + c0),
        interior=not reasons,
        reason="; ".join(reasons),
        c_source="geometric mean of its runs' C" if flops is not None else "budget label",
        c_spread=math.expm1(spread),
    )


def lowest_loss_index(loss: np.ndarray) -> int:
    """The run with the lowest loss; among runs tied for it (equal to :data:`TIE_RTOL`, e.g. digitised values), the
    middle one, so that a tie between an end and interior sizes does not pin the minimum to the end."""
    loss = np.asarray(loss, dtype=np.float64)
    low = float(loss.min())
    tied = np.flatnonzero(loss <= low + TIE_RTOL * abs(low))
    return int(tied[(tied.size - 1) // 2])


def residual_scale(x: np.ndarray, loss: np.ndarray, coefficients: tuple[float, float, float]) -> float:
    """The parabola's residual standard deviation (sum of squares over m - 3 degrees of freedom; 0 for 3 points)."""
    dof = x.size - 3
    if dof <= 0:
        return 0.0
    residuals = loss - np.polyval(coefficients, x)
    return float(np.sqrt(np.sum(residuals**2) / dof))


def _clear_end_minimum(loss: np.ndarray, used: np.ndarray, scatter: float) -> str:
    """'smallest' or 'largest' when that end of the profile has a lower loss than every other run by more than the
    parabola's residual ``scatter`` (and more than a tie): the data themselves then say the minimum lies at or
    beyond that end, whatever the parabola's vertex. '' otherwise (a tie with interior sizes is no evidence)."""
    if loss.size < 2:
        return ""
    margin = max(scatter, TIE_RTOL * abs(float(loss.min())))
    for name, i, others in (("smallest", 0, loss[1:]), ("largest", loss.size - 1, loss[:-1])):
        if used[i] and float(others.min()) - float(loss[i]) > margin:
            return name
    return ""


def isoflop_profiles(
    budget: ArrayLike,
    n: ArrayLike,
    d: ArrayLike,
    loss: ArrayLike,
    *,
    flops: ArrayLike | None = None,
    neighbours: int | None = None,
    ladders: dict[float, np.ndarray] | None = None,
    left_out: list[dict] | None = None,
) -> tuple[IsoFlopProfile, ...]:
    """One profile per distinct budget label, smallest budget first. ``budget`` groups the runs (the planned
    budget); ``flops`` (optional) are the runs' actual FLOPs, whose geometric mean becomes the profile's C.
    ``ladders`` (optional): per budget label, the sizes the window positions count on (see ``fit_profile``).
    A budget whose parabola cannot be fitted (fewer than 3 sizes) raises ValueError, unless ``left_out`` is a
    list: then it is appended there (``{"budget", "flops", "n_runs", "n_sizes", "reason"}``) and the other budgets
    are fitted."""
    columns = _columns(budget, n, d, loss, flops)
    profiles = []
    for label in np.unique(columns.budget):
        mask = columns.budget == label
        run_flops = None if columns.flops is None else columns.flops[mask]
        try:
            profiles.append(
                fit_profile(
                    label,
                    columns.n[mask],
                    columns.d[mask],
                    columns.loss[mask],
                    flops=run_flops,
                    neighbours=neighbours,
                    ladder=None if ladders is None else ladders[label],
                )
            )
        except ValueError as error:
            if left_out is None:
                raise
            c = float(np.exp(np.mean(np.log(run_flops)))) if run_flops is not None else float(label)
            left_out.append(
                {
                    "budget": float(label),
                    "flops": c,
                    "n_runs": int(mask.sum()),
                    "n_sizes": int(np.unique(columns.n[mask]).size),
                    "reason": str(error).split(": ", 1)[-1],
                }
            )
    return tuple(profiles)


def fit_isoflop(
    budget: ArrayLike,
    n: ArrayLike,
    d: ArrayLike,
    loss: ArrayLike,
    *,
    flops: ArrayLike | None = None,
    neighbours: int | None = None,
    require_interior: bool = True,
    n_resamples: int = 100,
    fraction: float = 0.8,
    percentiles: tuple[float, float] = TABLE2_PERCENTILES,
    seed: int = 0,
    progress=None,
) -> IsoFlopResult:
    """Approach 2 end to end: profiles, power laws over the (interior) minima, bootstrap intervals.
    ``progress(done, total)`` is called after each resample (:mod:`chinchilla.fit.progress`).

    A budget whose parabola cannot be fitted (fewer than 3 sizes) is left out and named (``left_out``); the others
    are fitted. Resamples keep ``fraction`` of each budget's runs, except a budget whose subsample could not hold 3
    sizes: its runs are kept whole in every resample and ``resample_notes`` says so (its sampling variation is then
    missing from the interval). A budget outside the point estimate's laws that a resample cannot fit cannot
    matter: it is treated as not interior in that resample. A resample that cannot refit a budget of the point
    estimate's laws (e.g. a ``neighbours`` window left with 2 sizes), or is left with fewer than 2 interior budgets,
    is skipped and counted (``resamples_skipped``, ``skip_reason``)."""
    columns = _columns(budget, n, d, loss, flops)
    left_out: list[dict] = []
    profiles = isoflop_profiles(
        columns.budget,
        columns.n,
        columns.d,
        columns.loss,
        flops=columns.flops,
        neighbours=neighbours,
        left_out=left_out,
    )
    n_law, d_law = _fit_laws(profiles, require_interior, left_out)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(columns.budget == p.budget) for p in profiles]
    ladders = {p.budget: p.n for p in profiles}  # each resample's window counts positions on its budget's full ladder
    whole = [_too_few_to_subsample(columns.n[g], fraction) for g in groups]
    notes = [
        f"budget C = {p.flops:.3g} has {g.size} runs of {np.unique(p.n).size} sizes: a {fraction:.0%} "
        f"subsample keeps {max(1, int(round(fraction * g.size)))}, too few for a parabola, so its runs are kept "
        "whole in every resample (the interval omits its sampling variation)"
        for p, g, w in zip(profiles, groups, whole)
        if w and n_resamples and (p.interior or not require_interior)
    ]
    entering = {p.budget for p in profiles if p.interior or not require_interior}
    a_samples, b_samples, skipped = [], [], []
    for done in range(n_resamples):
        if progress is not None:
            progress(done, n_resamples)
        rows = np.concatenate([g if w else g[subsample_indices(rng, g.size, fraction)] for g, w in zip(groups, whole)])
        try:
            dropped: list[dict] = []
            sample = isoflop_profiles(
                columns.budget[rows],
                columns.n[rows],
                columns.d[rows],
                columns.loss[rows],
                flops=None if columns.flops is None else columns.flops[rows],
                neighbours=neighbours,
                ladders=ladders,
                left_out=dropped,
            )
            lost = [b for b in dropped if b["budget"] in entering]
            if lost:  # a budget of the point estimate's laws could not be refitted: not the same procedure
                raise ValueError(f"budget {lost[0]['budget']:g}: {lost[0]['reason']}")
            n_sample, d_sample = _fit_laws(sample, require_interior)
        except ValueError as error:  # fewer than 2 usable budgets in this resample
            skipped.append(str(error))
            continue
        a_samples.append(n_sample.exponent)
        b_samples.append(d_sample.exponent)
    if progress is not None:
        progress(n_resamples, n_resamples)
    return IsoFlopResult(
        profiles=profiles,
        n_law=n_law,
        d_law=d_law,
        a_interval=resample_interval(a_samples, n_resamples, percentiles),
        b_interval=resample_interval(b_samples, n_resamples, percentiles),
        n_resamples=len(a_samples),
        require_interior=require_interior,
        resamples_skipped=len(skipped),
        skip_reason=skipped[0] if skipped else "",
        left_out=tuple(left_out),
        resample_notes=tuple(notes),
    )


def _too_few_to_subsample(n: np.ndarray, fraction: float) -> bool:
    """Whether a subsample of ``fraction`` of these runs could hold fewer than 3 distinct sizes."""
    keep = max(1, int(round(fraction * n.size)))
    _, counts = np.unique(n, return_counts=True)
    # the worst case: the runs dropped take out whole sizes, the least repeated first
    dropped = n.size - keep
    remaining = counts.size - int(np.searchsorted(np.cumsum(np.sort(counts)), dropped, side="right"))
    return remaining < MIN_PROFILE_POINTS


# Log-C clustering: a split between budgets must be at least this many times wider than the
# widest gap it leaves inside a budget.
MIN_GAP_RATIO = 2.0
#: Runs whose C differ by less than this fraction are never split into different budgets by :func:`cluster_flops`
#: (rounding of N, D or C to a few significant figures, a second seed, a budget's runs a few percent apart), and a
#: gap between budgets must beat it by ``MIN_GAP_RATIO`` too: without it, tiny noise gaps against zero gaps decide.
SAME_BUDGET_TOLERANCE = 0.05


@dataclasses.dataclass(frozen=True)
class FlopsGrouping:
    """Budget labels from the runs' C alone (:func:`cluster_flops`): ``labels`` per run (each group's geometric-mean
    C), the number of groups, the narrowest gap between groups and the widest gap and spread within one (as
    ratios of C), and a one-line ``description``."""

    labels: np.ndarray
    n_groups: int
    gap_between: float
    gap_within: float
    spread_within: float

    @property
    def description(self) -> str:
        between = (
            "no gap (one group)" if self.n_groups == 1 else f"the narrowest gap between groups x{self.gap_between:.3g}"
        )
        return (
            f"runs grouped by log-C clustering: {counted(self.n_groups, 'group')}, {between}, the widest gap within "
            f"one x{self.gap_within:.3g} (spread within a group up to x{self.spread_within:.3g})"
        )


def cluster_flops(flops: ArrayLike, min_gap_ratio: float = MIN_GAP_RATIO) -> FlopsGrouping:
    """Group runs that carry only their C into budgets by the gaps in sorted log C: only gaps wider than
    ``SAME_BUDGET_TOLERANCE`` may split, and of every way of splitting at the m widest of those, the one whose
    narrowest split gap is widest relative to the widest gap left inside a group (floored at the tolerance, so zero
    and rounding-noise gaps never decide), if that ratio is at least ``min_gap_ratio``; else one group. Survives
    runs whose 6ND is tens of percent off their nominal budget, where a fixed ratio splits a budget, and repeated or
    rounded C, where ratios of noise gaps split one."""
    c = np.asarray(flops, dtype=np.float64).ravel()
    if not (c.size and np.all(np.isfinite(c) & (c > 0))):
        raise ValueError("flops must be a non-empty array of positive finite values")
    order = np.argsort(c, kind="stable")
    gaps = np.diff(np.log(c[order]))
    ranked = np.sort(gaps)[::-1]
    floor = math.log1p(SAME_BUDGET_TOLERANCE)  # runs closer than this are one budget, whatever the other gaps
    candidates = int(np.sum(ranked >= floor))  # only gaps at least this wide may split
    best_m, best_ratio = 0, math.inf
    if candidates:
        ratios = []
        for m in range(1, candidates + 1):
            inside = max(float(ranked[m]) if m < ranked.size else 0.0, floor)
            ratios.append(float(ranked[m - 1]) / inside)
        best_m = int(np.argmax(ratios)) + 1
        best_ratio = ratios[best_m - 1]
        if best_ratio < min_gap_ratio:  # no gap clearly wider than those inside a group: one budget
            best_m = 0
    threshold = ranked[best_m - 1] if best_m else math.inf
    group = np.concatenate([[0], np.cumsum(gaps >= threshold)]) if best_m else np.zeros(c.size, dtype=int)
    labels = np.empty_like(c)
    spread = 0.0
    for g in np.unique(group):
        rows = order[group == g]
        labels[rows] = np.exp(np.mean(np.log(c[rows])))
        spread = max(spread, float(np.ptp(np.log(c[rows]))))
    within = float(ranked[best_m]) if best_m < ranked.size else 0.0
    return FlopsGrouping(
        labels=labels,
        n_groups=int(group.max()) + 1,
        gap_between=float(np.exp(ranked[best_m - 1])) if best_m else math.nan,
        gap_within=float(np.exp(within)),
        spread_within=float(np.exp(spread)),
    )


def group_by_flops(flops: ArrayLike, min_gap_ratio: float = MIN_GAP_RATIO) -> np.ndarray:
    """A budget label per run when the runs carry only their FLOPs (:func:`cluster_flops`), each budget labelled by
    the geometric mean of its runs' FLOPs."""
    return cluster_flops(flops, min_gap_ratio).labels


@dataclasses.dataclass(frozen=True)
class IsoFlopHoldout:
    """Laws fitted on the budgets below ``flops_threshold``; for each budget at or above it, the predicted N_opt and
    D_opt beside the ones its own parabola gives (``rel_error`` = predicted / observed - 1)."""

    flops_threshold: float
    n_law: PowerLaw
    d_law: PowerLaw
    train: tuple[IsoFlopProfile, ...]
    test: tuple[IsoFlopProfile, ...]

    def rows(self) -> list[dict]:
        out = []
        for p in self.test:
            n_hat, d_hat = float(self.n_law(p.flops)), float(self.d_law(p.flops))
            out.append(
                {
                    "flops": p.flops,
                    "n_opt_observed": p.n_opt,
                    "n_opt_predicted": n_hat,
                    "n_opt_rel_error": n_hat / p.n_opt - 1.0,
                    "d_opt_observed": p.d_opt,
                    "d_opt_predicted": d_hat,
                    "d_opt_rel_error": d_hat / p.d_opt - 1.0,
                    "interior": p.interior,
                    "reason": p.reason,
                }
            )
        return out

    def to_dict(self) -> dict:
        rows = self.rows()
        interior = [abs(r["n_opt_rel_error"]) for r in rows if r["interior"]]
        return {
            "flops_threshold": self.flops_threshold,
            "n_train_budgets": len(self.train),
            "n_test_budgets": len(self.test),
            "a": self.n_law.exponent,
            "b": self.d_law.exponent,
            "max_abs_n_opt_rel_error_interior": max(interior) if interior else None,
            "budgets": rows,
        }


def isoflop_holdout(
    budget: ArrayLike,
    n: ArrayLike,
    d: ArrayLike,
    loss: ArrayLike,
    *,
    flops_threshold: float,
    flops: ArrayLike | None = None,
    neighbours: int | None = None,
    require_interior: bool = True,
) -> IsoFlopHoldout:
    """Approach 2's extrapolation check: the power laws fitted on the budgets whose C is below ``flops_threshold``
    predict N_opt and D_opt at the budgets at or above it (compare with their own vertices; a test budget whose
    minimum is not interior is reported with its reason, since its observed N_opt is then a bound, not a vertex)."""
    if not (np.isfinite(flops_threshold) and flops_threshold > 0):
        raise ValueError(f"flops_threshold={flops_threshold!r} must be positive and finite")
    profiles = isoflop_profiles(budget, n, d, loss, flops=flops, neighbours=neighbours)
    train = tuple(p for p in profiles if p.flops < flops_threshold)
    test = tuple(p for p in profiles if p.flops >= flops_threshold)
    if not test:
        raise ValueError(
            f"flops_threshold={flops_threshold:.3g} holds out no budget (the budgets span "
            f"{profiles[0].flops:.3g} to {profiles[-1].flops:.3g} FLOPs)"
        )
    n_law, d_law = _fit_laws(train, require_interior)
    return IsoFlopHoldout(flops_threshold=float(flops_threshold), n_law=n_law, d_law=d_law, train=train, test=test)


def _window(n: np.ndarray, best: int, neighbours: int | None, ladder: np.ndarray | None) -> np.ndarray:
    """The runs (of sizes ``n``, sorted) whose rank on ``ladder`` lies within ``neighbours`` positions of run
    ``best``'s, the window shifted inwards near an end to keep its width 2k+1 (at least 3) positions."""
    if neighbours is None:
        return np.ones(n.size, dtype=bool)
    sizes = np.unique(n if ladder is None else np.asarray(ladder, dtype=np.float64))
    rank = np.searchsorted(sizes, n)
    if np.any(rank >= sizes.size) or np.any(sizes[np.minimum(rank, sizes.size - 1)] != n):
        raise ValueError("every size must lie on the budget's ladder of sizes")
    width = max(2 * neighbours + 1, MIN_PROFILE_POINTS)
    start = min(max(0, rank[best] - neighbours), max(0, sizes.size - width))
    return (rank >= start) & (rank < start + width)


def _fit_laws(
    profiles: Sequence[IsoFlopProfile], require_interior: bool, left_out: Sequence[dict] = ()
) -> tuple[PowerLaw, PowerLaw]:
    chosen = [p for p in profiles if p.interior or not require_interior]
    if len(chosen) < 2:
        rejected = [f"C = {p.flops:.3g}: {p.reason}" for p in profiles if not p.interior]
        rejected += [f"C = {b['flops']:.3g}: not fitted, {b['reason']}" for b in left_out]
        raise ValueError(
            f"Approach 2 needs at least 2 budgets with an interior minimum; got {len(chosen)} "
            f"of {len(profiles) + len(left_out)} ({'; '.join(rejected)})"
        )
    c = np.array([p.flops for p in chosen])
    return (fit_power_law(c, [p.n_opt for p in chosen]), fit_power_law(c, [p.d_opt for p in chosen]))


class _Columns(NamedTuple):
    """The runs' columns as flat float64 arrays, checked equal in length, positive and finite."""

    budget: np.ndarray
    n: np.ndarray
    d: np.ndarray
    loss: np.ndarray
    flops: np.ndarray | None


def _columns(budget: ArrayLike, n: ArrayLike, d: ArrayLike, loss: ArrayLike, flops: ArrayLike | None) -> _Columns:
    as_column = lambda v: np.asarray(v, dtype=np.float64).ravel()  # noqa: E731
    columns = _Columns(
        as_column(budget), as_column(n), as_column(d), as_column(loss), None if flops is None else as_column(flops)
    )
    given = {name: v for name, v in columns._asdict().items() if v is not None}
    sizes = {name: v.size for name, v in given.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"columns must have equal lengths; got {sizes}")
    for name, values in given.items():
        if not np.all(np.isfinite(values) & (values > 0)):
            raise ValueError(f"column {name!r} must be positive and finite")
    return columns


@dataclasses.dataclass(frozen=True)
class IsoFlopBias:
    """What the IsoFLOP procedure recovers from a known surface L(N, D) = E + A/N^alpha + B/D^beta on a design
    (the runs' N and D per budget), against the surface's own frontier: the bias Approach 2 itself induces.

    ``a_true``/``b_true``: beta/(alpha+beta), alpha/(alpha+beta); ``a_sim``/``b_sim``: the procedure's exponents on
    the noiseless losses; ``n_opt_*`` and ``d_opt_*`` at ``flops_max`` (the design's largest budget): the truth, the
    procedure's law there, and its relative bias (``sim / true - 1``)."""

    law: dict
    flops_max: float
    a_true: float
    b_true: float
    a_sim: float
    b_sim: float
    n_opt_true: float
    n_opt_sim: float
    d_opt_true: float
    d_opt_sim: float
    n_budgets: int

    @property
    def a_bias(self) -> float:
        return self.a_sim - self.a_true

    @property
    def b_bias(self) -> float:
        return self.b_sim - self.b_true

    @property
    def n_opt_rel_bias(self) -> float:
        return self.n_opt_sim / self.n_opt_true - 1.0

    @property
    def d_opt_rel_bias(self) -> float:
        return self.d_opt_sim / self.d_opt_true - 1.0

    def to_dict(self) -> dict:
        return {
            **dataclasses.asdict(self),
            "a_bias": self.a_bias,
            "b_bias": self.b_bias,
            "n_opt_rel_bias": self.n_opt_rel_bias,
            "d_opt_rel_bias": self.d_opt_rel_bias,
        }


def isoflop_bias(
    law,
    budget: ArrayLike,
    n: ArrayLike,
    d: ArrayLike,
    *,
    flops: ArrayLike | None = None,
    neighbours: int | None = None,
    require_interior: bool = True,
) -> IsoFlopBias:
    """Simulate Approach 2 on ``law`` (a :class:`chinchilla.fit.allocate.ChinchillaParams`, e.g. an Approach 3 fit's
    ``frontier``) for the design of these runs: the noiseless loss at each run's (N, D), then exactly the procedure
    of :func:`fit_isoflop` (same budgets, C, window and interior rule, no resampling), compared with the law's own
    frontier. On a surface with alpha = beta and a design centred on each budget's optimum the parabola's vertex is
    exact (zero bias); otherwise the loss is skewed in ln N and the vertex moves by a constant factor at every
    budget (the intercept, not the exponent; about +5% in N_opt for the paper's exponents on a +-16x grid)."""
    columns = _columns(budget, n, d, np.ones(np.size(n)), flops)
    loss = np.asarray(law.loss(columns.n, columns.d), dtype=np.float64)
    try:
        sim = fit_isoflop(
            columns.budget,
            columns.n,
            columns.d,
            loss,
            flops=columns.flops,
            neighbours=neighbours,
            require_interior=require_interior,
            n_resamples=0,
        )
    except ValueError as error:
        raise ValueError(
            f"bias check: the IsoFLOP procedure fails on the fitted surface for this design ({error})"
        ) from None
    flops_max = max(p.flops for p in sim.profiles)
    return IsoFlopBias(
        law={k: float(getattr(law, k)) for k in ("E", "A", "B", "alpha", "beta")},
        flops_max=float(flops_max),
        a_true=float(law.a),
        b_true=float(law.b),
        a_sim=sim.a,
        b_sim=sim.b,
        n_opt_true=float(law.n_opt(flops_max)),
        n_opt_sim=float(sim.n_law(flops_max)),
        d_opt_true=float(law.d_opt(flops_max)),
        d_opt_sim=float(sim.d_law(flops_max)),
        n_budgets=len(sim.profiles),
    )
