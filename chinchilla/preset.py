"""A *preset*: one reproduction at one scale, as configuration, and the plans built from it.

A preset is a module of ``chinchilla/presets/`` (or any Python file) defining ``PRESET = Preset(...)``: the model
ladder, the IsoFLOP budgets and how sizes are chosen around a guess of N_opt(C), optional training-curve runs for
Approach 1, the per-size training hyperparameters and the analysis settings. ``load_preset`` takes a preset's name
or a path; ``Preset.plan()`` is its sweep (``chinchilla.sweep.plan``), run by ``chinchilla.reproduce``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from chinchilla.analysis.report import AnalysisSettings
from chinchilla.config import ModelConfig
from chinchilla.flops import tokens_for_flops
from chinchilla.sweep.plan import (
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
from chinchilla.sweep.runner import train_planned_run

PRESET_DIR = Path(__file__).resolve().parent / "presets"  # one module per preset


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
    from chinchilla.analysis.report import fit_approach2
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


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.py") if not p.name.startswith("_"))


def load_preset(name_or_path: str) -> Preset:
    """``PRESET`` of ``chinchilla/presets/<name>.py``, or of the Python file at a given path."""
    path = Path(name_or_path)
    if path.suffix != ".py":
        path = PRESET_DIR / f"{name_or_path}.py"
        if not path.exists():
            close = difflib.get_close_matches(name_or_path, preset_names(), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"unknown preset {name_or_path!r}; {hint}presets: {', '.join(preset_names())} (or a .py path)"
            )
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
        raise ValueError(f"{path} does not define PRESET = chinchilla.preset.Preset(...)")
    return preset


def select_models(
    ladder: Sequence[ModelConfig], low: float, high: float, convention: str = "non_embedding"
) -> tuple[ModelConfig, ...]:
    """The ladder's shapes with N (in ``convention``) in [low, high]."""
    from chinchilla.sweep.plan import n_params

    return tuple(m for m in ladder if low <= n_params(m, convention) <= high)
