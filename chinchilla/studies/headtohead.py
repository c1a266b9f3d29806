"""The head-to-head: a held-out test of our law against Kaplan's on real runs (Hoffmann et al. 2022, Section 4 and
Appendix D.4: Chinchilla against Gopher, and the Kaplan-allocated model against the compute-optimal one).

At a budget C above the sweep's largest, train two models: the size our Approach 2 law N_opt(C) = k C^a calls
optimal, and the size Kaplan et al.'s rule N_opt ∝ C^0.73 calls optimal, both laws anchored at the same point (our
law's N_opt at the sweep's largest budget, so they differ only by their exponents beyond it). Each is the shape of the
preset's ``beyond_ladder`` nearest to its law's N (in the preset's parameter convention), trained with the preset's
hyperparameters and the tokens the budget buys. The report gives both final losses next to the loss our Approach 3
fit predicts for each (N, D): the law that picked the lower-loss model wins, and the fit's predictions are tested on
runs it never saw.

The runs live in ``<sweep>/headtohead`` (a sweep directory of their own, so they never enter the main fits).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from chinchilla import runfiles
from chinchilla.paper import KAPLAN
from chinchilla.sweep.plan import Plan, n_params, plan_isoflop

KAPLAN_EXPONENT = KAPLAN[0]  # N_opt ∝ C^0.73
SUBDIR = "headtohead"


def plan_head_to_head(
    preset, sweep_dir, budget: float, *, kaplan_exponent: float = KAPLAN_EXPONENT
) -> tuple[Plan, dict[str, Any]]:
    """The two runs (groups ``h2h-ours`` and ``h2h-kaplan``) and how their sizes were chosen."""
    from chinchilla.analysis.report import fit_approach2
    from chinchilla.sweep.results import collect_results

    settings = dataclasses.replace(preset.analysis, n_resamples=0)
    rows = [r for r in collect_results(sweep_dir) if r["status"] == "finished" and r.get(settings.loss)]
    law = fit_approach2(rows, preset.convention, settings).n_law
    anchor = max(preset.budgets)
    if not budget > anchor:
        raise ValueError(f"budget={budget:g} must exceed the sweep's largest budget {anchor:g} (a held-out test)")
    targets = {"ours": float(law(budget)), "kaplan": float(law(anchor)) * (budget / anchor) ** kaplan_exponent}
    ladder = preset.beyond_ladder
    sizes = [n_params(m, preset.convention) for m in ladder]
    for name, target in targets.items():
        if not min(sizes) / 1.2 <= target <= max(sizes) * 1.2:
            raise ValueError(
                f"at {budget:g} FLOPs the {name} law wants N = {target:.3g}, outside the ladder's "
                f"{min(sizes):.3g} ... {max(sizes):.3g}"
            )
    chosen = {
        name: min(ladder, key=lambda m: abs(math.log(n_params(m, preset.convention) / target)))
        for name, target in targets.items()
    }
    if chosen["ours"] == chosen["kaplan"]:
        raise ValueError(
            f"at {budget:g} FLOPs both laws pick {chosen['ours'].name} (ours, a = {law.exponent:.3f}: "
            f"N = {targets['ours']:.3g}; Kaplan's, a = {kaplan_exponent}: {targets['kaplan']:.3g}): "
            "the laws agree this close to the sweep; choose a larger budget"
        )
    plan = None
    for name, model in chosen.items():
        part = plan_isoflop([budget], [model], hparams=preset.hparams, group=f"h2h-{name}", name=f"h2h-{name}")
        if not part.runs:
            raise ValueError(f"{model.name} cannot be planned at {budget:g} FLOPs")
        plan = part if plan is None else plan + part
    info = {
        "budget": budget,
        "anchor_flops": anchor,
        "anchor_n": float(law(anchor)),
        "our_exponent": law.exponent,
        "kaplan_exponent": kaplan_exponent,
        "convention": preset.convention,
        "targets": targets,
        "models": {name: m.name for name, m in chosen.items()},
    }
    return plan, info


def run_head_to_head(
    preset,
    sweep_dir,
    budget: float,
    *,
    kaplan_exponent: float = KAPLAN_EXPONENT,
    train_fn: Callable | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Plan, train (resumably) and report the head-to-head; writes ``headtohead/summary.json`` and ``report.md``."""
    from chinchilla.analysis.report import fit_approach3
    from chinchilla.sweep.identity import PlanChangedError
    from chinchilla.sweep.results import N_COLUMNS, collect_results
    from chinchilla.sweep.runner import run_sweep

    sweep_dir = runfiles.as_path(sweep_dir)
    out = sweep_dir / SUBDIR
    plan, info = plan_head_to_head(preset, sweep_dir, budget, kaplan_exponent=kaplan_exponent)
    try:
        run_sweep(plan, out, train_fn=train_fn or preset.train_fn(), log=log)
    except PlanChangedError as error:  # one head-to-head per sweep directory: its report compares two runs
        held = runfiles.read_json_or_none(out / "summary.json") or {}
        raise PlanChangedError(
            f"{out} holds the head-to-head"
            + (
                f" at {held['budget']:.3g} FLOPs"
                if isinstance(held.get("budget"), (int, float))
                else " of another plan"
            )
            + f", not at {budget:.3g}; move {out} aside "
            "to run another"
        ) from error
    settings = dataclasses.replace(preset.analysis, approach3_resamples=0)
    main_rows = [
        r
        for r in collect_results(sweep_dir)
        if r["status"] == "finished" and r.get(settings.loss) and not r.get("outside_plan")
    ]  # the sweep's plan only, as its report
    fit = fit_approach3(main_rows, preset.convention, settings)
    column = N_COLUMNS[preset.convention]
    runs = []
    for row in collect_results(out):
        runs.append(
            {
                "law": row["group"].removeprefix("h2h-"),
                "run_id": row["run_id"],
                "model": row["model"],
                "n": row[column],
                "tokens": row["tokens"],
                "flops": row["flops"],
                "status": row["status"],
                "loss": row.get(settings.loss),
                "predicted_loss": float(fit.loss(row[column], row["tokens"])),
            }
        )
    finished = [r for r in runs if r["loss"] is not None]
    winner = min(finished, key=lambda r: r["loss"])["law"] if len(finished) == 2 else None
    payload = {
        **info,
        "loss_column": settings.loss,
        "runs": runs,
        "lower_loss": winner,
        "approach3": {k: getattr(fit, k) for k in ("E", "A", "B", "alpha", "beta")},
    }
    runfiles.write_json_atomic(out / "summary.json", payload)
    runfiles.write_text_atomic(out / "report.md", render(payload))
    if log:
        log(render(payload))
    return payload


def render(payload: dict[str, Any]) -> str:
    lines = [
        f"# Head-to-head at {payload['budget']:.3g} FLOPs",
        "",
        f"Both laws anchored at N = {payload['anchor_n']:.3g} ({payload['convention']} parameters) at "
        f"{payload['anchor_flops']:.3g} FLOPs; ours extrapolates with a = {payload['our_exponent']:.3f}, "
        f"Kaplan's with a = {payload['kaplan_exponent']:.2f}.",
        "",
        f"| law | target N | model | N | tokens | FLOPs | {payload['loss_column']} | Approach 3 predicts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in payload["runs"]:
        loss = f"{run['loss']:.4f}" if run["loss"] is not None else run["status"]
        lines.append(
            f"| {run['law']} | {payload['targets'][run['law']]:.3g} | {run['model']} | {run['n']:,} | "
            f"{run['tokens']:,} | {run['flops']:.3g} | {loss} | {run['predicted_loss']:.4f} |"
        )
    if payload["lower_loss"]:
        lines += ["", f"Lower loss: the model {payload['lower_loss']!r} law chose."]
    return "\n".join(lines) + "\n"
