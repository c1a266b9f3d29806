"""The text of a sweep's analysis: the markdown report and the console's Table 2.

``render_markdown(analysis, payload)`` is ``report.md`` (Table 2 style first, then each approach, projections and
the runs); ``format_table(payload)`` and ``format_runs(payload, sweep_dir)`` are what ``chinchilla reproduce`` and
``chinchilla report`` print; ``interval_cell`` is the one way a value and its interval are written.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any

from chinchilla import runfiles
from chinchilla.analysis.report import Analysis, summary
from chinchilla.fit.envelope import PAPER_LATE_THRESHOLD
from chinchilla.fit.progress import format_seconds
from chinchilla.paper import APPROACH_TITLES, APPROACHES, GOPHER_FLOPS, KAPLAN, TABLE2
from chinchilla.sweep import results as results_lib


def write_report(analysis: Analysis, out_dir, *, figures: bool = True) -> dict[str, Any]:
    """Write ``report.md``, ``summary.json`` and (unless ``figures=False``) figure2/3/4.png into ``out_dir``;
    return the summary."""
    out = runfiles.as_path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = summary(analysis)
    written = []
    if figures:
        from chinchilla.analysis import plots  # matplotlib: imported when figures are drawn

        written = plots.write_figures(analysis, out)
    payload["figures"] = [p.name for p in written]
    runfiles.write_json_atomic(out / runfiles.SUMMARY_FILE, payload)
    runfiles.write_text_atomic(out / "report.md", render_markdown(analysis, payload))
    return payload


def render_markdown(analysis: Analysis, payload: dict[str, Any]) -> str:
    """The markdown report (Table 2 style first)."""
    s = analysis.settings
    lines = [f"# Compute-optimal scaling: {analysis.meta.get('preset', 'sweep')}", ""]
    runs = analysis.meta.get("runs", {})
    lines += [
        f"Sweep `{analysis.sweep_dir}`: {runs.get('finished', 0)} finished runs "
        f"({runs.get('failed', 0)} failed, {runs.get('pending', 0)} pending, "
        f"{runs.get('missing', 0)} missing: planned, no run directory), "
        f"{analysis.meta.get('total_flops', 0):.3g} training FLOPs (exact, Appendix F)."
    ]
    if "train_time_s" in analysis.meta:  # summed over the runs' own summaries: survives resumed invocations
        lines[-1] += f" Training time {format_seconds(analysis.meta['train_time_s'])} (all runs)."
    if "wall_time_s" in analysis.meta:  # the sweep's part of the command that wrote this report (not the analysis)
        lines[-1] += f" The sweep in this invocation: {format_seconds(analysis.meta['wall_time_s'])}."
    lines += [schedule_text(analysis.meta.get("schedule"))]
    lines += [
        f"Generated {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC. Loss: `{s.loss}`. "
        f"Intervals: 10th-90th percentiles over bootstrap resamples of {s.fraction:.0%} of the runs."
    ]
    noise = payload.get("seed_noise") or {}
    if noise.get("groups"):
        lines[-1] += (
            f" {noise['groups']} runs were trained with several seeds; each seed enters the fits and the "
            "resampling as a run of its own, so the intervals include seed noise (between seeds the loss "
            f"moved by {noise['mean_spread']:.4f} nats on average, at most {noise['max_spread']:.4f}; "
            f"one run's standard deviation {noise['std']:.4f})."
        )
    lines.append("")
    others = [c for c in s.conventions if c != analysis.headline]
    lines += [
        "## Table 2: N_opt ∝ C^a, D_opt ∝ C^b",
        "",
        f"Ours with N = {_convention_name(analysis.headline)} and C = exact training FLOPs (Appendix F), "
        + ("the paper's convention" if analysis.headline == "total" else "not the paper's convention")
        + (", then " + ", ".join(f"N = {_convention_name(c)}" for c in others) + " beside it" if others else "")
        + "; the paper's and Kaplan's for comparison.",
        "",
        f"| approach | a (N = {_convention_name(analysis.headline)}) | "
        f"b (N = {_convention_name(analysis.headline)}) | "
        + "".join(f"a (N = {_convention_name(c)}) | b (N = {_convention_name(c)}) | " for c in others)
        + "a (paper, all parameters) | b (paper, all parameters) |",
        "|---|---|---|" + "---|---|" * len(others) + "---|---|",
    ]
    for approach in APPROACHES:
        ours = payload[approach]
        paper = TABLE2[approach]
        beside = "".join(
            f"{_report_cell(ours['conventions'][c], 'a')} | {_report_cell(ours['conventions'][c], 'b')} | "
            for c in others
        )
        lines.append(
            f"| {APPROACH_TITLES[approach]} | {_report_cell(ours, 'a')} | {_report_cell(ours, 'b')} | {beside}"
            f"{paper[0]:.2f} ({paper[1][0]:.3f}, {paper[1][1]:.3f}) | "
            f"{paper[2]:.2f} ({paper[3][0]:.3f}, {paper[3][1]:.3f}) |"
        )
    lines += [
        "| Kaplan et al. 2020 (non-embedding) | | | " + "| | " * len(others) + f"{KAPLAN[0]:.2f} | {KAPLAN[1]:.2f} |",
        "",
        "Approaches 1 and 2 fit their slopes against the runs' exact FLOPs, where a + b need not be 1 (exact FLOPs "
        "are not proportional to N D); Approach 3's a and b are those of its frontier under C = 6ND with N in the "
        "column's convention (as the paper's), so there b = 1 - a, and a b under another N convention is another "
        "quantity.",
        "",
    ]
    lines += [
        "## The parameter convention",
        "",
        "At small scale the embedding and output head are a large share of the parameters, so which N is "
        "counted moves a (Kaplan et al. 2020 count non-embedding parameters; Hoffmann et al. all).",
        "",
        "| approach | " + " | ".join(f"a, N = {_convention_name(c)}" for c in s.conventions) + " |",
        "|---|" + "---|" * len(s.conventions),
    ]
    for approach in APPROACHES:
        cells = [_report_cell(payload[approach]["conventions"][c], "a") for c in s.conventions]
        lines.append(f"| {APPROACH_TITLES[approach]} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += _approach_sections(analysis, payload)
    lines += _projection_section(payload, _convention_name(analysis.headline))
    figures = payload.get("figures", [])
    if figures:
        lines += ["## Figures", ""] + [f"![{name}]({name})" for name in figures] + [""]
    lines += _runs_section(analysis)
    return "\n".join(lines) + "\n"


def _approach_sections(analysis: Analysis, payload: dict[str, Any]) -> list[str]:
    s = analysis.settings
    lines = ["## Approach 1: training-curve envelope", ""]
    one = payload["approach1"]
    if one.get("error"):
        lines += [f"Not fitted: {one['error']}", ""]
    else:
        lines += [
            f"{len(analysis.curves[analysis.headline])} curves, smoothed over {s.window} logged steps; the "
            f"lowest loss at {one['n_points']} of {s.n_points} log-spaced FLOP values in "
            f"[{one['flops_range'][0]:.3g}, {one['flops_range'][1]:.3g}] (the others are reached by fewer "
            f"than 2 runs); {len(one['selected_runs'])} runs appear on the envelope. "
            f"{one['late_fraction']:.0%} of the selected points lie in the last 15% of their run (the paper: "
            f"all), where {one['late_possible']:.0%} could: only there is any run in its last 15%."
        ]
        margin = one.get("late_margin") or [None, None]
        if margin[0] is not None and math.isfinite(margin[0]):
            lines[-1] += (
                f" Where a mid-run point was picked over a run in its last 15%, the late run's loss was "
                f"higher by {margin[0]:.4f} nats (median; 90th percentile {margin[1]:.4f})."
            )
        shares = one.get("late_by_threshold") or {}
        looser = [
            f"{share:.0%} in the last {1 - float(t):.0%}"
            for t, share in shares.items()
            if float(t) != PAPER_LATE_THRESHOLD and share == share
        ]
        if looser:
            lines[-1] += f" Of the selected points, {', '.join(looser)} of their run."
        lines.append("")
    lines += ["## Approach 2: IsoFLOP profiles", ""]
    two = payload["approach2"]
    if two.get("error"):
        lines += [f"Not fitted: {two['error']}", ""]
    if two.get("budgets"):
        window = "all sizes" if s.neighbours is None else f"{s.neighbours} sizes each side of the lowest loss"
        lines += [
            f"Parabola in ln N fitted to {window}; only budgets with an interior minimum enter the laws.",
            "",
            "| budget | C (runs) | runs | N_opt | D_opt | loss at N_opt | interior |",
            "|---|---|---|---|---|---|---|",
        ]
        for b in two["budgets"]:
            lines.append(
                f"| {b['budget']:.3g} | {b['flops']:.3g} | {b['n_runs']} | {b['n_opt']:.4g} | "
                f"{b['d_opt']:.4g} | {b['loss_opt']:.4f} | "
                f"{'yes' if b['interior'] else 'no: ' + b['reason']} |"
            )
        for b in two.get("budgets_left_out") or []:
            lines.append(f"| {b['budget']:.3g} | {b['flops']:.3g} | {b['n_runs']} | | | | not fitted: {b['reason']} |")
        lines.append("")
    for line in two.get("warnings") or []:
        lines.append(f"- warning: {line}")
    if two.get("warnings"):
        lines.append("")
    lines += ["## Approach 3: parametric loss", ""]
    three = payload["approach3"]
    if three.get("error"):
        lines += [f"Not fitted: {three['error']}", ""]
    else:
        lines += [
            f"L(N, D) = {three['E']:.4g} + {three['A']:.4g} / N^{three['alpha']:.4f} + "
            f"{three['B']:.4g} / D^{three['beta']:.4f}, fitted to {three['n_runs']} runs (Huber δ = 1e-3 on "
            f"log loss, summed; objective {three['objective']:.4g}). The paper: E = 1.69, A = 406.4, "
            "B = 410.7, α = 0.34, β = 0.28.",
            "",
        ]
        intervals = three.get("parameter_intervals") or {}
        if intervals:
            lines += [
                "Is the fit identified? 10th-90th percentiles over "
                f"{three['n_resamples']} bootstrap refits of {s.fraction:.0%} of the runs:",
                "",
                "| parameter | fit | 10% | 90% | 90% / 10% |",
                "|---|---|---|---|---|",
            ]
            for name in ("E", "alpha", "beta", "A", "B"):
                if name in intervals:
                    low, high = intervals[name]
                    ratio = f"{high / low:.2f}" if low and low > 0 else "-"
                    lines.append(f"| {name} | {three[name]:.4g} | {low:.4g} | {high:.4g} | {ratio} |")
            lines.append("")
        if three.get("warnings"):
            lines += ["**Warning: Approach 3 is not identified by these runs:**", ""]
            lines += [f"- {w}" for w in three["warnings"]] + [""]
        else:
            lines += [
                "Identified (the rule of `chinchilla fit parametric`, docs/fitting.md): no parameter at a "
                "bound, no data check warned, and the curvature at the optimum pins every parameter and a.",
                "",
            ]
    return lines


def _projection_section(payload: dict[str, Any], convention: str) -> list[str]:
    lines = [
        "## Projections (Table 3 style)",
        "",
        f"Each approach's laws (N = {convention}) extrapolated far beyond this sweep: an illustration of what "
        "they imply, not a prediction to trust.",
        "",
        "| parameters | " + " | ".join(f"{APPROACH_TITLES[a]}: FLOPs, tokens" for a in APPROACHES) + " |",
        "|---|" + "---|" * len(APPROACHES),
    ]
    tables = {a: payload[a].get("projections", {}) for a in APPROACHES}
    reference = next((t for t in tables.values() if t), None)
    if reference is None:
        return lines[:2] + ["No approach was fitted.", ""]
    for i, entry in enumerate(reference["by_params"]):
        cells = []
        for approach in APPROACHES:
            rows = tables[approach].get("by_params")
            cells.append(f"{rows[i]['flops']:.3g}, {rows[i]['tokens']:.3g}" if rows else "-")
        lines.append(f"| {entry['params']:.3g} | " + " | ".join(cells) + " |")
    lines.append("")
    for j, budget in enumerate(reference["by_budget"]):
        cells = []
        for approach in APPROACHES:
            rows = tables[approach].get("by_budget")
            cells.append(
                f"{APPROACH_TITLES[approach]}: N_opt {rows[j]['n_opt']:.3g}, D_opt {rows[j]['d_opt']:.3g}"
                if rows
                else f"{APPROACH_TITLES[approach]}: -"
            )
        lines.append(
            f"At {budget['flops']:.3g} FLOPs"
            + (" (Gopher's budget)" if budget["flops"] == GOPHER_FLOPS else "")
            + ": "
            + "; ".join(cells)
            + "."
        )
    lines.append("")
    return lines


def _runs_section(analysis: Analysis) -> list[str]:
    unfinished = analysis.meta.get("unfinished_runs") or []
    lines = ["## Runs", ""]
    extended = results_lib.extension_text(analysis.meta.get("plan"))
    if extended:
        lines += [f"The plan was {extended}.", ""]
    outside = analysis.meta.get("outside_plan") or []
    if outside:  # run directories of another plan (an earlier, edited preset): named, never fitted
        lines += [
            f"Not in the sweep's plan ({len(outside)} run directories, left out of every fit):",
            "",
            "| run | status | why |",
            "|---|---|---|",
        ]
        lines += [f"| {o['run_id']} | {o['status']} | {str(o['reason']).replace('|', '/')} |" for o in outside]
        lines.append("")
    if unfinished:  # failed and missing runs, with the reason each one records
        lines += ["Not in the fits:", "", "| run | status | reason |", "|---|---|---|"]
        lines += [
            f"| {u['run_id']} | {u['status']} | {str(u['reason'] or '').replace('|', '/')} |" for u in unfinished
        ] + [""]
    lines += [
        f"| run | N (total) | N (non-emb.) | tokens | FLOPs | {analysis.settings.loss} |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(analysis.rows, key=lambda r: (r["group"], r["budget"] or 0, r["n_params"])):
        lines.append(
            f"| {r['run_id']} | {r['n_params']:,} | {r['non_embedding_params']:,} | {r['tokens']:,} | "
            f"{r['flops']:.3g} | {r[analysis.settings.loss]:.4f} |"
        )
    lines.append("")
    return lines


def _convention_name(convention: str) -> str:
    return {"total": "all parameters", "non_embedding": "non-embedding parameters"}[convention]


def schedule_text(info: dict[str, Any] | None) -> str:
    """One sentence for the report: the schedule, and for WSD the trunks and spent vs nominal FLOPs."""
    info = info or {}
    if info.get("schedule", "cosine") == "cosine":
        return "Schedule: cosine, one cycle per run (the paper's)."
    cooldowns = ", ".join(f"{fraction:.0%} {shape}" for fraction, shape in info.get("cooldowns") or [])
    return (
        f"Schedule: {info['schedule']}: warmup-stable-decay runs (cooldown {cooldowns or '?'}, to zero), "
        f"{info.get('branches', 0)} of them branches of {info.get('trunks', 0)} shared constant-rate trunks "
        f"(Hägele et al. 2024). The plan spends {info.get('spent_flops', 0):.3g} FLOPs, each trunk once, for "
        f"{info.get('nominal_flops', 0):.3g} nominal FLOPs (each run counted whole, its trunk's prefix included: "
        f"what the laws see), {info.get('spent_ratio') or 0:.2f} of it. Trunks are left out of Approaches 1-3 "
        "(never annealed); Approach 1 reads each branch's whole curve, its trunk's prefix included."
    )


def format_runs(payload: Mapping[str, Any], sweep_dir, limit: int = 5) -> list[str]:
    """Console lines under the table for what the fits left out: failed, pending and missing runs (with their
    reasons, the first ``limit``), run directories outside the sweep's plan, and how an extended plan was built."""
    from chinchilla.sweep.results import extension_text

    where = f"{str(sweep_dir).rstrip('/')}/report.md"
    lines = []
    extended = extension_text(payload.get("plan"))
    if extended:
        lines.append(f"plan: {extended}")
    runs = payload.get("runs") or {}
    left = {status: runs.get(status, 0) for status in ("failed", "pending", "missing") if runs.get(status)}
    if left:
        planned = sum(runs.get(s, 0) for s in ("finished", "failed", "pending", "missing"))
        lines.append(
            f"runs: {runs.get('finished', 0)} of {planned} finished; not in the fits: "
            + ", ".join(f"{n} {status}" for status, n in left.items())
            + (
                " (missing: planned, no run directory; pending: not finished yet)"
                if {"pending", "missing"} & left.keys()
                else ""
            )
        )
        unfinished = payload.get("unfinished_runs") or []
        for entry in unfinished[:limit]:
            reason = (str(entry.get("reason") or "").splitlines() or [""])[0][:160]
            lines.append(f"  {entry['run_id']}: {entry['status']}" + (f": {reason}" if reason else ""))
        if len(unfinished) > limit:
            lines.append(f"  ... {len(unfinished) - limit} more in {where}")
    outside = payload.get("outside_plan") or []
    if outside:
        first = outside[0]
        lines.append(
            f"not in the sweep's plan, left out of every fit: {len(outside)} run director"
            f"{'y' if len(outside) == 1 else 'ies'} (first: {first['run_id']}: {first['reason']}); all in "
            f"{where}"
        )
    return lines


