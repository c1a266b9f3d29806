"""The main job: a preset's sweep, trained (resumably), then the three approaches, the report and the figures.

    chinchilla reproduce --preset tiny_cpu --out DIR

``reproduce`` plans the preset's sweep (``chinchilla.preset``), trains this worker's share of the runs
(``chinchilla.sweep.run_sweep``: finished runs are skipped, so calling it again resumes), and once every run of the
plan is finished or failed, analyses the sweep (``chinchilla.analysis``) and writes ``DIR/report.md``,
``DIR/summary.json`` and ``DIR/figure{2,3,4}.png``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from chinchilla import runfiles
from chinchilla.analysis.render import format_runs, format_table, schedule_text, write_report
from chinchilla.analysis.report import AnalysisSettings, analyze
from chinchilla.preset import Preset
from chinchilla.sweep.identity import adopt_plan
from chinchilla.sweep.pool import resolve_jobs
from chinchilla.sweep.runner import plan_status, run_sweep


def reproduce(
    preset: Preset,
    out_dir,
    *,
    worker: int = 0,
    num_workers: int = 1,
    retry_failed: bool = False,
    analysis: AnalysisSettings | None = None,
    progress: bool = False,
    jobs: int | str | None = None,
    extend: bool = False,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any] | None:
    """Train the preset's sweep into ``out_dir`` (this worker's share; ``jobs`` runs at once, see
    ``chinchilla.sweep.run_sweep``) and, when no run is pending any more, write the report. Returns the summary, or
    None while other workers' runs are still pending. A directory holding another plan is refused before anything
    is written, unless ``extend`` adds this plan's new runs to it (``chinchilla.sweep.identity``)."""
    if not preset.runnable:
        raise ValueError(
            f"preset {preset.name!r} is a plan only (runnable=False): print it with "
            f"`chinchilla sweep --preset {preset.name} --plan-only`"
        )
    resolve_jobs(jobs)  # a bad value is an error before anything is written
    start = time.time()
    out = runfiles.as_path(out_dir)
    plan = preset.plan()
    held = runfiles.read_json_or_none(out / "preset.json")
    if isinstance(held, dict) and held.get("name") not in (None, preset.name):
        raise ValueError(
            f"{out} holds a sweep of preset {held['name']!r}, not {preset.name!r}; give a new --out "
            f"(or --preset {held['name']} to resume it)"
        )
    plan = adopt_plan(plan, out, extend=extend)  # a changed preset is refused before anything is written
    runfiles.write_json_atomic(out / "preset.json", preset.describe())
    say = log or (lambda _: None)
    say(f"{preset.name}: {len(plan.runs)} runs, {plan.total_flops:.3g} FLOPs -> {out}")
    outcome = run_sweep(
        plan,
        out,
        train_fn=preset.train_fn(progress),
        worker=worker,
        num_workers=num_workers,
        retry_failed=retry_failed,
        jobs=jobs,
        log=log,
    )
    status = plan_status(plan, out)
    if status["pending"]:
        say(
            f"{len(status['pending'])} runs of other workers still pending; the report waits for them "
            f"(run `chinchilla report {out}` any time for a partial one)"
        )
        return None
    return report(
        out,
        analysis or preset.analysis,
        meta={"preset": preset.name, "wall_time_s": time.time() - start, "sweep": outcome.to_dict()},
        log=log,
    )


def report(
    sweep_dir,
    settings: AnalysisSettings,
    *,
    meta: Mapping[str, Any] | None = None,
    figures: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Analyse a sweep directory and write its report; print the Table-2-style summary."""
    analysis = analyze(sweep_dir, settings, meta=dict(meta or {}))
    payload = write_report(analysis, sweep_dir, figures=figures)
    if log:
        if (payload.get("schedule") or {}).get("schedule", "cosine") != "cosine":
            log(schedule_text(payload["schedule"]))
        log(format_table(payload))
        for line in format_runs(payload, sweep_dir):
            log(line)
    return payload


def failures(sweep_dir) -> str | None:
    """One line for the failed runs of the plan in ``sweep_dir`` (``chinchilla.sweep.runner.failures_text``)."""
    from chinchilla.sweep.identity import recorded
    from chinchilla.sweep.runner import failures_text

    plan = recorded(sweep_dir)[0]
    return failures_text(plan, sweep_dir) if plan is not None else None
