"""The three approaches on a sweep's runs, and the report: a Table-2-style table, Figures 2-4, ``summary.json``.

``analyze(sweep_dir, settings)`` reads the finished runs of a sweep directory (``chinchilla.sweep.results``) and fits

- Approach 1 (``chinchilla.fit.envelope``) to the training curves of the runs in ``approach1_groups``,
- Approach 2 (``chinchilla.fit.isoflop``) to the final losses of the IsoFLOP runs, grouped by planned budget,
- Approach 3 (the parametric fitter, ``chinchilla.fit.parametric`` and ``.bootstrap``) to the final losses of all
  finished runs,

each once per parameter convention (total and non-embedding N: at small scale the convention alone moves a, so
every report gives both). An approach that cannot be fitted (too few runs, no interior minimum) is reported with the
reason instead of numbers; the rest of the report is still written.

``chinchilla.analysis.render.write_report(analysis, out_dir)`` writes ``report.md``, ``summary.json`` and the
figures (``chinchilla.analysis.plots``).
For Approach 3, a = beta / (alpha + beta) and b = alpha / (alpha + beta) (the frontier under C = 6ND, eq. 4).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from chinchilla.config import check_known_fields
from chinchilla.fit.allocate import ChinchillaParams
from chinchilla.fit.envelope import EnvelopeResult, fit_envelope
from chinchilla.fit.isoflop import IsoFlopProfile, IsoFlopResult, fit_isoflop, isoflop_profiles
from chinchilla.fit.powerlaw import TABLE2_PERCENTILES
from chinchilla.paper import APPROACHES, GOPHER_FLOPS, KAPLAN, TABLE2, TABLE3_PARAMS
from chinchilla.sweep import results as results_lib
from chinchilla.sweep.plan import TRUNK_FLAG


@dataclasses.dataclass(frozen=True)
class AnalysisSettings:
    """How the three approaches are fitted to a sweep.

    ``loss``: the results column used as a run's final loss ("final_train_loss": smoothed training loss, the
    paper's; or "eval_loss"). ``conventions``: parameter conventions, the first is the headline: by default all
    parameters ("total", the paper's, with its exact FLOP count), then non-embedding (Kaplan's) beside it.
    ``approach1_groups``: run groups whose curves enter Approach 1 (None: all). ``approach2_group``: the IsoFLOP
    group. ``neighbours``: IsoFLOP parabolas fitted to this many sizes each side of the minimum (None: all).
    ``window``: smoothing window in logged steps. ``n_resamples``: bootstrap resamples (80% of the runs) for the
    10th-90th percentile intervals of Approaches 1 and 2; ``approach3_resamples`` for Approach 3.
    """

    loss: str = "final_train_loss"
    conventions: tuple[str, ...] = ("total", "non_embedding")
    approach1_groups: tuple[str, ...] | None = None
    approach2_group: str = "isoflop"
    neighbours: int | None = None
    window: int = 10
    n_points: int = 1500
    flops_range: tuple[float, float] | None = None
    n_resamples: int = 100
    approach3_resamples: int = 100
    fraction: float = 0.8
    seed: int = 0
    projection_params: tuple[float, ...] = TABLE3_PARAMS
    projection_budgets: tuple[float, ...] = (GOPHER_FLOPS,)

    def __post_init__(self) -> None:
        if self.loss not in results_lib.LOSS_COLUMNS:
            raise ValueError(f"loss={self.loss!r} is not one of {results_lib.LOSS_COLUMNS}")
        if not self.conventions:
            raise ValueError("conventions is empty")
        for convention in self.conventions:
            if convention not in ("total", "non_embedding"):
                raise ValueError(f"convention={convention!r} is not 'total' or 'non_embedding'")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisSettings:
        """The inverse of ``to_dict`` (JSON turns tuples into lists)."""
        check_known_fields(cls, data)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclasses.dataclass(frozen=True, kw_only=True)
class ParametricResult(ChinchillaParams):
    """Approach 3 on our runs: the fitted L(N, D) = E + A/N^alpha + B/D^beta (with the frontier of
    ``ChinchillaParams``: ``loss``, ``n_opt``, ``d_opt``, ``a``, ``b``), its objective and Table 2 intervals."""

    objective: float
    a_interval: tuple[float, float]
    b_interval: tuple[float, float]
    n_runs: int
    n_resamples: int
    parameter_intervals: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def identified(self) -> bool:
        """No identification warning (``warnings``: what ``chinchilla.fit`` found the data do not determine)."""
        return not self.warnings

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "a_interval": list(self.a_interval),
            "b_interval": list(self.b_interval),
            "E": self.E,
            "A": self.A,
            "B": self.B,
            "alpha": self.alpha,
            "beta": self.beta,
            "objective": self.objective,
            "n_runs": self.n_runs,
            "n_resamples": self.n_resamples,
            "parameter_intervals": {k: list(v) for k, v in self.parameter_intervals.items()},
            "identified": self.identified,
            "warnings": list(self.warnings),
        }


@dataclasses.dataclass
class Analysis:
    """Everything ``write_report`` needs: the settings, the finished runs, and per convention each approach's
    result (an ``EnvelopeResult``, ``IsoFlopResult``, ``ParametricResult``, or the error string)."""

    settings: AnalysisSettings
    rows: list[dict[str, Any]]
    results: dict[str, dict[str, Any]]
    curves: dict[str, list]
    sweep_dir: str
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def headline(self) -> str:
        return self.settings.conventions[0]


def analyze(sweep_dir, settings: AnalysisSettings | None = None, *, meta: dict[str, Any] | None = None) -> Analysis:
    """Fit the three approaches to the finished runs of ``sweep_dir`` under each parameter convention."""
    settings = settings or AnalysisSettings()
    every_row = results_lib.collect_results(sweep_dir)
    outside = [
        {"run_id": r["run_id"], "status": r["status"], "reason": r[results_lib.OUTSIDE_PLAN]}
        for r in every_row
        if r.get(results_lib.OUTSIDE_PLAN)
    ]  # named in the report, never fitted
    all_rows = [r for r in every_row if not r.get(results_lib.OUTSIDE_PLAN)]
    # WSD trunks (share_trunks) carry branches and are never annealed: no approach fits them (their branches'
    # curves include the trunk's prefix, so Approach 1 still sees it where a branch runs on from it)
    trunks = {r["run_id"] for r in all_rows if TRUNK_FLAG in (r.get("flags") or ())}
    rows = [
        r
        for r in all_rows
        if r["status"] == "finished" and _positive(r.get(settings.loss)) and r["run_id"] not in trunks
    ]
    results: dict[str, dict[str, Any]] = {}
    curves: dict[str, list] = {}
    for convention in settings.conventions:
        curves[convention] = [
            c
            for c in results_lib.load_curves(sweep_dir, convention=convention, groups=settings.approach1_groups)
            if c.run not in {o["run_id"] for o in outside} | trunks
        ]
        results[convention] = {
            "approach1": _attempt(functools.partial(fit_approach1, curves[convention], settings)),
            "approach2": _attempt(functools.partial(fit_approach2, rows, convention, settings)),
            "approach3": _attempt(functools.partial(fit_approach3, rows, convention, settings)),
        }
        if isinstance(results[convention]["approach2"], str):  # no laws; the budgets' profiles still go out
            results[convention]["approach2_profiles"] = _attempt(
                functools.partial(approach2_profiles, rows, convention, settings)
            )
    run_counts = {
        status: sum(r["status"] == status for r in all_rows) for status in ("finished", "failed", "pending", "missing")
    }
    unfinished = [
        {"run_id": r["run_id"], "status": r["status"], "reason": r["error"]}
        for r in all_rows
        if r["status"] in ("failed", "missing")
    ]
    info = {
        "runs": run_counts,
        "unfinished_runs": unfinished,
        "outside_plan": outside,
        "plan": results_lib.plan_parts(sweep_dir),
        "total_flops": float(sum(r["flops"] for r in rows)),
        "train_time_s": float(sum(r["wall_time_s"] or 0.0 for r in all_rows)),
        "schedule": schedule_info(sweep_dir, all_rows),
        **(meta or {}),
    }
    return Analysis(settings=settings, rows=rows, results=results, curves=curves, sweep_dir=str(sweep_dir), meta=info)


def schedule_info(sweep_dir, rows) -> dict[str, Any]:
    """The sweep's learning-rate schedule as the report states it: ``cosine`` (every run its own cycle) or ``wsd``
    (branches of shared trunks: their count, cooldown, and the FLOPs the plan spends, each trunk once, beside the
    nominal FLOPs the runs count, prefix included, ``Plan.spent_flops`` / ``Plan.total_flops``), or ``mixed``."""
    from chinchilla.sweep import identity

    plan = identity.recorded(sweep_dir)[0]
    runs = list(plan.runs) if plan is not None else []
    schedules = sorted({str(r.train.get("schedule", "cosine")) for r in runs}) or ["cosine"]
    info: dict[str, Any] = {"schedule": schedules[0] if len(schedules) == 1 else "mixed"}
    if plan is None or schedules == ["cosine"]:
        return info
    trunks = [r for r in runs if TRUNK_FLAG in r.flags]
    branches = [r for r in runs if r.trunk is not None]
    cooldowns = sorted(
        {
            (float(r.train.get("cooldown_fraction", 0.2)), str(r.train.get("cooldown_shape", "1-sqrt")))
            for r in runs
            if TRUNK_FLAG not in r.flags and r.train.get("schedule") == "wsd"
        }
    )
    finished = {r["run_id"] for r in rows if r["status"] == "finished"}
    info.update(
        trunks=len(trunks),
        branches=len(branches),
        single_runs=len(runs) - len(trunks) - len(branches),
        cooldowns=[list(c) for c in cooldowns],
        nominal_flops=plan.total_flops,
        spent_flops=plan.spent_flops,
        spent_ratio=plan.spent_flops / plan.total_flops if plan.total_flops else None,
        spent_flops_finished=float(sum(r.flops - r.shared_flops for r in runs if r.run_id in finished)),
    )
    return info


def fit_approach1(curves, settings: AnalysisSettings) -> EnvelopeResult:
    return fit_envelope(
        curves,
        n_points=settings.n_points,
        window=settings.window,
        flops_range=settings.flops_range,
        n_resamples=settings.n_resamples,
        fraction=settings.fraction,
        seed=settings.seed,
    )


def fit_approach2(rows, convention: str, settings: AnalysisSettings) -> IsoFlopResult:
    budget, n, d, loss, flops = _isoflop_columns(rows, convention, settings)
    return fit_isoflop(
        budget,
        n,
        d,
        loss,
        flops=flops,
        neighbours=settings.neighbours,
        n_resamples=settings.n_resamples,
        fraction=settings.fraction,
        seed=settings.seed,
    )


def approach2_profiles(rows, convention: str, settings: AnalysisSettings) -> tuple[IsoFlopProfile, ...]:
    """The IsoFLOP profiles alone (what is left to report when too few budgets have an interior minimum)."""
    budget, n, d, loss, flops = _isoflop_columns(rows, convention, settings)
    return isoflop_profiles(budget, n, d, loss, flops=flops, neighbours=settings.neighbours, left_out=[])


def _isoflop_columns(rows, convention: str, settings: AnalysisSettings):
    iso = [r for r in rows if r["group"] == settings.approach2_group and r["budget"] is not None]
    if not iso:
        raise ValueError(f"no finished runs in group {settings.approach2_group!r}")
    column = results_lib.N_COLUMNS[convention]
    return (
        [r["budget"] for r in iso],
        [r[column] for r in iso],
        [r["tokens"] for r in iso],
        [r[settings.loss] for r in iso],
        [r["flops"] for r in iso],
    )


def fit_approach3(rows, convention: str, settings: AnalysisSettings) -> ParametricResult:
    from chinchilla.fit.bootstrap import bootstrap_parametric  # the parametric fitter (jax): imported when used
    from chinchilla.fit.parametric import fit_parametric

    if len(rows) <= 5:
        raise ValueError(f"Approach 3 fits 5 parameters and needs more than 5 finished runs; got {len(rows)}")
    column = results_lib.N_COLUMNS[convention]
    n = np.array([r[column] for r in rows], dtype=np.float64)
    d = np.array([r["tokens"] for r in rows], dtype=np.float64)
    loss = np.array([r[settings.loss] for r in rows], dtype=np.float64)
    fit = fit_parametric(n, d, loss, reduction="sum")
    a_interval = b_interval = (math.nan, math.nan)
    n_resamples = 0
    parameter_intervals: dict[str, tuple[float, float]] = {}
    if settings.approach3_resamples:
        boot = bootstrap_parametric(
            n,
            d,
            loss,
            fit=fit,
            n_resamples=settings.approach3_resamples,
            scheme="subsample",
            fraction=settings.fraction,
            seed=settings.seed,
        )
        a_interval, b_interval = boot.interval("a", TABLE2_PERCENTILES), boot.interval("b", TABLE2_PERCENTILES)
        n_resamples = int(boot.objective.size)
        parameter_intervals = {
            name: tuple(float(v) for v in boot.interval(name, TABLE2_PERCENTILES))
            for name in ("E", "A", "B", "alpha", "beta")
            if name in boot.samples
        }
    # Identified or not by the rule `fit parametric` uses (the curvature at the optimum, parameters at bounds, the
    # data checks: chinchilla.fit.diagnostics.identification), so that the report and the CLI never disagree.
    reasons = () if fit.identified else tuple(fit.identification.get("reasons") or ("not identified",))
    return ParametricResult(
        E=float(fit.E),
        A=float(fit.A),
        B=float(fit.B),
        alpha=float(fit.alpha),
        beta=float(fit.beta),
        objective=float(fit.objective),
        a_interval=a_interval,
        b_interval=b_interval,
        n_runs=int(n.size),
        n_resamples=n_resamples,
        parameter_intervals=parameter_intervals,
        warnings=reasons,
    )


def summary(analysis: Analysis) -> dict[str, Any]:
    """The JSON summary: per approach a, b and intervals under the headline convention, the same under every
    convention, Approach 2's budgets (flops, n_opt, interior), projections, the paper's and Kaplan's values."""
    out: dict[str, Any] = {
        "convention": analysis.headline,
        "settings": analysis.settings.to_dict(),
        **analysis.meta,
        "paper": {
            k: {"a": v[0], "a_interval": list(v[1]), "b": v[2], "b_interval": list(v[3])} for k, v in TABLE2.items()
        },
        "kaplan": {"a": KAPLAN[0], "b": KAPLAN[1]},
        "seed_noise": seed_noise(analysis.rows, analysis.settings.loss),
    }
    for approach in APPROACHES:
        by_convention = {c: _approach_dict(analysis.results[c][approach]) for c in analysis.settings.conventions}
        entry = dict(by_convention[analysis.headline])
        entry["conventions"] = {
            c: {k: v.get(k) for k in ("a", "a_interval", "b", "b_interval", "error")} for c, v in by_convention.items()
        }
        entry["projections"] = projections(analysis.results[analysis.headline][approach], analysis.settings)
        profiles = analysis.results[analysis.headline].get(f"{approach}_profiles")
        if profiles is not None and not isinstance(profiles, str):
            entry["budgets"] = [p.to_dict() for p in profiles]
        out[approach] = entry
    return out