def format_table(payload: Mapping[str, Any]) -> str:
    """A plain-text Table 2 from a summary: a and b with intervals per approach, the headline convention (by default
    N = all parameters, exact FLOPs: the paper's) first, each column naming its convention; under it, why each
    approach that was not fitted was not (the first line of its error, per convention)."""
    lines = []
    conventions = list(payload["approach1"]["conventions"])
    headline = payload.get("convention", conventions[0])
    conventions = [headline] + [c for c in conventions if c != headline]
    names = {"total": "all params", "non_embedding": "non-embedding"}
    header = f"{'approach':<34}" + "".join(f"{'a (N = ' + names.get(c, c) + ')':>30}{'b':>24}" for c in conventions)
    lines.append(header)
    titles = {
        "approach1": "1. training-curve envelope",
        "approach2": "2. IsoFLOP profiles",
        "approach3": "3. parametric loss",
    }
    for approach, title in titles.items():
        cells = []
        for convention in conventions:
            entry = payload[approach]["conventions"][convention]
            cells.append(f"{interval_cell(entry, 'a'):>30}{interval_cell(entry, 'b'):>24}")
        lines.append(f"{title:<34}" + "".join(cells))
    paper_a, paper_b = (" / ".join(f"{TABLE2[k][i]:.2f}" for k in APPROACHES) for i in (0, 2))
    lines.append(f"{'paper, all params (1 / 2 / 3)':<34}{paper_a:>30}{paper_b:>24}")
    lines.append(f"{'Kaplan et al. 2020, non-embedding':<34}{KAPLAN[0]:>30.2f}{KAPLAN[1]:>24.2f}")
    for approach, title in titles.items():
        for convention in conventions:
            error = payload[approach]["conventions"][convention].get("error")
            if error:
                reason = (str(error).splitlines() or [""])[0][:200]
                lines.append(f"not fitted: {title} (N = {names.get(convention, convention)}): {reason}")
    return "\n".join(lines)


