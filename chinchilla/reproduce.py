"""The main job: a preset's sweep, trained (resumably), then the three approaches, the report and the figures.

    chinchilla reproduce --preset tiny_cpu --out DIR

A *preset* is a Python file in ``experiments/`` defining ``PRESET = Preset(...)``: the model ladder, the IsoFLOP
budgets and how sizes are chosen around a guess of N_opt(C), optional extra training-curve runs for Approach 1, the
per-size training hyperparameters, and the analysis settings. ``load_preset`` accepts a preset name (a file of
``experiments/``) or a path to such a file.

``reproduce`` plans, trains this worker's share of the runs (``chinchilla.sweep.run_sweep``: finished runs are
skipped, so calling it again resumes), and once every run of the plan is finished or failed, analyses the sweep and
writes ``DIR/report.md``, ``DIR/summary.json`` and ``DIR/figure{2,3,4}.png``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chinchilla.config import ModelConfig
from chinchilla.flops import tokens_for_flops
from chinchilla.report import AnalysisSettings, analyze, write_report
from chinchilla.sweep import store
from chinchilla.sweep.identity import adopt_plan
from chinchilla.sweep.plan import (
    TRUNK_FLAG,
    Plan,
    plan_hparam_scan,
    plan_isoflop,
    plan_lr_scan,
    plan_next_budget,
    plan_training_curves,
    power_law_center,
    resolve_run,
    share_trunks,
)
from chinchilla.sweep.pool import resolve_jobs
from chinchilla.sweep.runner import plan_status, run_sweep, train_planned_run

# Installed from a wheel, the presets are chinchilla/presets (pyproject.toml maps experiments/ there); in a source
# checkout or an editable install, experiments/ beside the package.
_INSTALLED_PRESETS = Path(__file__).resolve().parent / "presets"
PRESET_DIR = _INSTALLED_PRESETS if _INSTALLED_PRESETS.is_dir() else Path(__file__).resolve().parents[1] / "experiments"


@dataclasses.dataclass(frozen=True)
class Preset:
    """A reproduction at one scale.

    ``ladder``: the model shapes. ``budgets``: IsoFLOP budgets (exact FLOPs). ``center``: (C0, N0, exponent), a
    guess N_opt(C) = N0 (C / C0)^exponent in ``convention`` around which ``sizes_per_budget`` sizes (and/or sizes
    within a factor ``span``) are planned, spread over a geometric grid of ratio ``spacing`` if given (see
    ``plan_isoflop``); None plans every size at every budget. ``min_steps``: shorter runs are left out.
    ``max_tokens``: the corpus size in tokens (longer runs are flagged ``multi_epoch``). ``seeds``: the seeds of
    each IsoFLOP run; ``seed_sizes``: only this many sizes per budget nearest the centre get all of them (see
    ``plan_isoflop``). ``curves``: keyword arguments of ``plan_training_curves`` for dedicated Approach 1 runs
    (group "curves"), plus ``center_shift`` (cycles centred on shift x the budget where ``center`` puts N) and
    ``sizes`` ((low, high) N: the ladder's sizes that get curves); None: Approach 1 uses the IsoFLOP runs' curves.
    ``hparams(model, tokens)``:
    ``TrainConfig`` keyword arguments per run (lr, batch_size, warm-up, dataset, logging...). ``trainer``:
    "train" (``chinchilla.train``), or any ``train_fn(run, run_dir)`` such as
    ``chinchilla.sweep.synthetic.SyntheticTrainer`` (runs drawn from a known surface, for smoke tests).
    ``runnable`` False marks a plan that is only printed (the paper's grid). ``extrapolation_ladder``: the shapes
    for runs beyond the sweep (next budget, head-to-head; default ``ladder``). ``lr_check_*``: the learning-rate
    check (``lr_check_plan``): the named sizes at one budget, with the rule's rate times each factor.
    ``schedule``: "cosine" (the paper's: every run its own cosine cycle) or "wsd": the same runs as warmup-stable-decay
    branches of shared constant-rate trunks (``chinchilla.sweep.plan.share_trunks``, Hägele et al. 2024), each
    decaying over its last ``cooldown_fraction`` in ``cooldown_shape``; ``cosine_preset`` names the preset with the
    same points under cosine schedules (``--compare-schedules``).
    """

    name: str
    description: str
    ladder: tuple[ModelConfig, ...]
    budgets: tuple[float, ...]
    hparams: Callable[[ModelConfig, int], Mapping[str, Any]]
    center: tuple[float, float, float] | None = None
    sizes_per_budget: int | None = None
    span: float | None = None
    spacing: float | None = None
    convention: str = "non_embedding"
    min_steps: int = 1
    max_tokens: float | None = None
    seeds: tuple[int, ...] = (0,)
    seed_sizes: int | None = None
    curves: Mapping[str, Any] | None = None
    analysis: AnalysisSettings = dataclasses.field(default_factory=AnalysisSettings)
    trainer: str | Callable[..., dict] = "train"
    runnable: bool = True
    extrapolation_ladder: tuple[ModelConfig, ...] | None = None
    lr_check_budget: float | None = None
    lr_check_models: tuple[str, ...] = ()
    lr_check_factors: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    hparam_check_variants: tuple[Mapping[str, Any], ...] = ()
    notes: str = ""
    schedule: str = "cosine"
    cooldown_fraction: float = 0.2
    cooldown_shape: str = "1-sqrt"
    cosine_preset: str | None = None

    def __post_init__(self) -> None:
        from chinchilla.train_config import COOLDOWN_SHAPES, SCHEDULES

        if self.schedule not in SCHEDULES:
            raise ValueError(f"preset {self.name!r}: schedule={self.schedule!r} is not one of {SCHEDULES}")
        if self.cooldown_shape not in COOLDOWN_SHAPES:
            raise ValueError(
                f"preset {self.name!r}: cooldown_shape={self.cooldown_shape!r} is not one of {COOLDOWN_SHAPES}"
            )
        if not (isinstance(self.cooldown_fraction, (int, float)) and 0 < self.cooldown_fraction <= 1):
            raise ValueError(
                f"preset {self.name!r}: cooldown_fraction={self.cooldown_fraction!r} must be in (0, 1] "
                "(branches decay over it; 0 would leave every run unannealed)"
            )
        if not callable(self.trainer) and self.trainer != "train":
            raise ValueError(f"trainer={self.trainer!r} is neither 'train' nor a train_fn(run, run_dir)")
        if not self.budgets:
            raise ValueError(f"preset {self.name!r}: budgets is empty")

    def plan(self) -> Plan:
        center = power_law_center(*self.center) if self.center else None
        plan = plan_isoflop(
            self.budgets,
            self.ladder,
            hparams=self.hparams,
            center=center,
            sizes_per_budget=self.sizes_per_budget,
            span=self.span,
            spacing=self.spacing,
            convention=self.convention,
            min_steps=self.min_steps,
            max_tokens=self.max_tokens,
            seeds=self.seeds,
            seed_sizes=self.seed_sizes,
            name=self.name,
        )
        if self.curves:
            curves = dict(self.curves)
            if "center_shift" in curves:  # cycles centred on shift x the budget where the centre law puts N
                if not self.center:
                    raise ValueError(f"preset {self.name!r}: curves.center_shift needs center")
                c0, n0, exponent = self.center
                shift = float(curves.pop("center_shift"))
                curves["flops_center"] = lambda n: shift * c0 * (n / n0) ** (1 / exponent)
            ladder = self.ladder
            if "sizes" in curves:  # (low, high) N in the preset's convention
                ladder = select_models(self.ladder, *curves.pop("sizes"), self.convention)
            seeds = self.seeds[:1] if self.seed_sizes is not None else self.seeds
            plan = plan + plan_training_curves(
                ladder,
                hparams=self.hparams,
                convention=self.convention,
                min_steps=self.min_steps,
                max_tokens=self.max_tokens,
                seeds=seeds,
                **curves,
            )
        # Cheapest runs first (a stable sort): an interrupted sweep then holds every run below some cost, IsoFLOP
        # and training-curve runs alike, which `chinchilla report` can analyse as a smaller sweep.
        plan = dataclasses.replace(plan, runs=tuple(sorted(plan.runs, key=lambda r: r.flops)))
        if self.schedule != "wsd":
            return plan
        return wsd_order(
            share_trunks(plan, cooldown_fraction=self.cooldown_fraction, cooldown_shape=self.cooldown_shape)
        )

    @property
    def beyond_ladder(self) -> tuple[ModelConfig, ...]:
        """The shapes for runs beyond the sweep's budgets."""
        return self.extrapolation_ladder or self.ladder

    def train_fn(self, progress: bool = False):
        if callable(self.trainer):
            return self.trainer
        return functools.partial(train_planned_run, progress=progress)  # picklable, for sweep worker processes

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "budgets": list(self.budgets),
            "ladder": [m.name for m in self.ladder],
            "center": self.center,
            "sizes_per_budget": self.sizes_per_budget,
            "span": self.span,
            "spacing": self.spacing,
            "convention": self.convention,
            "min_steps": self.min_steps,
            "max_tokens": self.max_tokens,
            "seeds": list(self.seeds),
            "seed_sizes": self.seed_sizes,
            "curves": dict(self.curves) if self.curves else None,
            "trainer": self.trainer if isinstance(self.trainer, str) else repr(self.trainer),
            "analysis": self.analysis.to_dict(),
            "notes": self.notes,
            "schedule": self.schedule,
            **(
                {
                    "cooldown_fraction": self.cooldown_fraction,
                    "cooldown_shape": self.cooldown_shape,
                    "cosine_preset": self.cosine_preset,
                }
                if self.schedule == "wsd"
                else {}
            ),
        }


def wsd_order(plan: Plan) -> Plan:
    """A WSD plan's order for the runner: first the runs trained from step 0 (trunks, and runs whose family has no
    other length), the costliest first, so that the last of them to finish, and the branches that wait for it, end
    the sweep soonest (with the costly single runs last, the measured tiny_cpu_wsd sweep ended on one long run);
    then the branches, cheapest first (the earliest branch points)."""
    whole = sorted((r for r in plan.runs if r.trunk is None), key=lambda r: -r.flops)
    branches = sorted((r for r in plan.runs if r.trunk is not None), key=lambda r: r.flops)
    return dataclasses.replace(plan, runs=tuple(whole + branches))


def with_schedule(
    preset: Preset,
    schedule: str | None = None,
    cooldown_fraction: float | None = None,
    cooldown_shape: str | None = None,
) -> Preset:
    """The preset with another learning-rate schedule (``--schedule``, ``--cooldown-fraction``, ``--cooldown-shape``):
    ``wsd`` trains its runs as branches of shared trunks (see ``Preset``). A cooldown setting needs the wsd schedule
    (given, or the preset's). A changed preset is renamed: ``<name>+wsd`` (a cosine preset made wsd), ``+cd0.1`` /
    ``+linear`` for other cooldowns, and a wsd preset made cosine takes its ``cosine_preset`` name (or
    ``<name>+cosine``)."""
    target = schedule or preset.schedule
    if target != "wsd" and (cooldown_fraction is not None or cooldown_shape is not None):
        flag = "--cooldown-fraction" if cooldown_fraction is not None else "--cooldown-shape"
        raise ValueError(
            f"{flag} would be ignored: preset {preset.name!r} trains cosine schedules here; give --schedule wsd"
        )
    if target == "cosine":
        if preset.schedule == "cosine":
            return preset
        return dataclasses.replace(
            preset, name=preset.cosine_preset or f"{preset.name}+cosine", schedule="cosine", cosine_preset=None
        )
    fraction = preset.cooldown_fraction if cooldown_fraction is None else cooldown_fraction
    shape = preset.cooldown_shape if cooldown_shape is None else cooldown_shape
    if preset.schedule == "wsd" and (fraction, shape) == (preset.cooldown_fraction, preset.cooldown_shape):
        return preset
    tags = (
        ([] if preset.schedule == "wsd" else ["wsd"])
        + ([f"cd{fraction:g}"] if fraction != preset.cooldown_fraction else [])
        + ([shape] if shape != preset.cooldown_shape else [])
    )
    return dataclasses.replace(
        preset,
        name="+".join([preset.name] + tags),
        schedule="wsd",
        cooldown_fraction=fraction,
        cooldown_shape=shape,
        cosine_preset=preset.cosine_preset if preset.schedule == "wsd" else preset.name,
    )


def lr_check_plan(preset: Preset) -> Plan:
    """The preset's learning-rate check: each of ``lr_check_models`` at ``lr_check_budget`` with the per-size rule's
    learning rate times each of ``lr_check_factors`` (the rule is right if factor 1 is at or near the lowest loss),
    and at the rule's rate each of ``hparam_check_variants`` (TrainConfig overrides such as a warm-up fraction or
    AdamW beta2: Porian et al. 2024 found both matter at small scale)."""
    if preset.lr_check_budget is None or not preset.lr_check_models:
        raise ValueError(f"preset {preset.name!r} defines no learning-rate check (lr_check_budget, lr_check_models)")
    by_name = {m.name: m for m in preset.ladder}
    unknown = [name for name in preset.lr_check_models if name not in by_name]
    if unknown:
        raise ValueError(f"lr_check_models {unknown} are not in the preset's ladder")
    plans = []
    for name in preset.lr_check_models:
        model = by_name[name]
        rule = float(resolve_run(model, tokens_for_flops(model, preset.lr_check_budget), preset.hparams)[1]["lr"])
        plans.append(
            plan_lr_scan(
                [model], [rule * f for f in preset.lr_check_factors], preset.lr_check_budget, hparams=preset.hparams
            )
        )
        if preset.hparam_check_variants:
            plans.append(
                plan_hparam_scan(
                    [model],
                    [{"lr": rule, **v} for v in preset.hparam_check_variants],
                    preset.lr_check_budget,
                    hparams=preset.hparams,
                )
            )
    plan = plans[0]
    for extra in plans[1:]:
        plan = plan + extra
    return plan


def next_budget_plan(preset: Preset, sweep_dir, budget: float, sizes: int | None = None) -> Plan:
    """Runs for one more budget, centred on the N_opt(budget) of the Approach 2 law fitted to ``sweep_dir``."""
    from chinchilla.report import fit_approach2
    from chinchilla.sweep.results import collect_results

    settings = dataclasses.replace(preset.analysis, n_resamples=0)
    rows = [r for r in collect_results(sweep_dir) if r["status"] == "finished" and r.get(settings.loss)]
    law = fit_approach2(rows, preset.convention, settings).n_law
    return plan_next_budget(
        law,
        budget,
        preset.beyond_ladder,
        sizes_per_budget=sizes or preset.sizes_per_budget or 5,
        convention=preset.convention,
        hparams=preset.hparams,
        min_steps=preset.min_steps,
        max_tokens=preset.max_tokens,
        seeds=preset.seeds,
    )


def with_dataset(preset: Preset, dataset: str) -> Preset:
    """The same preset trained on another data set (the paper's Table A2: do the exponents depend on the data?).
    The corpus-size flag (``max_tokens``) is recomputed for the new data set."""
    from chinchilla.data import epochs_needed

    base = preset.hparams
    tokenizer = base(preset.ladder[0], 1).get("tokenizer", "byte")

    def hparams(model, tokens):
        return {**base(model, tokens), "dataset": dataset}

    corpus = round(1 / epochs_needed(1.0, dataset, tokenizer=tokenizer))
    return dataclasses.replace(
        preset,
        name=f"{preset.name}@{dataset}",
        hparams=hparams,
        max_tokens=corpus,
        description=f"{preset.description} (data set {dataset})",
    )


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


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.py") if not p.name.startswith("_"))


def load_preset(name_or_path: str) -> Preset:
    """``PRESET`` of ``experiments/<name>.py``, or of the Python file at a given path."""
    path = Path(name_or_path)
    if path.suffix != ".py":
        path = PRESET_DIR / f"{name_or_path}.py"
        if not path.exists():
            raise ValueError(f"unknown preset {name_or_path!r}; presets in {PRESET_DIR}: {preset_names()}")
    elif not path.exists():
        raise ValueError(f"preset file {str(path)!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"chinchilla_preset_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # a preset file is input: name it and its error (--verbose shows the traceback)
        where = f" line {error.lineno}" if isinstance(error, SyntaxError) and error.lineno else ""
        raise ValueError(f"preset file {str(path)!r}{where} fails to load: {type(error).__name__}: {error}") from error
    preset = getattr(module, "PRESET", None)
    if not isinstance(preset, Preset):
        raise ValueError(f"{path} does not define PRESET = chinchilla.reproduce.Preset(...)")
    return preset


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
    out = store.as_path(out_dir)
    plan = preset.plan()
    held = store.read_json(out / "preset.json")
    if isinstance(held, dict) and held.get("name") not in (None, preset.name):
        raise ValueError(
            f"{out} holds a sweep of preset {held['name']!r}, not {preset.name!r}; give a new --out "
            f"(or --preset {held['name']} to resume it)"
        )
    plan = adopt_plan(plan, out, extend=extend)  # a changed preset is refused before anything is written
    store.write_json_atomic(out / "preset.json", preset.describe())
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
            from chinchilla.report import schedule_text

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
    N = all parameters, exact FLOPs: the paper's) first, each column naming its convention."""
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
    lines.append(f"{'paper, all params (1 / 2 / 3)':<34}{'0.50 / 0.49 / 0.46':>30}{'0.50 / 0.51 / 0.54':>24}")
    lines.append(f"{'Kaplan et al. 2020, non-embedding':<34}{'0.73':>30}{'0.27':>24}")
    return "\n".join(lines)


def interval_cell(entry: Mapping[str, Any], key: str) -> str:
    """``entry[key]`` with its interval, ``0.524 (0.50, 0.53)``; "not fitted" when missing."""
    value = entry.get(key)
    if value is None:
        return "not fitted"
    low, high = entry.get(f"{key}_interval") or (None, None)
    if low is None or low != low:
        return f"{value:.3f}"
    return f"{value:.3f} ({low:.2f}, {high:.2f})"


def budgets_between(low: float, high: float, count: int) -> tuple[float, ...]:
    """``count`` budgets spaced geometrically from ``low`` to ``high``, rounded to 2 significant digits."""
    if count < 2 or not 0 < low < high:
        raise ValueError(f"need count >= 2 and 0 < low < high; got count={count}, low={low}, high={high}")
    ratio = (high / low) ** (1 / (count - 1))
    return tuple(float(f"{low * ratio**i:.2g}") for i in range(count))


def select_models(
    ladder: Sequence[ModelConfig], low: float, high: float, convention: str = "non_embedding"
) -> tuple[ModelConfig, ...]:
    """The ladder's shapes with N (in ``convention``) in [low, high]."""
    from chinchilla.sweep.plan import n_params

    return tuple(m for m in ladder if low <= n_params(m, convention) <= high)


COMPARE_SCHEDULES_FILE = "compare_schedules"  # OUT/compare_schedules.md and .json


def compare_schedules(
    preset: Preset,
    out_dir,
    *,
    cosine_dir=None,
    worker: int = 0,
    num_workers: int = 1,
    retry_failed: bool = False,
    progress: bool = False,
    jobs: int | str | None = None,
    extend: bool = False,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any] | None:
    """A WSD preset beside its cosine twin (``chinchilla reproduce --preset tiny_cpu_wsd --compare-schedules``):
    train (or resume, or reuse) both sweeps, the WSD one into ``out_dir`` and the cosine one into ``cosine_dir``
    (default ``<out_dir>_cosine``), report each, then compare them (``schedule_comparison``) into
    ``out_dir/compare_schedules.md`` and ``.json``. Returns the comparison, or None while runs of other workers
    are pending in either sweep."""
    if preset.schedule != "wsd":
        raise ValueError(
            f"--compare-schedules compares a wsd preset with its cosine twin; preset {preset.name!r} "
            "trains cosine schedules: give --preset tiny_cpu_wsd (or --schedule wsd)"
        )
    cosine = with_schedule(preset, "cosine")
    cosine_dir = str(cosine_dir or f"{str(out_dir).rstrip('/')}_cosine")
    if str(store.as_path(cosine_dir)) == str(store.as_path(out_dir)):
        raise ValueError(f"--cosine-dir {cosine_dir} is --out itself; the two schedules need two sweep directories")
    say = log or (lambda _: None)
    summaries = {}
    for name, which, directory in (("wsd", preset, out_dir), ("cosine", cosine, cosine_dir)):
        say(f"--compare-schedules: the {name} sweep ({which.name}) in {directory}")
        summaries[name] = reproduce(
            which,
            directory,
            worker=worker,
            num_workers=num_workers,
            retry_failed=retry_failed,
            progress=progress,
            jobs=jobs,
            extend=extend,
            log=log,
        )
    if any(summary is None for summary in summaries.values()):
        say("--compare-schedules: runs of other workers are still pending; the comparison waits for them")
        return None
    comparison = schedule_comparison(
        out_dir, cosine_dir, summaries["wsd"], summaries["cosine"], loss=preset.analysis.loss
    )
    out = store.as_path(out_dir)
    store.write_json_atomic(out / f"{COMPARE_SCHEDULES_FILE}.json", comparison)
    text = format_schedule_comparison(comparison)
    store.write_text_atomic(out / f"{COMPARE_SCHEDULES_FILE}.md", text + "\n")
    say(text)
    say(f"comparison: {str(out_dir).rstrip('/')}/{COMPARE_SCHEDULES_FILE}.md")
    return comparison


def schedule_comparison(
    wsd_dir, cosine_dir, wsd_summary: Mapping[str, Any], cosine_summary: Mapping[str, Any], *, loss: str = "eval_loss"
) -> dict[str, Any]:
    """What changes when a sweep's runs are WSD branches of shared trunks instead of cosine runs of their own:

    - per point (the same run id: the same model, tokens and seed), ``loss`` of the WSD run - the cosine run's:
      count, mean, median, median |delta|, 90th percentile of |delta| and of delta, largest |delta|, overall and
      per group; beside the seed noise of one run in each sweep (pooled standard deviation between seeds);
    - each approach's a and b with intervals under every convention, both schedules, and whether the WSD value
      lies inside the cosine sweep's interval; Approach 3's parameters; Approach 2's N_opt per budget;
    - the FLOPs: the WSD plan's spent FLOPs over the cosine plan's (``Plan.spent_flops``), and the runs' summed
      training time in each sweep."""
    from chinchilla.sweep.identity import recorded
    from chinchilla.sweep.results import collect_results

    def finished(directory):
        return {
            r["run_id"]: r
            for r in collect_results(directory)
            if r["status"] == "finished"
            and TRUNK_FLAG not in (r.get("flags") or ())
            and isinstance(r.get(loss), (int, float))
        }

    wsd_rows, cosine_rows = finished(wsd_dir), finished(cosine_dir)
    common = sorted(set(wsd_rows) & set(cosine_rows))
    points = [
        {
            "run_id": i,
            "group": cosine_rows[i]["group"],
            "model": cosine_rows[i]["model"],
            "tokens": cosine_rows[i]["tokens"],
            "seed": cosine_rows[i]["seed"],
            "cosine": cosine_rows[i][loss],
            "wsd": wsd_rows[i][loss],
            "delta": wsd_rows[i][loss] - cosine_rows[i][loss],
        }
        for i in common
    ]

    def stats(selected):
        if not selected:
            return {"points": 0}
        delta = np.array([p["delta"] for p in selected])
        return {
            "points": len(selected),
            "mean": float(delta.mean()),
            "median": float(np.median(delta)),
            "median_abs": float(np.median(np.abs(delta))),
            "p90_abs": float(np.percentile(np.abs(delta), 90)),
            "p10": float(np.percentile(delta, 10)),
            "p90": float(np.percentile(delta, 90)),
            "max_abs": float(np.abs(delta).max()),
            "wsd_better": int((delta < 0).sum()),
        }

    groups = sorted({p["group"] for p in points})
    approaches = {}
    for approach in ("approach1", "approach2", "approach3"):
        entry = {}
        for convention in cosine_summary[approach].get("conventions") or {}:
            cos = cosine_summary[approach]["conventions"][convention]
            wsd = (wsd_summary[approach].get("conventions") or {}).get(convention, {})
            low, high = cos.get("a_interval") or (None, None)
            inside = (
                None
                if wsd.get("a") is None or low is None or high is None
                else bool(min(low, high) <= wsd["a"] <= max(low, high))
            )
            entry[convention] = {"cosine": cos, "wsd": wsd, "wsd_a_inside_cosine_interval": inside}
        approaches[approach] = entry
    parameters = {
        name: {k: s["approach3"].get(k) for k in ("E", "A", "B", "alpha", "beta", "parameter_intervals")}
        for name, s in (("cosine", cosine_summary), ("wsd", wsd_summary))
    }
    budgets = {
        name: [
            {k: b.get(k) for k in ("budget", "n_opt", "loss_opt", "interior")}
            for b in (s["approach2"].get("budgets") or [])
        ]
        for name, s in (("cosine", cosine_summary), ("wsd", wsd_summary))
    }
    wsd_plan, cosine_plan = recorded(wsd_dir)[0], recorded(cosine_dir)[0]
    flops_info = {
        "cosine_total_flops": cosine_plan.total_flops if cosine_plan else None,
        "wsd_nominal_flops": wsd_plan.total_flops if wsd_plan else None,
        "wsd_spent_flops": wsd_plan.spent_flops if wsd_plan else None,
    }
    if cosine_plan and wsd_plan:
        flops_info["spent_ratio"] = wsd_plan.spent_flops / cosine_plan.total_flops
    times = {
        "cosine_train_time_s": cosine_summary.get("train_time_s"),
        "wsd_train_time_s": wsd_summary.get("train_time_s"),
    }
    if times["cosine_train_time_s"] and times["wsd_train_time_s"]:
        times["train_time_ratio"] = times["wsd_train_time_s"] / times["cosine_train_time_s"]
    return {
        "wsd_dir": str(wsd_dir),
        "cosine_dir": str(cosine_dir),
        "loss": loss,
        "wsd_preset": wsd_summary.get("preset"),
        "cosine_preset": cosine_summary.get("preset"),
        "schedule": wsd_summary.get("schedule"),
        "convention": cosine_summary.get("convention", "total"),
        "points": points,
        "delta": stats(points),
        "delta_by_group": {g: stats([p for p in points if p["group"] == g]) for g in groups},
        "only_wsd": sorted(set(wsd_rows) - set(common)),
        "only_cosine": sorted(set(cosine_rows) - set(common)),
        "seed_noise": {"cosine": cosine_summary.get("seed_noise"), "wsd": wsd_summary.get("seed_noise")},
        "approaches": approaches,
        "approach3_parameters": parameters,
        "approach2_budgets": budgets,
        "flops": flops_info,
        "time": times,
    }


def format_schedule_comparison(comparison: Mapping[str, Any]) -> str:
    """The markdown of ``schedule_comparison``: Table 2 for both schedules side by side, then the per-point loss
    differences beside the seed noise, then the FLOPs."""
    names = {"total": "all parameters", "non_embedding": "non-embedding"}
    titles = {
        "approach1": "1. training-curve envelope",
        "approach2": "2. IsoFLOP profiles",
        "approach3": "3. parametric loss",
    }
    lines = [
        f"# WSD branches vs cosine runs: {comparison.get('wsd_preset')} vs {comparison.get('cosine_preset')}",
        "",
        f"WSD sweep `{comparison['wsd_dir']}`, cosine sweep `{comparison['cosine_dir']}`; loss "
        f"`{comparison['loss']}`; intervals: 10th-90th percentiles over bootstrap resamples.",
        "",
        "## Table 2, both schedules",
        "",
        "| approach | N | a, cosine | a, WSD | WSD a inside the cosine interval | b, cosine | b, WSD |",
        "|---|---|---|---|---|---|---|",
    ]
    for approach, entry in comparison["approaches"].items():
        order = sorted(entry, key=lambda c: c != comparison.get("convention", "total"))
        for convention in order:
            item = entry[convention]
            inside = {True: "yes", False: "no", None: "-"}[item["wsd_a_inside_cosine_interval"]]
            lines.append(
                f"| {titles[approach]} | {names.get(convention, convention)} | "
                f"{interval_cell(item['cosine'], 'a')} | {interval_cell(item['wsd'], 'a')} | {inside} | "
                f"{interval_cell(item['cosine'], 'b')} | {interval_cell(item['wsd'], 'b')} |"
            )
    delta = comparison["delta"]
    noise = comparison.get("seed_noise") or {}
    std = {k: (v or {}).get("std") for k, v in noise.items()}

    def fmt(v):
        return "-" if v is None else f"{v:.4f}"

    lines += ["", "## Per point: WSD loss - cosine loss (same model, tokens, seed)", ""]
    if not delta.get("points"):
        lines += ["No point finished in both sweeps.", ""]
    else:
        lines += [
            "| runs | points | median | median abs | 90th pct abs | 10th / 90th pct | largest abs | WSD lower |",
            "|---|---|---|---|---|---|---|---|",
        ]
        rows = [("all", delta)] + list(comparison.get("delta_by_group", {}).items())
        for name, s in rows:
            if s.get("points"):
                lines.append(
                    f"| {name} | {s['points']} | {s['median']:+.4f} | {s['median_abs']:.4f} | "
                    f"{s['p90_abs']:.4f} | {s['p10']:+.4f} / {s['p90']:+.4f} | {s['max_abs']:.4f} | "
                    f"{s['wsd_better']} of {s['points']} |"
                )
        lines += [
            "",
            f"Seed noise (pooled standard deviation of one run's loss between seeds): cosine "
            f"{fmt(std.get('cosine'))}, WSD {fmt(std.get('wsd'))} nats; the difference of two runs varies "
            f"by about sqrt(2) times that.",
        ]
        if std.get("cosine"):
            verdict = "within" if delta["median_abs"] <= std["cosine"] else "above"
            lines[-1] += f" The median |delta| {delta['median_abs']:.4f} is {verdict} the cosine seed noise."
    budgets = comparison.get("approach2_budgets") or {}
    if budgets.get("cosine") and budgets.get("wsd"):
        by_budget = {b["budget"]: b for b in budgets["wsd"]}
        lines += [
            "",
            "## Approach 2: each budget's minimum",
            "",
            "| budget | N_opt, cosine | N_opt, WSD | loss at N_opt, cosine | loss at N_opt, WSD |",
            "|---|---|---|---|---|",
        ]
        for b in budgets["cosine"]:
            w = by_budget.get(b["budget"], {})

            def cell(x, f):
                return "-" if x is None else format(x, f)

            lines.append(
                f"| {b['budget']:.3g} | {cell(b.get('n_opt'), '.4g')} | {cell(w.get('n_opt'), '.4g')} | "
                f"{cell(b.get('loss_opt'), '.4f')} | {cell(w.get('loss_opt'), '.4f')} |"
            )
    params = comparison.get("approach3_parameters") or {}
    if all(params.get(k, {}).get("E") is not None for k in ("cosine", "wsd")):
        lines += [
            "",
            "## Approach 3's parameters",
            "",
            "| schedule | E | A | B | alpha | beta |",
            "|---|---|---|---|---|---|",
        ]
        for name in ("cosine", "wsd"):
            p = params[name]
            intervals = p.get("parameter_intervals") or {}
            cells = [
                f"{p[k]:.4g}" + (f" ({intervals[k][0]:.3g}, {intervals[k][1]:.3g})" if k in intervals else "")
                for k in ("E", "A", "B", "alpha", "beta")
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    f, t = comparison.get("flops") or {}, comparison.get("time") or {}
    lines += ["", "## Compute", ""]
    if f.get("spent_ratio") is not None:
        lines.append(
            f"Spent FLOPs: WSD {f['wsd_spent_flops']:.3g} (each trunk once) vs cosine "
            f"{f['cosine_total_flops']:.3g}: {f['spent_ratio']:.3f}x; both sweeps' runs count "
            f"{f['wsd_nominal_flops']:.3g} nominal FLOPs."
        )
    if t.get("train_time_ratio") is not None:
        lines.append(
            f"Training time summed over runs: WSD {t['wsd_train_time_s'] / 60:.1f} min, cosine "
            f"{t['cosine_train_time_s'] / 60:.1f} min: {t['train_time_ratio']:.3f}x."
        )
    if comparison.get("only_wsd") or comparison.get("only_cosine"):
        lines.append(
            f"Points in one sweep only (left out of the differences): {len(comparison['only_wsd'])} WSD, "
            f"{len(comparison['only_cosine'])} cosine."
        )
    return "\n".join(lines)
