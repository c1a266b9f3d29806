"""Sweep planners: pure functions from FLOP budgets and a model ladder to a list of runs (Hoffmann et al. 2022,
Sections 3.1-3.2).

- ``plan_isoflop`` (Approach 2): for each budget C, ladder sizes around a guess of N_opt(C), each given the tokens
  that C buys under the EXACT Appendix F count (``flops.tokens_for_flops``, not 6ND), rounded to whole optimizer
  steps; the cosine cycle equals the run. Runs with fewer than ``min_steps`` steps are left out (recorded in
  ``Plan.skipped``); runs that would read more tokens than the corpus holds are kept and flagged ``multi_epoch``.
- ``plan_training_curves`` (Approach 1): each size trained for ``n_cycles`` cosine cycle lengths spanning ``span``x
  in tokens (the paper: 4 spanning 16x), each run as long as its cycle.
- ``plan_paper``: the paper's IsoFLOP grid (9 budgets 6e18 ... 3e21, Table A9 shapes) as a plan that can be printed
  and costed even where it cannot be run.
- ``plan_next_budget``: from a fitted law N_opt(C), the runs for a larger budget around its predicted optimum.

A run's training hyperparameters (learning rate, batch size, warm-up, data set, ...) are the ``train`` dict of
``chinchilla.train.TrainConfig`` keyword arguments, chosen per run by the caller's ``hparams(model, tokens)`` (so a
learning rate may depend on the size and on the run's length); the planner reads ``batch_size`` from it (tokens are
whole steps of batch_size x seq_len tokens), which must not depend on the last step's rounding.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from chinchilla import flops as flops_lib
from chinchilla import zoo
from chinchilla.config import ModelConfig

N_CONVENTIONS: tuple[str, ...] = ("total", "non_embedding")
PAPER_BUDGETS: tuple[float, ...] = (6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21)
# Table A3 (Approach 2): a 400M model is compute-optimal at 1.84e19 FLOPs; a = 0.49.
PAPER_APPROACH2_ANCHOR: tuple[float, float, float] = (1.84e19, 400e6, 0.49)
DEFAULT_BATCH_SIZE = 8

Hparams = Callable[[ModelConfig, int], Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One training run: a shape, its token count and the exact training FLOPs they cost.

    ``budget`` is the IsoFLOP budget the run belongs to (None outside IsoFLOP plans); ``group`` names the plan it
    came from; ``train`` holds extra ``TrainConfig`` keyword arguments; ``flags`` mark conditions such as
    ``multi_epoch``. ``run_id`` names the run's directory and is unique within a plan.
    """

    run_id: str
    group: str
    model: ModelConfig
    tokens: int
    flops: float
    budget: float | None = None
    train: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    flags: tuple[str, ...] = ()
    shared_flops: float = 0.0

    def n_params(self, convention: str = "total") -> int:
        return n_params(self.model, convention)

    @property
    def trunk(self) -> str | None:
        """The run id of the trunk this run branches off (``share_trunks``), or None."""
        init_from = self.train.get("init_from")
        return None if init_from is None else str(init_from).rpartition(":")[0] or str(init_from)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "run_id": self.run_id,
            "group": self.group,
            "model": self.model.to_dict(),
            "tokens": self.tokens,
            "flops": self.flops,
            "budget": self.budget,
            "train": dict(self.train),
            "flags": list(self.flags),
        }
        if self.shared_flops:
            data["shared_flops"] = self.shared_flops
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlannedRun:
        return cls(
            run_id=data["run_id"],
            group=data["group"],
            model=ModelConfig.from_dict(data["model"]),
            tokens=int(data["tokens"]),
            flops=float(data["flops"]),
            budget=None if data.get("budget") is None else float(data["budget"]),
            train=dict(data.get("train", {})),
            flags=tuple(data.get("flags", ())),
            shared_flops=float(data.get("shared_flops", 0.0)),
        )


