"""Sweep planners: budgets hit with the exact FLOP count, windows around the optimum, Approach 1's cycle grid, the
paper's grid as a plan, the next budget, and plans that survive a JSON round trip."""

from __future__ import annotations

import json
import math

import pytest

from chinchilla import flops, zoo
from chinchilla.fit.powerlaw import fit_power_law
from chinchilla.sweep import (
    PAPER_BUDGETS,
    Plan,
    n_params,
    plan_isoflop,
    plan_next_budget,
    plan_paper,
    plan_training_curves,
    power_law_center,
    summarize,
)

TINY = zoo.ladder("tiny")


def hparams(model, tokens):
    return {"batch_size": 4 if model.d_model < 40 else 8, "lr": 1e-3 * (tokens / 1e6) ** -0.5}


def test_isoflop_plan_hits_budgets_with_exact_flops():
    budgets = (3e11, 1e12, 3e12)
    plan = plan_isoflop(budgets, TINY[:12], hparams=hparams, min_steps=100)
    assert plan.runs
    for run in plan.runs:
        exact = flops.training_flops(run.model, run.tokens)
        assert run.flops == exact
        assert abs(exact / run.budget - 1) < 0.01  # within 1% of the budget, counted by Appendix F, not 6ND
        step = run.train["batch_size"] * run.model.seq_len
        assert run.tokens % step == 0 and run.tokens // step >= 100
    assert {run.budget for run in plan.runs} == set(budgets)
    # Exact FLOPs differ from 6ND at this scale (embeddings and attention): the planner must not use 6ND.
    run = plan.runs[0]
    assert abs(flops.six_nd(run.n_params("total"), run.tokens) / run.flops - 1) > 0.05


def test_isoflop_window_is_centred_on_the_guess_and_skips_short_runs():
    center = power_law_center(3e11, 12e3, 0.7)
    plan = plan_isoflop((3e11, 3e12), TINY, hparams=hparams, center=center, sizes_per_budget=5, min_steps=200)
    for budget in (3e11, 3e12):
        runs = [r for r in plan.runs if r.budget == budget]
        assert len(runs) == 5
        sizes = sorted(r.n_params("non_embedding") for r in runs)
        assert sizes[0] < center(budget) < sizes[-1]
        ladder_sizes = sorted(n_params(m, "non_embedding") for m in TINY)
        first = ladder_sizes.index(sizes[0])
        assert ladder_sizes[first : first + 5] == sizes  # contiguous on the ladder
    assert all("min_steps" in s["reason"] for s in plan.skipped)
    assert all(s["steps"] < 200 for s in plan.skipped)


def test_isoflop_span_and_multi_epoch_flag():
    plan = plan_isoflop((1e12,), TINY, center=lambda c: 3e4, span=2.0, max_tokens=2e6)
    for run in plan.runs:
        assert 1.5e4 <= run.n_params("non_embedding") <= 6e4
        assert ("multi_epoch" in run.flags) == (run.tokens > 2e6)
    assert any("multi_epoch" in r.flags for r in plan.runs)


def test_training_curve_plan_spans_16x_in_cycle_lengths():
    plan = plan_training_curves(TINY[:5], tokens_per_param=10, hparams=hparams)
    assert len(plan.runs) == 20
    for model in TINY[:5]:
        tokens = sorted(r.tokens for r in plan.runs if r.model == model)
        assert len(tokens) == 4
        assert tokens[-1] / tokens[0] == pytest.approx(16, rel=0.05)
        assert tokens[0] == pytest.approx(10 * n_params(model, "non_embedding"), rel=0.1)
        ratios = [b / a for a, b in zip(tokens, tokens[1:])]
        assert max(ratios) / min(ratios) == pytest.approx(1, abs=0.1)  # geometric spacing


def test_paper_plan_covers_nine_budgets_around_the_published_optimum():
    plan = plan_paper()
    assert sorted({r.budget for r in plan.runs}) == list(PAPER_BUDGETS)
    assert all(r.model.name.startswith("chinchilla-") for r in plan.runs)
    for budget in PAPER_BUDGETS:
        sizes = sorted(r.n_params("total") for r in plan.runs if r.budget == budget)
        optimum = 400e6 * (budget / 1.84e19) ** 0.49
        assert sizes[0] < optimum < sizes[-1]
        assert len(sizes) >= 10
    for run in plan.runs:
        assert abs(run.flops / run.budget - 1) < 0.01
        assert 1.25e-4 <= run.train["lr"] <= 2e-4
    assert 1e22 < plan.total_flops < 1e24


def test_next_budget_is_centred_on_the_fitted_law():
    law = fit_power_law([3e11, 1e12, 3e12], [1.2e4, 2.8e4, 5.5e4])
    plan = plan_next_budget(law, 1e13, TINY, sizes_per_budget=5, hparams=hparams)
    sizes = sorted(r.n_params("non_embedding") for r in plan.runs)
    assert len(sizes) == 5 and sizes[0] < law(1e13) < sizes[-1]
    assert all(r.group == "next" and r.budget == 1e13 for r in plan.runs)