def interval_cell(entry: Mapping[str, Any], key: str, digits: int = 2) -> str:
    """``entry[key]`` with its interval (ends to ``digits`` decimals), ``0.524 (0.50, 0.53)``; the value alone when
    the interval is missing or not a number; "not fitted" when the value is missing."""
    value = entry.get(key)
    if value is None:
        return "not fitted"
    low, high = entry.get(f"{key}_interval") or (None, None)
    if low is None or any(isinstance(v, float) and math.isnan(v) for v in (low, high)):
        return f"{value:.3f}"
    return f"{value:.3f} ({low:.{digits}f}, {high:.{digits}f})"


def _report_cell(entry: Mapping[str, Any], key: str) -> str:
    """``interval_cell`` as report.md writes it: interval ends to 3 decimals."""
    return interval_cell(entry, key, digits=3)


def compare_table(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """a and b of each approach for several reported sweeps side by side (markdown)."""
    convention = next(iter(summaries.values()), {}).get("convention", "total")
    n_name = {"total": "N = all params", "non_embedding": "N = non-embedding"}.get(convention, convention)
    lines = [
        "| sweep | preset | "
        + " | ".join(f"{t}: a, b ({n_name})" for t in ("approach 1", "approach 2", "approach 3"))
        + " |",
        "|---|---|---|---|---|",
    ]
    for name, payload in summaries.items():
        cells = [
            f"{interval_cell(payload[k], 'a')}, {interval_cell(payload[k], 'b')}"
            for k in ("approach1", "approach2", "approach3")
        ]
        lines.append(f"| {name} | {payload.get('preset', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