def seed_noise(rows, loss: str) -> dict[str, Any]:
    """How much the loss moves between seeds of the same run (same group, model, tokens): the number of such
    groups, the mean and largest spread (max - min, nats) and the pooled standard deviation of one run's loss.
    With no repeated run, ``groups`` is 0 and the rest None."""
    by_run: dict[tuple, list[float]] = {}
    for r in rows:
        by_run.setdefault((r["group"], r["model"], r["tokens"]), []).append(float(r[loss]))
    repeated = [v for v in by_run.values() if len(v) > 1]
    if not repeated:
        return {"groups": 0, "mean_spread": None, "max_spread": None, "std": None}
    spreads = [max(v) - min(v) for v in repeated]
    dof = sum(len(v) - 1 for v in repeated)
    pooled = math.sqrt(sum(float(np.sum((np.array(v) - np.mean(v)) ** 2)) for v in repeated) / dof)
    return {
        "groups": len(repeated),
        "mean_spread": float(np.mean(spreads)),
        "max_spread": float(max(spreads)),
        "std": pooled,
    }


def projections(result: Any, settings: AnalysisSettings) -> dict[str, list[dict[str, float]]]:
    """Table 3 style: for each model size, the FLOPs at which it is optimal and its tokens; for each named budget
    (Gopher's among them), N_opt and D_opt. Extrapolated far beyond the sweep: illustrative, not predictions."""
    if isinstance(result, str):
        return {}
    if isinstance(result, ParametricResult):
        n_of_c, d_of_c, c_of_n = result.n_opt, result.d_opt, result.flops_for_params
    else:
        n_of_c, d_of_c, c_of_n = result.n_law, result.d_law, result.n_law.inverse
    by_params = []
    for n in settings.projection_params:
        c = float(c_of_n(n))
        by_params.append({"params": n, "flops": c, "tokens": float(d_of_c(c))})
    by_budget = [
        {"flops": c, "n_opt": float(n_of_c(c)), "d_opt": float(d_of_c(c))} for c in settings.projection_budgets
    ]
    return {"by_params": by_params, "by_budget": by_budget}


def _approach_dict(result: Any) -> dict[str, Any]:
    if isinstance(result, str):
        return {"a": None, "b": None, "a_interval": [None, None], "b_interval": [None, None], "error": result}
    return {**result.to_dict(), "error": None}


def _attempt(fit):
    try:
        return fit()
    except (ValueError, np.linalg.LinAlgError, FloatingPointError) as error:
        return f"{type(error).__name__}: {error}"


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0