def test_plan_round_trips_through_json_and_rejects_duplicates():
    plan = plan_isoflop((3e11,), TINY[:4], hparams=hparams, seeds=(0, 1))
    again = Plan.from_dict(json.loads(plan.to_json()))
    assert again == plan
    assert len({r.run_id for r in plan.runs}) == 8
    merged = plan + plan
    assert merged.runs == plan.runs
    with pytest.raises(ValueError, match="duplicate"):
        Plan(name="x", runs=plan.runs + plan.runs[:1])
    rows = summarize(plan)
    assert rows[0]["tokens_per_param"] == pytest.approx(rows[0]["tokens"] / rows[0]["n"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"budgets": ()}, "no FLOP budgets"),
        ({"budgets": (-1.0,)}, "budget=-1.0"),
        ({"budgets": (1e12,), "sizes_per_budget": 3}, "give center"),
        ({"budgets": (1e12,), "convention": "kaplan"}, "convention='kaplan'"),
    ],
)
def test_planner_errors_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_isoflop(ladder=TINY, **kwargs)


def test_power_law_center():
    center = power_law_center(1e12, 3e4, 0.5)
    assert center(4e12) == pytest.approx(6e4)
    assert math.isclose(center(1e12), 3e4)


def test_training_curves_centred_staggered_and_lifted():
    """Approach 1's dedicated runs: per size 4 cycles spanning 16x, centred on a given budget, their ends spread
    evenly over log FLOPs modulo the cycle ratio (stagger), short sets lengthened by whole ratios (lift)."""
    ladder = TINY[1:7]
    center = lambda n: 3e11 * (n / 13e3) ** (1 / 0.7)  # noqa: E731
    plain = plan_training_curves(ladder, flops_center=center, hparams=hparams)
    staggered = plan_training_curves(ladder, flops_center=center, hparams=hparams, stagger=True)
    ratio = 16 ** (1 / 3)
    for plan in (plain, staggered):
        assert len(plan.runs) == 4 * len(ladder)
        for model in ladder:
            tokens = sorted(r.tokens for r in plan.runs if r.model == model)
            assert tokens[-1] / tokens[0] == pytest.approx(16, rel=0.05)
    for model in ladder:  # without stagger: centred on center(N) (geometric mean of the 4 cycles' FLOPs)
        runs = [r for r in plain.runs if r.model == model]
        mean = math.exp(sum(math.log(r.flops) for r in runs) / 4)
        assert mean == pytest.approx(center(n_params(model, "non_embedding")), rel=0.05)
        moved = [r for r in staggered.runs if r.model == model]
        assert (
            1 / math.sqrt(ratio) * 0.95
            <= min(r.flops for r in moved) / min(r.flops for r in runs)
            <= math.sqrt(ratio) * 1.05
        )
    # Stagger: the ends' phases log(C_end) / log(ratio) mod 1 follow frac(j * 0.618) over the sizes j.
    for j, model in enumerate(ladder):
        shortest = min(r.flops for r in staggered.runs if r.model == model)
        phase = (math.log(shortest) / math.log(ratio)) % 1
        expected = (j * (math.sqrt(5) - 1) / 2) % 1
        assert min(abs(phase - expected), 1 - abs(phase - expected)) < 0.03
    lifted = plan_training_curves(
        ladder, flops_center=center, hparams=hparams, stagger=True, min_steps=400, lift_short=True
    )
    skipped = plan_training_curves(ladder, flops_center=center, hparams=hparams, stagger=True, min_steps=400)
    assert skipped.skipped and not lifted.skipped and len(lifted.runs) == 4 * len(ladder)
    for model in ladder:
        tokens = sorted(r.tokens for r in lifted.runs if r.model == model)
        step = hparams(model, tokens[0])["batch_size"] * model.seq_len
        assert tokens[0] // step >= 400 and tokens[-1] / tokens[0] == pytest.approx(16, rel=0.05)
    with pytest.raises(ValueError, match="exactly one"):
        plan_training_curves(ladder, hparams=hparams)


def test_isoflop_seeds_only_at_the_sizes_nearest_the_centre():
    center = power_law_center(3e11, 13e3, 0.7)
    plan = plan_isoflop(
        (1e11, 4e11),
        TINY[:12],
        center=center,
        sizes_per_budget=5,
        spacing=1.6,
        seeds=(0, 1),
        seed_sizes=3,
        min_steps=100,
    )
    for budget in (1e11, 4e11):
        runs = [r for r in plan.runs if r.budget == budget]
        sizes = {r.model.name for r in runs}
        assert len(sizes) == 5 and len(runs) == 8
        seeded = sorted(
            {r.model.name for r in runs if r.train["seed"] == 1},
            key=lambda name: next(r.n_params("non_embedding") for r in runs if r.model.name == name),
        )
        by_distance = sorted(
            sizes,
            key=lambda name: abs(
                math.log(next(r.n_params("non_embedding") for r in runs if r.model.name == name) / center(budget))
            ),
        )
        assert set(seeded) == set(by_distance[:3])
    with pytest.raises(ValueError, match="seed_sizes"):
        plan_isoflop((1e11,), TINY, seed_sizes=2)
