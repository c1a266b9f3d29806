"""Is a parametric fit determined by its data? Checks before a fit, per-parameter checks after it, and flags for
bootstrap intervals.

Before: :func:`check_data` raises ``ValueError`` for data that cannot determine the law at all (every run the same;
a constant loss) and returns warnings for data that determine only part of it (one model size; one token count) or
that the law cannot describe (loss not falling with N or with D).

After: :func:`parameter_status` asks the objective itself. A raw parameter fitted on a log scale (log E, log A,
log R_N*, ...) is moved :data:`FAR` = 30 (a factor e^30 ~ 1e13) towards 0 and towards infinity; if the objective
changes by at most :data:`FLAT_RTOL` (1e-6, relative) in a direction, the data do not pin the parameter there: it is
``at_lower_bound`` (-> 0, e.g. E when the fit wants no irreducible loss) or ``unbounded_above`` (-> infinity, e.g.
R_N* when no run has excess parameters). An exponent (alpha, beta) at or below :data:`EXPONENT_FLOOR` is
``at_lower_bound`` (loss does not fall with N or D in this fit). :func:`grid_edges` flags a best start on the
edge of its start grid, with a warning when the fit ended beyond that edge. :func:`interval_flags` marks bootstrap
intervals that
are not determined (spanning more than :data:`MAX_DECADES` decades, or reaching an exponent's bound 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TypedDict

import numpy as np

from chinchilla.fit.laws import NATURAL_NAMES

FAR = 30.0
FLAT_RTOL = 1e-6
EXPONENT_FLOOR = 1e-3
EXPONENTS: tuple[str, ...] = ("alpha", "beta")
MAX_DECADES = 3.0
PARAMETER_STATUSES: tuple[str, ...] = ("ok", "at_lower_bound", "unbounded_above", "fixed")


class ParameterStatus(TypedDict):
    """One named parameter after a fit (:func:`parameter_status`)."""

    value: float
    status: str  # one of PARAMETER_STATUSES
    note: str  # "" when there is nothing to say


class Identification(TypedDict):
    """Whether a fit is identified, and why not (:func:`identification`)."""

    identified: bool
    reasons: list[str]
    standard_errors: dict[str, float]
    condition_number: float | None
    a_se: float | None
    hessian_min_eigenvalue: float | None


def check_data(
    param_names: tuple[str, ...], covariates: Mapping[str, np.ndarray], loss: np.ndarray, weights: np.ndarray
) -> list[str]:
    """Raise ``ValueError`` when the runs with positive weight cannot determine the law's free parameters
    ``param_names``; return warnings (strings) for data the law cannot describe. ``covariates`` holds ``n`` and
    ``d`` (and possibly more) as arrays like ``loss``."""
    used = np.asarray(weights) > 0
    n, d, loss = (np.asarray(x, dtype=np.float64)[used] for x in (covariates["n"], covariates["d"], loss))
    free = set(param_names)
    count = int(used.sum())
    if np.unique(np.stack([n, d, loss]), axis=1).shape[1] == 1:
        raise ValueError(
            f"all {count} runs are the same run (N={n[0]:.4g}, D={d[0]:.4g}, loss={loss[0]:.6g}): "
            "there is nothing to fit"
        )
    if free & {"log_A", "log_B", "alpha", "beta"} and np.ptp(loss) == 0:
        raise ValueError(
            f"every run has the same loss {loss[0]:.6g}: a constant loss determines E only, not how "
            "loss falls with N and D"
        )
    warnings = []
    if free & {"log_A", "alpha"} and np.unique(n).size == 1:
        warnings.append(
            f"all {count} runs have the same model size N={n[0]:.4g}: the law's A / N^alpha term cannot "
            "be told apart from E (A, alpha and E are not determined); fit runs of several sizes"
        )
    if free & {"log_B", "beta"} and np.unique(d).size == 1:
        warnings.append(
            f"all {count} runs have the same token count D={d[0]:.4g}: the law's B / D^beta term cannot "
            "be told apart from E (B, beta and E are not determined); fit runs of several token counts"
        )
    design = np.column_stack([np.ones(count), np.log(n), np.log(d)])
    if np.linalg.matrix_rank(design) == 3:
        slopes = np.linalg.lstsq(design, np.log(loss), rcond=None)[0]
        for name, exponent, slope in (("N", "alpha", slopes[1]), ("D", "beta", slopes[2])):
            if exponent in free and slope >= 0:
                warnings.append(
                    f"loss does not fall with {name}: the least-squares slope of log loss on log {name} "
                    f"(at fixed {'D' if name == 'N' else 'N'}) is {slope:+.3g}, but the law needs it "
                    f"negative; expect {exponent} at its bound 0"
                )
    return warnings


def parameter_status(
    law, theta: np.ndarray, value: float, objective_at: Callable[[np.ndarray], np.ndarray]
) -> dict[str, ParameterStatus]:
    """Per named parameter of ``law`` (fixed ones too): ``{"value", "status", "note"}``, status one of
    :data:`PARAMETER_STATUSES`. ``objective_at`` maps (K, P) raw thetas to their K objective values; ``value`` is
    the objective at ``theta``."""
    natural = {k: float(v) for k, v in law.natural(np.asarray(theta)).items()}
    free = law.param_names
    probes, labels = [], []
    for i, raw in enumerate(free):
        if raw.startswith("log_"):
            for sign, label in ((-1.0, "at_lower_bound"), (1.0, "unbounded_above")):
                probe = np.array(theta, dtype=np.float64)
                probe[i] += sign * FAR
                probes.append(probe)
                labels.append((raw, label))
    changes: dict[str, str] = {}
    if probes:
        values = np.asarray(objective_at(np.stack(probes)), dtype=np.float64)
        scale = abs(value) if value else 1.0
        for (raw, label), moved in zip(labels, values):
            if np.isfinite(moved) and (moved - value) <= FLAT_RTOL * scale:
                changes.setdefault(raw, label)
    out: dict[str, ParameterStatus] = {}
    for raw, name in NATURAL_NAMES.items():
        if name not in natural:
            continue
        v = natural[name]
        if raw not in free:
            out[name] = {"value": v, "status": "fixed", "note": ""}
        elif raw in changes:
            status = changes[raw]
            where = "0" if status == "at_lower_bound" else "infinity"
            out[name] = {
                "value": v,
                "status": status,
                "note": f"{name}={v:.4g} {'sits at its lower bound 0' if where == '0' else 'runs off to infinity'}"
                f": the objective changes by less than {FLAT_RTOL:g} (relative) as {name} -> "
                f"{where}, so the data do not determine it",
            }
        elif name in EXPONENTS and v <= EXPONENT_FLOOR:
            out[name] = {
                "value": v,
                "status": "at_lower_bound",
                "note": f"{name}={v:.4g} is at (or below) its bound 0: loss does not fall with "
                f"{'N' if name == 'alpha' else 'D'} in this fit",
            }
        else:
            out[name] = {"value": v, "status": "ok", "note": ""}
    return out


def grid_edges(
    param_names: tuple[str, ...],
    grid: np.ndarray,
    best_start: np.ndarray,
    theta: np.ndarray,
    skip: tuple[str, ...] = (),
) -> tuple[list[str], list[str]]:
    """Coordinates of ``best_start`` on the edge of their column of ``grid`` (columns with at least 3 distinct
    values), and a warning for each coordinate whose fitted value ``theta`` lies outside the column's range (saying
    whether the best start sat on that edge): the grid did not bracket the optimum, which may then be a poor local
    one (widen the grid, or run every start).
    Names in ``skip`` (parameters already reported at a bound) get no warning."""
    on_edge, warnings = [], []
    for i, name in enumerate(param_names):
        column = np.unique(grid[:, i])
        if column.size < 3:
            continue
        outside = name not in skip and not column[0] <= theta[i] <= column[-1]
        if best_start[i] not in (column[0], column[-1]):
            if outside:  # reached from inside: still, no start lay near the optimum in this coordinate
                warnings.append(
                    f"the fit ended with {name}={theta[i]:.4g}, outside the start grid's range "
                    f"[{column[0]:g}, {column[-1]:g}]: the grid does not bracket the optimum (widen it "
                    "with starts=..., or run every start with top_k=None)"
                )
            continue
        on_edge.append(name)
        if outside:
            label = "lower" if best_start[i] == column[0] else "upper"
            warnings.append(
                f"the best start has {name}={best_start[i]:g} on the {label} edge of the start grid "
                f"[{column[0]:g}, {column[-1]:g}] and the fit ended outside it ({name}={theta[i]:.4g}): "
                "the grid does not bracket the optimum (widen it with starts=..., or run every start "
                "with top_k=None)"
            )
    return on_edge, warnings


def interval_flags(intervals: Mapping[str, tuple[float, float]]) -> dict[str, str]:
    """Bootstrap intervals that are not determined, with why: a positive quantity whose interval spans more than
    :data:`MAX_DECADES` decades (or is not finite), an exponent whose interval reaches its bound 0."""
    flags = {}
    for name, (low, high) in intervals.items():
        if name in ("a", "b"):
            continue
        if not (math.isfinite(low) and math.isfinite(high)):
            flags[name] = f"{name} interval [{low:.4g}, {high:.4g}] is not finite: unbounded"
        elif name in EXPONENTS:
            if low <= EXPONENT_FLOOR:
                flags[name] = f"{name} interval [{low:.4g}, {high:.4g}] reaches the bound 0: not determined"
        elif low <= 0 or math.log10(high / low) > MAX_DECADES:
            flags[name] = f"{name} interval [{low:.4g}, {high:.4g}] spans more than {MAX_DECADES:g} decades: unbounded"
    return flags


# The identification rule, from the curvature at the optimum (:class:`~chinchilla.fit.parametric.
# Curvature`): the Gauss-Newton matrix of the log-loss residuals in correlation form (unit-free) must be
# well conditioned, and the standard errors it implies, s^2 (J^T W J)^-1 with s^2 the residual variance, must pin
# every parameter: log A, log B, log E to within a factor e (one standard error <= 1), alpha and beta to a quarter
# of their value, and a = beta / (alpha + beta) to 0.1.
MAX_CONDITION = 1e10
MAX_LOG_SE = 1.0
MAX_EXPONENT_RSE = 0.25
MAX_A_SE = 0.1


def identification(
    law, theta: np.ndarray, curvature, parameters: Mapping[str, ParameterStatus], data_warnings: list[str]
) -> Identification:
    """Whether the fit is identified, and why not: ``{"identified", "reasons", "standard_errors",
    "condition_number", "a_se", "hessian_min_eigenvalue"}``. Not identified when any free parameter has a status
    other than "ok", when the data checks warned (one size, one token count, loss not falling: the law is then
    not determined by these runs), or when the curvature does not pin the parameters (see the constants above)."""
    reasons = [
        f"{name} {p['status'].replace('_', ' ')}"
        for name, p in parameters.items()
        if p["status"] not in ("ok", "fixed")
    ]
    reasons += [w.split(":")[0] for w in data_warnings]
    standard_errors: dict[str, float] = {}
    condition_number: float | None = None
    a_se: float | None = None
    hessian_min_eigenvalue: float | None = None
    names = law.param_names
    if curvature is not None:
        gn = np.asarray(curvature.gauss_newton, dtype=np.float64)
        hessian = np.asarray(curvature.hessian, dtype=np.float64)
        s2 = float(curvature.residual_var)
        if np.all(np.isfinite(hessian)):
            hessian_min_eigenvalue = float(np.linalg.eigvalsh((hessian + hessian.T) / 2).min())
        scale = np.sqrt(np.clip(np.diag(gn), 0.0, None))
        if not np.all(np.isfinite(gn)) or np.any(scale == 0):
            condition = math.inf
        else:
            eig = np.linalg.eigvalsh(gn / np.outer(scale, scale))
            condition = math.inf if eig.min() <= 0 else float(eig.max() / eig.min())
        condition_number = condition if math.isfinite(condition) else None
        if not condition <= MAX_CONDITION:
            reasons.append(
                f"the objective's curvature is singular in some direction (condition number "
                f"{condition:.3g} > {MAX_CONDITION:g}): the runs cannot tell parameters apart"
            )
        else:
            cov = s2 * np.linalg.inv(gn)
            se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
            natural = {k: float(v) for k, v in law.natural(np.asarray(theta)).items()}
            for i, raw in enumerate(names):
                name = NATURAL_NAMES.get(raw, raw)
                standard_errors[name if not raw.startswith("log_") else raw] = float(se[i])
                if raw in ("log_A", "log_B", "log_E") and se[i] > MAX_LOG_SE:
                    reasons.append(
                        f"{name} not determined (standard error of log {name} {se[i]:.3g} > {MAX_LOG_SE:g}: "
                        + (
                            f"one standard error is a factor {math.exp(se[i]):.3g})"
                            if se[i] < 10
                            else "the data leave its scale unbounded)"
                        )
                    )
                elif raw in EXPONENTS and se[i] > MAX_EXPONENT_RSE * abs(natural[name]):
                    reasons.append(
                        f"{name} not determined (standard error {se[i]:.3g} > {MAX_EXPONENT_RSE:g} x "
                        f"{name} = {natural[name]:.3g})"
                    )
            if "alpha" in names and "beta" in names:
                i, j = names.index("alpha"), names.index("beta")
                alpha, beta = float(theta[i]), float(theta[j])
                if alpha + beta > 0:
                    grad = np.zeros(len(names))
                    grad[i], grad[j] = -beta / (alpha + beta) ** 2, alpha / (alpha + beta) ** 2
                    a_se = float(np.sqrt(max(float(grad @ cov @ grad), 0.0)))
                    if a_se > MAX_A_SE:
                        reasons.append(
                            f"a = beta / (alpha + beta) not determined (standard error {a_se:.3g} > {MAX_A_SE:g})"
                        )
    return {
        "identified": not reasons,
        "reasons": reasons,
        "standard_errors": standard_errors,
        "condition_number": condition_number,
        "a_se": a_se,
        "hessian_min_eigenvalue": hessian_min_eigenvalue,
    }