@dataclasses.dataclass(frozen=True)
class Plan:
    """An ordered list of runs plus the (model, budget) pairs a planner left out and why."""

    name: str
    runs: tuple[PlannedRun, ...]
    skipped: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        ids = [r.run_id for r in self.runs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"plan {self.name!r} has duplicate run ids: {duplicates[:5]}")

    @property
    def total_flops(self) -> float:
        """The runs' FLOPs as the laws see them: a branch counts its whole length, its trunk's prefix included."""
        return float(sum(r.flops for r in self.runs if TRUNK_FLAG not in r.flags))

    @property
    def spent_flops(self) -> float:
        """The FLOPs the sweep trains: every trunk once, and each branch from its branch point on."""
        return float(sum(r.flops - r.shared_flops for r in self.runs))

    def __add__(self, other: Plan) -> Plan:
        """Both plans' runs; a run present in both (same id) is kept once if identical, else an error."""
        mine = {r.run_id: r for r in self.runs}
        extra = []
        for run in other.runs:
            if run.run_id in mine:
                if mine[run.run_id] != run:
                    raise ValueError(f"run id {run.run_id!r} names two different runs")
            else:
                extra.append(run)
        return Plan(
            name=f"{self.name}+{other.name}", runs=self.runs + tuple(extra), skipped=self.skipped + other.skipped
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "total_flops": self.total_flops,
            "spent_flops": self.spent_flops,
            "runs": [r.to_dict() for r in self.runs],
            "skipped": [dict(s) for s in self.skipped],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        return cls(
            name=data["name"],
            runs=tuple(PlannedRun.from_dict(r) for r in data["runs"]),
            skipped=tuple(data.get("skipped", ())),
        )


TRUNK_FLAG = "trunk"  # a run that only carries branches (a constant rate: not annealed, left out of the analysis)
# train settings that may differ between runs of one trunk family (share_trunks sets them per family or per run)
_LENGTH_SETTINGS = ("lr", "warmup_fraction", "final_lr_fraction", "cycle_tokens")


def share_trunks(
    plan: Plan, *, cooldown_fraction: float = 0.2, cooldown_shape: str = "1-sqrt", warmup_fraction: float | None = None
) -> Plan:
    """The same runs as warmup-stable-decay branches of shared trunks (Hägele et al. 2024, Section 4).

    Runs of one model that differ only in length (same seed and every setting but ``_LENGTH_SETTINGS``) form a
    family. A run of S steps decays over its last C = round(cooldown_fraction * S) steps, from D = S - C; its
    family's trunk is one constant-rate run of max D steps that keeps its state at every D (``save_steps``), and
    the run starts there (``init_from="<trunk id>:D"``), so it trains only its cooldown. The family shares one
    learning rate (the geometric mean of the plan's rates over its runs: the cosine rule's value at the family's
    middle length), one warm-up in tokens (``warmup_fraction`` (default: the runs' own) of its shortest run, at
    most its shortest stable phase), and one data pool (its longest run's tokens). ``PlannedRun.flops`` stays the
    whole run (what the laws see; ``Plan.total_flops``); ``shared_flops`` is the trunk's part, so
    ``Plan.spent_flops`` counts each trunk once. A family of one run gets no trunk: it is a plain WSD run.
    Trunks come first in the plan (flag ``trunk``, group "trunk", no budget), each before its branches.
    """
    if not 0 < cooldown_fraction <= 1:
        raise ValueError(f"cooldown_fraction={cooldown_fraction} must be in (0, 1] to branch runs off a trunk")
    families: dict[str, list[PlannedRun]] = {}
    for run in plan.runs:
        if run.train.get("init_from") is not None or TRUNK_FLAG in run.flags:
            raise ValueError(f"run {run.run_id!r} already branches or is a trunk: share_trunks takes a plain plan")
        same = {k: v for k, v in sorted(run.train.items()) if k not in _LENGTH_SETTINGS}
        key = json.dumps({"model": run.model.to_dict(), "train": same}, sort_keys=True, default=str)
        families.setdefault(key, []).append(run)
    trunks, branches = [], []
    for members in families.values():
        first = members[0]
        batch = int(first.train.get("batch_size", DEFAULT_BATCH_SIZE))
        step_tokens = batch * first.model.seq_len
        steps = {run.run_id: run.tokens // step_tokens for run in members}
        decay = {run.run_id: steps[run.run_id] - round(cooldown_fraction * steps[run.run_id]) for run in members}
        rates = [float(run.train.get("lr", 3e-3)) for run in members]
        fraction = warmup_fraction if warmup_fraction is not None else float(first.train.get("warmup_fraction", 0.1))
        warmup_steps = min(round(fraction * min(steps.values())), min(decay.values()))
        common = {
            **{k: v for k, v in first.train.items() if k not in _LENGTH_SETTINGS},
            "lr": round(math.exp(sum(math.log(r) for r in rates) / len(rates)), 6),
            "schedule": "wsd",
            "cooldown_shape": cooldown_shape,
            "final_lr_fraction": 0.0,
            "warmup_tokens": warmup_steps * step_tokens,
            "data_tokens": max(run.tokens for run in members) + first.model.seq_len,
        }
        if len(members) == 1:
            branches.append(dataclasses.replace(first, train={**common, "cooldown_fraction": cooldown_fraction}))
            continue
        trunk_steps = max(decay.values())
        seed = int(first.train.get("seed", 0))
        trunk_id = run_id_for(TRUNK_FLAG, first.model, trunk_steps * step_tokens, seed)
        per_step = flops_lib.training_flops_per_sequence(first.model) * batch
        trunks.append(
            PlannedRun(
                run_id=trunk_id,
                group=TRUNK_FLAG,
                model=first.model,
                tokens=trunk_steps * step_tokens,
                flops=float(trunk_steps * per_step),
                train={**common, "cooldown_fraction": 0.0, "save_steps": sorted(set(decay.values()))},
                flags=(TRUNK_FLAG,),
            )
        )
        for run in members:
            point = decay[run.run_id]
            branches.append(
                dataclasses.replace(
                    run,
                    train={**common, "cooldown_fraction": cooldown_fraction, "init_from": f"{trunk_id}:{point}"},
                    shared_flops=float(point * per_step),
                )
            )
    said = any(part == "wsd" or part.endswith("_wsd") for part in plan.name.split("+"))  # the preset says so
    name = plan.name if said else f"{plan.name}+wsd"
    return Plan(name=name, runs=tuple(trunks) + tuple(branches), skipped=plan.skipped)


def n_params(model: ModelConfig, convention: str = "total") -> int:
    """N of a shape under a parameter convention: ``total`` or ``non_embedding`` (Kaplan's)."""
    counts = flops_lib.param_count(model)
    if convention == "total":
        return counts.total
    if convention == "non_embedding":
        return counts.non_embedding
    raise ValueError(f"convention={convention!r} is not one of {N_CONVENTIONS}")


def whole_step_tokens(tokens: float, model: ModelConfig, batch_size: int) -> int:
    """``tokens`` rounded to the nearest whole number of steps of batch_size x seq_len tokens (at least one step)."""
    step = batch_size * model.seq_len
    return max(1, round(tokens / step)) * step


def resolve_run(model: ModelConfig, tokens: float, hparams: Hparams | None) -> tuple[int, dict[str, Any]]:
    """The run's token count, rounded to whole steps of its batch, and its ``TrainConfig`` keyword arguments."""
    if hparams is None:
        return whole_step_tokens(tokens, model, DEFAULT_BATCH_SIZE), {}
    batch_size = int(hparams(model, round(tokens)).get("batch_size", DEFAULT_BATCH_SIZE))
    rounded = whole_step_tokens(tokens, model, batch_size)
    train = dict(hparams(model, rounded))
    if int(train.get("batch_size", DEFAULT_BATCH_SIZE)) != batch_size:
        raise ValueError(
            f"hparams gave {model.name} batch_size {batch_size} for {round(tokens)} tokens but "
            f"{train.get('batch_size')} for {rounded}: the batch size must not depend on rounding"
        )
    return rounded, train


def power_law_center(anchor_flops: float, anchor_n: float, exponent: float) -> Callable[[float], float]:
    """N(C) = anchor_n * (C / anchor_flops)^exponent: a guess of the optimum to centre IsoFLOP windows on."""
    for name, value in (("anchor_flops", anchor_flops), ("anchor_n", anchor_n)):
        if not value > 0:
            raise ValueError(f"{name}={value} must be positive")
    return lambda c: anchor_n * (c / anchor_flops) ** exponent


def run_id_for(group: str, model: ModelConfig, tokens: int, seed: int = 0, budget: float | None = None) -> str:
    """A directory-safe, deterministic name: ``<group>-<budget>-<model>-<seed>`` for IsoFLOP runs, else
    ``<group>-<model>-t<tokens>-<seed>``."""
    name = model.name or f"L{model.n_layers}d{model.d_model}f{model.ffw_size}h{model.n_heads}k{model.kv_size}"
    what = f"c{budget:.3g}-{name}" if budget is not None else f"{name}-t{tokens}"
    return f"{group}-{what}-s{seed}".replace("+", "")


def plan_isoflop(
    budgets: Sequence[float],
    ladder: Sequence[ModelConfig],
    *,
    hparams: Hparams | None = None,
    center: Callable[[float], float] | None = None,
    sizes_per_budget: int | None = None,
    span: float | None = None,
    spacing: float | None = None,
    convention: str = "non_embedding",
    min_steps: int = 1,
    max_tokens: float | None = None,
    seeds: Sequence[int] = (0,),
    seed_sizes: int | None = None,
    group: str = "isoflop",
    name: str = "isoflop",
) -> Plan:
    """IsoFLOP profiles: for each budget, sizes of ``ladder`` with tokens from the exact FLOP count.

    Without ``center`` every size of the ladder is planned at every budget. With ``center(C)`` (a guess of N_opt
    in the ``convention``), the sizes are the ``sizes_per_budget`` eligible ones nearest to it in log N, and/or those
    within a factor ``span`` of it. With ``spacing`` as well, the ``sizes_per_budget`` sizes are the eligible ones
    nearest to a geometric grid centre * spacing^k, k = -(m-1)/2 ... (m-1)/2, each used once: a wider window
    than adjacent ladder rungs, which pins a parabola's curvature better when losses are noisy. Eligible: at
    least ``min_steps`` optimizer steps. ``max_tokens`` (the corpus
    size) flags longer runs ``multi_epoch``. ``seed_sizes``: only the sizes nearest (in log N) to ``center(C)``, this
    many per budget, are trained with every seed of ``seeds``, the others with ``seeds[0]`` alone (seeds where the
    minimum is expected, at a fraction of the cost); None: every size with every seed.
    """
    _check_budgets(budgets)
    if not ladder:
        raise ValueError("the ladder is empty")
    if center is None and (sizes_per_budget is not None or span is not None):
        raise ValueError("sizes_per_budget and span select sizes around center(C): give center too")
    if sizes_per_budget is not None and sizes_per_budget < 1:
        raise ValueError(f"sizes_per_budget={sizes_per_budget} must be at least 1")
    if span is not None and not span > 1:
        raise ValueError(f"span={span} must be greater than 1")
    if seed_sizes is not None and (center is None or seed_sizes < 1):
        raise ValueError(f"seed_sizes={seed_sizes} needs center and must be at least 1")
    if not seeds:
        raise ValueError("seeds is empty")
    if spacing is not None and (sizes_per_budget is None or not spacing > 1):
        raise ValueError(f"spacing={spacing} needs sizes_per_budget and must be greater than 1")
    n_params(ladder[0], convention)  # validates the convention
    runs, skipped = [], []
    for budget in sorted(budgets):
        eligible = []
        for model in ladder:
            tokens, train = resolve_run(model, flops_lib.tokens_for_flops(model, budget), hparams)
            steps = tokens // (int(train.get("batch_size", DEFAULT_BATCH_SIZE)) * model.seq_len)
            if steps < min_steps:
                skipped.append(
                    {
                        "model": model.name,
                        "budget": budget,
                        "steps": steps,
                        "reason": f"{steps} steps < min_steps={min_steps}",
                    }
                )
                continue
            eligible.append((model, tokens, train))
        chosen = _select_sizes(eligible, budget, center, sizes_per_budget, span, spacing, convention)
        seeded = {id(e[0]) for e in chosen}
        if seed_sizes is not None:
            target = math.log(center(budget))
            nearest = sorted(chosen, key=lambda e: abs(math.log(n_params(e[0], convention)) - target))
            seeded = {id(e[0]) for e in nearest[:seed_sizes]}
        for model, tokens, train in chosen:
            flags = ("multi_epoch",) if max_tokens is not None and tokens > max_tokens else ()
            for seed in seeds if id(model) in seeded else seeds[:1]:
                runs.append(
                    PlannedRun(
                        run_id=run_id_for(group, model, tokens, seed, budget),
                        group=group,
                        model=model,
                        tokens=tokens,
                        flops=flops_lib.training_flops(model, tokens),
                        budget=float(budget),
                        train={**train, "seed": seed},
                        flags=flags,
                    )
                )
    return Plan(name=name, runs=tuple(runs), skipped=tuple(skipped))


GOLDEN = (math.sqrt(5) - 1) / 2  # the most evenly spread sequence of phases: frac(j * GOLDEN)


def plan_training_curves(
    ladder: Sequence[ModelConfig],
    *,
    tokens_per_param: float | None = None,
    flops_center: Callable[[float], float] | None = None,
    n_cycles: int = 4,
    span: float = 16.0,
    stagger: bool = False,
    convention: str = "non_embedding",
    hparams: Hparams | None = None,
    min_steps: int = 1,
    lift_short: bool = False,
    max_tokens: float | None = None,
    seeds: Sequence[int] = (0,),
    group: str = "curves",
    name: str = "curves",
) -> Plan:
    """Approach 1's grid (Hoffmann et al. 2022, Section 3.1): each size trained for ``n_cycles`` cycle lengths,
    geometrically spaced over ``span``x in tokens; each run is exactly one cosine cycle long.

    Where a size's cycles lie: ``tokens_per_param`` (the shortest is that many tokens per parameter, N in
    ``convention``), or ``flops_center(N)`` (FLOPs): the cycles' geometric centre, e.g. a guess of the budget at
    which N is compute-optimal, so that each size is trained from too short to too long for it.

    ``stagger``: shift each size's cycles by less than one cycle ratio r = span^(1/(n_cycles-1)) (up or down) so
    that the runs' end points, in log FLOPs modulo log r, follow the evenly spread sequence frac(j * 0.618...) over
    the ladder's sizes j. Without it, neighbouring sizes' runs can end at nearly the same FLOPs, and at the FLOP
    values in between no run is in its last 15%; Approach 1's envelope can then only pick mid-cycle points.

    Runs shorter than ``min_steps`` optimizer steps are left out (``Plan.skipped``), or with ``lift_short`` the
    size's whole set of cycles is lengthened by whole cycle ratios r (which keeps the stagger) until its shortest
    has ``min_steps`` steps, so that every size still gets ``n_cycles`` runs spanning ``span``x.
    Errors: ValueError for n_cycles < 1, span <= 1 with several cycles, neither or both of tokens_per_param and
    flops_center, or a non-positive value.
    """
    if n_cycles < 1:
        raise ValueError(f"n_cycles={n_cycles} must be at least 1")
    if not span >= 1 or (n_cycles > 1 and span == 1):
        raise ValueError(f"span={span} must be > 1 (>= 1 with a single cycle)")
    if (tokens_per_param is None) == (flops_center is None):
        raise ValueError("give exactly one of tokens_per_param and flops_center")
    if tokens_per_param is not None and not tokens_per_param > 0:
        raise ValueError(f"tokens_per_param={tokens_per_param} must be positive")
    ratio = span ** (1 / (n_cycles - 1)) if n_cycles > 1 else 1.0
    runs, skipped = [], []
    for j, model in enumerate(ladder):
        n = n_params(model, convention)
        if flops_center is not None:
            center = float(flops_center(n))
            if not (math.isfinite(center) and center > 0):
                raise ValueError(f"flops_center({n}) = {center} for {model.name}: must be positive FLOPs")
            shortest = flops_lib.tokens_for_flops(model, center) / math.sqrt(span)
        else:
            shortest = tokens_per_param * n
        if stagger and ratio > 1:
            per_token = flops_lib.training_flops_per_token(model)
            phase = math.log(shortest * per_token) / math.log(ratio)
            shift = (j * GOLDEN - phase) % 1.0
            shortest *= ratio ** (shift - 1.0 if shift >= 0.5 else shift)
        lengths = [shortest * ratio**i for i in range(n_cycles)]
        if lift_short and ratio > 1:
            batch = int(resolve_run(model, lengths[0], hparams)[1].get("batch_size", DEFAULT_BATCH_SIZE))
            while lengths[0] < min_steps * batch * model.seq_len:
                lengths = [t * ratio for t in lengths]
        for length in lengths:
            tokens, train = resolve_run(model, length, hparams)
            steps = tokens // (int(train.get("batch_size", DEFAULT_BATCH_SIZE)) * model.seq_len)
            if steps < min_steps:
                skipped.append(
                    {
                        "model": model.name,
                        "tokens": tokens,
                        "steps": steps,
                        "reason": f"{steps} steps < min_steps={min_steps}",
                    }
                )
                continue
            flags = ("multi_epoch",) if max_tokens is not None and tokens > max_tokens else ()
            for seed in seeds:
                runs.append(
                    PlannedRun(
                        run_id=run_id_for(group, model, tokens, seed),
                        group=group,
                        model=model,
                        tokens=tokens,
                        flops=flops_lib.training_flops(model, tokens),
                        train={**train, "seed": seed},
                        flags=flags,
                    )
                )
    return Plan(name=name, runs=tuple(runs), skipped=tuple(skipped))


def paper_hparams(model: ModelConfig, tokens: int | None = None) -> dict[str, Any]:
    """The paper's setup, as far as it is published: max LR 2e-4 for the smallest models down to 1.25e-4 for the
    largest (interpolated here in log N over Table A9), cosine decay 10x; batch 256 x 2048 tokens is our assumption."""
    sizes = [flops_lib.param_count(m).total for m in zoo.ladder("chinchilla")]
    position = (math.log(flops_lib.param_count(model).total) - math.log(sizes[0])) / (
        math.log(sizes[-1]) - math.log(sizes[0])
    )
    lr = 2e-4 + min(max(position, 0.0), 1.0) * (1.25e-4 - 2e-4)
    return {"batch_size": 256, "lr": round(lr, 8), "final_lr_fraction": 0.1}


def plan_paper(*, span: float = 4.0, ladder: Sequence[ModelConfig] | None = None) -> Plan:
    """The paper's Approach 2 grid: 9 budgets 6e18 ... 3e21 FLOPs over Table A9 shapes within a factor ``span`` of
    the paper's own N_opt(C) (Table A3: 400M at 1.84e19 FLOPs, a = 0.49), total parameters."""
    return plan_isoflop(
        PAPER_BUDGETS,
        ladder or zoo.ladder("chinchilla"),
        hparams=paper_hparams,
        center=power_law_center(*PAPER_APPROACH2_ANCHOR),
        span=span,
        convention="total",
        group="paper",
        name="paper",
    )


def plan_next_budget(
    n_opt: Callable[[float], float],
    budget: float,
    ladder: Sequence[ModelConfig],
    *,
    sizes_per_budget: int = 5,
    convention: str = "non_embedding",
    hparams: Hparams | None = None,
    min_steps: int = 1,
    max_tokens: float | None = None,
    seeds: Sequence[int] = (0,),
    group: str = "next",
) -> Plan:
    """The runs for one more budget, centred on a fitted law's prediction ``n_opt(budget)`` (e.g. an Approach 2
    ``IsoFlopResult.n_law``, fitted in the same ``convention``)."""
    return plan_isoflop(
        [budget],
        ladder,
        hparams=hparams,
        center=n_opt,
        sizes_per_budget=sizes_per_budget,
        convention=convention,
        min_steps=min_steps,
        max_tokens=max_tokens,
        seeds=seeds,
        group=group,
        name=f"{group}-{budget:.3g}",
    )


def plan_lr_scan(
    models: Sequence[ModelConfig],
    lrs: Sequence[float],
    budget: float,
    *,
    hparams: Hparams | None = None,
    seeds: Sequence[int] = (0,),
    group: str = "lr",
) -> Plan:
    """A learning-rate check: each of ``models`` trained at one ``budget`` with each peak learning rate in ``lrs``
    (other hyperparameters from ``hparams``), to show that the per-size rule sits near the best rate."""
    if not lrs or any(not lr > 0 for lr in lrs):
        raise ValueError(f"lrs={list(lrs)} must be a non-empty list of positive rates")
    _check_budgets([budget])
    runs = []
    for model in models:
        tokens, base = resolve_run(model, flops_lib.tokens_for_flops(model, budget), hparams)
        for lr in lrs:
            for seed in seeds:
                name = model.name or f"L{model.n_layers}d{model.d_model}"
                runs.append(
                    PlannedRun(
                        run_id=f"{group}-c{budget:.3g}-{name}-lr{lr:.3g}-s{seed}".replace("+", ""),
                        group=group,
                        model=model,
                        tokens=tokens,
                        flops=flops_lib.training_flops(model, tokens),
                        budget=float(budget),
                        train={**base, "lr": float(lr), "seed": seed},
                    )
                )
    return Plan(name=f"{group}-{budget:.3g}", runs=tuple(runs))


def plan_hparam_scan(
    models: Sequence[ModelConfig],
    variants: Sequence[Mapping[str, Any]],
    budget: float,
    *,
    hparams: Hparams | None = None,
    seeds: Sequence[int] = (0,),
    group: str = "lr",
) -> Plan:
    """A hyperparameter check beyond the learning rate: each of ``models`` trained at one ``budget`` once per
    variant, a dict of ``TrainConfig`` overrides (e.g. ``{"warmup_fraction": 0.02}`` or ``{"adam_b2": 0.99}``)
    applied on top of ``hparams``; ``{}`` is the rule itself. The run id names the overrides."""
    _check_budgets([budget])
    if not variants:
        raise ValueError("variants is empty: give at least one dict of TrainConfig overrides ({} = the rule)")
    runs = []
    for model in models:
        tokens, base = resolve_run(model, flops_lib.tokens_for_flops(model, budget), hparams)
        for variant in variants:
            if "batch_size" in variant:
                raise ValueError("a variant may not change batch_size: the run's tokens were rounded to its batch")
            train = {**base, **variant}
            tag = "-".join(f"{_short(k)}{v:.3g}" for k, v in sorted(variant.items())) or "rule"
            for seed in seeds:
                name = model.name or f"L{model.n_layers}d{model.d_model}"
                runs.append(
                    PlannedRun(
                        run_id=f"{group}-c{budget:.3g}-{name}-{tag}-s{seed}".replace("+", ""),
                        group=group,
                        model=model,
                        tokens=tokens,
                        flops=flops_lib.training_flops(model, tokens),
                        budget=float(budget),
                        train={**train, "seed": seed},
                    )
                )
    return Plan(name=f"{group}-{budget:.3g}", runs=tuple(runs))


def _short(key: str) -> str:
    return {"warmup_fraction": "wu", "adam_b2": "b2", "lr": "lr", "weight_decay": "wd"}.get(key, key)


def summarize(plan: Plan, convention: str = "non_embedding") -> list[dict[str, Any]]:
    """One printable row per run: id, model, N, tokens, tokens per parameter, FLOPs, steps, flags; and where
    it matters the schedule, the trunk a branch starts from and its branch point (step), and the FLOPs it spends
    (its own length less the trunk's shared prefix)."""
    rows = []
    for run in plan.runs:
        n = run.n_params(convention)
        batch_size = int(run.train.get("batch_size", DEFAULT_BATCH_SIZE))
        point = str(run.train.get("init_from", "")).rpartition(":")[2]
        rows.append(
            {
                "run_id": run.run_id,
                "model": run.model.name,
                "budget": run.budget,
                "n": n,
                "tokens": run.tokens,
                "tokens_per_param": run.tokens / n,
                "flops": run.flops,
                "steps": run.tokens // (batch_size * run.model.seq_len),
                "flags": ",".join(run.flags),
                "schedule": run.train.get("schedule", "cosine"),
                "trunk": run.trunk,
                "branch_point": int(point) if run.trunk and point.isdigit() else None,
                "spent_flops": run.flops - run.shared_flops,
            }
        )
    return rows


def _check_budgets(budgets: Iterable[float]) -> None:
    budgets = list(budgets)
    if not budgets:
        raise ValueError("no FLOP budgets given")
    for budget in budgets:
        if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
            raise ValueError(f"budget={budget!r} must be a positive finite number of FLOPs")


def _select_sizes(eligible, budget, center, sizes_per_budget, span, spacing, convention):
    if center is None:
        return eligible
    target = math.log(center(budget))
    log_n = {id(e[0]): math.log(n_params(e[0], convention)) for e in eligible}
    chosen = eligible
    if span is not None:
        chosen = [e for e in chosen if abs(log_n[id(e[0])] - target) <= math.log(span)]
    if sizes_per_budget is None:
        return chosen
    if spacing is None:
        targets = [target] * sizes_per_budget
    else:  # grid points nearest the centre claim their size first
        offsets = [k - (sizes_per_budget - 1) / 2 for k in range(sizes_per_budget)]
        targets = [target + o * math.log(spacing) for o in sorted(offsets, key=abs)]
    picked: list = []
    for point in targets:
        free = [e for e in chosen if not any(e is p for p in picked)]
        if not free:
            break
        picked.append(min(free, key=lambda e: abs(log_n[id(e[0])] - point)))
    return [e for e in chosen if any(e is p for p in picked)]
